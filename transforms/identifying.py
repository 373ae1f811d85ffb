"""Each party needs at least one identifying document in an attach (Fin's OpenAPI, docs/api-contract.md, section 7).

A party with only address or supporting documents is refused by the API, and in one request with other
parties it would sink them too. So such documents are rejected before anything is sent: at plan time from the
manifest (``transforms.grouping``) and again just before the request is built (``flows.attach_once``), when
parties are resolved and files checked. A party whose identifying document of the manifest was attached by an
earlier run may take its new documents alone (a nightly full export adds a bill): whether the API counts an
earlier identifying document is not documented, and if it does not, its refusal fails that party only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transforms.catalogue import Category
from transforms.models import Document

#: The report message of a document rejected under this rule (field names only, never values).
NO_IDENTIFYING_MESSAGE = ("associated_party: no identifying document of this party goes in this attach, and the "
                          "API takes address and supporting documents only with one")


def has_identifying(documents: Sequence[Document]) -> bool:
    """Whether at least one of the documents is an identifying document."""
    return any(d.category == Category.identifying.value for d in documents)


def parties_without_identifying(documents_by_party: Mapping[str, Sequence[Document]]) -> list[str]:
    """The parties (sorted) that have documents to send but no identifying document among them."""
    return sorted(p for p, docs in documents_by_party.items() if docs and not has_identifying(docs))
