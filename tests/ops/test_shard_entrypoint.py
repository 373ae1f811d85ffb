"""The shard deployment's entrypoint loads on its own: a worker starting a shard run imports none of the parent flow.

In a fresh interpreter (``sys.modules`` is per process), as a worker does: the entrypoint named in
deployments/prefect.yaml is loaded with Prefect's own loader.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

_LOAD = """
import json, sys
from prefect.flows import load_flow_from_entrypoint
flow = load_flow_from_entrypoint(sys.argv[1])
print(json.dumps({"name": flow.name, "modules": sorted(m for m in sys.modules if m.startswith("flows."))}))
"""


def _entrypoint(deployment: str) -> str:
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    (found,) = [d["entrypoint"] for d in spec["deployments"] if d["name"] == deployment]
    return str(found)


def test_loading_the_shard_deployment_imports_no_parent_flow() -> None:
    done = subprocess.run([sys.executable, "-c", _LOAD, _entrypoint("attach-shard")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["name"] == "attach-shard"
    assert "flows.shard_worker" in loaded["modules"]  # the check would be empty if the loader imported nothing
    assert "flows.attach_flow" not in loaded["modules"]
    assert "flows.fanout" not in loaded["modules"]
