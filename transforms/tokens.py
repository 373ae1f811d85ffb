"""Token lifetimes from the Fin token response (docs/api-contract.md, section 1)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

#: The longest lifetime taken from a number of seconds (ten years; a longer one is taken as this).
_MAX_LIFE_S = 10 * 365 * 86400.0
#: The shortest lifetime taken: a token said to live less would be renewed before nearly every request.
_MIN_LIFE = timedelta(seconds=1)
_TOO_SHORT = ("token response: access_token_ttl is less than a second away; the token would be renewed before every "
              "request")
# Fin writes "2025-12-28 10:34:45+00" (no 'T', hour-only offset); accept ISO 8601 variants as well.
_FIN_TIME = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$")


def parse_fin_time(value: str) -> datetime:
    """Parse a Fin timestamp such as ``2025-12-28 10:34:45+00`` into an aware UTC datetime.

    A missing offset is taken as UTC. Raises ValueError for anything else.
    """
    m = _FIN_TIME.match(value)
    if not m:
        raise ValueError("not a Fin timestamp (YYYY-MM-DD HH:MM:SS+00)")
    day, clock, tz = m.groups()
    if tz is None or tz == "Z":
        tz = "+00:00"
    elif len(tz) == 3:
        tz += ":00"
    elif ":" not in tz:
        tz = tz[:3] + ":" + tz[3:]
    return datetime.fromisoformat(f"{day}T{clock}{tz}").astimezone(UTC)


def _instant(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"token response: {field} missing or not a string")
    return parse_fin_time(value)


def token_lifetime(body: Mapping[str, Any]) -> timedelta:
    """Remaining life of the access token: ``access_token_ttl - current_time`` (both from the server).

    Accepts the body itself or a body wrapped in ``{"data": {...}}``. Using the server's own clock for both
    ends makes the result immune to skew between our clock and Fin's.

    A lifetime that is not a finite positive time (``Infinity``, ``NaN``, ``1e400``, zero, an expiry before
    ``current_time``) raises ValueError: the token would be renewed before every request, or never. So does one
    shorter than a second (``0.001``).
    """
    data = body.get("data") if isinstance(body.get("data"), Mapping) else body
    assert isinstance(data, Mapping)
    ttl = data.get("access_token_ttl")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool):
        # some APIs send seconds; be lenient, but not with a number no lifetime can be
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError("token response: access_token_ttl is not a finite positive number of seconds")
        if ttl < _MIN_LIFE.total_seconds():
            raise ValueError(_TOO_SHORT)
        return timedelta(seconds=min(ttl, _MAX_LIFE_S))
    life = _instant(ttl, "access_token_ttl") - _instant(data.get("current_time"), "current_time")
    if life <= timedelta(0):
        raise ValueError("token response: access_token_ttl is not after current_time")
    if life < _MIN_LIFE:
        raise ValueError(_TOO_SHORT)
    return life
