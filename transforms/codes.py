"""Stable status and reason codes for the outcome report.

The codes are part of the report's contract with its readers (people and scripts): never rename one, only add.
Messages built from them name the field and the reason, never the cell's value: a document number or an email
in a message would be a leak of personal data into the report and the logs.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """The one final status of every manifest row."""

    attached = "attached"
    rejected = "rejected"
    failed = "failed"
    skipped = "skipped"
    unknown = "unknown"


class Reason(StrEnum):
    """Why a row was not attached (or, for ``already_attached``, why it was skipped)."""

    # --- row rules (transforms.validate) ---
    cell_too_long = "cell_too_long"
    missing_field = "missing_field"
    bad_uuid = "bad_uuid"
    bad_email = "bad_email"
    unknown_type = "unknown_type"
    bad_country = "bad_country"
    bad_date = "bad_date"
    issue_after_expiry = "issue_after_expiry"
    expired = "expired"
    future_date = "future_date"
    stale_address_document = "stale_address_document"
    bad_side = "bad_side"
    side_not_allowed = "side_not_allowed"
    missing_side = "missing_side"
    bad_s3_uri = "bad_s3_uri"
    bucket_not_allowed = "bucket_not_allowed"
    # --- document rules (transforms.grouping) ---
    duplicate_row = "duplicate_row"
    conflicting_fields = "conflicting_fields"
    duplicate_file = "duplicate_file"
    duplicate_side = "duplicate_side"
    too_many_files = "too_many_files"
    document_rejected = "document_rejected"
    # --- party resolution (flow) ---
    party_not_found = "party_not_found"
    party_mismatch = "party_mismatch"
    # --- file checks (connectors) ---
    missing_object = "missing_object"
    empty_file = "empty_file"
    file_too_large = "file_too_large"
    bad_file_type = "bad_file_type"
    # --- API outcomes (connectors / flow) ---
    api_validation_failed = "api_validation_failed"
    api_forbidden = "api_forbidden"
    api_not_found = "api_not_found"
    api_error = "api_error"
    retries_exhausted = "retries_exhausted"
    outcome_unknown = "outcome_unknown"
    already_attached = "already_attached"
    attached_with_other_details = "attached_with_other_details"
    # No `circuit_open`: the circuit breaker (transforms.breaker) pauses every request and then lets it go on, so
    # it never ends a row; a row the API kept failing ends `retries_exhausted` or `outcome_unknown`.
    failure_threshold = "failure_threshold"
    lease_lost = "lease_lost"
    dry_run = "dry_run"
    not_retried = "not_retried"
    # --- input hardening (characters, file structure, a source that changed); codes are only ever appended ---
    bad_characters = "bad_characters"
    bad_file_structure = "bad_file_structure"
    source_changed = "source_changed"
    # --- attach rules Fin documents (docs/api-contract.md, section 7), then API answers and party look-up ---
    permanent_residency_not_usa = "permanent_residency_not_usa"
    throttled = "throttled"
    no_identifying_document = "no_identifying_document"
    unexpected_answer = "unexpected_answer"
    ambiguous_party_email = "ambiguous_party_email"
    ledger_unavailable = "ledger_unavailable"
    run_stopped = "run_stopped"


#: One line per code, for docs/reason-codes.md and the README (a test keeps the two in step).
REASON_MEANINGS: dict[Reason, str] = {
    Reason.cell_too_long: "A cell is longer than the configured maximum (default 4096 characters).",
    Reason.missing_field: "A required field is empty (the message names it).",
    Reason.bad_uuid: "customer_id or associated_party_id is not a uuid.",
    Reason.bad_email: "associated_party_email does not look like an email address.",
    Reason.unknown_type: "document_type is not one of the contract's document types.",
    Reason.bad_country: "country is not an ISO 3166-1 alpha-3 code (alpha-2 codes are rejected too).",
    Reason.bad_date: "A date is not a real calendar date in the form YYYY-MM-DD, or lies outside 1900-2199.",
    Reason.issue_after_expiry: "issue_date is after expiry_date.",
    Reason.expired: "expiry_date is before the run date.",
    Reason.future_date: "issue_date or document_date is after the run date.",
    Reason.stale_address_document: "Address document dated more than 90 days (configurable) ago.",
    Reason.bad_side: "side is neither FRONT nor BACK.",
    Reason.side_not_allowed: "side is given for a document type that takes a single image or no sides.",
    Reason.missing_side: "A two-sided type (e.g. NATIONAL_ID) lacks a side value, or its FRONT or BACK row.",
    Reason.bad_s3_uri: "s3_uri is not s3://bucket/key (bucket name, empty key, '..' segment, control char).",
    Reason.bucket_not_allowed: "s3_uri points outside the allowed buckets/prefixes.",
    Reason.duplicate_row: "Exact copy of an earlier row; the earlier row is processed.",
    Reason.conflicting_fields: "Rows of one document disagree on number, country, dates, type or party.",
    Reason.duplicate_file: "The s3_uri is in an earlier document of the customer, or twice in one document.",
    Reason.duplicate_side: "A two-sided document has two FRONT or two BACK rows.",
    Reason.too_many_files: "A single-image identifying document has more than one file.",
    Reason.document_rejected: "Another row of the same document was rejected, so the document is not sent.",
    Reason.party_not_found: "The associated party (id or email) is not a party of this customer at Fin.",
    Reason.party_mismatch: "associated_party_id and associated_party_email name different parties.",
    Reason.missing_object: "The S3 object does not exist or cannot be read.",
    Reason.empty_file: "The S3 object is empty (0 bytes).",
    Reason.file_too_large: "The S3 object is larger than the configured size cap.",
    Reason.bad_file_type: "The file's bytes are not PDF, JPEG or PNG, whatever its name says.",
    Reason.api_validation_failed: "The API refused the request as invalid (400/422); field errors follow.",
    Reason.api_forbidden: "The API refused access (403), e.g. a file uri that belongs to another customer.",
    Reason.api_not_found: "The API answered 404 (customer not found).",
    Reason.api_error: "The API answered another error that is not worth retrying.",
    Reason.retries_exhausted: "Transient errors (5xx, connection) persisted through every retry.",
    Reason.outcome_unknown: "The attach was sent but its outcome is not known (a 5xx, a lost answer, a redirect, "
                            "which is never followed); check before resending. In a dry run: the ledger says an "
                            "earlier run sent it without learning the outcome.",
    Reason.already_attached: "Attached by an earlier run (from the tenant ledger). In a dry run: a real run would "
                             "skip it.",
    Reason.attached_with_other_details: "The same scans were attached with other details (the message names the "
                                        "fields); this row's were not sent. --allow-reattach sends them.",
    Reason.failure_threshold: "Not tried: too many requests failed, so the run stopped early (see summary).",
    Reason.lease_lost: "Not tried: another run took over these customers' lease, so this run stopped sending.",
    Reason.dry_run: "Dry run: checked and would be sent; nothing was sent.",
    Reason.not_retried: "--retry-failed run: the row did not fail in the earlier run, so it was left alone.",
    Reason.bad_characters: "A cell holds a control, bidi-override or zero-width character, or a document number "
                           "something besides ASCII letters, digits and - / . space after NFKC (the message names "
                           "the field).",
    Reason.bad_file_structure: "The file starts as PDF, JPEG or PNG but is cut short, lacks its end marker, or has "
                               "bytes appended after it.",
    Reason.source_changed: "The S3 object was replaced while it was being read; run again to send the new one.",
    Reason.permanent_residency_not_usa: "PERMANENT_RESIDENCY_ID is for US residents only: its country must be USA.",
    Reason.throttled: "The API kept answering 429 past KYC_ATTACH_THROTTLE_BUDGET_S; the request was not applied.",
    Reason.no_identifying_document: "An address or supporting document of a party that has no identifying document "
                                    "to send with it (the API requires one per party in each attach).",
    Reason.unexpected_answer: "The attach was answered 2xx with a body that is not the API's JSON answer (a "
                              "gateway's page, the wrong shape, past the size cap): it may or may not have been "
                              "applied; settled by a later run from the parties' status, never resent blindly.",
    Reason.ambiguous_party_email: "associated_party_email (NFKC, case ignored) belongs to two or more parties of "
                                  "the customer, and no associated_party_id says which: attached to none.",
    Reason.ledger_unavailable: "Not sent: the ledger's store refused a write, so the run stopped sending (the ledger "
                               "is what keeps a resend from attaching twice); --retry-failed takes these rows.",
    Reason.run_stopped: "The run stopped on a failed check or an unexpected error after it began sending, before this "
                        "row's outcome was recorded (it may have been sent: the ledger knows); run the same manifest "
                        "again to settle it.",
}


def reason_codes_markdown() -> str:
    """Render the reason-code table (code | meaning) as markdown, in the order of :class:`Reason`."""
    lines = ["| code | meaning |", "|---|---|"]
    lines += [f"| `{r.value}` | {REASON_MEANINGS[r]} |" for r in Reason]
    return "\n".join(lines) + "\n"
