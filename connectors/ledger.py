"""The durable ledger that makes a re-run, a corrected manifest or tomorrow's full export neither lose nor repeat
work (the API has no idempotency key).

One index for every job of a Fin tenant: ``<ledger>/_documents/<pp>/seg-*.jsonl`` (``<ledger>`` is the tenant
ledger, ``connectors.tenant_ledger``), where
``pp`` is a fixed hash of the customer id (``transforms.exactly_once.partition_of``, 256 partitions). A
shard loads the partitions of its own customers only. Records are JSON lines: a document's state (keyed by
its identity, ``transforms.exactly_once.document_key``, with keyed digests of the details it was sent with,
``transforms.document_details``) and the uri each upload got (keyed by customer, source object and ETag, with
the SHA-256 of the bytes, so a copy of the same bytes under a new key or ETag finds it): typed as
``transforms.ledger_lines``. A document's record changes only by a named move (:meth:`Ledger.sending`,
:meth:`Ledger.answered`, ...), refused from a state it may not come from (``transforms.ledger_moves``). Segments are
append-only; later records win. The digests' secret is one object at the index root, created once. A compacted
partition keeps the same records in a Parquet file next to the segments written after it
(``connectors.ledger_index``).

Writes are group-committed: every caller that needs durability (documents about to be sent, files just
uploaded) waits until a segment holding its record is written, and one commit carries everything pending —
one object per partition touched. Upload records linger a moment so that one commit carries a wave of them;
documents about to be sent do not (each holds its request's rate token and slot): they join the next commit,
which carries every request that came to leave while the one before was being written.

A write the store refuses (after the storage client's own retries) makes the ledger unavailable for the rest of
the run: the callers waiting on that commit, and every durable write after it, get
:class:`connectors.errors.LedgerUnavailable`, so nothing is sent whose record is not durable.

Ledgers written before the document index (per-request ``attach_key`` records under
``<ledger>/<job_id>/<shard>/``, adopted from ``<report>/_ledger/``) are still read: see :meth:`Ledger.legacy_request`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.errors import LedgerUnavailable, SetupError
from connectors.ledger_index import read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.document_details import KEY_BYTES
from transforms.exactly_once import DocState, partition_of
from transforms.ledger_lines import DocLine, DocRecord, LedgerLine, Send, UploadLine, line_from_json
from transforms.ledger_moves import RULES, Move, moved

# States of the per-request records of ledgers written before the upgrade, as document states.
_LEGACY_STATES = {"in_flight": DocState.in_flight, "done": DocState.attached, "failed": DocState.failed,
                  "unknown": DocState.unknown}
LEGACY_RUN = "a run before the per-document ledger"
DETAILS_SECRET = "_details_secret"  # at the index root: the key of the ledger's detail digests


__all__ = ["LEGACY_RUN", "DocRecord", "Ledger", "Send", "documents_root", "ledger_secret"]


def documents_root(job_ledger: Location) -> Location:
    """Where the document index of every job of the tenant lives: next to the job ledgers
    (``<ledger>/<job_id>`` → ``<ledger>/_documents``)."""
    parent, _, _ = job_ledger.key.rstrip("/").rpartition("/")
    return Location(job_ledger.bucket, parent).child("_documents")


def ledger_secret(store: ObjectStore, index_root: Location) -> bytes:
    """The ledger's secret (``<index root>/_details_secret``), the key of its detail digests and of the report's
    hashed cells: created once (never overwritten), then read by every run."""
    loc = index_root.child(DETAILS_SECRET)
    if not store.exists(loc):
        with contextlib.suppress(SetupError):  # another shard created it first: its secret is the one
            store.write(loc, secrets.token_bytes(KEY_BYTES).hex().encode(), content_type="text/plain")
    try:
        secret = bytes.fromhex(store.read(loc).decode("ascii").strip())
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise SetupError(f"the ledger's {DETAILS_SECRET} object is not a {KEY_BYTES}-byte secret in hex")
    return secret


class Ledger:
    """Document and upload records of the customers one shard works, plus the job's legacy records."""

    def __init__(self, store: ObjectStore, index_root: Location, *, legacy_root: Location | None = None,
                 linger_s: float = 0.05) -> None:
        self._store = store
        self._root = index_root
        self._legacy_root = legacy_root
        # An upload's record waits this long before its segments are written, so one commit carries a wave of
        # uploads instead of one or two (each write is an S3 PUT: milliseconds of CPU on both sides).
        self._linger_s = linger_s
        self.uploads: dict[tuple[str, str, str], str] = {}
        self._uploaded_sources: set[tuple[str, str]] = set()
        self._uploaded_customers: set[str] = set()
        self._sha_of_source: dict[tuple[str, str, str], str] = {}  # (customer, source, ETag) → content SHA-256
        self._uri_of_content: dict[tuple[str, str], str] = {}  # (customer, SHA-256) → uri
        self._sha_of_crc: dict[tuple[str, str], str] = {}  # (customer, full-object CRC64NVME) → SHA-256
        self._described: dict[str, dict[str, str]] = {}
        self.details_secret = b""
        self.documents: dict[str, DocRecord] = {}
        # the newest POST that carried documents of each party: only its own documents may read the
        # party's status as evidence (a later attach for the party moves it too)
        self._last_request: dict[tuple[str, str], tuple[float, str]] = {}
        self._legacy: dict[str, DocRecord] = {}
        self._pending: dict[str, list[LedgerLine]] = defaultdict(list)
        self._seq = 0
        self._flushed_seq = 0
        self._written_upto: dict[str, int] = {}  # partition → the last record written of it
        self._lock = asyncio.Lock()
        self._sources: dict[str, list[str]] = {}
        self._parties: dict[str, set[str]] = defaultdict(set)
        self.refused: str | None = None  # why the store refused a write (no durable write succeeds after it)

    def load(self, customer_ids: Iterable[str]) -> Ledger:
        """Read the index partitions of these customers (keeping only their records, so memory follows the
        shard, not the index), and the job's legacy records if any."""
        self.details_secret = self._details_secret()
        by_part: dict[str, set[str]] = defaultdict(set)
        for c in customer_ids:
            by_part[partition_of(c)].add(c)
        for part in sorted(by_part):
            for rec in read_records(self._store, self._root, part, by_part[part], history=False):
                if (typed := line_from_json(rec)) is not None:
                    self._apply(typed)
        if self._legacy_root is not None:
            for loc in self._store.list(self._legacy_root):
                if loc.key.endswith(".jsonl"):
                    for line in self._store.read(loc).splitlines():
                        if line.strip():
                            self._apply_legacy(json.loads(line))
        return self

    def _details_secret(self) -> bytes:
        return ledger_secret(self._store, self._root)

    def _apply(self, line: LedgerLine) -> None:
        if isinstance(line, UploadLine):
            c, src, etag = line.customer_id, line.source, line.etag
            self.uploads[(c, src, etag)] = line.uri
            self._uploaded_sources.add((c, src))
            self._uploaded_customers.add(c)
            if sha := line.sha256:
                self._sha_of_source[(c, src, etag)] = sha
                self._uri_of_content.setdefault((c, sha), line.uri)
                if crc := line.crc64nvme:
                    self._sha_of_crc[(c, crc)] = sha
            return
        self._parties[line.customer_id].add(line.party_id)
        self.documents[line.key] = line.record
        req, at = line.send.request_id, line.send.sent_at
        if line.state is DocState.in_flight and req and at is not None:
            party = (line.customer_id, line.party_id)
            if party not in self._last_request or self._last_request[party] < (at, req):
                self._last_request[party] = (at, req)

    def _apply_legacy(self, rec: dict[str, Any]) -> None:
        # Old records: {"k": "attach", "key": <attach_key>, "state": done|in_flight|failed|unknown, "initiated": …}
        if rec.get("k") == "attach" and rec.get("state") in _LEGACY_STATES:
            self._legacy[rec["key"]] = DocRecord(_LEGACY_STATES[rec["state"]], LEGACY_RUN,
                                                 initiated_before=bool(rec.get("initiated")))

    @property
    def has_legacy(self) -> bool:
        """Whether the job has records from before the per-document ledger."""
        return bool(self._legacy)

    def legacy_request(self, attach_key: str) -> DocRecord | None:
        """What a ledger of the old format knew of a whole request (the old ``attach_key``), if anything.

        The caller maps it to the request's documents: it recomputes the keys of the requests the old code
        would have built for the customer (``transforms.payload.attach_key``) and gives each document the
        state of its request. No send time is known, so the status move alone counts as evidence there.
        """
        return self._legacy.get(attach_key)

    def parties_of(self, customer_id: str) -> set[str]:
        """The party ids of this customer that any document record names."""
        return set(self._parties.get(customer_id, ()))

    def document(self, key: str) -> DocRecord | None:
        """What any earlier run on this ledger knew of a document."""
        return self.documents.get(key)

    def is_last_request_of(self, customer_id: str, party_id: str, request_id: str | None) -> bool:
        """Whether no POST for this party was recorded after ``request_id`` (so its status can speak for it)."""
        last = self._last_request.get((customer_id, party_id))
        return last is None or last[1] == request_id

    def upload_uri(self, customer_id: str, source: str, etag: str) -> str | None:
        """The uri a file got in an earlier upload for this customer, if its content (ETag) is unchanged."""
        return self.uploads.get((customer_id, source, etag))

    def has_upload(self, customer_id: str, source: str) -> bool:
        """Whether any upload of this source for this customer is recorded (whatever its ETag then)."""
        return (customer_id, source) in self._uploaded_sources

    def has_uploads(self, customer_id: str) -> bool:
        """Whether any upload for this customer is recorded (else no file of theirs can be a copy of one)."""
        return customer_id in self._uploaded_customers

    def content_sha256(self, customer_id: str, source: str, etag: str, crc64nvme: str | None) -> str | None:
        """The SHA-256 recorded for this source at this ETag, or for a file with this full-object CRC64NVME."""
        # an empty ETag (a store that gives none) says nothing about whether the object was overwritten
        sha = self._sha_of_source.get((customer_id, source, etag)) if etag else None
        if sha is None and crc64nvme:
            sha = self._sha_of_crc.get((customer_id, crc64nvme))
        return sha

    def content_uri(self, customer_id: str, sha256: str) -> str | None:
        """The uri the same bytes got in an earlier upload for this customer, whatever their source then."""
        return self._uri_of_content.get((customer_id, sha256))

    async def upload_done(self, customer_id: str, source: str, etag: str, uri: str, *, sha256: str | None = None,
                          crc64nvme: str | None = None) -> None:
        """Remember an upload (or a source found to hold bytes uploaded before: their uri); returns once durable
        (group-committed with the other records of its wave), so a run killed after it never uploads the file
        again."""
        line = UploadLine(customer_id, source, etag, uri, sha256 or None, crc64nvme if sha256 else None)
        await self._add(customer_id, [line], durable=True)

    def describe(self, key: str, digests: dict[str, str]) -> None:
        """The details (``transforms.document_details`` digests) this run sends a document with: its records
        from now on carry them."""
        self._described[key] = digests

    async def sending(self, customer_id: str, party_of_key: dict[str, str], send: Send) -> None:
        """Documents (key → party id) a POST is about to carry: returns only once durable, and does not linger:
        it is written as its request is about to leave, holding its rate token and slot, so it joins the commit
        under way or the next one and waits for nothing else."""
        await self._move(Move.sending, customer_id, party_of_key, send)

    async def answered(self, customer_id: str, party_of_key: dict[str, str], send: Send, http_status: int) -> None:
        """The API answered the POST that carried these documents: attached."""
        await self._move(Move.answered, customer_id, party_of_key, send, http_status=http_status)

    async def shown_applied(self, customer_id: str, party_of_key: dict[str, str], send: Send, *,
                            earlier: DocRecord | None = None) -> None:
        """The answer to ``send`` was lost and the parties' statuses moved after it: attached (``earlier``: the
        record, under any key, that this run settles)."""
        await self._move(Move.shown_applied, customer_id, party_of_key, send, earlier=earlier)

    async def left_unknown(self, customer_id: str, party_of_key: dict[str, str], send: Send, *,
                           earlier: DocRecord | None = None) -> None:
        """Nothing the API shows settles whether ``send`` took effect."""
        await self._move(Move.left_unknown, customer_id, party_of_key, send, earlier=earlier)

    async def not_applied(self, customer_id: str, party_of_key: dict[str, str], *, run_id: str,
                          http_status: int | None) -> None:
        """The API refused the POST that carried these documents, or gave up without applying it: a later run
        sends them again."""
        await self._move(Move.not_applied, customer_id, party_of_key, Send(run_id), http_status=http_status)

    async def not_sent(self, customer_id: str, party_of_key: dict[str, str], *, run_id: str,
                       http_status: int | None) -> None:
        """Their request failed before its POST left (nothing reached the API): a later run sends them again. A record
        an earlier POST left (attached, in flight, unknown) stays: a POST that never left changes nothing of it, and
        recorded failed, a plain run would send a document that may be attached already."""
        fresh = {key: party for key, party in party_of_key.items()
                 if _state(self.documents.get(key)) in RULES[Move.not_sent].allowed_from}
        if fresh:
            await self._move(Move.not_sent, customer_id, fresh, Send(run_id), http_status=http_status)

    async def carried(self, customer_id: str, party_of_key: dict[str, str], earlier: DocRecord) -> None:
        """Documents attached by an earlier run and recorded under an older key, now under their content key (so
        the older record is not needed again)."""
        await self._move(Move.carried, customer_id, party_of_key, Send(earlier.run_id), earlier=earlier)

    async def _move(self, move: Move, customer_id: str, party_of_key: dict[str, str], send: Send, *,
                    http_status: int | None = None, earlier: DocRecord | None = None) -> None:
        """Record ``move`` for documents of one customer, each from its record here (else ``earlier``): every
        document is checked before any line is written."""
        states = [moved(move, _state(self.documents.get(key) or earlier)) for key in party_of_key]
        now = time.time()
        lines = [DocLine(key, customer_id, party, state, send, http_status, now, _sources(self._sources.get(key)),
                         self._described.get(key))
                 for (key, party), state in zip(party_of_key.items(), states, strict=True)]
        await self._add(customer_id, lines, durable=move is Move.sending, linger=False)

    def know_sources(self, sources_of_key: dict[str, list[str]]) -> None:
        """The source objects (s3 uris) of documents, written with each of their records from now on: the
        history answers by source object."""
        self._sources.update(sources_of_key)

    async def _add(self, customer_id: str, recs: Sequence[LedgerLine], *, durable: bool, linger: bool = True) -> None:
        if durable and self.refused is not None:
            raise LedgerUnavailable(self.refused)
        for rec in recs:
            self._apply(rec)
        part = partition_of(customer_id)
        self._pending[part].extend(recs)
        self._seq += 1
        if durable:
            upto = self._seq
            if linger and self._linger_s:
                await asyncio.sleep(self._linger_s)
            await self._commit(upto, part)

    async def flush(self) -> None:
        """Write everything pending (tried even after a refused write: outcomes saved spare the next run work)."""
        await self._commit(self._seq, None, after_refusal=True)

    def _written(self, upto: int, part: str | None) -> bool:
        """Whether the records up to ``upto`` (of one partition, or of all) are written."""
        return (self._flushed_seq if part is None else self._written_upto.get(part, 0)) >= upto

    async def _commit(self, upto: int, part: str | None, *, after_refusal: bool = False) -> None:
        if self._written(upto, part):
            return  # another caller's write carried this record
        async with self._lock:
            if self._written(upto, part):
                return
            if self.refused is not None and not after_refusal:
                raise LedgerUnavailable(self.refused)  # this record was in the refused write, or came after it
            if not self._pending:
                return
            batch, self._pending = self._pending, defaultdict(list)
            seq = self._seq
            # time-ordered names so a listing replays segments in the order they were written
            name = f"seg-{time.time_ns():020d}-{secrets.token_hex(4)}.jsonl"
            results = await asyncio.gather(*(
                asyncio.to_thread(self._store.write, self._root.child(p, name), _jsonl(recs),
                                  content_type="application/x-ndjson")
                for p, recs in batch.items()
            ), return_exceptions=True)
            errors = {p: r for p, r in zip(batch, results, strict=True) if isinstance(r, BaseException)}
            for p in batch.keys() - errors.keys():
                self._written_upto[p] = seq
            if not errors:
                self._flushed_seq = seq
                return
            first = next(iter(errors.values()))
            if not isinstance(first, Exception):
                raise first  # a cancellation, not the store's answer
            # Whatever the store's client raised after its own retries. The records of the partitions that were
            # written are durable (their callers go on). Of the others, the in-flight records are dropped (their
            # requests are not sent); the rest (outcomes of requests Fin answered, uploads that were made) wait
            # again, ahead of what came since, for the flush at the run's end.
            for p in errors:
                kept = [r for r in batch[p] if not (isinstance(r, DocLine) and r.state is DocState.in_flight)]
                if kept:
                    self._pending[p][:0] = kept
            self.refused = self.refused or f"the ledger's store refused a write ({_error_name(first)})"
            if part is None or part in errors:
                raise LedgerUnavailable(self.refused) from first


def _error_name(exc: Exception) -> str:
    """The error's type and, for an S3 error, its code (``ClientError SlowDown``): never its text."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if isinstance(
        getattr(exc, "response", None), dict) else None
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


def _state(record: DocRecord | None) -> DocState | None:
    return record.state if record is not None else None


def _sources(sources: list[str] | None) -> tuple[str, ...] | None:
    return tuple(sources) if sources is not None else None


def _jsonl(lines: list[LedgerLine]) -> bytes:
    return "".join(json.dumps(line.to_json(), separators=(",", ":")) + "\n" for line in lines).encode()
