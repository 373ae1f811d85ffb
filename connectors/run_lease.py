"""One run at a time per customer partition, shard runs included, judged by the store alone.

Every job under a ledger shares one document index (documents attached by any of them count), and a shard reads
its customers' part of it once, when it starts. Two runs working the same customers at once would each miss the
other's *in flight* documents and attach them again. So a run leases the customer partitions its plan touches
(``transforms.exactly_once.partition_of``); runs over other customers never wait for it.

Under ``<root>/_lease/``:

- ``partitions/<pp>.json``: the lock of one partition, naming the lease that holds it. It is created only where
  none is (S3 ``If-None-Match: *``; locally, under a lock file) and replaced only as the version that was read
  (``If-Match`` on its ETag; locally, compare-and-swap by content), so of two runs racing for it one wins.
- ``holders/<lease id>/<member>.json``: one heartbeat per member of the run, the parent and each of its shard
  runs, each rewritten (conditionally, as the version it last wrote) every ``stale_after_s / 5`` seconds and
  deleted when the member ends.

A lease counts while one of its heartbeats is younger than its stale window, by the store's clock: a heartbeat's
``LastModified`` against the time the store gave the judge's own heartbeat a moment before (S3's ``Date``; a
local file's modification time, which the kernel sets). No process id, host name or local clock is used. So a
parent killed while its shard runs work keeps its customers leased until the last of them ends, and a run whose
members all died stops counting one stale window after their last heartbeat.

A member writes its heartbeat before it checks the locks, and a run taking over a lock checks the displaced
lease's heartbeats again after replacing it: a late shard run of the old lease then either sees the new lock and
sends nothing (``LeaseLost``), or the new run sees its heartbeat and gives the partitions back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import LeaseLost, SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location
from connectors.workarea import SlotRange, read_slot_range
from transforms.exactly_once import partitions_of
from transforms.lease_rules import Lock, Verdict, heartbeat_interval_s, is_live, verdict

log = logging.getLogger("kyc_attach.lease")

STALE_AFTER_S = 300.0
_RACE_ATTEMPTS = 3  # a lock that changes under us this often: another run is starting right now


class LeaseTerms(BaseModel):
    """What every member of one run's lease agrees on (a shard run gets it from its parent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str  # the folder the lease lives under (``<root>/_lease``): the ledger's root
    lease_id: str  # unique per run and report location
    run_id: str  # named to a run that is refused
    stale_after_s: float = Field(STALE_AFTER_S, gt=0)

    @property
    def heartbeat_s(self) -> float:
        """How often each member renews."""
        return heartbeat_interval_s(self.stale_after_s)


class RunLease:
    """One member's hold on a run's lease: the parent ``acquire``s the partitions, a shard run ``join``s them."""

    def __init__(self, store: ObjectStore, terms: LeaseTerms, *, member: str = "run") -> None:
        self.store = store
        self.terms = terms
        self.member = member
        self._folder = Location.parse(terms.root).normalised().child("_lease")
        self._partitions: tuple[str, ...] = ()
        self._held: dict[str, str] = {}  # partition -> ETag of the lock this member wrote
        self._beat_etag: str | None = None
        self._beats = 0
        self.store_time: datetime | None = None  # the store's time of this member's latest heartbeat

    def _lock(self, partition: str) -> Location:
        return self._folder.child("partitions", f"{partition}.json")

    def _holders(self, lease_id: str) -> Location:
        return self._folder.child("holders", lease_id)

    @property
    def _heartbeat(self) -> Location:
        return self._holders(self.terms.lease_id).child(f"{self.member}.json")

    @property
    def _me(self) -> Lock:
        return Lock(self.terms.lease_id, self.terms.run_id, self.terms.stale_after_s)

    def acquire(self, partitions: Iterable[str]) -> None:
        """Lease ``partitions`` for this run, or ``SetupError`` naming the run that holds one of them (then
        nothing of this run's lease is left)."""
        wanted = sorted(set(partitions))
        self._check_conditional_writes()
        self._beat()  # first: no lock of this lease is ever seen without a live heartbeat beside it
        displaced: dict[str, Lock] = {}
        try:
            for partition in wanted:
                taken = self._take(partition)
                if taken is not None:
                    displaced[taken.lease_id] = taken
            for lock in displaced.values():  # a late member of a displaced lease may have started meanwhile
                if self._live(lock):
                    raise self._refusal(lock)
        except BaseException:
            self._give_back()
            raise
        self._partitions = tuple(wanted)

    def _check_conditional_writes(self) -> None:
        """``SetupError`` when the store does not keep the conditions the locks rely on (an S3-compatible store
        that ignores ``If-None-Match``/``If-Match`` would let two runs hold one partition)."""
        probe = self._folder.child("probes", f"{secrets.token_hex(8)}.json")
        made = self.store.write_if(probe, b"{}", etag=None)
        if made is None:
            raise SetupError("the lease store refused to create a new object; check the report location")
        try:
            ignored = (self.store.write_if(probe, b"[]", etag=None) is not None
                       or self.store.write_if(probe, b"[]", etag="0" * 32) is not None)
        finally:
            self.store.delete(probe)
        if ignored:
            raise SetupError("the report location's store ignores conditional writes (If-None-Match / If-Match), "
                             "so runs over the same customers could not be kept apart: use a store that keeps them")

    def _take(self, partition: str) -> Lock | None:
        """Hold one partition's lock; the lock it replaced, if it replaced a dead lease's."""
        loc = self._lock(partition)
        for _ in range(_RACE_ATTEMPTS):
            found = self.store.read_if_present(loc)
            lock = Lock.parse(found[0]) if found else None
            live = lock is not None and lock.lease_id != self.terms.lease_id and self._live(lock)
            decision = verdict(lock, present=found is not None, lease_id=self.terms.lease_id, holder_live=live)
            if decision is Verdict.held:
                assert lock is not None
                raise self._refusal(lock)
            if decision is Verdict.ours:
                return None
            stamp = self.store.write_if(loc, self._me.body(secrets.token_hex(8)), etag=found[1] if found else None)
            if stamp is not None:
                self._held[partition] = stamp.etag
                return lock if decision is Verdict.take else None
        raise SetupError(f"another run is taking the lease of the same customers right now (run {self.terms.run_id} "
                         "did not start): start it again once that run has started or ended")

    def _refusal(self, lock: Lock) -> SetupError:
        return SetupError(
            f"run {lock.run_id} is working on customers of this manifest (its lease was renewed within "
            f"{lock.stale_after_s:.0f} s by the store's clock); runs over the same customers must not overlap: "
            "wait for it to end")

    def _give_back(self) -> None:
        """Undo a refused ``acquire``: the locks this member wrote and its heartbeat go."""
        for partition, etag in self._held.items():
            self.store.delete_if(self._lock(partition), etag)
        self._held.clear()
        self._drop_heartbeat()

    def join(self, partitions: Iterable[str]) -> None:
        """Count as a member of the run's lease (a shard run): ``LeaseLost`` when the run no longer holds
        ``partitions``."""
        self._partitions = tuple(sorted(set(partitions)))
        self._beat()
        try:
            self.verify()
        except LeaseLost:
            self._drop_heartbeat()
            raise

    def renew(self) -> None:
        """Say this member still works, then check the run still holds its partitions; ``LeaseLost`` if not."""
        self._beat()
        self.verify()

    def verify(self) -> None:
        """``LeaseLost`` unless every partition's lock still names this run's lease."""
        for partition in self._partitions:
            found = self.store.read_if_present(self._lock(partition))
            lock = Lock.parse(found[0]) if found else None
            if lock is None or lock.lease_id != self.terms.lease_id:
                raise LeaseLost(f"run {self.terms.run_id} lost the lease of its customers: another run holds "
                                "them now, or the lease was removed")

    def release(self) -> None:
        """End this member's part: its heartbeat goes, and the locks it wrote too once no other member of the
        lease still beats (a shard run that beats after that finds its locks gone and sends nothing)."""
        self._drop_heartbeat()
        if self._held and not any(True for _ in self.store.list_under(_under(self._holders(self.terms.lease_id)))):
            for partition, etag in self._held.items():
                self.store.delete_if(self._lock(partition), etag)
            self._held.clear()

    def _beat(self) -> None:
        self._beats += 1
        body = _json({"lease_id": self.terms.lease_id, "member": self.member, "beat": self._beats,
                      "nonce": secrets.token_hex(8)})
        etag = self._beat_etag
        if etag is None:  # the first beat: a retried member of the same name takes over its own heartbeat
            found = self.store.read_if_present(self._heartbeat)
            etag = found[1] if found else None
        stamp = self.store.write_if(self._heartbeat, body, etag=etag)
        if stamp is None:
            raise LeaseLost(f"the heartbeat of run {self.terms.run_id} was replaced or removed by someone else")
        self._beat_etag, self.store_time = stamp.etag, stamp.at

    def _drop_heartbeat(self) -> None:
        if self._beat_etag is not None:
            self.store.delete_if(self._heartbeat, self._beat_etag)
            self._beat_etag = None

    def _live(self, lock: Lock) -> bool:
        assert self.store_time is not None
        listed = self.store.list_under(_under(self._holders(lock.lease_id)))
        beats = [info.modified for _, info in listed if info.modified is not None]
        return is_live(beats, self.store_time, lock.stale_after_s)


def lease_id_of(run_id: str, report_root: Location) -> str:
    """The lease id of a run: run ids are unique under one report location only, and report locations may share
    a ledger (and so its lease)."""
    where = hashlib.sha256(str(report_root.normalised()).encode()).hexdigest()[:12]
    return f"{run_id}.{where}"


def partitions_in(rows: Iterable[SlotRange]) -> set[str]:
    """The customer partitions of rows files (the plan's shards, or one shard run's)."""
    found: set[str] = set()
    for ref in rows:
        customers = read_slot_range(ref, columns=["customer_id"]).column("customer_id")
        found |= partitions_of(str(c) for c in pc.unique(customers).to_pylist() if c)
    return found


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _under(folder: Location) -> Location:
    """``folder`` as a prefix that matches its own objects only (not ``<folder>-other/...`` on S3)."""
    return Location(folder.bucket, folder.key.rstrip("/") + "/")
