"""Row normalisation and validation, vectorised with pyarrow.compute.

Every rule is a boolean column computed over the whole batch; a row's reason is the first rule it breaks in
:data:`RULE_ORDER`. There is no per-row Python: the plan stage must run at >= 1M rows/s.

Normalisation (decided here, documented in docs/reason-codes.md):
- every canonical column is cast to string, trimmed of whitespace, and an empty cell becomes null;
- ``document_type``, ``side`` and ``country`` are upper-cased (legacy files write ``passport``, `` Front``);
- ``customer_id`` and ``associated_party_id`` are lower-cased (uuids are case-insensitive; one spelling keeps
  grouping, sharding and party matching simple); ``associated_party_email`` is NFKC-normalised and case-folded,
  as ``transforms.parties.email_key`` compares party emails;
- nothing else is rewritten: an alpha-2 ``country`` is rejected, not mapped (legacy mapping is separate).

Fields a category does not use are not checked: ``country``/``issue_date``/``expiry_date``/``document_number``
only for identifying documents, ``document_date`` only for address documents (it is ignored elsewhere).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from transforms.arrow_text import zero_based
from transforms.catalogue import CATEGORY_OF_TYPE, SIDES, Category
from transforms.codes import Reason
from transforms.columns import CANONICAL_COLUMNS, PARTY_COLUMNS, REPORTED_VALUE_COLUMNS, REQUIRED_COLUMNS
from transforms.rules import Rules
from transforms.uuids import is_uuid

DERIVED_COLUMNS: tuple[str, ...] = ("row_number", "category", "reason_code", "message")

#: Schema of validate_batch's output (without extra columns).
VALIDATED_SCHEMA = pa.schema(
    [pa.field(c, pa.string()) for c in CANONICAL_COLUMNS]
    + [
        pa.field("row_number", pa.int64()),
        pa.field("category", pa.string()),
        pa.field("reason_code", pa.string()),
        pa.field("message", pa.string()),
    ]
)

# Built once at import: pycountry's list is the ISO 3166-1 source of truth (249 codes).
ALPHA3_CODES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.countries)
ALPHA2_CODES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
_ALPHA3 = pa.array(sorted(ALPHA3_CODES), pa.string())
_ALPHA2 = pa.array(sorted(ALPHA2_CODES), pa.string())
_TYPES = pa.array(list(CATEGORY_OF_TYPE), pa.string())
_TYPE_CATEGORIES = pa.array([c.value for c in CATEGORY_OF_TYPE.values()], pa.string())
_SIDES = pa.array(SIDES, pa.string())

_UPPER = frozenset({"document_type", "side", "country"})
_LOWER = frozenset({"customer_id", "associated_party_id", "associated_party_email"})

# Deliberately loose: the party is matched against Fin's list anyway; this only catches junk like "n/a".
_EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# Bucket naming rules (3-63 chars, lower-case letters, digits, dots, hyphens, alnum at both ends) and a
# non-empty key that is not a "folder" (trailing slash).
_S3_RE = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*[^/]$"
# _S3_RE's anchored part: the rest only needs a last byte that is not '/' (see _s3_uri_bad).
_S3_PREFIX_RE = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/"
# Characters no manifest field may hold: C0/C1 controls and DEL, the Arabic letter mark, zero-width characters
# and the left-to-right/right-to-left marks (U+200B-200F), bidi embeddings/overrides (U+202A-202E), the word
# joiner, bidi isolates (U+2066-2069) and the BOM/zero-width no-break space. They hide or reorder text on screen,
# so a value that looks right is not what is sent.
_BAD_CHARS_RE = (
    r"[\x00-\x1f\x7f\x{80}-\x{9f}\x{61c}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2060}\x{2066}-\x{2069}"
    r"\x{feff}]"
)
# First bytes of those characters in UTF-8 (besides the ASCII controls): a value without any of them is clean.
_BAD_CHAR_LEADS = (0xC2, 0xD8, 0xE2, 0xEF)
# A document number is what it looks like: after NFKC (full-width digits are digits) only ASCII letters, digits
# and the separators the numbers on the API's own examples use or legacy archives write (hyphen, slash, dot,
# space). A Cyrillic look-alike letter or a combining accent would send a number no person can tell from the
# right one. NFKC turns a no-break or other Unicode space into a plain space, so those are refused before it.
NUMBER_SEPARATORS = "-/. "
_NUMBER_RE = r"^[A-Za-z0-9 ./-]*$"  # NUMBER_SEPARATORS; the hyphen last, so it is no range
_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" +
                            NUMBER_SEPARATORS.encode(), dtype=np.uint8)] = True
# A number of separators only ("-", "." or "/" as legacy archives write for "none") holds no number at all.
_LETTER_OR_DIGIT_BYTES = _NUMBER_BYTES.copy()
_LETTER_OR_DIGIT_BYTES[np.frombuffer(NUMBER_SEPARATORS.encode(), dtype=np.uint8)] = False
_SPACE_LOOKALIKES_RE = r"[\x{a0}\x{1680}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]"
# The dates the API takes; a date outside is a typo (0000-01-01, 2921-...) however real it is on the calendar.
OLDEST_DATE, NEWEST_DATE = date(1900, 1, 1), date(2199, 12, 31)
_S3_BAD_RE = (
    r"[\x00-\x1f\x7f]|[\x{80}-\x{9f}]"  # control characters (C0, DEL, C1)
    r"|/\.\.(/|$)"  # a '..' path segment
    r"|^s3://[^/]*\.\.[^/]*/"  # '..' inside the bucket name
    r"|^s3://[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/"  # bucket formatted as an IP address
)

#: The documented order in which rules are tried; a row reports the first one it breaks.
RULE_ORDER: tuple[Reason, ...] = (
    Reason.cell_too_long,
    Reason.bad_characters,
    Reason.missing_field,  # customer_id, document_type, s3_uri, party id/email
    Reason.bad_uuid,
    Reason.bad_email,
    Reason.unknown_type,
    Reason.missing_field,  # identifying: document_number, country, issue_date, expiry_date
    Reason.bad_side,
    Reason.missing_side,
    Reason.side_not_allowed,
    Reason.bad_s3_uri,
    Reason.bucket_not_allowed,
    Reason.bad_country,
    Reason.permanent_residency_not_usa,
    Reason.bad_date,
    Reason.issue_after_expiry,
    Reason.expired,
    Reason.future_date,
    Reason.stale_address_document,
)


def check_columns(names: Sequence[str]) -> list[str]:
    """Whole-file problems with the header; an empty list when the columns are fine.

    Extra columns are not a problem (they are ignored). Messages name columns, which are not personal data.
    """
    problems = [f"missing required column '{c}'" for c in REQUIRED_COLUMNS if c not in names]
    if not any(c in names for c in PARTY_COLUMNS):
        problems.append("missing required column: one of 'associated_party_id' or 'associated_party_email'")
    seen: set[str] = set()
    for n in names:
        if n in seen and n in CANONICAL_COLUMNS:
            problems.append(f"duplicate column '{n}'")
        seen.add(n)
    return problems


def _as_string(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Any column as a pa.string() Array; what Arrow cannot cast is converted value by value (rare)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if col.type == pa.string():
        return zero_based(col)
    try:
        return zero_based(pc.cast(col, pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    # Invalid UTF-8 in a binary column, nested types, ...: never fail the batch, make a string the rules
    # will judge (a mangled value then fails its own rule, e.g. bad_uuid).
    out: list[str | None] = []
    for v in col.to_pylist():
        if v is None:
            out.append(None)
        elif isinstance(v, bytes | bytearray):
            out.append(bytes(v).decode("utf-8", errors="replace"))
        else:
            out.append(str(v))
    return pa.array(out, pa.string())


def _clean(col: pa.Array, name: str) -> pa.Array:
    if col.null_count == len(col):
        return col  # an absent or all-null column: nothing to trim, recase or null out
    # utf8 trim, not ascii: Excel exports carry non-breaking spaces. Case changes can be ASCII-only (10x
    # faster) for uuids and enums, whose valid values are ASCII; emails may be internationalised.
    if name == "associated_party_email":
        col = _fold_email(col)  # before the trim: NFKC can spell a character with a space ("¸" is " ̧")
    s = pc.utf8_trim_whitespace(col) if _may_need_trim(col) else col
    if name in _UPPER:
        s = pc.ascii_upper(s)
    elif name in _LOWER and name != "associated_party_email":
        s = pc.ascii_lower(s)
    return _empty_as_null(s)


def _fold_email(col: pa.Array) -> pa.Array:
    """Emails as :func:`transforms.parties.email_key` compares them: NFKC, then case-folded (``ＳＴＲＡßＥ`` is
    ``strasse``). Arrow lower-cases every value; only values holding a non-ASCII byte (few) go through Python's
    NFKC and case-folding, once per distinct value: Arrow has no case-folding kernel."""
    lowered = pc.utf8_lower(col)
    offsets, data = _raw(col)
    used = data[offsets[0]:offsets[-1]]
    if not len(used) or used.max() < 0x80:
        return lowered
    mask = _rows_holding(offsets, used >= 0x80)
    enc = pc.dictionary_encode(col.filter(pa.array(mask)))  # a party's email repeats on each of its rows
    distinct = [unicodedata.normalize("NFKC", v).casefold() for v in enc.dictionary.to_pylist()]
    folded = pc.take(pa.array(distinct, pa.string()), enc.indices)
    return zero_based(pc.replace_with_mask(lowered, pa.array(mask), folded))


def _rows_holding(offsets: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Per row, whether it holds a flagged byte (``flagged``: one bool per byte from ``offsets[0]`` on); the cost
    follows the number of flagged bytes, which is small in the usual case."""
    held = np.zeros(len(offsets) - 1, dtype=bool)
    held[np.searchsorted(offsets, np.flatnonzero(flagged) + offsets[0], side="right") - 1] = True
    return held


def _raw(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data bytes) of a string array, as zero-copy numpy views; offsets index into data."""
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32, count=len(col) + 1, offset=col.offset * 4)
    data = col.buffers()[2]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _may_need_trim(col: pa.Array) -> bool:
    """False only when no value starts or ends with a byte that could be (part of) whitespace.

    Whitespace is ASCII <= 0x20 (and DEL, to be safe) or a multi-byte character (bytes >= 0x80): a value whose
    first and last bytes are printable ASCII is left unchanged by a trim, so the trim (a copy) is skipped.
    """
    offsets, data = _raw(col)
    if not len(data):
        return False
    starts, ends = offsets[:-1], offsets[1:]
    # Every value's first and last byte, gathered without first selecting the non-empty values (clipped indices
    # read some byte for an empty value; the mask drops it).
    first, last = data[np.minimum(starts, len(data) - 1)], data[np.maximum(ends - 1, 0)]
    edge = (first <= 0x20) | (first >= 0x7F) | (last <= 0x20) | (last >= 0x7F)
    return bool((edge & (ends > starts)).any())


def _empty_as_null(s: pa.Array) -> pa.Array:
    """Empty strings become null; by clearing validity bits, not by copying the strings (if_else would).

    The lengths come from the offsets in numpy: ~10x cheaper than Arrow's binary_length and comparison kernels,
    which allocate two arrays per column per batch.
    """
    offsets, _ = _raw(s)
    filled = offsets[1:] > offsets[:-1]
    if s.null_count:
        bits = np.frombuffer(s.buffers()[0], dtype=np.uint8)
        filled &= np.unpackbits(bits, count=len(s) + s.offset, bitorder="little")[s.offset:].astype(bool)
    if filled.all() or s.null_count == len(s):
        return s
    if s.offset:
        return pc.if_else(pa.array(filled), s, pa.scalar(None, pa.string()))
    validity = pa.py_buffer(np.packbits(filled, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), len(s), [validity, s.buffers()[1], s.buffers()[2]])


def _parse_date(col: pa.Array) -> tuple[pa.Array, pa.Array | None, pa.Array]:
    """(bad mask, out-of-range mask or None if no date is, timestamp[s] or null) for strict YYYY-MM-DD dates.

    Out of range is before :data:`OLDEST_DATE` or after :data:`NEWEST_DATE`; such a date gets no timestamp, so
    the later date rules leave it to its own message.
    """
    # A date column has few distinct values (tens of thousands at most), so parse each distinct value once.
    enc = pc.dictionary_encode(col)
    bad_d, ts_d = _parse_date_values(enc.dictionary)
    out_d = _f(pc.or_(pc.less(ts_d, _ts(OLDEST_DATE)), pc.greater(ts_d, _ts(NEWEST_DATE))))
    if not pc.any(out_d).as_py():  # the usual case: no per-row mask to build
        return _f(pc.take(bad_d, enc.indices)), None, pc.take(ts_d, enc.indices)
    ts_d = pc.if_else(out_d, pa.scalar(None, pa.timestamp("s")), ts_d)
    return _f(pc.take(bad_d, enc.indices)), _f(pc.take(out_d, enc.indices)), pc.take(ts_d, enc.indices)


def _bad_characters(col: pa.Array) -> pa.Array | None:
    """True where a value holds a character of ``_BAD_CHARS_RE``; None when no value can (the usual case).

    Only rows holding one of those characters' first bytes go through the regex: a batch of printable ASCII
    is cleared by a min/max over its bytes, so the rule costs almost nothing on ordinary manifests.
    """
    if col.null_count == len(col):
        return None
    offsets, data = _raw(col)
    used = data[offsets[0]:offsets[-1]]
    if not len(used) or (used.min() >= 0x20 and used.max() < 0x7F):
        return None
    lead = (used < 0x20) | (used == 0x7F)
    if used.max() >= 0x80:
        for b in _BAD_CHAR_LEADS:
            lead |= used == b
    at = np.flatnonzero(lead) + offsets[0]
    if not len(at):
        return None
    rows = np.unique(np.searchsorted(offsets, at, side="right") - 1)
    bad = np.zeros(len(col), dtype=bool)
    bad[rows] = np.asarray(_f(pc.match_substring_regex(col.take(pa.array(rows)), _BAD_CHARS_RE)))
    return pa.array(bad)


def _document_number(col: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """(the numbers NFKC-normalised, True where one holds a character ``_NUMBER_RE`` refuses or a Unicode space;
    None when every number is plain ASCII of the allowed kind, the usual case).

    Bytes are checked against the allowed set in numpy; only rows holding another byte go through NFKC and the
    regexes, and the column is copied (normalised) only when some number is not ASCII.
    """
    if col.null_count == len(col):
        return col, None
    offsets, data = _raw(col)
    used = data[offsets[0]:offsets[-1]]
    other = ~_NUMBER_BYTES[used]
    if not other.any():
        return col, None
    rows = np.flatnonzero(_rows_holding(offsets, other))
    suspect = col.take(pa.array(rows))
    folded = pc.utf8_normalize(suspect, form="NFKC")
    # A character NFKC spells as several ("№" as "No", a ligature) is not one letter or digit of the number.
    ok = pc.and_(pc.and_(_f(pc.match_substring_regex(folded, _NUMBER_RE)),
                         _f(pc.equal(pc.utf8_length(folded), pc.utf8_length(suspect)))),
                 pc.invert(_f(pc.match_substring_regex(suspect, _SPACE_LOOKALIKES_RE))))
    bad = np.zeros(len(col), dtype=bool)
    bad[rows] = ~np.asarray(ok)
    normalised = pc.utf8_normalize(col, form="NFKC") if used.max() >= 0x80 else col
    return normalised, pa.array(bad)


def _no_letter_or_digit(col: pa.Array) -> pa.Array:
    """True where a (normalised) number is given but holds no ASCII letter or digit: separators only."""
    offsets, data = _raw(col)
    held = np.concatenate(([0], np.cumsum(_LETTER_OR_DIGIT_BYTES[data[offsets[0]:offsets[-1]]], dtype=np.int64)))
    none = held[offsets[1:] - offsets[0]] == held[offsets[:-1] - offsets[0]]
    return pc.and_(pc.is_valid(col), pa.array(none))


def _parse_date_values(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    fmt_ok = pc.fill_null(pc.match_substring_regex(col, _DATE_RE), False)
    parsed = pc.strptime(col, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2021-02-30 over to 2021-03-02; a changed day-of-month exposes it (strftime round-trips
    # would too, but cost ~20x more).
    day_given = pc.cast(pc.utf8_slice_codeunits(pc.if_else(fmt_ok, col, None), 8, 10), pa.int8())
    ok = pc.fill_null(pc.and_(fmt_ok, pc.equal(pc.day(parsed), day_given)), False)
    bad = pc.and_(pc.is_valid(col), pc.invert(ok))
    return bad, pc.if_else(ok, parsed, pa.scalar(None, pa.timestamp("s")))


def _matches(col: pa.Array, pattern: str) -> pa.Array:
    """Regex match (False for null), run once per distinct value: ids repeat across a customer's rows."""
    enc = pc.dictionary_encode(col)
    return _f(pc.take(_f(pc.match_substring_regex(enc.dictionary, pattern)), enc.indices))


@dataclass(frozen=True)
class _Ids:
    """An id column with each distinct value read once: a customer's id repeats on every row of the customer."""

    values: pa.StringArray
    row_value: np.ndarray  # each row's index into ``values``; -1 for a null id
    canonical: np.ndarray  # by value: a canonical uuid

    @classmethod
    def of(cls, col: pa.Array) -> _Ids:
        enc = pc.dictionary_encode(col)
        return cls(enc.dictionary, np.asarray(pc.fill_null(enc.indices, -1)), is_uuid(enc.dictionary))

    def per_row(self, by_value: np.ndarray, null: int | bool) -> np.ndarray:
        """A value per distinct id spread over the rows; ``null`` for rows without an id."""
        spread: np.ndarray = np.append(by_value, np.array([null], dtype=by_value.dtype))[self.row_value]
        return spread


def _s3_uri_bad(uri: pa.Array) -> pa.Array:
    """True where the uri breaks ``_S3_RE`` or matches ``_S3_BAD_RE`` (null: True), without running both
    full regexes over every row (they are most of a batch's validation cost).

    A row with none of the bytes those patterns look for (control characters, 0xC2 which starts every C1
    character, "..", a digit opening the bucket) can only fail on its shape, which is the anchored bucket
    prefix plus a last byte that is not '/' (no newline can stop ``.*``). Every other row, if any, goes through
    the full patterns.
    """
    n = len(uri)
    offsets, data = _raw(uri)
    starts, ends = offsets[:-1], offsets[1:]
    if not len(data):
        return pa.array(np.ones(n, dtype=bool))
    # Each row's last byte, and the byte after "s3://" (clipped indices read some byte for short rows; masked).
    last = data[np.maximum(ends - 1, 0)]
    sixth = data[np.minimum(starts + 5, len(data) - 1)]
    ok = _s3_prefix_ok(uri) & (ends > starts) & (last != ord("/"))
    used = data[offsets[0]:offsets[-1]]
    # min/max first: a batch of printable ASCII (the usual case) needs no per-byte mask for control characters.
    printable = not len(used) or (used.min() >= 0x20 and used.max() < 0x7F)
    suspect = ((ends - starts) > 5) & (sixth >= ord("0")) & (sixth <= ord("9"))
    flagged = [_dot_pairs(used)]
    if not printable:
        flagged.append(np.flatnonzero((used < 0x20) | (used == 0x7F) | (used == 0xC2)))
    at = np.concatenate(flagged) + offsets[0]
    if len(at):  # a row holding a flagged byte (a ".." may straddle two rows: both are checked, harmless)
        suspect[np.searchsorted(offsets, at, side="right") - 1] = True
    if suspect.any():
        pos = np.flatnonzero(suspect)
        sub = uri.take(pa.array(pos))
        ok[pos] = np.asarray(_f(pc.match_substring_regex(sub, _S3_RE))) & ~np.asarray(
            _f(pc.match_substring_regex(sub, _S3_BAD_RE))
        )
    return pa.array(~ok)


def _dot_pairs(data: np.ndarray) -> np.ndarray:
    """Positions of ".." in a byte array, compared two bytes at a time (Arrow's per-row substring search is ~20x
    slower): as 16-bit words at even offsets, then at odd ones."""
    dots = np.uint16(0x2E2E)
    even = np.flatnonzero(data[: len(data) // 2 * 2].view(np.uint16) == dots) * 2
    odd = np.flatnonzero(data[1: 1 + (len(data) - 1) // 2 * 2].view(np.uint16) == dots) * 2 + 1
    return np.concatenate([even, odd])


def _s3_prefix_ok(uri: pa.Array, rounds: int = 8) -> np.ndarray:
    """``_S3_PREFIX_RE`` per row (False for null), mostly by byte comparison.

    The pattern's bucket cannot hold a '/', so a match ends at the first '/' after "s3://": the answer depends
    only on that prefix, and a manifest names few buckets. Each round takes the prefix of the first row not yet
    decided, checks it once, and settles every row that starts with it (``starts_with`` is a memcmp, ~20x
    cheaper than the regex per row). What a few rounds leave goes through the regex.
    """
    ok = np.zeros(len(uri), dtype=bool)
    todo = uri.is_valid().to_numpy(zero_copy_only=False)
    for _ in range(rounds):
        left = np.flatnonzero(todo)
        if not len(left):
            return ok
        value = uri[int(left[0])].as_py()
        slash = value.find("/", 5)
        if slash < 0:  # no bucket/key boundary: this row fails, and no prefix settles others
            todo[left[0]] = False
            continue
        prefix = value[: slash + 1]
        same = _f(pc.starts_with(uri, prefix)).to_numpy(zero_copy_only=False)
        ok[same] = re.match(_S3_PREFIX_RE, prefix) is not None
        todo &= ~same
    left = np.flatnonzero(todo)
    if len(left):
        ok[left] = np.asarray(_f(pc.match_substring_regex(uri.take(pa.array(left)), _S3_PREFIX_RE)))
    return ok


def _ts(d: date) -> pa.Scalar:
    return pa.scalar(datetime(d.year, d.month, d.day), pa.timestamp("s"))


def _f(mask: pa.Array) -> pa.Array:
    return pc.fill_null(mask, False)


def _allowed_mask(uri: pa.Array, allowed: tuple[str, ...]) -> pa.Array:
    """True where the uri is inside one of the allowed buckets ('bucket') or prefixes ('bucket/prefix')."""
    ok = pa.array(np.zeros(len(uri), dtype=bool))
    for entry in allowed:
        # Whole path segments: 'kyc' must not allow 'kyc-other', nor 'kyc/docs' allow 'kyc/docs-private/...',
        # so every entry matches up to a slash of its own. ('..' segments are refused earlier, by bad_s3_uri.)
        prefix = "s3://" + entry.strip().strip("/") + "/"
        ok = pc.or_(ok, pc.starts_with(uri, prefix))
    return _f(ok)


def validate_batch(table: pa.Table, *, rules: Rules, first_row_number: int, keep_extra: bool = False,
                   bad_fields: bool = False) -> pa.Table:
    """Normalise and validate one batch of manifest rows.

    ``table`` must hold the required columns (see :func:`check_columns`); missing optional canonical columns
    are added as nulls and every canonical column is cast to string. Returns the canonical columns normalised,
    plus ``row_number`` (``first_row_number + i``), ``category``, ``reason_code`` and ``message`` (both null
    when the row is valid). With ``bad_fields`` a ``bad_fields`` column (uint8) follows: bit i is set where
    ``REPORTED_VALUE_COLUMNS[i]`` broke any rule, so the report can mask that cell of a rejected row.
    With ``keep_extra`` the input's other columns follow, unchanged.
    """
    n = table.num_rows
    names = table.column_names
    cols: dict[str, pa.Array] = {}
    for name in CANONICAL_COLUMNS:
        if name in names:
            raw = table.column(names.index(name))
            cols[name] = _clean(_as_string(raw), name)
        else:
            cols[name] = pa.nulls(n, pa.string())

    cols["document_number"], number_bad = _document_number(cols["document_number"])
    pid, email = cols["associated_party_id"], cols["associated_party_email"]
    dtype, side, uri, country = cols["document_type"], cols["side"], cols["s3_uri"], cols["country"]

    category = pc.take(_TYPE_CATEGORIES, pc.index_in(dtype, value_set=_TYPES))
    is_ident = _f(pc.equal(category, Category.identifying.value))
    is_addr = _f(pc.equal(category, Category.address.value))
    two_sided = _f(pc.is_in(dtype, value_set=pa.array(sorted(rules.side_rules.two_sided_types), pa.string())))

    checks: list[tuple[pa.Array, Reason, str]] = []
    add = checks.append

    for name in CANONICAL_COLUMNS:
        # Bytes >= characters: the cheap byte length clears almost every cell before counting characters.
        if not pc.any(pc.greater(pc.binary_length(cols[name]), rules.max_cell_chars)).as_py():
            continue
        add(
            (
                _f(pc.greater(pc.utf8_length(cols[name]), rules.max_cell_chars)),
                Reason.cell_too_long,
                f"{name}: longer than {rules.max_cell_chars} characters",
            )
        )
    for name in CANONICAL_COLUMNS:
        bad_chars = _bad_characters(cols[name])
        if bad_chars is not None:
            add((bad_chars, Reason.bad_characters, f"{name}: holds a control, bidi or zero-width character"))
    if number_bad is not None:
        add((pc.and_(is_ident, number_bad), Reason.bad_characters,
             "document_number: holds a character other than ASCII letters, digits and the separators - / . and "
             "space (after NFKC)"))
    for name in REQUIRED_COLUMNS:
        add((pc.is_null(cols[name]), Reason.missing_field, f"{name}: required, empty"))
    add(
        (
            pc.and_(pc.is_null(pid), pc.is_null(email)),
            Reason.missing_field,
            "associated_party_id/associated_party_email: one of them is required, both empty",
        )
    )
    customers, parties = _Ids.of(cols["customer_id"]), _Ids.of(pid)
    for name, ids in (("customer_id", customers), ("associated_party_id", parties)):
        # A null id is not flagged here: a missing customer id is missing_field (an earlier rule), and a party
        # may be named by its email instead.
        add((pa.array(ids.per_row(~ids.canonical, False)), Reason.bad_uuid, f"{name}: not a uuid"))
    add(
        (
            pc.and_(pc.is_valid(email), pc.invert(_matches(email, _EMAIL_RE))),
            Reason.bad_email,
            "associated_party_email: not an email address",
        )
    )
    add((pc.is_null(category), Reason.unknown_type, "document_type: not a known document type"))
    for name in ("document_number", "country", "issue_date", "expiry_date"):
        add(
            (
                pc.and_(is_ident, pc.is_null(cols[name])),
                Reason.missing_field,
                f"{name}: required for identifying documents, empty",
            )
        )
    add((pc.and_(is_ident, _no_letter_or_digit(cols["document_number"])), Reason.missing_field,
         "document_number: required for identifying documents, holds no letter or digit"))
    add(
        (
            pc.and_(pc.is_valid(side), pc.invert(_f(pc.is_in(side, value_set=_SIDES)))),
            Reason.bad_side,
            "side: must be FRONT or BACK",
        )
    )
    add(
        (
            pc.and_(two_sided, pc.is_null(side)),
            Reason.missing_side,
            "side: required (FRONT or BACK) for this document type",
        )
    )
    # A single image may say FRONT (the documented examples send a passport so); BACK only where a residence
    # document comes as FRONT and BACK. Address and supporting documents carry no side at all.
    front_ok = _f(pc.is_in(dtype, value_set=pa.array(sorted(rules.side_rules.single_image_types), pa.string())))
    back_ok = _f(pc.is_in(dtype, value_set=pa.array(sorted(rules.side_rules.front_and_back_allowed), pa.string())))
    side_ok = pc.or_(two_sided, pc.or_(pc.and_(front_ok, _f(pc.equal(side, "FRONT"))),
                                       pc.and_(back_ok, _f(pc.equal(side, "BACK")))))
    add(
        (
            pc.and_(pc.is_valid(side), pc.invert(side_ok)),
            Reason.side_not_allowed,
            "side: not allowed for this document type (a passport takes FRONT or none; address and supporting "
            "documents none)",
        )
    )
    uri_bad = _s3_uri_bad(uri)
    add((uri_bad, Reason.bad_s3_uri, "s3_uri: not s3://bucket/key (bucket name, key, '..' or control chars)"))
    if rules.allowed_buckets:
        add(
            (
                pc.invert(_allowed_mask(uri, rules.allowed_buckets)),
                Reason.bucket_not_allowed,
                "s3_uri: bucket or prefix not in the allowed list",
            )
        )
    country_ok = _f(pc.is_in(country, value_set=_ALPHA3))
    ident_bad_country = pc.and_(is_ident, pc.and_(pc.is_valid(country), pc.invert(country_ok)))
    add(
        (
            pc.and_(ident_bad_country, _f(pc.is_in(country, value_set=_ALPHA2))),
            Reason.bad_country,
            "country: alpha-2 code given, ISO 3166-1 alpha-3 expected",
        )
    )
    add((ident_bad_country, Reason.bad_country, "country: not an ISO 3166-1 alpha-3 code (alpha-3 expected)"))
    add(
        (
            pc.and_(_f(pc.equal(dtype, "PERMANENT_RESIDENCY_ID")),
                    pc.and_(country_ok, _f(pc.not_equal(country, "USA")))),
            Reason.permanent_residency_not_usa,
            "country: PERMANENT_RESIDENCY_ID is for US residents only (USA)",
        )
    )

    issue_bad, issue_out, issue = _parse_date(cols["issue_date"])
    expiry_bad, expiry_out, expiry = _parse_date(cols["expiry_date"])
    docdate_bad, docdate_out, docdate = _parse_date(cols["document_date"])
    for name, bad, out_of_range, mask in (
        ("issue_date", issue_bad, issue_out, is_ident),
        ("expiry_date", expiry_bad, expiry_out, is_ident),
        ("document_date", docdate_bad, docdate_out, is_addr),
    ):
        add((pc.and_(mask, bad), Reason.bad_date, f"{name}: not a real date in the form YYYY-MM-DD"))
        if out_of_range is not None:
            add((pc.and_(mask, out_of_range), Reason.bad_date,
                 f"{name}: outside {OLDEST_DATE.isoformat()} to {NEWEST_DATE.isoformat()}"))
    today = _ts(rules.today)
    add(
        (
            pc.and_(is_ident, _f(pc.greater(issue, expiry))),
            Reason.issue_after_expiry,
            "issue_date: after expiry_date",
        )
    )
    add((pc.and_(is_ident, _f(pc.less(expiry, today))), Reason.expired, "expiry_date: before the run date"))
    add(
        (
            pc.and_(is_ident, _f(pc.greater(issue, today))),
            Reason.future_date,
            "issue_date: after the run date",
        )
    )
    add(
        (
            pc.and_(is_addr, _f(pc.greater(docdate, today))),
            Reason.future_date,
            "document_date: after the run date",
        )
    )
    oldest = _ts(rules.today - timedelta(days=rules.address_max_age_days))
    add(
        (
            pc.and_(is_addr, _f(pc.less(docdate, oldest))),
            Reason.stale_address_document,
            f"document_date: older than {rules.address_max_age_days} days",
        )
    )

    # First failing rule wins: walk the rules backwards so earlier ones overwrite later ones, as small ints in
    # numpy (putmask is ~50x cheaper than an Arrow if_else); rules no row breaks are skipped outright.
    idx = np.full(n, len(checks), dtype=np.int16)
    broken = np.zeros(n, dtype=np.uint8)
    for k in range(len(checks) - 1, -1, -1):
        mask = checks[k][0]
        if pc.any(mask).as_py():
            hit = mask.to_numpy(zero_copy_only=False)
            np.putmask(idx, hit, k)
            # Every message starts with the field it is about (the report's contract): which cells to mask.
            field_name = checks[k][2].split(":", 1)[0]
            if field_name in REPORTED_VALUE_COLUMNS:
                broken |= hit.astype(np.uint8) << REPORTED_VALUE_COLUMNS.index(field_name)
    index = pa.array(idx, mask=idx == len(checks))
    reason_code = pc.take(pa.array([c[1].value for c in checks], pa.string()), index)
    message = pc.take(pa.array([c[2] for c in checks], pa.string()), index)

    row_number = pa.array(np.arange(first_row_number, first_row_number + n, dtype=np.int64))
    arrays = [cols[c] for c in CANONICAL_COLUMNS] + [row_number, category, reason_code, message]
    out = pa.Table.from_arrays(arrays, schema=VALIDATED_SCHEMA)
    if bad_fields:
        out = out.append_column("bad_fields", pa.array(broken))
    if keep_extra:
        taken = set(out.column_names)
        for i, name in enumerate(names):
            if name not in taken:
                out = out.append_column(name, table.column(i))
                taken.add(name)
    return out
