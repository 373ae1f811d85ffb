"""What was attached besides the scans, kept as keyed digests: a corrected document number, date, country or side
with the same scans is the same document (``transforms.exactly_once.document_key``), and the report says so.

The ledger must not hold personal data, so it keeps one HMAC-SHA256 per field, keyed by a random secret of the
ledger (created once) and bound to the document's key (equal numbers of two documents do not give equal
digests). Two digests are compared, never a value: a field that differs is named, its value never is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from transforms.exactly_once import FileContent
from transforms.models import Document

# Manifest column names: what a report may name. ``side`` is the sides each scan was attached with.
METADATA_FIELDS = ("document_number", "country", "issue_date", "expiry_date")
SIDE_FIELD = "side"
KEY_BYTES = 32
DIGEST_HEX = 32
SECRET_ID = "_secret"  # which secret made the digests: those of another secret compare to nothing


def detail_digests(secret: bytes, document_key: str, doc: Document,
                   content: Mapping[str, FileContent]) -> dict[str, str]:
    """One keyed digest per detail of ``doc`` (metadata fields and the side of each scan)."""
    values: dict[str, object] = {
        "document_number": doc.number, "country": doc.country, "issue_date": doc.issue_date,
        "expiry_date": doc.expiry_date,
        SIDE_FIELD: sorted([content[f.s3_uri].sha256, f.side or ""] for f in doc.files),
    }
    digests = {name: _mac(secret, document_key, name, value) for name, value in values.items()}
    digests[SECRET_ID] = hmac.new(secret, b"secret id", hashlib.sha256).hexdigest()[:16]
    return digests


def differing_fields(recorded: Mapping[str, str] | None, now: Mapping[str, str]) -> list[str]:
    """The details whose digests differ from those recorded when the document was attached, in manifest order.

    A record without digests (written before they were kept), or with digests of another secret (the ledger's
    secret was lost and made again), says nothing: no field is named.
    """
    if not recorded or recorded.get(SECRET_ID) != now.get(SECRET_ID):
        return []
    return [name for name in (*METADATA_FIELDS, SIDE_FIELD)
            if name in recorded and name in now and not hmac.compare_digest(recorded[name], now[name])]


def _mac(secret: bytes, document_key: str, name: str, value: object) -> str:
    message = json.dumps([document_key, name, value], separators=(",", ":"), ensure_ascii=False).encode()
    # 128 bits tell two values apart as well as 256 do here, at half the ledger's bytes
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:DIGEST_HEX]
