"""API error bodies into report messages that keep field paths and reasons but never echo values.

Error bodies come in several shapes (docs/api-contract.md, section 5): the message in ``message``, ``error.message`` or
``description``; field errors in ``errors[]`` (``{field|loc|path, message|msg|reason}``) or ``data{}``
(``{"<field path>": "<reason>"}``). A server may echo the offending value ("number A1234567 is invalid",
FastAPI's ``input``), so every free text is scrubbed: quoted text, emails and any word holding a digit are
masked. Some harmless words are masked too ("alpha-3"); a leaked passport number would be worse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_CHARS = 300
MASK = "***"

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_EMAIL = re.compile(r"\S+@\S+")
_DIGIT_WORD = re.compile(r"[^\s,;:()\[\]{}]*\d[^\s,;:()\[\]{}]*")
_SHORT_NUMBER = re.compile(r"\d{1,3}")
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]-]{0,120}$")


def scrub(text: str) -> str:
    """Mask anything in free text that could be a value: quoted strings, emails, words with digits.

    Bare numbers of up to three digits ("90 days", "400") survive: they are limits and codes, not identities.
    """
    text = _QUOTED.sub(MASK, text)
    text = _EMAIL.sub(MASK, text)
    text = _DIGIT_WORD.sub(lambda m: m.group(0) if _SHORT_NUMBER.fullmatch(m.group(0)) else MASK, text)
    return " ".join(text.split())


def _field_path(raw: Any) -> str:
    if isinstance(raw, list | tuple):
        raw = ".".join(str(p) for p in raw)
    path = str(raw)
    return path if _FIELD_PATH.match(path) else "<field>"


def _as_dict(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", errors="replace")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, Mapping) else None


def _top_message(d: Mapping[str, Any]) -> str | None:
    for candidate in (
        d.get("message"),
        (d.get("error") or {}).get("message") if isinstance(d.get("error"), Mapping) else d.get("error"),
        d.get("description"),
        d.get("detail"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    return None


_SHAPED_KEYS = {"field", "loc", "path", "message", "msg", "reason"}


def _field_pairs(d: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Every field error of a body as (field path or None, scrubbed reason), in the body's order."""
    out: list[tuple[str | None, str]] = []
    errors = d.get("errors")
    if not isinstance(errors, list):
        errors = d.get("detail") if isinstance(d.get("detail"), list) else None  # FastAPI's 422 shape
    for e in errors or []:
        if isinstance(e, Mapping) and not _SHAPED_KEYS & set(e):
            # A string map, {"<field path>": "<reason>", ...}: Fin's documented 422 items.
            out.extend((_field_path(path), scrub(str(why))) for path, why in e.items())
        elif isinstance(e, Mapping):
            path = e.get("field", e.get("loc", e.get("path")))
            why = e.get("message", e.get("msg", e.get("reason", "invalid")))
            out.append((_field_path(path) if path is not None else "<field>", scrub(str(why))))
        elif isinstance(e, str):
            out.append((None, scrub(e)))
    data = d.get("data")
    if isinstance(data, Mapping):
        for path, why in data.items():
            if isinstance(why, list):
                why = "; ".join(str(w) for w in why)
            out.append((_field_path(path), scrub(str(why))))
    return out


def field_errors(body: bytes | str | Mapping[str, Any] | None) -> dict[str, str]:
    """The field paths an error body names, each with its scrubbed reason (``<field>`` for a path that is not
    a plain field path). Empty when the body names no field."""
    d = _as_dict(body)
    if d is None:
        return {}
    return {path: why for path, why in _field_pairs(d) if path is not None}


def error_message(status: int, body: bytes | str | Mapping[str, Any] | None) -> str:
    """A one-line report message for an API error: status, scrubbed message, field paths with reasons."""
    d = _as_dict(body)
    if d is None:
        text = f"HTTP {status}: non-JSON error body" if body else f"HTTP {status}: empty error body"
        return text
    top = _top_message(d)
    parts = [f"HTTP {status}: {scrub(top) if top else 'no message'}"]
    fields = [f"{path}: {why}" if path is not None else why for path, why in _field_pairs(d)]
    if fields:
        parts.append("fields: " + ", ".join(fields))
    text = "; ".join(parts)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
