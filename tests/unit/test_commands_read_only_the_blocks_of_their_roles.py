"""A command reads only the AwsCredentials blocks of the roles it uses: ``kyc-attach report`` and ``history``
(report/ledger role) never read the documents or manifest block, and ``validate`` never the documents block. An
exported ``KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS`` (as docs/operations.md shows) otherwise makes these small
commands import prefect-aws and ask a Prefect server for a block they have no use for, and refuse when it cannot
be read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

import connectors.aws_credentials as aws_credentials
from connectors.objects import ObjectStore


@pytest.fixture()
def blocks_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    read: list[str] = []

    def session(name: str) -> Any:
        read.append(name)
        return boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="eu-west-1")

    monkeypatch.setattr(aws_credentials, "aws_session", session)
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS", "documents-reader")
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_MANIFEST", "manifest-reader")
    monkeypatch.setattr(ObjectStore, "exists", lambda self, loc: True)
    return read


def test_report_on_s3_reads_neither_the_documents_nor_the_manifest_block(blocks_read: list[str]) -> None:
    from flows.commands.report_command import find_report_page

    find_report_page("s3://reports/kyc/run-1", fetch=False)

    assert blocks_read == []


def test_history_reads_neither_the_documents_nor_the_manifest_block(blocks_read: list[str]) -> None:
    from flows.commands.ledger_commands import _index

    _index("s3://ledger/fin-api/")

    assert blocks_read == []


def test_validate_of_an_s3_manifest_reads_the_manifest_block_only(blocks_read: list[str]) -> None:
    from flows.settings import load_settings
    from flows.stores import make_store

    store = make_store(load_settings(), s3=True, roles=("manifest",))

    assert blocks_read == ["manifest-reader"] and store.documents() is store
