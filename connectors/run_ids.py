"""Run ids: made (from the clock and randomness) and checked where they enter — the CLI, the flows, their
deployment parameters."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from connectors.errors import SetupError
from transforms.run_ids import run_id_problem


def new_run_id() -> str:
    """Sortable and unique: a UTC timestamp and a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def checked_run_id(run_id: str, *, option: str = "run id") -> str:
    """``run_id`` itself when it can name a run; ``SetupError`` (exit 2) naming ``option`` otherwise."""
    problem = run_id_problem(run_id)
    if problem is not None:
        raise SetupError(f"{option}: the value {problem}")
    return run_id
