"""Small raw-ASGI helpers: JSON responses, reading bodies, and dropping a connection with no response.

The sandbox is plain ASGI rather than FastAPI: the handlers are few, it keeps the hot path cheap, and it
leaves no framework middleware between the app and the server that would turn an injected connection drop
into a polite 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected while we were reading its request."""


class DropConnection(Exception):
    """Raised by a handler to have the connection closed without any response."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def json_response(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON response (`body` as bytes: already encoded)."""
    payload = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    out = [_JSON, (b"content-length", str(len(payload)).encode())]
    if headers:
        out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": payload})


async def streamed_response(
    send: Send, status: int, content_type: bytes, length: int, chunks: Iterable[bytes], *, byte_interval_s: float = 0.0
) -> None:
    """Send a response whose body comes in `chunks` (`length` bytes in all); with `byte_interval_s`, one byte at a
    time that far apart, as a server that dribbles its answer."""
    headers = [(b"content-type", content_type), (b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for chunk in chunks:
        if not byte_interval_s:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            continue
        for i in range(len(chunk)):
            if _disconnected(send):
                raise ClientGone  # the client gave up: nobody is left to dribble to
            await send({"type": "http.response.body", "body": chunk[i:i + 1], "more_body": True})
            await asyncio.sleep(byte_interval_s)
    await send({"type": "http.response.body", "body": b""})


def _disconnected(send: Send) -> bool:
    """Whether the client hung up (uvicorn's request cycle, which `send` is a bound method of, says so; a server
    that does not is taken as connected)."""
    return bool(getattr(getattr(send, "__self__", None), "disconnected", False))


async def body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """Yield the request body as it arrives."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None (after draining it) when it is longer than `limit`."""
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(receive):
        size += len(chunk)
        if size <= limit:
            parts.append(chunk)
    return b"".join(parts) if size <= limit else None


async def drain(receive: Receive) -> None:
    """Read and discard the rest of the body, so an early answer reaches the client intact."""
    async for _ in body_chunks(receive):
        pass


async def drop_connection(send: Send) -> bool:
    """Close the client's connection without a response; False if the server gives no way to.

    ASGI has no message for "hang up". uvicorn's `send` is a bound method of its request cycle, which holds
    the transport, so we reach it there. Raising instead would make uvicorn answer 500, which is a
    different fault.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        return False
    transport.close()
    # Let the server's connection_lost run, so it sees the disconnect and does not try to answer 500.
    for _ in range(3):
        await asyncio.sleep(0)
    return True
