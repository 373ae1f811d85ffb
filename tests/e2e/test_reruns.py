"""Exactly once per document across re-runs, corrections and repeated exports, judged from the sandbox's record.

Each case runs the flow, changes the world the way a data engineer would (restore objects, add rows, fix an
email at Fin, export again, overwrite a file, spell a location differently), runs again, and checks that no
document was attached twice, that each restored or new one was attached exactly once, and that the report
says why every row ended as it did.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import run_attach
from flows.commands.cli import app
from flows.commands.demo import demo_rows, demo_world, manifest_csv
from flows.commands.demo_samples import sample_pdf
from tests.support.scenario import api_env, load_world, read_report, sandbox_record
from transforms.exactly_once import partition_of

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

CUSTOMERS = 4
DOCS_PER_CUSTOMER = 3  # demo_rows: a passport, a two-sided national id, a utility bill


def _good(rows: list[dict[str, str]], files: dict[str, bytes]) -> tuple[list[dict[str, str]], dict[str, bytes]]:
    """The demo rows without its bad-on-purpose ones (other tests cover those)."""
    return [r for r in rows if "/bad/" not in r["s3_uri"]], {k: v for k, v in files.items() if not k.startswith("bad/")}


def _of_customer(rows: list[dict[str, str]], c: int, leaf: str | None = None) -> list[dict[str, str]]:
    return [r for r in rows if f"/docs/{c}/" in r["s3_uri"] and (leaf is None or r["s3_uri"].endswith(leaf))]


def _doc_key(a: dict[str, Any]) -> tuple[Any, ...]:
    """A document at Fin as the sandbox counts duplicates: customer, party, type, number, file contents."""
    return (a["customer_id"], a["associated_party_id"], a["type"], a["number"],
            tuple(sorted(f["sha256"] for f in a["files"])))


def _counts(summary: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in summary["by_status"].items() if v}


def _assert_uris_belong_to_their_customer(record: dict[str, Any]) -> None:
    owner = {u["uri"]: u["customer_id"] for u in record["uploads"]}
    for a in record["attachments"]:
        assert all(owner[f["uri"]] == a["customer_id"] for f in a["files"])


class Staging:
    """One test's bucket, sandbox and report location."""

    def __init__(self, bucket: str, sandbox_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 world: dict[str, Any] | None = None, faults: dict[str, Any] | None = None, **settings: str) -> None:
        self.bucket, self.sandbox_url = bucket, sandbox_url
        self.world = world or demo_world(customers=CUSTOMERS)
        self.rows, self.files = _good(*demo_rows(self.world, bucket))
        self.store = ObjectStore(S3Store(make_s3_client()))
        self.report_uri = f"s3://{bucket}/reports"
        load_world(sandbox_url, self.world, faults)
        api_env(monkeypatch, sandbox_url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0.05", **settings)

    def put_files(self, keys: list[str] | None = None, data: dict[str, bytes] | None = None) -> None:
        for key, body in (data or {k: self.files[k] for k in (keys or self.files)}).items():
            self.store.write(Location(self.bucket, key), body, overwrite=True)

    def put_manifest(self, rows: list[dict[str, str]], name: str = "m.csv") -> str:
        self.store.write(Location(self.bucket, f"manifests/{name}"), manifest_csv(rows), overwrite=True)
        return f"s3://{self.bucket}/manifests/{name}"

    def run(self, manifest: str, run_id: str, report_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return asyncio.run(run_attach(manifest, report_uri or self.report_uri, run_id=run_id, **kwargs))

    def record(self) -> dict[str, Any]:
        return sandbox_record(self.sandbox_url)


def _restored_objects(st: Staging) -> tuple[str, set[str]]:
    """Objects missing on the first run, put in place before the second (the same manifest)."""
    missing = [r["s3_uri"] for c in (0, 1) for r in _of_customer(st.rows, c, "passport.pdf")]
    missing_keys = [u.split("/", 3)[3] for u in missing]
    st.put_files([k for k in st.files if k not in missing_keys])
    manifest = st.put_manifest(st.rows)
    first = st.run(manifest, "first")
    assert first["by_reason"].get("missing_object") == len(missing)
    st.put_files(missing_keys)
    return manifest, set(missing)


def _rows_added(st: Staging) -> tuple[str, set[str]]:
    """Rows added to the manifest between runs: a customer's bill, and a whole new customer."""
    st.put_files()
    added = _of_customer(st.rows, 0, "bill.pdf") + _of_customer(st.rows, 3)
    first = st.put_manifest([r for r in st.rows if r not in added])
    st.run(first, "first")
    return st.put_manifest(st.rows), {r["s3_uri"] for r in added}


def _email_resolves(st: Staging) -> tuple[str, set[str]]:
    """A party known only by email, which Fin does not know on the first run; fixed at Fin, in another case."""
    st.put_files()
    customer = st.world["customers"][1]
    party = customer["associated_parties"][1]
    by_email = [r for r in _of_customer(st.rows, 1) if r.get("associated_party_email")]
    assert by_email and all(r["associated_party_email"] == party["email"] for r in by_email)
    change = {"customer_id": customer["customer_id"], "party_id": party["id"]}
    httpx.post(f"{st.sandbox_url}/_sandbox/party", json={**change, "email": "someone.else@example.com"}
               ).raise_for_status()
    manifest = st.put_manifest(st.rows)
    first = st.run(manifest, "first")
    assert first["by_reason"].get("party_not_found") == len(by_email)
    # The party's bill (given by id) lost its only identifying document with it: not sent alone (issue 13).
    (bill,) = _of_customer(st.rows, 1, "bill.pdf")
    assert first["by_reason"].get("no_identifying_document") == 1
    # Fin's side now has the email in another case: matching is case-insensitive at both ends.
    httpx.post(f"{st.sandbox_url}/_sandbox/party", json={**change, "email": party["email"].title()}
               ).raise_for_status()
    return manifest, {r["s3_uri"] for r in [*by_email, bill]}


def _two_nights(st: Staging) -> tuple[str, set[str]]:
    """A full export on two nights: tomorrow's manifest (another object) holds today's rows again, and more."""
    st.put_files()
    new = _of_customer(st.rows, 2)
    today = st.put_manifest([r for r in st.rows if r not in new], "night-1.csv")
    st.run(today, "first")
    return st.put_manifest(st.rows, "night-2.csv"), {r["s3_uri"] for r in new}


def _report_prefix_with_slashes(st: Staging) -> tuple[str, set[str]]:
    """The same manifest with its report prefix written ``s3://bucket//reports``: the same ledger."""
    st.put_files()
    manifest = st.put_manifest(st.rows)
    st.run(manifest, "first")
    st.report_uri = f"s3://{st.bucket}//reports"
    return manifest, set()


def _overwritten_object(st: Staging) -> tuple[str, set[str]]:
    """An object overwritten between runs is new content: uploaded again, and its document attached once."""
    st.put_files()
    manifest = st.put_manifest(st.rows)
    st.run(manifest, "first")
    (row,) = _of_customer(st.rows, 2, "passport.pdf")
    st.put_files(data={row["s3_uri"].split("/", 3)[3]: sample_pdf("passport 2, a better scan")})
    return manifest, {row["s3_uri"]}


def _shared_file(st: Staging) -> tuple[str, set[str]]:
    """One file used by two customers (a person who owns two businesses): each gets its own upload."""
    shared = f"s3://{st.bucket}/shared/passport.pdf"
    st.files["shared/passport.pdf"] = sample_pdf("one person's passport")
    for c in (0, 1):
        _of_customer(st.rows, c, "passport.pdf")[0]["s3_uri"] = shared
    st.put_files()
    manifest = st.put_manifest(st.rows)
    st.run(manifest, "first")
    return manifest, set()


CASES = {f.__name__.lstrip("_"): f for f in (_restored_objects, _rows_added, _email_resolves, _two_nights,
                                              _report_prefix_with_slashes, _overwritten_object, _shared_file)}


@pytest.mark.parametrize("case", list(CASES))
def test_second_run_attaches_only_what_is_new(case: str, fin_sandbox: Any, bucket: str,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path)
    second_manifest, new_uris = CASES[case](st)
    after_first = st.record()

    second = st.run(second_manifest, "second")

    record = st.record()
    assert record["duplicates"]["attachments"] == 0
    assert Counter(_doc_key(a) for a in record["attachments"]).most_common(1)[0][1] == 1
    _assert_uris_belong_to_their_customer(record)
    assert len(record["attachments"]) == len(after_first["attachments"]) + len(
        {(r["customer_id"], r["document_type"]) for r in st.rows if r["s3_uri"] in new_uris})
    assert record["responses"].get("403", 0) == 0
    report = read_report(second)
    assert sum(second["by_status"].values()) == len(report)
    for row in report:
        if row["s3_uri"] in new_uris:
            assert (row["status"], row["reason_code"]) == ("attached", None), row
        elif any(row["s3_uri"] == r["s3_uri"] for r in st.rows):
            assert (row["status"], row["reason_code"]) == ("skipped", "already_attached"), row
            assert row["message"] == "attached by run first", row
    if case == "overwritten_object":  # the new content went up again and its new uri was attached
        (uri,) = new_uris
        first_uri = {r["s3_uri"]: r["uri"] for r in read_report({"report": f"{st.report_uri}/first"})}[uri]
        assert {r["uri"] for r in report if r["s3_uri"] == uri} != {first_uri}
    if case == "shared_file":
        content = hashlib.sha256(st.files["shared/passport.pdf"]).hexdigest()
        assert len({u["customer_id"] for u in record["uploads"] if u["sha256"] == content}) == 2


def test_one_local_manifest_under_every_spelling_is_one_job(fin_sandbox: Any, bucket: str,
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=demo_world(customers=2))
    st.put_files()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "m.csv").write_bytes(manifest_csv(st.rows))
    monkeypatch.chdir(folder)
    spellings = ["m.csv", "./m.csv", str(folder / "m.csv"), f"{folder}//m.csv", "../in/m.csv"]

    summaries = [st.run(m, f"run-{i}") for i, m in enumerate(spellings)]

    assert len({s["job_id"] for s in summaries}) == 1
    assert _counts(summaries[0]) == {"attached": len(st.rows)}
    for later in summaries[1:]:
        assert _counts(later) == {"skipped": len(st.rows)}
    record = st.record()
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == 2 * DOCS_PER_CUSTOMER


@pytest.mark.parametrize("moves_after_s", [None, 1.0], ids=["status-never-moves", "status-moves-late"])
def test_lost_answer_without_evidence_stays_unknown_and_is_never_resent(
    moves_after_s: float | None, fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every attach lands but its answer is lost, and the parties' status does not move within the settle
    delay: the rows end ``unknown`` (not resent). When the status moves later, the next run settles them as
    attached, still without resending."""
    world = {**demo_world(customers=2), "status_moves_after_s": moves_after_s}
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=world,
                 faults={"commit_then_fail": {"share": 1.0, "mode": "either"}})
    st.put_files()
    manifest = st.put_manifest(st.rows)

    first = st.run(manifest, "first")

    assert _counts(first) == {"unknown": len(st.rows)}
    record = st.record()
    assert record["requests"]["attach"] == 2  # one per customer, never resent
    assert len(record["attachments"]) == 2 * DOCS_PER_CUSTOMER and record["duplicates"]["attachments"] == 0

    httpx.post(f"{st.sandbox_url}/_sandbox/faults", json={}).raise_for_status()  # the API recovered
    if moves_after_s is not None:
        time.sleep(moves_after_s)
    second = st.run(manifest, "second")

    assert st.record()["requests"]["attach"] == 2  # nothing sent again
    report = read_report(second)
    if moves_after_s is None:
        assert {(r["status"], r["reason_code"]) for r in report} == {("unknown", "outcome_unknown")}
        assert all("run first sent this attach" in r["message"] for r in report)
    else:
        assert {(r["status"], r["reason_code"]) for r in report} == {("attached", None)}
        assert all(r["message"].startswith("attached by run first") for r in report)


def _old_attach_key(world_customer: dict[str, Any], rows: list[dict[str, str]]) -> str:
    """The per-request key the code before the per-document ledger gave this customer's one request."""
    from transforms.catalogue import category_of
    from transforms.models import Document, FileRef
    from transforms.payload import attach_key

    email_to_id = {p["email"]: p["id"] for p in world_customer["associated_parties"]}
    docs: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in rows:
        if r["customer_id"] == world_customer["customer_id"]:
            party = r.get("associated_party_id") or email_to_id[r["associated_party_email"]]
            docs.setdefault((party, r["document_type"]), []).append(r)
    by_party: dict[str, list[Document]] = {}
    for (party, doc_type), doc_rows in docs.items():
        first = doc_rows[0]
        category = category_of(doc_type)
        assert category is not None
        by_party.setdefault(party, []).append(Document(
            first["customer_id"], party, None, category.value, doc_type, first.get("document_number") or None,
            first.get("country") or None, first.get("issue_date") or None, first.get("expiry_date") or None,
            tuple(FileRef(0, r["s3_uri"], r.get("side") or None) for r in doc_rows)))
    return attach_key(world_customer["customer_id"], by_party)


def test_a_job_started_before_the_upgrade_finishes_without_attaching_twice(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An old ledger (per-request records) says customer 0's request was done and customer 1's was in flight
    (its answer lost, the parties INITIATED before): the new code attaches neither again, and customer 2."""
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=demo_world(customers=3))
    st.put_files()
    manifest = st.put_manifest(st.rows)
    job_id = st.run(manifest, "dry", dry_run=True)["job_id"]
    c0, c1, c2 = st.world["customers"]
    old = [{"k": "attach", "key": _old_attach_key(c0, st.rows), "state": "done", "http_status": None,
            "transient": False, "initiated": True},
           {"k": "attach", "key": _old_attach_key(c1, st.rows), "state": "in_flight", "http_status": None,
            "transient": False, "initiated": True}]
    segment = "".join(json.dumps(r) + "\n" for r in old).encode()
    st.store.write(Location(bucket, f"reports/_ledger/{job_id}/b0000-0399/seg-00000000000000000001-0a0b0c0d.jsonl"),
                   segment)
    adopted = CliRunner().invoke(app, ["ledger", "adopt", st.report_uri], catch_exceptions=False)
    assert adopted.exit_code == 0 and json.loads(adopted.stdout)["copied"] == 1, adopted.stderr

    summary = st.run(manifest, "after-upgrade")

    record = st.record()
    assert {a["customer_id"] for a in record["attachments"]} == {c2["customer_id"]}
    assert len(record["attachments"]) == DOCS_PER_CUSTOMER
    outcome = {(r["customer_id"], r["status"], r["reason_code"], r["message"]) for r in read_report(summary)}
    assert outcome == {
        (c0["customer_id"], "skipped", "already_attached", "attached by a run before the per-document ledger"),
        (c1["customer_id"], "unknown", "outcome_unknown",
         "a run before the per-document ledger sent this attach and nothing the API shows proves it took effect"),
        (c2["customer_id"], "attached", None, None),
    }
    # The old "done" is carried into the new index: a third run skips customer 0 with no legacy ledger left.
    shutil.rmtree(tmp_path / "work" / "ledger" / job_id)
    third = st.run(manifest, "third")
    assert {(r["customer_id"], r["reason_code"]) for r in read_report(third) if r["status"] == "skipped"} == {
        (c0["customer_id"], "already_attached"), (c2["customer_id"], "already_attached")}


def test_nightly_works_restorable_rejects_again_for_a_bounded_number_of_nights(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.nightly import nightly

    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=demo_world(customers=2),
                 KYC_ATTACH_REWORK_REJECTED_NIGHTS="2")
    restored = _of_customer(st.rows, 0, "passport.pdf")[0]["s3_uri"]
    never = _of_customer(st.rows, 1, "bill.pdf")[0]["s3_uri"]
    keys = {u: u.split("/", 3)[3] for u in (restored, never)}
    st.put_files([k for k in st.files if k not in keys.values()])
    st.store.write(Location(bucket, "inbox/m.csv"), manifest_csv(st.rows))
    def night() -> dict[str, Any]:
        return asyncio.run(nightly(inbox=f"s3://{bucket}/inbox/", report_uri=st.report_uri))["runs"]

    (first,) = night().values()
    assert first["by_status"]["rejected"] == 2
    st.put_files([keys[restored]])  # one object is put in place; the other never is
    (second,) = night().values()  # works the two rejected rows again: one attaches
    assert (second["by_status"]["attached"], second["by_status"]["rejected"]) == (1, 1)
    (third,) = night().values()  # the second night of re-work: still missing
    assert (third["by_status"]["attached"], third["by_status"]["rejected"]) == (0, 1)
    assert night() == {}  # KYC_ATTACH_REWORK_REJECTED_NIGHTS=2: now it stays rejected

    record = st.record()
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == 2 * DOCS_PER_CUSTOMER - 1
    last = {r["s3_uri"]: r for r in read_report({"report": third["report"]})}
    assert (last[never]["status"], last[never]["reason_code"]) == ("rejected", "missing_object")
    assert (last[restored]["status"], last[restored]["reason_code"]) == ("skipped", "not_retried")


def test_allow_reattach_sends_attached_documents_again(fin_sandbox: Any, bucket: str,
                                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=demo_world(customers=1))
    st.put_files()
    manifest = st.put_manifest(st.rows)
    st.run(manifest, "first")

    again = st.run(manifest, "second", allow_reattach=True)

    assert _counts(again) == {"attached": len(st.rows)}
    record = st.record()
    assert len(record["attachments"]) == 2 * DOCS_PER_CUSTOMER
    assert record["duplicates"]["attachments"] == DOCS_PER_CUSTOMER  # asked for: each document once more
    assert len({u["uri"] for u in record["uploads"]}) == len(record["uploads"])  # the uploads were reused
    assert len(record["uploads"]) == len(st.rows)


def test_a_file_uploaded_for_one_customer_is_uploaded_again_for_another_in_a_later_run(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same source object: customer A's passport in the first run; the second run (a full export) adds
    customer B with it as B's passport. The second run reads A's upload record and must still upload the file
    again for B (a uri belongs to the customer it was uploaded for). The two customers share a ledger partition,
    so even a run of B alone reads A's records."""
    world = demo_world(customers=2)
    a_id = world["customers"][0]["customer_id"]
    b_id = next(c for c in (str(uuid.uuid4()) for _ in range(100_000)) if partition_of(c) == partition_of(a_id))
    world["customers"][1]["customer_id"] = b_id
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=world)
    st.files["shared/passport.pdf"] = sample_pdf("one person's passport, two businesses")
    for c in (0, 1):
        _of_customer(st.rows, c, "passport.pdf")[0]["s3_uri"] = f"s3://{bucket}/shared/passport.pdf"
    st.put_files()
    st.run(st.put_manifest([r for r in st.rows if r["customer_id"] == a_id], "night-1.csv"), "first")

    second = st.run(st.put_manifest(st.rows, "night-2.csv"), "second")

    b_rows = sum(r["customer_id"] == b_id for r in st.rows)
    assert _counts(second) == {"attached": b_rows, "skipped": len(st.rows) - b_rows}
    record = st.record()
    _assert_uris_belong_to_their_customer(record)
    content = hashlib.sha256(st.files["shared/passport.pdf"]).hexdigest()
    assert {u["customer_id"] for u in record["uploads"] if u["sha256"] == content} == {a_id, b_id}
    assert record["responses"].get("403", 0) == 0


def test_a_later_attach_to_the_party_voids_its_status_as_evidence_for_an_earlier_lost_one(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run 1 loses the answer for party P's passport (not applied: the status stays INITIATED); run 2 attaches a
    new passport of P, which moves P's status; run 3 must not read that move as run 1's attach taking effect."""
    st = Staging(bucket, fin_sandbox.url, monkeypatch, tmp_path, world=demo_world(customers=1),
                 faults={"errors": {"share": 1.0, "statuses": [500], "endpoints": ["attach"]}})
    (first_passport,) = _of_customer(st.rows, 0, "passport.pdf")
    second_passport = {**first_passport, "s3_uri": f"s3://{bucket}/docs/0/passport-renewed.pdf",
                       "document_number": "P0999999", "issue_date": "2024-03-10", "expiry_date": "2034-03-10"}
    st.files["docs/0/passport-renewed.pdf"] = sample_pdf("passport 0, renewed")
    st.put_files()

    first = st.run(st.put_manifest([first_passport], "first.csv"), "first")
    assert _counts(first) == {"unknown": 1}
    httpx.post(f"{st.sandbox_url}/_sandbox/faults", json={}).raise_for_status()  # the API recovered
    second = st.run(st.put_manifest([second_passport], "second.csv"), "second")
    assert _counts(second) == {"attached": 1}

    third = st.run(st.put_manifest([first_passport, second_passport], "third.csv"), "third")

    outcome = {r["s3_uri"]: (r["status"], r["reason_code"]) for r in read_report(third)}
    assert outcome == {first_passport["s3_uri"]: ("unknown", "outcome_unknown"),
                       second_passport["s3_uri"]: ("skipped", "already_attached")}
    assert [a["number"] for a in st.record()["attachments"]] == ["P0999999"]  # the first was never applied


def test_retry_failed_of_a_run_of_another_manifest_is_refused(demo_scenario: Any, bucket: str) -> None:
    """`--retry-failed RUN_ID` 'names an earlier run of the same manifest' (flow docstring), but nothing checks
    it: the earlier run's failed *row numbers* are applied to whatever manifest is given. With tomorrow's export
    (rows in another order) the rows that failed yesterday are reported `skipped` / `not_retried` 'did not fail in
    the earlier run' and other rows are worked instead. Expected: exit 2, the run is of another job."""
    import asyncio

    from connectors.errors import SetupError
    from flows.attach_flow import run_attach
    from flows.commands.demo import manifest_csv

    scenario = demo_scenario(customers=2, faults={"errors": {"share": 1.0, "statuses": [503],
                                                             "endpoints": ["upload"]}},
                             KYC_ATTACH_MAX_ATTEMPTS="1")
    first = scenario.run(run_id="y1")
    assert first["by_status"]["failed"] > 0
    s3 = make_s3_client()
    s3.put_object(Bucket=bucket, Key="manifests/other.csv", Body=manifest_csv(list(reversed(scenario.rows))))
    load_world(scenario.sandbox_url, scenario.world)
    with pytest.raises(SetupError):
        asyncio.run(run_attach(f"s3://{bucket}/manifests/other.csv", f"s3://{bucket}/reports", run_id="y2",
                                    retry_failed="y1"))
