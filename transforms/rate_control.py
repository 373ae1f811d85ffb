"""The send rate of one endpoint or of the whole client, found by probing an unknown limit (pure: the caller gives
the time). botocore's adaptive mode (``botocore/retries/adaptive.py``) with a slow start, a touch, two holds, cuts
from the most that got through, and two rules more.

Until the first 429 (phase ``OPEN``) the rate starts at ``FIRST_RATE`` and ramps to ``RAMP`` times what gets
through, up to the configured ceiling. From then on (``PACED``) a 429 over the limit cuts it to
``beta * min(accepted rate, rate)`` (``beta * TOUCH_KEEP * rate`` at the ceiling), and every other answer lets it
grow back along a cubic that flattens at the rate of the last cut (and stays there ``HOLD_S`` when a probe past it
found it again, ``TOUCH_HOLD_S`` after a touch of the ceiling). What each answer does is one table,
``TRANSITIONS`` (phase x signal -> action, next phase); ``transforms.pacing_signal.classify`` tells the signal.

Rule | why | the test that fails without it (in tests/pacing/)
- a slow start up to the ceiling until the first 429 | let go at ten times an unknown limit, ~100 requests were
  refused before the first 429 came back | test_a_run_starts_slow_and_ramps_by_what_gets_through
- a cut to beta * min(accepted, rate) | one cut lands under what got through |
  test_a_cut_under_the_ceiling_keeps_beta_of_what_got_through
- under the ceiling, from MOST_KEEP * the most that got through since the last cut at least (at MOST_ANSWERS a
  bucket) | past a bucket of one what gets through reads low |
  test_a_cut_is_from_the_most_that_got_through_since_the_last_cut,
  test_at_a_few_requests_a_second_the_most_that_got_through_costs_no_429s
- a cut at the ceiling (a touch) from TOUCH_KEEP * rate | at a bucket of one's limit what got through reads half of
  it | test_a_cut_at_the_ceiling_is_from_the_rate_sent
- a touch is held under the ceiling a minute | a bucket of one refuses a rate paced at its limit, and a brief 429
  storm held for good kept a run at 95% of its limit | test_a_touch_of_the_ceiling_is_held_under_it_a_minute
- cubic growth after a cut, scaled by the rate cut from | back in ~2 s at 10 or 400 requests/s |
  test_the_rate_grows_back_along_the_cubic_in_the_same_time_at_any_rate
- a probe past the last cut's rate that finds it again holds it HOLD_S | each probe past a bucket of one costs a cut |
  test_a_limit_found_twice_is_held_before_the_next_probe_past_it
- growth at most growth_cap * accepted | a rate never tried is no rate to send at |
  test_growth_is_capped_by_what_gets_through_and_the_cap_does_not_cut
- echoes do not cut | 429s of requests let go before a cut were answered by it | test_echoes_of_one_overshoot_cut_once
- 429s at the noise's share do not cut | random 429s would drag a run to its floor |
  test_random_429s_do_not_drag_the_rate_to_the_floor
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum

from transforms.accepted_rate import AcceptedRate
from transforms.cubic import cubic_rate
from transforms.noise_floor import NoiseFloor
from transforms.pacing_signal import Signal, classify

#: The least share of its rate a cut keeps.
MOST_CUT = 0.5
#: The rate (requests/s) a controller starts at, before anything has got through: requests let go faster than the
#: limit before the first 429 comes back are all refused.
FIRST_RATE = 10.0
#: The slow start's rate is this many times what got through: a doubling per half-second bucket kept a told run
#: under 90% of R for its first two seconds.
RAMP = 4.0
#: A cut at the configured ceiling is a touch of a known limit, from this share of the rate sent: requests paced at a
#: bucket of one's limit reach it a few ms apart and half are refused, so what got through reads half the limit.
#: (Below the ceiling a cut is from what got through: cut from the rate sent, a run whose limit fell to a tenth
#: never got under it.)
TOUCH_KEEP = 0.95
#: A cut under the ceiling is from this share of the most that got through since the last cut at least: the limit
#: let that through, while past a bucket of one what gets through reads low, and cuts from it held an attach-only
#: limit not told a little lower each time.
MOST_KEEP = 0.95
#: ... noted only at a rate whose bucket (``bucket_s``) holds this many answers at least: over one or two a bucket
#: the measure jumps and its most reads high, and cuts from it held a limit of 1-3 requests/s with 26-40% 429s.
MOST_ANSWERS = 3
#: A probe past the last cut's rate whose cut lands this close to it (a share of it) found the same limit again ...
HOLD_NEAR = 0.1
#: ... and the rate is held there this long before the next probe: each probe past a bucket of one costs a cut to
#: beta of it, and probing every ~3 s kept an attach-only limit at ~80% of it.
HOLD_S = 5.0
#: How long a touch of the configured ceiling is held under it before the ceiling is probed again: a bucket of one
#: refuses a rate paced at its limit, and each probe of it costs a cut (~1% of a minute's requests); a touch that was
#: a brief 429 storm, held for good, kept a run at 95% of a limit it could go at.
TOUCH_HOLD_S = 60.0


@dataclass(frozen=True)
class RateControl:
    """The controller's tunables; beta, floor, growth_cap, smooth and bucket_s are botocore's."""

    ceiling: float  # the configured limit (requests/s): never faster
    beta: float = 0.7  # a cut keeps this share of the rate it cuts from
    scale: float = 0.04  # CUBIC's C per requests/s cut from (per s³): back to that rate in ~2 s at any rate
    floor: float = 0.5  # never slower, so a run under heavy throttling still moves
    growth_cap: float = 2.0  # never more than this times the accepted rate once paced
    smooth: float = 0.8  # the weight of the newest bucket in the accepted rate
    bucket_s: float = 0.5  # the accepted rate's bucket (seconds)
    spell_s: float = 1.0  # the noise's spell (seconds)
    spells: int = 3  # the noise is the lowest share of this many spells
    hold_s: float = HOLD_S  # how long a limit a probe found again is held before the next probe
    most_keep: float = MOST_KEEP  # a cut under the ceiling keeps this share of the most that got through at least

    def __post_init__(self) -> None:
        if not (self.ceiling > 0 and 0 < self.beta < 1 and self.scale > 0 and self.growth_cap >= 1):
            raise ValueError("rate control: need ceiling > 0, 0 < beta < 1, scale > 0 and growth_cap >= 1")
        if not (0 < self.smooth <= 1 and self.bucket_s > 0 and self.floor > 0 and self.spell_s > 0 < self.spells):
            raise ValueError("rate control: need 0 < smooth <= 1 and bucket_s, floor, spell_s, spells > 0")
        if not (self.hold_s >= 0 and 0 <= self.most_keep <= 1):
            raise ValueError("rate control: need hold_s >= 0 and 0 <= most_keep <= 1")


class Phase(Enum):
    OPEN = "open"  # no 429 over the noise yet: the rate is the ceiling
    PACED = "paced"  # cut at least once: the rate grows back after each cut


class Action(Enum):
    HOLD = "hold"
    RAMP = "ramp"  # slow start: RAMP times what gets through, up to the ceiling
    GROW = "grow"  # the cubic after a cut
    CUT = "cut"


TRANSITIONS: dict[tuple[Phase, Signal], tuple[Action, Phase]] = {
    (Phase.OPEN, Signal.OK): (Action.RAMP, Phase.OPEN),
    (Phase.OPEN, Signal.ECHO): (Action.HOLD, Phase.OPEN),
    (Phase.OPEN, Signal.NOISE): (Action.HOLD, Phase.OPEN),
    (Phase.OPEN, Signal.THROTTLE): (Action.CUT, Phase.PACED),
    (Phase.PACED, Signal.OK): (Action.GROW, Phase.PACED),
    (Phase.PACED, Signal.ECHO): (Action.HOLD, Phase.PACED),
    (Phase.PACED, Signal.NOISE): (Action.HOLD, Phase.PACED),
    (Phase.PACED, Signal.THROTTLE): (Action.CUT, Phase.PACED),
}


class RateController:
    """One send rate: ``hear`` each answer, read ``rate``."""

    def __init__(self, config: RateControl) -> None:
        self.config = config
        self._floor = config.floor  # the configured floor, however low a share's ceiling took it
        self.phase = Phase.OPEN
        self._level = min(FIRST_RATE, config.ceiling)  # the rate before the floor and ceiling bound it
        self.rate = max(self._level, config.floor)
        self.cuts = 0
        self._w_max = config.ceiling  # the rate the last cut was from: where the cubic flattens
        self._cut_at: float | None = None
        self._most_through = 0.0  # the most that got through since the rate was back at the last cut's
        self._hold_s = 0.0  # how long the cubic stays at the last cut's rate (hold_s, or TOUCH_HOLD_S after a touch)
        self._accepted = AcceptedRate(smooth=config.smooth, bucket_s=config.bucket_s)
        self._noise = NoiseFloor(spell_s=config.spell_s, spells=config.spells)

    @property
    def noise(self) -> float:
        """The share of 429s learned as the gateway's noise."""
        return self._noise.share

    @property
    def recent(self) -> tuple[int, int]:
        """The answers of the last spell, and how many were 429s."""
        return len(self._noise.recent), self._noise.recent.hits

    def hear(self, now: float, status: int, *, sent_at: float | None = None, noise: float | None = None) -> Signal:
        """An answer with ``status`` at ``now`` to a request let go at ``sent_at`` (seconds, one clock), its 429
        judged against ``noise`` (this controller's own estimate by default); returns the signal heard. ``rate``
        is then the rate from now on."""
        signal = classify(status, sent_at=sent_at, cut_at=self._cut_at)
        if signal is not Signal.ECHO:  # an echo tells nothing of the noise, and is not judged against it
            signal = self._noise.hear(now, signal, share=noise)
        action, self.phase = TRANSITIONS[(self.phase, signal)]
        accepted = self._accepted.note(now, accepted=signal is Signal.OK)
        c = self.config
        # back at the last cut's rate (after a cut, the measure still reads the flood), and MOST_ANSWERS a bucket
        if self.rate >= self._w_max and self.rate * c.bucket_s >= MOST_ANSWERS:
            self._most_through = max(self._most_through, accepted or 0.0)
        if action is Action.CUT:
            self._cut(now, accepted)
        elif action is Action.RAMP and accepted is not None:
            self._level = max(self._level, RAMP * accepted)
        elif action is Action.GROW:
            since = now - self._cut_at if self._cut_at is not None else 0.0
            grown = cubic_rate(since, self._w_max, beta=c.beta, scale=c.scale * self._w_max, hold_s=self._hold_s)
            # the cap stops growth, it does not cut: an early measure reads low while answers are still coming back
            cap = math.inf if accepted is None else c.growth_cap * accepted
            self._level = max(self._level, min(grown, cap))
        self._level = min(self._level, c.ceiling)
        self.rate = max(self._level, c.floor)
        return signal

    def _cut(self, now: float, accepted: float | None) -> None:
        c = self.config
        if self.rate >= c.ceiling:  # a touch of a limit the configuration states: from now on, held under it
            measured, self._hold_s = TOUCH_KEEP * self.rate, TOUCH_HOLD_S
        else:  # what gets through (the rate without a measure), and at least MOST_KEEP of the most since the last cut
            through = self.rate if accepted is None else accepted
            measured = min(max(through, c.most_keep * self._most_through), self.rate)
        # A cut halves the rate at most: 429s come back before the answers that got through, so the first measure
        # after a flood reads far too low. Never under the floor.
        w_max = max(measured, self.rate * MOST_CUT / c.beta, c.floor)
        if self.rate < c.ceiling:  # a probe past the last cut's rate that finds it again holds it
            again = self.rate > self._w_max and abs(w_max - self._w_max) <= HOLD_NEAR * self._w_max
            self._hold_s = c.hold_s if again else 0.0
        self._w_max, self._cut_at, self._most_through = w_max, now, 0.0
        self.cuts += 1
        self._noise.cut()
        self._level = c.beta * w_max

    def set_ceiling(self, ceiling: float) -> float:
        """A new configured limit (a fanned-out run's share): the slow start's bound while ``OPEN``; once ``PACED``
        the rate and the last cut's and what got through scale with it: what was found for one share is found for
        its part of the whole rate."""
        ratio = ceiling / self.config.ceiling
        self.config = replace(self.config, ceiling=ceiling, floor=min(self._floor, ceiling))
        self._w_max *= ratio
        self._most_through *= ratio
        self._accepted.scale(ratio)
        # open, the ceiling only bounds the slow start: what gets through of this client's own requests sets it
        self._level = min(self._level, ceiling) if self.phase is Phase.OPEN else self._level * ratio
        self.rate = max(self._level, self.config.floor)
        return self.rate
