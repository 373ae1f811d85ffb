"""The details a document was attached with, as keyed digests: which fields differ, never their values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from transforms.document_details import detail_digests, differing_fields
from transforms.exactly_once import FileContent
from transforms.models import Document, FileRef

SECRET = bytes(range(32))
KEY = "k" * 64
CONTENT = {"s3://b/f": FileContent("a" * 64, "e1", 10), "s3://b/r": FileContent("b" * 64, "e2", 20)}


def _doc(**change: object) -> Document:
    refs = (FileRef(1, "s3://b/f", "FRONT"), FileRef(2, "s3://b/r", "BACK"))
    doc = Document("c1", "p1", None, "identifying", "NATIONAL_ID", "L01X00T47", "DEU", "2020-01-01", "2030-01-01",
                   refs)
    return dataclasses.replace(doc, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"number": "L01X00T48"}, ["document_number"]),
        ({"expiry_date": "2031-01-01"}, ["expiry_date"]),
        ({"issue_date": "2021-01-01"}, ["issue_date"]),
        ({"country": "AUT"}, ["country"]),
        ({"number": None}, ["document_number"]),
        ({"number": "L01X00T48", "expiry_date": "2031-01-01"}, ["document_number", "expiry_date"]),
        ({"files": (FileRef(1, "s3://b/f", "BACK"), FileRef(2, "s3://b/r", "FRONT"))}, ["side"]),
        ({"files": (FileRef(7, "s3://b/r", "BACK"), FileRef(9, "s3://b/f", "FRONT"))}, []),  # rows reordered
        ({}, []),
    ],
)
def test_differing_fields_names_what_changed(change: dict[str, object], named: list[str]) -> None:
    attached = detail_digests(SECRET, KEY, _doc(), CONTENT)
    assert differing_fields(attached, detail_digests(SECRET, KEY, _doc(**change), CONTENT)) == named


def test_a_record_without_digests_or_of_another_secret_names_nothing() -> None:
    now = detail_digests(SECRET, KEY, _doc(number="other"), CONTENT)
    assert differing_fields(None, now) == []
    assert differing_fields({}, now) == []
    # the ledger's secret was lost and made again: every digest differs, and none of that is a correction
    assert differing_fields(detail_digests(bytes(32), KEY, _doc(), CONTENT), now) == []


def test_digests_hold_no_value_and_depend_on_the_secret_and_the_document() -> None:
    digests = detail_digests(SECRET, KEY, _doc(), CONTENT)
    text = json.dumps(digests)
    for value in ("L01X00T47", "DEU", "2020-01-01", "2030-01-01", "FRONT"):
        assert value not in text
    assert detail_digests(bytes(32), KEY, _doc(), CONTENT)["document_number"] != digests["document_number"]
    # equal numbers of two documents do not give equal digests: the ledger links nothing across documents
    assert detail_digests(SECRET, "j" * 64, _doc(), CONTENT)["document_number"] != digests["document_number"]
