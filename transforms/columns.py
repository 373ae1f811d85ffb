"""The manifest's columns, named once: what a row may hold, what it must hold, and what the report copies.

Validation, mapping files, grouping, the manifest reader and the report all speak of these columns; none of
them owns the names.
"""

from __future__ import annotations

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
