"""Exactly once for the life of a deployment: one ledger per Fin tenant, whatever the report location.

Counted from the sandbox's own record; S3 is the loopback server, the flows run for real, the CLI in-process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import run_attach
from flows.commands.cli import app
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, manifest_csv
from tests.support.scenario import DemoScenario, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]
OTHER_CLIENT = "another-client-of-the-sandbox"


def _store() -> ObjectStore:
    return ObjectStore(S3Store(make_s3_client()))


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _refusal(result: Any) -> str:
    """The one line of a refused start (exit 2, nothing on stdout)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stdout == "", result.stderr
    line: str = lines[0]
    return line


def _sent(record: dict[str, Any]) -> tuple[int, int]:
    return len(record["uploads"]), len(record["attachments"])


def _no_twice(record: dict[str, Any]) -> None:
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}


@pytest.mark.parametrize("ledger", [None, "s3://{bucket}/ledger/"], ids=["default-ledger", "s3-ledger"])
def test_the_same_manifest_with_its_report_in_another_bucket_attaches_nothing_twice(
    demo_scenario: Callable[..., DemoScenario], bucket: str, ledger: str | None
) -> None:
    s = demo_scenario(customers=4, **({"KYC_ATTACH_LEDGER_URI": ledger.format(bucket=bucket)} if ledger else {}))
    other = f"t-{bucket[2:]}-other"
    make_s3_client().create_bucket(Bucket=other)

    first = asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports"))
    sent = _sent(s.record())
    moved = asyncio.run(run_attach(s.manifest, f"s3://{other}/elsewhere"))

    record = s.record()
    assert first["by_status"]["attached"] > 0 and sent[1] > 0
    assert _sent(record) == sent  # not one upload or attach more
    _no_twice(record)
    assert moved["by_status"].get("attached", 0) == 0
    assert moved["by_status"]["skipped"] == first["by_status"]["attached"]


def _shipped(uri: str, bucket: str) -> str:
    """A location of deployments/prefect.yaml, moved into the test's bucket (its bucket name becomes a folder)."""
    loc = Location.parse(uri)
    return f"s3://{bucket}/{loc.bucket}/{loc.key}"


def test_migration_then_nightly_as_deployed_attach_nothing_twice(
    demo_scenario: Callable[..., DemoScenario], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.migration import migration
    from flows.nightly import nightly

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    deployed = {d["name"]: d for d in spec["deployments"]}
    env = {d["name"]: d["work_pool"].get("job_variables", {}).get("env", {}) for d in spec["deployments"]}
    assert env["migration"]["KYC_ATTACH_LEDGER_URI"] == env["nightly"]["KYC_ATTACH_LEDGER_URI"]
    s = demo_scenario(customers=4)
    monkeypatch.setenv("KYC_ATTACH_LEDGER_URI", _shipped(env["nightly"]["KYC_ATTACH_LEDGER_URI"], bucket))
    ids = [c["customer_id"] for c in s.world["customers"]]
    archive = [r for r in s.rows if r["customer_id"] in ids[:3]]
    today = [r for r in s.rows if r["customer_id"] in ids[1:]]  # customers 1 and 2 again, and 3
    store = _store()
    store.write(Location(bucket, "archive/part-0001.csv"), manifest_csv(archive))
    store.write(Location(bucket, "inbox/2026-12-07.csv"), manifest_csv(today))

    migrated = asyncio.run(migration(source=f"s3://{bucket}/archive/",
                                     report_uri=_shipped(deployed["migration"]["parameters"]["report_uri"], bucket)))
    after_migration = _sent(s.record())
    night = asyncio.run(nightly(inbox=f"s3://{bucket}/inbox/",
                                report_uri=_shipped(deployed["nightly"]["parameters"]["report_uri"], bucket)))

    record = s.record()
    _no_twice(record)
    (m,) = migrated["runs"].values()
    (n,) = night["runs"].values()
    assert m["by_status"]["attached"] > 0 and after_migration[1] > 0
    attached_again = {(a["customer_id"], a["type"]) for a in record["attachments"][after_migration[1]:]}
    assert attached_again and {c for c, _ in attached_again} == {ids[3]}  # only the customer new tonight
    assert n["by_status"]["skipped"] > 0


def test_an_old_ledger_under_the_report_location_refuses_runs_until_adopted(
    demo_scenario: Callable[..., DemoScenario], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = f"s3://{bucket}/reports"
    # A ledger where every run kept it before: under the report location (what the old code wrote, unstamped).
    s = demo_scenario(customers=3, KYC_ATTACH_LEDGER_URI=f"{reports}/_ledger")
    first = asyncio.run(run_attach(s.manifest, reports))
    store = _store()
    store.delete(Location(bucket, "reports/_ledger/_tenant.json"))
    sent = _sent(s.record())
    assert first["by_status"]["attached"] > 0
    monkeypatch.setenv("KYC_ATTACH_LEDGER_URI", f"s3://{bucket}/tenant-ledger")

    line = _refusal(_cli(["run", s.manifest, "--report-uri", reports, "--no-progress"]))
    assert f"kyc-attach ledger adopt {reports}" in line
    with pytest.raises(SetupError, match="ledger adopt"):  # a deployment run, without the CLI's gate
        asyncio.run(run_attach(s.manifest, reports))
    assert _sent(s.record()) == sent

    adopted = _cli(["ledger", "adopt", reports])
    assert adopted.exit_code == 0, adopted.stderr
    copied = json.loads(adopted.stdout)
    assert copied["copied"] > 0 and copied["already_in_ledger"] == 0
    again = json.loads(_cli(["ledger", "adopt", reports]).stdout)
    assert again["copied"] == 0 and again["already_in_ledger"] == copied["copied"]

    after = asyncio.run(run_attach(s.manifest, reports))
    record = s.record()
    assert _sent(record) == sent
    _no_twice(record)
    assert after["by_status"].get("attached", 0) == 0
    assert after["by_status"]["skipped"] == first["by_status"]["attached"]


def test_a_report_location_without_a_ledger_cannot_be_adopted(
    demo_scenario: Callable[..., DemoScenario], bucket: str
) -> None:
    demo_scenario(customers=1, KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    line = _refusal(_cli(["ledger", "adopt", f"s3://{bucket}/no-such-reports"]))
    assert "no ledger under it" in line
    assert not list(_store().list(Location(bucket, "no-such-reports")))


def _with_second_client(s: DemoScenario) -> None:
    world = {**s.world, "clients": [*s.world["clients"], {"client_id": OTHER_CLIENT, "client_secret": "other"}]}
    httpx.post(f"{s.sandbox_url}/_sandbox/world", json=world).raise_for_status()


def test_a_second_tenant_on_the_same_ledger_is_refused_before_anything_is_sent(
    demo_scenario: Callable[..., DemoScenario], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = f"s3://{bucket}/ledger/"
    s = demo_scenario(customers=2, KYC_ATTACH_LEDGER_URI=ledger)
    _with_second_client(s)
    first = asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports"))
    stamp = _store().read(Location(bucket, "ledger/_tenant.json")).decode()
    assert json.loads(stamp) == {"api_url": s.sandbox_url.rstrip("/"), "client_id": CLIENT_ID}
    assert CLIENT_SECRET not in stamp
    sent = _sent(s.record())

    monkeypatch.setenv("FIN_CLIENT_ID", OTHER_CLIENT)
    monkeypatch.setenv("FIN_CLIENT_SECRET", "other")
    line = _refusal(_cli(["run", s.manifest, "--report-uri", f"s3://{bucket}/reports-b"]))
    assert "serves another Fin tenant (another client id" in line and OTHER_CLIENT not in line
    with pytest.raises(SetupError, match="another client id"):
        asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports-b"))

    monkeypatch.setenv("FIN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("FIN_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("FIN_API_URL", s.sandbox_url.replace("127.0.0.1", "localhost"))
    line = _refusal(_cli(["run", s.manifest, "--report-uri", f"s3://{bucket}/reports-c"]))
    assert "serves another Fin tenant (another API base URL" in line and "localhost" not in line
    assert _sent(s.record()) == sent

    # The same tenant written another way is the same tenant: its run goes ahead and skips what was attached.
    monkeypatch.setenv("FIN_API_URL", s.sandbox_url.replace("http://", "HTTP://") + "/")
    same = asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports-d"))
    assert same["by_status"]["skipped"] == first["by_status"]["attached"] > 0
    assert _sent(s.record()) == sent


def test_a_new_ledger_is_stamped_only_once_the_credentials_proved_good(
    demo_scenario: Callable[..., DemoScenario], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = demo_scenario(customers=1, KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    monkeypatch.setenv("FIN_CLIENT_ID", "a-mistyped-client")
    with pytest.raises(SetupError):  # the credentials refused: the run does not start
        asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports"))
    assert not _store().exists(Location(bucket, "ledger/_tenant.json"))
    monkeypatch.setenv("FIN_CLIENT_ID", CLIENT_ID)
    assert asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports"))["by_status"]["attached"] > 0


def _expire(bucket: str, prefix: str, rule_id: str) -> None:
    make_s3_client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix}, "Expiration": {"Days": 365}}]})


def test_a_lifecycle_rule_expiring_the_ledger_refuses_the_run(
    demo_scenario: Callable[..., DemoScenario], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.start_gate import check_before_run

    s = demo_scenario(customers=1, KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/kyc/ledger/")
    _expire(bucket, "kyc/", "expire-after-a-year")

    line = _refusal(_cli(["run", s.manifest, "--report-uri", f"s3://{bucket}/reports"]))
    assert "lifecycle rule expire-after-a-year" in line
    with pytest.raises(SetupError, match="expire-after-a-year"):
        asyncio.run(run_attach(s.manifest, f"s3://{bucket}/reports", dry_run=True))
    assert _sent(s.record()) == (0, 0)

    _expire(bucket, "kyc/reports/", "reports-only")  # a rule for the reports alone is none of the ledger's business
    assert check_before_run(s.manifest, f"s3://{bucket}/kyc/reports", run_id="reports-expire", dry_run=True).rows


@pytest.mark.parametrize("spelling", ["s3://{b}/reports/./", "s3://{b}/./reports", "s3://{b}/x/../reports"])
def test_report_prefix_with_a_dot_segment_is_the_same_ledger(demo_scenario: Any, bucket: str, spelling: str) -> None:
    """README: `s3://bucket//reports` and `s3://bucket/reports` are one ledger (`Location.normalised`). A `.`
    segment (`$PREFIX/./`, `os.path.join(prefix, '.')`) is not normalised: the second run gets a fresh ledger and
    attaches every document again (12 of 12 twice on loopback), and run ids are not unique either (`r1` can be used
    under `reports/` and `reports/./`)."""
    import asyncio

    from connectors.errors import SetupError
    from flows.attach_flow import run_attach

    scenario = demo_scenario(customers=2)
    scenario.run(run_id="d1")
    # fixed: a '.' or '..' segment in an S3 prefix is refused (S3 keys are not paths), before anything is sent
    with pytest.raises(SetupError, match=r"'\.' or '\.\.'"):
        asyncio.run(run_attach(scenario.manifest, spelling.format(b=bucket), run_id="d2"))
    assert sandbox_record(scenario.sandbox_url)["duplicates"]["attachments"] == 0
