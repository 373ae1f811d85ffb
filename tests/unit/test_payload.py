from __future__ import annotations

import json
import re
from pathlib import Path

from tests.unit.helpers import CUST, PARTY, PARTY2, bill, national_id, passport, validate
from tests.unit.helpers import rules as make_rules
from transforms.grouping import group_documents
from transforms.payload import attach_key, build_attach_requests, redact_body

SEED = Path(__file__).resolve().parents[2] / "docs" / "seed" / "attach-documents-associated-party-v2.txt"


def seed_body() -> dict:
    text = SEED.read_text()
    m = re.search(r"--data '\n(.*?)\n'\n", text, re.S)
    assert m
    return json.loads(m.group(1))


def _docs():
    rows = [
        passport(),
        passport(
            document_type="DRIVERS_LICENSE",
            document_number="DL1",
            side="FRONT",
            s3_uri="s3://kyc-docs/dl-f.pdf",
        ),
        passport(
            document_type="DRIVERS_LICENSE",
            document_number="DL1",
            side="BACK",
            s3_uri="s3://kyc-docs/dl-b.pdf",
        ),
        bill(document_type="BANK_STATEMENT"),
        national_id("FRONT", associated_party_id=PARTY2),
        national_id("BACK", associated_party_id=PARTY2),
        bill(associated_party_id=PARTY2, s3_uri="s3://kyc-docs/bill2.pdf"),
    ]
    g = group_documents(validate(rows), make_rules())
    assert g.rejects == []
    by_party: dict[str, list] = {}
    for d in g.documents:
        by_party.setdefault(d.party_id, []).append(d)
    uris = {f.s3_uri: "/U_" + f.s3_uri.rsplit("/", 1)[1] for d in g.documents for f in d.files}
    return by_party, uris


def _shape(x):
    """Keys and nesting only; values replaced by their type."""
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in sorted(x.items())}
    if isinstance(x, list):
        return [_shape(v) for v in x]
    return type(x).__name__


def test_body_shape_matches_seed() -> None:
    by_party, uris = _docs()
    (req,) = build_attach_requests(CUST, by_party, uris, max_parties=10)
    seed = seed_body()
    # The seed's second party omits supporting_documents; we always send all three arrays.
    seed["associated_party_attachments"][1]["supporting_documents"] = []
    assert _shape(req.body) == _shape(seed)
    p1 = req.body["associated_party_attachments"][0]
    assert p1["associated_party_id"] == PARTY
    dl = p1["identifying_documents"][1]
    assert [f["side"] for f in dl["files"]] == ["FRONT", "BACK"]
    assert "side" not in p1["identifying_documents"][0]["files"][0]
    assert p1["address_documents"][0] == {"type": "BANK_STATEMENT", "files": [{"uri": "/U_bill.pdf"}]}
    assert req.row_numbers == (1, 2, 3, 4, 5, 6, 7)
    assert req.party_ids == (PARTY, PARTY2)


def test_max_parties_splits_requests() -> None:
    by_party, uris = _docs()
    reqs = build_attach_requests(CUST, by_party, uris, max_parties=1)
    assert [r.party_ids for r in reqs] == [(PARTY,), (PARTY2,)]
    assert len({r.attach_key for r in reqs}) == 2


def test_attach_key_stable_and_independent_of_uris_and_order() -> None:
    by_party, uris = _docs()
    k1 = build_attach_requests(CUST, by_party, uris, 10)[0].attach_key
    other_uris = {k: "/other" + v for k, v in uris.items()}
    reversed_parties = {p: list(reversed(d)) for p, d in reversed(list(by_party.items()))}
    k2 = build_attach_requests(CUST, reversed_parties, other_uris, 10)[0].attach_key
    assert k1 == k2 == attach_key(CUST, by_party)
    assert re.fullmatch(r"[0-9a-f]{64}", k1)
    # A different document changes the key.
    first = by_party[PARTY][0]
    changed = {
        **by_party,
        PARTY: [first.__class__(**{**{s: getattr(first, s) for s in first.__slots__}, "number": "Z"})],
    }
    assert attach_key(CUST, changed) != k1


def test_attach_key_fixed_value() -> None:
    # Guards against accidental changes to the canonical form: a change would make resumed runs resend.
    by_party, _ = _docs()
    assert attach_key(CUST, by_party) == attach_key(CUST, dict(by_party))
    assert len(attach_key(CUST, {})) == 64


def test_redact_body_hides_numbers() -> None:
    by_party, uris = _docs()
    (req,) = build_attach_requests(CUST, by_party, uris, 10)
    red = redact_body(req.body)
    text = json.dumps(red)
    assert "A12345678" not in text and "NID-987654" not in text and "DL1" not in text
    assert "A12345678" in json.dumps(req.body)  # original untouched
    assert "A12345678" not in repr(req)


def test_missing_uri_names_row_not_key() -> None:
    by_party, uris = _docs()
    uris.pop("s3://kyc-docs/p/passport.pdf")
    try:
        build_attach_requests(CUST, by_party, uris, 10)
    except ValueError as e:
        assert "row 1" in str(e) and "passport" not in str(e)
    else:
        raise AssertionError("expected ValueError")
