"""Nothing personal or secret leaks: not into logs (every logger at DEBUG), reports, ledger, payloads or Prefect.

The corpus runs (one real, one dry) were made with httpx, httpcore, botocore, boto3, urllib3, prefect and our
own loggers at DEBUG, captured to a file. This test reads everything the runs wrote anywhere a person or a
tool can see it and looks for the manifest's document numbers and emails, the client secret and the tokens.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from tests.hostile.helpers import CorpusRun, world

pytestmark = pytest.mark.slow


def _needles(run: CorpusRun) -> dict[str, str]:
    """What must never appear, each with a label to report instead of the value itself."""
    out: dict[str, str] = {}
    for i, row in enumerate(run.rows, start=1):
        number = row["document_number"].strip()
        if len(number) >= 6 and not set(number) <= {"X"}:  # the 5000-X cell is not a recognisable number
            out[number] = f"document_number of row {i}"
        email = row["associated_party_email"].strip()
        if email:
            out[email] = f"email of row {i}"
            out[email.lower()] = f"email of row {i} (lower-cased)"
    for customer in world()["customers"]:
        for party in customer["associated_parties"]:
            out[party["email"]] = "a party's email (world)"
    out[run.secret] = "client secret"
    for n, token in enumerate(run.tokens):
        out[token] = f"token #{n}"
    return out


def _s3_texts(run: CorpusRun) -> dict[str, str]:
    from connectors.s3 import make_s3_client

    client = make_s3_client()
    out = {}
    for prefix in ("reports/", "ledger/"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=run.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                data = client.get_object(Bucket=run.bucket, Key=obj["Key"])["Body"].read()
                out[f"s3://{run.bucket}/{obj['Key']}"] = data.decode("utf-8", errors="replace")
    return out


async def _prefect_texts() -> dict[str, str]:
    from prefect.client.orchestration import get_client

    out: dict[str, str] = {}
    async with get_client() as client:
        for art in await client.read_artifacts(limit=200):
            out[f"artifact {art.key}"] = json.dumps(art.data, default=str) + (art.description or "")
        for fr in await client.read_flow_runs(limit=200):
            out[f"flow run {fr.name} parameters"] = json.dumps(fr.parameters, default=str)
        for tr in await client.read_task_runs(limit=200):
            out[f"task run {tr.name}"] = json.dumps(tr.model_dump(mode="json"), default=str)
        offset = 0
        while page := await client.read_logs(limit=200, offset=offset):
            for n, log in enumerate(page, start=offset):
                out[f"prefect log {n}"] = log.message
            offset += len(page)
    return out


def _leaks(texts: dict[str, str], needles: dict[str, str]) -> list[str]:
    found = []
    for where, text in texts.items():
        for value, label in needles.items():
            if value and value in text:
                found.append(f"{label} in {where}")
    return sorted(set(found))


def test_the_detector_finds_what_it_looks_for(corpus_run: CorpusRun) -> None:
    """Positive control: the manifest itself holds the numbers and emails, so the search must find them there."""
    from tests.hostile.helpers import manifest_bytes

    found = _leaks({"manifest": manifest_bytes(corpus_run.bucket).decode()}, _needles(corpus_run))
    assert len(found) >= 20
    assert corpus_run.tokens, "no token captured: the token checks would prove nothing"


def test_debug_logs_carry_no_personal_data_or_secret(corpus_run: CorpusRun) -> None:
    text = corpus_run.log_path.read_text(encoding="utf-8", errors="replace")
    assert "httpcore" in text and "botocore" in text, "the capture saw nothing: the test would prove nothing"
    assert _leaks({"debug log": text}, _needles(corpus_run)) == []
    # Whatever the token: no bearer value and no client secret field is ever written.
    assert not re.search(r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}", text)
    assert "client_secret" not in text


def test_reports_ledger_and_payloads_carry_no_personal_data(corpus_run: CorpusRun) -> None:
    texts = _s3_texts(corpus_run)
    assert any(k.endswith("rows.csv") for k in texts) and any("payloads/" in k for k in texts)
    assert any(k.endswith("report.html") for k in texts)  # the page people read is checked like the rest
    assert any("/ledger/_documents/" in k for k in texts)
    assert _leaks(texts, _needles(corpus_run)) == []


def test_no_run_leaves_the_manifest_rows_on_local_disk(corpus_run: CorpusRun) -> None:
    """The run folder (the manifest's rows, the local copy of the S3 manifest, scratch files) goes when the run
    ends; the report is on S3."""
    runs = corpus_run.work_dir / "runs"
    assert runs.is_dir(), "no run made its folder: nothing proved"
    assert [p for p in corpus_run.work_dir.rglob("*") if p.is_file()] == []


def test_prefect_artifacts_parameters_and_logs_carry_no_personal_data(corpus_run: CorpusRun) -> None:
    texts = asyncio.run(_prefect_texts())
    assert any(k.startswith("artifact") for k in texts)
    assert _leaks(texts, _needles(corpus_run)) == []


def test_report_messages_name_fields_never_values(corpus_run: CorpusRun) -> None:
    from tests.support.scenario import read_report

    report = read_report(corpus_run.real)
    for want, got in zip(corpus_run.rows, report, strict=True):
        message: Any = got["message"] or ""
        for col in ("document_number", "associated_party_email", "s3_uri", "document_type", "country",
                    "issue_date", "expiry_date"):
            value = want[col].strip()
            if len(value) >= 4:
                assert value not in message, f"row {got['row_number']}: {col} value in message"


@pytest.mark.slow
def test_url_credentials_reach_neither_the_report_nor_prefect(prefect_harness: None, corpus_api_url: str,
                                                              bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI refuses a URL with user info at start-up; a run started another way (a deployment, here the flow
    called directly, dry and without client credentials so the API is not needed) still stores its settings
    without it."""
    from connectors.s3 import make_s3_client
    from flows.attach_flow import run_attach
    from tests.hostile.helpers import WHOLE_FILE

    host = corpus_api_url.split("://", 1)[1]
    monkeypatch.setenv("FIN_API_URL", f"http://kycuser:hunter2-pw@{host}")
    monkeypatch.setenv("KYC_ATTACH_WORK_URI", f"s3://w0rk:w0rk-pw@{bucket}/work")
    monkeypatch.delenv("FIN_CLIENT_ID")  # a dry run with credentials reads customers through the API
    monkeypatch.delenv("FIN_CLIENT_SECRET")
    summary = asyncio.run(run_attach(str(WHOLE_FILE / "utf8_bom.csv"), f"s3://{bucket}/reports",
                                          run_id="url-credentials", dry_run=True))

    assert summary["settings"]["api_url"] == f"http://{host}"  # the setting is stored: the search below means something
    client = make_s3_client()
    texts = {"summary (returned)": json.dumps(summary)}
    for obj in client.list_objects_v2(Bucket=bucket)["Contents"]:
        texts[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8", "replace")
    assert "reports/url-credentials/summary.json" in texts
    texts.update(asyncio.run(_prefect_texts()))
    secrets = {"hunter2-pw": "API URL password", "kycuser": "API URL user", "w0rk-pw": "work URI password"}
    assert _leaks(texts, secrets) == []


# Rejected rows whose reported cell broke its rule, by case (issue 16): whatever was typed there (an email as a
# party id, a document number as a type or a customer id, a formula) may be personal data; the report masks it.
MASKED_CELLS = {
    "masked_email_as_party_id": "associated_party_id",
    "masked_number_as_type": "document_type",
    "masked_number_as_customer_id": "customer_id",
    "formula_in_document_type": "document_type",
    "formula_in_s3_uri": "s3_uri",
}


def test_rejected_values_are_masked_in_every_report(corpus_run: CorpusRun) -> None:
    from tests.support.scenario import read_report

    report = read_report(corpus_run.real)
    needles: dict[str, str] = {}
    seen = set()
    for want, got in zip(corpus_run.rows, report, strict=True):
        column = MASKED_CELLS.get(want["case"])
        if column is None:
            continue
        seen.add(want["case"])
        assert got[column] == "***", f"row {got['row_number']}: {column} not masked"
        assert got["status"] == "rejected" and (got["message"] or "").startswith(f"{column}: ")
        needles[want[column].strip().lower()] = f"{column} of case {want['case']}"
    assert seen == set(MASKED_CELLS), "a masked case is missing from the corpus: nothing proved for it"
    # Case-insensitive: validation upper- or lower-cases some columns before the report copies them.
    texts = {k: v.lower() for k, v in _s3_texts(corpus_run).items()}
    texts["rows.parquet (parsed)"] = json.dumps(report, default=str).lower()
    texts["dry run rows.parquet (parsed)"] = json.dumps(read_report(corpus_run.dry), default=str).lower()
    assert _leaks(texts, needles) == []
