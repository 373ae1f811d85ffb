"""Fixtures of the e2e tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.refusing_s3_proxy import Refusals, refusing_proxy


@pytest.fixture()
def proxied_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Refusals]:
    """Every S3 call of the run goes through a proxy that refuses nothing until the test sets what it refuses."""
    refusals = Refusals(prefix="")
    with refusing_proxy(s3_endpoint, refusals) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        yield refusals
