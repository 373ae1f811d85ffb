"""The sandbox contract tests' world, sample files and thin client (the fixtures are in conftest.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from sandbox.app import create_app
from sandbox.server import SandboxServer
from sandbox.world import World

TODAY = date(2026, 1, 15)
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"
CUSTOMER = "0b6a3c1e-1111-4c5e-9d1a-000000000001"
OTHER_CUSTOMER = "0b6a3c1e-2222-4c5e-9d1a-000000000002"
PARTY_1 = "f6b13e01-044a-4f74-a70b-d5f66b6449af"
PARTY_2 = "f71dc19f-b9a0-49fb-bd2d-5add3c01626e"
OTHER_PARTY = "a0000000-0000-4000-8000-000000000003"
APPROVED_PARTY = "a0000000-0000-4000-8000-000000000004"
UNKNOWN = "ffffffff-ffff-4fff-8fff-ffffffffffff"

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64

WORLD: dict[str, Any] = {
    "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
    "customers": [
        {
            "customer_id": CUSTOMER,
            "type": "BUSINESS",
            "associated_parties": [
                {"id": PARTY_1, "email": "a@example.com", "ownership_percent": 50},
                {"id": PARTY_2, "email": "b@example.com", "ownership_percent": 30},
                {"id": APPROVED_PARTY, "email": "c@example.com", "verification_status": "APPROVED"},
            ],
        },
        {
            "customer_id": OTHER_CUSTOMER,
            "type": "BUSINESS",
            "associated_parties": [{"id": OTHER_PARTY, "email": "o@example.com", "ownership_percent": 100}],
        },
    ],
}


def attach_path(customer_id: str) -> str:
    """The attach endpoint's path for a customer."""
    return f"/v2/customers/{customer_id}/associated-parties/individual/attach"


@dataclass
class Api:
    """A thin test client: an httpx.Client on the sandbox with a live token."""

    http: httpx.Client
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def upload(
        self, content: bytes = PDF, name: str = "doc.pdf", customer_id: str = CUSTOMER, field: str = "file"
    ) -> str:
        """Upload one file and return its uri (asserting success)."""
        r = self.http.post(
            "/v1/customers/upload",
            data={"customer_id": customer_id},
            files={field: (name, io.BytesIO(content), "application/octet-stream")},
            headers=self.auth,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["data"]["files"][0][field])

    def attach(self, body: Any, customer_id: str = CUSTOMER, **kwargs: Any) -> httpx.Response:
        """POST an attach body."""
        return self.http.post(attach_path(customer_id), json=body, headers=self.auth, **kwargs)

    def record(self) -> dict[str, Any]:
        """The server's record."""
        return dict(self.http.get("/_sandbox/record").json())

    def faults(self, faults: dict[str, Any]) -> None:
        """Replace the faults at run time."""
        r = self.http.post("/_sandbox/faults", json=faults)
        assert r.status_code == 200, r.text

    def party_status(self, party_id: str, customer_id: str = CUSTOMER) -> str:
        """A party's verification status as GET customer shows it."""
        data = self.http.get(f"/v2/customers/{customer_id}", headers=self.auth).json()["data"]
        return next(p["verification"]["status"] for p in data["associated_parties"] if p["id"] == party_id)


def passport(uri: str, **overrides: Any) -> dict[str, Any]:
    """A valid PASSPORT identifying document."""
    doc = {
        "type": "PASSPORT",
        "number": "A12345678",
        "country": "USA",
        "issue_date": "2020-01-15",
        "expiry_date": "2030-01-15",
        "files": [{"uri": uri}],
    }
    doc.update(overrides)
    return doc


def body_for(party_id: str = PARTY_1, **categories: Any) -> dict[str, Any]:
    """An attach body for one party."""
    return {"associated_party_attachments": [{"associated_party_id": party_id, **categories}]}


def start_server(**options: Any) -> SandboxServer:
    """A started server on a free port with the test world (the caller stops it)."""
    options.setdefault("today", lambda: TODAY)
    return SandboxServer(create_app(World.model_validate(WORLD), **options)).start()
