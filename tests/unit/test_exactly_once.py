"""The exactly-once rule, one row of the table per case: the ledger's state, the evidence, the operator's choice."""

import pytest

from transforms.exactly_once import (
    DocState,
    Evidence,
    FileContent,
    Next,
    Policy,
    after_lost_response,
    before_send,
    document_key,
    etag_document_key,
    partition_of,
)
from transforms.models import Document, FileRef

DEFAULT = Policy()
REATTACH = Policy(allow_reattach=True)
RESEND = Policy(resend_unknown=True)
TRUST = Policy(trust_initiated_as_not_applied=True)
S, E = DocState, Evidence


@pytest.mark.parametrize(
    ("state", "evidence", "policy", "expected"),
    [
        (None, E.none, DEFAULT, Next.send),  # never sent
        (S.failed, E.none, DEFAULT, Next.send),  # refused or ran out of retries: not applied
        (S.attached, E.none, DEFAULT, Next.skip_attached),
        (S.attached, E.applied, RESEND, Next.skip_attached),  # resending unknowns never resends attached ones
        (S.attached, E.none, REATTACH, Next.send),
        (S.in_flight, E.applied, DEFAULT, Next.record_attached),  # an earlier run's send took effect
        (S.unknown, E.applied, DEFAULT, Next.record_attached),  # the status moved late: now it is known
        (S.in_flight, E.untouched, DEFAULT, Next.report_unknown),  # "still INITIATED" proves nothing
        (S.unknown, E.untouched, DEFAULT, Next.report_unknown),
        (S.in_flight, E.none, DEFAULT, Next.report_unknown),
        (S.in_flight, E.untouched, TRUST, Next.send),  # the operator confirmed the status behaviour with Fin
        (S.in_flight, E.none, TRUST, Next.report_unknown),  # trust covers INITIATED only
        (S.unknown, E.none, RESEND, Next.send),  # asked for
        (S.in_flight, E.applied, RESEND, Next.record_attached),  # never resend what is proven applied
    ],
)
def test_before_send(state: DocState | None, evidence: Evidence, policy: Policy, expected: Next) -> None:
    assert before_send(state, evidence, policy) is expected


@pytest.mark.parametrize(
    ("evidence", "attempts", "policy", "expected"),
    [
        (E.applied, 1, DEFAULT, Next.record_attached),
        (E.applied, 6, TRUST, Next.record_attached),
        (E.untouched, 1, DEFAULT, Next.report_unknown),  # the default: no resend on "still INITIATED"
        (E.untouched, 1, RESEND, Next.report_unknown),  # --resend-unknown is for earlier runs' sends, not this one
        (E.untouched, 1, TRUST, Next.send),
        (E.untouched, 6, TRUST, Next.report_failed),  # trusted as not applied, and no attempts left
        (E.none, 1, TRUST, Next.report_unknown),
    ],
)
def test_after_lost_response(evidence: Evidence, attempts: int, policy: Policy, expected: Next) -> None:
    assert after_lost_response(evidence, attempts, 6, policy) is expected


def _doc(number: str = "X1", files: tuple[tuple[str, str | None], ...] = (("s3://b/f", "FRONT"), ("s3://b/r", "BACK")),
         doc_type: str = "NATIONAL_ID") -> Document:
    refs = tuple(FileRef(i + 1, uri, side) for i, (uri, side) in enumerate(files))
    return Document("c1", "p1", None, "identifying", doc_type, number, "DE", "2020-01-01", "2030-01-01", refs)


CONTENT = {"s3://b/f": FileContent("a" * 64, "e1", 10), "s3://b/r": FileContent("b" * 64, "e2", 20),
           "s3://b/g": FileContent("a" * 64, "e1", 10)}


def test_document_key_is_the_content_not_the_rows_or_keys_or_number() -> None:
    key = document_key("c1", "p1", _doc(), CONTENT)
    reordered = _doc(files=(("s3://b/r", "BACK"), ("s3://b/f", "FRONT")))
    same_content_other_key = _doc(files=(("s3://b/g", "FRONT"), ("s3://b/r", "BACK")))
    assert document_key("c1", "p1", reordered, CONTENT) == key
    assert document_key("c1", "p1", same_content_other_key, CONTENT) == key
    assert document_key("c1", "p1", _doc(number="X2"), CONTENT) == key  # the number is not part of it


@pytest.mark.parametrize("change", ["etag", "size", "side"])
def test_document_key_survives_a_copy_and_a_side_swap(change: str) -> None:
    """A multipart copy gives the same bytes another ETag; a corrected mapping swaps FRONT and BACK: the same
    scans, so the same document."""
    key = document_key("c1", "p1", _doc(), CONTENT)
    doc, content = _doc(), dict(CONTENT)
    if change == "etag":
        content["s3://b/f"] = FileContent("a" * 64, "0123-2", 10)
    elif change == "size":  # no real copy changes the size; the hash alone speaks for the bytes
        content["s3://b/f"] = FileContent("a" * 64, "e1", 11)
    else:
        doc = _doc(files=(("s3://b/f", "BACK"), ("s3://b/r", "FRONT")))
    assert document_key("c1", "p1", doc, content) == key


@pytest.mark.parametrize("change", ["customer", "party", "type", "content", "file_set"])
def test_document_key_changes_with_each_part_of_the_identity(change: str) -> None:
    key = document_key("c1", "p1", _doc(), CONTENT)
    customer, party, doc, content = "c1", "p1", _doc(), dict(CONTENT)
    if change == "customer":
        customer = "c2"
    elif change == "party":
        party = "p2"
    elif change == "type":
        doc = _doc(doc_type="RESIDENCE_PERMIT")
    elif change == "content":
        content["s3://b/f"] = FileContent("c" * 64, "e1", 10)  # overwritten with other bytes
    else:
        doc = _doc(files=(("s3://b/f", "FRONT"), ("s3://b/g", "BACK")))  # one scan twice: not the same set
    assert document_key(customer, party, doc, content) != key


def test_etag_document_key_is_the_key_earlier_ledgers_recorded() -> None:
    # Recorded by the ETag-based rule (customer, party, category, type, each file's side, ETag and size):
    # ledgers hold this value, so it must not move.
    assert etag_document_key("c1", "p1", _doc(), CONTENT) == (
        "dbfe9ba3a2796b0d1c493f4522d0af17f9c79b5c93908c1ea5ae9a1e5a3aab7e")
    assert etag_document_key("c1", "p1", _doc(), CONTENT) != document_key("c1", "p1", _doc(), CONTENT)


def test_partition_is_fixed_and_case_insensitive() -> None:
    # A fixed value: the partition must never depend on a setting or change between versions.
    assert partition_of("0b8c6f3e-0000-4000-8000-000000000001") == "3d"
    assert partition_of("0B8C6F3E-0000-4000-8000-000000000001") == "3d"
