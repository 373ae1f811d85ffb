"""The durable ledger that makes a re-run neither lose nor repeat work (the API has no idempotency key).

Records are JSON lines in append-only segment objects under ``<ledger>/<shard>/``; a shard reads its own
folder when it starts. Writes are group-committed: every caller that needs durability (an attach about
to be sent) waits until a segment holding its record is written, and one write carries everything that
was pending, so a busy shard writes a segment per wave of requests, not per request. A durable record
lingers ``linger_s`` (50 ms) first, so the wave is a wide one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from connectors.objects import ObjectStore
from connectors.s3 import Location

IN_FLIGHT, DONE, FAILED, UNKNOWN = "in_flight", "done", "failed", "unknown"


@dataclass(frozen=True, slots=True)
class AttachEntry:
    """The last known state of one attach request."""

    state: str
    http_status: int | None = None
    transient: bool = False
    party_was_initiated: bool = False


class Ledger:
    """Upload and attach records of one shard of one job."""

    def __init__(self, store: ObjectStore, location: Location, *, linger_s: float = 0.05) -> None:
        self._store = store
        self._location = location
        # A durable record waits this long before its segment is written, so one write carries a wave of
        # attaches instead of one or two (each write is an S3 PUT: milliseconds of CPU on both sides).
        self._linger_s = linger_s
        self.uploads: dict[tuple[str, str], str] = {}
        self._uploaded_sources: set[str] = set()
        self.attaches: dict[str, AttachEntry] = {}
        self._pending: list[dict[str, Any]] = []
        self._seq = 0
        self._flushed_seq = 0
        self._lock = asyncio.Lock()

    def load(self) -> Ledger:
        """Read every segment written by earlier runs; later records win."""
        for loc in self._store.list(self._location):
            for line in self._store.read(loc).splitlines():
                if line.strip():
                    self._apply(json.loads(line))
        return self

    def _apply(self, rec: dict[str, Any]) -> None:
        if rec["k"] == "upload":
            self.uploads[(rec["src"], rec["etag"])] = rec["uri"]
            self._uploaded_sources.add(rec["src"])
        elif rec["k"] == "attach":
            self.attaches[rec["key"]] = AttachEntry(
                rec["state"], rec.get("http_status"), rec.get("transient", False), rec.get("initiated", False)
            )

    def upload_uri(self, source: str, etag: str) -> str | None:
        """The uri a file got in an earlier upload, if its content (ETag) has not changed since."""
        return self.uploads.get((source, etag))

    def has_upload(self, source: str) -> bool:
        """Whether any upload of this source is recorded (whatever its ETag then)."""
        return source in self._uploaded_sources

    def attach_state(self, key: str) -> AttachEntry | None:
        """What an earlier run knew of this attach request."""
        return self.attaches.get(key)

    async def upload_done(self, source: str, etag: str, uri: str) -> None:
        """Remember an upload; written with the next segment (losing it costs one re-upload, not data)."""
        await self._add({"k": "upload", "src": source, "etag": etag, "uri": uri}, durable=False)

    async def attach_state_change(
        self, key: str, state: str, *, http_status: int | None = None, transient: bool = False,
        party_was_initiated: bool = False,
    ) -> None:
        """Record an attach state; ``in_flight`` returns only once it is durable."""
        rec = {"k": "attach", "key": key, "state": state, "http_status": http_status, "transient": transient,
               "initiated": party_was_initiated}
        await self._add(rec, durable=state == IN_FLIGHT)

    async def _add(self, rec: dict[str, Any], *, durable: bool) -> None:
        self._apply(rec)
        self._pending.append(rec)
        self._seq += 1
        if durable:
            upto = self._seq
            if self._linger_s:
                await asyncio.sleep(self._linger_s)
            await self._commit(upto)

    async def flush(self) -> None:
        """Write everything pending."""
        await self._commit(self._seq)

    async def _commit(self, upto: int) -> None:
        if self._flushed_seq >= upto:
            return  # another caller's write carried this record
        async with self._lock:
            if self._flushed_seq >= upto or not self._pending:
                return
            batch, self._pending = self._pending, []
            seq = self._seq
            data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in batch).encode()
            # time-ordered names so a listing replays segments in the order they were written
            name = f"seg-{time.time_ns():020d}-{secrets.token_hex(4)}.jsonl"
            await asyncio.to_thread(
                self._store.write, self._location.child(name), data, content_type="application/x-ndjson"
            )
            self._flushed_seq = seq
