"""Progress for people: a Prefect progress artifact, in-process listeners (the CLI's bar), the final markdown.

The flow tells a :class:`RunProgress` how many rows the plan accounted for and, as each shard finishes,
how many rows it settled. Listeners are plain callables registered in this process (the CLI registers a
rich progress bar); the Prefect progress artifact is what the UI and other processes see. Updates are
per shard, never per row: a shard is the unit of work, so a progress write per shard costs as much as the
task run itself and no more. While this process sends API requests, listeners also hear the API's recent rate and
429 share once a second (``RunProgress.api_rate``), read from the run's timeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from transforms.report_page import page_link
from transforms.run_timeline import RecentRate, Timeline, recent_rate

if TYPE_CHECKING:  # rich is imported when a bar is drawn: the CLI's small commands start without it
    from rich.console import Console

log = logging.getLogger("kyc_attach.progress")

PROGRESS_KEY = "kyc-attach-progress"


@dataclass(frozen=True)
class ProgressEvent:
    """Rows settled so far out of the manifest's rows; ``final`` on the last event of a run. ``api`` is the API's
    recent rate while this process sends requests (None otherwise: a dry run, or shards on other workers)."""

    done: int
    total: int
    final: bool = False
    api: RecentRate | None = None

    @property
    def percent(self) -> float:
        return 100.0 if self.total <= 0 else min(100.0, 100.0 * self.done / self.total)


Listener = Callable[[ProgressEvent], None]
_listeners: list[Listener] = []


@contextmanager
def listen(listener: Listener) -> Iterator[None]:
    """Call ``listener`` with every progress event of flow runs in this process while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def _emit(event: ProgressEvent) -> None:
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:  # a broken progress display must never fail a run
            log.warning("progress listener failed", exc_info=True)


class RunProgress:
    """Rows done of one flow run: notifies listeners and keeps the Prefect progress artifact current."""

    def __init__(self, total: int, *, artifact: bool = True) -> None:
        self.total = total
        self.done = 0
        self._artifact = artifact
        self._artifact_id: UUID | None = None
        self._rate: RecentRate | None = None

    async def start(self, already_done: int) -> None:
        """Rows settled by the plan itself (rejected by row rules) count as done from the start."""
        self.done = already_done
        if self._artifact:
            from prefect.artifacts import acreate_progress_artifact

            self._artifact_id = await acreate_progress_artifact(
                self._event().percent, key=PROGRESS_KEY, description="Manifest rows settled (percent)"
            )
        _emit(self._event())

    @asynccontextmanager
    async def api_rate(self, timeline: Timeline, *, every_s: float = 1.0, log_every: int = 10,
                       clock: Callable[[], float] = time.time) -> AsyncIterator[None]:
        """While the block runs, tell listeners the API's recent rate and 429 share every ``every_s`` seconds (read
        from ``timeline``, the one the Fin client counts into), and log it every ``log_every`` ticks for the
        Prefect UI. Listeners only: the progress artifact is a percentage, and a Prefect write a second would cost
        more than it shows."""
        async def tick() -> None:
            ticks = 0
            while True:
                await asyncio.sleep(every_s)
                self._rate = recent_rate(timeline, clock())
                _emit(self._event())
                ticks += 1
                if ticks % log_every == 0:
                    log.info("API: %s", rate_text(self._rate))

        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            self._rate = None

    async def advance(self, rows: int) -> None:
        """A shard finished with ``rows`` rows settled."""
        self.done += rows
        await self._publish(self._event())

    async def finish(self) -> None:
        """The report is written: every row is settled."""
        self.done = self.total
        await self._publish(self._event(final=True))

    def _event(self, final: bool = False) -> ProgressEvent:
        return ProgressEvent(self.done, self.total, final, None if final else self._rate)

    async def _publish(self, event: ProgressEvent) -> None:
        _emit(event)
        if self._artifact_id is not None:
            from prefect.artifacts import aupdate_progress_artifact

            try:
                await aupdate_progress_artifact(self._artifact_id, event.percent)
            except Exception:  # the artifact is for people: losing one update must not fail the run
                log.warning("progress artifact update failed", exc_info=True)


def rate_text(rate: RecentRate | None) -> str:
    """The API's recent rate for people: ``95 req/s, 1.2% 429``; empty when there is none."""
    if rate is None:
        return ""
    return f"{rate.requests_per_s:,.0f} req/s, {rate.share_429:.1%} 429"


def shard_log_line(shard: str, counts: dict[str, int], seconds: float) -> str:
    """One structured (JSON) log line per shard: its counts by status, rows and time."""
    return json.dumps({"event": "shard_done", "shard": shard, "rows": sum(counts.values()),
                       "seconds": round(seconds, 3), "by_status": dict(sorted(counts.items()))}, sort_keys=True)


def report_markdown(summary: dict[str, Any], *, top: int = 10) -> str:
    """The final markdown artifact: counts by status, top rejection reasons, slowest endpoints, 429s, report."""
    by_status: dict[str, int] = summary.get("by_status", {})
    reasons = sorted(summary.get("by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    api: dict[str, Any] = summary.get("api") or {}
    slowest = sorted((api.get("slowest_seconds") or {}).items(), key=lambda kv: -kv[1])
    mean = api.get("mean_seconds") or {}
    requests = api.get("requests") or {}
    throttled = int((api.get("statuses") or {}).get("429", 0))
    report = str(summary.get("report", ""))
    lines = [f"# kyc-attach run `{summary.get('run_id', '')}`" + (" (dry run)" if summary.get("dry_run") else ""), ""]
    page = f"{report.rstrip('/')}/report.html"
    lines += [f"**Report:** [{page}]({report_link(page)}) (the page), `{report}` (rows.csv, rows.parquet, "
              "summary.json)",
              "", f"Rows: **{summary.get('rows_in', 0):,}** in {summary.get('seconds', 0)} s, "
              f"{summary.get('shards', 0)} shards. API answered 429 (rate limited) **{throttled}** times.", ""]
    lines += ["| status | rows |", "|---|---:|", *[f"| {k} | {v:,} |" for k, v in sorted(by_status.items())], ""]
    if reasons:
        lines += ["| top reasons | rows |", "|---|---:|", *[f"| `{k}` | {v:,} |" for k, v in reasons], ""]
    if slowest:
        lines += ["| endpoint | requests | mean s | slowest s |", "|---|---:|---:|---:|",
                  *[f"| {k} | {requests.get(k, 0):,} | {mean.get(k, 0)} | {v} |" for k, v in slowest], ""]
    if api.get("per_10s"):
        share = float(api.get("share_429", 0.0))
        lines += [f"API rate: {share:.1%} of requests answered 429; some request was waiting out a 429 for "
                  f"{api.get('throttled_seconds', 0)} s. Requests/s by 10 s: "
                  + ", ".join(f"{b['requests'] / 10:.0f}" for b in api["per_10s"]), ""]
    if summary.get("stopped_early"):
        lines += [f"**Stopped early:** {summary['stopped_early']}", ""]
    return "\n".join(lines)


def report_link(location: str) -> str:
    """A link to a report object: the S3 endpoint in use (AWS console by default) or a local file URL."""
    if not location.startswith("s3://"):
        location = str(Path(location).resolve())
    return page_link(location, os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))


@contextmanager
def rich_bar(console: Console | None = None, *, enabled: bool = True) -> Iterator[Listener]:
    """A rich progress bar (rows done, rate, ETA) on stderr, fed by progress events; yields the listener."""
    if not enabled:
        yield lambda event: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]rows"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]} rows/s"), TextColumn("{task.fields[api]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    started = time.monotonic()
    with Progress(*columns, console=console or Console(stderr=True), transient=False) as bar:
        task = bar.add_task("rows", total=None, rate="-", api="")

        def update(event: ProgressEvent) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, total=event.total, completed=event.done, rate=f"{event.done / elapsed:,.0f}",
                       api=rate_text(event.api))

        yield update
