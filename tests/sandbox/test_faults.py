"""Each fault kind, its scoping, seeded reproducibility and the 409 of concurrent attaches."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sandbox.faults import Faults, Latency
from sandbox.injector import FaultInjector, TokenBucket, latency_seconds
from tests.sandbox.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER,
    OTHER_CUSTOMER,
    OTHER_PARTY,
    PARTY_1,
    PARTY_2,
    Api,
    attach_path,
    body_for,
    passport,
    start_server,
)

CONFLICT = {
    "error": {"code": "conflict", "message": "An attach request is already in progress for this customer"}
}


def _customer(api: Api) -> httpx.Response:
    return api.http.get(f"/v2/customers/{CUSTOMER}", headers=api.auth)


def _token(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})


# ---- rate limits ----------------------------------------------------------------------------------


def test_rate_limit_429_with_retry_after(api: Api) -> None:
    api.faults({"rate_limit": {"rps": 0.5, "burst": 2, "endpoints": ["customer"]}})
    statuses = [_customer(api).status_code for _ in range(2)]
    limited = _customer(api)
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert _token(api.http).status_code == 200  # other endpoints are not limited
    assert api.record()["responses"]["429"] == 1


def test_rate_limit_429_without_retry_after(api: Api) -> None:
    api.faults({"rate_limit": {"rps": 0.5, "burst": 1, "endpoints": ["customer"], "retry_after": False}})
    assert _customer(api).status_code == 200
    limited = _customer(api)
    assert limited.status_code == 429
    assert "retry-after" not in limited.headers


def test_overall_rate_limit_is_shared_by_endpoints(api: Api) -> None:
    api.faults({"rate_limit": {"rps": 0.1, "burst": 2}})
    assert _token(api.http).status_code == 200
    assert _customer(api).status_code == 200
    assert api.attach(body_for()).status_code == 429


def test_per_endpoint_buckets(api: Api) -> None:
    api.faults({"rate_limit": {"rps": 0.1, "burst": 1, "per_endpoint": True}})
    assert _token(api.http).status_code == 200
    assert _customer(api).status_code == 200
    assert _customer(api).status_code == 429


def test_token_bucket_refills_at_rps() -> None:
    now = [0.0]
    bucket = TokenBucket(rps=10, burst=2, clock=lambda: now[0])
    assert bucket.take() is None and bucket.take() is None
    wait = bucket.take()
    assert wait == pytest.approx(0.1)
    now[0] += 0.1
    assert bucket.take() is None


# ---- 5xx, drops, latency, slow ----------------------------------------------------------------------


def test_error_share_answers_5xx_before_any_work(api: Api) -> None:
    uri = api.upload()
    api.faults({"errors": {"share": 1, "statuses": [503], "endpoints": ["attach"]}})
    r = api.attach(body_for(identifying_documents=[passport(uri)]))
    assert (r.status_code, r.json()) == (503, {"message": "Service Unavailable"})
    assert api.record()["attachments"] == []
    assert api.party_status(PARTY_1) == "INITIATED"


def test_error_statuses_are_drawn_from_the_list(api: Api) -> None:
    api.faults({"seed": 1, "errors": {"share": 1, "endpoints": ["customer"]}})
    seen = {_customer(api).status_code for _ in range(40)}
    assert seen == {500, 502, 503}


def test_error_share_is_roughly_honoured(api: Api) -> None:
    api.faults({"seed": 3, "errors": {"share": 0.25, "statuses": [500], "endpoints": ["customer"]}})
    failures = sum(_customer(api).status_code == 500 for _ in range(200))
    assert 25 <= failures <= 75


def test_dropped_connection_has_no_response(api: Api) -> None:
    uri = api.upload()
    api.faults({"drop": {"share": 1, "endpoints": ["attach"]}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.attach(body_for(identifying_documents=[passport(uri)]))
    record = api.record()
    assert record["attachments"] == []
    assert record["responses"]["dropped"] == 1
    assert _customer(api).status_code == 200  # the server itself is fine


def test_dropped_upload(api: Api) -> None:
    api.faults({"drop": {"share": 1, "endpoints": ["upload"]}})
    with pytest.raises(httpx.TransportError):
        api.upload()
    assert api.record()["uploads"] == []


def test_latency_is_added(api: Api) -> None:
    api.faults({"latency": {"ms": 250, "endpoints": ["customer"]}})
    start = time.perf_counter()
    assert _customer(api).status_code == 200
    assert time.perf_counter() - start >= 0.25


@pytest.mark.parametrize(
    ("spec", "low", "high"),
    [
        ({"distribution": "fixed", "ms": 20}, 0.020, 0.020),
        ({"distribution": "uniform", "ms": 10, "max_ms": 30}, 0.010, 0.030),
        ({"distribution": "exponential", "ms": 20, "max_ms": 100}, 0.0, 0.100),
        ({"distribution": "lognormal", "ms": 20, "sigma": 1.0, "max_ms": 500}, 0.0, 0.500),
    ],
)
def test_latency_distributions_stay_in_bounds(spec: dict[str, object], low: float, high: float) -> None:
    latency = Latency.model_validate(spec)
    values = [latency_seconds(latency, i / 1000) for i in range(1000)]
    assert min(values) >= low - 1e-9 and max(values) <= high + 1e-9


def test_lognormal_median_is_ms() -> None:
    assert latency_seconds(Latency(distribution="lognormal", ms=40), 0.5) == pytest.approx(0.040)


def test_slow_response_times_out_but_the_attach_happened(api: Api) -> None:
    uri = api.upload()
    api.faults({"slow": {"share": 1, "seconds": 0.6, "endpoints": ["attach"]}})
    with pytest.raises(httpx.ReadTimeout):
        api.attach(body_for(identifying_documents=[passport(uri)]), timeout=0.2)
    # Still being answered, slowly: a retry now meets the in-progress attach.
    assert api.attach(body_for(identifying_documents=[passport(uri)])).json() == CONFLICT
    # Recorded before the answer was held back; once the slow answer is out the customer is free again.
    assert len(api.record()["attachments"]) == 1
    deadline = time.monotonic() + 3
    while api.attach(body_for(identifying_documents=[passport(uri)])).status_code == 409:
        assert time.monotonic() < deadline, "in-progress flag never released"
        time.sleep(0.05)
    assert len(api.record()["attachments"]) == 2


# ---- tokens --------------------------------------------------------------------------------------


def test_token_expiry_fault_kills_tokens_early(api: Api) -> None:
    api.faults({"token_expiry_seconds": 1.0})
    assert _customer(api).status_code == 200
    time.sleep(1.05)
    r = _customer(api)
    assert (r.status_code, r.json()) == (401, {"message": "Authentication failed"})
    fresh = Api(api.http, _token(api.http).json()["access_token"])
    assert _customer(fresh).status_code == 200


def test_token_ttl_is_enforced() -> None:
    srv = start_server(token_ttl_seconds=1)
    try:
        with httpx.Client(base_url=srv.url) as http:
            api = Api(http, _token(http).json()["access_token"])
            assert _customer(api).status_code == 200
            time.sleep(1.1)
            assert _customer(api).status_code == 401
    finally:
        srv.stop()


# ---- commit then fail ----------------------------------------------------------------------------


def test_commit_then_500_records_the_attach(api: Api) -> None:
    uri = api.upload()
    body = body_for(identifying_documents=[passport(uri)])
    api.faults({"commit_then_fail": {"share": 1, "mode": "500"}})
    r = api.attach(body)
    assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    assert len(api.record()["attachments"]) == 1
    assert api.party_status(PARTY_1) == "REVIEWING"  # the one documented signal that it took effect
    api.faults({})
    assert api.attach(body).status_code == 200  # the blind retry ...
    assert api.record()["duplicates"]["attachments"] == 1  # ... attached twice


def test_commit_then_drop_records_the_attach(api: Api) -> None:
    uri = api.upload()
    api.faults({"commit_then_fail": {"share": 1, "mode": "drop"}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.attach(body_for(identifying_documents=[passport(uri)]))
    assert len(api.record()["attachments"]) == 1


def test_commit_then_fail_spares_rejected_requests(api: Api) -> None:
    api.faults({"commit_then_fail": {"share": 1}})
    assert api.attach({}).status_code == 400


def test_commit_then_fail_on_upload(api: Api) -> None:
    api.faults({"commit_then_fail": {"share": 1, "endpoints": ["upload"]}})
    r = api.http.post(
        "/v1/customers/upload",
        data={"customer_id": CUSTOMER},
        files={"f": ("a.pdf", b"%PDF-1.4 x", "application/pdf")},
        headers=api.auth,
    )
    assert r.status_code == 500
    assert len(api.record()["uploads"]) == 1


# ---- reproducibility -----------------------------------------------------------------------------


def _statuses(api: Api, n: int, interleave: bool = False) -> list[int]:
    out = []
    for _ in range(n):
        if interleave:
            _token(api.http)
        out.append(_customer(api).status_code)
    return out


def test_same_seed_same_fates(api: Api) -> None:
    faults = {
        "seed": 42,
        "errors": {"share": 0.5, "statuses": [500, 503], "endpoints": ["customer"]},
        "drop": {"share": 0.0},
    }
    api.faults(faults)
    first = _statuses(api, 30)
    api.faults(faults)  # replacing the faults restarts the random streams
    second = _statuses(api, 30, interleave=True)  # other endpoints' traffic does not shift the stream
    api.faults({**faults, "seed": 43})
    other = _statuses(api, 30)
    assert first == second
    assert first != other
    assert {200, 500, 503} <= set(first)


def test_injector_fates_are_a_function_of_seed_and_index() -> None:
    faults = Faults.model_validate(
        {
            "seed": 9,
            "errors": {"share": 0.3},
            "drop": {"share": 0.2},
            "latency": {"distribution": "exponential", "ms": 5},
        }
    )
    a, b = FaultInjector(faults), FaultInjector(faults)
    assert [a.fate("attach") for _ in range(50)] == [b.fate("attach") for _ in range(50)]


# ---- 409 -----------------------------------------------------------------------------------------


def test_concurrent_attach_for_one_customer_is_409(api: Api, server_url: str) -> None:
    uri = api.upload()
    other_uri = api.upload(customer_id=OTHER_CUSTOMER)
    api.faults({"latency": {"ms": 1000, "endpoints": ["attach"]}})
    body = body_for(identifying_documents=[passport(uri)])
    other = body_for(OTHER_PARTY, identifying_documents=[passport(other_uri)])

    def post(customer: str, payload: object) -> httpx.Response:
        with httpx.Client(base_url=server_url, timeout=10) as c:
            return c.post(attach_path(customer), json=payload, headers=api.auth)

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(post, CUSTOMER, body)
        time.sleep(0.3)  # well inside the first one's latency window
        second = pool.submit(post, CUSTOMER, body)
        elsewhere = pool.submit(post, OTHER_CUSTOMER, other)
        results = first.result(), second.result(), elsewhere.result()
    assert [r.status_code for r in results] == [200, 409, 200]
    assert results[1].json() == CONFLICT
    assert len(api.record()["attachments"]) == 2
    assert api.attach(body).status_code == 200  # the flag is released afterwards


# ---- hold ----------------------------------------------------------------------------------------


def _wait_for_held(api: Api, n: int) -> None:
    deadline = time.monotonic() + 10
    while api.record()["held"] < n:
        assert time.monotonic() < deadline, f"{n} request(s) never reached the gate"
        time.sleep(0.02)


def test_held_requests_wait_until_released_and_others_pass(api: Api) -> None:
    api.faults({"hold": {"endpoints": ["upload"]}})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(api.upload)
        _wait_for_held(api, 1)
        assert _customer(api).status_code == 200  # endpoints the hold does not name pass
        time.sleep(0.3)
        assert not held.done() and api.record()["uploads"] == []
        assert api.http.post("/_sandbox/release").status_code == 200
        assert held.result(timeout=10)
    assert api.record()["held"] == 0
    assert len(api.record()["uploads"]) == 1
    api.upload()  # the gate stays open once released


@pytest.mark.parametrize("route", ["/_sandbox/faults", "/_sandbox/reset"])
def test_replacing_the_faults_lets_held_requests_go_on(api: Api, route: str) -> None:
    api.faults({"hold": {}})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_customer, api)
        _wait_for_held(api, 1)
        api.http.post(route, json={})
        assert held.result(timeout=10).status_code == 200


# ---- configuration -------------------------------------------------------------------------------


def test_invalid_faults_are_refused(api: Api) -> None:
    r = api.http.post("/_sandbox/faults", json={"errors": {"share": 2}})
    assert r.status_code == 422
    r = api.http.post("/_sandbox/faults", json={"drop": {"share": 0.1, "endpoints": ["nowhere"]}})
    assert r.status_code == 422


def test_reset_restores_start_up_faults(api: Api) -> None:
    api.faults({"errors": {"share": 1}})
    assert _customer(api).status_code >= 500
    api.http.post("/_sandbox/reset")
    assert _customer(api).status_code == 200
    assert api.http.get("/_sandbox/faults").json()["data"]["errors"] == []


def test_faults_file_accepts_an_object_or_a_list(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"seed": 1, "latency": {"ms": 5}, "rate_limit": [{"rps": 1}, {"rps": 2}]}))
    faults = Faults.load(path)
    assert len(faults.latency) == 1 and len(faults.rate_limit) == 2
    assert faults.first("commit_then_fail", "attach") is None
    assert Faults.model_validate({"commit_then_fail": {"share": 0.5}}).commit_then_fail[0].endpoints == [
        "attach"
    ]


# ---- refused parties ------------------------------------------------------------------------------


def _two_parties(api: Api) -> dict[str, object]:
    return {"associated_party_attachments": [
        body_for(PARTY_1, identifying_documents=[passport(api.upload())])["associated_party_attachments"][0],
        body_for(PARTY_2, identifying_documents=[passport(api.upload())])["associated_party_attachments"][0],
    ]}


@pytest.mark.parametrize("name_path", [True, False])
def test_refused_party_fails_the_whole_request_and_applies_nothing(api: Api, name_path: bool) -> None:
    api.faults({"refuse_parties": {"party_ids": [PARTY_2], "name_path": name_path}})
    r = api.attach(_two_parties(api))
    assert r.status_code == 400
    expected = {"associated_party_attachments[1].identifying_documents[0]"} if name_path else set()
    assert r.json()["status"] == 400 and set(r.json()["data"]) == expected
    assert api.record()["attachments"] == []
    # the other party alone is accepted
    assert api.attach(body_for(PARTY_1, identifying_documents=[passport(api.upload())])).status_code == 200
