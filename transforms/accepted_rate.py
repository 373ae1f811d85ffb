"""The rate at which requests get through, smoothed over fixed time buckets (botocore's ``RateClocker``), pure."""

from __future__ import annotations

import math

#: The least span the first estimate is taken over: a few answers in the same millisecond are no rate.
FIRST_SPAN_S = 0.05
#: A pause without answers this long starts the estimate afresh: a run's token answer, seconds before its first
#: upload, made the first cut land at the floor (a blind run at R = 100 got 52% of R).
IDLE_S = 1.0


class AcceptedRate:
    """Accepted requests per second: each closed bucket's count over its length, smoothed exponentially.

    Counts accepted answers only (botocore counts every answer): a cut then lands under what the gateway let
    through, not under what was sent into its 429s. The first bucket starts at the first answer, not when the
    estimator is made, nor at the last answer before a pause of IDLE_S: idle time is no rate. Until it
    closes, the estimate is what got through since the first answer (over FIRST_SPAN_S at least): a run started at
    fifty times the limit otherwise cut from the rate sent, a third at a time, and met hundreds of 429s on the way.
    """

    def __init__(self, *, smooth: float, bucket_s: float) -> None:
        self._smooth = smooth
        self._bucket_s = bucket_s
        self._bucket_start: float | None = None
        self._first = self._last = 0.0  # the first answer's time, and the last one's
        self._count = 0
        self.rate: float | None = None  # None until a bucket has closed

    def note(self, now: float, *, accepted: bool) -> float | None:
        """One answer at ``now``; returns the estimate."""
        start = math.floor(now / self._bucket_s) * self._bucket_s
        if now - self._last > IDLE_S:
            self._bucket_start, self._count, self.rate = None, 0, None
        self._last = now
        if self._bucket_start is None:
            self._bucket_start, self._first = start, now
        elif start > self._bucket_start:
            current = self._count / (start - self._bucket_start)
            self.rate = current if self.rate is None else self._smooth * current + (1 - self._smooth) * self.rate
            self._count, self._bucket_start = 0, start
        self._count += accepted
        if self.rate is None and self._count:
            return self._count / max(now - self._first, FIRST_SPAN_S)
        return self.rate

    def scale(self, ratio: float) -> None:
        """The rate a new share lets through: what got through under the old one, times ``ratio``."""
        self.rate = None if self.rate is None else self.rate * ratio
