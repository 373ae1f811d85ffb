"""boto3 sessions from named prefect-aws ``AwsCredentials`` blocks, once per process.

Source documents, the manifest and the report/ledger may each name a block (an archive in another AWS account is
read with its own keys or profile); a role that names none uses boto3's default credential chain. As with the
Secret block, the name travels (settings, a shard run's environment) and each process reads the values from the
Prefect server it talks to. prefect-aws is imported only when a block is named, so the small commands start
without it. A block that cannot be read is a ``SetupError`` naming the block and the kind of failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from connectors.errors import SetupError

if TYPE_CHECKING:
    import boto3

# (Prefect API URL, block name) -> session: read once per process and server, however many clients are built.
_read: dict[tuple[str, str], boto3.Session] = {}


def aws_session(block_name: str) -> boto3.Session:
    """The boto3 session of the ``AwsCredentials`` block ``block_name``; ``SetupError`` when it cannot be read."""
    from prefect.settings import get_current_settings
    from prefect_aws import AwsCredentials

    key = (str(get_current_settings().api.url or ""), block_name)
    if key in _read:
        return _read[key]
    try:
        # _sync: the stores are built in sync code that may run inside a flow's event loop.
        block = AwsCredentials.load(block_name, _sync=True)
    except ValidationError:  # a ValueError too: the block is there, its fields are not (values never quoted)
        raise SetupError(f"AwsCredentials block {block_name!r} could not be read (its fields are not valid)") from None
    except ValueError:  # Prefect's answer to a name with no AwsCredentials block (another type's block included)
        raise SetupError(f"AwsCredentials block {block_name!r} could not be read (not found on the Prefect "
                         "server)") from None
    except Exception as exc:  # the server unreachable or refusing
        raise SetupError(f"AwsCredentials block {block_name!r} could not be read ({type(exc).__name__})") from None
    try:
        _read[key] = block.get_boto3_session()
    except Exception as exc:  # a profile the block names that this machine does not have, ...
        raise SetupError(f"AwsCredentials block {block_name!r} gives no AWS session ({type(exc).__name__})") from None
    return _read[key]
