"""The compacted index's layout 2: records read back exactly, a shard's customers come from few row groups, and a
file written by the layout before it is still read and folded in."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.ledger import Ledger, Send
from connectors.ledger_index import compact, read_records, records_table, write_compact
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.exactly_once import DocState, partition_of
from transforms.ledger_layout import (
    LAYOUT,
    SLOT,
    keys_of,
    layout_of,
    row_groups,
    to_records,
    to_stored,
)
from transforms.sharding import slots_of

_NAMES = records_table([]).schema.names


def _records(n_customers: int, seed: int, *, customer: Any = None) -> list[dict[str, Any]]:
    """Rows of the compacted layout as the ledger writes them: an upload and two states per document."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n_customers):
        c = customer(i) if customer else str(uuid.UUID(int=rng.getrandbits(128), version=4))
        party = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for d in range(2):
            key = hashlib.sha256(f"{c}/{d}".encode()).hexdigest()
            src = f"s3://in/{c}/{d}.pdf"
            sent = 1.76e9 + rng.random() * 86_400
            seg = f"seg-{i:020d}-abcd0123.jsonl"
            rows.append({"k": "upload", "c": c, "src": src, "etag": rng.getrandbits(128).to_bytes(16, "big").hex(),
                         "uri": f"/{d}_x.pdf", "seg": seg, "line": d * 3})
            for line, state, took in ((1, "in_flight", rng.random() * 1e-4), (2, "attached", rng.random() * 30)):
                rows.append({"k": "doc", "id": key, "c": c, "p": party, "s": state, "run": "run-1",
                             "req": rng.getrandbits(64).to_bytes(8, "big").hex(), "at": sent, "t": sent + took,
                             "init": False, "http": 200 if state == "attached" else None, "o": [src],
                             "seg": seg, "line": d * 3 + line})
    return rows


def _file(rows: list[dict[str, Any]], slots: int = 400) -> pq.ParquetFile:
    return pq.ParquetFile(pa.BufferReader(write_compact(records_table(rows), folded=[], slots=slots)))


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    full = [{n: r.get(n) for n in _NAMES} for r in rows]
    return sorted(full, key=lambda r: (r["seg"], r["line"]))


def test_layout_2_gives_every_record_back_exactly_with_ids_stored_as_bytes() -> None:
    rows = _records(300, seed=1)
    pf = _file(rows)
    meta = pf.schema_arrow.metadata

    got = to_records(pf.read(), meta, _NAMES).to_pylist()

    assert layout_of(meta) == LAYOUT
    assert json.loads(meta[b"kyc_attach.packed"]) == {"c": "uuid", "p": "uuid", "id": "hex32", "etag": "hex16",
                                                      "req": "hex8"}
    assert pf.schema_arrow.field("id").type == pa.binary(32)
    assert _sorted(got) == _sorted(rows)  # times to the bit, ids as text


def test_columns_with_a_value_that_is_no_uuid_or_hex_stay_text() -> None:
    rows = _records(20, seed=2)
    rows[0]["c"] = rows[1]["c"] = rows[2]["c"] = "CUST-not-a-uuid"
    rows[0]["etag"] = "0123abcd-2"  # a multipart ETag
    rows[4]["req"] = "abc"  # odd length
    pf = _file(rows)
    meta = pf.schema_arrow.metadata

    got = to_records(pf.read(), meta, _NAMES).to_pylist()

    assert json.loads(meta[b"kyc_attach.packed"]) == {"p": "uuid", "id": "hex32"}
    assert _sorted(got) == _sorted(rows)


def test_a_time_far_from_its_send_time_is_kept_as_it_is() -> None:
    rows = _records(3, seed=3)
    rows[1]["t"], rows[1]["at"] = 1.76e9, 0.1  # the distance would not give the time back exactly
    rows[2]["t"], rows[2]["at"] = 5.0, None
    stored = to_stored(records_table(rows))

    got = to_records(stored.table, stored.metadata, ["seg", "line", "t", "at"]).to_pylist()

    back = {(r["seg"], r["line"]): (r["t"], r["at"]) for r in got}
    assert all(back[(r["seg"], r["line"])] == (r.get("t"), r.get("at")) for r in rows)


def test_a_shards_customers_sit_in_one_or_two_row_groups_of_a_partition() -> None:
    rows = _records(3000, seed=4)  # 18,000 rows: five row groups
    pf = _file(rows)
    meta = pf.schema_arrow.metadata
    customers = sorted({r["c"] for r in rows})
    slot = dict(zip(customers, slots_of(pa.array(customers), 400).tolist(), strict=True))
    shard = [c for c in customers if 120 <= slot[c] < 128][:20]  # a shard of 8 of the planner's 400 slots
    md = pf.metadata
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
    stats = [(g.column(leaf[SLOT]).statistics.min, g.column(leaf[SLOT]).statistics.max,
              g.column(leaf["c"]).statistics.min, g.column(leaf["c"]).statistics.max)
             for g in (md.row_group(i) for i in range(md.num_row_groups))]

    groups = row_groups(stats, keys_of(shard, meta))

    assert md.num_row_groups >= 4 and 1 <= len(groups) <= 2
    held = {c for c in to_records(pf.read_row_groups(groups, columns=["c"]), meta, ["c"]).column("c").to_pylist()}
    assert set(shard) <= held


def test_a_customer_the_packing_cannot_hold_is_not_looked_for() -> None:
    meta = _file(_records(5, seed=5)).schema_arrow.metadata
    someone = str(uuid.uuid4())

    keys = keys_of(["not-a-uuid", someone], meta)

    assert [k[1] for k in keys] == [uuid.UUID(someone).bytes]


def _layout_1(table: pa.Table, folded: list[str]) -> bytes:
    """A compacted file as the index wrote it before layouts had a number."""
    buf = io.BytesIO()
    meta = {b"kyc_attach.folded_segments": json.dumps(folded).encode()}
    pq.write_table(table.sort_by([("c", "ascending"), ("seg", "ascending"), ("line", "ascending")])
                   .replace_schema_metadata(meta), buf, compression="zstd", row_group_size=1024,
                   use_dictionary=["k", "s", "c", "p", "run", "seg"])
    return buf.getvalue()


def _by_customer(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        out.setdefault(rec["c"], []).append(rec)
    return out


def test_a_layout_1_file_is_read_and_folded_into_layout_2_with_the_segments_after_it(tmp_path: Path) -> None:
    store, root = ObjectStore(None), Location(None, str(tmp_path / "_documents"))
    customers = [str(uuid.UUID(int=i, version=4)) for i in range(1, 60)]

    async def fill(state: DocState, who: list[str]) -> None:
        # an answer comes to a run that knows the document in flight
        ledger = Ledger(store, root, linger_s=0).load(who) if state is DocState.attached else Ledger(
            store, root, linger_s=0)
        for c in who:
            doc, send = {hashlib.sha256(c.encode()).hexdigest(): "p-" + c[:8]}, Send("r", "ab" * 8, 1.76e9)
            ledger.know_sources({hashlib.sha256(c.encode()).hexdigest(): [f"s3://in/{c}.pdf"]})
            await ledger.upload_done(c, f"s3://in/{c}.pdf", "9" * 32, f"/{c}.pdf")
            if state is DocState.attached:
                await ledger.answered(c, doc, send, 200)
            else:
                await ledger.sending(c, doc, send)
        await ledger.flush()

    asyncio.run(fill(DocState.in_flight, customers))
    part = partition_of(customers[0])
    mine = [c for c in customers if partition_of(c) == part]
    from_segments = read_records(store, root, part)
    # the same records as a layout-1 file: what a ledger compacted by an earlier release holds
    compact(store, root, [part])
    folder = Path(root.key) / part
    (v2,) = folder.glob("compact-*")
    table = to_records(pq.read_table(v2), pq.read_schema(v2).metadata, _NAMES)
    v2.unlink()
    (folder / "compact-00000000000000000001-00000001.parquet").write_bytes(_layout_1(table, []))
    assert read_records(store, root, part) == from_segments
    asyncio.run(fill(DocState.attached, mine[:1]))

    compact(store, root, [part])

    (merged,) = folder.glob("compact-*")
    assert layout_of(pq.read_schema(merged).metadata) == LAYOUT
    after = _by_customer(read_records(store, root, part))
    before = _by_customer(from_segments)
    assert {c: recs for c, recs in after.items() if c != mine[0]} == {c: r for c, r in before.items() if c != mine[0]}
    assert after[mine[0]][:2] == before[mine[0]] and len(after[mine[0]]) == 4  # in replay order per customer
    docs = Ledger(store, root).load(mine).documents
    assert docs[hashlib.sha256(mine[0].encode()).hexdigest()].state is DocState.attached


def test_a_shards_load_from_a_compacted_file_keeps_the_details_it_was_sent_with(tmp_path: Path) -> None:
    store, root = ObjectStore(None), Location(None, str(tmp_path / "_documents"))
    c = str(uuid.uuid4())
    key = hashlib.sha256(c.encode()).hexdigest()

    async def fill() -> None:
        ledger = Ledger(store, root, linger_s=0)
        ledger.describe(key, {"number": "d1gest"})
        doc, send = {key: str(uuid.uuid4())}, Send("r", "ab" * 8, 1.76e9)
        await ledger.sending(c, doc, send)
        await ledger.answered(c, doc, send, 200)
        await ledger.flush()

    asyncio.run(fill())
    compact(store, root)

    doc = Ledger(store, root).load([c]).documents[key]

    assert doc.details == {"number": "d1gest"} and doc.http_status == 200


def test_a_look_up_finds_every_customer_whatever_the_slot_count_and_id_form() -> None:
    rows = _records(400, seed=6)
    rows[0]["c"] = "Customer-7"  # not a uuid: the file keeps customers as text
    customers = sorted({r["c"] for r in rows})
    for slots in (1, 400, 40_000):
        pf = _file(rows, slots=slots)
        meta = pf.schema_arrow.metadata
        md = pf.metadata
        leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
        stats = [(g.column(leaf[SLOT]).statistics.min, g.column(leaf[SLOT]).statistics.max,
                  g.column(leaf["c"]).statistics.min, g.column(leaf["c"]).statistics.max)
                 for g in (md.row_group(i) for i in range(md.num_row_groups))]
        for c in customers[::37]:
            groups = row_groups(stats, keys_of([c], meta))
            found = to_records(pf.read_row_groups(groups, columns=["c"]), meta, ["c"]).column("c").to_pylist()
            assert found.count(c) == sum(r["c"] == c for r in rows), (slots, c)
