"""An HTTP proxy on loopback in front of the S3 server that, once switched, answers ``503 SlowDown`` to every
write under one key prefix, as S3 does to a prefix it is throttling; everything else passes through. It can also
refuse reads, refuse only a number of requests before passing again (throttling that ends), or answer another
error (``403 AccessDenied``, which no client retries).

Writes are counted per prefix, so a test can also measure how many PUTs a run's ledger makes.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Refusals:
    """What the proxy refuses: writes whose path (``/bucket/key``, path-style) starts with ``prefix``, once
    ``allowed`` of them have passed (None: never); ``methods`` name the requests counted as writes here (GET
    and HEAD to refuse reads), ``most`` ends the refusals after that many (None: no end), ``status`` and ``body``
    are the answer."""

    prefix: str
    allowed: int | None = None
    writes: int = 0  # requests under the prefix that reached the server
    refused: int = 0  # answered with the error
    methods: tuple[str, ...] = ("PUT", "POST")
    most: int | None = None
    status: int = 503
    body: bytes = SLOW_DOWN
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, method: str, path: str) -> bool:
        """Whether this request is answered with the error (and count it)."""
        if method not in self.methods or not unquote(path).startswith(self.prefix):
            return False
        with self.lock:
            spent = self.most is not None and self.refused >= self.most
            if self.allowed is not None and self.writes >= self.allowed and not spent:
                self.refused += 1
                return True
            self.writes += 1
            return False


@contextmanager
def refusing_proxy(upstream: str, refusals: Refusals) -> Iterator[str]:
    """Run the proxy in front of ``upstream`` (``http://host:port``); yields its own endpoint URL."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self._body()
            if refusals.refuse(self.command, self.path):
                self._answer(refusals.status, {"Content-Type": "application/xml"}, refusals.body)
                return
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():  # Host included: the request is signed with it
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = b"" if self.command == "HEAD" else resp.read()
                headers = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
                self._answer(resp.status, headers, data, head_length=resp.getheader("Content-Length"))
            finally:
                conn.close()

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, headers: dict[str, str], data: bytes, head_length: str | None = None) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            length = head_length if self.command == "HEAD" and head_length is not None else str(len(data))
            self.send_header("Content-Length", length)
            self.end_headers()
            if data and self.command != "HEAD":  # a HEAD answer has no body, whatever its length says
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            return  # request lines name S3 keys

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
