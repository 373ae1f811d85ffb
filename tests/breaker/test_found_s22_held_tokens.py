"""Session 22: small requests holding the whole client's tokens across a cut of its rate (9513ce3's order).

Since 9513ce3 a customer look-up or an attach takes the whole client's token first (ahead of the upload queue), then
waits for its own endpoint's token. Attaches told 2/s with four waiting each hold a whole-client token taken up to
two seconds earlier; when the whole client's rate drops (here its ceiling to 5/s at 3 s, as a cut or a smaller share
would) those requests still leave at attach's pace on tokens of the old rate, and the next ones go ahead again.
Virtual-time simulation through ``acquire`` (``sim_s22``), 16 upload workers, 4 attach, 4 look-up (10/s), no 429s.
Any 2 s after the drop: 15 requests against 5/s (bound 5 x 2 + 1 = 11); the commit before (own token first, the whole
client's last): 11. Over any span the excess is the small requests waiting (FinClient lets max_in_flight / 4 of them
in flight), not one token. Not fixed: taking the whole client's token last brings back the bunched attaches that
9513ce3 removed. Tried: the whole client's token taken (ahead) once the own token is due, holding the own limiter's
lock, the own token then: 11 here, but attaches waiting on the own lock lost every whole-client token to look-ups
after the drop (0 attaches in 4 s), and under a global limit with 10% random 429s look-ups fell to 4.9/s (seeds 2
and 3 of test_found_s22_alone); dropped.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import VirtualClock, simulate


def _drop(limiters: EndpointLimiters) -> None:
    limiters.overall.set_rate(limiters.overall_control.set_ceiling(5.0, 0.5))


@pytest.mark.xfail(strict=True, reason="known gap: small requests hold whole-client tokens taken before a drop of its "
                   "rate and leave on them after it: 15 requests in 2 s against 5/s")
def test_a_drop_of_the_whole_clients_rate_holds_while_attaches_wait() -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(100.0, endpoint_ceilings={"attach": 2.0}, start_share=1.0, clock=clock,
                                sleep=clock.sleep)

    result = simulate(limiters, 8.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 10.0},
                      jitter=0.3, events={3.0: _drop})
    assert result.max_window(2.0, start=3.0) <= 5 * 2 + 1  # 9513ce3: 15; 9078226: 11
