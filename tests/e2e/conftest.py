"""Fixtures of the whole-flow tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.commands.demo import demo_rows, demo_world
from tests.e2e.helpers import DemoScenario, api_env, load_world, put_scenario


@pytest.fixture()
def demo_scenario(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Callable[..., DemoScenario]:
    """Stages a demo scenario: a demo world (and its faults) in the sandbox, its files and manifest in the
    test's bucket, and the run's settings pointed at both. Call it with the number of customers, the faults and
    any extra run settings (``KYC_ATTACH_...="value"``)."""

    def stage(customers: int = 3, faults: dict[str, Any] | None = None, **settings: str) -> DemoScenario:
        world = demo_world(customers=customers)
        rows, files = demo_rows(world, bucket)
        load_world(fin_sandbox.url, world, faults)
        api_env(monkeypatch, fin_sandbox.url, tmp_path, **settings)
        return DemoScenario(world, rows, put_scenario(bucket, rows, files), bucket, fin_sandbox.url)

    return stage
