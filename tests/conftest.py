"""Fixtures shared by the functional and e2e tests: a real S3 server, the Fin sandbox, Prefect.

Everything talks HTTP on loopback; nothing is patched. Expensive servers are session-scoped and reset
between tests.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server (moto's server mode) on loopback; boto3 reaches it through AWS_ENDPOINT_URL."""
    from connectors.local_s3 import local_s3_server

    with local_s3_server() as endpoint:
        yield endpoint


@pytest.fixture()
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    from connectors.s3 import make_s3_client

    name = f"t-{uuid.uuid4().hex[:12]}"
    make_s3_client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect database for the whole session (starting one costs ~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def fin_sandbox() -> Iterator[Any]:
    """The Fin sandbox over HTTP on loopback; tests load their own world through the admin routes."""
    from sandbox.app import create_app
    from sandbox.server import SandboxServer
    from sandbox.world import World

    empty = World.model_validate({"clients": [{"client_id": "test", "client_secret": "test-secret"}],
                                  "customers": []})
    with SandboxServer(create_app(empty, admin=True)) as server:
        yield server
