"""Each endpoint's success and each documented error shape, over real HTTP."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import datetime

import httpx

from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    APPROVED_PARTY,
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER,
    JPEG,
    OTHER_CUSTOMER,
    PARTY_1,
    PARTY_2,
    PDF,
    PNG,
    UNKNOWN,
    Api,
    attach_path,
    body_for,
    passport,
    start_server,
)

FIN_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00")
AUTH_FAILED = {"message": "Authentication failed"}
NOT_FOUND = {"message": "Resource not found"}


def _instant(value: str) -> datetime:
    return datetime.strptime(value.replace("+00", "+0000"), "%Y-%m-%d %H:%M:%S%z")


# ---- token ---------------------------------------------------------------------------------------


def test_token_issues_documented_fields(http: httpx.Client) -> None:
    r = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "access_token",
        "access_token_ttl",
        "refresh_token",
        "refresh_token_ttl",
        "current_time",
    }
    for key in ("access_token_ttl", "refresh_token_ttl", "current_time"):
        assert FIN_INSTANT.fullmatch(body[key]), body[key]
    life = _instant(body["access_token_ttl"]) - _instant(body["current_time"])
    assert life.total_seconds() == 86400


def test_token_wrong_secret_is_401(http: httpx.Client) -> None:
    r = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": "nope"})
    assert (r.status_code, r.json()) == (401, AUTH_FAILED)


def test_token_missing_field_is_422_with_errors(http: httpx.Client) -> None:
    r = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID})
    assert r.status_code == 422
    assert isinstance(r.json()["message"], str)
    assert [e["field"] for e in r.json()["errors"]] == ["client_secret"]


def test_token_malformed_json_is_422(http: httpx.Client) -> None:
    r = http.post("/v1/oauth/token", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert set(r.json()) == {"message", "errors"}


def test_token_can_be_wrapped_in_data() -> None:
    srv = start_server(wrap_token_in_data=True, token_ttl_seconds=3600)
    try:
        r = httpx.post(
            f"{srv.url}/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        )
        data = r.json()["data"]
        assert (_instant(data["access_token_ttl"]) - _instant(data["current_time"])).total_seconds() == 3600
    finally:
        srv.stop()


def test_refresh_rotates_the_refresh_token(http: httpx.Client) -> None:
    first = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()
    r = http.post("/v1/oauth/refresh-token", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["access_token"] != first["access_token"]
    ok = http.get(f"/v2/customers/{CUSTOMER}", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert ok.status_code == 200
    again = http.post("/v1/oauth/refresh-token", json={"refresh_token": first["refresh_token"]})
    assert (again.status_code, again.json()) == (401, AUTH_FAILED)


def test_refresh_without_token_is_422(http: httpx.Client) -> None:
    r = http.post("/v1/oauth/refresh-token", json={})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "refresh_token"


# ---- customer ------------------------------------------------------------------------------------


def test_customer_shows_only_documented_fields(api: Api) -> None:
    r = api.http.get(f"/v2/customers/{CUSTOMER}", headers=api.auth)
    assert r.status_code == 200
    data = r.json()["data"]
    assert set(data) == {"customer_id", "type", "customer_status", "associated_parties"}
    assert data["customer_id"] == CUSTOMER and data["type"] == "BUSINESS"
    party = data["associated_parties"][0]
    assert set(party) == {"id", "type", "ownership_percent", "email", "verification"}
    assert party == {
        **party,
        "id": PARTY_1,
        "type": "INDIVIDUAL",
        "ownership_percent": 50,
        "email": "a@example.com",
    }
    assert party["verification"]["status"] == "INITIATED"
    assert set(party["verification"]) == {"status", "reason", "updated_at"}


def test_customer_unknown_is_404(api: Api) -> None:
    r = api.http.get(f"/v2/customers/{UNKNOWN}", headers=api.auth)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_customer_without_or_with_bad_token_is_401(http: httpx.Client) -> None:
    assert http.get(f"/v2/customers/{CUSTOMER}").json() == AUTH_FAILED
    r = http.get(f"/v2/customers/{CUSTOMER}", headers={"Authorization": "Bearer forged"})
    assert (r.status_code, r.json()) == (401, AUTH_FAILED)


def test_unknown_route_is_404(http: httpx.Client) -> None:
    r = http.get("/v1/nothing-here")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


# ---- upload --------------------------------------------------------------------------------------


def test_upload_returns_uri_and_records_hash(api: Api) -> None:
    r = api.http.post(
        "/v1/customers/upload",
        data={"customer_id": CUSTOMER},
        files={"passport": ("my passport.pdf", io.BytesIO(PDF), "application/pdf")},
        headers=api.auth,
    )
    assert r.status_code == 200
    files = r.json()["data"]["files"]
    assert len(files) == 1 and list(files[0]) == ["passport"]
    uri = files[0]["passport"]
    assert re.fullmatch(r"/[A-Za-z0-9]{8}_my_passport\.pdf", uri), uri
    (upload,) = api.record()["uploads"]
    assert upload == {
        **upload,
        "customer_id": CUSTOMER,
        "uri": uri,
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "size": len(PDF),
        "content_type": "application/pdf",
    }


def test_upload_several_files_one_map_each(api: Api) -> None:
    r = api.http.post(
        "/v1/customers/upload",
        data={"customer_id": CUSTOMER},
        files=[
            ("front", ("f.jpg", io.BytesIO(JPEG), "image/jpeg")),
            ("back", ("b.png", io.BytesIO(PNG), "x/y")),
        ],
        headers=api.auth,
    )
    assert r.status_code == 200
    files = r.json()["data"]["files"]
    assert [list(f) for f in files] == [["front"], ["back"]]
    assert [u["content_type"] for u in api.record()["uploads"]] == ["image/jpeg", "image/png"]


def _upload(api: Api, content: bytes, data: dict[str, str] | None = None) -> httpx.Response:
    return api.http.post(
        "/v1/customers/upload",
        data={"customer_id": CUSTOMER} if data is None else data,
        files={"file": ("x.pdf", io.BytesIO(content), "application/pdf")},
        headers=api.auth,
    )


def test_upload_sniffs_content_not_name(api: Api) -> None:
    r = _upload(api, b"just text pretending to be a pdf")
    assert r.status_code == 422
    assert "PDF, JPEG or PNG" in r.json()["message"]
    assert api.record()["uploads"] == []


def test_upload_empty_file_is_422(api: Api) -> None:
    r = _upload(api, b"")
    assert r.status_code == 422 and r.json()["message"] == "File is empty."


def test_upload_missing_customer_id_is_422(api: Api) -> None:
    r = _upload(api, PDF, data={})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "customer_id"


def test_upload_unknown_customer_is_404(api: Api) -> None:
    r = _upload(api, PDF, data={"customer_id": UNKNOWN})
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_upload_without_file_is_422(api: Api) -> None:
    r = api.http.post(
        "/v1/customers/upload", data={"customer_id": CUSTOMER}, files={"note": (None, b"x")}, headers=api.auth
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "files"


def test_upload_not_multipart_is_422(api: Api) -> None:
    r = api.http.post("/v1/customers/upload", json={"customer_id": CUSTOMER}, headers=api.auth)
    assert r.status_code == 422


def test_upload_without_token_is_401(http: httpx.Client) -> None:
    r = http.post(
        "/v1/customers/upload",
        data={"customer_id": CUSTOMER},
        files={"file": ("x.pdf", io.BytesIO(PDF), "application/pdf")},
    )
    assert (r.status_code, r.json()) == (401, AUTH_FAILED)


def test_upload_over_the_size_cap_is_422() -> None:
    srv = start_server(max_upload_bytes=1000)
    try:
        with httpx.Client(base_url=srv.url) as http:
            token = http.post(
                "/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
            ).json()["access_token"]
            api = Api(http, token)
            assert _upload(api, PDF + b"\0" * (1000 - len(PDF))).status_code == 200  # exactly at the cap
            r = _upload(api, PDF + b"\0" * 1000)
            assert r.status_code == 422 and "too large" in r.json()["message"]
            assert len(api.record()["uploads"]) == 1
    finally:
        srv.stop()


# ---- attach --------------------------------------------------------------------------------------


def test_attach_accepts_and_moves_party_to_reviewing(api: Api) -> None:
    uri = api.upload()
    r = api.attach(
        body_for(
            PARTY_1, identifying_documents=[passport(uri)], address_documents=[], supporting_documents=[]
        )
    )
    assert (r.status_code, r.json()) == (200, {"data": {}})
    assert api.party_status(PARTY_1) == "REVIEWING"
    assert api.party_status(PARTY_2) == "INITIATED"
    (att,) = api.record()["attachments"]
    assert att == {
        "customer_id": CUSTOMER,
        "associated_party_id": PARTY_1,
        "category": "identifying",
        "type": "PASSPORT",
        "number": "A12345678",
        "country": "USA",
        "issue_date": "2020-01-15",
        "expiry_date": "2030-01-15",
        "files": [{"uri": uri, "side": None, "sha256": hashlib.sha256(PDF).hexdigest()}],
    }


def test_attach_does_not_reopen_an_approved_party(api: Api) -> None:
    uri = api.upload()
    assert api.attach(body_for(APPROVED_PARTY, identifying_documents=[passport(uri)])).status_code == 200
    assert api.party_status(APPROVED_PARTY) == "APPROVED"


def test_attach_unknown_customer_is_404(api: Api) -> None:
    r = api.attach(body_for(), customer_id=UNKNOWN)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_attach_without_token_is_401(http: httpx.Client) -> None:
    r = http.post(attach_path(CUSTOMER), json=body_for())
    assert (r.status_code, r.json()) == (401, AUTH_FAILED)


def test_attach_malformed_json_is_422(api: Api) -> None:
    r = api.http.post(
        attach_path(CUSTOMER), content=b"[{", headers={**api.auth, "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert set(r.json()) == {"message", "errors"}


def test_attach_foreign_uri_is_403(api: Api) -> None:
    foreign = api.upload(customer_id=OTHER_CUSTOMER)
    r = api.attach(body_for(PARTY_1, identifying_documents=[passport(foreign)]))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden" and r.json()["error"]["message"]
    assert api.record()["attachments"] == []


def test_admin_routes_are_off_unless_asked() -> None:
    srv = start_server(admin=False)
    try:
        r = httpx.get(f"{srv.url}/_sandbox/record")
        assert (r.status_code, r.json()) == (404, NOT_FOUND)
    finally:
        srv.stop()


def test_server_context_manager_serves_and_stops() -> None:
    from sandbox.app import create_app
    from sandbox.world import World
    from tests.sandbox.helpers import WORLD

    with SandboxServer(create_app(World.model_validate(WORLD))) as srv:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", srv.url)
        url = srv.url
        assert httpx.get(f"{url}/_sandbox/record").status_code == 200
    try:
        httpx.get(f"{url}/_sandbox/record", timeout=1)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("server still answering after exit")
