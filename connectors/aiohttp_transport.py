"""httpx requests carried by aiohttp: the same ``httpx.AsyncClient`` API, a fraction of the CPU per request.

httpcore's pool polls every pooled socket (``has_expired`` → ``is_socket_readable``) each time it hands out a
connection, and its HTTP/1.1 layer is pure Python; aiohttp keeps its pool event-driven and parses in C. At a
few hundred requests per second that is ~30% of this process's CPU (docs/design/sharding.md).

``httpx_aiohttp`` does the carrying; this module only maps aiohttp's errors onto the httpx ones the retry
rules rely on, because the library's own map calls every ``ClientConnectionError`` a ``ConnectTimeout``
(“never sent”) — a server that drops the connection after an attach was sent must read as a dropped
request (outcome unknown), never as one that can be resent blindly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def httpx_error(exc: BaseException) -> type[httpx.TransportError] | None:
    """The httpx error an aiohttp one stands for (``None``: not a transport error)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout  # connecting, or waiting for a pooled connection: nothing was sent
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError  # refused, unresolvable, TLS handshake: nothing was sent
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout  # sent, no answer in time
    if isinstance(exc, aiohttp.ClientError):
        return httpx.ReadError  # dropped or garbled on the way: it may have been sent
    return None


def _remap(exc: BaseException) -> BaseException:
    """Map from the aiohttp error itself (the library's own mapping keeps it as the cause)."""
    origin = exc.__cause__ if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None else exc
    mapped = httpx_error(origin)
    return exc if mapped is None else mapped(f"{type(origin).__name__}: {origin}")


_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, httpx.TransportError)


class _Stream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except _ERRORS as exc:
            mapped = _remap(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except _ERRORS as exc:
            mapped = _remap(exc)
            if mapped is exc:
                raise
            raise mapped from exc


class Transport(AiohttpTransport):
    """``httpx_aiohttp.AiohttpTransport`` with errors mapped for exactly-once decisions."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except _ERRORS as exc:
            mapped = _remap(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        response.stream = _Stream(response.stream)  # type: ignore[arg-type]
        return response
