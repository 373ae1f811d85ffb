"""``kyc-attach ledger adopt``: bring the ledger a report location kept before the tenant ledger into it.

Wiring only: the copying is ``connectors.ledger_adoption``; the ledger's place and stamp ``connectors.tenant_ledger``.
"""

from __future__ import annotations

from typing import Any

from connectors.ledger_adoption import adopt
from connectors.s3 import Location
from connectors.tenant_ledger import check_stamp, ledger_location
from flows.runtime import make_store
from flows.settings import load_settings
from transforms.tenant import TenantStamp


def adopt_command(report_prefix: str) -> dict[str, Any]:
    """Copy ``REPORT_PREFIX/_ledger`` into the tenant ledger (``KYC_ATTACH_LEDGER_URI``) and mark it adopted;
    what was copied. A ledger stamped for another tenant than the settings name is refused (``SetupError``)."""
    settings = load_settings()
    ledger = ledger_location(settings.ledger_uri, settings.work_dir)
    report_root = Location.parse(report_prefix)
    store = make_store(settings, s3=report_root.is_s3 or ledger.is_s3)
    if settings.client_id:  # without credentials set there is no tenant to compare with
        check_stamp(store, ledger, TenantStamp.of(settings.api_url, settings.client_id), create=False)
    adoption = adopt(store, report_root, ledger)
    return {"ledger": str(ledger), "copied": adoption.copied, "already_in_ledger": adoption.present,
            "marker": str(adoption.marker)}
