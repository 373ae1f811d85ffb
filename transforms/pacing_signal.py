"""What an answer says about the send rate: the first step of pacing (measure), pure."""

from __future__ import annotations

from enum import Enum

#: The status a gateway refuses a request with for going too fast.
TOO_MANY_REQUESTS = 429


class Signal(Enum):
    """An answer as a rate controller hears it."""

    OK = "ok"  # any answer but 429: the request got through, the rate may grow
    ECHO = "echo"  # a 429 of a request let go before the last cut: that cut already answered it
    NOISE = "noise"  # a 429 at the share the gateway refuses whatever the rate: no sign of the limit
    THROTTLE = "throttle"  # a 429 over that share: the rate is over the limit


def classify(status: int, *, sent_at: float | None, cut_at: float | None) -> Signal:
    """The signal of an answer with HTTP ``status`` to a request let go at ``sent_at`` (None: unknown), the last cut
    made at ``cut_at`` (None: none yet): OK, ECHO or THROTTLE (``transforms.noise_floor`` tells NOISE apart)."""
    if status != TOO_MANY_REQUESTS:
        return Signal.OK
    if sent_at is not None and cut_at is not None and sent_at < cut_at:
        return Signal.ECHO
    return Signal.THROTTLE
