"""Fixtures shared by the functional and e2e tests: a real S3 server, the Fin sandbox, Prefect.

Everything talks HTTP on loopback; nothing is patched. Expensive servers are session-scoped and reset
between tests.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.support.scenario import DemoScenario


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


@pytest.fixture()
def demo_scenario(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Callable[..., DemoScenario]:
    """Stages a demo scenario: a demo world (and its faults) in the sandbox, its files and manifest in the
    test's bucket, and the run's settings pointed at both. Call it with the number of customers, the faults and
    any extra run settings (``KYC_ATTACH_...="value"``)."""
    from flows.commands.demo import demo_rows, demo_world
    from tests.support.scenario import DemoScenario, api_env, load_world, put_scenario

    def stage(customers: int = 3, faults: dict[str, Any] | None = None, **settings: str) -> DemoScenario:
        world = demo_world(customers=customers)
        rows, files = demo_rows(world, bucket)
        load_world(fin_sandbox.url, world, faults)
        api_env(monkeypatch, fin_sandbox.url, tmp_path, **settings)
        return DemoScenario(world, rows, put_scenario(bucket, rows, files), bucket, fin_sandbox.url)

    return stage


#: The folders whose files start Prefect workers and whole runs, first: with `pytest -n 3 --dist loadfile
#: --no-loadscope-reorder` (the Makefile's) the longest files are handed out first and the quick ones fill the ends,
#: instead of a fan-out file of four tests starting last, when the others are done.
_SLOWEST_FIRST = ("ops", "e2e", "hostile", "functional", "pacing", "sandbox", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def folder(item: pytest.Item) -> int:
        parts = Path(str(item.path)).parts
        return next((_SLOWEST_FIRST.index(p) for p in reversed(parts) if p in _SLOWEST_FIRST), len(_SLOWEST_FIRST))

    items.sort(key=folder)  # stable: a file's tests stay together and in their order
