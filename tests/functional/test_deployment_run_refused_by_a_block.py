"""A deployment run (no CLI start-up gate) whose AwsCredentials block cannot be read is refused before anything
is read or sent: it ends ``Failed`` with the one line the CLI prints, as every other refusal before sending does
(``flows.run_end.not_started``), not with an exception and its traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flows.attach_flow import attach_manifest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ONE_LINE = ("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS: AwsCredentials block 'no-such-reader' could not be read "
            "(not found on the Prefect server)")


def test_a_deployment_run_whose_documents_block_is_missing_ends_failed_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FIN_API_URL", "http://127.0.0.1:9")  # never reached: the run is refused first
    monkeypatch.setenv("FIN_CLIENT_ID", "client")
    monkeypatch.setenv("FIN_CLIENT_SECRET", "secret")
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS", "no-such-reader")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("customer_id\n")

    state = asyncio.run(attach_manifest(str(manifest), str(tmp_path / "reports"), run_id="refused-by-block",
                                        return_state=True))

    assert state.is_failed()
    assert state.message == ONE_LINE


def test_a_nightly_or_migration_run_whose_manifest_block_is_missing_ends_failed_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.migration import migration
    from flows.nightly import nightly

    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_MANIFEST", "no-such-reader")
    line = ONE_LINE.replace("DOCUMENTS", "MANIFEST")

    state = asyncio.run(nightly("s3://reports/kyc/", inbox="s3://inbox/manifests/", return_state=True))
    assert state.is_failed() and state.message == line

    state = asyncio.run(migration("s3://archive/part-1.csv", "s3://reports/kyc/", return_state=True))
    assert state.is_failed() and state.message == line


def test_a_nightly_run_without_an_inbox_or_with_a_malformed_setting_ends_failed_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.nightly import nightly

    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    state = asyncio.run(nightly(str(tmp_path / "reports"), return_state=True))
    assert state.is_failed() and state.message == "inbox: give an inbox or at least one carrier"

    monkeypatch.setenv("KYC_ATTACH_S3_SSE", "none")
    state = asyncio.run(nightly(str(tmp_path / "reports"), inbox=str(tmp_path), return_state=True))
    assert state.is_failed() and state.message is not None and "\n" not in state.message
    assert "SetupError" not in state.message and "none" not in state.message.split(":")[0]


def test_the_cli_gate_refuses_a_missing_documents_block_for_a_local_manifest_before_claiming_the_run_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Documents are on S3 whatever the manifest and report locations: the gate reads the block too, so the flow
    is never started with the CLI's claim on a run id it then cannot release."""
    from connectors.errors import SetupError
    from flows.start_gate import check_before_run

    monkeypatch.setenv("FIN_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FIN_CLIENT_ID", "client")
    monkeypatch.setenv("FIN_CLIENT_SECRET", "secret")
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS", "no-such-reader")
    manifest = Path(__file__).parents[1] / "fixtures" / "hostile" / "whole_file" / "utf8_bom.csv"  # well-formed

    with pytest.raises(SetupError) as refused:
        check_before_run(str(manifest), str(tmp_path / "reports"), run_id="r1", dry_run=False)

    assert str(refused.value) == ONE_LINE
    assert not (tmp_path / "reports" / "r1").exists()
