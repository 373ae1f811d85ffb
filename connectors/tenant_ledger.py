"""The ledger of one Fin tenant: where it lives, the stamp saying which tenant it serves, and the bucket rules
that must not expire it.

One ledger per tenant (API base URL + client id), wherever reports go: every run and deployment against the
tenant reads and writes the same one, so what counts as attached does not depend on the report location.
Layout under the ledger location: ``_tenant.json`` (the stamp), ``_documents/<pp>/seg-*.jsonl`` (the document
index, ``connectors.ledger``), ``<job_id>/`` (per-job records of ledgers adopted from before the document index)
and ``_lease/`` (the leases of running runs, ``connectors.run_lease``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.run_claim import error_reason
from connectors.s3 import Location
from connectors.work_folder import own_folder
from transforms.retention import rules_against
from transforms.tenant import TenantStamp

STAMP = "_tenant.json"
LEDGER_SETTING = "KYC_ATTACH_LEDGER_URI"
# A role without s3:GetLifecycleConfiguration may still run: the rules go unchecked, with a warning.
_NOT_ALLOWED = frozenset({"AccessDenied", "AllAccessDisabled"})
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def ledger_location(ledger_uri: str | None, work_dir: Path) -> Location:
    """The ledger's location, written one way (``s3://b//l/`` is ``s3://b/l``): ``ledger_uri``, or
    ``<work_dir>/ledger`` when unset (local runs).

    An S3 location must name a real bucket: ``s3://user:pw@bucket`` is refused here rather than shown later.
    """
    if ledger_uri is None or not ledger_uri.strip():
        # Made or checked as a real folder: a link planted at ``ledger`` would carry the records elsewhere.
        return Location(None, str(own_folder(work_dir, "ledger")))
    try:
        loc = Location.parse(ledger_uri.strip())
    except SetupError as exc:
        raise SetupError(f"setting {LEDGER_SETTING}: {exc}") from None
    if loc.is_s3 and not _BUCKET_NAME.fullmatch(loc.bucket or ""):
        raise SetupError(f"setting {LEDGER_SETTING}: not a valid S3 bucket name")
    loc = loc.normalised()
    # one spelling per ledger: the adoption markers and the "ledger is the old place" test compare it whole
    return Location(loc.bucket, loc.key.rstrip("/"))


def check_stamp(store: ObjectStore, ledger: Location, run: TenantStamp, *, create: bool) -> bool:
    """Refuse (``SetupError``) a ledger stamped for another tenant; with ``create``, stamp an unstamped one
    (a conditional create: of two first runs at once, one writes and the other reads what it wrote).

    Returns whether the ledger now carries this tenant's stamp.
    """
    where = ledger.child(STAMP)
    try:
        if create and not store.exists(where):
            try:
                store.write(where, json.dumps(run.to_json(), sort_keys=True).encode(),
                            content_type="application/json")
                return True
            except SetupError:
                pass  # written by another run meanwhile: judged below like any stamp
        if not store.exists(where):
            return False
        body = store.read(where)
    except (ClientError, BotoCoreError) as exc:
        raise SetupError(f"ledger {ledger}: cannot be read ({error_reason(exc)})") from None
    try:
        stamp = TenantStamp.from_json(json.loads(body))
    except ValueError:  # json.JSONDecodeError is one too
        raise SetupError(f"ledger {ledger}: its {STAMP} is not a tenant stamp; restore it or point "
                         f"{LEDGER_SETTING} at this tenant's ledger") from None
    differs = stamp.mismatch(run)
    if differs:
        raise SetupError(f"ledger {ledger} serves another Fin tenant ({differs} than this run's); point "
                         f"{LEDGER_SETTING} at this tenant's own ledger")
    return True


def check_retention(store: ObjectStore, ledger: Location) -> str | None:
    """Refuse (``SetupError``) an S3 ledger its bucket's lifecycle rules would expire or archive; a warning when
    the rules cannot be read (S3 refused: the run goes on), else None."""
    if not ledger.is_s3:
        return None
    try:
        rules = store.lifecycle_rules(ledger)
    except (ClientError, BotoCoreError) as exc:
        if error_reason(exc) not in _NOT_ALLOWED:
            raise SetupError(f"ledger {ledger}: its bucket cannot be read ({error_reason(exc)})") from None
        return (f"could not read the lifecycle rules of the ledger's bucket ({error_reason(exc)}); make sure no "
                "rule expires or archives the ledger")
    against = rules_against(rules, ledger.key)
    if against:
        raise SetupError(f"ledger {ledger}: the bucket's lifecycle rule {against[0]} expires or archives objects "
                         "under it (a lost ledger attaches everything again); exclude the ledger's prefix")
    return None
