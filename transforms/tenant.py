"""Which Fin tenant a ledger serves: its stamp, and whether a run's settings are that tenant.

A ledger's records only mean "attached" for the API they were sent to: documents attached at one tenant are
not at another. So a ledger holds one stamp, the API base URL written one way and the OAuth client id (never
the secret), and a run whose settings name another tenant is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalised_api_url(url: str) -> str:
    """The API base URL written one way: scheme and host lower-case, a default port dropped, no user info,
    query, fragment or trailing ``/`` (``HTTPS://Api.Fin.com:443/`` and ``https://api.fin.com`` are one API)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    return f"{scheme}://{netloc}{path}"


@dataclass(frozen=True)
class TenantStamp:
    """The tenant a ledger serves: the API base URL (normalised) and the client id."""

    api_url: str
    client_id: str

    @classmethod
    def of(cls, api_url: str, client_id: str) -> TenantStamp:
        """The stamp of a run's settings."""
        return cls(normalised_api_url(api_url), client_id.strip())

    @classmethod
    def from_json(cls, body: Any) -> TenantStamp:
        """A stamp read back from a ledger; ``ValueError`` when it is not an object or a field is missing or not
        text."""
        if not isinstance(body, dict):
            raise ValueError("tenant stamp: not a JSON object")
        api_url, client_id = body.get("api_url"), body.get("client_id")
        if not isinstance(api_url, str) or not isinstance(client_id, str):
            raise ValueError("tenant stamp: api_url and client_id must be text")
        return cls(api_url, client_id)

    def to_json(self) -> dict[str, str]:
        """The stamp as it is stored (no secret is part of it)."""
        return {"api_url": self.api_url, "client_id": self.client_id}

    def mismatch(self, other: TenantStamp) -> str | None:
        """What differs between the ledger's stamp (``self``) and a run's, in words that name neither value
        (a URL may be shown nowhere, a client id is a credential); None when they are one tenant."""
        if self.api_url != other.api_url:
            return "another API base URL"
        if self.client_id != other.client_id:
            return "another client id"
        return None
