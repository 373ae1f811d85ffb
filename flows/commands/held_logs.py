"""Prefect's console lines held back until the run is past every refusal.

A run refused inside the flow (a planted link, a lost race for the report location, a manifest replaced after
the start-up checks) is one line on stderr, like a refusal of the start-up gate: Prefect's own console lines
("Beginning flow run", the exception and its traceback) are held while the flow can still refuse, then printed
in order once its plan is done (the first progress event), or dropped when the run ends before that (with what
Prefect prints as the process exits).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.logging.handlers import PrefectConsoleHandler


class _Hold(logging.Filter):
    """Keeps the records a console handler would print, while ``holding``."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = True
        self.held: list[tuple[logging.Handler, logging.LogRecord]] = []
        self.handler: logging.Handler | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.holding:
            return True
        if self.handler is not None:
            self.held.append((self.handler, record))
        return False


class HeldConsole:
    """The hold over every Prefect console handler: ``release`` prints what was held and stops holding."""

    def __init__(self) -> None:
        self._holds: list[_Hold] = []

    def attach(self) -> None:
        for handler in _console_handlers():
            hold = _Hold()
            hold.handler = handler
            handler.addFilter(hold)
            self._holds.append(hold)

    def release(self, *_: object) -> None:
        """Print what was held, in order, and let every later line through (a progress listener)."""
        held = sorted((r for h in self._holds for r in h.held), key=lambda pair: pair[1].created)
        for hold in self._holds:
            hold.holding = False
            hold.held.clear()
        for handler, record in held:
            handler.handle(record)

    def detach(self) -> None:
        """Stop holding; what is still held is dropped (the run ended before its plan was done)."""
        for hold in self._holds:
            if hold.handler is not None:
                hold.handler.removeFilter(hold)
        self._holds.clear()

    def silence(self) -> None:
        """Drop what is held and whatever Prefect prints later (its flush of events as the process exits): a
        refused run's process is ending, its one line said why."""
        for hold in self._holds:
            hold.held.clear()
            hold.handler = None  # from now on ``filter`` drops instead of holding
        self._holds.clear()


@contextmanager
def console_held(enabled: bool = True) -> Iterator[HeldConsole]:
    """Hold Prefect's console lines while the block runs, until ``release``; nothing held when not ``enabled``."""
    held = HeldConsole()
    if enabled:
        held.attach()
    try:
        yield held
    except BaseException:
        held.silence()
        raise
    held.release()  # a run that ended well prints what it logged, progress event or not
    held.detach()


def _console_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    found: dict[int, logging.Handler] = {}
    for lg in loggers:
        for handler in lg.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                found[id(handler)] = handler
    return list(found.values())
