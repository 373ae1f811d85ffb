"""The ledger's lines as types (pure): a document's state and a file's upload, read from and written to the
JSON objects of the index's segments (``connectors.ledger``).

The objects keep their one-letter keys in a fixed order, so a line written today is byte for byte the line
earlier releases wrote, and every ledger they wrote (segments and compacted files alike) is read as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transforms.exactly_once import DocState


@dataclass(frozen=True, slots=True)
class DocRecord:
    """The last known state of one document."""

    state: DocState
    run_id: str  # the run that wrote this state (for attached: the run that attached it)
    request_id: str | None = None  # the POST that carried it (in flight, unknown, attached)
    sent_at: float | None = None  # epoch seconds, taken just before that POST
    initiated_before: bool = False  # every party of that POST was INITIATED before it
    http_status: int | None = None
    details: dict[str, str] | None = None  # keyed digests of the details it was sent with (none: older record)
    after_conflict: bool = False  # that POST went after a 409 "attach in progress" was waited out


@dataclass(frozen=True, slots=True)
class Send:
    """The POST a document's record speaks of: the run that made it, its id, when it left, whether every
    party it carried was INITIATED before it, and whether it went after a 409 "attach in progress" was waited
    out (what a later run reads the parties' statuses against)."""

    run_id: str
    request_id: str | None = None
    sent_at: float | None = None
    initiated_before: bool = False
    after_conflict: bool = False

    @classmethod
    def of(cls, record: DocRecord) -> Send:
        """The POST an earlier record speaks of."""
        return cls(record.run_id, record.request_id, record.sent_at, record.initiated_before,
                   record.after_conflict)


@dataclass(frozen=True, slots=True)
class DocLine:
    """One document's state as the ledger writes it (``"k": "doc"``)."""

    key: str  # transforms.exactly_once.document_key
    customer_id: str
    party_id: str
    state: DocState
    send: Send
    http_status: int | None = None
    written_at: float | None = None  # epoch seconds
    sources: tuple[str, ...] | None = None  # the document's source objects (s3 uris), for the history
    details: Mapping[str, str] | None = None  # transforms.document_details digests

    @property
    def record(self) -> DocRecord:
        """What a run knows of the document once this line is read."""
        s = self.send
        return DocRecord(self.state, s.run_id, s.request_id, s.sent_at, s.initiated_before, self.http_status,
                         dict(self.details) if self.details is not None else None, s.after_conflict)

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object (``d`` only when the details are known; ``w`` only for a POST sent after a 409
        was waited out, so every other line is the line earlier releases wrote)."""
        s = self.send
        obj: dict[str, Any] = {
            "k": "doc", "id": self.key, "c": self.customer_id, "p": self.party_id, "s": self.state.value,
            "run": s.run_id, "req": s.request_id, "at": s.sent_at, "init": s.initiated_before,
            "http": self.http_status, "t": self.written_at,
            "o": list(self.sources) if self.sources is not None else None,
        }
        if self.details is not None:
            obj["d"] = dict(self.details)
        if s.after_conflict:
            obj["w"] = True
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DocLine:
        """A line as any release wrote it (a compacted file gives absent or null optional fields)."""
        sources = obj.get("o")
        return cls(
            key=obj["id"], customer_id=obj["c"], party_id=obj["p"], state=DocState(obj["s"]),
            send=Send(obj["run"], obj.get("req"), obj.get("at"), bool(obj.get("init", False)),
                      bool(obj.get("w", False))),
            http_status=obj.get("http"), written_at=obj.get("t"),
            sources=tuple(sources) if sources is not None else None, details=obj.get("d"),
        )


@dataclass(frozen=True, slots=True)
class UploadLine:
    """One upload as the ledger writes it (``"k": "upload"``): the uri a source object at an ETag got, with the
    SHA-256 of its bytes (and their full-object CRC64NVME) when known."""

    customer_id: str
    source: str
    etag: str
    uri: str
    sha256: str | None = None
    crc64nvme: str | None = None  # written only with a SHA-256

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object."""
        obj: dict[str, Any] = {"k": "upload", "c": self.customer_id, "src": self.source, "etag": self.etag,
                               "uri": self.uri}
        if self.sha256:
            obj["sha"] = self.sha256
            if self.crc64nvme:
                obj["crc"] = self.crc64nvme
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> UploadLine:
        """A line as any release wrote it."""
        return cls(obj["c"], obj["src"], obj["etag"], obj["uri"], obj.get("sha") or None, obj.get("crc") or None)


LedgerLine = DocLine | UploadLine


def line_from_json(obj: Mapping[str, Any]) -> LedgerLine | None:
    """The typed line of a JSON object of the index (None: a kind this release does not read)."""
    kind = obj.get("k")
    if kind == "doc":
        return DocLine.from_json(obj)
    if kind == "upload":
        return UploadLine.from_json(obj)
    return None
