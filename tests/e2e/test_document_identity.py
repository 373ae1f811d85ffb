"""A document is its scans' content: a moved archive, swapped sides or a corrected number are not new documents,
and a correction is reported as one. Judged from the sandbox's own record."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from connectors.ledger_index import partitions, read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location, make_s3_client
from flows.attach_flow import run_attach
from flows.commands.demo import manifest_csv
from tests.support.scenario import read_report, sandbox_record
from transforms.catalogue import category_of
from transforms.exactly_once import FileContent, document_key, etag_document_key
from transforms.models import Document, FileRef

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]



def _big_scan(n: int) -> bytes:
    """A PDF of 9 MiB (above the CLI's 8 MB multipart threshold), one per ``n``, valid to the structure check."""
    return f"%PDF-1.4\n%{n}".encode() + b"0" * (9 * 1024 * 1024) + b"\n%%EOF\n"

REPORTS = "reports"


def _run(bucket: str, rows: list[dict[str, str]], name: str, **kwargs: Any) -> tuple[dict[str, Any],
                                                                                      list[dict[str, Any]]]:
    make_s3_client().put_object(Bucket=bucket, Key=f"manifests/{name}", Body=manifest_csv(rows))
    summary = asyncio.run(run_attach(f"s3://{bucket}/manifests/{name}", f"s3://{bucket}/{REPORTS}", **kwargs))
    return summary, read_report(summary)


def _good(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in report if "/bad/" not in r["s3_uri"]]


def _attached_per_document(record: dict[str, Any]) -> Counter[tuple[Any, ...]]:
    """How often each document (customer, party, type, its scans' contents) was attached."""
    return Counter((a["customer_id"], a["associated_party_id"], a["type"],
                    tuple(sorted(f["sha256"] for f in a["files"]))) for a in record["attachments"])


def test_an_archive_moved_with_a_multipart_copy_is_not_uploaded_or_attached_again(
    demo_scenario: Any, bucket: str
) -> None:
    scenario = demo_scenario(customers=2)
    s3 = make_s3_client()
    for c in range(2):  # colour scans above 8 MB: what `aws s3 cp` copies in parts
        s3.put_object(Bucket=bucket, Key=f"docs/{c}/passport.pdf", Body=_big_scan(c))
    _, report = _run(bucket, scenario.rows, "first.csv", run_id="first")
    assert {r["status"] for r in _good(report)} == {"attached"}
    before = scenario.record()

    # every file copied in parts (a small threshold: the small ones get a one-part ETag too)
    moved_rows = []
    for row in scenario.rows:
        key = row["s3_uri"].split("/", 3)[3]
        if key.startswith("docs/"):
            s3.copy({"Bucket": bucket, "Key": key}, bucket, f"moved/{key}",
                    Config=TransferConfig(multipart_threshold=1, multipart_chunksize=8 * 1024 * 1024))
            assert (s3.head_object(Bucket=bucket, Key=f"moved/{key}")["ETag"]
                    != s3.head_object(Bucket=bucket, Key=key)["ETag"])
            row = {**row, "s3_uri": f"s3://{bucket}/moved/{key}"}
        moved_rows.append(row)
    second, report = _run(bucket, moved_rows, "moved.csv", run_id="moved")

    after = scenario.record()
    assert len(after["uploads"]) == len(before["uploads"])  # no second upload
    assert len(after["attachments"]) == len(before["attachments"])
    assert max(_attached_per_document(after).values()) == 1
    assert {(r["status"], r["reason_code"]) for r in _good(report)} == {("skipped", "already_attached")}
    assert second["by_status"]["attached"] == 0


def test_swapped_sides_are_the_same_document_and_the_report_says_fin_keeps_the_first(
    demo_scenario: Any, bucket: str
) -> None:
    scenario = demo_scenario(customers=2)
    _run(bucket, scenario.rows, "first.csv", run_id="first")
    before = scenario.record()
    swap = {"FRONT": "BACK", "BACK": "FRONT"}
    swapped = [{**r, "side": swap[r["side"]]} if r.get("side") in swap and "/docs/" in r["s3_uri"] else r
               for r in scenario.rows]
    _, report = _run(bucket, swapped, "swapped.csv", run_id="swapped")

    assert len(scenario.record()["attachments"]) == len(before["attachments"])
    ids = [r for r in report if r["document_type"] == "NATIONAL_ID"]
    assert ids and {(r["status"], r["reason_code"]) for r in ids} == {("skipped", "already_attached")}
    assert all("sides" in r["message"] and "Fin keeps" in r["message"] for r in ids)
    others = [r for r in _good(report) if r["document_type"] != "NATIONAL_ID"]
    assert all("sides" not in r["message"] for r in others)

    # asked for: sent with the corrected sides
    one = [r for r in swapped if r["document_type"] == "NATIONAL_ID" and "/docs/0/" in r["s3_uri"]]
    _, report = _run(bucket, one, "resend.csv", run_id="resend", allow_reattach=True)
    assert {r["status"] for r in report} == {"attached"}
    sent = scenario.record()["attachments"][len(before["attachments"]):]
    assert [{f["side"] for f in a["files"]} for a in sent] == [{"FRONT", "BACK"}]


@pytest.mark.parametrize(("field", "corrected"), [("document_number", "P0999"), ("expiry_date", "2032-04-11")])
def test_a_corrected_detail_with_the_same_scan_is_reported_and_sent_only_when_asked(
    demo_scenario: Any, bucket: str, field: str, corrected: str
) -> None:
    scenario = demo_scenario(customers=2)
    _run(bucket, scenario.rows, "first.csv", run_id="first")
    before = len(scenario.record()["attachments"])
    passport = next(r for r in scenario.rows if r["s3_uri"].endswith("/docs/0/passport.pdf"))
    fixed = {**passport, field: corrected}
    rows = [fixed if r is passport else r for r in scenario.rows]
    _, report = _run(bucket, rows, "fixed.csv", run_id="fixed")

    assert len(scenario.record()["attachments"]) == before
    row = next(r for r in report if r["s3_uri"] == passport["s3_uri"])
    assert (row["status"], row["reason_code"]) == ("skipped", "attached_with_other_details")
    assert field in row["message"] and corrected not in row["message"] and passport[field] not in row["message"]
    others = [r for r in _good(report) if r["s3_uri"] != passport["s3_uri"]]
    assert {(r["status"], r["reason_code"]) for r in others} == {("skipped", "already_attached")}

    _, report = _run(bucket, [fixed], "resend.csv", run_id="resend", allow_reattach=True)
    assert [r["status"] for r in report] == ["attached"]
    sent = scenario.record()["attachments"][before:]
    assert [a[{"document_number": "number"}.get(field, field)] for a in sent] == [corrected]


def test_a_ledger_that_knows_documents_by_etag_and_side_does_not_attach_them_again(
    demo_scenario: Any, bucket: str, tmp_path: Path,
) -> None:
    """Ledgers written before content hashes: documents keyed by their files' ETags and sides, uploads without a
    hash. Rewritten so here from what the first run recorded."""
    ledger_dir = tmp_path / "work" / "ledger"  # the tenant ledger by default (KYC_ATTACH_WORK_DIR/ledger)
    scenario = demo_scenario(customers=2)
    first, _ = _run(bucket, scenario.rows, "first.csv", run_id="first")
    assert first["by_status"]["attached"] > 0
    record = scenario.record()
    s3 = make_s3_client()
    key_of_sha = {}
    for row in scenario.rows:
        key = row["s3_uri"].split("/", 3)[3]
        if key.startswith("docs/"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            key_of_sha[hashlib.sha256(body).hexdigest()] = key
    old_key: dict[str, str] = {}
    for a in record["attachments"]:
        refs = tuple(FileRef(i, f"s3://{bucket}/{key_of_sha[f['sha256']]}", f["side"])
                     for i, f in enumerate(a["files"]))
        content = {}
        for ref, f in zip(refs, a["files"], strict=True):
            head = s3.head_object(Bucket=bucket, Key=ref.s3_uri.split("/", 3)[3])
            content[ref.s3_uri] = FileContent(f["sha256"], head["ETag"].strip('"'), head["ContentLength"])
        doc = Document(a["customer_id"], a["associated_party_id"], None, category_of(a["type"]) or "", a["type"],
                       None, None, None, None, refs)
        party = a["associated_party_id"]
        old_key[document_key(a["customer_id"], party, doc, content)] = etag_document_key(
            a["customer_id"], party, doc, content)
    assert old_key
    # the tenant ledger (by default under the work folder), rewritten as one old-style segment per partition
    store = ObjectStore(None)
    root = Location.parse(str(ledger_dir / "_documents"))
    rewritten = 0
    for part in partitions(store, root):
        recs = read_records(store, root, part)
        for loc in store.list(root.child(part)):
            store.delete(loc)
        for rec in recs:
            for newer in ("sha", "crc", "d", "t", "o"):
                rec.pop(newer, None)
            if rec["k"] == "doc":
                rec["id"] = old_key[rec["id"]]
                rewritten += 1
        store.write(root.child(part, "seg-00000000000000000001-00000000.jsonl"),
                    "".join(json.dumps(r) + "\n" for r in recs).encode())
    assert rewritten

    _, report = _run(bucket, scenario.rows, "again.csv", run_id="again")

    after = scenario.record()
    assert len(after["attachments"]) == len(record["attachments"])
    assert len(after["uploads"]) == len(record["uploads"])
    assert {(r["status"], r["reason_code"]) for r in _good(report)} == {("skipped", "already_attached")}


def test_archive_copied_to_a_new_prefix_with_a_multipart_copy_is_attached_again(
    demo_scenario: Any, bucket: str
) -> None:
    """The identity of a file is its ETag (README), and the docstring of `document_key` promises that the same
    content under another key is the same document. An operator moves the archive to a new prefix with
    `aws s3 cp --recursive` / boto3's managed `copy` (multipart above 8 MB, so a different `md5-N` ETag for the
    same bytes) and tomorrow's export points at the new keys. Found: every scan above 8 MB (common for colour
    PDFs) is a 'new document' and is attached a second time."""
    import asyncio

    from boto3.s3.transfer import TransferConfig

    from flows.attach_flow import run_attach
    from flows.commands.demo import manifest_csv

    scenario = demo_scenario(customers=1)
    s3 = make_s3_client()
    big = b"%PDF-1.4\n%" + b"0" * (9 * 1024 * 1024) + b"\n%%EOF\n"  # a 9 MiB scan, valid to the structure check
    row = next(r for r in scenario.rows if r["s3_uri"].endswith("/docs/0/passport.pdf"))
    s3.put_object(Bucket=bucket, Key="docs/0/passport.pdf", Body=big)
    s3.put_object(Bucket=bucket, Key="manifests/one.csv", Body=manifest_csv([row]))
    first = asyncio.run(run_attach(f"s3://{bucket}/manifests/one.csv", f"s3://{bucket}/reports", run_id="n1"))
    assert first["by_status"]["attached"] == 1

    s3.copy({"Bucket": bucket, "Key": "docs/0/passport.pdf"}, bucket, "moved/0/passport.pdf",
            Config=TransferConfig(multipart_threshold=8 * 1024 * 1024))
    moved = {**row, "s3_uri": f"s3://{bucket}/moved/0/passport.pdf"}
    s3.put_object(Bucket=bucket, Key="manifests/two.csv", Body=manifest_csv([moved]))
    second = asyncio.run(run_attach(f"s3://{bucket}/manifests/two.csv", f"s3://{bucket}/reports", run_id="n2"))

    record = sandbox_record(scenario.sandbox_url)
    assert record["duplicates"]["attachments"] == 0, "the same scan, moved, was attached twice"
    assert second["by_reason"].get("already_attached") == 1
