"""Upload a customer's files to Fin, each content once per customer across runs: the ledger keeps the uri it got,
keyed by customer, source and ETag, and by the SHA-256 of the bytes (a uri belongs to the customer it was uploaded
for; an object overwritten since is new content, uploaded again; the same bytes copied to a new key or given a new
ETag by a multipart copy are not)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import KW_ONLY, dataclass, field

from connectors.errors import KycAttachError, LedgerUnavailable, RowRejected
from connectors.files import check_object, fetch_source, hash_source, open_source
from connectors.fin import FinClient
from connectors.ledger import Ledger
from connectors.objects import ObjectStore
from flows.row_failures import fail_from, ledger_stop
from transforms.codes import Reason, Status
from transforms.exactly_once import FileContent
from transforms.models import Document
from transforms.outcomes import Outcomes
from transforms.thresholds import FailureBudget


@dataclass(frozen=True, slots=True)
class Uploaded:
    """A file on Fin's side: its uri, and the content (SHA-256, ETag, size) it was uploaded from."""

    uri: str
    content: FileContent


@dataclass
class Uploader:
    """Streams files from S3 to the upload endpoint, at most ``max_concurrent`` at a time."""

    store: ObjectStore
    fin: FinClient
    ledger: Ledger
    out: Outcomes
    budget: FailureBudget
    _: KW_ONLY
    max_file_bytes: int
    max_concurrent: int
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.max_concurrent)

    async def documents(self, customer_id: str, docs: list[Document]) -> dict[str, Uploaded]:
        """Upload the documents' files; returns s3_uri → upload for the documents whose files all went up.

        A document with a file that did not go up has outcomes on all its rows and none of its uris returned.
        """
        uris: dict[str, Uploaded] = {}

        async def upload_doc(doc: Document) -> None:
            results = await asyncio.gather(*(self._file(customer_id, f.s3_uri) for f in doc.files),
                                           return_exceptions=True)
            errors = [(f, r) for f, r in zip(doc.files, results, strict=True) if isinstance(r, BaseException)]
            for f, r in zip(doc.files, results, strict=True):
                if isinstance(r, Uploaded):
                    uris[f.s3_uri] = r
                # A failed upload fails its document; a good one is counted with the document's attach.
                # Bad files are the data's fault, not the API's, and do not count at all.
                if isinstance(r, LedgerUnavailable):
                    self.budget.halt(ledger_stop(r), Reason.ledger_unavailable)
                elif isinstance(r, KycAttachError) and not isinstance(r, RowRejected):
                    self.budget.note(ok=False)
            if not errors:
                return
            for f, exc in errors:
                if not isinstance(exc, KycAttachError):
                    raise exc
                fail_from(self.out, [f.row_number], exc)
            culprit = errors[0][1]
            self.out.reject_rest_of(doc, Status.rejected if isinstance(culprit, RowRejected) else Status.failed)
            for f in doc.files:
                uris.pop(f.s3_uri, None)

        await asyncio.gather(*(upload_doc(d) for d in docs))
        return uris

    async def _file(self, customer_id: str, s3_uri: str) -> Uploaded:
        async with self.slots:
            if self.ledger.refused is not None:
                # an upload not recorded would be made again by the next run, and no attach goes out anyway
                raise LedgerUnavailable(self.ledger.refused)
            if self.ledger.has_uploads(customer_id):
                # Files of this customer went up before: a HEAD tells whether this one's bytes are among them
                # (same source and ETag, or S3's full-object checksum), else one read hashes it before anything
                # is sent, so bytes copied to a new key or ETag are neither uploaded nor attached again.
                info = await check_object(self.store, s3_uri, max_bytes=self.max_file_bytes)
                sha = info.sha256 or self.ledger.content_sha256(customer_id, s3_uri, info.etag, info.crc64nvme)
                if sha is None:
                    sha = await hash_source(self.store, s3_uri, info)
                known = self.ledger.upload_uri(customer_id, s3_uri, info.etag) or self.ledger.content_uri(
                    customer_id, sha)
                if known:
                    if self.ledger.content_sha256(customer_id, s3_uri, info.etag, None) != sha:
                        await self.ledger.upload_done(customer_id, s3_uri, info.etag, known, sha256=sha,
                                                      crc64nvme=info.crc64nvme)
                    return Uploaded(known, FileContent(sha, info.etag, info.size))
                source = await open_source(self.store, s3_uri, info)
            else:
                # The common case: one GET, whose response carries the size and ETag a HEAD would give; the
                # upload's stream gives the SHA-256.
                source = await fetch_source(self.store, s3_uri, max_bytes=self.max_file_bytes)
                info = source.info
            try:
                # The name Fin keeps says nothing about the person (source keys often do).
                name = f"{hashlib.sha256(s3_uri.encode()).hexdigest()[:16]}.{source.extension}"
                uri, _ = await self.fin.upload(customer_id, filename=name, content_type=source.content_type,
                                               size=info.size, chunks=source.chunks)
            finally:
                source.close()
            # the stream's hash, unless the upload stopped reading it early (then one more read, pinned to the ETag)
            sha = source.sha256 or await hash_source(self.store, s3_uri, info)
        # Waiting for the group commit holds no upload slot: the next file goes up meanwhile.
        await self.ledger.upload_done(customer_id, s3_uri, info.etag, uri, sha256=sha, crc64nvme=info.crc64nvme)
        return Uploaded(uri, FileContent(sha, info.etag, info.size))
