"""What an answer says about the send rate: the first step of pacing (measure), pure."""

from __future__ import annotations

from enum import Enum

#: The status a gateway refuses a request with for going too fast.
TOO_MANY_REQUESTS = 429


class Signal(Enum):
    """An answer as the rate controller hears it."""

    OK = "ok"  # any answer but 429: the request got through, so the rate may grow
    THROTTLE = "throttle"  # 429: the request was refused for the rate
    SILENT = "silent"  # no answer (refused connection, timeout): it says nothing of the rate


def classify(status: int | None) -> Signal:
    """The signal of an answer with HTTP ``status`` (None: no answer came)."""
    if status is None:
        return Signal.SILENT
    return Signal.THROTTLE if status == TOO_MANY_REQUESTS else Signal.OK
