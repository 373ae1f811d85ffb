"""The settings the pure transforms need, in one immutable object (the flow builds it from its settings)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from transforms.catalogue import SideRules


class Rules(BaseModel):
    """Validation and grouping rules. ``today`` is passed in: the transforms never read the clock."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    today: date = Field(description="The run date; expiry and document age are judged against it.")
    address_max_age_days: int = Field(90, ge=0, description="Address documents older than this are rejected.")
    side_rules: SideRules = Field(default_factory=SideRules, description="Which types need FRONT and BACK.")
    allowed_buckets: tuple[str, ...] = Field(
        (),
        description=(
            "Allowed sources: 'bucket' allows the whole bucket, 'bucket/prefix' only keys under that prefix. "
            "Empty allows any bucket."
        ),
    )
    max_cell_chars: int = Field(4096, ge=1, description="Longer cells are rejected (cell_too_long).")
    max_parties_per_request: int = Field(10, ge=1, description="Parties per attach request, at most.")
