"""Which party a document's id or email names among the customer's parties."""

from __future__ import annotations

import pytest

from transforms.codes import Reason
from transforms.parties import CustomerParties, PartyRefused, email_key

A, B, C = "a0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002", \
    "c0000000-0000-4000-8000-000000000003"


def parties(*emails: str | None) -> CustomerParties:
    return CustomerParties.of([{"id": pid.upper(), "email": e} for pid, e in zip((A, B, C), emails, strict=False)])


@pytest.mark.parametrize(("fin", "manifest"), [
    ("Jo@Example.com", "jo@example.COM"),
    ("jo@example.com", "ｊｏ＠ｅｘａｍｐｌｅ．ｃｏｍ"),  # full-width forms, as some keyboards type them
    ("strasse@example.de", "STRAßE@example.de"),  # case-folding, not lower-casing
    ("ﬁ@example.com", "fi@example.com"),  # a ligature is the letters it joins
])
def test_emails_compare_after_nfkc_and_case_folding(fin: str, manifest: str) -> None:
    assert email_key(fin) == email_key(manifest)
    assert parties(fin, "other@example.com").resolve(None, manifest) == A


@pytest.mark.parametrize("second", ["jo@example.com", "JO@example.com", "ｊｏ@example.com", " jo@example.com\u3000",
                                    "jo@examplE.com"])  # padded with an ASCII and an ideographic space; re-cased
def test_an_email_two_parties_share_names_neither(second: str) -> None:
    found = parties("jo@example.com", second, "kim@example.com").resolve(None, "Jo@example.com")
    assert found == PartyRefused(Reason.ambiguous_party_email, "associated_party_email: 2 associated parties of "
                                 "this customer have it; name the party by associated_party_id")


def test_an_id_decides_between_parties_sharing_an_email() -> None:
    shared = parties("jo@example.com", "JO@example.com")
    assert shared.resolve(B, "jo@example.com") == B
    assert shared.resolve(A, None) == A


def test_an_email_of_another_party_than_the_id_is_a_mismatch_and_unknown_ones_are_not_found() -> None:
    known = parties("jo@example.com", "kim@example.com")
    assert isinstance(refused := known.resolve(A, "kim@example.com"), PartyRefused)
    assert refused.reason is Reason.party_mismatch
    assert isinstance(refused := known.resolve(None, "nobody@example.com"), PartyRefused)
    assert refused.reason is Reason.party_not_found
    assert isinstance(refused := known.resolve(C, None), PartyRefused)
    assert refused.reason is Reason.party_not_found
    assert isinstance(refused := parties(None, "").resolve(None, "jo@example.com"), PartyRefused)
    assert refused.reason is Reason.party_not_found


def test_the_manifest_s_emails_are_normalised_as_party_emails_compare() -> None:
    from tests.unit.helpers import passport, validate

    rows = [passport(associated_party_id=None, associated_party_email=e)
            for e in ["STRAßE@Example.de", "ｊｏ＠example.com", "Jo@Example.com"]]
    got = validate(rows).column("associated_party_email").to_pylist()
    assert got == ["strasse@example.de", "jo@example.com", "jo@example.com"]
    assert got == [email_key(r["associated_party_email"]) for r in rows]
