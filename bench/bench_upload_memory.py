"""Peak RSS increase of the uploading process while a 200 MB file streams from S3 to the upload endpoint.

Run: `uv run python bench/bench_upload_memory.py [--mb 200]`

The S3 server (moto) and the sandbox run in their own processes, so their memory is not counted; the parent
puts the file on S3 (streamed from disk) and then starts a child that does only the upload through the real
path: `connectors.files.check_object` + `open_source`, then `FinClient.upload` (as `flows.runtime.fin_client`
builds it). The child resets its RSS high-water mark (`/proc/self/clear_refs`) once everything is imported and
connected, so the figure is what the upload itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_e2e import BUCKET, CLIENT_ID, CLIENT_SECRET, OUT, servers  # noqa: E402


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(key)


async def child(customer_id: str, size: int) -> dict[str, float | str]:
    from connectors.files import check_object, open_source
    from connectors.objects import ObjectStore
    from connectors.s3 import S3Store, make_s3_client
    from flows.runtime import fin_client
    from flows.settings import Settings

    settings = Settings()
    s3 = ObjectStore(S3Store(make_s3_client()))
    uri = f"s3://{BUCKET}/big/file.pdf"
    async with fin_client(settings) as fin:
        await fin.authenticate()
        await check_object(s3, f"s3://{BUCKET}/small.pdf", max_bytes=size)  # warm the S3 connection pool
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_mb("VmRSS")
        started = time.perf_counter()
        info = await check_object(s3, uri, max_bytes=size)
        source = await open_source(s3, uri, info)
        try:
            fin_uri, _ = await fin.upload(customer_id, filename="big.pdf", content_type=source.content_type,
                                          size=info.size, chunks=source.chunks)
        finally:
            source.close()
        wall = time.perf_counter() - started
    return {"rss_before_mb": before, "peak_mb": _status_mb("VmHWM"), "wall_s": wall, "uri": fin_uri}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child[0], int(args.child[1])))))
        return
    import subprocess

    from flows.commands.demo import demo_world

    OUT.mkdir(parents=True, exist_ok=True)
    world = demo_world(customers=1)
    (OUT / "world-upload.json").write_text(json.dumps(world))
    size = args.mb * 1024 * 1024
    path = OUT / f"big-{args.mb}.pdf"
    if not path.exists() or path.stat().st_size != size:
        with path.open("wb") as fh:
            fh.write(b"%PDF-1.4\n")
            block = os.urandom(1 << 20)
            for _ in range(args.mb):
                fh.write(block)
            fh.truncate(size - 7)
            fh.seek(size - 7)
            fh.write(b"\n%%EOF\n")  # a whole PDF's end marker: the upload checks it (bad_file_structure)
    with servers(OUT / "world-upload.json", max_upload_bytes=2 * size) as (api, env, _sandbox, _moto):
        from connectors.s3 import make_s3_client

        s3 = make_s3_client()
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(path), BUCKET, "big/file.pdf")
        s3.put_object(Bucket=BUCKET, Key="small.pdf", Body=b"%PDF-1.4\n" + b"0" * 1000 + b"\n%%EOF\n")
        run_env = {**env, "FIN_API_URL": api, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                   "KYC_ATTACH_MAX_FILE_BYTES": str(2 * size)}
        res = subprocess.run([sys.executable, __file__, "--child", world["customers"][0]["customer_id"], str(size)],
                             env=run_env, cwd=ROOT, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr[-4000:])
        r = json.loads(res.stdout.strip().splitlines()[-1])
        record = __import__("httpx").get(f"{api}/_sandbox/record").json()
        got = record["uploads"][0]["size"] if record.get("uploads") else 0
    rise = r["peak_mb"] - r["rss_before_mb"]
    print(f"uploaded {args.mb} MB (sandbox received {got / 2**20:.0f} MiB) in {r['wall_s']:.1f} s: "
          f"{args.mb / r['wall_s']:.0f} MB/s; uploader RSS {r['rss_before_mb']:.0f} MB before, "
          f"peak {r['peak_mb']:.0f} MB: peak increase {rise:.1f} MB (target < 64 MB)")


if __name__ == "__main__":
    main()
