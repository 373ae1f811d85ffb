"""End to end against the sandbox (20 ms latency, rate limit R): ours vs a sequential loop vs the limit.

Run: `uv run python bench/bench_e2e.py` (R = 200 and 400, ~20 s of requests each)
     `uv run python bench/bench_e2e.py --rates 200 600 --seconds 30 --file-kb 200`
     `uv run --with py-spy python bench/bench_e2e.py --rates 200 --py-spy /tmp/ours`  (profile ours)

Everything runs in its own process: the sandbox (`python -m sandbox`, faults: fixed 20 ms latency and a token
bucket of R requests/s, burst R), an S3 server (moto), and each contender:
- ours: the real flow `flows.attach_flow.attach_manifest` (Prefect ephemeral server, warmed up by a no-op flow
  first so its one-off start is not counted), KYC_ATTACH_RATE_LIMIT_RPS=R, every other setting default;
- sequential: a plain loop, one request at a time: GET customer, then per file a GET from S3 and the upload,
  then the attach (run on the first --seq-customers customers: it does not depend on R);
- limit: a minimal asyncio httpx client doing the same work per document through an aiolimiter at R/s:
  token, GET customer, per file one S3 GET (boto3 in a worker thread, as a hand-written loop must) and the
  upload, the attaches; 429s waited out. No ledger, no report, no Prefect.
The same customers, files and attach bodies for all three; the sandbox is reset between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "e2e"
BUCKET = "bench-e2e"
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"
REQS_PER_CUSTOMER = 6  # GET customer, 4 uploads, 1 attach


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    from flows.demo import demo_world
    from flows.demo_samples import sample_jpeg, sample_pdf, sample_png

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

    from transforms.grouping import group_documents
    from transforms.rules import Rules
    from transforms.validate import CANONICAL_COLUMNS, validate_batch

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


async def run_limit(api: str, rate: float, by_customer: dict[str, list[Any]], max_parties: int = 10) -> dict[str, Any]:
    """The same work per document, fired as fast as an aiolimiter at `rate` lets the API requests go.

    It reads every file it uploads from S3 (one GET each, boto3 in a worker thread: what a hand-written
    loop has to do too), then posts the bytes; a 429 is waited out and sent again.
    """
    from aiolimiter import AsyncLimiter

    from connectors.s3 import make_s3_client
    from transforms.payload import build_attach_requests

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16))
    s3 = make_s3_client(max_pool_connections=32)
    limiter = AsyncLimiter(rate, 1.0)
    statuses: dict[int, int] = defaultdict(int)
    # 16 connections, as ours: httpx's pool costs more CPU per request as connections grow (DESIGN.md).
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as http:
        started = time.perf_counter()
        async with limiter:
            resp = await http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        headers = {"Authorization": f"Bearer {_token(resp.json())}"}
        gate = asyncio.Semaphore(64)

        async def call(method: str, path: str, **kw: Any) -> httpx.Response:
            while True:
                async with limiter:
                    r = await http.request(method, path, headers=headers, **kw)
                statuses[r.status_code] += 1
                if r.status_code != 429:
                    return r
                await asyncio.sleep(float(r.headers.get("Retry-After") or 0.1))

        def read(key: str) -> bytes:
            return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        async def upload(cid: str, s3_uri: str) -> tuple[str, str]:
            key = s3_uri.split("/", 3)[3]
            data = await asyncio.to_thread(read, key)
            r = await call("POST", "/v1/customers/upload", data={"customer_id": cid},
                           files={"file": (key.replace("/", "_"), data, _content_type(key))})
            return s3_uri, _uri(r)

        async def customer(cid: str, docs: list[Any]) -> None:
            async with gate:
                await call("GET", f"/v2/customers/{cid}")
                uris = dict(await asyncio.gather(*(upload(cid, f.s3_uri) for d in docs for f in d.files)))
                by_party: dict[str, list[Any]] = defaultdict(list)
                for d in docs:
                    by_party[d.party_id].append(d)
                for req in build_attach_requests(cid, by_party, uris, max_parties):
                    await call("POST", f"/v2/customers/{cid}/associated-parties/individual/attach", json=req.body)

        await asyncio.gather(*(customer(c, d) for c, d in by_customer.items()))
        wall = time.perf_counter() - started
    return {"wall_s": wall, "requests": sum(statuses.values()) + 1, "statuses": dict(statuses)}


def run_sequential(api: str, by_customer: dict[str, list[Any]], max_parties: int = 10) -> dict[str, Any]:
    """One request at a time, S3 reads included: what a first script would do."""
    from connectors.s3 import make_s3_client
    from transforms.payload import build_attach_requests

    s3 = make_s3_client()
    statuses: dict[int, int] = defaultdict(int)
    with httpx.Client(base_url=api, timeout=60) as http:
        started = time.perf_counter()
        resp = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        headers = {"Authorization": f"Bearer {_token(resp.json())}"}
        for cid, docs in by_customer.items():
            statuses[http.get(f"/v2/customers/{cid}", headers=headers).status_code] += 1
            uris = {}
            for d in docs:
                for f in d.files:
                    key = f.s3_uri.split("/", 3)[3]
                    data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                    r = http.post("/v1/customers/upload", headers=headers, data={"customer_id": cid},
                                  files={"file": (key.replace("/", "_"), data, _content_type(key))})
                    statuses[r.status_code] += 1
                    uris[f.s3_uri] = _uri(r)
            by_party: dict[str, list[Any]] = defaultdict(list)
            for d in docs:
                by_party[d.party_id].append(d)
            for req in build_attach_requests(cid, by_party, uris, max_parties):
                path = f"/v2/customers/{cid}/associated-parties/individual/attach"
                statuses[http.post(path, headers=headers, json=req.body).status_code] += 1
        wall = time.perf_counter() - started
    return {"wall_s": wall, "requests": sum(statuses.values()) + 1, "statuses": dict(statuses)}


def child_ours(manifest: str, report_uri: str) -> dict[str, Any]:
    """The real flow in this (child) process; env carries the settings."""
    from prefect import flow

    from flows.attach_flow import attach_manifest

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        return None

    warm_up()  # starts Prefect's ephemeral server: a one-off cost of any process, not of this manifest
    cpu0 = _cpu()
    started = time.perf_counter()
    summary = asyncio.run(attach_manifest(manifest, report_uri))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": _cpu() - cpu0, "requests": sum(summary["api"]["requests"].values()),
            "by_status": summary["by_status"], "api": summary["api"], "shards": summary["shards"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ---- parent --------------------------------------------------------------------------------------------


@contextmanager
def servers(world: Path, *, max_upload_bytes: int | None = None) -> Iterator[tuple[str, dict[str, str], Any, Any]]:
    """An S3 server (moto) and the sandbox, each in its own process; yields the API url, the env, the procs.

    This process's AWS_* variables point boto3 at the S3 server.
    """
    s3_port, api_port = free_port(), free_port()
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
        yield api, env, sandbox, moto
    finally:
        for proc in (sandbox, moto):
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(description="end to end: ours vs sequential vs the limit")
    p.add_argument("--rates", type=float, nargs="+", default=[200.0, 400.0])
    p.add_argument("--seconds", type=float, default=20.0, help="target length of each run at rate R")
    p.add_argument("--seq-customers", type=int, default=40)
    p.add_argument("--file-kb", type=int, default=32)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--py-spy", metavar="PREFIX", help="profile ours with py-spy into PREFIX-<R>.txt")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child_ours(*args.child)))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    customers = int(max(args.rates) * args.seconds / REQS_PER_CUSTOMER)
    world, rows, files = scenario(customers, args.file_kb)
    (OUT / "world.json").write_text(json.dumps(world))
    with servers(OUT / "world.json") as (api, env, sandbox, moto):
        from connectors.s3 import make_s3_client

        s3 = make_s3_client(max_pool_connections=32)
        s3.create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), files.items()))
        print(f"machine: {os.cpu_count()} cores (shared: other jobs were running); sandbox latency "
              f"{args.latency_ms:g} ms fixed; {len(files):,} files of {args.file_kb} KB put to S3 in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        by_customer_all = plan_requests(rows)
        order = list(by_customer_all)
        from flows.demo import manifest_csv

        seq_done = False
        for rate in args.rates:
            n = int(rate * args.seconds / REQS_PER_CUSTOMER)
            subset = {c: by_customer_all[c] for c in order[:n]}
            docs = sum(len(d) for d in subset.values())
            sub_rows = [r for r in rows if r["customer_id"] in subset]
            key = f"manifests/m-{int(rate)}-{n}.csv"
            s3.put_object(Bucket=BUCKET, Key=key, Body=manifest_csv(sub_rows))
            faults = {"latency": {"distribution": "fixed", "ms": args.latency_ms},
                      "rate_limit": {"rps": rate, "burst": int(rate)}}
            print(f"\nR = {rate:g} req/s: {n:,} customers, {len(sub_rows):,} files, {docs:,} documents", flush=True)

            def reset(faults: dict[str, Any] = faults) -> None:
                httpx.post(f"{api}/_sandbox/reset").raise_for_status()
                httpx.post(f"{api}/_sandbox/faults", json=faults).raise_for_status()

            reset()
            run_env = {**env, "FIN_API_URL": api, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                       "KYC_ATTACH_RATE_LIMIT_RPS": str(rate), "KYC_ATTACH_WORK_DIR": str(OUT / "work"),
                       "PREFECT_HOME": str(OUT / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
            report = f"s3://{BUCKET}/reports/{int(time.time() * 1000)}"
            sb0, s30 = proc_cpu(sandbox.pid), proc_cpu(moto.pid)
            cmd = [sys.executable, __file__, "--child", f"s3://{BUCKET}/{key}", report]
            if args.py_spy:  # on-CPU samples of ours, collapsed stacks (`uv run --with py-spy ...`)
                cmd = ["py-spy", "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o",
                       f"{args.py_spy}-{int(rate)}.txt", "--", *cmd]
            res = subprocess.run(cmd,
                                 env=run_env, cwd=ROOT, capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(res.stderr[-4000:])
            ours = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
            ours["side_cpu"] = (proc_cpu(sandbox.pid) - sb0, proc_cpu(moto.pid) - s30)
            record = httpx.get(f"{api}/_sandbox/record").json()
            _line("ours", ours, docs, len(sub_rows))
            print(f"      attached rows {ours['by_status'].get('attached', 0):,}/{len(sub_rows):,}, "
                  f"sandbox saw {len(record.get('uploads', [])):,} uploads, statuses {ours['api']['statuses']}, "
                  f"{ours['shards']} shards, CPU {ours['cpu_s']:.1f} s (sandbox {ours['side_cpu'][0]:.1f} s, S3 "
                  f"{ours['side_cpu'][1]:.1f} s), peak RSS {ours['peak_rss_mb']:.0f} MB",
                  flush=True)
            reset()
            sb0, s30, c0 = proc_cpu(sandbox.pid), proc_cpu(moto.pid), _cpu()
            limit = asyncio.run(run_limit(api, rate, subset))
            limit["side_cpu"] = (proc_cpu(sandbox.pid) - sb0, _cpu() - c0, proc_cpu(moto.pid) - s30)
            _line("limit", limit, docs, len(sub_rows))
            print(f"      statuses {limit['statuses']}, CPU {limit['side_cpu'][1]:.1f} s (sandbox "
                  f"{limit['side_cpu'][0]:.1f} s, S3 {limit['side_cpu'][2]:.1f} s)", flush=True)
            print(f"    ours / limit = {limit['wall_s'] / ours['wall_s']:.0%} (documents/s)", flush=True)
            if not seq_done:
                reset()
                seq_subset = {c: subset[c] for c in order[: args.seq_customers]}
                seq = run_sequential(api, seq_subset)
                seq_docs = sum(len(d) for d in seq_subset.values())
                _line("seq", seq, seq_docs, 4 * len(seq_subset))
                print(f"      ({len(seq_subset)} customers; one request at a time, so the same at any R >= its "
                      f"{seq['requests'] / seq['wall_s']:.0f} req/s)", flush=True)
                seq_done = True


def _line(kind: str, r: dict[str, Any], docs: int, files: int) -> None:
    print(f"  {kind:6} {r['wall_s']:6.1f} s: {docs / r['wall_s']:7.1f} documents/s, {files / r['wall_s']:7.1f} "
          f"files/s, {r['requests'] / r['wall_s']:6.1f} requests/s", flush=True)


if __name__ == "__main__":
    main()
