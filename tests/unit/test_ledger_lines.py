"""The ledger's typed lines read every line earlier releases wrote and write them back byte for byte."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from connectors.ledger import Ledger, Send
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.exactly_once import DocState
from transforms.ledger_lines import DocLine, UploadLine, line_from_json

# Lines as the ledger wrote them before its lines had types ("t" is the time each was written).
WRITTEN_BEFORE = [
    '{"k":"upload","c":"c1","src":"s3://in/a.pdf","etag":"e1","uri":"/u1","sha":"' + "5" * 64 + '","crc":"crc"}',
    '{"k":"upload","c":"c1","src":"s3://in/b.pdf","etag":"e2","uri":"/u2"}',
    '{"k":"doc","id":"k1","c":"c1","p":"p1","s":"in_flight","run":"r","req":"q","at":1.5,"init":true,"http":null,'
    '"t":7.25,"o":["s3://in/a.pdf"],"d":{"number":"x"}}',
    '{"k":"doc","id":"k2","c":"c1","p":"p2","s":"in_flight","run":"r","req":"q","at":1.5,"init":true,"http":null,'
    '"t":7.25,"o":null}',
    '{"k":"doc","id":"k1","c":"c1","p":"p1","s":"attached","run":"r","req":"q","at":1.5,"init":true,"http":200,'
    '"t":7.25,"o":["s3://in/a.pdf"],"d":{"number":"x"}}',
    '{"k":"doc","id":"k2","c":"c1","p":"p2","s":"attached","run":"r","req":"q","at":1.5,"init":true,"http":200,'
    '"t":7.25,"o":null}',
    '{"k":"doc","id":"k3","c":"c1","p":"p1","s":"in_flight","run":"r","req":"q2","at":2.5,"init":false,"http":null,'
    '"t":7.25,"o":null}',
    '{"k":"doc","id":"k3","c":"c1","p":"p1","s":"failed","run":"r","req":null,"at":null,"init":false,"http":400,'
    '"t":7.25,"o":null}',
    '{"k":"doc","id":"k4","c":"c1","p":"p1","s":"in_flight","run":"r","req":"q3","at":3.5,"init":true,"http":null,'
    '"t":7.25,"o":null}',
    '{"k":"doc","id":"k4","c":"c1","p":"p1","s":"unknown","run":"r","req":"q3","at":3.5,"init":true,"http":null,'
    '"t":7.25,"o":null}',
]


@pytest.mark.parametrize("text", WRITTEN_BEFORE)
def test_a_line_written_before_reads_and_writes_back_byte_for_byte(text: str) -> None:
    line = line_from_json(json.loads(text))

    assert line is not None
    assert json.dumps(line.to_json(), separators=(",", ":")) == text


def test_a_send_after_a_409_keeps_its_mark_through_the_line_and_others_are_written_without_it() -> None:
    after = DocLine("k1", "c1", "p1", DocState.in_flight, Send("r", "q", 1.5, True, after_conflict=True))
    plain = DocLine("k1", "c1", "p1", DocState.in_flight, Send("r", "q", 1.5, True))

    read = DocLine.from_json(json.loads(json.dumps(after.to_json())))
    assert read.record.after_conflict and Send.of(read.record).after_conflict
    assert "w" not in plain.to_json() and not DocLine.from_json(plain.to_json()).record.after_conflict


def test_a_line_of_a_compacted_file_reads_with_its_absent_fields_at_their_defaults() -> None:
    line = DocLine.from_json({"k": "doc", "id": "k1", "c": "c1", "p": "p1", "s": "unknown", "run": "r",
                              "init": None, "o": None})

    assert line.record.state is DocState.unknown and line.send == Send("r")
    assert (line.record.request_id, line.record.sent_at, line.record.http_status, line.record.details) == (
        None, None, None, None)
    assert UploadLine.from_json({"k": "upload", "c": "c1", "src": "s", "etag": "e", "uri": "/u", "sha": None,
                                 "crc": None}) == UploadLine("c1", "s", "e", "/u")


def test_a_line_of_a_kind_this_release_does_not_read_is_passed_over() -> None:
    assert line_from_json({"k": "note", "c": "c1"}) is None


def test_the_ledger_writes_the_lines_it_wrote_before(tmp_path: Path) -> None:
    root = tmp_path / "_documents"
    ledger = Ledger(ObjectStore(None), Location(None, str(root)), linger_s=0)
    first, second, third = Send("r", "q", 1.5, True), Send("r", "q2", 2.5), Send("r", "q3", 3.5, True)

    async def scenario() -> None:
        ledger.know_sources({"k1": ["s3://in/a.pdf"]})
        ledger.describe("k1", {"number": "x"})
        await ledger.upload_done("c1", "s3://in/a.pdf", "e1", "/u1", sha256="5" * 64, crc64nvme="crc")
        await ledger.upload_done("c1", "s3://in/b.pdf", "e2", "/u2")
        await ledger.sending("c1", {"k1": "p1", "k2": "p2"}, first)
        await ledger.answered("c1", {"k1": "p1", "k2": "p2"}, first, 200)
        await ledger.sending("c1", {"k3": "p1"}, second)
        await ledger.not_applied("c1", {"k3": "p1"}, run_id="r", http_status=400)
        await ledger.sending("c1", {"k4": "p1"}, third)
        await ledger.left_unknown("c1", {"k4": "p1"}, third)
        await ledger.flush()

    asyncio.run(scenario())

    written = [re.sub(r'"t":[0-9.e+]+', '"t":7.25', line)
               for seg in sorted(root.rglob("seg-*")) for line in seg.read_text().splitlines()]
    assert written == WRITTEN_BEFORE
    again = Ledger(ObjectStore(None), Location(None, str(root))).load(["c1"])
    assert {k: r.state for k, r in again.documents.items()} == {
        "k1": DocState.attached, "k2": DocState.attached, "k3": DocState.failed, "k4": DocState.unknown}
    assert again.content_sha256("c1", "s3://in/x.pdf", "", "crc") == "5" * 64
