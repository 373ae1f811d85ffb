"""Access and refresh tokens, with the contract's `YYYY-MM-DD HH:MM:SS+00` expiry instants."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REFRESH_TTL_SECONDS = 7 * 24 * 3600


def fin_instant(epoch: float) -> str:
    """Format an instant the way the Fin API does: `2025-12-28 10:34:45+00` (no `T`, not ISO 8601)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S+00")


@dataclass(slots=True)
class _Grant:
    client_id: str
    issued: float
    expires: float


class TokenStore:
    """Issues bearer tokens and checks them.

    Refresh tokens are single use (a refresh rotates them): the stricter reading of an undocumented point,
    so a client that passes here also passes against an API that rotates.
    """

    def __init__(self, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}

    def issue(self, client_id: str, *, revoke_previous: bool = False) -> dict[str, Any]:
        """Issue a fresh access and refresh token pair; return the documented response fields.

        ``revoke_previous`` (a fault): the client's earlier access tokens stop working, as gateways that keep one
        live access token per client do."""
        now = self.clock()
        if revoke_previous:
            for old in [t for t, g in self._access.items() if g.client_id == client_id]:
                del self._access[old]
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Grant(client_id, now, now + self.ttl_seconds)
        refresh_expires = now + max(REFRESH_TTL_SECONDS, self.ttl_seconds)
        self._refresh[refresh] = _Grant(client_id, now, refresh_expires)
        return {
            "access_token": access,
            "access_token_ttl": fin_instant(now + self.ttl_seconds),
            "refresh_token": refresh,
            "refresh_token_ttl": fin_instant(refresh_expires),
            "current_time": fin_instant(now),
        }

    def refresh(self, refresh_token: str, *, revoke_previous: bool = False) -> dict[str, Any] | None:
        """Trade a refresh token for a new pair, or None when it is unknown, used or expired."""
        grant = self._refresh.pop(refresh_token, None)
        if grant is None or self.clock() >= grant.expires:
            return None
        return self.issue(grant.client_id, revoke_previous=revoke_previous)

    def valid(self, access_token: str, expiry_override_seconds: float | None = None) -> bool:
        """Whether the access token is live; the override (a fault) kills it early, ttl notwithstanding."""
        grant = self._access.get(access_token)
        if grant is None:
            return False
        now = self.clock()
        if now >= grant.expires:
            del self._access[access_token]
            return False
        return expiry_override_seconds is None or now - grant.issued < expiry_override_seconds
