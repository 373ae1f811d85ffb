"""After a refused attach (400/422): field paths out of error bodies, and the plan of who fails and who goes again."""

from __future__ import annotations

import pytest

from transforms.api_errors import field_errors
from transforms.refusals import after_refusal, party_reasons

P = ("p0", "p1", "p2", "p3", "p4")


def test_field_errors_reads_the_documented_400_and_scrubs_values() -> None:
    body = {"status": 400, "message": "Validation failed",
            "data": {"associated_party_attachments[1].identifying_documents[0].number": "A1234567 is invalid"}}
    assert field_errors(body) == {
        "associated_party_attachments[1].identifying_documents[0].number": "*** is invalid"}


def test_field_errors_reads_422_string_maps_and_shaped_items() -> None:
    body = b'{"message": "x", "errors": [{"associated_party_attachments[0].type": "bad"}, {"field": "f", "msg": "m"}]}'
    assert field_errors(body) == {"associated_party_attachments[0].type": "bad", "f": "m"}


@pytest.mark.parametrize("body", [None, b"", b"not json", {"message": "Validation failed"}, {"data": {}},
                                  {"errors": ["free text only"]}])
def test_field_errors_empty_when_the_body_names_no_field(body: object) -> None:
    assert field_errors(body) == {}  # type: ignore[arg-type]


def test_party_reasons_are_relative_to_the_party_and_skip_paths_naming_none() -> None:
    errors = {
        "associated_party_attachments[2].identifying_documents[0].number": "invalid",
        "associated_party_attachments[2]": "refused",
        "associated_party_attachments[9].type": "out of range",
        "associated_party_attachments": "too many",
        "<field>": "odd",
    }
    assert party_reasons(errors, 5) == {2: ["identifying_documents[0].number: invalid", "refused"]}


def test_a_named_party_is_refused_and_the_rest_resent_together() -> None:
    plan = after_refusal(P, {"associated_party_attachments[3].address_documents[0].type": "bad"})
    assert plan.refused == {"p3": ["address_documents[0].type: bad"]}
    assert plan.resend == [("p0", "p1", "p2", "p4")]


def test_every_party_named_leaves_nothing_to_resend() -> None:
    plan = after_refusal(("a", "b"), {"associated_party_attachments[0]": "x", "associated_party_attachments[1]": "y"})
    assert set(plan.refused) == {"a", "b"} and plan.resend == []


def test_a_refusal_naming_no_party_halves_the_request() -> None:
    plan = after_refusal(P, {"associated_party_attachments": "Validation failed"})
    assert plan.refused == {}
    assert plan.resend == [("p0", "p1"), ("p2", "p3", "p4")]


def test_a_lone_party_refused_without_names_is_refused() -> None:
    assert after_refusal(("only",), {}).refused == {"only": []}
    assert after_refusal(("only",), {}).resend == []


@pytest.mark.parametrize("size", range(1, 11))
@pytest.mark.parametrize("bad", [0, 4, 9])
def test_halving_isolates_one_unnamed_bad_party_with_few_requests(size: int, bad: int) -> None:
    """Simulate an API that refuses, naming nothing, any request holding the bad party."""
    parties = tuple(f"p{i}" for i in range(size))
    bad_id = f"p{bad}" if bad < size else None
    queue, sent, accepted, refused = [parties], 0, set(), set()
    while queue:
        req = queue.pop(0)
        sent += 1
        if bad_id not in req:
            accepted.update(req)
            continue
        plan = after_refusal(req, {})
        refused.update(plan.refused)
        queue[:0] = plan.resend
    assert refused == ({bad_id} if bad_id else set())
    assert accepted == set(parties) - refused
    assert sent <= 1 + 2 * max(1, size.bit_length())
