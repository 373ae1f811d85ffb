"""The run lease on the local-folder store: per customer partition, shard runs as members, judged by the store's
time (a file's modification time, set by the kernel), never by process ids or this process's clock."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from connectors.errors import LeaseLost, SetupError
from connectors.objects import ObjectStore
from connectors.run_lease import LeaseTerms, RunLease
from connectors.s3 import Location, WriteStamp


def lease(root: Path, run: str, *, member: str = "run", store: ObjectStore | None = None,
          stale_after_s: float = 300.0) -> RunLease:
    terms = LeaseTerms(root=str(root), lease_id=f"{run}.x", run_id=run, stale_after_s=stale_after_s)
    return RunLease(store or ObjectStore(None), terms, member=member)


def age_heartbeats(root: Path, run: str, seconds: float) -> None:
    """Make the run's heartbeats look ``seconds`` old to the store (as if its members died that long ago)."""
    for beat in (root / "_lease" / "holders" / f"{run}.x").glob("*.json"):
        old = beat.stat().st_mtime - seconds
        os.utime(beat, (old, old))


def test_a_run_over_the_same_customers_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    first = lease(tmp_path, "one")
    first.acquire({"0a", "0b"})
    with pytest.raises(SetupError, match="run one is working on customers of this manifest"):
        lease(tmp_path, "two").acquire({"01", "0b", "ff"})
    assert sorted(p.name for p in (tmp_path / "_lease" / "partitions").glob("*.json")) == ["0a.json", "0b.json"]
    assert [p.parent.name for p in (tmp_path / "_lease" / "holders").glob("*/*.json")] == ["one.x"]


def test_runs_over_other_customers_do_not_wait_for_each_other(tmp_path: Path) -> None:
    lease(tmp_path, "one").acquire({"0a", "0b"})
    lease(tmp_path, "two").acquire({"0c", "ff"})


def test_a_run_that_ended_frees_its_customers_at_once(tmp_path: Path) -> None:
    first = lease(tmp_path, "one")
    first.acquire({"0a"})
    first.release()
    lease(tmp_path, "two").acquire({"0a"})


def test_a_dead_runs_lease_stops_counting_one_window_after_its_last_heartbeat_by_the_stores_time(
    tmp_path: Path
) -> None:
    dead = lease(tmp_path, "killed")
    dead.acquire({"0a"})  # never released: kill -9
    age_heartbeats(tmp_path, "killed", 250)
    with pytest.raises(SetupError, match="run killed"):
        lease(tmp_path, "next").acquire({"0a"})
    age_heartbeats(tmp_path, "killed", 60)  # 310 s old now
    lease(tmp_path, "next").acquire({"0a"})
    with pytest.raises(LeaseLost):  # had it only been paused, it finds out at its next renewal and stops
        dead.renew()


def test_this_process_clock_is_not_the_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lease(tmp_path, "one").acquire({"0a"})
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 11 * 60)  # this machine 11 minutes ahead
    with pytest.raises(SetupError, match="run one"):
        lease(tmp_path, "two").acquire({"0a"})


def test_a_shard_run_keeps_its_killed_parents_lease_alive_until_it_ends(tmp_path: Path) -> None:
    parent = lease(tmp_path, "one")
    parent.acquire({"0a", "0b"})
    shard = lease(tmp_path, "one", member="shard-s1")
    shard.join({"0b"})
    age_heartbeats(tmp_path, "one", 3600)  # the parent was SIGKILLed an hour ago...
    shard.renew()  # ...but its shard run still works
    with pytest.raises(SetupError, match="run one"):
        lease(tmp_path, "two").acquire({"0b"})
    shard.release()  # the shard run ends: nobody of run one beats any more
    lease(tmp_path, "two").acquire({"0b"})


def test_a_shard_run_of_a_run_whose_lease_was_taken_sends_nothing(tmp_path: Path) -> None:
    lease(tmp_path, "one").acquire({"0a"})
    age_heartbeats(tmp_path, "one", 3600)
    lease(tmp_path, "two").acquire({"0a"})
    with pytest.raises(LeaseLost):
        lease(tmp_path, "one", member="shard-late").join({"0a"})
    assert not (tmp_path / "_lease" / "holders" / "one.x" / "shard-late.json").exists()


class LateShardStore(ObjectStore):
    """A store on which a late shard run of run one beats right after run two replaced run one's lock."""

    def __init__(self, root: Path) -> None:
        super().__init__(None)
        self.root = root
        self.fired = False

    def write_if(self, loc: Location, data: bytes, *, etag: str | None,
                 content_type: str = "application/json") -> WriteStamp | None:
        stamp = super().write_if(loc, data, etag=etag, content_type=content_type)
        if "/partitions/" in loc.key and etag is not None and not self.fired:
            self.fired = True
            late = lease(self.root, "one", member="shard-late")
            with pytest.raises(LeaseLost):  # it sees run two's lock already: stops before sending
                late.join({"0a"})
            late._beat()  # another late member, between its heartbeat and its check of the locks
        return stamp


def test_a_run_that_displaced_a_lease_whose_shard_run_woke_up_gives_the_customers_back(tmp_path: Path) -> None:
    lease(tmp_path, "one").acquire({"0a"})
    age_heartbeats(tmp_path, "one", 3600)
    with pytest.raises(SetupError, match="run one"):
        lease(tmp_path, "two", store=LateShardStore(tmp_path)).acquire({"0a"})
    assert not (tmp_path / "_lease" / "partitions" / "0a.json").exists()  # given back: run one's member stops


def test_of_runs_starting_together_over_the_same_customers_exactly_one_starts(tmp_path: Path) -> None:
    started: list[str] = []
    gate = threading.Barrier(6)

    def start(run: str) -> None:
        gate.wait()
        try:
            lease(tmp_path, run).acquire({"00", "3f", "a1"})
            started.append(run)
        except SetupError:
            pass

    threads = [threading.Thread(target=start, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1


class CarelessStore(ObjectStore):
    """An S3-compatible store that ignores If-None-Match and If-Match: every write goes through."""

    def write_if(self, loc: Location, data: bytes, *, etag: str | None,
                 content_type: str = "application/json") -> WriteStamp | None:
        found = self.read_if_present(loc)
        return super().write_if(loc, data, etag=found[1] if found else None, content_type=content_type)


def test_a_store_that_ignores_conditional_writes_is_refused_before_anything_is_held(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="ignores conditional writes"):
        lease(tmp_path, "one", store=CarelessStore(None)).acquire({"0a"})
    assert not list((tmp_path / "_lease").rglob("*.json"))  # no lock, no heartbeat, no probe left
