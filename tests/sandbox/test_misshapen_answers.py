"""The faults that answer the hostile way: an HTML page for a 200, a body dribbled byte by byte, a huge body, a
token lifetime no client can use."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sandbox.faults import Faults
from sandbox.injector import FaultInjector
from tests.sandbox.helpers import CLIENT_ID, CLIENT_SECRET, CUSTOMER, PARTY_1, Api, body_for, passport


def _token(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})


def test_html_200_answers_a_success_with_a_page_after_the_work_is_done(api: Api) -> None:
    uri = api.upload()
    api.faults({"html_200": {"endpoints": ["attach"]}})
    r = api.attach(body_for(identifying_documents=[passport(uri)]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text.startswith("<!DOCTYPE html>")
    assert len(api.record()["attachments"]) == 1  # applied, though the answer does not say so
    refused = api.attach(body_for(identifying_documents=[passport(uri, country="US")]))
    assert refused.status_code == 400 and refused.json()["message"] == "Validation failed"  # errors stay JSON


def test_dribble_sends_the_answer_a_byte_at_a_time(api: Api) -> None:
    api.faults({"dribble": {"endpoints": ["customer"], "interval_s": 0.002}})
    started = time.monotonic()
    with api.http.stream("GET", f"/v2/customers/{CUSTOMER}", headers=api.auth) as r:
        chunks = list(r.iter_raw())
    # paced a byte at a time (how the bytes group into reads is the network's business)
    assert time.monotonic() - started >= 0.002 * len(b"".join(chunks)) * 0.9 and len(chunks) > 1
    assert json.loads(b"".join(chunks))["data"]["customer_id"] == CUSTOMER


def test_huge_body_pads_a_success_to_valid_json_of_the_size_asked(api: Api) -> None:
    api.faults({"huge_body": {"endpoints": ["customer"], "mib": 3}})
    r = api.http.get(f"/v2/customers/{CUSTOMER}", headers=api.auth)
    assert r.status_code == 200 and len(r.content) == 3 * 1024 * 1024
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert body["data"]["customer_id"] == CUSTOMER and set(body["padding"]) == {"x"}


@pytest.mark.parametrize("literal", ["Infinity", "NaN", "-1", "1e400"])
def test_token_ttl_literal_is_written_as_is(api: Api, literal: str) -> None:
    api.faults({"token_ttl_literal": literal})
    r = _token(api.http)
    assert r.status_code == 200 and f'"access_token_ttl":{literal},'.encode() in r.content
    assert r.json()["access_token"]  # the token itself still works
    assert api.http.get(f"/v2/customers/{CUSTOMER}", headers={
        "Authorization": f"Bearer {r.json()['access_token']}"}).status_code == 200


def test_token_ttl_literal_is_only_a_number_literal(api: Api) -> None:
    r = api.http.post("/_sandbox/faults", json={"token_ttl_literal": '"x", "injected": 1'})
    assert r.status_code == 422


def test_misshapen_answers_leave_every_other_fate_of_a_seed_as_it_was() -> None:
    plain = {"seed": 5, "errors": {"share": 0.3}, "drop": {"share": 0.2}}
    garbled = {**plain, "html_200": {"share": 0.5}, "dribble": {"share": 0.5}, "huge_body": {"mib": 1, "share": 0.5}}
    a, b = FaultInjector(Faults.model_validate(plain)), FaultInjector(Faults.model_validate(garbled))
    fates_a = [a.fate("attach") for _ in range(60)]
    fates_b = [b.fate("attach") for _ in range(60)]
    assert [(f.error_status, f.drop) for f in fates_a] == [(f.error_status, f.drop) for f in fates_b]
    assert any(f.html_200 for f in fates_b) and any(f.dribble_s for f in fates_b) and any(f.huge_bytes for f in fates_b)
    assert not any(f.html_200 or f.dribble_s or f.huge_bytes for f in fates_a)


def test_html_200_scoped_to_token_leaves_the_other_endpoints_alone(api: Api) -> None:
    api.faults({"html_200": {"endpoints": ["token"]}})
    r = _token(api.http)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert api.party_status(PARTY_1) == "INITIATED"  # a customer answer is still JSON
