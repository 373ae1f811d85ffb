"""The harsh gateway the rate controller is measured against: random 429s and the per-second meter."""

from __future__ import annotations

from sandbox.faults import Faults
from sandbox.injector import FaultInjector


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_random_429_share_holds_whatever_the_rate_and_leaves_other_fates_alone() -> None:
    noisy = FaultInjector(Faults.model_validate({"seed": 3, "random_429": {"share": 0.1},
                                                 "errors": {"share": 0.2}}))
    quiet = FaultInjector(Faults.model_validate({"seed": 3, "errors": {"share": 0.2}}))
    refused = [noisy.throttle("upload") for _ in range(5000)]
    share = sum(r is not None for r in refused) / len(refused)
    assert 0.08 < share < 0.12
    assert all(r == (1.0, False) for r in refused if r is not None)  # no Retry-After unless asked
    # the 429 draws come from a stream of their own: the n-th request's other fate is unchanged
    assert [noisy.fate("upload") for _ in range(200)] == [quiet.fate("upload") for _ in range(200)]


def test_random_429_scoped_to_an_endpoint() -> None:
    injector = FaultInjector(Faults.model_validate({"random_429": {"share": 1.0, "endpoints": ["attach"],
                                                                   "retry_after": True}}))
    assert injector.throttle("attach") == (1.0, True)
    assert injector.throttle("upload") is None


def test_meter_counts_only_requests_let_through_by_second() -> None:
    clock = _Clock()
    injector = FaultInjector(Faults.model_validate({"rate_limit": {"rps": 10, "burst": 2, "retry_after": False}}),
                             clock=clock)
    passed = [injector.throttle("upload") is None for _ in range(5)]
    assert passed == [True, True, False, False, False]  # a burst of 2, then nothing until a token comes
    clock.now += 1.0
    assert sum(injector.throttle("customer") is None for _ in range(20)) == 2  # the burst caps what a second gets
    assert injector.rate_seen() == {"max_per_second": 2, "seconds": 2, "inner_mean": 0.0, "attach_inner_mean": 0.0,
                                    "per_second": [2, 2], "attach_per_second": [], "refused_per_second": [3, 18]}
    clock.now += 2.0  # a second with nothing between two with requests counts as 0
    injector.throttle("customer")
    clock.now += 0.9
    injector.throttle("customer")  # 0.9 s at 10/s: a second token has come
    assert injector.rate_seen()["seconds"] == 3
    assert injector.rate_seen()["inner_mean"] == 1.0  # seconds 1001 (2) and 1002 (0)
    clock.now += 1.0
    injector.throttle("customer")
    seen = injector.rate_seen()
    assert seen["inner_mean"] == round((2 + 0 + 2) / 3, 1)  # seconds 1001, 1002, 1003: between the first and last
    assert seen["attach_inner_mean"] == 0.0
    assert seen["per_second"] == [2, 2, 0, 2, 1]  # every second from the first to the last, the empty one too


def test_the_mean_rate_spans_the_work_not_a_token_asked_for_seconds_before_it() -> None:
    clock = _Clock()
    injector = FaultInjector(Faults.model_validate({"rate_limit": {"rps": 100, "burst": 10, "retry_after": False}}),
                             clock=clock)
    injector.throttle("token")  # the start-up checks
    for second in range(3, 7):  # the plan took until second 3; then 5 uploads a second
        clock.now = 1000.0 + second
        for _ in range(5):
            injector.throttle("upload")
    seen = injector.rate_seen()
    assert seen["per_second"] == [1, 0, 0, 5, 5, 5, 5]  # the meter shows the token's second all the same
    assert seen["inner_mean"] == 5.0  # seconds 4 and 5; counted from the token's, 2.0
