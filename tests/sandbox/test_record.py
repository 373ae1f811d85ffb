"""The record's duplicate counts and tallies, reset and world replacement; streaming upload parsing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.uploads import parse_upload
from sandbox.world import World
from tests.sandbox.helpers import (
    CUSTOMER,
    OTHER_CUSTOMER,
    PARTY_1,
    PARTY_2,
    PDF,
    WORLD,
    Api,
    body_for,
    passport,
)


def test_same_content_uploaded_twice_for_a_customer_is_a_duplicate(api: Api) -> None:
    api.upload(PDF, name="a.pdf")
    api.upload(PDF, name="b.pdf")  # another name, same bytes
    api.upload(PDF, customer_id=OTHER_CUSTOMER)  # another customer: not a duplicate
    api.upload(PDF + b"x")  # other bytes: not a duplicate
    record = api.record()
    assert record["duplicates"]["uploads"] == 1
    assert len(record["uploads"]) == 4
    assert len({u["uri"] for u in record["uploads"]}) == 4


def test_same_document_attached_twice_is_a_duplicate(api: Api) -> None:
    front, back = api.upload(b"%PDF-1.4 front"), api.upload(b"%PDF-1.4 back")
    again_front, again_back = api.upload(b"%PDF-1.4 front"), api.upload(b"%PDF-1.4 back")
    licence = passport(
        front, type="DRIVERS_LICENSE", files=[{"uri": front, "side": "FRONT"}, {"uri": back, "side": "BACK"}]
    )
    # The same contents under fresh uris, files listed the other way round: still the same document.
    licence_again = {
        **licence,
        "files": [{"uri": again_back, "side": "BACK"}, {"uri": again_front, "side": "FRONT"}],
    }
    assert api.attach(body_for(identifying_documents=[licence])).status_code == 200
    assert api.attach(body_for(identifying_documents=[licence_again])).status_code == 200
    assert api.record()["duplicates"]["attachments"] == 1


def test_different_documents_are_not_duplicates(api: Api) -> None:
    uri = api.upload()
    other_content = api.upload(b"%PDF-1.4 other")
    assert api.attach(body_for(identifying_documents=[passport(uri)])).status_code == 200
    assert api.attach(body_for(identifying_documents=[passport(uri, number="B999")])).status_code == 200
    assert api.attach(body_for(identifying_documents=[passport(other_content)])).status_code == 200
    assert api.attach(body_for(PARTY_2, identifying_documents=[passport(uri)])).status_code == 200
    # A party needs an identifying document in every attach: the bill rides with a new passport.
    third = api.upload(b"%PDF-1.4 third")
    bill = {"type": "UTILITY_BILL", "files": [{"uri": uri}]}
    assert api.attach(body_for(identifying_documents=[passport(third)], address_documents=[bill])).status_code == 200
    record = api.record()
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == 6
    assert record["attachments"][-1]["category"] == "address" and record["attachments"][-1]["number"] is None


def test_requests_and_responses_are_tallied(api: Api) -> None:
    api.upload()
    api.attach({})
    api.http.get(f"/v2/customers/{CUSTOMER}")
    record = api.record()
    assert record["requests"] == {"token": 1, "upload": 1, "attach": 1, "customer": 1}
    assert record["responses"] == {"200": 2, "400": 1, "401": 1}


def test_reset_forgets_everything(api: Api) -> None:
    uri = api.upload()
    api.attach(body_for(identifying_documents=[passport(uri)]))
    api.http.post("/_sandbox/reset")
    record = api.record()
    assert (record["uploads"], record["attachments"], record["requests"]) == ([], [], {})
    assert api.party_status(PARTY_1) == "INITIATED"
    # Uris do not survive a reset either.
    assert api.attach(body_for(identifying_documents=[passport(uri)])).status_code == 400


def test_world_can_be_replaced(api: Api) -> None:
    world = json.loads(json.dumps(WORLD))
    world["customers"] = world["customers"][1:]
    assert api.http.post("/_sandbox/world", json=world).status_code == 200
    try:
        assert api.http.get(f"/v2/customers/{CUSTOMER}", headers=api.auth).status_code == 404
        assert api.http.post("/_sandbox/world", json={"customers": [{"nope": 1}]}).status_code == 422
    finally:
        api.http.post("/_sandbox/world", json=WORLD)


def test_world_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    path.write_text(json.dumps(WORLD))
    world = World.load(path)
    assert world.customers[0].associated_parties[0].verification_status == "INITIATED"
    assert world.customers[0].associated_parties[2].verification_status == "APPROVED"


def test_big_upload_streams_with_correct_digest(api: Api) -> None:
    chunk = b"\0" * (1 << 20)
    total = 20

    boundary = "sandboxtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\n{CUSTOMER}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="big"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def stream() -> Iterator[bytes]:
        yield head + b"%PDF-1.4\n"
        for _ in range(total):
            yield chunk
        yield tail

    digest = hashlib.sha256(b"%PDF-1.4\n")
    for _ in range(total):
        digest.update(chunk)
    r = api.http.post(
        "/v1/customers/upload",
        content=stream(),
        headers={**api.auth, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 200, r.text
    (upload,) = api.record()["uploads"]
    assert upload["size"] == total * len(chunk) + 9
    assert upload["sha256"] == digest.hexdigest()


@settings(max_examples=60, deadline=None)
@given(content=st.binary(min_size=0, max_size=3000), cuts=st.lists(st.integers(1, 500), max_size=20))
def test_parser_is_indifferent_to_chunk_boundaries(content: bytes, cuts: list[int]) -> None:
    payload = b"%PDF-1.4" + content
    boundary = b"xYzBoundary123"
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\nc1\r\n'
        + b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="f"; filename="a.pdf"\r\n\r\n'
        + payload
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )

    async def chunks() -> AsyncIterator[bytes]:
        i = 0
        for cut in [*cuts, len(body)]:
            if i >= len(body):
                break
            yield body[i : i + cut]
            i += cut
        if i < len(body):
            yield body[i:]

    form = asyncio.run(parse_upload(b"multipart/form-data; boundary=" + boundary, chunks(), 1 << 20))
    assert form.fields == {"customer_id": "c1"}
    (part,) = form.files
    assert (part.field, part.filename, part.size) == ("f", "a.pdf", len(payload))
    assert part.sha256 == hashlib.sha256(payload).hexdigest()
    assert part.content_type == "application/pdf"
