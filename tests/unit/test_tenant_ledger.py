"""The tenant ledger's pure rules: one way to write an API base URL, what a stamp compares, which lifecycle rules
would expire the ledger; and the ledger's location and adoption on local folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connectors.errors import SetupError
from connectors.ledger_adoption import adopt, check_adopted
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store
from connectors.tenant_ledger import check_retention, check_stamp, ledger_location
from transforms.retention import rules_against
from transforms.tenant import TenantStamp, normalised_api_url


@pytest.mark.parametrize(("one", "other"), [
    ("https://api.fin.com", "HTTPS://API.Fin.com/"),
    ("https://api.fin.com", "https://api.fin.com:443"),
    ("http://127.0.0.1:8700", "http://127.0.0.1:8700/"),
    ("https://api.fin.com/v1", "https://api.fin.com/v1/"),
    ("https://api.fin.com", "https://user:pw@api.fin.com"),
])
def test_one_api_written_two_ways_is_one_tenant(one: str, other: str) -> None:
    assert normalised_api_url(one) == normalised_api_url(other)
    assert TenantStamp.of(one, "client").mismatch(TenantStamp.of(other, " client ")) is None


@pytest.mark.parametrize(("one", "other"), [
    ("https://api.fin.com", "https://sandbox.api.fin.com"),
    ("https://api.fin.com", "http://api.fin.com"),
    ("https://api.fin.com", "https://api.fin.com:8443"),
    ("https://api.fin.com/v1", "https://api.fin.com/v2"),
])
def test_another_api_is_another_tenant(one: str, other: str) -> None:
    assert TenantStamp.of(one, "c").mismatch(TenantStamp.of(other, "c")) == "another API base URL"


def test_another_client_id_is_another_tenant_and_the_reason_names_no_value() -> None:
    why = TenantStamp.of("https://api.fin.com", "client-a").mismatch(TenantStamp.of("https://api.fin.com", "b"))
    assert why == "another client id"


def _rule(filt: dict[str, Any] | None = None, *, status: str = "Enabled", **action: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"ID": "r", "Status": status, **(action or {"Expiration": {"Days": 30}})}
    if filt is not None:
        rule["Filter"] = filt
    return rule


@pytest.mark.parametrize("rule", [
    _rule({"Prefix": ""}),
    _rule({}),
    _rule({"Prefix": "kyc/"}),
    _rule({"Prefix": "kyc/led"}),  # a name prefix, not a folder: it covers kyc/ledger/
    _rule({"Prefix": "kyc/ledger/_documents/"}),  # a part of the ledger is the ledger lost
    _rule({"And": {"Prefix": "kyc/", "ObjectSizeGreaterThan": 10}}),
    _rule({"ObjectSizeLessThan": 1_000_000}),
    {"ID": "r", "Status": "Enabled", "Prefix": "kyc/", "Expiration": {"Days": 7}},  # the old form, no Filter
    _rule({"Prefix": "kyc/"}, Expiration={"Date": "2030-01-01T00:00:00Z"}),
    _rule({"Prefix": "kyc/"}, Transitions=[{"Days": 30, "StorageClass": "DEEP_ARCHIVE"}]),
])
def test_rules_that_expire_or_archive_the_ledger(rule: dict[str, Any]) -> None:
    assert rules_against([rule], "kyc/ledger/") == ["r"]


@pytest.mark.parametrize("rule", [
    _rule({"Prefix": "kyc/reports/"}),
    _rule({"Prefix": "kyc/ledger-old/"}),
    _rule({"Prefix": "kyc/"}, status="Disabled"),
    _rule({"Tag": {"Key": "tmp", "Value": "1"}}),
    _rule({"And": {"Prefix": "kyc/", "Tags": [{"Key": "tmp", "Value": "1"}]}}),
    _rule({"Prefix": "kyc/"}, NoncurrentVersionExpiration={"NoncurrentDays": 30}),
    _rule({"Prefix": "kyc/"}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 7}),
    _rule({"Prefix": "kyc/"}, Transitions=[{"Days": 30, "StorageClass": "STANDARD_IA"}]),
])
def test_rules_that_leave_the_ledger_alone(rule: dict[str, Any]) -> None:
    assert rules_against([rule], "kyc/ledger") == []


def test_a_rule_without_an_id_is_named_by_its_place() -> None:
    rules = [_rule({"Prefix": "other/"}), {"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]
    assert rules_against(rules, "kyc/ledger") == ["#2"]
    assert rules_against(rules, "") == ["r", "#2"]  # a ledger at the bucket's root: every rule reaches it


class _LifecycleDenied:
    def get_bucket_lifecycle_configuration(self, **kw: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied"}}, "GetBucketLifecycleConfiguration")


class _NoBucket:
    def get_bucket_lifecycle_configuration(self, **kw: Any) -> Any:
        raise ClientError({"Error": {"Code": "NoSuchBucket"}}, "GetBucketLifecycleConfiguration")


def test_lifecycle_rules_that_cannot_be_read_warn_when_denied_and_refuse_when_the_bucket_is_gone() -> None:
    ledger = Location("b", "ledger")
    warning = check_retention(ObjectStore(S3Store(_LifecycleDenied())), ledger)  # type: ignore[arg-type]
    assert warning is not None and "AccessDenied" in warning
    with pytest.raises(SetupError, match="NoSuchBucket"):
        check_retention(ObjectStore(S3Store(_NoBucket())), ledger)  # type: ignore[arg-type]


def test_the_default_ledger_is_in_the_work_folder_whatever_the_report_location(tmp_path: Path) -> None:
    assert ledger_location(None, tmp_path / "w") == Location(None, str((tmp_path / "w" / "ledger").resolve()))
    assert ledger_location("s3://bkt//x/", tmp_path) == ledger_location("s3://bkt/x", tmp_path) == Location("bkt", "x")


@pytest.mark.parametrize("uri", ["s3://user:pw@bucket/ledger", "s3://Bucket_Name/x", "s3:/b/x", "s3://b/x/../y"])
def test_a_malformed_ledger_setting_is_refused_naming_the_setting_not_the_value(uri: str) -> None:
    with pytest.raises(SetupError, match="KYC_ATTACH_LEDGER_URI") as caught:
        ledger_location(uri, Path("."))
    assert "pw" not in str(caught.value)


def test_a_stamp_that_is_not_a_stamp_is_refused(tmp_path: Path) -> None:
    store, ledger = ObjectStore(None), Location(None, str(tmp_path))
    (tmp_path / "_tenant.json").write_text("[]")
    with pytest.raises(SetupError, match="not a tenant stamp"):
        check_stamp(store, ledger, TenantStamp.of("https://api.fin.com", "c"), create=True)


def test_the_first_real_run_stamps_and_a_dry_look_does_not(tmp_path: Path) -> None:
    store, ledger = ObjectStore(None), Location(None, str(tmp_path / "ledger"))
    run = TenantStamp.of("https://API.fin.com/", "c")
    assert check_stamp(store, ledger, run, create=False) is False
    assert not (tmp_path / "ledger").exists()
    assert check_stamp(store, ledger, run, create=True) is True
    assert json.loads((tmp_path / "ledger" / "_tenant.json").read_text()) == {
        "api_url": "https://api.fin.com", "client_id": "c"}
    with pytest.raises(SetupError, match="another client id"):
        check_stamp(store, ledger, TenantStamp.of("https://api.fin.com", "d"), create=True)


def _old_ledger(reports: Path) -> None:
    for rel in ("_documents/0a/seg-1.jsonl", "_documents/ff/seg-2.jsonl", "job1/b0000-0399/seg-3.jsonl"):
        (reports / "_ledger" / rel).parent.mkdir(parents=True, exist_ok=True)
        (reports / "_ledger" / rel).write_text(f'{{"from": "{rel}"}}\n')
    for rel in ("job1/COMPLETED", "_active/run-1.json", "_tenant.json"):  # no records: never copied
        (reports / "_ledger" / rel).parent.mkdir(parents=True, exist_ok=True)
        (reports / "_ledger" / rel).write_text("{}")


def test_adoption_copies_the_records_once_and_each_ledger_needs_its_own(tmp_path: Path) -> None:
    store, reports = ObjectStore(None), Location(None, str(tmp_path / "reports"))
    ledger, other = (Location(None, str(tmp_path / n)).normalised() for n in ("ledger", "other"))
    _old_ledger(tmp_path / "reports")
    with pytest.raises(SetupError, match="kyc-attach ledger adopt"):
        check_adopted(store, reports, ledger)

    first = adopt(store, reports, ledger)
    again = adopt(store, reports, ledger)

    copied = sorted(p.relative_to(tmp_path / "ledger").as_posix() for p in (tmp_path / "ledger").rglob("*.jsonl"))
    assert copied == ["_documents/0a/seg-1.jsonl", "_documents/ff/seg-2.jsonl", "job1/b0000-0399/seg-3.jsonl"]
    assert not (tmp_path / "ledger" / "job1" / "COMPLETED").exists()
    assert (first.copied, first.present, again.copied, again.present) == (3, 0, 0, 3)
    check_adopted(store, reports, ledger)
    with pytest.raises(SetupError, match="adopt"):  # adopted into one ledger is not adopted into another
        check_adopted(store, reports, other)


def test_a_ledger_kept_at_the_old_place_is_its_own_adoption(tmp_path: Path) -> None:
    store, reports = ObjectStore(None), Location(None, str(tmp_path / "reports"))
    _old_ledger(tmp_path / "reports")
    old_place = Location(None, str(tmp_path / "reports" / "_ledger")).normalised()
    check_adopted(store, reports, old_place)
    with pytest.raises(SetupError, match="nothing to adopt"):
        adopt(store, reports, old_place)


def test_a_ledger_adopted_under_one_spelling_is_adopted_under_another(tmp_path: Path) -> None:
    store, reports = ObjectStore(None), Location(None, f"{tmp_path}/reports/")
    _old_ledger(tmp_path / "reports")
    adopt(store, reports, ledger_location(f"{tmp_path}/ledger/", tmp_path))
    check_adopted(store, Location(None, f"{tmp_path}//reports"), ledger_location(f"{tmp_path}//ledger", tmp_path))
    assert ledger_location("s3://bkt/ledger/", tmp_path) == ledger_location("s3://bkt//ledger", tmp_path)


def test_adopting_into_the_ledger_of_another_tenant_is_refused_and_copies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.commands.ledger_commands import adopt_command

    _old_ledger(tmp_path / "reports")
    ledger = tmp_path / "ledger"
    check_stamp(ObjectStore(None), Location(None, str(ledger)), TenantStamp.of("https://api.fin.com", "a"),
                create=True)
    monkeypatch.setenv("KYC_ATTACH_LEDGER_URI", str(ledger))
    monkeypatch.setenv("FIN_API_URL", "https://api.fin.com")
    monkeypatch.setenv("FIN_CLIENT_ID", "b")
    with pytest.raises(SetupError, match="another client id"):
        adopt_command(str(tmp_path / "reports"))
    assert [p.name for p in ledger.iterdir()] == ["_tenant.json"]
    monkeypatch.setenv("FIN_CLIENT_ID", "a")
    assert adopt_command(str(tmp_path / "reports"))["copied"] == 3
