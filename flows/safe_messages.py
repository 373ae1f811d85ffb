"""What a failed flow or task run leaves in Prefect: the project's own wording, or an unforeseen error's type.

Prefect keeps the message of the error a run raised as the run's state message (in its database and its UI) and
logs it with the traceback. The project's errors (``connectors.errors``) are written for that: they name the field
and the reason, never a value. The text of an error from another library is not: botocore, httpx, pydantic,
pyarrow and the OS quote an S3 key (``kyc/jane.doe@example.com.csv``), a URL (a presigned one is a credential) or
a row. Such an error goes on as ``Unforeseen``, its type only, and without its cause in the traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from connectors.errors import KycAttachError, Unforeseen

P = ParamSpec("P")
R = TypeVar("R")


def keep_messages_safe(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``fn`` (a flow's or a task's coroutine function) with any error but the project's own raised as
    ``Unforeseen``; put it under ``@flow`` or ``@task``, so that Prefect reads ``fn``'s parameters through it."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except KycAttachError:
            raise  # raised on purpose: its message names fields and reasons, never values
        except Exception as exc:
            raise Unforeseen(exc) from None

    return run
