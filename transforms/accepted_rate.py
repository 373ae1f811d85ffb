"""The rate at which requests get through, smoothed over fixed time buckets (botocore's ``RateClocker``), pure."""

from __future__ import annotations

import math


class AcceptedRate:
    """Accepted requests per second: each closed bucket's count over its length, smoothed exponentially.

    Counts accepted answers only (botocore counts every answer): a cut then lands under what the gateway let
    through, not under what was sent into its 429s. The first bucket starts at the first answer, not when the
    estimator is made: a client is built seconds before its first request, and that idle time is no rate.
    """

    def __init__(self, *, smooth: float, bucket_s: float) -> None:
        self._smooth = smooth
        self._bucket_s = bucket_s
        self._bucket_start: float | None = None
        self._count = 0
        self.rate: float | None = None  # None until a bucket has closed

    def note(self, now: float, *, accepted: bool) -> float | None:
        """One answer at ``now``; returns the estimate."""
        start = math.floor(now / self._bucket_s) * self._bucket_s
        if self._bucket_start is None:
            self._bucket_start = start
        elif start > self._bucket_start:
            current = self._count / (start - self._bucket_start)
            self.rate = current if self.rate is None else self._smooth * current + (1 - self._smooth) * self.rate
            self._count, self._bucket_start = 0, start
        self._count += accepted
        return self.rate
