"""Where the plan stage's CPU goes: each part timed alone, on one thread, over a generated manifest.

Run: `uv run python bench/profile_plan.py [--rows 1000000] [--format parquet|csv]`

Prints, per million rows, the best of a few repetitions of: reading the manifest in batches, validation
(`validate_batch`), the customers' hash slots (`slot_of_row`), the by-slot gather (`Table.take`), and
writing the rows file. The stage runs these on three threads over two cores (bench/bench_plan.py times it whole).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gen import OUT, generate  # noqa: E402


def _best(fn: Callable[[], object], repeat: int) -> float:
    """Least process CPU time of ``repeat`` calls (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    import numpy as np
    import pyarrow as pa

    from connectors.manifest import iter_batches, open_manifest
    from connectors.workarea import RowsFileWriter
    from flows.settings import Settings
    from transforms.rules import Rules
    from transforms.sharding import slot_of_row
    from transforms.validate import VALIDATED_SCHEMA, validate_batch

    p = argparse.ArgumentParser(description="the plan stage's CPU by part")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    settings = Settings()
    pa.set_memory_pool(pa.jemalloc_memory_pool())  # as the plan stage does
    manifest = open_manifest(str(generate(args.rows, args.format)), store=None, cache_dir=OUT)
    rules = Rules(today=date.today())
    size = settings.batch_rows
    batches = list(iter_batches(manifest, batch_rows=size))
    checked = [validate_batch(b, rules=rules, first_row_number=1) for b in batches]
    slots = [slot_of_row(c.column("customer_id"), settings.max_shards) for c in checked]
    orders = [np.argsort(s, kind="stable") for s in slots]
    rows = [c.select(VALIDATED_SCHEMA.names).take(pa.array(o)) for c, o in zip(checked, orders, strict=True)]
    sorted_slots = [s[o] for s, o in zip(slots, orders, strict=True)]
    folder = OUT / "profile-rows"

    def write() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        writer = RowsFileWriter(folder / "rows.arrow", VALIDATED_SCHEMA, settings.max_shards,
                                compression=settings.work_compression)
        for table, slot in zip(rows, sorted_slots, strict=True):
            writer.write(table, slot)
        writer.close()

    parts = {
        "read (Arrow's decoding threads included)": lambda: list(iter_batches(manifest, batch_rows=size)),
        "validate": lambda: [validate_batch(b, rules=rules, first_row_number=1) for b in batches],
        "hash slots of the validated ids": lambda: [slot_of_row(c.column("customer_id"), settings.max_shards)
                                                    for c in checked],
        "gather by slot (take)": lambda: [c.select(VALIDATED_SCHEMA.names).take(pa.array(o))
                                            for c, o in zip(checked, orders, strict=True)],
        f"write the rows file ({settings.work_compression})": write,
    }
    total = sum(b.num_rows for b in batches)
    per_million = 1_000_000 / total
    print(f"{args.format}, {total:,} rows; CPU-s per million rows, best of {args.repeat}:")
    for name, fn in parts.items():
        print(f"  {name:45} {_best(fn, args.repeat) * per_million:6.3f}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
