"""The lease's rules, with the store's time given: when a lease counts and what a run may do with a lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from transforms.lease_rules import Lock, Verdict, heartbeat_interval_s, is_live, verdict

STORE_NOW = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return STORE_NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(("beats", "live"), [
    ([], False),  # every member ended (or none ever beat): nobody holds it
    ([ago(299)], True),
    ([ago(300)], False),  # exactly one window old: stale
    ([ago(900), ago(10)], True),  # a parent long dead, one shard run still working
    ([ago(900), ago(600)], False),
    ([STORE_NOW + timedelta(seconds=2)], True),  # stamped after the judge's own write: fresh
])
def test_a_lease_counts_while_one_heartbeat_is_younger_than_its_window(beats: list[datetime], live: bool) -> None:
    assert is_live(beats, STORE_NOW, 300.0) is live


def test_the_window_is_the_holders_not_the_judges() -> None:
    assert is_live([ago(100)], STORE_NOW, 120.0)
    assert not is_live([ago(100)], STORE_NOW, 60.0)
    assert heartbeat_interval_s(300.0) == 60.0


MINE = "run-b.1"
OTHER = Lock("run-a.1", "run-a", 300.0)


@pytest.mark.parametrize(("lock", "present", "holder_live", "expected"), [
    (None, False, False, Verdict.free),
    (Lock(MINE, "run-b", 300.0), True, True, Verdict.ours),
    (OTHER, True, True, Verdict.held),
    (OTHER, True, False, Verdict.take),
    (None, True, False, Verdict.take),  # an unreadable lock holds nobody
])
def test_what_a_run_may_do_with_a_partition_lock(lock: Lock | None, present: bool, holder_live: bool,
                                                 expected: Verdict) -> None:
    assert verdict(lock, present=present, lease_id=MINE, holder_live=holder_live) is expected


def test_a_lock_reads_back_and_every_write_is_a_new_version() -> None:
    assert Lock.parse(OTHER.body("n1")) == OTHER
    assert OTHER.body("n1") != OTHER.body("n2")  # a new ETag, so a conditional write of the same lease is seen
    assert Lock.parse(b"not json") is None
    assert Lock.parse(b'{"lease_id": "x"}') is None
