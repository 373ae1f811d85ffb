"""Reading a legacy mapping file (YAML) from local disk or S3 into a ``transforms.mapping.LegacyMapping``."""

from __future__ import annotations

import yaml
from pydantic import ValidationError

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.run_claim import error_reason
from connectors.s3 import Location
from transforms.mapping import LegacyMapping


def parse_mapping(text: str | bytes, source: str | None = None) -> LegacyMapping:
    """A mapping from YAML text; ``SetupError`` naming the file (``source``), each key that is wrong
    (``layouts[0].date_format``) and what is wrong with it (the run must not start)."""
    where = f"mapping {source}" if source else "mapping"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SetupError(f"{where}: not valid YAML ({exc.__class__.__name__})") from None
    try:
        return LegacyMapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_key(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise SetupError(f"{where}: {problems}") from None


def _key(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the key path a person finds in the YAML: ``layouts[0].date_format``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(the whole file)"


def load_mapping(location: str, store: ObjectStore, shown: str | None = None) -> LegacyMapping:
    """The mapping file at a local path or ``s3://`` uri; its errors name it as ``shown`` (in hashed report mode,
    the keyed digest of its location) or else by its location."""
    loc = Location.parse(location)
    try:
        data = store.read(loc)
    except SetupError:
        raise
    except Exception as exc:  # S3's code (NoSuchKey, AccessDenied) or the error's type, never "missing" for all
        raise SetupError(f"mapping: the file cannot be read ({error_reason(exc)})") from None
    return parse_mapping(data, shown or location)
