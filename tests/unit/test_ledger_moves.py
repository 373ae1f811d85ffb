"""Each named move of a document's ledger state comes only from the states it names, and the ledger refuses
any other before it writes anything."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.ledger import DocRecord, Ledger, Send
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.exactly_once import DocState
from transforms.ledger_moves import Move, MoveRefused, moved

NONE, IN_FLIGHT, ATTACHED, FAILED, UNKNOWN = None, DocState.in_flight, DocState.attached, DocState.failed, \
    DocState.unknown
EVERY = [NONE, IN_FLIGHT, ATTACHED, FAILED, UNKNOWN]

# move → (the state it leads to, the states it may come from)
TABLE = {
    Move.sending: (IN_FLIGHT, EVERY),
    Move.answered: (ATTACHED, [IN_FLIGHT]),
    Move.shown_applied: (ATTACHED, [IN_FLIGHT, UNKNOWN]),
    Move.left_unknown: (UNKNOWN, [IN_FLIGHT, UNKNOWN]),
    Move.not_applied: (FAILED, [IN_FLIGHT]),
    Move.not_sent: (FAILED, [NONE, FAILED]),
    Move.carried: (ATTACHED, [ATTACHED]),
}
ALLOWED = [(m, s) for m, (_, sources) in TABLE.items() for s in sources]
REFUSED = [(m, s) for m, (_, sources) in TABLE.items() for s in EVERY if s not in sources]


def test_the_table_names_every_move() -> None:
    assert set(TABLE) == set(Move)


@pytest.mark.parametrize(("move", "state"), ALLOWED, ids=[f"{m}-from-{s}" for m, s in ALLOWED])
def test_an_allowed_move_leads_to_its_state(move: Move, state: DocState | None) -> None:
    assert moved(move, state) is TABLE[move][0]


@pytest.mark.parametrize(("move", "state"), REFUSED, ids=[f"{m}-from-{s}" for m, s in REFUSED])
def test_a_move_from_a_state_it_may_not_come_from_is_refused(move: Move, state: DocState | None) -> None:
    with pytest.raises(MoveRefused, match=f"cannot be recorded as {move.value}") as refused:
        moved(move, state)
    assert (refused.value.move, refused.value.state) == (move, state)


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger(ObjectStore(None), Location(None, str(tmp_path / "_documents")), linger_s=0)


def _lines(tmp_path: Path) -> list[str]:
    return [line for p in sorted((tmp_path / "_documents").rglob("seg-*")) for line in p.read_text().splitlines()]


def test_the_ledger_refuses_an_answer_for_a_document_it_never_recorded_in_flight(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)

    async def scenario() -> None:
        await ledger.answered("c1", {"doc-1": "p1"}, Send("r", "q1", 1.0), 200)

    with pytest.raises(MoveRefused):
        asyncio.run(scenario())
    asyncio.run(ledger.flush())
    assert ledger.document("doc-1") is None and _lines(tmp_path) == []


def test_a_refused_move_of_one_document_writes_none_of_its_request(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    send = Send("r", "q1", 1.0)

    async def scenario() -> None:
        await ledger.sending("c1", {"doc-1": "p1"}, send)
        # doc-2 was never in flight: the whole refusal is refused, and doc-1 stays in flight
        with pytest.raises(MoveRefused):
            await ledger.not_applied("c1", {"doc-1": "p1", "doc-2": "p1"}, run_id="r", http_status=400)
        await ledger.flush()

    asyncio.run(scenario())
    assert [(d.state if (d := ledger.document(k)) else None) for k in ("doc-1", "doc-2")] == [IN_FLIGHT, None]
    assert len(_lines(tmp_path)) == 1


def test_an_earlier_record_under_an_older_key_is_where_a_settling_move_comes_from(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    earlier_unknown = DocRecord(DocState.unknown, "older")
    earlier_attached = DocRecord(DocState.attached, "older")

    async def scenario() -> None:
        await ledger.shown_applied("c1", {"doc-1": "p1"}, Send("older"), earlier=earlier_unknown)
        await ledger.carried("c1", {"doc-2": "p1"}, earlier_attached)
        with pytest.raises(MoveRefused):
            await ledger.carried("c1", {"doc-3": "p1"}, earlier_unknown)

    asyncio.run(scenario())
    assert [(d.state if (d := ledger.document(k)) else None) for k in ("doc-1", "doc-2", "doc-3")] == [
        ATTACHED, ATTACHED, None]


@pytest.mark.parametrize("earlier", [ATTACHED, UNKNOWN, IN_FLIGHT])
def test_a_post_that_never_left_keeps_what_an_earlier_post_left(tmp_path: Path, earlier: DocState) -> None:
    """A token failure in a --resend-unknown or --allow-reattach run: recorded failed, the next plain run would send
    a document the earlier POST may have attached."""
    ledger = _ledger(tmp_path)
    send = Send("earlier", "q1", 1.0)

    async def scenario() -> None:
        await ledger.sending("c1", {"doc-1": "p1"}, send)
        if earlier is ATTACHED:
            await ledger.answered("c1", {"doc-1": "p1"}, send, 200)
        elif earlier is UNKNOWN:
            await ledger.left_unknown("c1", {"doc-1": "p1"}, send)
        await ledger.not_sent("c1", {"doc-1": "p1", "doc-2": "p1"}, run_id="later", http_status=None)
        await ledger.flush()

    asyncio.run(scenario())
    assert [(d.state if (d := ledger.document(k)) else None) for k in ("doc-1", "doc-2")] == [earlier, FAILED]
