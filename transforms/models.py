"""Small value types shared by the transforms and the flow (dataclasses with slots: millions are made)."""

from __future__ import annotations

from dataclasses import dataclass

from transforms.codes import Reason, Status


@dataclass(slots=True)  # not frozen: frozen __init__ is ~3x slower, and millions are built
class FileRef:
    """One file (one manifest row) of a document."""

    row_number: int
    s3_uri: str
    side: str | None = None


@dataclass(slots=True)  # not frozen: frozen __init__ is ~3x slower, and millions are built
class Document:
    """One document of one party: what becomes one entry of an identifying/address/supporting array."""

    customer_id: str
    party_id: str | None
    party_email: str | None
    category: str
    type: str
    number: str | None
    country: str | None
    issue_date: str | None
    expiry_date: str | None
    files: tuple[FileRef, ...]
    document_id: str | None = None

    @property
    def row_numbers(self) -> tuple[int, ...]:
        """Manifest rows of this document, in file order."""
        return tuple(f.row_number for f in self.files)

    @property
    def party_key(self) -> str | None:
        """The party id when known, else the (lower-cased) email the flow resolves."""
        return self.party_id if self.party_id is not None else self.party_email

    def __repr__(self) -> str:
        # Never print the document number: reprs end up in logs and tracebacks.
        return (
            f"Document(customer_id={self.customer_id!r}, party_id={self.party_id!r}, type={self.type!r}, "
            f"category={self.category!r}, rows={self.row_numbers!r})"
        )


@dataclass(slots=True)  # not frozen: frozen __init__ is ~3x slower, and millions are built
class RowOutcome:
    """The final word on one manifest row."""

    row_number: int
    status: Status
    reason_code: Reason | None
    message: str | None
    uri: str | None = None
    http_status: int | None = None
    attempts: int = 0
