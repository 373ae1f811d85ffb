"""Claiming a run id at the report location before anything is sent.

The claim is a small marker, ``REPORT_PREFIX/RUN_ID/_run.json`` (the run id, a claim token and the start time;
nothing personal), written with ``If-None-Match: *`` and the store's encryption. Writing it proves the report
location exists and accepts our writes, and it makes the run id ours: a second run under the same id, or
files an earlier run left there (a run killed while publishing leaves ``rows.parquet`` without
``summary.json``), is refused with exit 2 before any upload or attach. The CLI claims before Prefect starts
and hands its token to the flow; a flow started any other way (a deployment) claims itself. A claimed run id
that sent nothing is released when the run fails: a refused run leaves its run id usable.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location

CLAIM_NAME = "_run.json"
_TIME_TEXT = re.compile(r"[0-9T:.+Z -]{1,40}")


def new_claim_token() -> str:
    """A random token that tells this run's claim from anyone else's."""
    return secrets.token_hex(16)


def claim_run(store: ObjectStore, run_prefix: Location, *, run_id: str, token: str, started_at: str) -> None:
    """Make ``run_id`` this run's at ``run_prefix``, or raise ``SetupError`` saying why it cannot be.

    A claim already holding ``token`` is this run's own (the CLI claimed, then the flow checks): accepted.
    """
    try:
        _claim(store, run_prefix, run_id=run_id, token=token, started_at=started_at)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise SetupError(f"report location {run_prefix}: cannot be written ({error_reason(exc)})") from None


def release_claim(store: ObjectStore, run_prefix: Location, *, token: str) -> bool:
    """Delete this run's claim (``token``) when it is all there is under ``run_prefix``; True when released.

    Only for a run that sent nothing: its run id can then be used again. Another run's claim, or a prefix with
    anything besides the claim (a report, a part of one), stays as it is. Best effort: a store that cannot be
    read or written leaves the claim, and the refusal that led here is what the caller reports.
    """
    marker = run_prefix.child(CLAIM_NAME)
    try:
        if not store.exists(marker) or json.loads(store.read(marker)).get("claim") != token:
            return False
        if any(Path(found.key) != Path(marker.key) for found in store.list(run_prefix)):
            return False
        store.delete(marker)
    except (ClientError, BotoCoreError, OSError, ValueError, AttributeError):
        return False
    return True


def check_run_id_free(store: ObjectStore, run_prefix: Location, *, run_id: str, token: str | None = None) -> bool:
    """Read-only: ``SetupError`` when another run has ``run_id`` at ``run_prefix`` (a report, a claim, files left
    by a run stopped while publishing); True when the claim there is ours already (``token``), False when free.

    S3 errors (no bucket, no access) propagate for the caller to word.
    """
    if store.exists(run_prefix.child("summary.json")):
        raise SetupError(f"run id {run_id}: a report exists already under the report location")
    if _is_ours(store, run_prefix.child(CLAIM_NAME), run_id, token):
        return True
    if store.list(run_prefix):
        raise SetupError(f"run id {run_id}: an earlier run left files under the report location without a "
                         "summary.json (stopped while publishing?); choose another run id")
    return False


def _claim(store: ObjectStore, run_prefix: Location, *, run_id: str, token: str, started_at: str) -> None:
    if check_run_id_free(store, run_prefix, run_id=run_id, token=token):
        return
    marker = run_prefix.child(CLAIM_NAME)
    body = json.dumps({"run_id": run_id, "claim": token, "started_at": started_at}, sort_keys=True).encode()
    try:
        store.write(marker, body, content_type="application/json")
    except SetupError:  # written by someone else between our look and our write
        if not _is_ours(store, marker, run_id, token):
            raise


def _is_ours(store: ObjectStore, marker: Location, run_id: str, token: str | None) -> bool:
    """True for our own claim, False for none; ``SetupError`` for another run's."""
    if not store.exists(marker):
        return False
    try:
        found = json.loads(store.read(marker))
    except ValueError:
        found = None
    claim: dict[str, Any] = found if isinstance(found, dict) else {}  # a marker of another shape: not ours
    if token is not None and claim.get("claim") == token:
        return True
    started = claim.get("started_at")
    if not isinstance(started, str) or not _TIME_TEXT.fullmatch(started):  # the marker's text, echoed only as a time
        started = "an unknown time"
    raise SetupError(f"run id {run_id}: another run claimed it (started {started}); choose another run id")


def error_reason(exc: Exception) -> str:
    """The S3 error code or the OS reason, never a URL or a message that could carry more."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "S3 error")
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__
