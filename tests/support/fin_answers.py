"""A Fin API answered in the test's own process (``httpx.MockTransport``), for ``FinClient`` unit tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx

TOKEN_BODY = {"data": {"access_token": "tok", "refresh_token": "r", "access_token_ttl": 3600}}


class PostAnswers:
    """A ``MockTransport`` handler: the token endpoint always grants a token; every other request is a POST of
    the test's, counted in ``posts`` and answered by ``answer(n)`` (``n`` from 1)."""

    def __init__(self, answer: Callable[[int], httpx.Response]) -> None:
        self.answer = answer
        self.posts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/oauth"):
            return httpx.Response(200, json=TOKEN_BODY)
        self.posts += 1
        return self.answer(self.posts)
