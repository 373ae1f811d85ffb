"""What the upload's tail check costs for a file larger than its first read: one ranged GET of the last 2 KiB.

Run: `uv run python bench/bench_tail_check.py [--mb 2] [--repeat 15]`

The S3 server (moto) and the sandbox run in their own processes on loopback. Prints the median time of the
ranged GET (`Range: bytes=-2048`) and of the whole upload of the same file (GET + checks + streamed POST), so
the ranged GET can be judged against the request it guards (connectors/files.py explains the choice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_e2e import BUCKET, CLIENT_ID, CLIENT_SECRET, OUT, servers  # noqa: E402


async def measure(customer_id: str, repeat: int) -> tuple[list[float], list[float]]:
    from connectors.files import fetch_source
    from connectors.objects import ObjectStore
    from connectors.s3 import S3Store, make_s3_client
    from flows.runtime import fin_client
    from flows.settings import Settings

    s3 = S3Store(make_s3_client())
    uri = f"s3://{BUCKET}/big.pdf"
    ranged, uploads = [], []
    async with fin_client(Settings()) as fin:
        await fin.authenticate()
        for _ in range(repeat):
            started = time.perf_counter()
            await asyncio.to_thread(s3.read_range, BUCKET, "big.pdf", "-2048")
            ranged.append(time.perf_counter() - started)
            started = time.perf_counter()
            source = await fetch_source(ObjectStore(s3), uri, max_bytes=1 << 30)
            try:
                await fin.upload(customer_id, filename="big.pdf", content_type=source.content_type,
                                 size=source.info.size, chunks=source.chunks)
            finally:
                source.close()
            uploads.append(time.perf_counter() - started)
    return ranged, uploads


def main() -> None:
    import os

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=2)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    from flows.commands.demo import demo_world
    from flows.commands.demo_samples import sample_pdf

    OUT.mkdir(parents=True, exist_ok=True)
    world = demo_world(customers=1)
    (OUT / "world-tail.json").write_text(json.dumps(world))
    data = sample_pdf("tail", pad_to=int(args.mb * 2**20))
    with servers(OUT / "world-tail.json", max_upload_bytes=2 * len(data)) as (api, _env, _sandbox, _moto):
        from connectors.s3 import make_s3_client

        client = make_s3_client()
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="big.pdf", Body=data)
        os.environ.update({"FIN_API_URL": api, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                           "KYC_ATTACH_MAX_FILE_BYTES": str(2 * len(data))})
        ranged, uploads = asyncio.run(measure(world["customers"][0]["customer_id"], args.repeat))
    r, u = statistics.median(ranged) * 1000, statistics.median(uploads) * 1000
    print(f"{len(data) / 2**20:.1f} MiB file, median of {args.repeat}: ranged GET of the last 2 KiB {r:.1f} ms; "
          f"whole upload (GET, checks, streamed POST) {u:.1f} ms; the tail check adds {100 * r / u:.1f}%")


if __name__ == "__main__":
    main()
