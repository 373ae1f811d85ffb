"""Documents into attach request bodies (docs/api-contract.md, section 4, and docs/seed/), and their attach keys."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.catalogue import Category
from transforms.models import Document

_ARRAY_OF = {
    Category.identifying.value: "identifying_documents",
    Category.address.value: "address_documents",
    Category.supporting.value: "supporting_documents",
}


@dataclass(frozen=True, slots=True)
class AttachRequest:
    """One POST to the attach endpoint: up to ``max_parties`` parties of one customer."""

    customer_id: str
    party_ids: tuple[str, ...]
    body: dict[str, Any]
    row_numbers: tuple[int, ...]
    attach_key: str

    def __repr__(self) -> str:
        # The body holds document numbers: keep it out of reprs, logs and tracebacks.
        return (
            f"AttachRequest(customer_id={self.customer_id!r}, party_ids={self.party_ids!r}, "
            f"rows={len(self.row_numbers)}, attach_key={self.attach_key[:12]!r})"
        )


def _document_json(doc: Document, uris: Mapping[str, str]) -> dict[str, Any]:
    files = []
    for f in doc.files:
        try:
            uri = uris[f.s3_uri]
        except KeyError:
            # Name the row, not the s3 key: keys can carry people's names.
            raise ValueError(f"no uploaded uri for row {f.row_number}") from None
        files.append({"uri": uri} if f.side is None else {"side": f.side, "uri": uri})
    if doc.category == Category.identifying.value:
        return {
            "type": doc.type,
            "number": doc.number,
            "country": doc.country,
            "issue_date": doc.issue_date,
            "expiry_date": doc.expiry_date,
            "files": files,
        }
    return {"type": doc.type, "files": [{"uri": f["uri"]} for f in files]}


def document_identity(doc: Document) -> dict[str, Any]:
    """What makes a document the same document across runs: not its row numbers, not its Fin uris."""
    return {
        "category": doc.category,
        "type": doc.type,
        "number": doc.number,
        "files": sorted([f.s3_uri, f.side or ""] for f in doc.files),
    }


def attach_key(customer_id: str, documents_by_party: Mapping[str, Sequence[Document]]) -> str:
    """sha256 hex over a canonical JSON of the customer, its parties and their documents' identities.

    Stable across runs (order of parties, documents and rows does not matter) and independent of Fin uris,
    so a resumed run recognises an attach it already sent.
    """
    canonical = {
        "customer_id": customer_id,
        "parties": sorted(
            [pid, sorted(json.dumps(document_identity(d), sort_keys=True) for d in docs)]
            for pid, docs in documents_by_party.items()
        ),
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def party_attachment(party_id: str, documents: Sequence[Document], uris: Mapping[str, str]) -> dict[str, Any]:
    """One element of ``associated_party_attachments``: the three arrays are always present."""
    entry: dict[str, Any] = {
        "associated_party_id": party_id,
        "identifying_documents": [],
        "address_documents": [],
        "supporting_documents": [],
    }
    for d in sorted(documents, key=lambda d: min(d.row_numbers)):
        entry[_ARRAY_OF[d.category]].append(_document_json(d, uris))
    return entry


def build_attach_requests(
    customer_id: str,
    documents_by_party: Mapping[str, Sequence[Document]],
    uris: Mapping[str, str],
    max_parties: int,
) -> list[AttachRequest]:
    """Attach requests for one customer: parties in sorted id order, ``max_parties`` per request.

    ``documents_by_party`` maps the resolved party id to its documents; ``uris`` maps each file's s3_uri to
    the uri the upload endpoint returned. Parties without documents are left out. Sorting the parties makes
    the split, and so every attach key, the same in every run.
    """
    if max_parties < 1:
        raise ValueError("max_parties must be at least 1")
    parties = sorted(pid for pid, docs in documents_by_party.items() if docs)
    out: list[AttachRequest] = []
    for i in range(0, len(parties), max_parties):
        chunk = parties[i : i + max_parties]
        body = {"associated_party_attachments": [party_attachment(p, documents_by_party[p], uris) for p in chunk]}
        rows = tuple(sorted(r for p in chunk for d in documents_by_party[p] for r in d.row_numbers))
        key = attach_key(customer_id, {p: documents_by_party[p] for p in chunk})
        out.append(AttachRequest(customer_id, tuple(chunk), body, rows, key))
    return out


def redact_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an attach body with every document number replaced by "***" (for dry-run output)."""
    out = copy.deepcopy(dict(body))
    for party in out.get("associated_party_attachments", []):
        for doc in party.get("identifying_documents", []):
            if "number" in doc:
                doc["number"] = "***"
    return out
