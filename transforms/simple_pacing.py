"""The simplest closed-loop send rate: botocore's adaptive mode, for one endpoint or the whole client (pure).

The rate is the configured ceiling until the first 429 (phase ``OPEN``). From then on (``PACED``) every 429
cuts it to ``beta * min(accepted rate, rate)``, and every other answer lets it grow back along a cubic that
flattens at the rate of the last cut, never above ``growth_cap`` times the accepted rate. What happens on each
answer is one table, ``TRANSITIONS`` (phase x signal -> action, next phase); the caller gives the time.

Rule | why | the test that fails without it (tests/pacing/test_simple_controller.py)
- cut to beta * min(accepted, rate) on a 429 | one cut lands under what got through |
  test_a_throttle_cuts_to_beta_times_the_lower_of_accepted_and_rate
- cubic growth after a cut | fast back from far below, slow past the last trouble |
  test_success_grows_back_along_the_cubic_to_the_rate_of_the_last_cut
- growth at most growth_cap * accepted | a rate never tried is no rate to send at |
  test_growth_is_capped_at_twice_the_accepted_rate
- the ceiling until the first 429 | nothing says the configured limit is too fast |
  test_open_phase_holds_the_ceiling_until_the_first_429
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from transforms.accepted_rate import AcceptedRate
from transforms.cubic import cubic_rate
from transforms.pacing_signal import Signal


@dataclass(frozen=True)
class SimplePacing:
    """The controller's tunables; the defaults are botocore's (``botocore/retries/adaptive.py``)."""

    ceiling: float  # the configured limit (requests/s): never faster
    beta: float = 0.7  # a cut keeps this share of the rate it cuts from
    scale: float = 0.4  # CUBIC's C (requests/s per s³): how fast the rate climbs back
    floor: float = 0.5  # never slower, so a run under heavy throttling still moves
    growth_cap: float = 2.0  # never more than this times the accepted rate once paced
    smooth: float = 0.8  # the weight of the newest bucket in the accepted rate
    bucket_s: float = 0.5  # the accepted rate's bucket (seconds)

    def __post_init__(self) -> None:
        if not (self.ceiling > 0 and 0 < self.beta < 1 and self.scale > 0 and self.growth_cap >= 1):
            raise ValueError("simple pacing: need ceiling > 0, 0 < beta < 1, scale > 0 and growth_cap >= 1")
        if not (0 < self.smooth <= 1 and self.bucket_s > 0 and self.floor > 0):
            raise ValueError("simple pacing: need 0 < smooth <= 1, bucket_s > 0 and floor > 0")


class Phase(Enum):
    OPEN = "open"  # no 429 yet: the rate is the ceiling
    PACED = "paced"  # a 429 came: the rate is cut and grows back


class Action(Enum):
    HOLD = "hold"
    GROW = "grow"
    CUT = "cut"


TRANSITIONS: dict[tuple[Phase, Signal], tuple[Action, Phase]] = {
    (Phase.OPEN, Signal.OK): (Action.HOLD, Phase.OPEN),
    (Phase.OPEN, Signal.THROTTLE): (Action.CUT, Phase.PACED),
    (Phase.OPEN, Signal.SILENT): (Action.HOLD, Phase.OPEN),
    (Phase.PACED, Signal.OK): (Action.GROW, Phase.PACED),
    (Phase.PACED, Signal.THROTTLE): (Action.CUT, Phase.PACED),
    (Phase.PACED, Signal.SILENT): (Action.HOLD, Phase.PACED),
}


class SimpleController:
    """One send rate: ``hear`` each answer, read ``rate``."""

    def __init__(self, config: SimplePacing) -> None:
        self.config = config
        self._floor = config.floor  # the configured floor, however low a share's ceiling took it
        self.phase = Phase.OPEN
        self.rate = config.ceiling
        self.cuts = 0
        self._w_max = config.ceiling  # the rate the last cut was from: where the cubic flattens
        self._cut_at = 0.0
        self._accepted = AcceptedRate(smooth=config.smooth, bucket_s=config.bucket_s)

    def hear(self, now: float, signal: Signal) -> float:
        """One answer at ``now`` (seconds, any clock); returns the rate from now on."""
        accepted = self._accepted.note(now, accepted=signal is Signal.OK) if signal is not Signal.SILENT else None
        action, self.phase = TRANSITIONS[(self.phase, signal)]
        c = self.config
        if action is Action.CUT:
            # Until a bucket has closed there is no measure: the rate stands in for it.
            self._w_max = min(self.rate if accepted is None else accepted, self.rate)
            self._cut_at = now
            self.cuts += 1
            self.rate = c.beta * self._w_max
        elif action is Action.GROW:
            self.rate = cubic_rate(now - self._cut_at, self._w_max, beta=c.beta, scale=c.scale)
            if accepted is not None:
                self.rate = min(self.rate, c.growth_cap * accepted)
        self.rate = min(max(self.rate, c.floor), c.ceiling)
        return self.rate

    def set_ceiling(self, ceiling: float) -> float:
        """A new configured limit (a fanned-out run's share): the rate while ``OPEN``, a cap once ``PACED``."""
        self.config = replace(self.config, ceiling=ceiling, floor=min(self._floor, ceiling))
        self.rate = ceiling if self.phase is Phase.OPEN else min(max(self.rate, self.config.floor), ceiling)
        return self.rate
