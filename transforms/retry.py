"""Retry decisions as pure functions: the connectors act on them, the tests enumerate them.

Why attach differs from everything else: the API has no idempotency key, and a 5xx or a lost response may come
after the attach was committed (the sandbox's 'commit then fail' fault). Resending could attach twice, so an
attach in that state is ``unknown_outcome`` (reconcile with GET customer, or leave to a person), while a 429,
409, 401 or a failed connect provably did not apply and is safe to repeat.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Decision(StrEnum):
    """What the caller does next with a request."""

    success = "success"
    retry = "retry"  # spends one of the request's attempts
    throttled = "throttled"  # 429: not applied; send again when the endpoint's rate allows, no attempt spent
    reauth = "reauth"  # get a new token (once), then send again
    wait_conflict = "wait_conflict"  # 409: another attach for this customer is in flight; wait, not a failure
    terminal = "terminal"  # stop this item, report it failed
    unknown_outcome = "unknown_outcome"  # may have been applied: do not resend blindly


#: Error kinds for requests that got no HTTP response.
CONNECT = "connect"  # refused, DNS, connect timeout, TLS handshake: never reached the application
READ_TIMEOUT = "read_timeout"
DROPPED = "dropped"  # connection reset/closed after the request was written

RETRY_STATUSES = frozenset({408, 500, 502, 503, 504})


def _no_response(error: str | None, request_sent: bool) -> Decision:
    if error == CONNECT or not request_sent:
        return Decision.retry
    # read_timeout, dropped or anything unrecognised after the request went out: the server may have acted.
    return Decision.unknown_outcome


def classify(status_code: int | None, *, error: str | None = None, request_sent: bool = True) -> Decision:
    """Decision for an idempotent-enough call (token, upload, GET customer).

    ``status_code`` None means no response; ``error`` then says why (``connect``, ``read_timeout``,
    ``dropped``) and ``request_sent`` whether the request was written to the wire.
    """
    if status_code is None:
        # Sending these again is harmless (a read, a token, at worst an orphaned upload), so a lost
        # response is simply retried; only the attach must not be resent blindly.
        return Decision.retry
    if 200 <= status_code < 300:
        return Decision.success
    if status_code == 401:
        return Decision.reauth
    if status_code == 409:
        return Decision.wait_conflict
    if status_code == 429:
        return Decision.throttled
    if status_code in RETRY_STATUSES:
        return Decision.retry
    return Decision.terminal


def classify_attach(status_code: int | None, *, error: str | None = None, request_sent: bool = True) -> Decision:
    """Decision for the attach POST, where a 5xx, a redirect or a lost response may hide a committed attach.

    A redirect is never followed: a gateway may have applied the POST and sent us on (303 See Other), or
    forwarded nothing; either way only the parties' statuses can tell.
    """
    if status_code is None:
        return _no_response(error, request_sent)
    if 300 <= status_code < 400 or 500 <= status_code < 600:
        return Decision.unknown_outcome
    return classify(status_code, error=error, request_sent=request_sent)


def next_delay(
    attempt: int,
    retry_after: float | None,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rng: random.Random,
    retry_after_max: float = 120.0,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Exponential backoff with full jitter (uniform in [0, min(cap, base * 2**(attempt-1))]) spreads clients
    apart; a ``Retry-After`` the server sent is a floor, itself capped at ``retry_after_max`` so a hostile or
    broken header cannot park the run for hours.
    """
    exp = min(max(attempt - 1, 0), 62)  # beyond this the cap applies anyway; avoids float overflow
    delay = rng.uniform(0.0, min(cap, base * (2.0**exp)))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay


def conflict_delay(conflicts: int, remaining_s: float, *, rng: random.Random, base: float = 0.25,
                   cap: float = 8.0) -> float:
    """Seconds to wait after the ``conflicts``-th 409 in a row, never past the ``remaining_s`` of the 409 budget.

    An attach in progress may take a while: waits grow exponentially with full jitter (so requests that
    met the same 409 do not come back together), capped at ``cap``.
    """
    return max(0.0, min(next_delay(conflicts, None, base=base, cap=cap, rng=rng), remaining_s))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
