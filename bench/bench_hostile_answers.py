"""What hostile answers cost the Fin client: the time a dribbled answer holds a request, the memory a huge one takes.

Run: `uv run python bench/bench_hostile_answers.py [--timeout 3] [--mib 300]`

The sandbox runs in its own process (`python -m sandbox`), so this process's peak RSS is the client's alone. Prints
one JSON line per case: a customer answer dribbled a byte every 50 ms under `KYC_ATTACH_REQUEST_TIMEOUT_S`
(`--timeout`), one attempt; then a customer answer of `--mib` MiB, with the client's peak RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.aiohttp_transport import Transport  # noqa: E402
from connectors.errors import KycAttachError  # noqa: E402
from connectors.fin import FinClient  # noqa: E402
from connectors.rate_limiter import EndpointLimiters  # noqa: E402
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _case(url: str, customer_id: str, timeout_s: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, transport=Transport()) as http:
        fin = FinClient(http, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET),
                        limiter=EndpointLimiters(1000), rng=random.Random(1), max_attempts=1)
        await fin.authenticate()
        started = time.monotonic()
        try:
            await fin.get_customer(customer_id)
            outcome = "answered"
        except KycAttachError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        return {"seconds": round(time.monotonic() - started, 2), "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--mib", type=float, default=300.0)
    args = parser.parse_args()
    world = demo_world(customers=1)
    customer_id = world["customers"][0]["customer_id"]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "world.json").write_text(json.dumps(world))
        server = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--world",
                                   str(Path(tmp) / "world.json"), "--admin"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    httpx.get(f"{url}/_sandbox/record").raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            cases = {"dribble": {"dribble": {"endpoints": ["customer"], "interval_s": 0.05}},
                     "huge_body": {"huge_body": {"endpoints": ["customer"], "mib": args.mib}}}
            for name, faults in cases.items():
                httpx.post(f"{url}/_sandbox/faults", json=faults).raise_for_status()
                before = _peak_rss_mb()
                result = asyncio.run(_case(url, customer_id, args.timeout if name == "dribble" else 60.0))
                print(json.dumps({"case": name, "timeout_s": args.timeout if name == "dribble" else 60.0, **result,
                                  "peak_rss_mb_before": round(before), "peak_rss_mb_after": round(_peak_rss_mb())}))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
