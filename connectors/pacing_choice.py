"""Which rate controller paces a process: today's (``connectors.rate_limiter``) or the simple one
(``connectors.simple_limiter``), chosen by ``KYC_BENCH_PACING_CONTROLLER`` so that one benchmark runs both.

Not a setting of the product: the variable exists for the ablation (docs/design/pacing-ablation.md) and is read
here only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from connectors.rate_limiter import Endpoint, EndpointLimiters
from connectors.simple_limiter import SimpleLimiters

VARIABLE = "KYC_BENCH_PACING_CONTROLLER"
CONTROLLERS = ("current", "simple")


class Pacer(Protocol):
    """What a client needs of its limiters."""

    async def acquire(self, endpoint: str) -> float: ...
    def on_success(self, endpoint: str) -> None: ...
    def on_throttle(self, endpoint: str, retry_after: float | None, *, sent_at: float | None = None) -> None: ...
    def set_ceiling(self, ceiling: float) -> None: ...
    @property
    def ceiling(self) -> float: ...
    def rates(self) -> dict[str, float]: ...


def chosen_controller(environ: Mapping[str, str] = os.environ) -> str:
    """The controller named by ``KYC_BENCH_PACING_CONTROLLER`` (today's when unset)."""
    name = environ.get(VARIABLE, "current").strip().lower() or "current"
    if name not in CONTROLLERS:
        raise ValueError(f"{VARIABLE}: no such controller (controllers: {', '.join(CONTROLLERS)})")
    return name


def make_limiters(ceiling: float, *, endpoint_ceilings: Mapping[Endpoint, float] | None, burst_s: float,
                  small_ahead: bool, environ: Mapping[str, str] = os.environ) -> Pacer:
    """The chosen controller's limiters for a configured limit of ``ceiling`` requests/s."""
    if chosen_controller(environ) == "simple":
        return SimpleLimiters(ceiling, endpoint_ceilings=endpoint_ceilings, burst_s=burst_s)
    return EndpointLimiters(ceiling, endpoint_ceilings=endpoint_ceilings, burst_s=burst_s, small_ahead=small_ahead)
