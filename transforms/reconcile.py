"""Settling an attach whose response was lost, from what the API shows — positive evidence only (pure).

The API has no idempotency key and no list of attached documents. Its one signal is the party's
``verification.status``: ``INITIATED`` until documents are attached, then ``REVIEWING`` (docs/api-contract.md,
section 6), with ``verification.updated_at``. That the status *moved after the send* is evidence the attach was
applied. That it did *not* move proves nothing: Fin may apply attaches late (its sibling attach endpoint is
asynchronous), so "still INITIATED" is only :attr:`Evidence.untouched`, which the exactly-once rule
(``transforms.exactly_once``) trusts only when the operator says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from transforms.exactly_once import Evidence

INITIATED = "INITIATED"


@dataclass(frozen=True, slots=True)
class PartyStatus:
    """A party's verification status and when it last changed (epoch seconds; None when the API omits it)."""

    status: str
    updated_at: float | None = None
    # the API wrote ``updated_at`` to the whole second (no fraction): a move within the second of a send
    # reads as the start of that second
    whole_second: bool = False


def party_statuses(customer: Mapping[str, Any]) -> dict[str, PartyStatus]:
    """Party id (lower-case) → status, from a ``GET /v2/customers/{id}`` body's ``data``."""
    out = {}
    for p in customer.get("associated_parties") or []:
        verification = p.get("verification") or {}
        updated_at = verification.get("updated_at")
        out[str(p.get("id", "")).lower()] = PartyStatus(str(verification.get("status", "")), _epoch(updated_at),
                                                        _whole_second(updated_at))
    return out


def _whole_second(value: Any) -> bool:
    """Whether an ISO-8601 timestamp has no fraction of a second (``12:00:05Z``, not ``12:00:05.250Z``)."""
    return isinstance(value, str) and "T" in value and not any(sep in value.partition("T")[2] for sep in ".,")


def _epoch(value: Any) -> float | None:
    """An ISO-8601 timestamp as epoch seconds; None when absent or unreadable (then only the status counts)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def all_initiated(statuses: Mapping[str, PartyStatus], party_ids: Iterable[str]) -> bool:
    """Every party still waits for its first documents."""
    return all((s := statuses.get(p)) is not None and s.status == INITIATED for p in party_ids)


def evidence(initiated_before: bool, sent_at: float | None, statuses_now: Mapping[str, PartyStatus],
             party_ids: Iterable[str], *, after_conflict: bool = False) -> Evidence:
    """What the parties' statuses now say about an attach sent at ``sent_at`` (epoch seconds).

    ``applied``: every party was INITIATED before the send and has moved on since, and where the API gives
    ``updated_at`` it is later than the send (a change from before the send is not this attach's doing) or,
    when the API gives it to the whole second, falls in the send's second or later: the party was INITIATED
    when read before the send, so a move stamped within that second is this send's (the caller makes sure no
    later send went to the party).
    ``after_conflict``: the send is a resend after a 409 was waited out, so another attach for the customer was
    under way just before it and may have moved the party within the send's second; a whole-second stamp then
    counts only from the second after the send's.
    ``untouched``: every party still INITIATED. ``none``: anything else (a party was past INITIATED already,
    so its status says nothing; or the parties disagree; or a party vanished).
    """
    ids = list(party_ids)
    if not initiated_before or not ids:
        return Evidence.none
    now = [statuses_now.get(p) for p in ids]
    if all(s is not None and s.status == INITIATED for s in now):
        return Evidence.untouched
    if all(s is not None and s.status not in ("", INITIATED) and _after(s, sent_at, after_conflict) for s in now):
        return Evidence.applied
    return Evidence.none


def _after(status: PartyStatus, sent_at: float | None, after_conflict: bool) -> bool:
    # Without a send time (a ledger from before the upgrade) or without updated_at, the move alone counts.
    if status.updated_at is None or sent_at is None:
        return True
    if status.whole_second:
        return status.updated_at >= math.floor(sent_at) + (1 if after_conflict else 0)
    return status.updated_at > sent_at
