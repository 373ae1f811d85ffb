"""Rows into documents, and the rules that need a whole document (or a whole customer) to decide.

Documents are formed within one customer: rows sharing a ``document_id`` form one document; rows without one
group by (customer_id, party key, document_type, document_number), the party key being the party id or, when
absent, the lower-cased email.

Order of decisions (a row gets the first that applies):
1. ``duplicate_row``: an exact copy (all canonical columns) of an earlier valid row; it is dropped, the
   earlier row goes on, and the document is not harmed.
2. ``document_rejected``: another row of the document was rejected by row validation.
3. ``conflicting_fields``: rows of the document disagree on type, number, country, dates, document_date or
   party (also FRONT and BACK rows with no document_id whose numbers differ: they cannot pair up).
4. ``duplicate_file``: the document uses an s3_uri that an earlier document of the customer uses, or uses one
   twice; rows with that uri get ``duplicate_file``, its other rows ``document_rejected``.
5. sides: a two-sided type needs exactly one FRONT and one BACK (``duplicate_side`` on the repeated side's
   rows, ``document_rejected`` on the others; ``missing_side`` when one is absent); a single-image identifying
   type takes exactly one file (``too_many_files``). Address and supporting documents take any number.
6. ``no_identifying_document``: the address and supporting documents of a party none of whose identifying
   documents is left (the API requires one per party). A party is matched by its id or its email; where the
   manifest names it by id on one row and only by email on another, the manifest cannot tell whether they are
   one party: that case is left to the check the flow repeats once parties are resolved.

Vectorised pandas for row-level work; plain Python runs once per document, never per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from transforms.catalogue import Category
from transforms.codes import Reason, Status
from transforms.columns import CANONICAL_COLUMNS
from transforms.identifying import NO_IDENTIFYING_MESSAGE
from transforms.models import Document, FileRef, RowOutcome
from transforms.rules import Rules

__all__ = ["Document", "FileRef", "Grouped", "RowOutcome", "group_documents"]

_IDENT_FIELDS = ("document_type", "document_number", "country", "issue_date", "expiry_date")
_OTHER_FIELDS = ("document_type", "document_number", "document_date")
_DOC_FIELDS = ("customer_id", "document_type", "document_number", "country", "issue_date", "expiry_date")


@dataclass(slots=True)
class Grouped:
    """Documents that passed every document rule, and the valid rows that did not."""

    documents: list[Document] = field(default_factory=list)
    rejects: list[RowOutcome] = field(default_factory=list)


def _frame(rows: pd.DataFrame | pa.Table) -> pd.DataFrame:
    # Canonical columns as object arrays holding None for empty: pandas' arrow-backed "str" dtype makes every
    # isna/astype in the rules several times slower, and mixes NaN/NA/None.
    if isinstance(rows, pa.Table):
        data: dict[str, object] = {}
        for c in rows.column_names:
            col = rows.column(c)
            if c in CANONICAL_COLUMNS or c == "category":
                # dtype=object explicitly: pandas 3 would otherwise infer its arrow-backed "str" again.
                data[c] = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
            elif c in ("row_number", "reason_code"):
                data[c] = col.to_pandas()
        df = pd.DataFrame(data)
    else:
        df = rows.copy()
    for c in CANONICAL_COLUMNS:
        if c not in df.columns:
            df[c] = None
        elif not isinstance(rows, pa.Table):
            col = df[c].astype(object)
            df[c] = pd.Series(col.where(col.notna(), None), dtype=object)
    if "category" not in df.columns:
        from transforms.catalogue import category_of

        df["category"] = [getattr(category_of(t), "value", None) for t in df["document_type"]]
    return df.sort_values("row_number", kind="stable").reset_index(drop=True)


def _none(s: pd.Series) -> list[Any]:
    values: list[Any] = s.astype(object).where(s.notna(), None).tolist()
    return values


def group_documents(rows: pd.DataFrame | pa.Table, rules: Rules) -> Grouped:
    """Group validated rows into documents and apply the document rules.

    ``rows`` are the output of :func:`transforms.validate.validate_batch` for a set of whole customers (all of
    each customer's rows). Rows with a ``reason_code`` were rejected already: they are not reported again, but
    they reject their document's other rows. Every other row ends in exactly one place: in one document of
    ``documents`` or in ``rejects``.
    """
    df = _frame(rows)
    n = len(df)
    if n == 0:
        return Grouped()
    rn = df["row_number"].to_numpy(dtype=np.int64)
    valid = df["reason_code"].isna().to_numpy() if "reason_code" in df.columns else np.ones(n, dtype=bool)
    reason = np.full(n, None, dtype=object)
    message = np.full(n, None, dtype=object)

    # 1. exact duplicate rows (valid ones only: an invalid copy is reported by validation already).
    canon = df[list(CANONICAL_COLUMNS)]
    dup = np.zeros(n, dtype=bool)
    vpos = np.flatnonzero(valid)
    if len(vpos):
        vcanon = canon.iloc[vpos].fillna("\x00")  # nulls compare equal as a sentinel no cell can hold
        vdup = vcanon.duplicated(keep="first").to_numpy()
        if vdup.any():
            first = pd.Series(rn[vpos]).groupby([vcanon[c].to_numpy() for c in CANONICAL_COLUMNS]).transform("min")
            dpos = vpos[vdup]
            dup[dpos] = True
            reason[dpos] = Reason.duplicate_row.value
            message[dpos] = ["row: exact copy of row " + str(r) for r in first.to_numpy()[vdup]]

    # 2. document ids over every non-duplicate row (invalid ones included: they reject their siblings).
    member = ~dup
    pid, email = df["associated_party_id"], df["associated_party_email"]
    party_key = pid.where(pid.notna(), email)
    has_id = df["document_id"].notna()
    keys = pd.DataFrame(
        {
            "c": df["customer_id"].fillna(""),
            "h": has_id,
            "i": df["document_id"].fillna(""),
            "p": party_key.where(~has_id, "").fillna(""),
            "t": df["document_type"].where(~has_id, "").fillna(""),
            "n": df["document_number"].where(~has_id, "").fillna(""),
        }
    )
    doc = np.full(n, -1, dtype=np.int64)
    doc[member] = keys[member].groupby(list(keys.columns), sort=False).ngroup().to_numpy()

    state = _GroupingState(df, rn, doc, member & valid, reason, message)
    if not state.live.any():
        return _finish(state)

    # 3. a row rejected by validation rejects its document; the rows of a document must agree.
    bad = member & ~valid
    for d, first_bad in pd.Series(rn[bad]).groupby(doc[bad]).min().items():
        state.doc_reason[int(d)] = _rejected_because_of(first_bad)
    _conflicting_fields(state)
    state.settle()

    # 4. duplicate files within a customer; the document seen first (lowest first row) keeps the file.
    _duplicate_files(state)
    # 5. sides and file counts, of the documents still open.
    _side_rules(state, rules)
    state.settle()
    # 6. parties left with no identifying document.
    _no_identifying_document(state)
    state.settle()
    return _finish(state)


@dataclass(frozen=True, slots=True)
class _GroupingState:
    """The shard's rows (positions index ``df``, in row order) and what the rules have decided about them.

    Frozen: no field is rebound; the rules fill ``doc_reason`` and ``row_reason``, and :meth:`settle` writes
    them into ``reason``/``message``.
    """

    df: pd.DataFrame
    rn: np.ndarray  # row_number
    doc: np.ndarray  # document of each row; -1 for a duplicate row, which is in none
    live: np.ndarray  # valid and not a duplicate row: the rows the document rules decide
    reason: np.ndarray  # the code this stage gives a row; None while undecided (and for validation's rejects)
    message: np.ndarray
    doc_reason: dict[int, tuple[str, str]] = field(default_factory=dict)  # document -> (code, message)
    row_reason: dict[int, tuple[str, str]] = field(default_factory=dict)  # position -> (code, message)

    def open_rows(self) -> np.ndarray:
        """Positions of the live rows whose document no rule has rejected yet."""
        return np.flatnonzero(self.live & ~self._in_rejected_document())

    def column(self, name: str, pos: np.ndarray) -> np.ndarray:
        values: np.ndarray = self.df[name].to_numpy()[pos]
        return values

    def settle(self) -> None:
        """Give each undecided live row its own reason, else its document's."""
        for p, (code, msg) in self.row_reason.items():
            if self.reason[p] is None:
                self.reason[p], self.message[p] = code, msg
        if not self.doc_reason:
            return
        for i in np.flatnonzero(self.live & self._in_rejected_document() & pd.isna(self.reason)):
            self.reason[i], self.message[i] = self.doc_reason[int(self.doc[i])]

    def _in_rejected_document(self) -> np.ndarray:
        return np.isin(self.doc, np.fromiter(self.doc_reason, dtype=np.int64, count=len(self.doc_reason)))


def _rejected_because_of(row: object) -> tuple[str, str]:
    return Reason.document_rejected.value, f"document: row {row} of it was rejected"


def _conflicting_fields(state: _GroupingState) -> None:
    """Documents (not rejected already) whose rows disagree on a field of their category, or on the party."""
    live, doc_reason = state.live, state.doc_reason
    g = state.df[live].assign(_doc=state.doc[live]).groupby("_doc", sort=False)
    cat = g["category"].first()
    is_ident = (cat == Category.identifying.value).to_numpy()
    nun = g[list({*_IDENT_FIELDS, *_OTHER_FIELDS})].nunique(dropna=False)
    nun_party = g[["associated_party_id", "associated_party_email"]].nunique(dropna=True)
    ident_conf = (nun[list(_IDENT_FIELDS)] > 1).to_numpy()
    other_conf = (nun[list(_OTHER_FIELDS)] > 1).to_numpy()
    party_conf = (nun_party > 1).to_numpy().any(axis=1)
    conflict_any = np.where(is_ident, ident_conf.any(axis=1), other_conf.any(axis=1)) | party_conf
    docs_index = cat.index.to_numpy()
    for i in np.flatnonzero(conflict_any):  # once per conflicting document, not per row
        d = int(docs_index[i])
        if d in doc_reason:
            continue
        fields = _IDENT_FIELDS if is_ident[i] else _OTHER_FIELDS
        flags = ident_conf[i] if is_ident[i] else other_conf[i]
        names = [f for f, x in zip(fields, flags, strict=True) if x]
        if party_conf[i]:
            names.append("associated_party")
        doc_reason[d] = (Reason.conflicting_fields.value, ", ".join(names) + ": rows of one document disagree")


def _duplicate_files(state: _GroupingState) -> None:
    """An s3_uri used twice in one document, or already used by an earlier document of the customer."""
    pos = state.open_rows()
    if not len(pos):
        return
    rn, d = state.rn, state.doc[pos]
    f = pd.DataFrame({"c": state.column("customer_id", pos), "u": state.column("s3_uri", pos), "d": d})
    f["first"] = pd.Series(rn[pos]).groupby(d).transform("min").to_numpy()
    counts = f.groupby(["c", "u"], sort=False)["d"].transform("size").to_numpy()
    shared = counts > 1
    if not shared.any():
        return
    s = f[shared].assign(_pos=pos[shared])
    owner_first = s.groupby(["c", "u"], sort=False)["first"].transform("min").to_numpy()
    in_doc = s.groupby(["c", "u", "d"], sort=False)["d"].transform("size").to_numpy() > 1
    for p, dd, first, own, twice in zip(
        s["_pos"].to_numpy(), s["d"].to_numpy(), s["first"].to_numpy(), owner_first, in_doc, strict=True
    ):
        if twice:
            state.row_reason[int(p)] = (Reason.duplicate_file.value, "s3_uri: the same file twice in one document")
        elif first != own:
            state.row_reason[int(p)] = (
                Reason.duplicate_file.value,
                f"s3_uri: file already used by the document at row {own}",
            )
        else:
            continue
        state.doc_reason.setdefault(int(dd), _rejected_because_of(rn[p]))


def _side_rules(state: _GroupingState, rules: Rules) -> None:
    """A two-sided type needs exactly one FRONT and one BACK; a single-image type takes exactly one file."""
    pos = state.open_rows()
    if not len(pos):
        return
    dtype, side, d = state.column("document_type", pos), state.column("side", pos), state.doc[pos]
    two = np.isin(dtype, list(rules.side_rules.two_sided_types))
    single = np.isin(dtype, list(rules.side_rules.single_image_types))
    f = pd.DataFrame({"d": d, "front": side == "FRONT", "back": side == "BACK", "two": two, "single": single})
    g = f.groupby("d", sort=False)
    agg = g.agg(
        front=("front", "sum"),
        back=("back", "sum"),
        rows=("d", "size"),
        two=("two", "first"),
        single=("single", "first"),
    )
    nfront = f["d"].map(agg["front"]).to_numpy()
    nback = f["d"].map(agg["back"]).to_numpy()
    for i in np.flatnonzero(two & (((side == "FRONT") & (nfront > 1)) | ((side == "BACK") & (nback > 1)))):
        state.row_reason[int(pos[i])] = (
            Reason.duplicate_side.value,
            f"side: more than one {side[i]} in the document",
        )
    dup_docs = agg.index[agg["two"] & ((agg["front"] > 1) | (agg["back"] > 1))]
    for dd in dup_docs:
        state.doc_reason[int(dd)] = (Reason.document_rejected.value, "document: another row of it was rejected")
    miss = agg[agg["two"] & (agg["front"] <= 1) & (agg["back"] <= 1) & ((agg["front"] == 0) | (agg["back"] == 0))]
    if len(miss):
        _missing_sides(state, pos, miss)
    # A residence document may come as one image or as exactly one FRONT and one BACK.
    both = np.isin(dtype, list(rules.side_rules.front_and_back_allowed))
    agg["pair"] = f.assign(both=both).groupby("d", sort=False)["both"].first() & (agg["rows"] == 2) & (
        agg["front"] == 1) & (agg["back"] == 1)
    # ...but a BACK alone is not one image of it: the front is what identifies.
    for dd in agg.index[agg["single"] & (agg["rows"] == 1) & (agg["back"] == 1)]:
        state.doc_reason[int(dd)] = (Reason.missing_side.value, "side: the document has no FRONT row")
    for dd, rows in agg.loc[agg["single"] & (agg["rows"] > 1) & ~agg["pair"], "rows"].items():
        state.doc_reason[int(dd)] = (
            Reason.too_many_files.value,
            f"s3_uri: a single-image document takes one file, this one has {rows}",
        )


def _no_identifying_document(state: _GroupingState) -> None:
    """Reject the documents of a party whose documents still open include no identifying one."""
    pos = state.open_rows()
    if not len(pos):
        return
    f = pd.DataFrame({
        "d": state.doc[pos],
        "c": state.column("customer_id", pos),
        "id": state.column("associated_party_id", pos),
        "email": [e.lower() if isinstance(e, str) else None for e in state.column("associated_party_email", pos)],
        "ident": state.column("category", pos) == Category.identifying.value,
    })
    # one line per document: rows of a document agree on the party (conflicting_fields saw to that)
    docs = f.groupby("d", sort=False).agg(c=("c", "first"), id=("id", "first"), email=("email", "first"),
                                          ident=("ident", "first"))
    if docs["ident"].all():
        return
    idents = docs[docs["ident"]]
    has_id, has_email = idents["id"].notna(), idents["email"].notna()
    ids = set(zip(idents.loc[has_id, "c"], idents.loc[has_id, "id"], strict=True))
    emails = set(zip(idents.loc[has_email, "c"], idents.loc[has_email, "email"], strict=True))
    # customers with an identifying document known only by id (or only by email): a party named the other way
    # may be that same party
    only_id, only_email = set(idents.loc[~has_email, "c"]), set(idents.loc[~has_id, "c"])
    for d, c, pid, email in docs.loc[~docs["ident"], ["c", "id", "email"]].itertuples():
        no_id, no_email = pd.isna(pid), pd.isna(email)
        if (not no_id and (c, pid) in ids) or (not no_email and (c, email) in emails):
            continue
        if (no_id and c in only_id) or (no_email and c in only_email):
            continue
        state.doc_reason[int(d)] = (Reason.no_identifying_document.value, NO_IDENTIFYING_MESSAGE)


def _missing_sides(state: _GroupingState, pos: np.ndarray, miss: pd.DataFrame) -> None:
    """Documents of a two-sided type (the ``miss`` rows of the side counts) that lack a FRONT or a BACK."""
    for dd, row in miss.iterrows():  # once per incomplete document, not per row
        lacking = "BACK" if row["front"] else "FRONT"
        state.doc_reason[int(dd)] = (Reason.missing_side.value, f"side: the document has no {lacking} row")
    # Without a document_id a FRONT and a BACK whose numbers differ land in two documents, each missing a
    # side: when a party has exactly that pair for a type, say what is really wrong.
    s = state.df.iloc[pos[np.isin(state.doc[pos], miss.index.to_numpy())]]
    s = s[s["document_id"].isna()]
    if s.empty:
        return
    pk = s["associated_party_id"].where(s["associated_party_id"].notna(), s["associated_party_email"])
    key = pd.DataFrame({"c": s["customer_id"], "p": pk, "t": s["document_type"]})
    sides = s["side"]
    dsub = pd.Series(state.doc[s.index.to_numpy()], index=s.index)  # the index is the row position
    for _, idx in key.groupby(["c", "p", "t"], sort=False).groups.items():
        if len(idx) == 2 and set(sides.loc[idx]) == {"FRONT", "BACK"}:
            for dd in dsub.loc[idx]:
                state.doc_reason[int(dd)] = (
                    Reason.conflicting_fields.value,
                    "document_number: the FRONT and BACK rows disagree",
                )


def _finish(state: _GroupingState) -> Grouped:
    df, rn, doc, reason, message = state.df, state.rn, state.doc, state.reason, state.message
    rejected = ~pd.isna(reason)
    out = Grouped()
    out.rejects = [
        RowOutcome(int(r), Status.rejected, Reason(c), m)
        for r, c, m in zip(rn[rejected], reason[rejected], message[rejected], strict=True)
    ]
    keep = state.live & ~rejected
    if not keep.any():
        return out
    kpos = np.flatnonzero(keep)
    side = df["side"].to_numpy()[kpos]
    side_order = np.where(side == "FRONT", 0, np.where(side == "BACK", 1, 2))
    order = np.lexsort((rn[kpos], side_order, doc[kpos]))
    kpos = kpos[order]
    k = df.iloc[kpos]
    dk = doc[kpos]
    starts = np.flatnonzero(np.r_[True, dk[1:] != dk[:-1]])
    ends = np.r_[starts[1:], len(dk)].tolist()
    # One FileRef per row is unavoidable (the flow needs them); everything per document is taken vectorised.
    files = [
        FileRef(r, u, sd) for r, u, sd in zip(rn[kpos].tolist(), _none(k["s3_uri"]), _none(k["side"]), strict=True)
    ]
    at_start = {c: _none(k[c].iloc[starts]) for c in (*_DOC_FIELDS, "category", "document_id")}
    # First non-empty party id/email of each document (groupby.first skips nulls); dk is sorted, so the
    # groups come out in the same order as `starts`.
    parties = k[["associated_party_id", "associated_party_email"]].groupby(dk, sort=True).first()
    docs = [
        Document(
            customer_id=cust,
            party_id=pid,
            party_email=email,
            category=cat,
            type=typ,
            number=num,
            country=cty,
            issue_date=iss,
            expiry_date=exp,
            files=tuple(files[a:b]),
            document_id=did,
        )
        for cust, pid, email, cat, typ, num, cty, iss, exp, did, a, b in zip(
            at_start["customer_id"],
            _none(parties["associated_party_id"]),
            _none(parties["associated_party_email"]),
            at_start["category"],
            at_start["document_type"],
            at_start["document_number"],
            at_start["country"],
            at_start["issue_date"],
            at_start["expiry_date"],
            at_start["document_id"],
            starts.tolist(),
            ends,
            strict=True,
        )
    ]
    # No sort needed: ngroup(sort=False) numbers documents by first appearance and rows are in row order.
    out.documents = docs
    return out
