"""Benchmark the Fin API sandbox: attach req/s, 200 KB upload req/s, and memory while 1 GB streams through.

Run: `uv run python bench/bench_sandbox.py [--seconds 5] [--procs 2] [--conns 16]`

The sandbox runs in its own process (`python -m sandbox`), as the CLI runs it, so its CPU time and RSS can be
read from /proc. Two load generators, both named in the output:
- raw: several processes, each an asyncio loop of keep-alive HTTP/1.1 connections writing pre-built requests.
  It costs far less CPU per request than any HTTP client library, so it measures the server.
- httpx: a threaded `httpx.Client` (the project's client library) for comparison; on 2 cores it is usually the
  client, not the sandbox, that limits this figure.
The server's own cost is also given as requests per second of server CPU time, which does not depend on how
much of the machine the client took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLIENT = {"client_id": "bench", "client_secret": "bench-secret"}
PDF_HEAD = b"%PDF-1.4\n"
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


# ---- the sandbox process ---------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory (or its high-water mark with key=VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(key)


def start_sandbox(world: dict[str, Any], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m sandbox` with admin routes and a 2 GiB upload cap; wait until it answers."""
    path = workdir / "world.json"
    path.write_text(json.dumps(world))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            str(port),
            "--world",
            str(path),
            "--admin",
            "--max-upload-bytes",
            str(2 * 1024**3),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_sandbox/record", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sandbox did not start")


# ---- raw load generator ----------------------------------------------------------------------------


def http_request(method: str, path: str, token: str, content_type: str, body: bytes) -> bytes:
    """A complete HTTP/1.1 request, built once and written many times."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int, requests: list[bytes], offset: int, stop_at: float, counts: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


def _raw_worker(port: int, requests: list[bytes], conns: int, seconds: float, offset: int, out: Any) -> None:
    counts: dict[int, int] = {}

    async def main() -> float:
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(
            *(_connection(port, requests, offset + k * 7, stop_at, counts) for k in range(conns))
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    out.put((counts, elapsed))


def raw_load(
    port: int, requests: list[bytes], procs: int, conns: int, seconds: float
) -> tuple[dict[int, int], float]:
    """Drive the server from `procs` processes × `conns` connections for `seconds`.

    Returns the status counts and the load window (process start-up excluded)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_raw_worker, args=(port, requests, conns, seconds, p * 1000, out))
        for p in range(procs)
    ]
    for w in workers:
        w.start()
    total: dict[int, int] = {}
    window = 0.0
    for _ in workers:
        counts, elapsed = out.get(timeout=seconds + 60)
        window = max(window, elapsed)
        for status, n in counts.items():
            total[status] = total.get(status, 0) + n
    for w in workers:
        w.join()
    return total, window


# ---- httpx load generator --------------------------------------------------------------------------


def httpx_load(url: str, send: Any, threads: int, seconds: float) -> tuple[dict[int, int], float]:
    """Drive the server with one shared `httpx.Client` from `threads` threads; status counts and window."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with httpx.Client(base_url=url, limits=limits, timeout=30) as client:
        stop_at = time.perf_counter() + seconds

        def run(k: int) -> None:
            i = k
            local: dict[int, int] = {}
            while time.perf_counter() < stop_at:
                status = send(client, i)
                local[status] = local.get(status, 0) + 1
                i += threads
            with lock:
                for s, n in local.items():
                    counts[s] = counts.get(s, 0) + n

        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, range(threads)))
        window = time.perf_counter() - start
    return counts, window


# ---- scenarios ---------------------------------------------------------------------------------------


def multipart(customer_id: str, filename: str, content: bytes) -> bytes:
    """A multipart/form-data body with a customer_id field and one file."""
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\n{customer_id}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def report(label: str, counts: dict[int, int], seconds: float, cpu: float) -> None:
    """Print one throughput line."""
    total = sum(counts.values())
    ok = counts.get(200, 0)
    per_cpu = f"{total / cpu:,.0f} req per server-CPU-second" if cpu > 0 else "n/a"
    print(
        f"  {label:<58} {total / seconds:8,.0f} req/s  (200: {ok}, other: {total - ok}; "
        f"server CPU {cpu / seconds:4.0%} of a core; {per_cpu})"
    )


def stream_gigabyte(url: str, token: str, customer_id: str, total: int) -> float:
    """Upload one `total`-byte file over a raw socket in 1 MiB writes; return seconds taken."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\n{customer_id}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(head) + total + len(tail)
    port = int(url.rsplit(":", 1)[1])
    chunk = b"\0" * (1 << 20)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            (
                f"POST /v1/customers/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
            + head
            + PDF_HEAD
        )
        sent = len(PDF_HEAD)
        while sent < total:
            piece = chunk[: min(len(chunk), total - sent)]
            s.sendall(piece)
            sent += len(piece)
        s.sendall(tail)
        response = s.recv(65536)
    if b" 200 " not in response.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"1 GB upload failed: {response[:300]!r}")
    return time.perf_counter() - start


def main() -> None:
    """Run every scenario and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--procs", type=int, default=2, help="raw load-generator processes")
    parser.add_argument("--conns", type=int, default=16, help="connections per raw load-generator process")
    parser.add_argument("--threads", type=int, default=16, help="threads of the httpx client")
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of the streamed upload")
    args = parser.parse_args()

    customers = [str(uuid.uuid4()) for _ in range(200)]
    parties = {c: str(uuid.uuid4()) for c in customers}
    world = {
        "clients": [CLIENT],
        "customers": [
            {"customer_id": c, "associated_parties": [{"id": parties[c], "email": f"{i}@example.com"}]}
            for i, c in enumerate(customers)
        ],
    }

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_sandbox(world, Path(tmp))
        try:
            port = int(url.rsplit(":", 1)[1])
            http = httpx.Client(base_url=url, timeout=60)
            token = http.post("/v1/oauth/token", json=CLIENT).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            uris = {}
            for c in customers:
                r = http.post(
                    "/v1/customers/upload",
                    data={"customer_id": c},
                    files={"file": ("passport.pdf", PDF_HEAD + c.encode(), "application/pdf")},
                    headers=auth,
                )
                uris[c] = r.json()["data"]["files"][0]["file"]
            bodies = {
                c: json.dumps(
                    {
                        "associated_party_attachments": [
                            {
                                "associated_party_id": parties[c],
                                "identifying_documents": [
                                    {
                                        "type": "PASSPORT",
                                        "number": "A123",
                                        "country": "USA",
                                        "issue_date": "2020-01-15",
                                        "expiry_date": "2099-01-15",
                                        "files": [{"uri": uris[c]}],
                                    }
                                ],
                            }
                        ]
                    }
                ).encode()
                for c in customers
            }
            attach_requests = [
                http_request(
                    "POST",
                    f"/v2/customers/{c}/associated-parties/individual/attach",
                    token,
                    "application/json",
                    bodies[c],
                )
                for c in customers
            ]
            content = PDF_HEAD + os.urandom(200 * 1024 - len(PDF_HEAD))
            upload_bodies = {c: multipart(c, "statement.pdf", content) for c in customers}
            upload_requests = [
                http_request(
                    "POST",
                    "/v1/customers/upload",
                    token,
                    f"multipart/form-data; boundary={BOUNDARY}",
                    upload_bodies[c],
                )
                for c in customers
            ]

            print(
                f"Fin API sandbox benchmark — {os.cpu_count()} CPUs, sandbox pid {proc.pid} "
                f"(uvicorn, httptools, uvloop), no faults, {args.seconds:g} s per run"
            )

            def measure(label: str, run: Any) -> None:
                cpu0 = proc_cpu_seconds(proc.pid)
                counts, window = run()
                # The sandbox idles while load processes start, so its CPU delta belongs to the window.
                report(label, counts, window, proc_cpu_seconds(proc.pid) - cpu0)

            print("attach (one PASSPORT per request, 200 customers round-robin):")
            measure(
                f"raw client, {args.procs} procs x {args.conns} keep-alive conns",
                lambda: raw_load(port, attach_requests, args.procs, args.conns, args.seconds),
            )
            measure(
                f"httpx.Client, {args.threads} threads (client-bound)",
                lambda: httpx_load(
                    url,
                    lambda c, i: (
                        c.post(
                            f"/v2/customers/{customers[i % 200]}/associated-parties/individual/attach",
                            content=bodies[customers[i % 200]],
                            headers={**auth, "content-type": "application/json"},
                        ).status_code
                    ),
                    args.threads,
                    args.seconds,
                ),
            )
            print("upload (200 KB PDF per request):")
            measure(
                f"raw client, {args.procs} procs x {args.conns} keep-alive conns",
                lambda: raw_load(port, upload_requests, args.procs, args.conns, args.seconds),
            )
            measure(
                f"httpx.Client, {args.threads} threads",
                lambda: httpx_load(
                    url,
                    lambda c, i: (
                        c.post(
                            "/v1/customers/upload",
                            content=upload_bodies[customers[i % 200]],
                            headers={**auth, "content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                        ).status_code
                    ),
                    args.threads,
                    args.seconds,
                ),
            )

            http.post("/_sandbox/reset")  # drop the record's entries, so RSS shows streaming alone
            token = http.post("/v1/oauth/token", json=CLIENT).json()["access_token"]
            total = int(args.gigabytes * 1024**3)
            before = proc_rss_mb(proc.pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.02):
                    peak[0] = max(peak[0], proc_rss_mb(proc.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            elapsed = stream_gigabyte(url, token, customers[0], total)
            done.set()
            sampler.join()
            after = proc_rss_mb(proc.pid)
            (upload,) = http.get("/_sandbox/record").json()["uploads"]
            assert upload["size"] == total, upload
            print(
                f"streaming upload of {total / 1024**3:g} GiB in one request: "
                f"{total / 1024**2 / elapsed:,.0f} MiB/s; "
                f"sandbox RSS before {before:.1f} MB, peak during {peak[0]:.1f} MB, after {after:.1f} MB"
            )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
