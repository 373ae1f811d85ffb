"""The send-time side of the rule "each party needs an identifying document" (transforms.identifying)."""

from __future__ import annotations

from transforms.identifying import has_identifying, parties_without_identifying
from transforms.models import Document, FileRef


def _doc(category: str, doc_type: str) -> Document:
    return Document("c", "p", None, category, doc_type, None, None, None, None, (FileRef(1, "s3://b/k"),))


def test_parties_without_identifying_documents_are_named_and_others_not() -> None:
    bill, visa, passport = _doc("address", "UTILITY_BILL"), _doc("supporting", "VISA"), _doc("identifying", "PASSPORT")
    by_party = {"b": [bill, visa], "a": [passport, bill], "c": [bill], "empty": []}
    assert parties_without_identifying(by_party) == ["b", "c"]
    assert has_identifying([visa, passport]) and not has_identifying([])
