"""Finding the customer's associated party a document names, by id or by email.

Fin's parties carry no names, so a manifest often names a party by its email. Emails compare by
:func:`email_key`: NFKC (a full-width ``＠`` or a ligature is the character it stands for) then case-folded
(``Straße`` is ``STRASSE``). An email that fits two parties of one customer names neither: the document is
refused ``ambiguous_party_email`` rather than sent to whichever party comes last.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from transforms.codes import Reason


def email_key(email: str) -> str:
    """The form two emails compare in: trimmed, NFKC-normalised, case-folded."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


@dataclass(frozen=True)
class PartyRefused:
    """Why a document's party cannot be used: the reason code and a message naming the field."""

    reason: Reason
    message: str


@dataclass(frozen=True)
class CustomerParties:
    """One customer's associated parties, looked up by id (lower-case) and by :func:`email_key`."""

    by_id: Mapping[str, str]  # lower-cased id -> the id as Fin writes it, lower-cased
    by_email: Mapping[str, tuple[str, ...]]  # email key -> ids of every party with that email

    @classmethod
    def of(cls, parties: Iterable[Mapping[str, Any]]) -> CustomerParties:
        """From the ``associated_parties`` of Fin's customer answer."""
        by_id: dict[str, str] = {}
        by_email: dict[str, list[str]] = {}
        for party in parties:
            pid = str(party.get("id", "")).lower()
            if not pid:
                continue
            by_id[pid] = pid
            email = party.get("email")
            if isinstance(email, str) and email.strip():
                ids = by_email.setdefault(email_key(email), [])
                if pid not in ids:
                    ids.append(pid)
        return cls(by_id, {k: tuple(v) for k, v in by_email.items()})

    def resolve(self, party_id: str | None, party_email: str | None) -> str | PartyRefused:
        """The id of the party a document names, or why none can be used.

        An id decides on its own; an email given with it must belong to that same party. An email alone must
        belong to exactly one party.
        """
        matches = self.by_email.get(email_key(party_email), ()) if party_email else ()
        if party_id:
            found = self.by_id.get(party_id.lower())
            if found is None:
                return PartyRefused(Reason.party_not_found,
                                    "associated_party_id: no such associated party for this customer")
            if party_email and found not in matches:
                return PartyRefused(Reason.party_mismatch,
                                    "associated_party_email: names a different party than associated_party_id")
            return found
        if not matches:
            return PartyRefused(Reason.party_not_found,
                                "associated_party_email: no such associated party for this customer")
        if len(matches) > 1:
            return PartyRefused(Reason.ambiguous_party_email,
                                f"associated_party_email: {len(matches)} associated parties of this customer have "
                                "it; name the party by associated_party_id")
        return matches[0]
