"""One run at a time under a report location: the lease (local object store, a fake clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.run_lease import RunLease
from connectors.s3 import Location


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_run_is_refused_while_the_first_renews_and_admitted_once_it_ends(tmp_path: Path) -> None:
    store, root, clock = ObjectStore(None), Location(None, str(tmp_path)), Clock()
    first = RunLease(store, root, "one", clock=clock)
    first.acquire()
    second = RunLease(store, root, "two", clock=clock)
    with pytest.raises(SetupError, match="run one is working"):
        second.acquire()
    assert [p.name for p in (tmp_path / "_ledger" / "_active").iterdir()] == ["one.json"]  # nothing of two left
    first.release()
    second.acquire()


def test_a_dead_runs_lease_stops_counting_once_stale(tmp_path: Path) -> None:
    store, root, clock = ObjectStore(None), Location(None, str(tmp_path)), Clock()
    RunLease(store, root, "killed", clock=clock, stale_after_s=600).acquire()  # never released: kill -9
    clock.now += 601
    RunLease(store, root, "next", clock=clock, stale_after_s=600).acquire()


def test_a_lease_of_a_process_gone_from_this_machine_does_not_count(tmp_path: Path) -> None:
    import json

    store, root, clock = ObjectStore(None), Location(None, str(tmp_path)), Clock()
    RunLease(store, root, "killed", clock=clock).acquire()
    path = tmp_path / "_ledger" / "_active" / "killed.json"
    lease = json.loads(path.read_text())
    path.write_text(json.dumps({**lease, "pid": 2**22 + 12345}))  # no such process
    RunLease(store, root, "resumed", clock=clock).acquire()
