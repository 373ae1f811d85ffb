"""The manifest's columns, named once: what a row may hold, what it must hold, and what the report copies.

Validation, mapping files, grouping, the manifest reader and the report all speak of these columns; none of
them owns the names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

# The canonical columns, once: a Literal for the type checker (mapping files name them), the tuple derived from it.
CanonicalColumn = Literal[
    "customer_id",
    "associated_party_id",
    "associated_party_email",
    "document_type",
    "document_number",
    "country",
    "issue_date",
    "expiry_date",
    "side",
    "s3_uri",
    "document_date",
    "document_id",
]
CANONICAL_COLUMNS: tuple[str, ...] = get_args(CanonicalColumn)
REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "document_type", "s3_uri")
PARTY_COLUMNS: tuple[str, ...] = ("associated_party_id", "associated_party_email")
#: Canonical columns the report copies from the row. A rejected row's cell in one of these that broke a rule is
#: masked there (it may be personal data typed into the wrong column); validation's ``bad_fields`` bit i flags
#: column i.
REPORTED_VALUE_COLUMNS: tuple[str, ...] = ("customer_id", "associated_party_id", "document_type", "side", "s3_uri")


def normalise_column_names(names: Sequence[str]) -> list[str]:
    """Header names as the manifest should have written them: BOM and whitespace stripped, lower-case."""
    return [n.replace("\ufeff", "").strip().lower() for n in names]


def same_name_columns(names: Sequence[str]) -> list[str]:
    """Problems with columns whose names differ but normalise to one name (``Customer_ID`` and ``customer_id``).

    Exact duplicates are left to :func:`transforms.validate.check_columns`, which names them as such.
    """
    spelled: dict[str, set[str]] = {}
    for raw, norm in zip(names, normalise_column_names(names), strict=True):
        spelled.setdefault(norm, set()).add(raw)
    return [f"duplicate column '{norm}' ({len(raw)} columns read as it once case and spaces are ignored)"
            for norm, raw in spelled.items() if len(raw) > 1]
