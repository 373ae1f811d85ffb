"""Benchmark the document index: the segment layout and the compacted layout side by side.

Run: `uv run python bench/bench_ledger.py` (1M and 10M documents)
     `uv run python bench/bench_ledger.py --docs 1000000 --sample 256` (every partition measured, no scaling)
     `uv run python bench/bench_ledger.py --manifest-rows 10000000` (the shard of a 10M-row manifest)
     `uv run python bench/bench_ledger.py --compacted-only` (bytes and the compacted loads only: minutes, not an hour)

Synthetic records are written straight to a local-folder ledger under bench/out/ledger-<docs>/ (vectorised with
pyarrow, one partition at a time): each document has one file, an upload record and two state records
(``in_flight`` then ``attached``, with their source object), 4 documents a customer (2 parties), uuids for
customers and parties, sha256 document keys, spread over 200 nightly runs (one segment per partition and run:
real runs write more, smaller segments, so the segment figures here are the layout's best case).

Both layouts are built for ``--sample`` of the 256 partitions only (16 by default, each holding the documents
it holds at the full size; 256 builds all: ~9 GB of segments at 10M, an hour on a busy machine), and every
figure is measured on them and scaled to 256 (said on the line). Printed for each size and layout: bytes on
disk; the time to load one shard's partitions (a shard of 20,000 rows = ~5,000 customers, which touch every
one of the 256 partitions) with ``connectors.ledger.Ledger.load``: a shard as the planner makes it (customers of
one range of the planner's hash slots, the range a manifest of ``--manifest-rows`` rows gives a shard; customers
the ledger knows already), and a shard of customers from every slot (what a run whose ``max_shards`` differs
from the compaction's slot count asks);
and compaction times: folding every segment into the compacted layout, and the end of a run (compacting the
partitions a run of 20,000 new documents wrote into, on top of compacted files). Times are wall and CPU of the
bench process (the machine may be shared: CPU time is the steadier figure; a compacted load is the best of three).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.ledger import Ledger  # noqa: E402
from connectors.ledger_index import compact, write_compact  # noqa: E402
from connectors.objects import ObjectStore  # noqa: E402
from connectors.s3 import Location  # noqa: E402
from flows.ledger_upkeep import MERGE_AT  # noqa: E402
from transforms.exactly_once import partition_of  # noqa: E402
from transforms.ledger_layout import DEFAULT_SLOTS, LAYOUT  # noqa: E402
from transforms.sharding import slots_of  # noqa: E402

OUT = ROOT / "bench" / "out"
DOCS_PER_CUSTOMER = 4
RUNS = 200
SHARD_ROWS = 20_000
PARTITIONS = 256
_HEX = np.array(list("0123456789abcdef"))


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, nbytes * 2), dtype="<U1")
    chars[:, 0::2], chars[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    return pa.array(np.ascontiguousarray(chars).view(f"<U{nbytes * 2}").ravel(), pa.string())


def _uuid(rng: np.random.Generator, n: int) -> pa.Array:
    h = _hex(rng, n, 16)
    parts = [pc.utf8_slice_codeunits(h, a, b) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-")


def _customers(n_docs: int, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    ids = _uuid(rng, n_docs // DOCS_PER_CUSTOMER).to_pylist()
    by_part: dict[str, list[str]] = {}
    for c in ids:
        by_part.setdefault(partition_of(c), []).append(c)
    return by_part


def _partition_table(customers: list[str], rng: np.random.Generator, run_of: np.ndarray | None = None) -> pa.Table:
    """Rows of the compacted layout for these customers' documents (upload, in_flight, attached each)."""
    n_c = len(customers)
    n = n_c * DOCS_PER_CUSTOMER
    c = pa.array(np.repeat(np.array(customers, dtype=object), DOCS_PER_CUSTOMER), pa.string())
    parties = [_uuid(rng, n_c), _uuid(rng, n_c)]
    party_no = np.tile(np.arange(DOCS_PER_CUSTOMER) % 2, n_c)
    cust_idx = np.repeat(np.arange(n_c), DOCS_PER_CUSTOMER)
    p = pc.if_else(pa.array(party_no == 0), parties[0].take(pa.array(cust_idx)), parties[1].take(pa.array(cust_idx)))
    key = _hex(rng, n, 32)
    runs = run_of if run_of is not None else rng.integers(0, RUNS, size=n_c)
    run_doc = np.repeat(runs, DOCS_PER_CUSTOMER)
    run = pc.binary_join_element_wise(pa.array(np.char.mod("2026-%05d", run_doc)), "T01-00-00-ab12", "")
    req = _hex(rng, n_c, 8).take(pa.array(cust_idx))
    at = 1.76e9 + run_doc * 86_400.0 + rng.random(n) * 3600
    src = pc.binary_join_element_wise(pa.array(np.char.mod("s3://kyc-inbox/exports/%05d/", run_doc)), c,
                                      pa.array(np.char.mod("/%d-front.pdf", np.arange(n) % DOCS_PER_CUSTOMER)), "")
    etag = _hex(rng, n, 16)
    uri = pc.binary_join_element_wise("/", _hex(rng, n, 6), "_passport.pdf", "")
    seg = pc.binary_join_element_wise(pa.array(np.char.mod("seg-%020d", run_doc)), "-bench000.jsonl", "")
    nulls_s = pa.nulls(n, pa.string())

    def rows(kind: str, state: str | None, t: np.ndarray, line0: int) -> pa.Table:
        doc = kind == "doc"
        return pa.table({
            "k": pa.array([kind] * n), "c": c, "id": key if doc else nulls_s, "p": p if doc else nulls_s,
            "s": pa.array([state] * n, pa.string()), "run": run if doc else nulls_s, "req": req if doc else nulls_s,
            "at": pa.array(at) if doc else pa.nulls(n, pa.float64()),
            "t": pa.array(t) if doc else pa.nulls(n, pa.float64()),
            "init": pa.array(np.ones(n, bool)) if doc else pa.nulls(n, pa.bool_()),
            "http": pa.array(np.full(n, 200, np.int16)) if state == "attached" else pa.nulls(n, pa.int16()),
            "o": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), src) if doc
            else pa.nulls(n, pa.list_(pa.string())),
            "src": nulls_s if doc else src, "etag": nulls_s if doc else etag, "uri": nulls_s if doc else uri,
            "x": nulls_s, "seg": seg, "line": pa.array(np.arange(n, dtype=np.int32) * 3 + line0),
        })

    table = pa.concat_tables([rows("upload", None, at, 0), rows("doc", "in_flight", at, 1),
                              rows("doc", "attached", at + 0.4, 2)])
    return table.sort_by([("c", "ascending"), ("seg", "ascending"), ("line", "ascending")])


def _jsonl(table: pa.Table) -> list[tuple[str, bytes]]:
    """The table as segments (name, bytes): one per run, lines as the ledger writes them."""
    q = '"'
    def s(col: str) -> pa.Array:
        return pc.binary_join_element_wise(q, table.column(col), q, "")
    f = {k: pc.cast(table.column(k), pa.string()) for k in ("at", "t", "http")}
    o = pc.binary_join_element_wise('["', pc.list_element(table.column("o"), 0), '"]', "")
    doc = pc.binary_join_element_wise(
        '{"k":"doc","id":', s("id"), ',"c":', s("c"), ',"p":', s("p"), ',"s":', s("s"), ',"run":', s("run"),
        ',"req":', s("req"), ',"at":', f["at"], ',"init":true,"http":', pc.fill_null(f["http"], "null"),
        ',"t":', f["t"], ',"o":', o, "}\n", "")
    upload = pc.binary_join_element_wise('{"k":"upload","c":', s("c"), ',"src":', s("src"), ',"etag":',
                                         s("etag"), ',"uri":', s("uri"), "}\n", "")
    line = pc.if_else(pc.equal(table.column("k"), "doc"), doc, upload)
    ordered = pa.table({"seg": table.column("seg"), "line": table.column("line"), "text": line}).sort_by(
        [("seg", "ascending"), ("line", "ascending")])
    out = []
    segs = ordered.column("seg").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, segs[1:] != segs[:-1]])
    ends = np.r_[starts[1:], len(segs)]
    text = ordered.column("text")
    for a, b in zip(starts, ends, strict=True):
        out.append((str(segs[a]), "".join(text.slice(a, b - a).to_pylist()).encode()))
    return out


def _t(wall: float, cpu: float) -> str:
    return f"{wall:.2f} s / {cpu:.2f} s"


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _sampled(parts: list[str], sample: int) -> set[str]:
    return set(parts[:: max(1, PARTITIONS // sample)][:sample])


def _build(n_docs: int, where: Path, sample: int) -> tuple[Location, Location, dict[str, list[str]]]:
    """Both layouts of the same records for the sampled partitions (every partition holds as many documents
    as at the full size), written once and reused by later runs."""
    seg_root, comp_root = where / "segments", where / "compacted"
    by_part = _customers(n_docs, seed=n_docs)
    segmented = _sampled(sorted(by_part), sample)
    done = where / f"done-{sample}-layout{LAYOUT}"
    if not done.exists():
        shutil.rmtree(where, ignore_errors=True)
        for i, (part, customers) in enumerate(sorted(by_part.items())):
            if part not in segmented:
                continue
            table = _partition_table(customers, np.random.default_rng(i))
            (comp_root / part).mkdir(parents=True, exist_ok=True)
            (comp_root / part / "compact-00000000000000000001-bench000.parquet").write_bytes(
                write_compact(table, folded=[]))
            (seg_root / part).mkdir(parents=True, exist_ok=True)
            for name, data in _jsonl(table):
                (seg_root / part / name).write_bytes(data)
        done.write_text("ok")
    return Location(None, str(seg_root)), Location(None, str(comp_root)), by_part


def _load(root: Location, customers: list[str]) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    ledger = Ledger(ObjectStore(None), root).load(customers)
    return time.perf_counter() - start, time.process_time() - cpu, len(ledger.documents)


def _night(store: ObjectStore, root: Location, parts: set[str], rng: np.random.Generator) -> None:
    """One run's segments in these partitions: 20,000 new documents of 5,000 new customers, spread over all
    256 partitions (those of other partitions are not written)."""
    fresh = _uuid(rng, SHARD_ROWS // DOCS_PER_CUSTOMER).to_pylist()
    mine: dict[str, list[str]] = {}
    for c in fresh:
        mine.setdefault(partition_of(c), []).append(c)
    for part, customers in mine.items():
        if part not in parts:
            continue
        table = _partition_table(customers, rng, run_of=np.full(len(customers), RUNS + 1))
        for name, data in _jsonl(table):
            store.write(root.child(part, name.replace("bench000", hashlib.sha1(part.encode()).hexdigest()[:8])),
                        data)


def _after_run(where: Path, comp_root: Location, sampled: set[str], n_parts: int, *,
               merge_at: int) -> tuple[float, float]:
    """The end of a run: one night's segments on top of the compacted layout, then compacting what it touched
    (``merge_at`` 1: rewriting each partition's file; more: the segments folded into a file of their own)."""
    night = where / "night"
    shutil.rmtree(night, ignore_errors=True)
    shutil.copytree(Path(comp_root.key), night)
    store = ObjectStore(None)
    _night(store, Location(None, str(night)), sampled, np.random.default_rng(11))
    start, cpu = time.perf_counter(), time.process_time()
    compact(store, Location(None, str(night)), merge_at=merge_at)
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    shutil.rmtree(night)
    return wall * n_parts / len(sampled), used * n_parts / len(sampled)


def _planned_shard(by_part: dict[str, list[str]], manifest_rows: int, rng: np.random.Generator) -> list[str]:
    """A shard as the planner makes it: customers of one range of slots, as many as a manifest of
    ``manifest_rows`` rows gives a shard (at most ``max_shards`` shards), drawn from the customers the ledger
    holds (a nightly full export repeats yesterday's customers)."""
    width = max(1, round(DEFAULT_SLOTS * SHARD_ROWS / manifest_rows))
    first = int(rng.integers(0, DEFAULT_SLOTS - width + 1))
    known = pa.array([c for cs in by_part.values() for c in cs], pa.string())
    slot = slots_of(known, DEFAULT_SLOTS)
    mine = known.filter(pa.array((slot >= first) & (slot < first + width))).to_pylist()
    take = min(len(mine), SHARD_ROWS // DOCS_PER_CUSTOMER)
    return sorted(rng.choice(np.array(mine, dtype=object), take, replace=False).tolist())


def _scattered_shard(by_part: dict[str, list[str]], rng: np.random.Generator) -> list[str]:
    """Customers the ledger holds from every slot."""
    parts = sorted(by_part)
    shard = [by_part[p][i % len(by_part[p])] for p, i in zip(
        rng.choice(parts, SHARD_ROWS // DOCS_PER_CUSTOMER), rng.integers(0, 10**9, SHARD_ROWS // DOCS_PER_CUSTOMER),
        strict=True)]
    return sorted(set(shard))


def _shard_load(seg_root: Location | None, comp_root: Location, shard: list[str], sampled: set[str],
                ) -> tuple[str, str, int]:
    """The load of one shard's customers in both layouts (wall / CPU, scaled to every partition it touches);
    without ``seg_root``, in the compacted layout only."""
    touched = {partition_of(c) for c in shard}
    scale = len(touched) / len(touched & sampled)
    mine = [c for c in shard if partition_of(c) in sampled]
    # best of three by CPU time: on a shared machine one pass may be slowed twofold by others' work
    comp_load, comp_cpu, comp_docs = min((_load(comp_root, mine) for _ in range(3)), key=lambda r: r[1])
    assert comp_docs == len(mine) * DOCS_PER_CUSTOMER, comp_docs
    if seg_root is None:
        return "", _t(comp_load * scale, comp_cpu * scale), len(shard)
    seg_load, seg_cpu, seg_docs = _load(seg_root, mine)
    assert seg_docs == comp_docs, (seg_docs, comp_docs)
    return _t(seg_load * scale, seg_cpu * scale), _t(comp_load * scale, comp_cpu * scale), len(shard)


def bench(n_docs: int, sample: int, night_only: bool = False, manifest_rows: int = 1_000_000,
          compacted_only: bool = False) -> None:
    where = OUT / f"ledger-{n_docs}"
    t0 = time.perf_counter()
    seg_root, comp_root, by_part = _build(n_docs, where, sample)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(7)
    parts = sorted(by_part)
    sampled = _sampled(parts, sample)

    if night_only:
        fold_run_s, fold_run_cpu = _after_run(where, comp_root, sampled, len(parts), merge_at=MERGE_AT)
        print(f"\n{n_docs:,} documents: fold a run's segments (20k docs) into a file of their own "
              f"{_t(fold_run_s, fold_run_cpu)} (on {len(sampled)} partitions, x{len(parts) / len(sampled):.0f})")
        return
    seg_bytes = _bytes(Path(seg_root.key)) * len(parts) // len(sampled)
    comp_bytes = _bytes(Path(comp_root.key)) * len(parts) // len(sampled)
    segs = None if compacted_only else seg_root
    planned = _shard_load(segs, comp_root, _planned_shard(by_part, manifest_rows, rng), sampled)
    scattered = _shard_load(segs, comp_root, _scattered_shard(by_part, rng), sampled)
    note = "" if len(sampled) == len(parts) else f"  (on {len(sampled)} partitions, x{len(parts) / len(sampled):.0f})"
    print(f"\n{n_docs:,} documents ({len(parts)} partitions of ~{n_docs // len(parts):,} documents; "
          f"{len(sampled)} built in {build_s:.0f} s and reused afterwards)")
    print(f"  {'':30} {'segments':>22} {'compacted':>22}   (wall / CPU of this process)")
    print(f"  {'ledger bytes':30} {seg_bytes / 1e9:>19.2f} GB {comp_bytes / 1e9:>19.3f} GB{note}")
    print(f"  {f'load a shard ({planned[2]:,} cust.)':30} {planned[0]:>22} {planned[1]:>22}{note}")
    print(f"  {'  same, from every slot':30} {scattered[0]:>22} {scattered[1]:>22}{note}")
    sys.stdout.flush()
    if compacted_only:
        return

    # folding the segments of the sampled partitions (a copy: the segment layout is kept for the next run)
    fold = where / "fold"
    shutil.rmtree(fold, ignore_errors=True)
    for p in sampled:
        shutil.copytree(Path(seg_root.key) / p, fold / p)
    start, cpu = time.perf_counter(), time.process_time()
    compact(ObjectStore(None), Location(None, str(fold)))
    fold_s = (time.perf_counter() - start) * len(parts) / len(sampled)
    fold_cpu = (time.process_time() - cpu) * len(parts) / len(sampled)
    shutil.rmtree(fold)

    night_s, night_cpu = _after_run(where, comp_root, sampled, len(parts), merge_at=1)
    fold_run_s, fold_run_cpu = _after_run(where, comp_root, sampled, len(parts), merge_at=MERGE_AT)

    print(f"  {'compact every segment':30} {'':>22} {_t(fold_s, fold_cpu):>22}{note}")
    print(f"  {'merge a run (20k docs) into one':30} {'':>22} {_t(night_s, night_cpu):>22}{note}")
    print(f"  {'fold a run (20k docs) alone':30} {'':>22} {_t(fold_run_s, fold_run_cpu):>22}{note}")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--sample", type=int, default=16, help="partitions timed for the segment load and the full "
                                                           "compaction (256: all, no scaling)")
    ap.add_argument("--night-only", action="store_true", help="only the end-of-run compaction that folds a run's "
                                                                  "segments alone (the layouts built before)")
    ap.add_argument("--compacted-only", action="store_true",
                    help="bytes of both layouts and the compacted layout's loads only (no segment loads, no "
                         "compaction: the quick way to the 10M figures)")
    ap.add_argument("--manifest-rows", type=int, default=1_000_000,
                    help="the manifest whose shard is loaded: its size sets the shard's range of slots")
    args = ap.parse_args()
    for n in args.docs:
        bench(n, args.sample, args.night_only, args.manifest_rows, args.compacted_only)


if __name__ == "__main__":
    main()
