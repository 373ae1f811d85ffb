"""The moves of a document's ledger state (pure): each names what happened to the document, the state it
leads to, and the states it may come from. The ledger (``connectors.ledger``) refuses any other move, so a
record can never say, for instance, that a document was attached by an answer to a POST it never recorded
in flight.

A document with no record has the state ``None``. A record an earlier run left under an older key (ETag and
side, or a whole request of the first ledgers) is the state of a document the index does not know yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from transforms.exactly_once import DocState

_ANY: frozenset[DocState | None] = frozenset([None, *DocState])


class Move(StrEnum):
    """What happened to a document, as the ledger records it."""

    sending = "sending"  # a POST is about to carry it (whether to send is transforms.exactly_once's decision)
    answered = "answered"  # the API answered the POST that carried it: attached
    shown_applied = "shown_applied"  # its answer was lost and the parties' statuses moved after it was sent
    left_unknown = "left_unknown"  # sent, and nothing the API shows settles whether it took effect
    not_applied = "not_applied"  # the API refused the POST that carried it, or gave up without applying it
    not_sent = "not_sent"  # its request failed before the POST left (a token, a breaker): nothing reached Fin, so
    # only a document with nothing recorded, or failed, is recorded failed: what an earlier POST did stays
    carried = "carried"  # attached under an older key: recorded under its content key


@dataclass(frozen=True, slots=True)
class Rule:
    """Where a move leads and where it may come from."""

    to: DocState
    allowed_from: frozenset[DocState | None]


RULES: dict[Move, Rule] = {
    Move.sending: Rule(DocState.in_flight, _ANY),
    Move.answered: Rule(DocState.attached, frozenset([DocState.in_flight])),
    Move.shown_applied: Rule(DocState.attached, frozenset([DocState.in_flight, DocState.unknown])),
    Move.left_unknown: Rule(DocState.unknown, frozenset([DocState.in_flight, DocState.unknown])),
    Move.not_applied: Rule(DocState.failed, frozenset([DocState.in_flight])),
    Move.not_sent: Rule(DocState.failed, frozenset([None, DocState.failed])),
    Move.carried: Rule(DocState.attached, frozenset([DocState.attached])),
}


class MoveRefused(ValueError):
    """A move asked of a document from a state it may not come from (a fault of the caller, never of data)."""

    def __init__(self, move: Move, state: DocState | None) -> None:
        allowed = ", ".join(sorted(_name(s) for s in RULES[move].allowed_from))
        super().__init__(f"ledger: a document in state {_name(state)} cannot be recorded as {move.value} "
                         f"(only from {allowed})")
        self.move = move
        self.state = state


def moved(move: Move, state: DocState | None) -> DocState:
    """The state a document in ``state`` reaches by ``move``; raises :class:`MoveRefused` if it may not."""
    rule = RULES[move]
    if state not in rule.allowed_from:
        raise MoveRefused(move, state)
    return rule.to


def _name(state: DocState | None) -> str:
    return "none" if state is None else state.value
