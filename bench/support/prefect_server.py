"""A real Prefect server on loopback (``prefect server start`` in a subprocess) and a worker, for ops tests.

Nothing is shared with the in-process test harness: the server has its own PREFECT_HOME (its own SQLite
database), and every CLI call and worker gets PREFECT_API_URL explicitly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrefectServer:
    """Handle on a running server: its API URL and the environment a CLI call or worker needs."""

    def __init__(self, api_url: str, home: Path) -> None:
        self.api_url = api_url
        self.home = home

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({"PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.home),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_CLI_PROMPT": "false"})
        env.update(extra)
        return env

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
        """Run a ``prefect`` CLI command against this server from the repository root; its output."""
        done = subprocess.run([*PREFECT, *args], cwd=ROOT, env=env or self.env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def api(self, fn: Any) -> Any:
        """``await fn(client)`` with a Prefect client of this server, from synchronous test code."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        async def go() -> Any:
            with temporary_settings({PREFECT_API_URL: self.api_url}):
                async with get_client() as client:
                    return await fn(client)

        return asyncio.run(go())

    @contextmanager
    def worker(self, pool: str, env: dict[str, str], *, name: str = "w1", limit: int | None = None
               ) -> Iterator[subprocess.Popen[bytes]]:
        """A ``prefect worker start`` process polling ``pool`` every second, stopped on exit."""
        args = [*PREFECT, "worker", "start", "--pool", pool, "--name", name, "--type", "process"]
        if limit:
            args += ["--limit", str(limit)]
        env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
        log = (self.home / f"worker-{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            _stop(proc)
            log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # our own session: the process and the runs it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def prefect_server(home: Path, *, startup_timeout: float = 120) -> Iterator[PrefectServer]:
    """Start ``prefect server start`` on 127.0.0.1 (a free port), wait until healthy, stop it afterwards."""
    port = free_port()
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=server.env(PREFECT_UI_ENABLED="false"), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not become healthy in time")
            time.sleep(0.5)
        yield server
    finally:
        _stop(proc)
        log.close()
