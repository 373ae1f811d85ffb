"""When a run's lease on a customer partition counts (pure): judged by the store's clock, never a machine's.

A lease is held per customer partition (``transforms.exactly_once.partition_of``) by a lock object naming the
lease, and kept alive by heartbeats: one object per member of the run (the parent and each of its shard runs),
rewritten every ``stale_after_s / HEARTBEATS_PER_WINDOW`` seconds. All times compared here are the store's: the
time the store gave a heartbeat (its ``LastModified``) against the time the store gave the judge's own latest
write. No process id and no local clock enters, so runs in other PID namespaces, on other hosts or with clocks
that disagree judge alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

#: Heartbeats per stale window: a member misses four in a row before its run's lease stops counting.
HEARTBEATS_PER_WINDOW = 5


@dataclass(frozen=True)
class Lock:
    """What a partition's lock object says: the lease holding it, its run, and the stale window it keeps."""

    lease_id: str
    run_id: str
    stale_after_s: float

    def body(self, nonce: str) -> bytes:
        """The object's bytes; ``nonce`` makes every write a new version (a new ETag) even for the same lease."""
        return json.dumps({"lease_id": self.lease_id, "run_id": self.run_id, "stale_after_s": self.stale_after_s,
                           "nonce": nonce}, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Lock | None:
        """The lock in ``data``; ``None`` when it is not one (a lock nobody can be judged to hold)."""
        try:
            raw = json.loads(data)
            return cls(str(raw["lease_id"]), str(raw["run_id"]), float(raw["stale_after_s"]))
        except (ValueError, TypeError, KeyError):
            return None


class Verdict(StrEnum):
    """What a run may do with one partition's lock."""

    free = "free"  # no lock: create it
    ours = "ours"  # our own lease holds it already (a retried parent): keep it
    take = "take"  # held by a lease that stopped counting (or unreadable): replace it, conditionally
    held = "held"  # held by a live lease of another run: refuse


def heartbeat_interval_s(stale_after_s: float) -> float:
    """How often a member rewrites its heartbeat."""
    return stale_after_s / HEARTBEATS_PER_WINDOW


def is_live(heartbeats: Iterable[datetime], store_now: datetime, stale_after_s: float) -> bool:
    """Whether a lease counts: one of its heartbeats was written less than ``stale_after_s`` before
    ``store_now`` (both the store's times). A heartbeat stamped after ``store_now`` counts as fresh."""
    return any((store_now - beat).total_seconds() < stale_after_s for beat in heartbeats)


def verdict(lock: Lock | None, *, present: bool, lease_id: str, holder_live: bool) -> Verdict:
    """The rule for one partition: an absent lock is free; ours is ours; another lease's counts only while it
    is live; an unreadable one holds nobody."""
    if not present:
        return Verdict.free
    if lock is None:
        return Verdict.take
    if lock.lease_id == lease_id:
        return Verdict.ours
    return Verdict.held if holder_live else Verdict.take
