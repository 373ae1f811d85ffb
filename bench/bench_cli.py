"""Start-up of the small commands: `kyc-attach --help`, `validate` on the demo manifest and `report`, side by side
with `python -c pass` (the interpreter alone), as whole processes.

    uv run python bench/bench_cli.py [--runs 5]

Prints each command's median, min and max wall seconds and its ratio to `python -c pass`. The demo manifest is
written to a temporary folder (its rows point at s3:// keys; `validate` reads no file, so no S3 server is needed);
`report` is asked for a local run folder holding a report page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.commands.demo import demo_rows, demo_world, manifest_csv


def _wall(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=False)  # warm-up: bytecode and page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("kyc-attach"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp, "demo.csv")
        manifest.write_bytes(manifest_csv(demo_rows(demo_world())[0]))
        run = Path(tmp, "reports", "demo-run")
        run.mkdir(parents=True)
        (run / "report.html").write_text("<html></html>")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "kyc-attach --help": [cli, "--help"],
            "kyc-attach validate (demo manifest)": [cli, "validate", str(manifest)],
            "kyc-attach report (local run)": [cli, "report", str(run)],
        }
        base = None
        load = os.getloadavg()[0]
        print(f"{'command':40} {'median s':>9} {'min s':>7} {'max s':>7} {'x python':>9}   (load {load:.1f})")
        for name, cmd in commands.items():
            times = _wall(cmd, args.runs)
            median = statistics.median(times)
            base = base or median
            print(f"{name:40} {median:9.2f} {min(times):7.2f} {max(times):7.2f} {median / base:9.1f}")


if __name__ == "__main__":
    main()
