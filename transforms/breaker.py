"""A circuit breaker: after a run of server failures, pause everything instead of burning retries (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` server failures in a row (5xx, drops, timeouts; not 429 or 4xx).

    While open, the client sends nothing for a pause that doubles each time it opens again without a
    success in between (up to ``max_pause_s``), so a struggling API gets room and the retry budget of
    each request is not spent against a wall.
    """

    threshold: int = 20
    base_pause_s: float = 5.0
    max_pause_s: float = 120.0
    failures_in_a_row: int = 0
    opened: int = 0
    _pause_s: float = 0.0

    def record(self, *, server_failure: bool, now: float) -> float | None:
        """Note one response; returns the time until which to pause when the breaker opens, else None."""
        if not server_failure:
            self.failures_in_a_row = 0
            self._pause_s = 0.0
            return None
        self.failures_in_a_row += 1
        if self.failures_in_a_row < self.threshold:
            return None
        self.failures_in_a_row = 0
        self.opened += 1
        self._pause_s = min(self.max_pause_s, self._pause_s * 2 if self._pause_s else self.base_pause_s)
        return now + self._pause_s
