"""The error tree every connector raises, in one place.

Errors are named by what the caller must do, and callers decide on ``isinstance``, never on
message text. Messages never carry personal data (document numbers, emails), secrets or
presigned URLs: they name the operation, the field and the reason.
"""

from __future__ import annotations

from transforms.codes import Reason


class KycAttachError(Exception):
    """Base class of every error this project raises on purpose."""

    #: API attempts spent before the error was raised, for the report's ``attempts`` column.
    attempts: int = 0


class SetupError(KycAttachError):
    """The run cannot start: bad arguments, unreadable manifest, missing columns, bad credentials.

    The CLI turns it into exit code 2 with its message as a one-line reason.
    """


class StoppedAfterSending(KycAttachError):
    """A check refused the run after uploads or attaches were sent: not a start-up refusal.

    The CLI turns it into exit code 3 (the ledger knows what was sent; run the same manifest again to resume).
    """


class ApiError(KycAttachError):
    """What the API answered (or did not): its HTTP status, if any, and the attempts the request spent."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class TransientError(ApiError):
    """Retry: the request surely did not take effect (429, 5xx on a read, connection refused)."""


class Throttled(TransientError):
    """The API kept answering 429 for longer than the throttle budget: the request was never applied."""


class SourceUnreadable(TransientError):
    """The store of a source file refused its read through every retry (S3's SlowDown, a 5xx): nothing was sent
    for the file, and a later run reads it again."""


class TerminalError(ApiError):
    """Stop this item: the API refused it for good (4xx other than 401/409/429)."""

    def __init__(self, message: str, *, status_code: int | None = None, reason_code: Reason = Reason.api_error,
                 attempts: int = 0) -> None:
        super().__init__(message, status_code=status_code, attempts=attempts)
        self.reason_code = reason_code


class OutcomeUnknown(ApiError):
    """The request may or may not have taken effect (5xx or dropped connection after sending).

    Never resend blindly: reconcile from what the API shows, or report the row ``unknown``. ``reason_code`` is
    the row's reason when nothing settles it: ``unexpected_answer`` when a success status came with a body that
    is not the API's answer (a gateway's page).
    """

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0,
                 reason_code: Reason = Reason.outcome_unknown) -> None:
        super().__init__(message, status_code=status_code, attempts=attempts)
        self.reason_code = reason_code


class LedgerUnavailable(KycAttachError):
    """Stop sending: the ledger's store refused a write (after the storage client's own retries), so no record
    that a send needs can be made durable. Raised for every durable write from then on, for the rest of the run."""


class RowRejected(KycAttachError):
    """Report this row (or file) as rejected with a reason code, and go on with the rest."""

    def __init__(self, reason_code: Reason, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class ObjectMissing(KycAttachError):
    """The storage has no object at this location, or refuses access to it (a neutral fact, not a row outcome:
    the caller decides what it means, e.g. :mod:`connectors.files` makes it the row's ``missing_object``)."""


class ObjectChanged(KycAttachError):
    """The object was replaced since it was first read (a read pinned to its ETag was refused)."""


class LeaseLost(KycAttachError):
    """Another run holds this run's customers now (its lease was taken over, or removed): send nothing more."""


class Refused(TerminalError):
    """The API refused a request as invalid (400/422): nothing of it was applied, so a part may be sent again.

    ``field_errors`` maps each field path the API named (``associated_party_attachments[2].identifying_documents
    [0].number``) to its reason, scrubbed of values; it is empty when the API named no field.
    """

    def __init__(self, message: str, *, status_code: int | None = None,
                 reason_code: Reason = Reason.api_validation_failed, attempts: int = 0,
                 field_errors: dict[str, str] | None = None) -> None:
        super().__init__(message, status_code=status_code, reason_code=reason_code, attempts=attempts)
        self.field_errors = dict(field_errors or {})


class Unforeseen(KycAttachError):
    """An error nobody foresaw, from another library or the OS, named by its type, a ``reason`` that holds no value
    (S3's error code, the OS's reason) and the place that raised it (``module.py:line``), never its message: that
    may quote an S3 key (keys can name people), a presigned URL (a credential) or a row. ``error_type`` is the
    original's type."""

    def __init__(self, error: Exception, where: str, reason: str | None = None) -> None:
        self.error_type = type(error).__name__
        said = f" ({reason})" if reason and reason != self.error_type else ""
        super().__init__(f"unexpected {self.error_type}{said} at {where} (its message is left out: it may quote a "
                         "key, a URL or a row)")
