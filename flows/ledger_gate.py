"""The tenant ledger's checks at start-up, shared by the CLI's gate and the flow (a deployment run has no CLI).

In order: the bucket's lifecycle rules (none may expire the ledger), an old ledger under the report location
(it must be adopted first), and the tenant stamp (the ledger serves this run's API and client id). Only the flow
writes the stamp, on a ledger's first real run, once the credentials proved good: a mistyped client id must not
claim a new ledger. Wiring only: the checks live in ``connectors.tenant_ledger`` and
``connectors.ledger_adoption``.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from connectors.errors import SetupError
from connectors.ledger_adoption import check_adopted
from connectors.objects import ObjectStore
from connectors.run_claim import error_reason
from connectors.s3 import Location
from connectors.tenant_ledger import check_retention, check_stamp, ledger_location
from flows.runtime import fin_client
from flows.settings import Settings
from transforms.tenant import TenantStamp


def open_ledger(settings: Settings, store: ObjectStore, report_root: Location, *, dry_run: bool
                ) -> tuple[Location, list[str]]:
    """The run's ledger, or ``SetupError`` for anything that forbids using it; with warnings to show."""
    ledger = ledger_location(settings.ledger_uri, settings.work_dir)
    warnings = [w for w in (check_retention(store, ledger),) if w]
    try:
        check_adopted(store, report_root, ledger)
    except (ClientError, BotoCoreError) as exc:
        raise SetupError(f"report location {report_root}: cannot be read ({error_reason(exc)})") from None
    if settings.client_id or not dry_run:  # a dry run needs no credentials, and without them has no tenant
        check_stamp(store, ledger, _stamp_of(settings), create=False)
    return ledger, warnings


async def stamp_ledger(settings: Settings, store: ObjectStore, ledger: Location) -> None:
    """Stamp an unstamped ledger with this run's tenant, after one token request proved the credentials."""
    if check_stamp(store, ledger, _stamp_of(settings), create=False):
        return
    async with fin_client(settings) as fin:
        await fin.authenticate()
    check_stamp(store, ledger, _stamp_of(settings), create=True)


def _stamp_of(settings: Settings) -> TenantStamp:
    return TenantStamp.of(settings.api_url, settings.client_id)
