"""What a failed flow or task run leaves in Prefect: the project's own wording, or an unforeseen error's type.

Prefect keeps the message of the error a run raised as the run's state message (in its database and its UI) and
logs it with the traceback. The project's errors (``connectors.errors``) are written for that: they name the field
and the reason, never a value. The text of an error from another library is not: botocore, httpx, pydantic,
pyarrow and the OS quote an S3 key (``kyc/jane.doe@example.com.csv``), a URL (a presigned one is a credential) or
a row. Such an error goes on as ``Unforeseen``: its type, S3's error code or the OS's reason if it has one, and the
place that raised it, without its message or its traceback.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from connectors.errors import KycAttachError, Unforeseen
from connectors.run_claim import error_reason

P = ParamSpec("P")
R = TypeVar("R")

#: The project's own code: the place an unforeseen error is named by is its deepest frame in here, if any.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FOLDERS = ("connectors", "flows", "transforms")


def keep_messages_safe(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``fn`` (a flow's or a task's coroutine function) with any error but the project's own raised as
    ``Unforeseen``; put it under ``@flow`` or ``@task``, so that Prefect reads ``fn``'s parameters through it."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except KycAttachError:
            raise  # raised on purpose: its message names fields and reasons, never values
        except Exception as exc:
            raise Unforeseen(exc, raised_at(exc), error_reason(exc)) from None

    # Prefect validates parameters against the signature, resolving annotations written as text (``from __future__
    # import annotations``) in the globals of the function it holds: this module's, where ``ShardJob`` is unknown.
    # The signature is resolved here, in ``fn``'s module.
    run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return run


def raised_at(exc: BaseException) -> str:
    """``module.py:line`` of the deepest frame of the project's own code in ``exc``'s traceback (else of the deepest
    frame): where to start looking, and no value."""
    project = deepest = None
    tb = exc.__traceback__
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename)
        deepest = f"{path.name}:{tb.tb_lineno}"
        if _in_project(path) and tb.tb_frame.f_code.co_filename != __file__:
            project = deepest
        tb = tb.tb_next
    return project or deepest or "?"


def _in_project(path: Path) -> bool:
    try:
        parts = path.resolve().relative_to(PROJECT_ROOT).parts
    except ValueError:
        return False
    return bool(parts) and parts[0] in PROJECT_FOLDERS
