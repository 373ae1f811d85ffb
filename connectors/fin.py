"""The Fin API client: token upkeep, throttling, retries, streamed uploads, attach.

Decisions (retry? re-authenticate? outcome unknown?) come from the pure functions in
``transforms.retry``; this module only acts on them. It is handed its ``httpx.AsyncClient`` and its
rate limiters (``connectors.rate_limiter``), so one of each is shared by every request of a process.

A 429 is not a failure: it proves the request was not applied, so it is sent again without spending an
attempt, paced by its endpoint's limiter, whose rate the 429 may have cut. A time budget bounds it instead
(``throttle_budget_s``); only 5xx and transport errors spend attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.errors import (
    OutcomeUnknown,
    Refused,
    RowRejected,
    SetupError,
    TerminalError,
    Throttled,
    TransientError,
)
from connectors.rate_limiter import EndpointLimiters
from transforms.answers import UnexpectedAnswer, body_cap, read_answer, request_deadline_s, too_large
from transforms.api_errors import error_message, field_errors
from transforms.breaker import CircuitBreaker
from transforms.codes import Reason
from transforms.retry import Decision, classify, classify_attach, conflict_delay, next_delay, parse_retry_after
from transforms.run_timeline import Timeline, windows
from transforms.tokens import token_lifetime

ChunkSource = Callable[[], AsyncIterator[bytes]]

#: A Retry-After longer than this is taken as this: a broken header must not park an endpoint for hours.
RETRY_AFTER_MAX_S = 120.0
#: Width of the summary's request-rate buckets (``per_10s``), in seconds.
TIMELINE_S = 10
# A 401 renews the token; this many in a row, each with a renewed token, mean the API refuses us outright.
_REAUTHS_IN_A_ROW = 3
_MIN_TOKEN_LIFE_S = 0.05  # a floor for the learned lifetime, so one odd 401 cannot make every request renew

# 400 and 422 both mean "refused as invalid, nothing applied" (docs/reason-codes.md: api_validation_failed).
_REASON_BY_STATUS = {400: Reason.api_validation_failed, 422: Reason.api_validation_failed, 403: Reason.api_forbidden,
                     404: Reason.api_not_found}
# The token endpoints' answers that mean "these credentials are refused": the run cannot start.
_CREDENTIALS_REFUSED = frozenset({400, 401, 403, 422})


def small_request_slots(max_in_flight: int) -> int:
    """In-flight slots of the requests other than uploads, on top of the uploads' ``max_in_flight``."""
    return max(1, max_in_flight // 4)


@dataclass
class ApiStats:
    """What the API did during a run, for the summary and artifacts (no payloads, no ids)."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    slowest: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    throttled_seconds: float = 0.0  # wall time during which some request waited to be sent again after a 429
    _throttled_now: int = 0
    _throttled_since: float = 0.0

    # Requests per second and latency histograms for report.html (timeline.json), shared with the rest of the run;
    # the summary's per_10s is read from it too.
    per_second: Timeline = field(default_factory=Timeline)

    def note(self, endpoint: str, status: int | str, elapsed: float) -> None:
        """Count one response (or transport error) of ``endpoint`` that took ``elapsed`` seconds."""
        self.per_second.request(endpoint, status, elapsed, time.time())
        self.requests[endpoint] += 1
        self.statuses[str(status)] += 1
        self.seconds[endpoint] += elapsed
        self.slowest[endpoint] = max(self.slowest[endpoint], elapsed)

    def throttle_began(self) -> None:
        """A request got a 429 and waits to be sent again."""
        if self._throttled_now == 0:
            self._throttled_since = time.monotonic()
        self._throttled_now += 1

    def throttle_ended(self) -> None:
        """A request that had a 429 got another answer (or gave up)."""
        self._throttled_now -= 1
        if self._throttled_now == 0:
            self.throttled_seconds += time.monotonic() - self._throttled_since

    def as_dict(self) -> dict[str, Any]:
        """The summary's ``api`` section: counts, the 429 share, time throttled and the rate per 10 s."""
        total = sum(self.requests.values())
        throttled = self.statuses.get("429", 0)
        return {
            "throttled_429": throttled,
            "share_429": round(throttled / total, 4) if total else 0.0,
            "throttled_seconds": round(self.throttled_seconds, 1),
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "mean_seconds": {k: round(v / max(self.requests[k], 1), 4) for k, v in self.seconds.items()},
            "slowest_seconds": {k: round(v, 4) for k, v in self.slowest.items()},
            "per_10s": windows(self.per_second, TIMELINE_S),
        }


@dataclass
class _Token:
    access: str
    refresh: str | None
    refresh_at: float  # monotonic time after which we renew before the API would refuse it
    issued_at: float = field(default_factory=time.monotonic)


class FinClient:
    """A client for the four Fin endpoints this project uses.

    ``limiter`` paces requests per endpoint and learns the API's limit from its 429s; a ``Retry-After``
    holds back that endpoint only. The circuit breaker (5xx, drops) pauses the whole client.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        limiter: EndpointLimiters,
        max_in_flight: int = 16,
        max_attempts: int = 6,
        conflict_wait_s: float = 120.0,
        throttle_budget_s: float = 600.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        breaker: CircuitBreaker | None = None,
        request_timeout_s: float | None = None,
    ) -> None:
        self._http = http
        # One request's whole time (connect, send, the whole answer): httpx's timeouts bound each wait between
        # reads only, so an answer dribbled a byte at a time would hold a request for as long as the server likes.
        self._request_timeout_s = request_timeout_s or http.timeout.read or 60.0
        self._client_id = client_id
        self._secret = client_secret
        self._limiter = limiter
        # Uploads hold a connection as long as a file takes; the small requests (customer, attach) have slots of
        # their own, so one paced by its limiter leaves when paced, not when an upload ends: queued behind uploads,
        # two attaches paced 100 ms apart reached a gateway whose attach bucket holds one 30 ms apart (a 429).
        self._upload_slots = asyncio.Semaphore(max_in_flight)
        self._small_slots = asyncio.Semaphore(small_request_slots(max_in_flight))
        self._max_attempts = max_attempts
        self._conflict_wait_s = conflict_wait_s
        self._throttle_budget_s = throttle_budget_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._token: _Token | None = None
        self._token_life_s = math.inf  # shortened when the API refuses tokens before their stated expiry
        self._token_lock = asyncio.Lock()
        self._paused_until = 0.0
        self.breaker = breaker or CircuitBreaker()
        self.stats = ApiStats()

    def _slot(self, endpoint: str) -> asyncio.Semaphore:
        return self._upload_slots if endpoint == "upload" else self._small_slots

    @property
    def max_attempts(self) -> int:
        """Attempts one request may take on transient errors."""
        return self._max_attempts

    @property
    def limiter(self) -> EndpointLimiters:
        """The limiters every request of this client goes through (a shard run sets their ceiling to its share)."""
        return self._limiter

    # -- tokens ---------------------------------------------------------------------------------
    async def authenticate(self) -> None:
        """Get a first token; ``SetupError`` when the credentials are refused (the run cannot start)."""
        await self._bearer(force=True)

    async def _bearer(self, *, force: bool = False) -> _Token:
        async with self._token_lock:
            token = self._token
            now = time.monotonic()
            stale = token is not None and (now >= token.refresh_at or now - token.issued_at >= self._token_life_s)
            if token is None or force or stale:
                self._token = token = await self._new_token(token.refresh if token else None)
            return token

    async def _after_401(self, refused: _Token, sent_at: float) -> None:
        """Learn that tokens die sooner than the API says, and renew unless another request already did.

        Some gateways end tokens before their stated ``access_token_ttl``. The age at which one was refused
        bounds their real life; renewing at 80 % of it keeps later requests from meeting the 401 at all.
        """
        if self._token is refused:  # a token already replaced says nothing of the life (a renewal may end it)
            age = sent_at - refused.issued_at
            self._token_life_s = min(self._token_life_s, max(age * 0.8, _MIN_TOKEN_LIFE_S))
        async with self._token_lock:
            if self._token is refused:
                self._token = await self._new_token(refused.refresh)

    async def _new_token(self, refresh_token: str | None) -> _Token:
        """A token from the refresh token if the API still takes it, else from the client credentials.

        Token requests go through the one request loop (limiter, breaker, the one retry table), unauthorised.
        """
        if refresh_token:
            try:
                payload, _ = await self._request("token", "POST", "/v1/oauth/refresh-token",
                                                 json={"refresh_token": refresh_token}, authorised=False)
                return self._parse_token(payload)
            except (TerminalError, TransientError) as exc:
                if isinstance(exc, Throttled):
                    raise
                # a refresh token the API no longer takes: the client credentials get a new one
        body = {"client_id": self._client_id, "client_secret": self._secret.get_secret_value()}
        try:
            payload, _ = await self._request("token", "POST", "/v1/oauth/token", json=body, authorised=False)
        except TerminalError as exc:
            if exc.status_code is not None and 200 <= exc.status_code < 300:
                raise  # an answer that is no token answer (read_answer): its own error says what is wrong
            if exc.status_code in _CREDENTIALS_REFUSED and self._token is None:
                raise SetupError(f"token: the API refused the client credentials (HTTP {exc.status_code})") from None
            if exc.status_code in _CREDENTIALS_REFUSED:
                # Mid-run (revoked or rotated): not "cannot start". Raised before the request it was for was sent,
                # so that request's rows fail (nothing applied) and a later run sends them again.
                raise TerminalError(f"token: the API refused the client credentials mid-run (HTTP {exc.status_code})",
                                    status_code=exc.status_code, reason_code=Reason.api_error) from None
            raise TransientError(f"token: HTTP {exc.status_code}", status_code=exc.status_code) from None
        return self._parse_token(payload)

    def _parse_token(self, payload: dict[str, Any]) -> _Token:
        """The token of an answer ``read_answer`` found to be a token answer (its fields and lifetime checked)."""
        data = payload["data"] if isinstance(payload.get("data"), dict) else payload
        life = token_lifetime(payload).total_seconds()
        access, refresh = data["access_token"], data.get("refresh_token")
        # Renew with a margin so an in-flight request never carries a token that dies on the way.
        margin = min(60.0, life * 0.2)
        return _Token(access, refresh, time.monotonic() + life - margin)

    # -- the endpoints ----------------------------------------------------------------------------
    async def get_customer(self, customer_id: str) -> dict[str, Any]:
        """The customer's ``data`` object (with ``associated_parties``)."""
        payload, _ = await self._request("customer", "GET", f"/v2/customers/{customer_id}")
        data: dict[str, Any] = payload["data"]  # an object: read_answer checked it
        return data

    async def upload(
        self, customer_id: str, *, filename: str, content_type: str, size: int, chunks: ChunkSource
    ) -> tuple[str, int]:
        """Stream one file to the upload endpoint; returns its uri and the attempts it took.

        ``chunks`` is called once per attempt, so a retry re-reads the source from its start.
        """
        boundary = secrets.token_hex(16)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\n{customer_id}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        # httpx's own multipart encoder reads file objects synchronously inside the event loop;
        # this body streams the S3 source asynchronously with a known length instead.
        async def body() -> AsyncIterator[bytes]:
            yield head
            async for chunk in chunks():
                yield chunk
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        payload, attempts = await self._request("upload", "POST", "/v1/customers/upload", body=body,
                                                headers=headers, body_bytes=size)
        merged: dict[str, str] = {}
        for item in payload["data"]["files"]:  # a list of string maps: read_answer checked it
            merged.update(item)
        if "file" not in merged:
            raise TerminalError("upload: the response named no uri for the file", status_code=200)
        return merged["file"], attempts

    async def attach(self, customer_id: str, body: dict[str, Any], *,
                     before_send: Callable[[bool], Awaitable[None]] | None = None) -> int:
        """Submit one attach request; returns the attempts it took.

        ``before_send`` is awaited before each POST, when the request holds its rate token, its in-flight slot and
        its bearer token, just before that POST leaves (the caller's durable *in flight* record, with that POST's
        send time), with whether a 409 "attach in progress" was waited out before that POST; what it raises ends
        the request unsent.

        Raises ``OutcomeUnknown`` when the request may have been applied (5xx, dropped connection,
        read timeout, the deadline passed, a 2xx whose body is not the API's answer): the caller must reconcile,
        never resend blindly.
        """
        path = f"/v2/customers/{customer_id}/associated-parties/individual/attach"
        _, attempts = await self._request("attach", "POST", path, json=body, attach=True, before_send=before_send)
        return attempts

    # -- the request loop -------------------------------------------------------------------------
    async def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: ChunkSource | None = None,
        headers: dict[str, str] | None = None,
        attach: bool = False,
        authorised: bool = True,
        body_bytes: int = 0,
        before_send: Callable[[bool], Awaitable[None]] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """Send until the API gives an answer that settles the request; the answer's JSON object (checked by
        ``transforms.answers.read_answer``) and the attempts it took.

        ``authorised=False`` is for the token endpoints: no bearer token and no in-flight slot (a token is fetched
        while a request holds its slot; waiting for a second one could deadlock), and a 401 is final.

        Each attempt has a deadline for its whole time (``request_deadline_s``): past it the attempt counts as a
        read timeout. An answer is read up to its endpoint's cap (``transforms.answers.BODY_CAPS``) and no further.
        """
        refused_in_a_row = 0
        conflict_started: float | None = None
        conflicts = 0
        attempt = 0
        patience = _Patience()
        decide = classify_attach if attach else classify
        deadline_s = request_deadline_s(self._request_timeout_s, body_bytes)
        while True:
            attempt += 1
            await self._throttle(endpoint)
            sent = False
            started = time.monotonic()
            token: _Token | None = None
            complete = True
            try:
                async with self._slot(endpoint) if authorised else contextlib.nullcontext():
                    auth: dict[str, str] = {}
                    if authorised:
                        # The token is taken once a slot is ours: taken before, it could expire while the request
                        # queued behind slow uploads and come back 401.
                        token = await self._bearer()
                        auth = {"Authorization": f"Bearer {token.access}"}
                    if before_send is not None:
                        # Last, with everything else the request waits for in hand: a process killed between the
                        # caller's record and the POST then leaves only the record's own write as the window in
                        # which a request is recorded as sent and never reached the API.
                        # Before every POST, not only the first: the record's send time must be the one of
                        # the POST that may be applied (a status moved while a 409 was waited out, or before a
                        # resend after a 401 or a refused connection, is no proof that this POST was applied).
                        # Another attach for the customer was under way until just before a POST sent after a
                        # 409: the caller reads a whole-second status stamp of that POST's second as not its own.
                        await before_send(conflicts > 0)
                    request = self._http.build_request(
                        method,
                        path,
                        json=json,
                        content=body() if body else None,
                        headers={**(headers or {}), **auth},
                    )
                    sent, sent_at = True, time.monotonic()
                    resp, complete = await _send_bounded(self._http, request, deadline_s, body_cap(endpoint))
                status: int | None = resp.status_code
                error = None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                resp, status, error, sent = None, None, "connect", False
            except (httpx.TimeoutException, TimeoutError):  # TimeoutError: the attempt's deadline passed
                resp, status, error = None, None, "read_timeout"
            except (httpx.TransportError, httpx.DecodingError):  # DecodingError: a body garbled on the way
                resp, status, error = None, None, "dropped"
            self.stats.note(endpoint, status if status is not None else error or "error", time.monotonic() - started)
            self._watch_breaker(status)
            decision = decide(status, error=error, request_sent=sent)
            if decision is Decision.throttled and resp is not None:
                await self._on_429(endpoint, resp, patience, attempt)
                attempt -= 1  # a 429 proves nothing was applied: it costs time (the throttle budget), not an attempt
                continue
            if status is not None:
                self._limiter.on_success(endpoint)
            self._end_throttle(patience)

            if decision is Decision.success and resp is not None:
                try:
                    if not complete:
                        raise too_large(endpoint)
                    return read_answer(endpoint, resp.headers.get("content-type"), resp.content), attempt
                except UnexpectedAnswer as exc:
                    if attach:  # a gateway's page says nothing of whether the attach was applied
                        raise OutcomeUnknown(f"{exc} (HTTP {status})", status_code=status, attempts=attempt,
                                             reason_code=Reason.unexpected_answer) from None
                    # nothing to act on: the rows it was for fail (api_error) and a later run sends them again
                    raise TerminalError(f"{exc} (HTTP {status})", status_code=status, reason_code=Reason.api_error,
                                        attempts=attempt) from None
            if decision is Decision.reauth and token is not None:
                refused_in_a_row += 1
                if refused_in_a_row <= _REAUTHS_IN_A_ROW:
                    attempt -= 1  # a stale token is our doing, not the request's
                    await self._after_401(token, sent_at)
                    continue
            else:
                refused_in_a_row = 0
            if decision is Decision.wait_conflict:
                conflict_started = conflict_started or time.monotonic()
                remaining = self._conflict_wait_s - (time.monotonic() - conflict_started)
                if remaining > 0:
                    attempt -= 1  # 409 "attach in progress" is waited out, not spent
                    conflicts += 1
                    await self._sleep(conflict_delay(conflicts, remaining, rng=self._rng))
                    continue
                raise TransientError(f"{endpoint}: another attach stayed in progress", status_code=409,
                                     attempts=attempt)
            if decision is Decision.unknown_outcome:
                raise OutcomeUnknown(f"{endpoint}: outcome unknown ({status or error})", status_code=status,
                                     attempts=attempt)
            if decision is Decision.retry:
                if attempt >= self._max_attempts:
                    raise TransientError(f"{endpoint}: gave up after {attempt} attempts ({status or error})",
                                         status_code=status, attempts=attempt)
                await self._back_off(attempt, resp)
                continue
            # terminal, a 401 of a token request, or 401s past _REAUTHS_IN_A_ROW
            message = error_message(status or 0, resp.content if resp is not None else b"")
            reason = _REASON_BY_STATUS.get(status or 0, Reason.api_error)
            if status in (400, 422):  # refused as invalid, nothing applied: say which fields, so a part can go again
                raise Refused(f"{endpoint}: {message}", status_code=status, reason_code=reason, attempts=attempt,
                              field_errors=field_errors(resp.content if resp is not None else b""))
            raise TerminalError(f"{endpoint}: {message}", status_code=status, reason_code=reason, attempts=attempt)

    def _watch_breaker(self, status: int | None) -> None:
        pause_until = self.breaker.record(server_failure=status is None or status >= 500, now=time.monotonic())
        if pause_until is not None:
            self._paused_until = max(self._paused_until, pause_until)

    async def _throttle(self, endpoint: str) -> None:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            await self._sleep(pause)
        await self._limiter.acquire(endpoint)

    async def _on_429(self, endpoint: str, resp: httpx.Response, patience: _Patience, attempts: int) -> None:
        """Tell the endpoint's limiter; past the throttle budget raise ``Throttled``; wait out a Retry-After.

        The Retry-After holds back this endpoint only (through its limiter): other endpoints, under their
        own limits, go on.
        """
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), datetime.now(UTC))
        if retry_after is not None:
            retry_after = min(retry_after, RETRY_AFTER_MAX_S)
        self._limiter.on_throttle(endpoint, retry_after)
        now = time.monotonic()
        if patience.since is None:
            patience.since = now
            self.stats.throttle_began()
        if now - patience.since >= self._throttle_budget_s:
            self._end_throttle(patience)
            raise Throttled(f"{endpoint}: still throttled (429) after {self._throttle_budget_s:g} s",
                            status_code=429, attempts=attempts)
        if retry_after:
            await self._sleep(retry_after)

    def _end_throttle(self, patience: _Patience) -> None:
        if patience.since is not None:
            patience.since = None
            self.stats.throttle_ended()

    async def _back_off(self, attempt: int, resp: httpx.Response | None) -> None:
        """Wait before this request's next attempt (5xx, transport): exponential with jitter, this request only."""
        retry_after = None
        if resp is not None:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), datetime.now(UTC))
        await self._sleep(next_delay(attempt, retry_after, rng=self._rng))


@dataclass
class _Patience:
    """One request's run of 429s: when it began, so the throttle budget can end it."""

    since: float | None = None


async def _send_bounded(http: httpx.AsyncClient, request: httpx.Request, deadline_s: float,
                        cap: int) -> tuple[httpx.Response, bool]:
    """Send ``request`` and read its answer within ``deadline_s`` (``TimeoutError`` past it), reading at most
    ``cap`` bytes of the body; the response (its ``content`` what was read) and whether the body was whole.

    Past the cap the body is left unread and its connection closed: a 300 MiB answer costs ``cap`` bytes of memory.
    """
    async with asyncio.timeout(deadline_s):
        resp = await _send_unless_source_refused(http, request)
        try:
            parts: list[bytes] = []
            size = 0
            complete = True
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    complete = False
                    break
                parts.append(chunk)
        finally:
            await resp.aclose()
    # what httpx's own ``aread`` does with the whole body; here with the part read
    resp._content = b"".join(parts) if complete else b""
    return resp, complete


async def _send_unless_source_refused(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """``http.send``, except that a streamed body stopped on purpose comes out as its ``RowRejected``.

    An upload body raises ``RowRejected`` when its source is refused mid-request (the S3 object was replaced or
    deleted: ``source_changed``/``missing_object``). The aiohttp transport wraps that as a dropped connection,
    which would be retried for minutes and end ``retries_exhausted``; it is the row's outcome, never retried.
    """
    try:
        return await http.send(request, stream=True)
    except httpx.TransportError as exc:
        cause: BaseException | None = exc
        for _ in range(8):  # a few wrappers deep at most; a bound, as exception chains may loop
            if cause is None or isinstance(cause, RowRejected):
                break
            cause = cause.__cause__ or cause.__context__
        if not isinstance(cause, RowRejected):
            raise
        raise cause from None

