"""Start-up of the small commands: `kyc-attach --help`, `validate` on the demo manifest and `report`, side by side
with `python -c pass` (the interpreter alone), as whole processes.

    uv run python bench/bench_cli.py [--runs 5]

Prints each command's median, min and max wall seconds, its ratio to `python -c pass` and its median CPU seconds
(user + system: close to the wall time of an idle machine, and far less moved by other jobs), twice: with compiled
bytecode (as the container image ships it: `UV_COMPILE_BYTECODE=1`; a cache of its own in a temporary folder,
filled by a warm-up run) and compiling every module from source at each start (as an environment with
`PYTHONDONTWRITEBYTECODE=1` and a venv installed without bytecode does: there, start-up is mostly compiling).
The demo manifest is written to a temporary folder (its rows point at s3:// keys; `validate` reads no file, so
no S3 server is needed); `report` is asked for a local run folder holding a report page.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.commands.demo import demo_rows, demo_world, manifest_csv


def _timed(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system of the child) of each run."""
    subprocess.run(cmd, capture_output=True, check=False, env=env)  # warm-up: bytecode and page cache
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, env=env)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


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
        # Python reads and writes bytecode under PYTHONPYCACHEPREFIX only, whatever __pycache__ folders exist.
        plain = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        modes = {
            "with bytecode": {**plain, "PYTHONPYCACHEPREFIX": str(Path(tmp, "pycache"))},
            "compiling from source": {**plain, "PYTHONPYCACHEPREFIX": str(Path(tmp, "no-pycache")),
                                      "PYTHONDONTWRITEBYTECODE": "1"},
        }
        for mode, env in modes.items():
            base = None
            load = os.getloadavg()[0]
            print(f"{mode + ':':40} {'median s':>9} {'min s':>7} {'max s':>7} {'x python':>9} {'cpu s':>7}"
                  f"   (load {load:.1f})")
            for name, cmd in commands.items():
                times, cpu = _timed(cmd, args.runs, env)
                median = statistics.median(times)
                base = base or median
                print(f"{name:40} {median:9.2f} {min(times):7.2f} {max(times):7.2f} {median / base:9.1f} "
                      f"{statistics.median(cpu):7.2f}")


if __name__ == "__main__":
    main()
