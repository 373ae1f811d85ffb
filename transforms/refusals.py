"""After the API refused an attach request (400/422, nothing applied): which parties to fail, what to send again.

One party's bad document must not sink the other parties of its request (up to ten). When the refusal names
field paths under ``associated_party_attachments[i]``, party ``i`` is refused with those reasons and the others
go again in one request. When it names no party, the request is halved, and each half goes again, until the
refused party stands alone: about two requests per halving instead of one per party.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_PARTY_PATH = re.compile(r"^associated_party_attachments\[(\d+)\](?:\.(.+))?$")


@dataclass(frozen=True, slots=True)
class RefusalPlan:
    """What follows a refusal: parties refused for good (party id -> its field reasons, maybe none) and the
    groups of parties to send again, each as one request, in order."""

    refused: dict[str, list[str]] = field(default_factory=dict)
    resend: list[tuple[str, ...]] = field(default_factory=list)


def party_reasons(field_errors: Mapping[str, str], party_count: int) -> dict[int, list[str]]:
    """The field reasons of each party a refusal names, by the party's index in the request body.

    Paths are given relative to the party (``identifying_documents[0].number: invalid``), so a reason reads the
    same whichever request carried the party. Paths that name no party, or an index the request does not have,
    are left out.
    """
    out: dict[int, list[str]] = {}
    for path, why in field_errors.items():
        m = _PARTY_PATH.match(path)
        if m is None or int(m.group(1)) >= party_count:
            continue
        inner = m.group(2)
        out.setdefault(int(m.group(1)), []).append(f"{inner}: {why}" if inner else why)
    return out


def after_refusal(party_ids: Sequence[str], field_errors: Mapping[str, str]) -> RefusalPlan:
    """Plan what follows a refused request whose body listed ``party_ids`` in this order.

    Named parties are refused and the rest resent as one request; with no party named, a lone party is refused
    and a larger request is split in two halves that are resent one after the other.
    """
    named = party_reasons(field_errors, len(party_ids))
    if named:
        rest = tuple(p for i, p in enumerate(party_ids) if i not in named)
        return RefusalPlan({party_ids[i]: reasons for i, reasons in sorted(named.items())}, [rest] if rest else [])
    if len(party_ids) <= 1:
        return RefusalPlan({p: [] for p in party_ids}, [])
    half = len(party_ids) // 2
    return RefusalPlan({}, [tuple(party_ids[:half]), tuple(party_ids[half:])])
