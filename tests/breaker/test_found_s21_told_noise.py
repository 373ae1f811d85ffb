"""Session 21: told the limit, no real limit, 10% random 429s on every endpoint (EndpointLimiters, fake clock).

Session 20's ``_run`` (customer look-ups and attaches at 15/s, uploads as fast as allowed, answers 20 ms later),
over 80 seeds of 20 s instead of its 6 of 30 s. The worst seeds crawl: seeds 30 and 72 sent 50/s and 51/s over the
second half (told 100/s, 90/s possible); mean over the 80 seeds 84.8/s. Not from 3551645: the commit before had
37/s (seeds 12, 26), mean 86.1/s; a simulation of my own (sim2, other demands) had 3551645 worse in the tail (34/s
against 53/s): which seeds crawl moves with any change. Seen in one crawling run (slow start reached the ceiling
at 0.6 s): a cluster of random 429s before any noise was learned (three seconds are needed) cut the whole client
to 42/s, and at a few requests a second clusters of them went on cutting the upload controller (six cuts, to
6.5/s). Left to the lead: seconds at low rates hold too few answers to tell noise from a limit.
"""

from __future__ import annotations

import pytest

from tests.breaker.test_found_s20_global_limit import _run


# Fixed by the lead: the slow start's own random 429s (no wall) are learned as the noise when it reaches the ceiling.
@pytest.mark.parametrize("seed", [30, 72])
def test_random_429s_do_not_hold_a_told_run_at_half_its_rate(seed: int) -> None:
    rate, _, _ = _run(20.0, limit=1e6, burst=1e6, ceiling=100.0, noise=0.10, seed=seed)
    assert rate >= 0.7 * 100.0 * (1 - 0.10)
