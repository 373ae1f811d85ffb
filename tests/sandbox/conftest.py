"""Fixtures for the sandbox's contract tests: one real uvicorn server on loopback for the session,
reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.server import SandboxServer
from tests.sandbox.helpers import CLIENT_ID, CLIENT_SECRET, Api, start_server


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    """The shared sandbox for the session."""
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    """A fresh client on a freshly reset sandbox."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


@pytest.fixture
def api(http: httpx.Client) -> Api:
    """A client holding a valid token."""
    r = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    return Api(http, r.json()["access_token"])


@pytest.fixture
def server_url(server: SandboxServer) -> str:
    """The shared sandbox's base URL."""
    return server.url
