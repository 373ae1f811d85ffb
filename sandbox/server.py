"""Running the sandbox: on a background thread for tests (`SandboxServer`), or blocking (`serve`)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sandbox.app import create_app
from sandbox.faults import Faults
from sandbox.world import World


class SandboxServer:
    """Serve an ASGI app with uvicorn on a background thread; a context manager.

    The socket is bound before the thread starts, so `port=0` yields a free port known at once (`.url`).
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind, start serving on a daemon thread and wait until uvicorn reports it is up."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fin-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread (in-flight requests get a second to finish)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    host: str,
    port: int,
    world_path: str | Path,
    faults_path: str | Path | None = None,
    admin: bool = False,
    **app_options: Any,
) -> None:
    """Load the world (and faults) files and serve the sandbox until interrupted; blocks."""
    world = World.load(world_path)
    faults = Faults.load(faults_path) if faults_path is not None else None
    app = create_app(world, faults, admin=admin, **app_options)
    print(
        f"Fin API sandbox on http://{host}:{port} ({len(world.customers)} customers, "
        f"admin routes {'on' if admin else 'off'})",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
