"""The validation rules of a run, from its settings: one place for the planner, the preflight and the shard runs."""

from __future__ import annotations

from datetime import date

from flows.settings import Settings
from transforms.catalogue import SideRules
from transforms.rules import Rules


def rules_from(settings: Settings, today: date) -> Rules:
    """The validation rules of a run (the run date is passed in: transforms read no clock)."""
    return Rules(
        today=today,
        address_max_age_days=settings.address_max_age_days,
        side_rules=SideRules(residence_permit_needs_both_sides=settings.residence_permit_needs_both_sides),
        allowed_buckets=tuple(settings.allowed_buckets),
        max_parties_per_request=settings.max_parties_per_request,
    )
