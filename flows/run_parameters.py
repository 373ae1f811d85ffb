"""The flow run's parameters as Prefect keeps them: a value the report masks is masked there too.

Prefect stores a flow run's parameters as they were passed; a manifest's or a mapping file's location can spell out
a person's name (``K00/<First>_<Last>.csv``), so in hashed report mode the run replaces each with the digest its
report shows.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run


async def mask_parameters(shown: dict[str, str]) -> None:
    """Replace the named parameters of the current flow run, as Prefect's API keeps them, by ``shown``."""
    flow_run_id = flow_run.get_id()
    if not flow_run_id:  # not inside a flow run: nothing is kept
        return
    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run_id))
        await client.update_flow_run(run.id, parameters={**run.parameters, **shown})
