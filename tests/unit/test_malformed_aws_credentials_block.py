"""An AwsCredentials block that exists but whose fields do not validate (edited through the API or the UI into a
shape prefect-aws refuses) is named as such, never as "not found on the Prefect server", and its values (the
secret key pydantic quotes in its error) never reach the message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import connectors.aws_credentials as aws_credentials
from connectors.errors import SetupError

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _malformed(*args: Any, **kwargs: Any) -> Any:
    from prefect_aws import AwsCredentials

    return AwsCredentials.model_validate({"aws_secret_access_key": SECRET, "region_name": {"key": SECRET}})


def test_a_malformed_block_is_named_malformed_not_missing_and_its_values_stay_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_aws import AwsCredentials

    with pytest.raises(ValidationError):  # the shape is really refused, quoting the value
        _malformed()
    monkeypatch.setattr(AwsCredentials, "load", _malformed)
    monkeypatch.setattr(aws_credentials, "_read", {})

    with pytest.raises(SetupError) as refused:
        aws_credentials.aws_session("legacy-archive-reader")

    message = str(refused.value)
    assert SECRET not in message
    assert "not found" not in message
    assert "legacy-archive-reader" in message
