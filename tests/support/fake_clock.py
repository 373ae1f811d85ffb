"""A fake clock for the rate limiter and controller tests: time moves only when a caller sleeps or sets ``now``."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A clock that only moves when someone sleeps (or a simulation sets ``now``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)
