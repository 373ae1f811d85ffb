"""What a run id may look like.

A run id names a folder on local disk (``WORK_DIR/runs/RUN_ID``, deleted when the run ends) and a prefix on S3
(``REPORT_PREFIX/RUN_ID/``). A value such as ``../..``, ``/home`` or ``.`` would point both somewhere else, and
the end-of-run clean-up would delete it, so only one path segment of plain characters is accepted.
"""

from __future__ import annotations

import re

RUN_ID_MAX_LENGTH = 100
# One segment: letters, digits, '.', '_', '-'; it starts with a letter or digit, so never '.', '..' or hidden.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run_id_problem(run_id: str) -> str | None:
    """Why ``run_id`` cannot name a run, or ``None`` when it can.

    The reason never repeats the value: it may be anything a user or a deployment parameter passed.
    """
    if not run_id:
        return "is empty"
    if len(run_id) > RUN_ID_MAX_LENGTH:
        return f"is longer than {RUN_ID_MAX_LENGTH} characters"
    if not _RUN_ID.fullmatch(run_id):
        return "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit"
    return None
