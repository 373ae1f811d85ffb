"""Compaction of the document index on a local-folder store: nothing lost, writers and readers undisturbed."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.ledger import Ledger
from connectors.ledger_index import compact, compact_partition, read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location
from tests.support.ledger_records import fill_ledger
from transforms.exactly_once import DocState, partition_of

CUSTOMERS = [f"cust-{i}" for i in range(40)]


def _root(tmp_path: Path) -> Location:
    return Location(None, str(tmp_path / "_documents"))


def _files(root: Location, prefix: str) -> list[Path]:
    return sorted(p for p in Path(root.key).rglob(f"{prefix}*"))


def _state(store: ObjectStore, root: Location, customers: list[str]) -> tuple[dict[str, object], dict[object, str]]:
    ledger = Ledger(store, root).load(customers)
    return dict(ledger.documents), dict(ledger.uploads)


def test_compaction_keeps_every_document_and_upload_and_removes_the_segments(tmp_path: Path) -> None:
    store, root = ObjectStore(None), _root(tmp_path)
    fill_ledger(store, root, CUSTOMERS, "run-a", DocState.attached)
    before = _state(store, root, CUSTOMERS)
    segments = len(_files(root, "seg-"))

    done = compact(store, root)

    assert sum(c.segments_folded for c in done) == segments > 0
    assert _files(root, "seg-") == []
    assert len(_files(root, "compact-")) == len({partition_of(c) for c in CUSTOMERS})
    assert _state(store, root, CUSTOMERS) == before
    assert len(before[0]) == len(CUSTOMERS)
    assert all(rec.state is DocState.attached for rec in before[0].values())  # type: ignore[attr-defined]


def test_segments_written_after_compaction_win_over_the_compacted_state(tmp_path: Path) -> None:
    store, root = ObjectStore(None), _root(tmp_path)
    fill_ledger(store, root, CUSTOMERS, "run-a", DocState.failed)
    compact(store, root)
    fill_ledger(store, root, CUSTOMERS[:5], "run-b", DocState.attached)

    docs, _ = _state(store, root, CUSTOMERS)

    assert {k for k, r in docs.items() if r.state is DocState.attached} == {  # type: ignore[attr-defined]
        f"doc-{c}" for c in CUSTOMERS[:5]}
    assert docs["doc-cust-0"].run_id == "run-b"  # type: ignore[attr-defined]
    # compacting again folds the newer segments in, and the answer stays the same
    compact(store, root)
    assert _state(store, root, CUSTOMERS)[0] == docs
    assert _files(root, "seg-") == []


class _AppendDuringCompaction(ObjectStore):
    """A store on which another writer appends a segment while the compacted file is being written."""

    def __init__(self, root: Location, customer: str) -> None:
        super().__init__(None)
        self.root, self.customer, self.appended = root, customer, False

    def write(self, loc: Location, data: bytes, **kw: object) -> None:
        if "compact-" in loc.key and not self.appended:
            self.appended = True
            fill_ledger(ObjectStore(None), self.root, [self.customer], "run-late", DocState.attached)
        super().write(loc, data, **kw)  # type: ignore[arg-type]


def test_a_segment_appended_during_compaction_survives_it(tmp_path: Path) -> None:
    root = _root(tmp_path)
    customer = CUSTOMERS[0]
    fill_ledger(ObjectStore(None), root, [customer], "run-a", DocState.failed)
    folded = set(_files(root, "seg-"))
    store = _AppendDuringCompaction(root, customer)

    compact_partition(store, root, partition_of(customer))

    assert store.appended
    late = set(_files(root, "seg-"))  # the late segments, not folded in, not deleted
    assert late and not late & folded
    docs, uploads = _state(ObjectStore(None), root, [customer])
    assert docs[f"doc-{customer}"].run_id == "run-late"  # type: ignore[attr-defined]
    assert docs[f"doc-{customer}"].state is DocState.attached  # type: ignore[attr-defined]
    assert len(uploads) == 1


class _CompactsWhileRead(ObjectStore):
    """A store on which a compaction finishes between a reader's listing and its first read."""

    def __init__(self, root: Location, part: str) -> None:
        super().__init__(None)
        self.root, self.part, self.compacted = root, part, False

    def read(self, loc: Location) -> bytes:
        if not self.compacted:
            self.compacted = True
            compact_partition(ObjectStore(None), self.root, self.part)
        return super().read(loc)


def test_a_reader_racing_a_compaction_sees_every_record(tmp_path: Path) -> None:
    root = _root(tmp_path)
    fill_ledger(ObjectStore(None), root, CUSTOMERS, "run-a", DocState.attached)
    part = partition_of(CUSTOMERS[0])
    mine = [c for c in CUSTOMERS if partition_of(c) == part]
    expected = read_records(ObjectStore(None), root, part, mine)
    store = _CompactsWhileRead(root, part)

    got = read_records(store, root, part, mine)

    assert store.compacted
    assert _files(root.child(part), "seg-") == []
    assert got == expected


def test_fields_the_compacted_layout_has_no_column_for_are_kept(tmp_path: Path) -> None:
    store, root = ObjectStore(None), _root(tmp_path)
    part = partition_of("cust-x")
    rec = {"k": "doc", "id": "d1", "c": "cust-x", "p": "p1", "s": "attached", "run": "r", "sha": ["abc"],
           "init": False}
    store.write(root.child(part, "seg-00000000000000000001-aaaa.jsonl"), (json.dumps(rec) + "\n").encode())

    compact(store, root)

    assert _files(root, "seg-") == []
    assert read_records(store, root, part) == [rec]


def test_two_compactions_side_by_side_lose_nothing_and_count_records_once(tmp_path: Path) -> None:
    store, root = ObjectStore(None), _root(tmp_path)
    customer = CUSTOMERS[0]
    part = partition_of(customer)
    fill_ledger(store, root, [customer], "run-a", DocState.failed)
    first_segments = _files(root, "seg-")
    # a second compaction that listed the same segments plus a newer one: both compacted files exist at once
    copies = {p: p.read_bytes() for p in first_segments}
    compact_partition(store, root, part)
    for p, data in copies.items():
        p.write_bytes(data)
    fill_ledger(store, root, [customer], "run-b", DocState.attached)
    compact_partition(_KeepsOtherCompacts(), root, part)
    assert len(_files(root, "compact-")) == 2

    records = read_records(store, root, part)
    docs, _ = _state(store, root, [customer])

    assert [r["s"] for r in records if r["k"] == "doc"] == ["in_flight", "failed", "in_flight", "attached"]
    assert docs[f"doc-{customer}"].run_id == "run-b"  # type: ignore[attr-defined]
    compact(store, root)
    assert len(_files(root, "compact-")) == 1
    assert read_records(store, root, part) == records


class _KeepsOtherCompacts(ObjectStore):
    """A compaction that did not see the other's compacted file in its listing (it deletes only segments)."""

    def __init__(self) -> None:
        super().__init__(None)

    def list(self, prefix: Location) -> list[Location]:
        return [loc for loc in super().list(prefix) if "compact-" not in loc.key]


def test_a_run_folds_its_segments_into_a_file_of_their_own_until_the_files_are_merged(tmp_path: Path) -> None:
    store, root = ObjectStore(None), _root(tmp_path)
    customer = CUSTOMERS[0]
    part = partition_of(customer)
    fill_ledger(store, root, [customer], "run-0", DocState.failed)
    compact(store, root)
    base = _files(root, "compact-")

    for n in range(1, 4):  # three runs, each folded on its own: the first compacted file is never rewritten
        fill_ledger(store, root, [customer], f"run-{n}", DocState.failed)
        compact(store, root, merge_at=5)
        assert set(base) <= set(_files(root, "compact-"))
        assert len(_files(root, "compact-")) == 1 + n
        assert _files(root, "seg-") == []
    assert Ledger(store, root).load([customer]).documents[f"doc-{customer}"].run_id == "run-3"
    records = read_records(store, root, part)

    fill_ledger(store, root, [customer], "run-4", DocState.attached)
    compact(store, root, merge_at=5)  # the fifth file: everything merged into one

    assert len(_files(root, "compact-")) == 1 and not set(base) & set(_files(root, "compact-"))
    assert read_records(store, root, part)[: len(records)] == records
    docs = Ledger(store, root).load([customer]).documents
    assert (docs[f"doc-{customer}"].state, docs[f"doc-{customer}"].run_id) == (DocState.attached, "run-4")
