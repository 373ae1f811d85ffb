"""`kyc-attach --help`, `validate` and `report` start without Prefect, the HTTP stack or matplotlib.

Importing Prefect alone costs seconds on a small machine (and a run starts a temporary server); these commands
need none of it. Each is run in a fresh interpreter, as a person runs it, and the modules it loaded are read back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.commands.demo import demo_rows, demo_world, manifest_csv

HEAVY = ("prefect", "httpx", "aiohttp", "matplotlib", "uvicorn")

_PROBE = """
import json, sys
from flows.commands.cli import main
heavy = json.loads(sys.argv[2])
sys.argv = ["kyc-attach", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print("LOADED=" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def _loaded(args: list[str], cwd: Path, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(heavy)], capture_output=True,
                         text=True, cwd=cwd, timeout=120, check=False).stdout
    line = next(x for x in out.splitlines() if x.startswith("LOADED="))
    return sorted({m.split(".")[0] for m in json.loads(line.removeprefix("LOADED="))})


@pytest.fixture()
def demo_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "demo.csv"
    path.write_bytes(manifest_csv(demo_rows(demo_world())[0]))
    return path


def test_help_loads_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    assert _loaded(["--help"], tmp_path) == []


def test_validate_loads_none_of_the_heavy_libraries(tmp_path: Path, demo_manifest: Path) -> None:
    assert _loaded(["validate", str(demo_manifest)], tmp_path) == []


def test_validate_of_a_local_manifest_loads_no_s3_client_and_no_yaml_reader(tmp_path: Path,
                                                                           demo_manifest: Path) -> None:
    """boto3 (with s3transfer) is for manifests and mappings on S3, the YAML reader for a mapping."""
    assert _loaded(["validate", str(demo_manifest)], tmp_path, ("boto3", "s3transfer", "yaml")) == []


def test_report_loads_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    run = tmp_path / "reports" / "r1"
    run.mkdir(parents=True)
    (run / "report.html").write_text("<html></html>")
    assert _loaded(["report", str(run)], tmp_path) == []
