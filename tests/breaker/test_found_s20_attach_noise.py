"""Session 20: an attach-only limit (a bucket of one) next to busy customer look-ups, through EndpointLimiters.

Pure logic on a fake clock: two streams (customer look-ups with no limit of their own, attaches against a gateway
bucket of one request at 10/s), each let go at the pace of its endpoint's limiter and the whole client's, answered
20 ms later (a 429 says when its request was let go). No limit on the whole client within reach.
"""

from __future__ import annotations

from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock
from tests.support.rate_answers import answer_limiters


def _run(streams: tuple[str, ...], seconds: float, *, attach_limit: float = 10.0,
         ceiling: float = 100.0) -> tuple[dict[str, float], dict[str, float], EndpointLimiters]:
    """Returns (successes/s over the second half, 429 share over the second half) per endpoint, and the limiters."""
    clock = FakeClock()
    limiters = EndpointLimiters(ceiling, clock=clock)
    due = dict.fromkeys(streams, 0.0)
    last_any = -1.0
    tokens, stamp = 1.0, 0.0
    sent = dict.fromkeys(streams, 0)
    ok = dict.fromkeys(streams, 0)
    pending: list[tuple[float, str, bool, float]] = []
    while True:
        endpoint = min(streams, key=lambda e: due[e])
        t = max(due[endpoint], last_any + 1.0 / limiters.overall.rate)
        if t > seconds:
            break
        answer_limiters(pending, t, limiters, clock)
        clock.now = last_any = t
        throttled = False
        if endpoint == "attach":
            tokens, stamp = min(1.0, tokens + (t - stamp) * attach_limit), t
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                throttled = True
        if t >= seconds / 2:
            sent[endpoint] += 1
            ok[endpoint] += not throttled
        pending.append((t + 0.02, endpoint, throttled, t))
        pending.sort()
        due[endpoint] = t + 1.0 / limiters.limiters[endpoint].rate
    rates = {e: ok[e] / (seconds / 2) for e in streams}
    shares = {e: 1.0 - ok[e] / sent[e] if sent[e] else 0.0 for e in streams}
    return rates, shares, limiters


def test_an_attach_limit_next_to_busy_look_ups_is_found_not_learned_as_noise() -> None:
    # The attach controller cut 100 -> 50 -> 25 -> 12.5 (each cut halves at most), and the seconds spent at or under
    # those rates (all above the limit: a bucket of one refuses half of them) taught it ~45% "noise": it never cut
    # again and sent 17.5/s against the 10/s limit, 45% of attaches answered 429, for good.
    rates, shares, limiters = _run(("customer", "attach"), 40.0)
    assert shares["attach"] <= 0.10
    assert limiters.limiters["attach"].rate < 1.3 * 10.0
    assert rates["attach"] >= 0.7 * 10.0
    assert rates["customer"] >= 0.7 * (100.0 - 10.0)  # the look-ups are not held at attach's limit
