"""Prefect overhead: task runs per flow run for a 5M-row manifest, and wall time outside shard work.

Run: `uv run python bench/bench_prefect.py [--rows 5000000] [--customers 150] [--rate 200]`

1. Task runs: the plan stage on a generated manifest of --rows rows (bench/gen.py) with the default settings
   (shard_rows 20,000, max_shards 400); the flow makes one task run for the plan and one per shard.
2. Overhead: a small real run of `flows.attach_flow.attach_manifest` against the sandbox (20 ms latency, rate
   limit R) and an S3 server, each in its own process; from Prefect's own task-run records, the share of the
   flow run's wall time during which no shard task was running (plan, Prefect's bookkeeping, report).
   Prefect's ephemeral server is started by a no-op flow first; that one-off start is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_e2e import BUCKET, CLIENT_ID, CLIENT_SECRET, OUT, scenario, servers  # noqa: E402
from bench.gen import generate  # noqa: E402


def count_task_runs(rows: int) -> dict[str, Any]:
    from connectors.manifest import open_manifest
    from connectors.workarea import read_slot_range
    from flows.plan import plan_manifest
    from flows.settings import Settings
    from transforms.rules import Rules

    settings = Settings()
    path = generate(rows, "parquet")
    run_dir = OUT / "prefect-plan"
    started = time.perf_counter()
    plan = plan_manifest(open_manifest(str(path), store=None, cache_dir=OUT), rules=Rules(today=date.today()),
                         run_dir=run_dir, batch_rows=settings.batch_rows, slots=settings.max_shards,
                         shard_rows=settings.shard_rows)
    wall = time.perf_counter() - started
    sizes = sorted(read_slot_range(s.rows, columns=["row_number"]).num_rows for s in plan.shards)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"rows": plan.rows_in, "shards": len(plan.shards), "task_runs": len(plan.shards) + 1, "plan_s": wall,
            "shard_rows_min": sizes[0], "shard_rows_median": sizes[len(sizes) // 2], "shard_rows_max": sizes[-1]}


async def _task_runs(flow_run_id: Any) -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        flow_run = await client.read_flow_run(flow_run_id)
    out = [{"name": r.name, "start": r.start_time.timestamp(), "end": r.end_time.timestamp()}
           for r in runs if r.start_time and r.end_time]
    out.append({"name": "__flow__", "start": flow_run.start_time.timestamp(), "end": flow_run.end_time.timestamp()})
    return out


def child(manifest: str, report_uri: str) -> dict[str, Any]:
    from prefect import flow

    from flows.attach_flow import attach_manifest

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        return None

    warm_up()
    started = time.perf_counter()
    state = asyncio.run(attach_manifest(manifest, report_uri, return_state=True))  # type: ignore[call-overload]
    wall = time.perf_counter() - started
    summary = state.result()
    if asyncio.iscoroutine(summary):
        summary = asyncio.run(summary)
    flow_run_id = state.state_details.flow_run_id
    runs = asyncio.run(_task_runs(flow_run_id))
    return {"wall_s": wall, "runs": runs, "by_status": summary["by_status"]}


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--customers", type=int, default=150)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    c = count_task_runs(args.rows)
    print(f"plan of {c['rows']:,} rows ({c['plan_s']:.1f} s): {c['shards']} shards -> {c['task_runs']} task runs per "
          f"flow run (target < 500); rows per shard min/median/max {c['shard_rows_min']:,}/"
          f"{c['shard_rows_median']:,}/{c['shard_rows_max']:,}", flush=True)

    from connectors.s3 import make_s3_client
    from flows.commands.demo import manifest_csv

    OUT.mkdir(parents=True, exist_ok=True)
    world, rows, files = scenario(args.customers, 8)
    (OUT / "world-prefect.json").write_text(json.dumps(world))
    with servers(OUT / "world-prefect.json") as (api, env, _sandbox, _moto):
        import httpx

        httpx.post(f"{api}/_sandbox/faults", json={"latency": {"distribution": "fixed", "ms": 20},
                                                   "rate_limit": {"rps": args.rate, "burst": int(args.rate)}})
        s3 = make_s3_client()
        s3.create_bucket(Bucket=BUCKET)
        for key, data in files.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        s3.put_object(Bucket=BUCKET, Key="manifests/p.csv", Body=manifest_csv(rows))
        run_env = {**env, "FIN_API_URL": api, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                   "KYC_ATTACH_RATE_LIMIT_RPS": str(args.rate), "KYC_ATTACH_WORK_DIR": str(OUT / "work"),
                   # Small shards, so this small run has several shard task runs, as a big one would.
                   "KYC_ATTACH_SHARD_ROWS": str(max(1, len(rows) // 8)),
                   "PREFECT_HOME": str(OUT / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
        report = f"s3://{BUCKET}/reports/{int(time.time() * 1000)}"
        res = subprocess.run([sys.executable, __file__, "--child", f"s3://{BUCKET}/manifests/p.csv", report],
                             env=run_env, cwd=ROOT, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr[-4000:])
    r = json.loads(res.stdout.strip().splitlines()[-1])
    flow = next(x for x in r["runs"] if x["name"] == "__flow__")
    flow_wall = flow["end"] - flow["start"]
    shards = [(x["start"], x["end"]) for x in r["runs"] if x["name"].startswith("shard-")]
    plan = [(x["start"], x["end"]) for x in r["runs"] if x["name"].startswith("plan")]
    in_shards = _union(shards)
    print(f"small real run: {len(rows):,} rows, {len(r['runs']) - 1} task runs ({len(shards)} shards), flow run "
          f"{flow_wall:.2f} s (call {r['wall_s']:.2f} s); shard work {in_shards:.2f} s, plan task "
          f"{_union(plan):.2f} s; outside shard work {flow_wall - in_shards:.2f} s = "
          f"{(flow_wall - in_shards) / flow_wall:.0%} of the flow run; {r['by_status']}")


if __name__ == "__main__":
    main()
