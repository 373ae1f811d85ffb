"""Benchmark the plan stage (read + validate + shard) against a naive pandas baseline, side by side.

Run: `uv run python bench/bench_plan.py` (1M and 5M rows, CSV and Parquet; naive baseline on 1M only)
     `KYC_ATTACH_WORK_COMPRESSION=lz4 uv run python bench/bench_plan.py --rows 1000000 --baseline-rows` (the rows
     file compressed: its size is printed on each line)
     `uv run python bench/bench_plan.py --rows 1000000 --baseline-rows 1000000 5000000` (baseline on 5M too)

Each case runs in a fresh child process (`python bench/bench_plan.py --child ...`) so its peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss` of the child) belongs to that case alone. Manifests are generated
(vectorised, see bench/gen.py) into bench/out/ and reused by later runs. Also printed: grouping speed (the
per-shard step of the shard worker) on one shard of the plan's output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gen import OUT, generate  # noqa: E402

# ---- children ----------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child_ours(path: str, group: bool) -> dict[str, Any]:
    """The real plan stage, as the flow's plan task calls it (Settings defaults)."""
    from datetime import date

    from connectors.manifest import open_manifest
    from connectors.workarea import read_slot_range
    from flows.plan import plan_manifest
    from flows.settings import Settings
    from transforms.rules import Rules

    settings = Settings()
    rules = Rules(today=date.today())
    run_dir = OUT / f"run-{os.getpid()}"
    rss_imports = _peak_rss_mb()
    started = time.perf_counter()
    manifest = open_manifest(path, store=None, cache_dir=OUT)  # local file: includes its SHA-256 (the job id)
    opened = time.perf_counter()
    cpu = _cpu_s()
    plan = plan_manifest(manifest, rules=rules, run_dir=run_dir, batch_rows=settings.batch_rows,
                         slots=settings.max_shards, shard_rows=settings.shard_rows,
                         compression=settings.work_compression)
    done = time.perf_counter()
    out = {"rows": plan.rows_in, "rejected": plan.rows_rejected, "shards": len(plan.shards),
           "hash_s": opened - started, "plan_s": done - opened, "cpu_s": _cpu_s() - cpu, "peak_rss_mb": _peak_rss_mb(),
           "rss_after_imports_mb": rss_imports, "compression": settings.work_compression,
           "rows_file_mb": (run_dir / "rows.arrow").stat().st_size / 1e6}
    if group:
        from transforms.grouping import group_documents

        spec = plan.shards[len(plan.shards) // 2]

        rows = read_slot_range(spec.rows)
        t0 = time.perf_counter()
        grouped = group_documents(rows, rules)
        out.update(group_rows=rows.num_rows, group_s=time.perf_counter() - t0, group_docs=len(grouped.documents))
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_S3 = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*[^/]$")


def child_naive(path: str) -> dict[str, Any]:
    """What a first version usually looks like: pandas reads the whole file, a Python loop checks each row
    (the same kinds of rules) and builds nested dicts customer -> document -> rows, then hashes them into slots."""
    from datetime import date, datetime

    import pandas as pd
    import pycountry

    from transforms.catalogue import CATEGORY_OF_TYPE

    alpha3 = {c.alpha_3 for c in pycountry.countries}
    today = date.today()
    started = time.perf_counter()
    cpu = _cpu_s()
    df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, dtype=str, keep_default_na=False)
    rejects: list[dict[str, Any]] = []
    groups: dict[str, dict[tuple[Any, ...], list[dict[str, Any]]]] = {}

    def clean(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and v != v):
            return None
        v = str(v).strip()
        return v or None

    for i, row in enumerate(df.to_dict("records"), start=1):
        r = {k: clean(v) for k, v in row.items()}
        cid, dtype, uri = (r["customer_id"] or "").lower(), (r["document_type"] or "").upper(), r["s3_uri"] or ""
        reason = None
        if not cid or not dtype or not uri or not (r["associated_party_id"] or r["associated_party_email"]):
            reason = "missing_field"
        elif not _UUID.match(cid):
            reason = "bad_uuid"
        elif dtype not in CATEGORY_OF_TYPE:
            reason = "unknown_type"
        elif not _S3.match(uri):
            reason = "bad_s3_uri"
        elif CATEGORY_OF_TYPE[dtype] == "identifying":
            try:
                issue = datetime.strptime(r["issue_date"] or "", "%Y-%m-%d").date()
                expiry = datetime.strptime(r["expiry_date"] or "", "%Y-%m-%d").date()
                if (r["country"] or "").upper() not in alpha3:
                    reason = "bad_country"
                elif issue > expiry:
                    reason = "issue_after_expiry"
                elif expiry < today:
                    reason = "expired"
            except ValueError:
                reason = "bad_date"
        if reason:
            rejects.append({"row_number": i, "reason_code": reason})
            continue
        key = (dtype, r["document_number"], r["associated_party_id"] or r["associated_party_email"])
        groups.setdefault(cid, {}).setdefault(key, []).append({**r, "row_number": i})
    slots: dict[int, list[str]] = {}
    for cid in groups:
        slots.setdefault(hash(cid) % 400, []).append(cid)
    done = time.perf_counter()
    return {"rows": len(df), "rejected": len(rejects), "customers": len(groups), "plan_s": done - started,
            "cpu_s": _cpu_s() - cpu, "hash_s": 0.0, "peak_rss_mb": _peak_rss_mb()}


# ---- parent ------------------------------------------------------------------------------------------


def run_child(kind: str, path: Path, group: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, str(path)] + (["--group"] if group else [])
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} {path.name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description="plan stage vs a naive baseline")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    p.add_argument("--formats", nargs="+", default=["parquet", "csv"], choices=("parquet", "csv"))
    p.add_argument("--baseline-rows", type=int, nargs="*", default=[1_000_000],
                   help="sizes to run the naive baseline on (5M takes minutes and ~10 GB)")
    p.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--group", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, path = args.child
        print(json.dumps(child_ours(path, args.group) if kind == "ours" else child_naive(path)))
        return

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} "
          "(shared machine: wall-clock rows/s move with the load, rows per CPU-s much less)")
    results: list[tuple[str, int, str, dict[str, Any]]] = []
    for rows in args.rows:
        for fmt in args.formats:
            path = generate(rows, fmt)
            ours = run_child("ours", path, group=(rows == args.rows[0] and fmt == "parquet"))
            results.append(("ours", rows, fmt, ours))
            _line("ours", rows, fmt, ours)
            if "group_s" in ours:
                print(f"    grouping (one shard, {ours['group_rows']:,} rows -> {ours['group_docs']:,} documents): "
                      f"{ours['group_rows'] / ours['group_s']:,.0f} rows/s", flush=True)
            if rows in args.baseline_rows:
                naive = run_child("naive", path)
                results.append(("naive", rows, fmt, naive))
                _line("naive", rows, fmt, naive)
                print(f"    speed-up ours/naive: {naive['plan_s'] / ours['plan_s']:.1f}x, "
                      f"peak RSS naive/ours: {naive['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    ours_by = {(r, f): res for k, r, f, res in results if k == "ours"}
    lo, hi = min(args.rows), max(args.rows)
    if lo != hi:
        for fmt in args.formats:
            a, b = ours_by[(lo, fmt)], ours_by[(hi, fmt)]
            print(f"{fmt}: peak RSS {hi:,} rows vs {lo:,}: {b['peak_rss_mb']:,.0f} vs {a['peak_rss_mb']:,.0f} MB "
                  f"({100 * (b['peak_rss_mb'] / a['peak_rss_mb'] - 1):+.0f}%)")


def _line(kind: str, rows: int, fmt: str, r: dict[str, Any]) -> None:
    rate = r["rows"] / r["plan_s"]
    extra = f", +{r['hash_s']:.2f} s SHA-256 of the file (job id)" if r.get("hash_s") else ""
    if "rows_file_mb" in r:
        extra += f", rows file {r['rows_file_mb']:,.0f} MB ({r['compression']})"
    print(f"{kind:5} {fmt:7} {r['rows']:>9,} rows: {r['plan_s']:6.2f} s = {rate:>10,.0f} rows/s "
          f"({r['rows'] / r['cpu_s']:>9,.0f} rows per CPU-s), "
          f"peak RSS {r['peak_rss_mb']:6,.0f} MB, rejected {r['rejected']:,}{extra}", flush=True)


if __name__ == "__main__":
    main()
