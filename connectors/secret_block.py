"""The Fin client secret read from a named Prefect ``Secret`` block, once per process.

A block name is not a secret: it travels in settings and in a shard run's environment, and each process reads the
value from the Prefect server it talks to. The value never leaves this module except as a ``SecretStr``; a block
that cannot be read is a ``SetupError`` naming the block and the kind of failure, never the value.
"""

from __future__ import annotations

import re
from typing import Any, cast

from pydantic import SecretStr, ValidationError

from connectors.errors import SetupError

#: Prefect's rule for block names: lowercase letters, digits and dashes.
BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

# (Prefect API URL, block name) -> value: read once per process and server, however many clients are built.
_read: dict[tuple[str, str], SecretStr] = {}


def block_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a Prefect block, or None."""
    if not BLOCK_NAME.fullmatch(name):
        return "a block name has lowercase letters, digits and dashes only"
    return None


async def read_secret_block(name: str) -> SecretStr:
    """The value of the Prefect ``Secret`` block ``name``; ``SetupError`` when it cannot be read or is empty."""
    # Prefect is imported here: the CLI's small commands import this module's callers and start without Prefect.
    from prefect.blocks.system import Secret
    from prefect.settings import get_current_settings

    key = (str(get_current_settings().api.url or ""), name)
    if key in _read:
        return _read[key]
    try:
        block = cast("Secret[Any]", await Secret.aload(name))
        value = block.get()
    except ValidationError:  # a ValueError too: the block is there, its fields are not (values never quoted)
        raise SetupError(f"Secret block {name!r} could not be read (its fields are not valid)") from None
    except ValueError:  # Prefect's answer to a name with no Secret block (another type's block included)
        raise SetupError(f"Secret block {name!r} could not be read (not found on the Prefect server)") from None
    except Exception as exc:  # the server unreachable or refusing
        raise SetupError(f"Secret block {name!r} could not be read ({type(exc).__name__})") from None
    if not isinstance(value, str) or not value.strip():
        raise SetupError(f"Secret block {name!r} could not be read (its value is empty or not a string)")
    _read[key] = SecretStr(value)
    return _read[key]
