"""The exactly-once rule for documents (pure): what the ledger knows + what the API shows → what happens next.

The unit is the document (customer, party, type, content of its files), never the request: a request is
only a carrier, built from the documents that still need sending. The flow (``flows.attach_once``) asks
:func:`before_send` for every document of a customer, and :func:`after_lost_response` when a POST went out
and its answer did not come back; it then performs what was decided and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from transforms.models import Document

# The document index is partitioned by a hash of the customer id whose partition count never changes (it
# is not ``max_shards``, a setting): a document recorded under one configuration is found under every other.
PARTITIONS_HEX_DIGITS = 2  # 256 partitions


class DocState(StrEnum):
    """What the ledger last recorded about one document."""

    in_flight = "in_flight"  # written durably before the POST that carries it; the outcome is not known yet
    attached = "attached"
    failed = "failed"  # the API refused, or retries ran out without it being applied
    unknown = "unknown"  # sent, and nothing the API shows settles whether it took effect


class Evidence(StrEnum):
    """What the parties' statuses say about an attach whose answer was lost (``transforms.reconcile``)."""

    applied = "applied"  # every party was INITIATED and moved on after the send: positive evidence
    untouched = "untouched"  # every party still INITIATED: proves nothing unless an operator says it does
    none = "none"  # a party was past INITIATED before, the parties disagree, or the API could not be asked


class Next(StrEnum):
    """What to do with a document (or with a request whose answer was lost)."""

    send = "send"
    skip_attached = "skip_attached"  # attached by an earlier run: report skipped / already_attached
    record_attached = "record_attached"  # the attach took effect (positive evidence): record it, do not resend
    report_unknown = "report_unknown"
    report_failed = "report_failed"  # provably not applied (trusted INITIATED) and no attempts left


@dataclass(frozen=True, slots=True)
class Policy:
    """The operator's choices (CLI flags and settings)."""

    allow_reattach: bool = False  # --allow-reattach: send documents again although they were attached
    resend_unknown: bool = False  # --resend-unknown: send documents whose earlier outcome is unknown
    # KYC_ATTACH_TRUST_INITIATED_AS_NOT_APPLIED: "still INITIATED" means "not applied" (confirmed with Fin)
    trust_initiated_as_not_applied: bool = False


def before_send(state: DocState | None, evidence: Evidence, policy: Policy) -> Next:
    """What to do with a document before this run sends anything for it.

    ``state`` is the ledger's last record of the document (None: never sent); ``evidence`` matters only for
    a document an earlier run sent without learning the outcome (``in_flight`` or ``unknown``).
    """
    if state is None or state is DocState.failed:
        return Next.send
    if state is DocState.attached:
        return Next.send if policy.allow_reattach else Next.skip_attached
    if evidence is Evidence.applied:
        return Next.record_attached
    if policy.resend_unknown or (evidence is Evidence.untouched and policy.trust_initiated_as_not_applied):
        return Next.send
    return Next.report_unknown


def after_lost_response(evidence: Evidence, attempts: int, max_attempts: int, policy: Policy) -> Next:
    """What to do once a POST's answer was lost and the parties' statuses were read ``settle_delay`` later."""
    if evidence is Evidence.applied:
        return Next.record_attached
    if evidence is Evidence.untouched and policy.trust_initiated_as_not_applied:
        return Next.send if attempts < max_attempts else Next.report_failed
    return Next.report_unknown


@dataclass(frozen=True, slots=True)
class FileContent:
    """What identifies a file's content: the SHA-256 of its bytes, and the S3 ETag and size it was seen with.

    The hash is the identity (the same bytes under another key, or copied with another ETag, are the same file);
    ETag and size only rebuild the keys of ledgers written before the hash was recorded.
    """

    sha256: str
    etag: str
    size: int


def document_key(customer_id: str, party_id: str, doc: Document, content: Mapping[str, FileContent]) -> str:
    """The identity of a document across runs, manifests and jobs (sha256 hex).

    Customer, party, category, type and the set of its files' contents (SHA-256). Not the sides (FRONT and
    BACK swapped in a corrected mapping are the same two scans, so the same document), not the document number
    or dates (a corrected number with the same scans is the same document: see ``transforms.document_details``),
    not the S3 key, ETag, row numbers or Fin uris.
    """
    files = sorted(content[f.s3_uri].sha256 for f in doc.files)
    canonical = {"c": customer_id, "p": party_id, "cat": doc.category, "t": doc.type, "h": files}
    return _digest(canonical)


def etag_document_key(customer_id: str, party_id: str, doc: Document, content: Mapping[str, FileContent]) -> str:
    """The identity ledgers gave a document before content hashes: each file's side, ETag and size.

    Still looked up (after :func:`document_key`), so a document those ledgers recorded is not attached again.
    """
    files = sorted([f.side or "", content[f.s3_uri].etag, content[f.s3_uri].size] for f in doc.files)
    canonical = {"c": customer_id, "p": party_id, "cat": doc.category, "t": doc.type, "f": files}
    return _digest(canonical)


def _digest(canonical: Mapping[str, object]) -> str:
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def partition_of(customer_id: str) -> str:
    """The index partition of a customer: a fixed hash, so every run and every setting agrees."""
    return hashlib.sha256(customer_id.lower().encode()).hexdigest()[:PARTITIONS_HEX_DIGITS]


def partitions_of(customer_ids: Iterable[str]) -> set[str]:
    """The partitions a set of customers lives in (what a shard loads)."""
    return {partition_of(c) for c in customer_ids}
