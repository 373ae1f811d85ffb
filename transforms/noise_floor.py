"""The share of 429s a gateway answers whatever the rate (its noise), and whether recent 429s exceed it (pure)."""

from __future__ import annotations

import math
from collections import deque

from transforms.pacing_signal import Signal

#: How unlikely the recent 429s must be under the noise before they count as a limit: at 10% random 429s, cutting on
#: anything likelier than 1 in 100 cut several times a second.
SIGNIFICANCE = 0.01
#: The least noise assumed: a lone 429 among dozens of answers does not cut, two in a few answers do. Without it every
#: random 429 before the noise is learned cuts, and the first second of a noisy gateway takes the rate to a tenth.
NOISE_AT_LEAST = 0.02
#: A spell with fewer answers teaches nothing: the lowest share of small spells is 0 too often.
MIN_SPELL_ANSWERS = 20
#: Recent answers kept however old: at a few requests a second, a spell holds too few to tell a wall from noise.
RECENT_AT_LEAST = 10


class Recent:
    """The answers of the last ``span_s`` seconds (RECENT_AT_LEAST at least): how many, and how many were 429s."""

    def __init__(self, span_s: float) -> None:
        self._span_s = span_s
        self._answers: deque[tuple[float, bool]] = deque()
        self.hits = 0

    def add(self, now: float, throttled: bool) -> None:
        self._answers.append((now, throttled))
        self.hits += throttled
        while len(self._answers) > RECENT_AT_LEAST and self._answers[0][0] <= now - self._span_s:
            self.hits -= self._answers.popleft()[1]

    def clear(self) -> None:
        self._answers.clear()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def share(self) -> float:
        return self.hits / len(self._answers) if self._answers else 0.0


class NoiseFloor:
    """The lowest 429 share of the last ``spells`` spells of ``spell_s`` seconds (of MIN_SPELL_ANSWERS or more).

    The lowest, not the mean: a rate over the limit raises its spells' share, and the spell after a cut, under the
    limit, shows the noise alone; so a limit is not learned as noise. Recent 429s are judged on the answers of the
    last ``spell_s`` since the last cut.
    """

    def __init__(self, *, spell_s: float, spells: int) -> None:
        self._spell_s = spell_s
        self._shares: deque[float] = deque(maxlen=spells)
        self._spell = (-math.inf, 0, 0)  # start, answers and 429s of the spell being counted
        self.recent = Recent(spell_s)  # every answer of the last spell_s
        self._since_cut = Recent(spell_s)  # ... since the last cut

    @property
    def share(self) -> float:
        """The noise: 0 until ``spells`` spells are counted."""
        return min(self._shares) if len(self._shares) == self._shares.maxlen else 0.0

    def hear(self, now: float, signal: Signal, *, share: float | None = None) -> Signal:
        """One answer (not an echo) at ``now``: a THROTTLE the noise (``share``, this estimate by default) explains
        comes back as NOISE."""
        start, answers, hits = self._spell
        if now - start >= self._spell_s:
            if answers >= MIN_SPELL_ANSWERS:
                self._shares.append(hits / answers)
            start, answers, hits = now, 0, 0
        throttled = signal is Signal.THROTTLE
        self._spell = (start, answers + 1, hits + throttled)
        self.recent.add(now, throttled)
        self._since_cut.add(now, throttled)
        p = max(NOISE_AT_LEAST, self.share if share is None else share)
        if throttled and _binomial_tail(self._since_cut.hits, len(self._since_cut), p) >= SIGNIFICANCE:
            return Signal.NOISE
        return signal

    def cut(self) -> None:
        """The rate was cut: recent 429s are judged afresh."""
        self._since_cut.clear()


def _binomial_tail(hits: int, n: int, p: float) -> float:
    """P(X >= hits) for X ~ Binomial(n, p), summed from ``hits`` away from the mode until the terms vanish: a
    thousand answers a second cost a few dozen terms each, not a thousand big-integer ones (which overflow a float)."""
    if hits <= 0 or p >= 1.0:
        return 1.0
    if p <= 0.0 or hits > n:
        return 0.0
    upper = hits > n * p  # past the mean the upper tail is the smaller side; under it, its complement
    i = hits if upper else hits - 1
    term = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                    + i * math.log(p) + (n - i) * math.log1p(-p))
    total = 0.0
    while 0 <= i <= n and term > total * 1e-17:
        total += term
        term *= (n - i) / (i + 1) * p / (1 - p) if upper else i / (n - i + 1) * (1 - p) / p
        i += 1 if upper else -1
    return min(1.0, total) if upper else max(0.0, 1.0 - total)
