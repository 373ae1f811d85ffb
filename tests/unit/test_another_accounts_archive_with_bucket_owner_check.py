"""A legacy archive in another AWS account, read with its own AwsCredentials block, while
``KYC_ATTACH_EXPECTED_BUCKET_OWNER`` names the report account: every S3 call carries that one account id, so S3
refuses (403) every read of the archive's bucket. There is no owner per role, so the owner check and a
cross-account documents (or manifest) role cannot be used together."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

import connectors.aws_credentials as aws_credentials
from flows.settings import load_settings
from flows.stores import make_store


@pytest.mark.xfail(strict=True, reason="one KYC_ATTACH_EXPECTED_BUCKET_OWNER for every role: a documents role in "
                   "another account is held to the report account's id, and S3 refuses its reads (needs an owner "
                   "per role, or none for a role with its own block: a design choice, not made here)")
def test_a_documents_role_in_another_account_is_not_held_to_the_report_accounts_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def session(name: str) -> Any:
        return boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="eu-west-1")

    monkeypatch.setattr(aws_credentials, "aws_session", session)
    monkeypatch.setenv("KYC_ATTACH_EXPECTED_BUCKET_OWNER", "111111111111")
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS", "legacy-archive-reader")
    store = make_store(load_settings())

    documents = store.documents()._s3()
    assert documents._owner.get("ExpectedBucketOwner") != "111111111111"
