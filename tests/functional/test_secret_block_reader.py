"""The Fin client secret read from a Prefect Secret block (Prefect's test server): the value comes back as a
``SecretStr``; a block missing, empty or holding JSON instead of a string is a ``SetupError`` naming the block,
never the value."""

from __future__ import annotations

import asyncio

import pytest
from prefect.blocks.system import Secret

from connectors.errors import SetupError
from connectors.secret_block import read_secret_block

pytestmark = [pytest.mark.slow]


def test_a_string_secret_is_read_and_returned_hidden(prefect_harness: None) -> None:
    Secret(value="s3cr3t-value").save("reader-good", overwrite=True)
    value = asyncio.run(read_secret_block("reader-good"))
    assert value.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(value)


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("reader-missing", None, "(not found on the Prefect server)"),
    ("reader-empty", "  ", "(its value is empty or not a string)"),
    ("reader-json", {"client_secret": "s3cr3t-json"}, "(its value is empty or not a string)"),
])
def test_a_block_that_cannot_be_used_is_one_line_naming_it_never_its_value(
        prefect_harness: None, name: str, value: object, reason: str) -> None:
    if value is not None:
        Secret(value=value).save(name, overwrite=True)
    with pytest.raises(SetupError) as caught:
        asyncio.run(read_secret_block(name))
    assert str(caught.value) == f"Secret block {name!r} could not be read {reason}"
    assert "s3cr3t" not in str(caught.value)
