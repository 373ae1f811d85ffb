"""The ``kyc-attach`` command line: run, demo, sandbox.

Exit codes: 0 report written and no row failed; 1 report written with rows ``failed`` or ``unknown``;
2 the run could not start (one line on stderr says why; no API call made).
"""

from __future__ import annotations

import os

# Prefect reads its settings at import: quiet analytics, and give the ephemeral server time to start
# on a small machine (its first start takes ~20 s on 2 cores, the default timeout).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from connectors.errors import SetupError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Attach KYC documents to Fin customers.")


def exit_code(summary: dict[str, Any]) -> int:
    """1 when some rows failed or have an unknown outcome, else 0."""
    by_status = summary.get("by_status", {})
    return 1 if by_status.get("failed", 0) or by_status.get("unknown", 0) else 0


def _fail_setup(exc: Exception) -> None:
    typer.echo(f"kyc-attach: cannot start: {exc}", err=True)
    raise typer.Exit(2)


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
) -> None:
    """Run the attach flow on a manifest and write the report."""
    if api_url:
        os.environ["FIN_API_URL"] = api_url
    from flows.startup_checks import check_before_run

    try:  # before Prefect starts: a broken manifest ends in one line on stderr, not a flow-run traceback
        check_before_run(manifest, report_uri, run_id=run_id, dry_run=dry_run, mapping=mapping)
    except SetupError as exc:
        _fail_setup(exc)
    from flows.attach_flow import attach_manifest
    from flows.progress import listen, rich_bar

    try:
        with rich_bar(enabled=progress) as show, listen(show):
            summary = asyncio.run(
                attach_manifest(manifest, report_uri, run_id=run_id, dry_run=dry_run, resend_unknown=resend_unknown,
                                retry_failed=retry_failed, mapping=mapping, allow_reattach=allow_reattach,
                                include_rejected=_reasons(include_rejected))
            )
    except SetupError as exc:
        _fail_setup(exc)
    _print_summary(summary)
    if summary.get("stopped_early"):
        typer.echo(f"kyc-attach: {summary['stopped_early']}", err=True)
    raise typer.Exit(exit_code(summary))


@app.command()
def validate(
    manifest: Annotated[str, typer.Argument(help="CSV or Parquet manifest: a local path or s3://bucket/key.")],
    mapping: Annotated[
        str | None, typer.Option("--mapping", help="Legacy mapping file (YAML): a local path or s3:// uri.")
    ] = None,
) -> None:
    """Check every row as a dry run would (no API, no file reads): exit 0 all valid, 1 some rejected."""
    from flows.preflight import validate_command

    try:
        code = validate_command(manifest, mapping)
    except SetupError as exc:
        _fail_setup(exc)
    raise typer.Exit(code)


@app.command()
def demo(
    keep: Annotated[Path | None, typer.Option(help="Copy the report to this folder before stopping.")] = None,
) -> None:
    """Run the whole flow on sample data against a local S3 server and the local Fin sandbox."""
    from flows.demo import run_demo

    summary = run_demo(keep=keep)
    _print_summary(summary)


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
    keys = ("run_id", "rows_in", "by_status", "by_reason", "report", "report_copy", "stopped_early")
    shown = {k: summary[k] for k in keys if k in summary}
    typer.echo(json.dumps(shown, indent=2, sort_keys=True))


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except SetupError as exc:
        typer.echo(f"kyc-attach: cannot start: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover - `python -m flows.cli`, used by the crash tests
    main()
