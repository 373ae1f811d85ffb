"""A recording proxy on loopback in front of the S3 server: forwards every request unchanged and keeps, per
request, the method, the path and the access key id that signed it (from the ``Authorization`` header's
``Credential=AKID/...``), so a test sees from the server's side which credentials each request used."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str  # /bucket/key, without the query
    access_key: str | None


@dataclass
class SigningRecord:
    url: str
    requests: list[SignedRequest] = field(default_factory=list)

    def keys_for(self, method: str, path_prefix: str) -> set[str | None]:
        """The access keys that signed ``method`` requests under ``path_prefix``."""
        return {r.access_key for r in self.requests if r.method == method and r.path.startswith(path_prefix)}


@contextmanager
def signing_proxy(upstream: str) -> Iterator[SigningRecord]:
    """A proxy to ``upstream`` (http://host:port) on a free loopback port; yields its record (``.url``)."""
    target = urlparse(upstream)
    lock = threading.Lock()
    record = SigningRecord(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _forward(self) -> None:
            match = _CREDENTIAL.search(self.headers.get("Authorization", ""))
            with lock:
                record.requests.append(SignedRequest(self.command, self.path.split("?", 1)[0],
                                                     match.group(1) if match else None))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                answer = upstream_conn.getresponse()
                data = answer.read()
            finally:
                upstream_conn.close()
            self.send_response(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
