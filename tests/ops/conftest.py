"""Fixtures of the ops tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.support.fanout_world import POOL, FanOutWorld, worker_env
from bench.support.prefect_server import prefect_server


@pytest.fixture(scope="session")
def two_workers(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, fin_sandbox: Any
                ) -> Iterator[FanOutWorld]:
    """A real ``prefect server start`` with deployments/prefect.yaml applied and two process workers on the
    pool, shared by every fan-out test (starting them costs ~25 s)."""
    home = tmp_path_factory.mktemp("prefect-fanout")
    with prefect_server(home) as server:
        server.cli("work-pool", "create", POOL, "--type", "process")
        out = server.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
        assert "attach-shard" in out
        dirs = [home / "work-w1", home / "work-w2"]
        with server.worker(POOL, worker_env(server, fin_sandbox.url, dirs[0]), name="w1", limit=2) as w1, \
                server.worker(POOL, worker_env(server, fin_sandbox.url, dirs[1]), name="w2", limit=2) as w2:
            yield FanOutWorld(server, [w1.pid, w2.pid], dirs)
