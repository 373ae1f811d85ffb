"""Whether a bucket's lifecycle rules would delete (or make unreadable) objects under the ledger's prefix.

The ledger is the only memory of what was attached: once a segment expires, its documents are attached again by
the next run that sees them. The rules are S3's ``GetBucketLifecycleConfiguration`` answer, as dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Storage classes a GET cannot read without a restore: a ledger moved there stops every run that loads it.
_UNREADABLE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


def rules_against(rules: Iterable[Mapping[str, Any]], ledger_key: str) -> list[str]:
    """The ids (or ``#n``, their place) of enabled rules that expire or archive current objects under
    ``ledger_key`` (a key prefix; ``""`` is the whole bucket)."""
    folder = ledger_key.strip("/") + "/" if ledger_key.strip("/") else ""
    found = []
    for n, rule in enumerate(rules, start=1):
        if rule.get("Status") != "Enabled" or not _harms_current_objects(rule):
            continue
        prefix, tagged = _scope(rule)
        # Ledger objects carry no tags, so a rule limited to tags never applies to them.
        if tagged:
            continue
        if folder.startswith(prefix) or prefix.startswith(folder):
            found.append(str(rule.get("ID") or f"#{n}"))
    return found


def _harms_current_objects(rule: Mapping[str, Any]) -> bool:
    expiration = rule.get("Expiration") or {}
    if "Days" in expiration or "Date" in expiration:
        return True
    return any(t.get("StorageClass") in _UNREADABLE_CLASSES for t in rule.get("Transitions") or ())


def _scope(rule: Mapping[str, Any]) -> tuple[str, bool]:
    """(the key prefix a rule applies to, whether it is limited to tagged objects)."""
    if "Filter" not in rule:
        return str(rule.get("Prefix") or ""), False
    flt = rule["Filter"] or {}
    if "And" in flt:
        both = flt["And"] or {}
        return str(both.get("Prefix") or ""), bool(both.get("Tags"))
    return str(flt.get("Prefix") or ""), "Tag" in flt
