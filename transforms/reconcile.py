"""Settling an attach whose response was lost, from what the documented API shows (pure).

The API has no idempotency key and no list of attached documents. Its one documented signal is the
party's ``verification.status``: ``INITIATED`` until documents are attached, then ``REVIEWING``
(contract, section 6). That settles an attach only where every party was ``INITIATED`` before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INITIATED = "INITIATED"


def party_statuses(customer: Mapping[str, Any]) -> dict[str, str]:
    """Party id (lower-case) → verification status, from a ``GET /v2/customers/{id}`` body's ``data``."""
    return {
        str(p.get("id", "")).lower(): str((p.get("verification") or {}).get("status", ""))
        for p in customer.get("associated_parties") or []
    }


def all_initiated(statuses: Mapping[str, str], party_ids: Iterable[str]) -> bool:
    """Every party still waits for its first documents."""
    return all(statuses.get(p) == INITIATED for p in party_ids)


def settle(initiated_before: bool, statuses_now: Mapping[str, str], party_ids: Iterable[str]) -> bool | None:
    """Did the attach take effect? True, False, or None when the API cannot tell.

    True: every party left INITIATED since. False: every party is still INITIATED, so nothing was
    attached and sending again is safe. None: a party was past INITIATED before (its status moves on
    whatever we send) or the parties disagree.
    """
    ids = list(party_ids)
    if not initiated_before or not ids:
        return None
    if all(statuses_now.get(p) not in (None, "", INITIATED) for p in ids):
        return True
    if all_initiated(statuses_now, ids):
        return False
    return None
