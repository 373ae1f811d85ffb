"""End to end against a harsh sandbox: ours (told the limit, not told) vs a bare client, side by side.

Run: `uv run python bench/bench_e2e.py --rates 100 10 --runs 5` (each case 5 times per contender; median, min-max)
     `uv run python bench/bench_e2e.py --rates 100 --seconds 20 --cases harsh attach`
     `uv run python bench/bench_e2e.py --rates 10 --cases harsh --without echoes noise-floor` (the ablation)
     `uv run python bench/bench_e2e.py --rates 100 --cases harsh --who blind`  (one contender, ~1.5 minutes)
     `uv run --with py-spy python bench/bench_e2e.py --rates 400 --py-spy /tmp/ours`  (profile ours)

Everything runs in its own process: the sandbox (`python -m sandbox`), an S3 server (moto), and each contender.
The sandbox throttles as real gateways do: one token bucket of R requests/s holding only R/10, 429s
**without** `Retry-After`, fixed 20 ms latency. Cases:
- `harsh`: that alone;
- `attach`: that plus an attach-only bucket of R/10 (burst 1): end to end, customers/s cannot pass R/10;
- `noise`: that plus 10% of requests answered 429 at random (at the first rate only).
Contenders, on the same customers, files and attach bodies; the sandbox is reset between runs:
- `told`: the real flow `flows.attach_flow.attach_manifest` (Prefect ephemeral server, warmed up by a no-op flow
  first) with KYC_ATTACH_RATE_LIMIT_RPS=R, and in the `attach` case also
  KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS={"attach": R/10};
- `blind`: the same with the limit unknown, KYC_ATTACH_RATE_LIMIT_RPS=10×R;
- `told-RULE`, `blind-RULE` (`--without RULE ...`): the same with one pacing rule taken out
  (bench/support/pacing_ablation.py);
- `bare`: a minimal asyncio httpx loop with no limiter that retries each 429 after a short random pause (0–50 ms):
  token, GET customer, per file one S3 GET and the upload, the attaches. No ledger, no report, no Prefect.
Figures, from the sandbox's side: `rate` is requests let through per second, the mean over the whole seconds
between the first and the last request (the sandbox's meter), so Prefect's start and the report do not dilute
it; token requests do not open that span (ours asks for its token in its start-up checks, a second or two before
the plan is ready: counted, that empty second costs a told run ~4 points); `429s` their share of
all requests; `failed` rows (ours only);
`twice` documents attached twice (the sandbox's record); `wall` seconds of the whole run.
With `--runs N` every contender runs each case N times (the runs of a case interleaved, so a spell of load on the
shared machine falls on all of them), and a table per case gives the median and the spread (min-max) of `% of R`,
the median 429 share, and the sums of failed rows and documents attached twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.support.pacing_ablation import RULES, VARIABLE  # noqa: E402

# BENCH_E2E_OUT: another folder, for a second invocation at the same time (its own Prefect home and world)
OUT = Path(os.environ.get("BENCH_E2E_OUT", ROOT / "bench" / "out" / "e2e"))
BUCKET = "bench-e2e"
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"
REQS_PER_CUSTOMER = 6  # GET customer, 4 uploads, 1 attach


def free_ports(n: int) -> list[int]:
    """``n`` different ports nobody listens on now (held open together, so two calls cannot give the same)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


# ---- the scenario ----------------------------------------------------------------------------------


def scenario(customers: int, file_kb: int) -> tuple[dict[str, Any], list[dict[str, str]], dict[str, bytes]]:
    """World, manifest rows and files: per customer a passport, a two-sided national id and a utility bill."""
    from flows.commands.demo import demo_world
    from flows.commands.demo_samples import sample_jpeg, sample_pdf, sample_png

    world = demo_world(customers=customers, parties=2)
    size = file_kb * 1024  # padding inside each file: bytes after its end marker would be refused
    blobs = {"pdf": sample_pdf("kyc", pad_to=size), "jpg": sample_jpeg(pad_to=size), "png": sample_png(pad_to=size)}
    rows: list[dict[str, str]] = []
    files: dict[str, bytes] = {}
    ident = {"country": "USA", "issue_date": "2021-03-10", "expiry_date": "2031-03-10"}
    for c, cust in enumerate(world["customers"]):
        cid = cust["customer_id"]
        p0, p1 = (p["id"] for p in cust["associated_parties"][:2])
        entries = [
            ("passport.pdf", "pdf", dict(associated_party_id=p0, document_type="PASSPORT", document_number=f"P{c}",
                                         **ident)),
            ("id-front.jpg", "jpg", dict(associated_party_id=p1, document_type="NATIONAL_ID", document_number=f"N{c}",
                                         side="FRONT", **ident)),
            ("id-back.png", "png", dict(associated_party_id=p1, document_type="NATIONAL_ID", document_number=f"N{c}",
                                        side="BACK", **ident)),
            ("bill.pdf", "pdf", dict(associated_party_id=p1, document_type="UTILITY_BILL",
                                     document_date=(date.today().replace(day=1)).isoformat())),
        ]
        for name, kind, fields in entries:
            key = f"docs/{c}/{name}"
            files[key] = blobs[kind]
            rows.append({"customer_id": cid, "s3_uri": f"s3://{BUCKET}/{key}", **fields})
    return world, rows, files


def plan_requests(rows: list[dict[str, str]]) -> dict[str, list[Any]]:
    """Per customer, its documents (grouped by the project's own pure code, so bodies are identical)."""
    import pyarrow as pa

    from transforms.columns import CANONICAL_COLUMNS
    from transforms.grouping import group_documents
    from transforms.rules import Rules
    from transforms.validate import validate_batch

    rules = Rules(today=date.today())
    table = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in CANONICAL_COLUMNS})
    grouped = group_documents(validate_batch(table, rules=rules, first_row_number=1), rules)
    assert not grouped.rejects, grouped.rejects[:3]
    by_customer: dict[str, list[Any]] = defaultdict(list)
    for d in grouped.documents:
        by_customer[d.customer_id].append(d)
    return by_customer


# ---- contenders ---------------------------------------------------------------------------------------


def _token(payload: dict[str, Any]) -> str:
    return str(payload.get("data", payload)["access_token"])


def _uri(resp: httpx.Response) -> str:
    merged: dict[str, str] = {}
    for item in resp.json()["data"]["files"]:
        merged.update(item)
    return merged["file"]


def _content_type(key: str) -> str:
    return {"pdf": "application/pdf", "jpg": "image/jpeg", "png": "image/png"}[key.rsplit(".", 1)[1]]


async def run_bare(api: str, by_customer: dict[str, list[Any]], max_parties: int = 10) -> dict[str, Any]:
    """The same work per document with no limiter: each 429 is sent again after a short random pause.

    It reads every file it uploads from S3 (one GET each, boto3 in a worker thread: what a hand-written
    loop has to do too), then posts the bytes.
    """
    import random

    from connectors.s3 import make_s3_client
    from transforms.payload import build_attach_requests

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16))
    s3 = make_s3_client(max_pool_connections=32)
    statuses: dict[int, int] = defaultdict(int)
    # 16 connections, as ours: httpx's pool costs more CPU per request as connections grow.
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as http:
        started = time.perf_counter()

        async def call(method: str, path: str, **kw: Any) -> httpx.Response:
            while True:
                r = await http.request(method, path, **kw)
                statuses[r.status_code] += 1
                if r.status_code != 429:
                    return r
                await asyncio.sleep(random.uniform(0.0, 0.05))

        resp = await call("POST", "/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        headers = {"Authorization": f"Bearer {_token(resp.json())}"}
        gate = asyncio.Semaphore(64)

        def read(key: str) -> bytes:
            return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        async def upload(cid: str, s3_uri: str) -> tuple[str, str]:
            key = s3_uri.split("/", 3)[3]
            data = await asyncio.to_thread(read, key)
            r = await call("POST", "/v1/customers/upload", headers=headers, data={"customer_id": cid},
                           files={"file": (key.replace("/", "_"), data, _content_type(key))})
            return s3_uri, _uri(r)

        async def customer(cid: str, docs: list[Any]) -> None:
            async with gate:
                await call("GET", f"/v2/customers/{cid}", headers=headers)
                uris = dict(await asyncio.gather(*(upload(cid, f.s3_uri) for d in docs for f in d.files)))
                by_party: dict[str, list[Any]] = defaultdict(list)
                for d in docs:
                    by_party[d.party_id].append(d)
                for req in build_attach_requests(cid, by_party, uris, max_parties):
                    await call("POST", f"/v2/customers/{cid}/associated-parties/individual/attach", headers=headers,
                               json=req.body)

        await asyncio.gather(*(customer(c, d) for c, d in by_customer.items()))
        wall = time.perf_counter() - started
    return {"wall_s": wall, "requests": sum(statuses.values()), "statuses": dict(statuses)}


def child_ours(manifest: str, report_uri: str) -> dict[str, Any]:
    """The real flow in this (child) process; env carries the settings and the pacing rules to take out."""
    from prefect import flow

    from bench.support.pacing_ablation import take_out_from_environment
    from flows.attach_flow import run_attach

    take_out_from_environment()

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        return None

    warm_up()  # starts Prefect's ephemeral server: a one-off cost of any process, not of this manifest
    cpu0 = _cpu()
    started = time.perf_counter()
    summary = asyncio.run(run_attach(manifest, report_uri))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": _cpu() - cpu0, "requests": sum(summary["api"]["requests"].values()),
            "by_status": summary["by_status"], "api": summary["api"], "shards": summary["shards"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ---- parent --------------------------------------------------------------------------------------------


@contextmanager
def servers(world: Path, *, max_upload_bytes: int | None = None) -> Iterator[tuple[str, dict[str, str], Any, Any]]:
    """An S3 server (moto) and the sandbox, each in its own process; yields the API url, the env, the procs.

    This process's AWS_* variables point boto3 at the S3 server.
    """
    s3_port, api_port = free_ports(2)
    s3_url, api = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{api_port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_url, "AWS_ENDPOINT_URL_S3": s3_url, "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    moto = subprocess.Popen(
        [sys.executable, "-c", "import logging,time; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
         "from moto.server import ThreadedMotoServer as S; "
         f"s=S(ip_address='127.0.0.1', port={s3_port}, verbose=False); s.start(); time.sleep(1e9)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extra = ["--max-upload-bytes", str(max_upload_bytes)] if max_upload_bytes else []
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(api_port), "--world", str(world), "--admin", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(s3_url)
        wait_http(f"{api}/_sandbox/record")
        # A server that could not bind its port would leave whatever holds the port answering in its place: say so.
        for name, proc in (("S3 server", moto), ("sandbox", sandbox)):
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited at start (code {proc.returncode}): its port was taken?")
        yield api, env, sandbox, moto
    finally:
        for proc in (sandbox, moto):
            proc.terminate()
            proc.wait(timeout=10)


CASES = ("harsh", "attach", "noise")


def bucket_with(files: dict[str, bytes]) -> Any:
    """The benchmark's bucket on the S3 server, holding ``files``; an S3 client to add more."""
    from connectors.s3 import make_s3_client

    s3 = make_s3_client(max_pool_connections=32)
    s3.create_bucket(Bucket=BUCKET)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), files.items()))
    return s3


def faults_for(case: str, rate: float, latency_ms: float) -> dict[str, Any]:
    """The sandbox's faults for one case at rate R (see the module's docstring)."""
    limits: list[dict[str, Any]] = [{"rps": rate, "burst": max(1, int(rate / 10)), "retry_after": False}]
    if case == "attach":
        limits.append({"rps": rate / 10, "burst": 1, "retry_after": False, "endpoints": ["attach"]})
    faults: dict[str, Any] = {"latency": {"distribution": "fixed", "ms": latency_ms}, "rate_limit": limits}
    if case == "noise":
        faults["random_429"] = {"share": 0.10}
    return faults


def told_endpoint_limits(case: str, rate: float) -> dict[str, float]:
    """What a run told the limits is told of single endpoints: the attach-only limit, where there is one."""
    return {"attach": rate / 10} if case == "attach" else {}


def run_ours(env: dict[str, str], manifest: str, limit: float, endpoint_limits: dict[str, float],
             py_spy: str | None, without: str = "") -> dict[str, Any]:
    """The real flow in a child process, told ``limit`` as KYC_ATTACH_RATE_LIMIT_RPS and ``endpoint_limits`` as
    KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS, with the pacing rule ``without`` taken out (bench/support/pacing_ablation)."""
    # A work folder (and ledger) of its own: every run starts from nothing, as the sandbox (reset) does, and a
    # ledger left by a sandbox on another port would be another tenant's.
    stamp = int(time.time() * 1000)
    run_env = {**env, "KYC_ATTACH_RATE_LIMIT_RPS": str(limit), "KYC_ATTACH_WORK_DIR": str(OUT / "work" / str(stamp)),
               "KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS": json.dumps(endpoint_limits), VARIABLE: without,
               "PREFECT_HOME": str(OUT / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    report = f"s3://{BUCKET}/reports/{stamp}"
    cmd = [sys.executable, __file__, "--child", manifest, report]
    if py_spy:  # on-CPU samples of ours, collapsed stacks (`uv run --with py-spy ...`)
        cmd = ["py-spy", "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o", py_spy, "--", *cmd]
    res = subprocess.run(cmd, env=run_env, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-4000:])
    ours: dict[str, Any] = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    return ours


def seen_by_sandbox(api: str) -> dict[str, Any]:
    """What the sandbox saw of the last run: requests let through per second, 429s, attachments made twice."""
    record = httpx.get(f"{api}/_sandbox/record").json()
    total = sum(record["requests"].values())
    refused = record["responses"].get("429", 0)
    seconds = max(record["rate"]["seconds"], 1)
    return {"rate": record["rate"]["inner_mean"], "max_per_second": record["rate"]["max_per_second"],
            "share_429": refused / max(total, 1), "twice": record["duplicates"]["attachments"],
            "attachments": len(record["attachments"]), "attach_rate": record["rate"]["attach_inner_mean"],
            "seconds": seconds, "per_second": record["rate"]["per_second"],
            "attach_per_second": record["rate"]["attach_per_second"],
            "refused_per_second": record["rate"]["refused_per_second"]}


def main() -> None:
    p = argparse.ArgumentParser(description="end to end against a harsh sandbox: ours (told, not told) vs bare")
    p.add_argument("--rates", type=float, nargs="+", default=[100.0, 400.0])
    p.add_argument("--seconds", type=float, default=20.0, help="target length of each run at rate R")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--file-kb", type=int, default=32)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--who", nargs="+", choices=("told", "blind", "bare"), default=["told", "blind", "bare"],
                   help="contenders to run (a quick check of one; the side-by-side figures need all three)")
    p.add_argument("--without", nargs="*", choices=list(RULES), default=[],
                   help="also run told and blind with each of these pacing rules taken out, one at a time")
    p.add_argument("--runs", type=int, default=5, help="runs of each case per contender (median and spread)")
    p.add_argument("--py-spy", metavar="PREFIX", help="profile ours with py-spy into PREFIX-<case>-<R>.txt")
    p.add_argument("--timeline", action="store_true", help="also print the sandbox's count of every second")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child_ours(*args.child)))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    customers = int(max(args.rates) * args.seconds / REQS_PER_CUSTOMER)
    world, rows, files = scenario(customers, args.file_kb)
    (OUT / "world.json").write_text(json.dumps(world))
    with servers(OUT / "world.json") as (api, env, _sandbox, _moto):
        from flows.commands.demo import manifest_csv

        s3 = bucket_with(files)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared: other jobs run); "
              f"sandbox: bucket of R/s holding R/10, 429 without Retry-After, {args.latency_ms:g} ms latency; "
              f"{args.file_kb} KB files", flush=True)
        env = {**env, "FIN_API_URL": api, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET}
        by_customer_all = plan_requests(rows)
        order = list(by_customer_all)
        print(f"{'case':7} {'R':>5} {'who':14} {'run':>3} {'rate':>7} {'% of R':>7} {'429s':>6} {'failed':>6} "
              f"{'twice':>5} {'wall s':>7}  notes", flush=True)
        contenders = [(who, "") for who in args.who]
        contenders += [(who, rule) for rule in args.without for who in args.who if who != "bare"]
        for case in args.cases:
            for rate in args.rates[:1] if case == "noise" else args.rates:
                # attach-limited: one attach per customer, so R/10 customers a second at most
                n = int(rate * args.seconds / (10 if case == "attach" else REQS_PER_CUSTOMER))
                subset = {c: by_customer_all[c] for c in order[:n]}
                sub_rows = [r for r in rows if r["customer_id"] in subset]
                key = f"manifests/m-{case}-{int(rate)}-{n}.csv"
                body = manifest_csv(sub_rows)
                faults = faults_for(case, rate, args.latency_ms)
                target = rate / 10 if case == "attach" else rate
                runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for run in range(1, args.runs + 1):
                    for who, without in contenders:
                        label = f"{who}-{without}" if without else who
                        # Written again for each contender: moto once listed the manifest after a long run and yet
                        # answered its HEAD (ours and this process's alike) with 404.
                        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                        httpx.post(f"{api}/_sandbox/reset").raise_for_status()
                        httpx.post(f"{api}/_sandbox/faults", json=faults).raise_for_status()
                        if who == "bare":
                            result = asyncio.run(run_bare(api, subset))
                            failed = "-"
                        else:
                            spy = f"{args.py_spy}-{case}-{int(rate)}-{label.replace('/', '-')}.txt" if args.py_spy \
                                else None
                            told = who == "told"
                            result = run_ours(env, f"s3://{BUCKET}/{key}", rate if told else 10 * rate,
                                              told_endpoint_limits(case, rate) if told else {}, spy, without)
                            failed = str(result["by_status"].get("failed", 0))
                        seen = seen_by_sandbox(api)
                        got = seen["attach_rate"] if case == "attach" else seen["rate"]
                        runs[label].append({"share": got / target, "429": seen["share_429"], "twice": seen["twice"],
                                            "failed": 0 if failed == "-" else int(failed)})
                        notes = f"{n} customers, {len(sub_rows)} rows"
                        if case == "attach":
                            notes += f"; rate is attaches/s (all requests {seen['rate']:.0f}/s)"
                        if who != "bare":
                            notes += f"; throttled {result['api'].get('throttled_seconds', 0)} s"
                        print(f"{case:7} {rate:5g} {label:14} {run:3d} {got:7.1f} {got / target:7.0%} "
                              f"{seen['share_429']:6.1%} {failed:>6} {seen['twice']:5d} {result['wall_s']:7.1f}  "
                              f"{notes}", flush=True)
                        if args.timeline:
                            print("        let through, second by second:", *seen["per_second"], flush=True)
                            print("        429s, second by second:      ", *seen["refused_per_second"], flush=True)
                            if case == "attach":
                                print("        attaches, second by second:", *seen["attach_per_second"], flush=True)
                print_spread(case, rate, runs, os.getloadavg()[0])


def print_spread(case: str, rate: float, runs: dict[str, list[dict[str, Any]]], load: float) -> None:
    """One case's runs per contender: median and min-max of the share of R, median 429s, failed and twice summed."""
    print(f"-- {case} R={rate:g}, {max(len(r) for r in runs.values())} runs each, load average now {load:.1f}: "
          "contender | % of R median (min-max) | 429s median | failed | twice", flush=True)
    for label, results in runs.items():
        shares = [r["share"] for r in results]
        spread = f"{statistics.median(shares):5.0%} ({min(shares):.0%}-{max(shares):.0%})"
        refused = statistics.median(r["429"] for r in results)
        print(f"-- {case} R={rate:g} {label:14} | {spread} | {refused:6.1%} | {sum(r['failed'] for r in results)}"
              f" | {sum(r['twice'] for r in results)}", flush=True)


if __name__ == "__main__":
    main()
