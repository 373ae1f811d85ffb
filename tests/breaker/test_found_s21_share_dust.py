"""Session 21: a controller at its ceiling given a new share lands a hair under it (pure RateController).

3551645's ``set_ceiling`` scales a controller that never met a limit by the ratio of the ceilings (the parent set it
to the new ceiling). At the old ceiling, ``rate * (new / old)`` is not always ``new`` in floating point (400 -> 109.09:
109.09090909090908 < 109.0909090909091; 1.7% of random shares): the controller is back "in its slow start", where
only a wall of 429s cuts and the whole client's share (``baseline``) is not asked. An endpoint controller (they
start at their ceiling) then cut on six 429s that a limit on the whole client explained, until its next success.
"""

from __future__ import annotations

import pytest

from transforms.rate_control import RateControl, RateController


@pytest.mark.parametrize(("old", "new"), [(400.0, 400.0 / 11 * 3), (100.0, 100.0 / 11 * 3), (1000.0, 1000.0 / 63)])
def test_a_controller_at_its_ceiling_stays_at_the_new_one(old: float, new: float) -> None:
    ctl = RateController(RateControl(ceiling=old, start_share=1.0), now=0.0)
    assert ctl.set_ceiling(new, floor=0.5) == new
    t = 0.0
    for _ in range(6):  # 429s that the whole client's share explains: not this endpoint's limit
        t += 0.005
        ctl.on_throttle(t, baseline=0.5, sent_at=t - 0.02)
    assert ctl.cuts == 0
