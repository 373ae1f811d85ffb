"""Prefect's console lines held while a run can still be refused: printed in order once it is past that, dropped
when it is refused."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from prefect.logging.handlers import PrefectConsoleHandler

from flows.commands.held_logs import console_held


@pytest.fixture()
def console() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = PrefectConsoleHandler(stream=out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test.held_console")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)


def test_lines_wait_for_the_release_and_then_come_in_order(console: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = console
    with console_held() as held:
        logger.info("beginning flow run")
        logger.info("planned 3 rows")
        assert out.getvalue() == ""
        held.release()
        logger.info("shard done")
    assert out.getvalue().splitlines() == ["beginning flow run", "planned 3 rows", "shard done"]


def test_a_refusal_drops_what_was_held_and_what_prefect_prints_after_it(
        console: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = console
    with pytest.raises(RuntimeError), console_held():
        logger.info("beginning flow run")
        logger.error("Encountered exception during execution")
        raise RuntimeError("refused")
    logger.warning("EventsWorker - Still processing items")
    assert out.getvalue() == ""


def test_a_run_that_ends_well_without_a_progress_event_prints_its_lines(
        console: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = console
    with console_held():
        logger.info("finished")
    assert out.getvalue().splitlines() == ["finished"]


def test_with_debug_nothing_is_held(console: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = console
    with console_held(enabled=False):
        logger.info("beginning flow run")
        assert out.getvalue().splitlines() == ["beginning flow run"]
