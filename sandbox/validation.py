"""Validation of an attach body against the contract: a pure function, no IO, `today` passed in.

Plain dict walking rather than pydantic: the error paths must be the API's own
(`associated_party_attachments[0].identifying_documents[1].country`) and it is the hot path of the
sandbox's throughput; every error is collected, not only the first.
Where the contract is silent the sandbox is stricter than it need be (unknown fields, a party with no
document, an issue date in the future), so that what it accepts the real API should accept too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pycountry

ALPHA3: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.countries)
# The contract's enums, written out here on purpose rather than imported from transforms.catalogue:
# the sandbox is the pipeline's independent judge, so a mistake in the pipeline's catalogue must not
# be copied into the server that is meant to catch it.
IDENTIFYING_TYPES = (
    "PASSPORT",
    "NATIONAL_ID",
    "DRIVERS_LICENSE",
    "RESIDENCE_PERMIT",
    "PERMANENT_RESIDENCY_ID",
)
ADDRESS_TYPES = (
    "UTILITY_BILL",
    "GOVERNMENT_LETTER",
    "BANK_STATEMENT",
    "PROOF_OF_TAX_IDENTIFICATION",
    "COURT_DOCUMENT",
    "INSURANCE_STATEMENT",
)
SUPPORTING_TYPES = ("MILITARY_ID", "MATRICULATE_ID", "STATE_OR_PROVINCIAL_ID", "VISA", "OTHER")
CATEGORIES = {
    "identifying_documents": ("identifying", IDENTIFYING_TYPES),
    "address_documents": ("address", ADDRESS_TYPES),
    "supporting_documents": ("supporting", SUPPORTING_TYPES),
}
SIDES = ("FRONT", "BACK")
_PARTY_KEYS = frozenset({"associated_party_id", *CATEGORIES})
_IDENTIFYING_KEYS = frozenset({"type", "number", "country", "issue_date", "expiry_date", "files"})
_OTHER_KEYS = frozenset({"type", "files"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class AttachRules:
    """The configurable parts of the rules (where vendor pages disagree)."""

    residence_permit_needs_both_sides: bool = False


@dataclass(slots=True)
class AttachCheck:
    """The verdict: field errors (400), uris of another customer (403), and the documents to record."""

    errors: dict[str, str] = field(default_factory=dict)
    foreign_uris: list[str] = field(default_factory=list)
    documents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def check_attach(
    body: Any,
    *,
    customer_id: str,
    party_ids: Collection[str],
    uri_owner: Callable[[str], str | None],
    today: date,
    rules: AttachRules = AttachRules(),  # frozen, so a shared default is safe
    identified: Collection[str] = (),
) -> AttachCheck:
    """Check an attach request body for `customer_id`; `uri_owner` says which customer uploaded a uri.

    `identified` are the customer's parties that have an identifying document attached already.
    """
    check = AttachCheck()
    err = check.errors
    if not isinstance(body, dict):
        err["body"] = "must be a JSON object"
        return check
    for key in body:
        if key != "associated_party_attachments":
            err[key] = "unknown field"
    parties = body.get("associated_party_attachments")
    if parties is None:
        err["associated_party_attachments"] = "is required"
        return check
    if not isinstance(parties, list):
        err["associated_party_attachments"] = "must be an array"
        return check
    if not parties:
        err["associated_party_attachments"] = "must contain at least one party"
        return check

    for i, party in enumerate(parties):
        path = f"associated_party_attachments[{i}]"
        if not isinstance(party, dict):
            err[path] = "must be an object"
            continue
        for key in party:
            if key not in _PARTY_KEYS:
                err[f"{path}.{key}"] = "unknown field"
        party_id = party.get("associated_party_id")
        if party_id is None:
            err[f"{path}.associated_party_id"] = "is required"
        elif not isinstance(party_id, str):
            err[f"{path}.associated_party_id"] = "must be a string"
        elif party_id not in party_ids:
            err[f"{path}.associated_party_id"] = "is not an associated party of this customer"
        count = 0
        for key, (category, types) in CATEGORIES.items():
            docs = party.get(key, [])
            if not isinstance(docs, list):
                err[f"{path}.{key}"] = "must be an array"
                continue
            for j, doc in enumerate(docs):
                count += 1
                doc_path = f"{path}.{key}[{j}]"
                normal = _check_document(
                    doc, doc_path, category, types, customer_id, uri_owner, today, rules, check
                )
                if normal is not None and isinstance(party_id, str):
                    check.documents.append((party_id, normal))
        if count == 0:
            err.setdefault(path, "at least one document is required")
        elif not party.get("identifying_documents") and party_id not in identified:
            # Fin's OpenAPI: each party needs at least one identifying document. Whether one attached earlier
            # counts is not documented: the sandbox takes it that it does (a nightly run adds a new bill alone).
            err.setdefault(f"{path}.identifying_documents", "at least one identifying document is required")
    return check


def refusals(body: Any, refused_party_ids: Collection[str], *, name_path: bool) -> dict[str, str] | None:
    """The 400 ``data`` for a body that carries a party whose documents are refused (None: no such party).

    With ``name_path`` each such party's identifying documents are named, as the contract's 400 does; without
    it the refusal names nothing, as an API whose body says only "Validation failed" would.
    """
    parties = body.get("associated_party_attachments") if isinstance(body, dict) else None
    named = {
        f"associated_party_attachments[{i}].identifying_documents[0]": "document could not be verified"
        for i, party in enumerate(parties if isinstance(parties, list) else [])
        if isinstance(party, dict) and party.get("associated_party_id") in refused_party_ids
    }
    if not named:
        return None
    return named if name_path else {}


def _check_document(
    doc: Any,
    path: str,
    category: str,
    types: tuple[str, ...],
    customer_id: str,
    uri_owner: Callable[[str], str | None],
    today: date,
    rules: AttachRules,
    check: AttachCheck,
) -> dict[str, Any] | None:
    err = check.errors
    if not isinstance(doc, dict):
        err[path] = "must be an object"
        return None
    before = len(err)
    identifying = category == "identifying"
    allowed = _IDENTIFYING_KEYS if identifying else _OTHER_KEYS
    for key in doc:
        if key not in allowed:
            err[f"{path}.{key}"] = "unknown field"

    doc_type = doc.get("type")
    if doc_type is None:
        err[f"{path}.type"] = "is required"
    elif doc_type not in types:
        err[f"{path}.type"] = "must be one of " + ", ".join(types)

    if identifying:
        _check_identity_fields(doc, path, doc_type, today, err)
    files = _check_files(doc.get("files"), f"{path}.files", identifying, customer_id, uri_owner, check)
    if identifying and files is not None and doc_type in types:
        _check_sides(doc_type, files, f"{path}.files", rules, err)
    if len(err) != before:
        return None
    return {"category": category, **doc}


def _check_identity_fields(
    doc: dict[str, Any], path: str, doc_type: Any, today: date, err: dict[str, str]
) -> None:
    number = doc.get("number")
    if number is None:
        err[f"{path}.number"] = "is required"
    elif not isinstance(number, str) or not number.strip():
        err[f"{path}.number"] = "must be a non-empty string"

    country = doc.get("country")
    if country is None:
        err[f"{path}.country"] = "is required"
    elif country not in ALPHA3:
        err[f"{path}.country"] = "must be an ISO 3166-1 alpha-3 country code"
    elif doc_type == "PERMANENT_RESIDENCY_ID" and country != "USA":
        err[f"{path}.type"] = "PERMANENT_RESIDENCY_ID is for US residents only (country USA)"

    issue = _check_date(doc.get("issue_date"), f"{path}.issue_date", err)
    expiry = _check_date(doc.get("expiry_date"), f"{path}.expiry_date", err)
    if expiry is not None and expiry < today:
        err[f"{path}.expiry_date"] = "document has expired"
    if issue is not None and issue > today:
        err[f"{path}.issue_date"] = "must not be in the future"
    elif issue is not None and expiry is not None and issue > expiry:
        err[f"{path}.issue_date"] = "must not be after expiry_date"


def _check_date(value: Any, path: str, err: dict[str, str]) -> date | None:
    if value is None:
        err[path] = "is required"
        return None
    # fromisoformat alone would also take 20210101 and week dates; the contract says YYYY-MM-DD.
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        err[path] = "must be a date in YYYY-MM-DD format"
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err[path] = "is not a valid calendar date"
        return None


def _check_files(
    files: Any,
    path: str,
    sided: bool,
    customer_id: str,
    uri_owner: Callable[[str], str | None],
    check: AttachCheck,
) -> list[dict[str, Any]] | None:
    err = check.errors
    if files is None:
        err[path] = "is required"
        return None
    if not isinstance(files, list):
        err[path] = "must be an array"
        return None
    if not files:
        err[path] = "must contain at least one file"
        return None
    ok = True
    for k, f in enumerate(files):
        fpath = f"{path}[{k}]"
        if not isinstance(f, dict):
            err[fpath] = "must be an object"
            ok = False
            continue
        for key in f:
            if key != "uri" and not (sided and key == "side"):
                err[f"{fpath}.{key}"] = "unknown field"
                ok = False
        uri = f.get("uri")
        if uri is None:
            err[f"{fpath}.uri"] = "is required"
            ok = False
        elif not isinstance(uri, str):
            err[f"{fpath}.uri"] = "must be a string"
            ok = False
        else:
            owner = uri_owner(uri)
            if owner is None:
                err[f"{fpath}.uri"] = "unknown uri: upload the file first"
                ok = False
            elif owner != customer_id:
                check.foreign_uris.append(uri)
        if "side" in f and f["side"] not in SIDES:
            err[f"{fpath}.side"] = "must be FRONT or BACK"
            ok = False
    return files if ok else None


def _check_sides(
    doc_type: str, files: list[dict[str, Any]], path: str, rules: AttachRules, err: dict[str, str]
) -> None:
    sides = sorted(f.get("side") or "" for f in files)
    two_sided = doc_type in ("NATIONAL_ID", "DRIVERS_LICENSE") or (
        doc_type == "RESIDENCE_PERMIT" and rules.residence_permit_needs_both_sides
    )
    if two_sided:
        if sides != ["BACK", "FRONT"]:
            err[path] = f"{doc_type} needs two files, one FRONT and one BACK"
    elif doc_type in ("PERMANENT_RESIDENCY_ID", "RESIDENCE_PERMIT"):
        # The side is optional for these (Fin's OpenAPI) and other vendor pages show a residence permit with two
        # sides: take one image or a FRONT and BACK pair.
        if sides not in (["BACK", "FRONT"], [""], ["FRONT"]):
            err[path] = f"{doc_type} takes a single image or one FRONT and one BACK"
    elif sides not in ([""], ["FRONT"]):
        err[path] = f"{doc_type} takes a single image (one file, no BACK)"
