"""The pacing rules a benchmark can take out, one by one, to measure what each is worth (docs/design/pacing.md).

Each rule is undone by patching the module that holds it, in the process that paces: the virtual-time sweep's, or the
end-to-end bench's child (``BENCH_PACING_WITHOUT=rule,rule``). Nothing here is a setting of the product.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import replace

import connectors.rate_limiter as limiter_module
import transforms.noise_floor as noise_module
import transforms.rate_control as control_module
from connectors.rate_limiter import EndpointLimiters, SmoothLimiter
from transforms.rate_control import RateController

VARIABLE = "BENCH_PACING_WITHOUT"


def _no_slow_start() -> None:
    control_module.FIRST_RATE = math.inf  # the configured ceiling from the first request, as botocore's


def _no_touch() -> None:
    """A cut at the ceiling is as any other: from what got through, and not held under it."""
    cut = RateController._cut

    def as_under_the_ceiling(self: RateController, now: float, accepted: float | None) -> None:
        config = self.config
        self.config = replace(config, ceiling=math.inf)  # the ceiling is read in _cut for the touch only
        try:
            cut(self, now, accepted)
        finally:
            self.config = config
    RateController._cut = as_under_the_ceiling  # type: ignore[method-assign]


def _no_hold() -> None:
    _with_config(hold_s=0.0)  # every climb back probes past the last cut's rate at once


def _no_touch_hold() -> None:
    control_module.TOUCH_HOLD_S = 0.0  # a touch of the ceiling climbs back to it


def _no_most_through() -> None:
    _with_config(most_keep=0.0)  # a cut from what gets through now


def _no_echoes() -> None:
    classify = control_module.classify
    control_module.classify = lambda status, *, sent_at, cut_at: classify(status, sent_at=sent_at, cut_at=None)


def _no_noise_floor() -> None:
    noise_module._binomial_tail = lambda hits, n, p: 0.0  # every 429 cuts, as botocore's


def _no_routing() -> None:
    """Every answer heard by its endpoint's controller and the whole client's alike, each against its own noise."""
    def heard_by_both(self: EndpointLimiters, endpoint: str, status: int, retry_after: float | None = None, *,
                      sent_at: float | None = None) -> None:
        now = self._clock()
        if sent_at is None:
            task = limiter_module._current_task()
            sent_at = self._let_go.get(task) if task is not None else None
        self.controllers[endpoint].hear(now, status, sent_at=sent_at)
        self.limiters[endpoint].set_rate(self.controllers[endpoint].rate)
        self.overall_control.hear(now, status, sent_at=sent_at)
        self.overall.set_rate(self.overall_control.rate)
        if status == 429 and retry_after:
            limiter = self.limiters[endpoint]
            limiter.not_before = max(limiter.not_before, now + retry_after)
    EndpointLimiters.on_answer = heard_by_both  # type: ignore[method-assign]


def _no_small_ahead() -> None:
    acquire = SmoothLimiter.acquire

    async def not_ahead(self: SmoothLimiter, *, then: SmoothLimiter | None = None, ahead: bool = False) -> float:
        return await acquire(self, then=then, ahead=False)
    SmoothLimiter.acquire = not_ahead  # type: ignore[method-assign]


def _no_own_token_last() -> None:
    async def one_after_the_other(self: EndpointLimiters, endpoint: str) -> float:
        waited = await self.limiters[endpoint].acquire() + await self.overall.acquire(ahead=endpoint != "upload")
        task = limiter_module._current_task()
        if task is not None:
            self._let_go[task] = self._clock()
        return waited
    EndpointLimiters.acquire = one_after_the_other  # type: ignore[method-assign]


def _no_growth_cap() -> None:
    _with_config(growth_cap=1e9)


def _with_config(**changes: float) -> None:
    """Every controller the limiters make from now on with ``changes`` to its tunables."""
    made = limiter_module._controller

    def changed(ceiling: float, **tunables: float) -> control_module.RateController:
        controller = made(ceiling, **tunables)
        controller.config = replace(controller.config, **changes)
        return controller
    limiter_module._controller = changed


RULES: dict[str, Callable[[], None]] = {
    "slow-start": _no_slow_start,
    "touch": _no_touch,
    "hold": _no_hold,
    "touch-hold": _no_touch_hold,
    "most-through": _no_most_through,
    "echoes": _no_echoes,
    "noise-floor": _no_noise_floor,
    "routing-by-share": _no_routing,
    "small-ahead": _no_small_ahead,
    "own-token-last": _no_own_token_last,
    "growth-cap": _no_growth_cap,
}


def take_out(rules: list[str]) -> None:
    """Undo ``rules`` in this process."""
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise SystemExit(f"no pacing rule {unknown[0]!r} (rules: {', '.join(RULES)})")
    for rule in rules:
        RULES[rule]()


def take_out_from_environment() -> list[str]:
    """Undo the rules named by BENCH_PACING_WITHOUT; returns them."""
    rules = [r for r in os.environ.get(VARIABLE, "").split(",") if r]
    take_out(rules)
    return rules

