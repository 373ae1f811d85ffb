"""The ``kyc-attach`` command line: run, validate, demo, report, history, ledger (adopt, compact), sandbox.

Exit codes of ``run``: 0 report written and no row failed; 1 report written with rows ``failed`` or
``unknown``; 2 the run could not start (one line on stderr says why, whether the start-up gate or the flow
refused it; no upload or attach made, and the run id can be used again); 3 the run started and stopped on an
unexpected error before its report was written, or on a check that failed after it sent something (its report
is written all the same, the rows not settled ``failed`` / ``run_stopped``, and the one line names where); run
the same manifest again to resume: the ledger knows what was attached. Every error below the CLI ends
in one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os

# Prefect reads its settings at import: quiet analytics, and give the ephemeral server time to start
# on a small machine (its first start takes ~20 s on 2 cores, the default timeout).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import asyncio
import json
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from connectors.errors import SetupError, Unforeseen

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Attach KYC documents to Fin customers.")


def exit_code(summary: dict[str, Any]) -> int:
    """1 when some rows failed or have an unknown outcome, else 0."""
    from transforms.report import exit_code_of

    return exit_code_of(summary)


EXIT_NOT_STARTED = 2
EXIT_STOPPED = 3
T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    """The line stderr gets for ``exc``: the reason of a ``SetupError``, else the type and the first line."""
    if isinstance(exc, SetupError):
        return f"kyc-attach: cannot start: {exc}"
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"kyc-attach: error: {type(exc).__name__}" + (f": {first}" if first else "")


def _guarded(step: Callable[[], T], *, debug: bool, started: bool = False) -> T:
    """Run ``step``; any error becomes one line on stderr and the exit code of the rule (module docstring).

    ``SetupError`` is exit 2 wherever it is raised (it means nothing was sent); anything else is exit 2 before
    the run started and 3 after. With ``debug`` the traceback goes to stderr first.
    """
    try:
        return step()
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:  # an unforeseen error's own traceback (left out of Prefect) is for the person at the terminal
            traceback.print_exception(exc.__context__ if isinstance(exc, Unforeseen) and exc.__context__ else exc)
        typer.echo(one_line(exc), err=True)
        code = EXIT_STOPPED if started and not isinstance(exc, SetupError) else EXIT_NOT_STARTED
        raise typer.Exit(code) from None


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM during start-up unwinds like an error, so the start-up folder (a manifest copy) is removed."""
    def stop(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def run(
    manifest: Annotated[str, typer.Argument(help="CSV or Parquet manifest: a local path or s3://bucket/key.")],
    report_uri: Annotated[str, typer.Option("--report-uri", help="Where reports go: s3://bucket/prefix or a folder.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and HEAD every file; call no API.")] = False,
    api_url: Annotated[str | None, typer.Option("--api-url", help="Fin API base URL (else FIN_API_URL).")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name of this run (default: time + random).")] = None,
    resend_unknown: Annotated[
        bool, typer.Option("--resend-unknown", help="Resend attaches whose earlier outcome is unknown.")
    ] = False,
    allow_reattach: Annotated[
        bool, typer.Option("--allow-reattach", help="Send documents again although an earlier run attached them.")
    ] = False,
    retry_failed: Annotated[
        str | None, typer.Option("--retry-failed", metavar="RUN_ID", help="Work only the rows that failed in RUN_ID.")
    ] = None,
    include_rejected: Annotated[
        str | None, typer.Option("--include-rejected", metavar="REASONS",
                                 help="With --retry-failed: also the rows RUN_ID rejected for these reasons "
                                      "(comma-separated: missing_object,party_not_found).")
    ] = None,
    mapping: Annotated[
        str | None, typer.Option("--mapping", help="Legacy mapping file (YAML): a local path or s3:// uri.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (rows, rate, ETA) on stderr.")] = True,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Run the attach flow on a manifest and write the report."""
    if api_url:
        os.environ["FIN_API_URL"] = api_url
    from flows.start_gate import check_before_run

    # Before Prefect starts: anything that would stop the run ends in one line on stderr, not a flow-run
    # traceback, and the run id the flow gets is the one checked and claimed here.
    with _sigterm_exits():
        cleared = _guarded(lambda: check_before_run(manifest, report_uri, run_id=run_id, dry_run=dry_run,
                                                    mapping=mapping, retry_failed=retry_failed,
                                                    include_rejected=_reasons(include_rejected)), debug=debug)

    def work() -> dict[str, Any]:
        from flows.attach_flow import run_attach
        from flows.commands.held_logs import console_held
        from flows.progress import listen, rich_bar

        # A refusal inside the flow is one line too: Prefect's console lines wait until the plan is done.
        with (console_held(enabled=not debug) as held, listen(held.release), rich_bar(enabled=progress) as show,
              listen(show)):
            return asyncio.run(
                run_attach(manifest, report_uri, run_id=cleared.run_id, dry_run=dry_run,
                           resend_unknown=resend_unknown, retry_failed=retry_failed, mapping=mapping,
                           claim_token=cleared.claim_token, allow_reattach=allow_reattach,
                           include_rejected=_reasons(include_rejected))
            )

    summary = _guarded(work, debug=debug, started=True)
    _print_summary(summary)
    if "dry_run_preview" in summary:
        typer.echo(f"dry run: {summary['dry_run_preview']['line']}")
    if summary.get("stopped_early"):
        typer.echo(f"kyc-attach: {summary['stopped_early']}", err=True)
    raise typer.Exit(exit_code(summary))


@app.command()
def validate(
    manifest: Annotated[str, typer.Argument(help="CSV or Parquet manifest: a local path or s3://bucket/key.")],
    mapping: Annotated[
        str | None, typer.Option("--mapping", help="Legacy mapping file (YAML): a local path or s3:// uri.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Check every row as a dry run would (no API, no file reads): exit 0 all valid, 1 some rejected."""
    from flows.commands.validate_command import validate_command

    code = _guarded(lambda: validate_command(manifest, mapping), debug=debug)
    raise typer.Exit(code)


@app.command()
def demo(
    keep: Annotated[Path | None, typer.Option(help="Copy the report to this folder before stopping.")] = None,
) -> None:
    """Run the whole flow on sample data against a local S3 server and the local Fin sandbox."""
    from flows.commands.demo import run_demo

    summary = run_demo(keep=keep)
    _print_summary(summary)


@app.command()
def report(
    run_uri: Annotated[str, typer.Argument(help="A run's report location: REPORT_PREFIX/RUN_ID (s3:// or a folder).")],
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in a browser (an S3 page is copied "
                                                             "to the work folder first).")] = False,
) -> None:
    """Say where a run's report page (report.html) is, and open it."""
    from flows.commands.report_command import find_report_page

    where, local = _guarded(lambda: find_report_page(run_uri, fetch=open_page), debug=False)
    typer.echo(where)
    if open_page and local is not None:
        import webbrowser

        typer.echo(local.as_uri())
        webbrowser.open(local.as_uri())


ledger_app = typer.Typer(no_args_is_help=True, help="The tenant ledger (KYC_ATTACH_LEDGER_URI).")
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("adopt")
def ledger_adopt(
    report_prefix: Annotated[str, typer.Argument(help="A report location whose REPORT_PREFIX/_ledger predates "
                                                      "the tenant ledger: s3://bucket/prefix or a folder.")],
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Copy the ledger a report location kept into the tenant ledger (again: copies nothing new)."""
    from flows.commands.ledger_commands import adopt_command

    typer.echo(json.dumps(_guarded(lambda: adopt_command(report_prefix), debug=debug), indent=2, sort_keys=True))


@app.command()
def history(
    customer: Annotated[str | None, typer.Option("--customer", help="A customer id.")] = None,
    party: Annotated[str | None, typer.Option("--party", help="An associated party id.")] = None,
    document: Annotated[str | None, typer.Option("--document", help="A document key (or its first 8+ chars).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="A source object: the s3 uri of a file.")] = None,
    parquet: Annotated[str | None, typer.Option("--parquet", metavar="OUT",
                                                help="Also write the history as Parquet here (path or s3://).")] = None,
    ledger_uri: Annotated[str | None, typer.Option("--ledger-uri", help="The ledger to read (else "
                                                                      "KYC_ATTACH_LEDGER_URI, as runs use).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Every state change of the documents of a customer, party, document or source object (exit 1: none)."""
    from flows.commands.ledger_commands import document_history
    from transforms.ledger_history import HistoryQuery, StateChange, as_line

    def look_up() -> list[StateChange]:
        try:
            query = HistoryQuery(customer=customer, party=party, document=document, source=source)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        return document_history(ledger_uri, query, parquet_out=parquet)

    changes = _guarded(look_up, debug=debug)
    for change in changes:
        typer.echo(as_line(change))
    if not changes:
        typer.echo("kyc-attach: the ledger has no record of that", err=True)
    raise typer.Exit(0 if changes else 1)


@ledger_app.command("compact")
def ledger_compact(
    ledger_uri: Annotated[str | None, typer.Option("--ledger-uri", help="The ledger to compact (else "
                                                                      "KYC_ATTACH_LEDGER_URI, as runs use).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Fold the index's segments into one compacted file per partition (safe next to running runs)."""
    from flows.commands.ledger_commands import compact_index

    done = _guarded(lambda: compact_index(ledger_uri), debug=debug)
    typer.echo(json.dumps({"partitions": len(done), "segments_folded": sum(c.segments_folded for c in done),
                           "bytes_before": sum(c.bytes_before for c in done),
                           "bytes_after": sum(c.bytes_after for c in done)}, sort_keys=True))


@app.command()
def sandbox(
    world: Annotated[Path, typer.Option(help="World file (JSON): clients and customers.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    faults: Annotated[Path | None, typer.Option(help="Faults file (JSON).")] = None,
    admin: Annotated[bool, typer.Option(help="Serve /_sandbox/* (record, reset, faults) for tests/demos.")] = False,
) -> None:
    """Serve the local Fin API sandbox."""
    from sandbox.server import serve

    serve(host, port, world, faults, admin=admin)


def _reasons(text: str | None) -> list[str] | None:
    """``--include-rejected a,b`` as a list (the flow checks the names)."""
    return [r.strip() for r in text.split(",") if r.strip()] if text else None


def _print_summary(summary: dict[str, Any]) -> None:
    keys = ("run_id", "rows_in", "by_status", "by_reason", "report", "report_copy", "report_page", "stopped_early")
    shown = {k: summary[k] for k in keys if k in summary}
    typer.echo(json.dumps(shown, indent=2, sort_keys=True))


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except SetupError as exc:  # raised outside ``run`` and ``validate`` (their own errors are handled there)
        typer.echo(one_line(exc), err=True)
        sys.exit(EXIT_NOT_STARTED)


if __name__ == "__main__":  # pragma: no cover - `python -m flows.commands.cli`, used by the crash tests
    main()
