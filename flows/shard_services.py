"""What a shard is worked with (``ShardServices``), built in one place for a single-process run and a shard run.

A run is live (requests go to the Fin API through one client) or a dry run (files checked, payloads written, no
API call): the mode is a value of its own, chosen once, rather than a client left ``None``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from connectors.fin import FinClient
from connectors.objects import ObjectStore
from connectors.rate_share import RateShare
from connectors.s3 import Location
from flows.run_rules import rules_from
from flows.runtime import fin_client
from flows.settings import Settings
from transforms.rules import Rules
from transforms.run_timeline import Timeline
from transforms.thresholds import FailureBudget


@dataclass(frozen=True)
class LiveMode:
    """A real run: every request goes through this one client (its limiters, token and statistics)."""

    fin: FinClient

    def api_stats(self) -> dict[str, Any]:
        """The client's request statistics, for the run summary."""
        return self.fin.stats.as_dict()


@dataclass(frozen=True)
class DryRunMode:
    """A dry run: no upload, no attach; the would-be attach payloads go under ``payloads_dir`` (one file per shard).

    ``fin`` (when API credentials are configured) reads customers, to resolve parties known by email as the run
    would; without it they stay unresolved.
    """

    payloads_dir: Path
    fin: FinClient | None = None

    def api_stats(self) -> dict[str, Any]:
        """The customer look-ups' statistics (none without credentials)."""
        return self.fin.stats.as_dict() if self.fin is not None else {}


RunMode = LiveMode | DryRunMode


@dataclass
class ShardServices:
    """Everything a shard needs, built once per process and handed in (nothing here builds its own IO)."""

    store: ObjectStore
    mode: RunMode
    rules: Rules
    ledger_root: Location  # the job's ledger: <report>/_ledger/<job_id> (its parent holds the document index)
    max_file_bytes: int
    max_concurrent_customers: int
    max_concurrent_uploads: int
    budget: FailureBudget = field(default_factory=FailureBudget)
    settle_delay_s: float = 1.0
    resend_unknown: bool = False
    allow_reattach: bool = False  # --allow-reattach: send documents an earlier run attached
    trust_initiated_as_not_applied: bool = False  # the setting of the same name (README, exactly once)
    run_id: str = "unnamed"  # named in the report of every document a later run skips
    only_rows: frozenset[int] | None = None  # --retry-failed: work only documents with one of these rows
    timeline: Timeline = field(default_factory=Timeline)  # rows settled and requests per second, for report.html


@asynccontextmanager
async def run_mode(settings: Settings, *, dry_run: bool, payloads_dir: Path, timeline: Timeline,
                   rate_share: RateShare | None = None) -> AsyncIterator[RunMode]:
    """The mode of this process's run; a live one holds an authenticated client (counting requests per second
    into ``timeline``) until the block ends. ``rate_share``: see ``flows.runtime.fin_client``."""
    if dry_run:
        if not settings.has_credentials():
            yield DryRunMode(payloads_dir)
            return
        async with fin_client(settings, rate_share=rate_share) as reader:  # customer look-ups only
            reader.stats.per_second = timeline
            yield DryRunMode(payloads_dir, reader)
        return
    async with fin_client(settings, rate_share=rate_share) as fin:
        fin.stats.per_second = timeline
        await fin.authenticate()
        yield LiveMode(fin)


def shard_services(settings: Settings, mode: RunMode, *, store: ObjectStore, run_date: date,
                   ledger_root: Location, run_id: str, resend_unknown: bool, allow_reattach: bool,
                   only_rows: frozenset[int] | None, timeline: Timeline) -> ShardServices:
    """The services of every shard this process works, from the settings and the run's own choices."""
    return ShardServices(
        store=store, mode=mode, rules=rules_from(settings, run_date), ledger_root=ledger_root,
        max_file_bytes=settings.max_file_bytes,
        max_concurrent_customers=settings.max_concurrent_customers,
        max_concurrent_uploads=settings.max_concurrent_requests,
        budget=FailureBudget(max_ratio=settings.fail_ratio, min_attempts=settings.fail_min_attempts),
        settle_delay_s=settings.settle_delay_s,
        resend_unknown=resend_unknown,
        allow_reattach=allow_reattach,
        trust_initiated_as_not_applied=settings.trust_initiated_as_not_applied,
        run_id=run_id,
        only_rows=only_rows,
        timeline=timeline,
    )
