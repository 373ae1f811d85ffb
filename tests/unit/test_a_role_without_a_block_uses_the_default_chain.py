"""A role that names no AwsCredentials block uses boto3's default credential chain (docs/operations.md), also when
another role names one: with only ``KYC_ATTACH_AWS_CREDENTIALS_BLOCK_REPORT`` set, source documents and manifests
are read with the default chain's keys, not the report block's."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

import connectors.aws_credentials as aws_credentials
from flows.settings import load_settings
from flows.stores import make_store


def _key_of(store: Any) -> str:
    return store._s3().client._request_signer._credentials.access_key  # type: ignore[no-any-return]


@pytest.mark.parametrize("role", ["documents", "manifests"])
def test_a_role_without_a_block_reads_with_the_default_chain_when_the_report_role_names_one(
    monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    monkeypatch.setattr(aws_credentials, "aws_session", lambda name: boto3.Session(
        aws_access_key_id="REPORTBLOCKKEY", aws_secret_access_key="s", region_name="eu-west-1"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3 keeps the first default session of the process
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "DEFAULTCHAINKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_REPORT", "report-writer")
    store = make_store(load_settings())

    assert _key_of(store) == "REPORTBLOCKKEY"
    assert _key_of(getattr(store, role)()) == "DEFAULTCHAINKEY"
