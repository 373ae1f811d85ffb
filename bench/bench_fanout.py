"""Fan-out at a shared rate: 2 and 4 process workers on a real Prefect server against the harsh sandbox.

Run: `uv run python bench/bench_fanout.py` (R = 400, 2 then 4 workers; ~6 minutes)
     `uv run python bench/bench_fanout.py --rate 100 --workers 2 --seconds 60`
     `uv run python bench/bench_fanout.py --rate 200 --workers 2 --seconds 15`

A loopback `prefect server start`, deployments/prefect.yaml applied, N `prefect worker start` processes on one
process pool (2 flow runs each), the sandbox (one bucket of R/s holding R/10, 429 without Retry-After, 20 ms)
and moto. The parent flow runs in this process and fans its shards out, one per worker slot (``--waves`` more);
the shard runs working at once split R evenly, each counting the others on the Prefect server
(connectors/rate_share). Printed per worker count: requests let through per second (the sandbox's meter: mean
over the whole seconds between the first and the last), the median second (the rate while shard runs work,
without the ramp and the tail), the most in any one second (never above R is the aim),
the 429 share, rows failed, documents attached twice, and the parent's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_e2e import (  # noqa: E402
    BUCKET,
    CLIENT_ID,
    CLIENT_SECRET,
    OUT,
    REQS_PER_CUSTOMER,
    bucket_with,
    faults_for,
    scenario,
    servers,
)


def main() -> None:
    p = argparse.ArgumentParser(description="fan-out at a shared rate against the harsh sandbox")
    p.add_argument("--rate", type=float, default=400.0)
    p.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--waves", type=int, default=1,
                   help="shards per worker slot: waves after the first wait for a worker to start their process")
    p.add_argument("--timeline", action="store_true", help="also print the sandbox's count of every second")
    args = p.parse_args()

    from bench.support.fanout_world import POOL, SHARD_DEPLOYMENT, FanOutWorld, worker_env
    from bench.support.prefect_server import prefect_server
    from flows.commands.demo import manifest_csv

    out = OUT.parent / "fanout"
    out.mkdir(parents=True, exist_ok=True)
    customers = int(args.rate * args.seconds / REQS_PER_CUSTOMER)
    world, rows, files = scenario(customers, 32)
    (out / "world.json").write_text(json.dumps(world))
    with servers(out / "world.json") as (api, _env, _sandbox, _moto):
        s3 = bucket_with(files)
        s3.put_object(Bucket=BUCKET, Key="manifests/fanout.csv", Body=manifest_csv(rows))
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; R = {args.rate:g} req/s "
              f"shared, {customers} customers, {len(rows)} rows", flush=True)
        print(f"{'workers':>7} {'rate':>7} {'% of R':>7} {'median/s':>8} {'max/s':>6} {'429s':>6} {'failed':>6} "
              f"{'twice':>5} {'wall s':>7} {'shards':>6}", flush=True)
        settings = {"FIN_API_URL": api, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                    "KYC_ATTACH_RATE_LIMIT_RPS": str(args.rate), "KYC_ATTACH_SETTLE_DELAY_S": "0",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        os.environ.update(settings)
        for n in args.workers:
            home = out / f"prefect-{n}-{int(time.time())}"
            home.mkdir(parents=True)
            with prefect_server(home) as server, ExitStack() as stack:
                server.cli("work-pool", "create", POOL, "--type", "process")
                server.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
                dirs = [home / f"work-w{i}" for i in range(n)]
                # fanned-out runs keep one ledger on S3, a fresh one per worker count (the sandbox is reset too)
                ledger = {"KYC_ATTACH_LEDGER_URI": f"s3://{BUCKET}/ledger-{n}-{int(time.time())}"}
                os.environ.update(ledger)
                procs = [stack.enter_context(server.worker(
                    POOL, {**worker_env(server, api, d), **settings, **ledger}, name=f"w{i}", limit=2))
                    for i, d in enumerate(dirs)]
                httpx.post(f"{api}/_sandbox/reset").raise_for_status()
                httpx.post(f"{api}/_sandbox/faults", json=faults_for("harsh", args.rate, 20.0)).raise_for_status()
                os.environ.update({"KYC_ATTACH_SHARD_DEPLOYMENT": SHARD_DEPLOYMENT,
                                   "KYC_ATTACH_WORK_URI": f"s3://{BUCKET}/work-{n}",
                                   "KYC_ATTACH_WORK_DIR": str(home / "parent"),
                                   # one shard per worker slot and wave (each worker runs 2 at once)
                                   "KYC_ATTACH_SHARD_ROWS": str(max(1, -(-len(rows) // (2 * n * args.waves)))),
                                   "KYC_ATTACH_RATE_LIMIT_NAME": f"bench-{n}"})
                started = time.perf_counter()
                summary = FanOutWorld(server, [w.pid for w in procs], dirs).run(
                    f"s3://{BUCKET}/manifests/fanout.csv", f"s3://{BUCKET}/reports/fanout-{n}")
                wall = time.perf_counter() - started
                record = httpx.get(f"{api}/_sandbox/record").json()
                total = sum(record["requests"].values())
                rate = record["rate"]["inner_mean"]
                # the middle second: the rate while shard runs work, without the ramp and the tail
                typical = statistics.median(record["rate"]["per_second"][1:-1] or [0])
                print(f"{n:7d} {rate:7.1f} {rate / args.rate:7.0%} {typical:8.0f} "
                      f"{record['rate']['max_per_second']:6d} "
                      f"{record['responses'].get('429', 0) / max(total, 1):6.1%} "
                      f"{summary['by_status'].get('failed', 0):6d} {record['duplicates']['attachments']:5d} "
                      f"{wall:7.1f} {summary['shards']:6d}", flush=True)
                if args.timeline:
                    print("        requests let through, second by second:", *record["rate"]["per_second"], flush=True)


if __name__ == "__main__":
    main()
