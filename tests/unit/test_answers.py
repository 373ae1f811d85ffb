"""What a success answer must be before the client believes it (transforms.answers), and token lifetimes that are
no finite positive time (transforms.tokens)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from transforms.answers import BODY_CAPS, UnexpectedAnswer, is_json, read_answer, request_deadline_s, too_large
from transforms.tokens import token_lifetime

JSON = "application/json"
TOKEN = {"access_token": "a", "refresh_token": "r", "access_token_ttl": "2025-12-29 10:34:45+00",
         "current_time": "2025-12-28 10:34:45+00"}


def _raw(body: object) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(("endpoint", "body"), [
    ("token", TOKEN),
    ("token", {"data": TOKEN}),
    ("customer", {"data": {"customer_id": "c", "associated_parties": [{"id": "p", "verification": {}}]}}),
    ("customer", {"data": {"customer_id": "c"}}),
    ("upload", {"data": {"files": [{"file": "/x_a.pdf"}]}}),
    ("attach", {"data": {}}),
])
def test_the_documented_answers_are_read(endpoint: str, body: dict[str, object]) -> None:
    assert read_answer(endpoint, "application/json; charset=utf-8", _raw(body)) == body


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/problem+json", True),
    ("text/html; charset=utf-8", False), ("text/plain", False), (None, False), ("", False),
])
def test_only_json_media_types_are_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected


@pytest.mark.parametrize(("endpoint", "content_type", "raw", "why"), [
    ("attach", "text/html", b"<html>502</html>", "attach: the answer is not JSON (content type text/html)"),
    ("attach", None, b'{"data": {}}', "attach: the answer is not JSON (content type none)"),
    ("attach", JSON, b"<html>", "attach: the answer is not valid JSON"),
    ("attach", JSON, b"[]", "attach: the answer is not a JSON object"),
    ("attach", JSON, b"null", "attach: the answer is not a JSON object"),
    ("attach", JSON, b"", "attach: the answer is not valid JSON"),
    ("attach", JSON, b'{"data": null}', "attach: the answer's data is missing or not an object"),
    ("attach", JSON, b'{"message": "ok"}', "attach: the answer's data is missing or not an object"),
    ("attach", JSON, b'{"data": []}', "attach: the answer's data is missing or not an object"),
    ("customer", JSON, b'{"data": {"associated_parties": {}}}', "customer: the answer's associated_parties is not"),
    ("customer", JSON, b'{"data": {"associated_parties": [{"email": "a@b.c"}]}}', "associated_parties[0] has no id"),
    ("customer", JSON, b'{"data": {"associated_parties": [{"id": "p", "verification": "x"}]}}', "verification is"),
    ("upload", JSON, b'{"data": {"files": []}}', "upload: the answer's data.files is missing or empty"),
    ("upload", JSON, b'{"data": {"files": [{"file": 7}]}}', "upload: the answer's data.files[0] is not a map"),
    ("token", JSON, b'{"access_token": ""}', "token: the answer's access_token is missing or not a string"),
    ("token", JSON, _raw({**TOKEN, "refresh_token": 5}), "token: the answer's refresh_token is not a string"),
    ("token", JSON, _raw({**TOKEN, "access_token": "a\r\nX-Injected: 1"}), "access_token holds a character a header"),
    ("token", JSON, _raw({**TOKEN, "access_token": "tok\u00e9n"}), "access_token holds a character a header"),
    ("token", JSON, _raw({**TOKEN, "access_token": "a b"}), "access_token holds a character a header"),
    ("token", JSON, _raw({**TOKEN, "access_token_ttl": None}), "access_token_ttl missing or not a string"),
    ("token", JSON, _raw(TOKEN).replace(b'"2025-12-29 10:34:45+00"', b"Infinity"),
     "token: the answer holds Infinity, which is no finite number"),
    ("token", JSON, _raw({**TOKEN, "access_token_ttl": 1e400}), "token: the answer holds Infinity"),
    ("customer", JSON, b'{"data": {"ownership_percent": NaN}}', "customer: the answer holds NaN"),
])
def test_an_answer_that_is_not_the_documented_json_is_unexpected_and_named_without_its_values(
        endpoint: str, content_type: str | None, raw: bytes, why: str) -> None:
    with pytest.raises(UnexpectedAnswer) as caught:
        read_answer(endpoint, content_type, raw)
    assert why in str(caught.value)
    assert "a@b.c" not in str(caught.value) and "<html" not in str(caught.value)


@pytest.mark.parametrize("ttl", [float("inf"), float("-inf"), float("nan"), 0, -1, 1e400])
def test_a_token_lifetime_in_seconds_that_is_no_finite_positive_number_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="access_token_ttl is not a finite positive number"):
        token_lifetime({"access_token_ttl": ttl})


def test_a_token_lifetime_in_seconds_is_taken_up_to_ten_years() -> None:
    assert token_lifetime({"access_token_ttl": 600}) == timedelta(seconds=600)
    assert token_lifetime({"access_token_ttl": 1e15}) == timedelta(days=3650)


def test_a_token_that_expires_before_the_servers_time_is_refused() -> None:
    with pytest.raises(ValueError, match="access_token_ttl is not after current_time"):
        token_lifetime({**TOKEN, "access_token_ttl": TOKEN["current_time"]})


@pytest.mark.parametrize("ttl", [0.999, 1e-6, "2025-12-28 10:34:45.5+00"])
def test_a_token_lifetime_under_a_second_is_refused(ttl: float | str) -> None:
    with pytest.raises(ValueError, match="access_token_ttl is less than a second away"):
        token_lifetime({**TOKEN, "access_token_ttl": ttl})
    assert token_lifetime({**TOKEN, "access_token_ttl": "2025-12-28 10:34:46+00"}) == timedelta(seconds=1)


def test_the_deadline_grants_an_upload_time_for_its_body() -> None:
    assert request_deadline_s(3.0) == 3.0
    assert request_deadline_s(60.0, 50 * 1024 * 1024) == 110.0


def test_the_cap_error_names_the_endpoint_and_the_cap() -> None:
    assert str(too_large("customer")) == "customer: the answer is larger than its cap of 8 MiB"
    assert str(too_large("token")) == "token: the answer is larger than its cap of 64 KiB"
    assert set(BODY_CAPS) == {"token", "upload", "customer", "attach"}
