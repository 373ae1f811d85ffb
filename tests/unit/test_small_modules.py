from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from transforms.api_errors import error_message
from transforms.codes import REASON_MEANINGS, Reason, Status, reason_codes_markdown
from transforms.report import REPORT_COLUMNS, escape_csv_formula, escape_csv_formula_column, summarise
from transforms.sharding import slots_of
from transforms.tokens import parse_fin_time, token_lifetime

# --- tokens ---


@pytest.mark.parametrize(
    "value",
    [
        "2025-12-28 10:34:45+00",
        "2025-12-28T10:34:45Z",
        "2025-12-28 10:34:45+00:00",
        "2025-12-28 11:34:45+0100",
        "2025-12-28 10:34:45",
    ],
)
def test_parse_fin_time(value: str) -> None:
    assert parse_fin_time(value) == datetime(2025, 12, 28, 10, 34, 45, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "28/12/2025 10:34", "2025-12-28", "garbage"])
def test_parse_fin_time_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_fin_time(value)


def test_token_lifetime_plain_and_wrapped() -> None:
    body = {
        "access_token": "t",
        "access_token_ttl": "2025-12-29 10:34:45+00",
        "current_time": "2025-12-28 10:34:45+00",
    }
    assert token_lifetime(body) == timedelta(days=1)
    assert token_lifetime({"data": body}) == timedelta(days=1)
    with pytest.raises(ValueError):
        token_lifetime({"access_token": "t"})


# --- api errors ---


def test_error_message_shapes_and_no_values() -> None:
    m = error_message(
        400,
        {
            "status": 400,
            "message": "Validation failed",
            "data": {"associated_party_attachments.0.identifying_documents.0.number": "'A1234567' invalid"},
        },
    )
    assert m.startswith("HTTP 400: Validation failed; fields: associated_party_attachments.0")
    assert "A1234567" not in m
    m = error_message(403, b'{"error": {"code": "forbidden", "message": "uri /Xy9_passport.jpg not yours"}}')
    assert m.startswith("HTTP 403: uri") and "Xy9" not in m
    m = error_message(
        422, '{"message": "Unprocessable", "errors": [{"field": "customer_id", "message": "bad"}]}'
    )
    assert m == "HTTP 422: Unprocessable; fields: customer_id: bad"
    m = error_message(
        422, {"detail": [{"loc": ["body", "x"], "msg": "bad value jane@x.org", "input": "SECRET9"}]}
    )
    assert "jane@x.org" not in m and "SECRET9" not in m and "body.x" in m
    assert error_message(502, b"<html>bad gateway A123</html>") == "HTTP 502: non-JSON error body"
    assert error_message(404, {"description": "Resource not found"}) == "HTTP 404: Resource not found"
    assert len(error_message(400, {"message": "x " * 1000})) <= 300


# --- sharding ---


def test_slots_are_stable_and_in_range() -> None:
    ids = pa.array(["6f1c2a3b-1111-4222-8333-444455556666", None, "odd"])
    s = slots_of(ids, 16).tolist()
    assert s[1] == 0 and 0 <= s[2] < 16
    assert s[0] == 7  # fixed value: changing the hash would move customers between shards of a resumed job
    # Per value, not per batch: a non-uuid neighbour ("odd") must not move a uuid to another shard.
    assert slots_of(ids.slice(0, 1), 16).tolist() == [s[0]]
    assert slots_of(pa.array([], pa.string()), 4).tolist() == []
    with pytest.raises(ValueError):
        slots_of(ids, 0)


def test_slots_spread() -> None:
    import uuid

    ids = pa.array([str(uuid.UUID(int=i * 7919 + (1 << 120))) for i in range(20000)])  # sequential-ish ids
    counts = pd.Series(slots_of(ids, 8)).value_counts()
    assert len(counts) == 8 and counts.min() > 2000


# --- report ---


def test_report_columns() -> None:
    assert REPORT_COLUMNS[0] == "row_number" and len(REPORT_COLUMNS) == 12


def test_summarise() -> None:
    s = summarise({"attached": 3, "rejected": 2}, {"bad_date": 2}, 5)
    assert s["counts_add_up"] and s["by_status"]["failed"] == 0 and s["rows_out"] == 5
    bad = summarise({"attached": 3}, {}, 5)
    assert not bad["counts_add_up"] and bad["problems"]
    assert not summarise({"rejected": 2}, {}, 2)["counts_add_up"]


@pytest.mark.parametrize(
    ("cell", "out"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-x", "'-x"),
        ("@SUM", "'@SUM"),
        ("\tx", "'\tx"),
        ("ok", "ok"),
        ("", ""),
        (None, None),
    ],
)
def test_escape_csv_formula(cell: str | None, out: str | None) -> None:
    assert escape_csv_formula(cell) == out
    assert escape_csv_formula_column(pa.array([cell], pa.string())).to_pylist() == [out]
    assert escape_csv_formula_column(pd.Series([cell], dtype=object)).tolist() == [out]


# --- codes ---


def test_codes_complete_and_documented() -> None:
    assert set(REASON_MEANINGS) == set(Reason)
    assert [s.value for s in Status] == ["attached", "rejected", "failed", "skipped", "unknown"]
    for r in Reason:
        assert r.value == r.name
    md = reason_codes_markdown()
    assert all(f"`{r.value}`" in md for r in Reason)


def test_docs_table_in_step() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"
    assert reason_codes_markdown() in doc.read_text()


def test_json_serialisable_summary() -> None:
    json.dumps(summarise({"attached": 1}, {}, 1))


# --- settings ---


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    from pathlib import Path

    from flows.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    names = [f.validation_alias.choices[0] if f.validation_alias else f"KYC_ATTACH_{name.upper()}"  # type: ignore[union-attr]
             for name, f in Settings.model_fields.items()]
    assert [n for n in names if f"| `{n}` |" not in readme] == []


def test_a_422_with_string_map_errors_keeps_each_field_and_reason_never_a_value() -> None:
    from transforms.api_errors import error_message

    body = {"message": "Unprocessable", "errors": [
        {"associated_party_attachments.0.identifying_documents.0.country": "must be ISO 3166-1 alpha-3"},
        {"associated_party_attachments.1.identifying_documents.0.number": "'P1234567' is already used"}]}
    text = error_message(422, body)
    assert "associated_party_attachments.0.identifying_documents.0.country: must be ISO" in text  # codes scrubbed
    assert "associated_party_attachments.1.identifying_documents.0.number:" in text
    assert "P1234567" not in text
