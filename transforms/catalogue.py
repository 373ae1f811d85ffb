"""Document types, their categories, and which sides each needs (docs/api-contract.md, section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """The three arrays of a party in the attach body."""

    identifying = "identifying"
    address = "address"
    supporting = "supporting"


IDENTIFYING_TYPES: tuple[str, ...] = (
    "PASSPORT",
    "NATIONAL_ID",
    "DRIVERS_LICENSE",
    "RESIDENCE_PERMIT",
    "PERMANENT_RESIDENCY_ID",
)
ADDRESS_TYPES: tuple[str, ...] = (
    "UTILITY_BILL",
    "GOVERNMENT_LETTER",
    "BANK_STATEMENT",
    "PROOF_OF_TAX_IDENTIFICATION",
    "COURT_DOCUMENT",
    "INSURANCE_STATEMENT",
)
SUPPORTING_TYPES: tuple[str, ...] = (
    "MILITARY_ID",
    "MATRICULATE_ID",
    "STATE_OR_PROVINCIAL_ID",
    "VISA",
    "OTHER",
)

#: document_type -> category. The type names are disjoint across categories, so the type alone decides.
CATEGORY_OF_TYPE: dict[str, Category] = {
    **dict.fromkeys(IDENTIFYING_TYPES, Category.identifying),
    **dict.fromkeys(ADDRESS_TYPES, Category.address),
    **dict.fromkeys(SUPPORTING_TYPES, Category.supporting),
}

SIDES: tuple[str, ...] = ("FRONT", "BACK")


@dataclass(frozen=True, slots=True)
class SideRules:
    """Which identifying types need FRONT+BACK and which take one image.

    Address and supporting documents never carry a side (``files[]`` are ``{uri}`` only) and may have any
    number of files: the contract sets no cap.

    Defaults follow the seed page: NATIONAL_ID and DRIVERS_LICENSE need both sides, PASSPORT and
    RESIDENCE_PERMIT one image, whose side is optional (the documented examples send a passport with FRONT); a
    residence document may also come as FRONT and BACK. Other vendor pages say a residence permit has two
    sides, hence the switch that makes both required.
    PERMANENT_RESIDENCY_ID is not on the seed page; it is a residence document like the permit, so it follows
    the permit's rule by default (single image) and has its own switch.
    """

    residence_permit_needs_both_sides: bool = False
    permanent_residency_id_needs_both_sides: bool | None = None  # None: same as the residence permit

    @property
    def two_sided_types(self) -> frozenset[str]:
        """Identifying types that need exactly one FRONT and one BACK file."""
        types = {"NATIONAL_ID", "DRIVERS_LICENSE"}
        if self.residence_permit_needs_both_sides:
            types.add("RESIDENCE_PERMIT")
        prid = self.permanent_residency_id_needs_both_sides
        if prid is None:
            prid = self.residence_permit_needs_both_sides
        if prid:
            types.add("PERMANENT_RESIDENCY_ID")
        return frozenset(types)

    @property
    def single_image_types(self) -> frozenset[str]:
        """Identifying types that take one image, its side optional (FRONT, or none)."""
        return frozenset(IDENTIFYING_TYPES) - self.two_sided_types

    @property
    def front_and_back_allowed(self) -> frozenset[str]:
        """Single-image types that may also come as exactly one FRONT and one BACK (residence documents: the
        contract makes the side optional for them, and other vendor pages show both sides)."""
        return self.single_image_types & {"RESIDENCE_PERMIT", "PERMANENT_RESIDENCY_ID"}


def category_of(document_type: str | None) -> Category | None:
    """The category of a (normalised, upper-case) document type, or None when the type is unknown."""
    if document_type is None:
        return None
    return CATEGORY_OF_TYPE.get(document_type)
