"""Each pacing rule the benchmarks take out (``bench/support/pacing_ablation.RULES``) is taken out for real: the
names it patches are there before it patches them, so a rename in the pacing code fails here instead of leaving
``--without`` measuring the full controller; and a small virtual-time case sends otherwise without it."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import bench.support.pacing_ablation as pacing_ablation
from bench.support.gateway_sim import ON_THE_WAY_S, Bucket, simulate
from connectors.rate_limiter import Endpoint, EndpointLimiters

RATE = 100.0
SECONDS = 12.0  # simulated: every rule has changed what is sent well before (a hold needs two probes past a limit)
_MISSING = object()


def _patchable() -> list[Any]:
    """The modules and classes of the product that pacing_ablation imports: where its rules patch."""
    held = [v for v in vars(pacing_ablation).values() if inspect.ismodule(v) or inspect.isclass(v)]
    return [v for v in held if (v.__name__ if inspect.ismodule(v) else v.__module__).startswith(
        ("connectors.", "transforms."))]


@contextmanager
def _taken_out(rule: str) -> Iterator[list[tuple[Any, str, bool]]]:
    """Take ``rule`` out; yields (owner, name, there before) of each attribute it set. Everything is put back on
    leaving, so the rules do not stack up between tests."""
    owners = _patchable()
    before = {id(o): dict(vars(o)) for o in owners}
    names_before = {id(o): set(dir(o)) for o in owners}
    try:
        pacing_ablation.RULES[rule]()
        yield [(o, name, name in names_before[id(o)]) for o in owners for name, value in vars(o).items()
               if before[id(o)].get(name, _MISSING) is not value]
    finally:
        for o in owners:
            for name in set(vars(o)) - set(before[id(o)]):
                delattr(o, name)
            for name, value in before[id(o)].items():
                if vars(o).get(name, _MISSING) is not value:
                    setattr(o, name, value)


Sends = list[tuple[float, str, bool]]


def _what_runs_send() -> tuple[Sends, ...]:
    """A few simulated seconds of a run not told the limit and of one told it, against a gateway limiting the whole
    client and its attaches (a bucket of one), with random 429s and without: every rule has a part in what one of
    them sends."""
    def sends(ceiling: float, endpoint_ceilings: dict[Endpoint, float] | None, noise: float) -> Sends:
        return simulate(lambda c: EndpointLimiters(ceiling, endpoint_ceilings=endpoint_ceilings, clock=c,
                                                   sleep=c.sleep), SECONDS,
                        workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": RATE * 0.15},
                        gateway=Bucket(RATE, 10), endpoint_buckets={"attach": Bucket(RATE / 10, 1)}, noise=noise,
                        jitter=0.3, seed=0, on_the_way=ON_THE_WAY_S).sends

    told = {"attach": RATE / 10}
    return tuple(sends(ceiling, limits, noise) for ceiling, limits in ((10 * RATE, None), (RATE, told))
                 for noise in (0.1, 0.0))


@pytest.fixture(scope="module")
def with_every_rule() -> tuple[Sends, ...]:
    return _what_runs_send()


def test_the_small_cases_send_the_same_each_time(with_every_rule: tuple[Sends, ...]) -> None:
    """Without this, a difference below could be the cases' own chance instead of the rule."""
    assert _what_runs_send() == with_every_rule
    for sends in with_every_rule:
        assert {endpoint for _, endpoint, _ in sends} == {"upload", "attach", "customer"}
        assert any(throttled for _, _, throttled in sends), "no 429 in a case: the rules are not tried"


@pytest.mark.parametrize("rule", list(pacing_ablation.RULES))
def test_every_name_a_rule_patches_is_there_before_it_patches_it(rule: str) -> None:
    with _taken_out(rule) as patched:
        assert patched, f"taking out {rule} set no attribute of {[o.__name__ for o in _patchable()]}"
        added = [f"{owner.__name__}.{name}" for owner, name, there in patched if not there]
        assert not added, f"taking out {rule} set names the pacing code does not have: {added}"


@pytest.mark.parametrize("rule", list(pacing_ablation.RULES))
def test_taking_a_rule_out_changes_what_a_run_sends(
        rule: str, with_every_rule: tuple[Sends, ...]) -> None:
    with _taken_out(rule):
        without = _what_runs_send()
    assert without != with_every_rule, f"taking out {rule} changed nothing a run sends"

