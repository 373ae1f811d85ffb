"""The deployment files for container work pools (deployments/docker.yaml, ecs.yaml, kubernetes.yaml) deploy to a
real Prefect server with a pool of their type, every deployment on that pool with the image in its job variables
and no pull step (the image holds the code: nothing ties a deployment to the checkout it was deployed from)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

from bench.support.prefect_server import PrefectServer, prefect_server

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
POOL_TYPES = ("docker", "ecs", "kubernetes")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with prefect_server(tmp_path_factory.mktemp("prefect-containers")) as running:
        yield running


@pytest.mark.parametrize("pool_type", POOL_TYPES)
def test_the_container_deployment_file_deploys_to_a_pool_of_its_type_with_the_image_and_no_pull_step(
    server: PrefectServer, pool_type: str,
) -> None:
    path = ROOT / "deployments" / f"{pool_type}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    pool = spec["definitions"]["work_pools"][pool_type]["name"]
    image = spec["definitions"]["images"]["kyc_attach"]
    server.cli("work-pool", "create", pool, "--type", pool_type)
    out = server.cli("--no-prompt", "deploy", "--prefect-file", str(path.relative_to(ROOT)), "--all")
    assert "attach-shard" in out

    [created] = server.api(lambda c: c.read_work_pools(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))))
    assert created.type == pool_type
    deployments = server.api(lambda c: c.read_deployments(work_pool_filter=WorkPoolFilter(
        name=WorkPoolFilterName(any_=[pool]))))
    assert sorted(d.name for d in deployments) == sorted(d["name"] for d in spec["deployments"])
    for d in deployments:
        assert d.work_pool_name == pool
        assert d.job_variables["image"] == image, d.name
        assert d.pull_steps in (None, []), d.name
        # No pull steps: Prefect then copies the code from the deployment's path into the working directory, so a
        # path naming this checkout would be copied from inside the container, where it does not exist.
        assert d.path in (None, "."), (d.name, d.path)
