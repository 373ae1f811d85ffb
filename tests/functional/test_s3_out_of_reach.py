"""What an operator is told when S3 is out of reach: the reason, not "missing or access denied"."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import SetupError
from connectors.manifest import open_manifest
from connectors.mapping_file import load_mapping
from connectors.objects import ObjectStore
from connectors.s3 import S3Store, make_s3_client


@pytest.fixture
def unreachable_s3(monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """An S3 endpoint nobody listens on (a wrong AWS_ENDPOINT_URL, a VPC endpoint down)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # it wins, and other tests may have set it
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return ObjectStore(S3Store(make_s3_client()))


def test_an_unreachable_s3_is_not_reported_as_a_missing_manifest(unreachable_s3: ObjectStore,
                                                                 tmp_path: Path) -> None:
    """`kyc-attach validate s3://…` (and run) with S3 out of reach said "the S3 object cannot be read (missing or
    access denied)": the operator checks the key and the IAM policy while the endpoint is wrong. Every failure of
    the HEAD was called missing or denied; the reason (S3's code or the error's type, nothing more) belongs in
    the one line."""
    with pytest.raises(SetupError) as caught:
        open_manifest("s3://kyc-inbox/m.csv", store=unreachable_s3, cache_dir=tmp_path)
    assert "missing or access denied" not in str(caught.value)
    assert "EndpointConnectionError" in str(caught.value)


def test_an_unreachable_s3_is_not_reported_as_a_missing_mapping(unreachable_s3: ObjectStore) -> None:
    """The same for --mapping s3://…"""
    with pytest.raises(SetupError) as caught:
        load_mapping("s3://kyc-config/bank_a.yaml", unreachable_s3)
    assert "missing or access denied" not in str(caught.value)
    assert "EndpointConnectionError" in str(caught.value)
