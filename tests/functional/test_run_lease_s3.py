"""The run lease on a real S3 server over HTTP: conditional writes (If-None-Match / If-Match) and the store's own
time (the Date of its answers, the LastModified of heartbeats)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from connectors.errors import LeaseLost, SetupError
from connectors.objects import ObjectStore
from connectors.run_lease import LeaseTerms, RunLease
from connectors.s3 import Location, S3Store, make_s3_client


def store() -> ObjectStore:
    return ObjectStore(S3Store(make_s3_client()))


def lease(bucket: str, run: str, *, member: str = "run", stale_after_s: float = 300.0) -> RunLease:
    terms = LeaseTerms(root=f"s3://{bucket}/reports/_ledger", lease_id=f"{run}.x", run_id=run,
                       stale_after_s=stale_after_s)
    return RunLease(store(), terms, member=member)


def test_conditional_writes_create_once_and_replace_only_the_version_read(bucket: str) -> None:
    objects, loc = store(), Location(bucket, "state/lock.json")
    first = objects.write_if(loc, b"one", etag=None)
    assert first is not None
    assert objects.write_if(loc, b"two", etag=None) is None  # If-None-Match: * refuses an existing object
    second = objects.write_if(loc, b"two", etag=first.etag)
    assert second is not None
    assert objects.write_if(loc, b"three", etag=first.etag) is None  # If-Match of a replaced version
    assert objects.read_if_present(loc) == (b"two", second.etag)
    assert not objects.delete_if(loc, first.etag)
    assert objects.delete_if(loc, second.etag)
    assert objects.read_if_present(loc) is None
    assert objects.write_if(loc, b"x", etag=second.etag) is None  # If-Match on nothing


def test_a_lease_goes_stale_by_the_stores_clock_and_a_paused_holder_then_stops(bucket: str) -> None:
    paused = lease(bucket, "one", stale_after_s=2)
    paused.acquire({"0a", "7f"})
    with pytest.raises(SetupError, match="run one is working on customers"):
        lease(bucket, "two").acquire({"7f"})
    lease(bucket, "three").acquire({"0b"})  # other customers: not held up
    time.sleep(3.2)  # whole seconds: S3 times have a resolution of one second
    lease(bucket, "two").acquire({"7f"})
    with pytest.raises(LeaseLost):
        paused.renew()


def test_a_shard_member_renews_while_its_parent_is_gone(bucket: str) -> None:
    parent = lease(bucket, "one", stale_after_s=3)
    parent.acquire({"0a"})
    shard = lease(bucket, "one", member="shard-s1", stale_after_s=3)
    shard.join({"0a"})
    for _ in range(3):  # the parent never beats again (SIGKILL); the shard run does
        time.sleep(1.1)
        shard.renew()
    with pytest.raises(SetupError, match="run one"):
        lease(bucket, "two").acquire({"0a"})
    shard.release()
    time.sleep(3.2)  # the parent's own heartbeat goes stale too
    lease(bucket, "two").acquire({"0a"})


def test_of_runs_starting_together_over_the_same_customers_exactly_one_starts(bucket: str) -> None:
    started: list[str] = []
    refused: list[Any] = []
    gate = threading.Barrier(5)

    def start(run: str) -> None:
        gate.wait()
        try:
            lease(bucket, run).acquire({"00", "3f", "a1"})
            started.append(run)
        except SetupError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=start, args=(f"r{i}",)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1
    assert len(refused) == 4
