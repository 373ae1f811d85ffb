"""What the sandbox accepted, so tests can assert exactly-once from the server's side."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Upload:
    """One accepted file."""

    customer_id: str
    uri: str
    sha256: str
    size: int
    content_type: str
    filename: str

    def as_json(self) -> dict[str, Any]:
        """The record's JSON form."""
        return {
            "customer_id": self.customer_id,
            "uri": self.uri,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "filename": self.filename,
        }


class Record:
    """Accepted uploads and attachments, duplicate counts, and request/response tallies."""

    def __init__(self) -> None:
        self.uploads: list[Upload] = []
        self.by_uri: dict[str, Upload] = {}
        self.attachments: list[dict[str, Any]] = []
        self._seen_uploads: set[tuple[str, str]] = set()
        self._seen_attachments: set[tuple[Any, ...]] = set()
        # customer -> its parties with an identifying document attached: they may take other documents alone
        self.identified_parties: dict[str, set[str]] = {}
        self.duplicate_uploads = 0
        self.duplicate_attachments = 0
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()

    def add_upload(self, upload: Upload) -> None:
        """Keep an accepted upload; the same content for the same customer again counts as a duplicate."""
        key = (upload.customer_id, upload.sha256)
        if key in self._seen_uploads:
            self.duplicate_uploads += 1
        else:
            self._seen_uploads.add(key)
        self.uploads.append(upload)
        self.by_uri[upload.uri] = upload

    def add_attachment(self, customer_id: str, party_id: str, document: dict[str, Any]) -> None:
        """Keep one attached document (a validated body item plus its category).

        A duplicate is the same customer, party, category, type, number and the same multiset of file
        contents: what a blind retry of an attach whose answer was lost would produce.
        """
        files = [
            {"uri": f["uri"], "side": f.get("side"), "sha256": self.by_uri[f["uri"]].sha256}
            for f in document["files"]
        ]
        entry = {
            "customer_id": customer_id,
            "associated_party_id": party_id,
            "category": document["category"],
            "type": document["type"],
            "number": document.get("number"),
            "country": document.get("country"),
            "issue_date": document.get("issue_date"),
            "expiry_date": document.get("expiry_date"),
            "files": files,
        }
        key = (
            customer_id,
            party_id,
            entry["category"],
            entry["type"],
            entry["number"],
            tuple(sorted(f["sha256"] for f in files)),
        )
        if entry["category"] == "identifying":
            self.identified_parties.setdefault(customer_id, set()).add(party_id)
        if key in self._seen_attachments:
            self.duplicate_attachments += 1
        else:
            self._seen_attachments.add(key)
        self.attachments.append(entry)

    def as_json(self) -> dict[str, Any]:
        """The body of `GET /_sandbox/record`."""
        return {
            "uploads": [u.as_json() for u in self.uploads],
            "attachments": self.attachments,
            "duplicates": {"uploads": self.duplicate_uploads, "attachments": self.duplicate_attachments},
            "requests": dict(self.requests),
            "responses": dict(self.responses),
        }
