"""The document index compacted on a real S3 server (moto over HTTP): nothing lost, a late segment kept, and a
reader that loses the race with a compaction reads the partition again."""

from __future__ import annotations

import pytest

from connectors.ledger import Ledger
from connectors.ledger_index import compact, compact_partition, read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from tests.support.ledger_records import fill_ledger
from transforms.exactly_once import DocState, partition_of

pytestmark = pytest.mark.slow

CUSTOMERS = [f"cust-{i}" for i in range(12)]


def _store() -> ObjectStore:
    return ObjectStore(S3Store(make_s3_client()))


def _names(store: ObjectStore, root: Location, prefix: str) -> set[str]:
    return {loc.key for loc in store.list(root) if loc.key.rpartition("/")[2].startswith(prefix)}


class _AppendDuringCompaction(ObjectStore):
    """Another run appends to the partition while the compacted file is being written."""

    def __init__(self, root: Location, customer: str) -> None:
        super().__init__(S3Store(make_s3_client()))
        self.root, self.customer, self.appended = root, customer, False

    def write(self, loc: Location, data: bytes, **kw: object) -> None:
        if "/compact-" in loc.key and not self.appended:
            self.appended = True
            fill_ledger(_store(), self.root, [self.customer], "run-late", DocState.attached)
        super().write(loc, data, **kw)  # type: ignore[arg-type]


def test_compaction_on_s3_keeps_every_record_and_a_concurrent_append(bucket: str) -> None:
    store, root = _store(), Location(bucket, "reports/_ledger/_documents")
    fill_ledger(store, root, CUSTOMERS, "run-a", DocState.failed)
    before = Ledger(store, root).load(CUSTOMERS)
    late_customer = CUSTOMERS[0]
    part = partition_of(late_customer)
    folded = _names(store, root, "seg-")
    racing = _AppendDuringCompaction(root, late_customer)

    compact_partition(racing, root, part)
    compact(store, root, [p for p in {partition_of(c) for c in CUSTOMERS} if p != part])

    assert racing.appended
    left = _names(store, root, "seg-")
    assert left and not left & folded  # only the late segments remain
    after = Ledger(store, root).load(CUSTOMERS)
    assert after.uploads == before.uploads
    assert {k: v for k, v in after.documents.items() if k != f"doc-{late_customer}"} == {
        k: v for k, v in before.documents.items() if k != f"doc-{late_customer}"}
    late = after.documents[f"doc-{late_customer}"]
    assert (late.state, late.run_id) == (DocState.attached, "run-late")


class _CompactsBetweenListAndRead(ObjectStore):
    """A compaction finishes (deleting the segments) after a reader listed the partition."""

    def __init__(self, root: Location, part: str) -> None:
        super().__init__(S3Store(make_s3_client()))
        self.root, self.part, self.compacted = root, part, False

    def read(self, loc: Location) -> bytes:
        if not self.compacted:
            self.compacted = True
            compact_partition(_store(), self.root, self.part)
        return super().read(loc)


def test_a_reader_on_s3_that_loses_the_race_with_a_compaction_reads_again(bucket: str) -> None:
    store, root = _store(), Location(bucket, "reports/_ledger/_documents")
    fill_ledger(store, root, CUSTOMERS, "run-a", DocState.attached)
    part = partition_of(CUSTOMERS[0])
    expected = read_records(store, root, part)
    reader = _CompactsBetweenListAndRead(root, part)

    got = read_records(reader, root, part)

    assert reader.compacted
    assert not _names(store, root.child(part), "seg-")
    assert got == expected
