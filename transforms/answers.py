"""What a success answer of the Fin API must be before the client believes it, and how long and large it may be.

A gateway in front of the API may answer 200 with its own HTML page, a truncated body or a body of another
shape. Such an answer is not the API's: for an attach it says nothing about whether the attach was applied
(the client makes it an unknown outcome, settled from the parties' statuses), for the other endpoints it is
sent again like a gateway's 502. The shapes are the documented ones (docs/api-contract.md, sections 1 to 4).

Messages name the endpoint and what is wrong, never a value of the answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from transforms.tokens import token_lifetime

KIB = 1024
MIB = 1024 * KIB
#: The most bytes of an answer the client reads, per endpoint; past it the answer is refused without reading on.
#: A customer answer holds its parties (a few hundred bytes each); the others are a few hundred bytes.
BODY_CAPS: dict[str, int] = {"token": 64 * KIB, "upload": 256 * KIB, "attach": 256 * KIB, "customer": 8 * MIB}
#: An upload's deadline grants its body this rate on top of the request timeout, so a large file is not cut off
#: by the timeout meant for one answer, while a stalled one still ends.
UPLOAD_FLOOR_BYTES_PER_S = 1 * MIB

#: An access token as a request header can carry it: visible ASCII, no space or control character.
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")


class UnexpectedAnswer(ValueError):
    """A success status whose body is not the documented JSON answer of its endpoint."""


def request_deadline_s(timeout_s: float, body_bytes: int = 0) -> float:
    """The whole time one request may take (connect, send, the whole answer): the request timeout, plus time for
    a request body (an upload) at ``UPLOAD_FLOOR_BYTES_PER_S``."""
    return timeout_s + max(body_bytes, 0) / UPLOAD_FLOOR_BYTES_PER_S


def body_cap(endpoint: str) -> int:
    """The most bytes of ``endpoint``'s answer the client reads."""
    return BODY_CAPS[endpoint]


def too_large(endpoint: str) -> UnexpectedAnswer:
    """The error of an answer past its endpoint's cap (it names the cap, never the body)."""
    return UnexpectedAnswer(f"{endpoint}: the answer is larger than its cap of {_size(body_cap(endpoint))}")


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON (``application/json``, ``application/problem+json``...)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def read_answer(endpoint: str, content_type: str | None, body: bytes) -> dict[str, Any]:
    """The JSON object of a success answer of ``endpoint``; ``UnexpectedAnswer`` when it is not the documented one
    (not JSON, not valid JSON, a number that is not finite, or missing a field the client relies on)."""
    if not is_json(content_type):
        raise UnexpectedAnswer(f"{endpoint}: the answer is not JSON (content type {_media(content_type)})")
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except _NotANumber as exc:
        raise UnexpectedAnswer(f"{endpoint}: the answer holds {exc}, which is no finite number") from None
    except (ValueError, RecursionError):
        raise UnexpectedAnswer(f"{endpoint}: the answer is not valid JSON") from None
    if not isinstance(payload, dict):
        raise UnexpectedAnswer(f"{endpoint}: the answer is not a JSON object")
    _SHAPES[endpoint](endpoint, payload)
    return payload


class _NotANumber(Exception):
    """``Infinity``, ``-Infinity`` or ``NaN``: Python's JSON reader takes them, JSON has no such numbers."""


def _refuse_constant(name: str) -> Any:
    raise _NotANumber(name)


def _media(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip()
    if not media:
        return "none"
    return media if _MEDIA_TYPE.match(media) else "unreadable"


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // KIB} KiB"


def _data(endpoint: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise UnexpectedAnswer(f"{endpoint}: the answer's data is missing or not an object")
    return data


def _token_shape(endpoint: str, payload: Mapping[str, Any]) -> None:
    data = payload.get("data") if isinstance(payload.get("data"), Mapping) else payload
    assert isinstance(data, Mapping)
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access, str) or not access:
        raise UnexpectedAnswer(f"{endpoint}: the answer's access_token is missing or not a string")
    if not _HEADER_TOKEN.fullmatch(access):  # it goes into the Authorization header of every request
        raise UnexpectedAnswer(f"{endpoint}: the answer's access_token holds a character a header cannot carry")
    if refresh is not None and not isinstance(refresh, str):
        raise UnexpectedAnswer(f"{endpoint}: the answer's refresh_token is not a string")
    try:
        life = token_lifetime(payload).total_seconds()
    except (ValueError, OverflowError) as exc:
        raise UnexpectedAnswer(f"{endpoint}: {exc}") from None
    if not math.isfinite(life) or life <= 0:  # token_lifetime refuses these; kept as the rule the client relies on
        raise UnexpectedAnswer(f"{endpoint}: the token's lifetime is not a finite positive number")


def _customer_shape(endpoint: str, payload: Mapping[str, Any]) -> None:
    data = _data(endpoint, payload)
    parties = data.get("associated_parties")
    if parties is None:
        return  # a customer with no party yet: each of its rows ends party_not_found
    if not isinstance(parties, list):
        raise UnexpectedAnswer(f"{endpoint}: the answer's associated_parties is not a list")
    for i, party in enumerate(parties):
        if not isinstance(party, Mapping) or not isinstance(party.get("id"), str) or not party["id"]:
            raise UnexpectedAnswer(f"{endpoint}: the answer's associated_parties[{i}] has no id")
        verification = party.get("verification")
        if verification is not None and not isinstance(verification, Mapping):
            raise UnexpectedAnswer(f"{endpoint}: the answer's associated_parties[{i}].verification is not an object")


def _upload_shape(endpoint: str, payload: Mapping[str, Any]) -> None:
    files = _data(endpoint, payload).get("files")
    if not isinstance(files, list) or not files:
        raise UnexpectedAnswer(f"{endpoint}: the answer's data.files is missing or empty")
    for i, item in enumerate(files):
        if not isinstance(item, Mapping) or not all(isinstance(v, str) and v for v in item.values()):
            raise UnexpectedAnswer(f"{endpoint}: the answer's data.files[{i}] is not a map of field to uri")


def _attach_shape(endpoint: str, payload: Mapping[str, Any]) -> None:
    _data(endpoint, payload)  # documented as {"data": {}}


_SHAPES = {"token": _token_shape, "customer": _customer_shape, "upload": _upload_shape, "attach": _attach_shape}
