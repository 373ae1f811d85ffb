"""The error tree every connector raises, in one place.

Errors are named by what the caller must do, and callers decide on ``isinstance``, never on
message text. Messages never carry personal data (document numbers, emails), secrets or
presigned URLs: they name the operation, the field and the reason.
"""

from __future__ import annotations


class KycAttachError(Exception):
    """Base class of every error this project raises on purpose."""

    #: API attempts spent before the error was raised, for the report's ``attempts`` column.
    attempts: int = 0


class SetupError(KycAttachError):
    """The run cannot start: bad arguments, unreadable manifest, missing columns, bad credentials.

    The CLI turns it into exit code 2 with its message as a one-line reason.
    """


class TransientError(KycAttachError):
    """Retry: the request surely did not take effect (429, 5xx on a read, connection refused)."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class Throttled(TransientError):
    """The API kept answering 429 for longer than the throttle budget: the request was never applied."""


class TerminalError(KycAttachError):
    """Stop this item: the API refused it for good (4xx other than 401/409/429)."""

    def __init__(self, message: str, *, status_code: int | None = None, reason_code: str = "api_error"):
        super().__init__(message)
        self.status_code = status_code
        self.reason_code = reason_code


class OutcomeUnknown(KycAttachError):
    """The request may or may not have taken effect (5xx or dropped connection after sending).

    Never resend blindly: reconcile from what the API shows, or report the row ``unknown``.
    """

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class RowRejected(KycAttachError):
    """Report this row (or file) as rejected with a reason code, and go on with the rest."""

    def __init__(self, reason_code: str, message: str):
        super().__init__(message)
        self.reason_code = reason_code


class Refused(TerminalError):
    """The API refused a request as invalid (400/422): nothing of it was applied, so a part may be sent again.

    ``field_errors`` maps each field path the API named (``associated_party_attachments[2].identifying_documents
    [0].number``) to its reason, scrubbed of values; it is empty when the API named no field.
    """

    def __init__(self, message: str, *, status_code: int | None = None, reason_code: str = "api_validation_failed",
                 field_errors: dict[str, str] | None = None):
        super().__init__(message, status_code=status_code, reason_code=reason_code)
        self.field_errors = dict(field_errors or {})
