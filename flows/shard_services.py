"""What a shard is worked with (``ShardServices``): values and handles only, handed in by the run that works it.

A run is live (requests go to the Fin API through one client) or a dry run (files checked, payloads written, no
API call): the mode is a value of its own, chosen once, rather than a client left ``None``. Both are built from
the settings in one place, ``flows.runtime``, for a single-process run and a shard run alike: a shard's worker
reads neither the settings nor the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.fin import FinClient
from connectors.objects import ObjectStore
from connectors.s3 import Location
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
    # held while the shard sends: a fanned-out shard run's share of the API rate (flows.runtime, rate_share)
    sending: Callable[[], AbstractAsyncContextManager[None]] = nullcontext
