"""Links planted in the work folder, and refusals from inside the flow.

A symbolic link where the run makes a folder (``runs/<run id>``, ``runs``, ``manifests``, ``startup``) is refused
before anything is sent, one line and exit 2, with nothing written where the link points; a run refused that
way, or refused by the flow for any other reason before it sent anything, leaves its run id usable; a check that
fails after the run sent something is never reported as "cannot start". Real runs: the CLI against the loopback S3
server, the Fin sandbox and Prefect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import SetupError
from flows.commands.cli import app
from tests.support.scenario import sandbox_record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the work folder, where a planted link points."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _run(manifest: str, bucket: str, *more: str) -> Any:
    return CliRunner().invoke(app, ["run", manifest, "--report-uri", f"s3://{bucket}/reports", "--no-progress",
                                    *more], catch_exceptions=False)


def _sent(url: str) -> tuple[int, int]:
    record = sandbox_record(url)
    return len(record["uploads"]), len(record["attachments"])


def _plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry"])
@pytest.mark.parametrize("where", ["runs/r1", "runs"])
def test_a_link_planted_at_the_run_folder_is_refused_before_anything_is_sent_and_the_run_id_stays_usable(
        where: str, dry_run: bool, prefect_harness: None, staged: str, bucket: str, fin_sandbox: Any,
        tmp_path: Path, elsewhere: Path) -> None:
    link = tmp_path / "work" / where
    _plant(link, elsewhere)
    dry = ["--dry-run"] if dry_run else []

    refused = _run(staged, bucket, "--run-id", "r1", *dry)

    assert refused.exit_code == 2, refused.output
    assert refused.stderr.splitlines()[-1] == (f"kyc-attach: cannot start: work folder: {where} is a symbolic "
                                               "link; the run writes only into folders of its own (remove the link)")
    assert _files_in(elsewhere) == []
    assert _sent(fin_sandbox.url) == (0, 0)

    link.unlink()
    again = _run(staged, bucket, "--run-id", "r1", *dry)
    assert again.exit_code == 0, again.output  # the refused run did not use the run id up
    assert _files_in(elsewhere) == []
    assert (_sent(fin_sandbox.url)[1] > 0) is not dry_run


@pytest.mark.slow
def test_a_link_planted_at_the_shared_manifests_folder_is_never_written_through(
        prefect_harness: None, staged: str, bucket: str, fin_sandbox: Any, tmp_path: Path, elsewhere: Path) -> None:
    """The run copies an S3 manifest into its own run folder; the validate command, which copies into
    ``manifests``, refuses the link."""
    _plant(tmp_path / "work" / "manifests", elsewhere)

    result = _run(staged, bucket)
    assert result.exit_code == 0, result.output
    assert _files_in(elsewhere) == []

    checked = CliRunner().invoke(app, ["validate", staged], catch_exceptions=False)
    assert checked.exit_code == 2
    assert checked.stderr.splitlines() == ["kyc-attach: cannot start: work folder: manifests is a symbolic link; "
                                           "the run writes only into folders of its own (remove the link)"]
    assert _files_in(elsewhere) == []


def test_a_link_planted_at_the_start_up_folder_is_refused(staged: str, bucket: str, fin_sandbox: Any,
                                                          tmp_path: Path, elsewhere: Path) -> None:
    (elsewhere / "4242").mkdir()  # what a sweep of start-up folders of dead processes would delete
    (elsewhere / "4242" / "keep.txt").write_text("mine")
    _plant(tmp_path / "work" / "startup", elsewhere)

    result = _run(staged, bucket)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["kyc-attach: cannot start: work folder: startup is a symbolic link; "
                                          "the run writes only into folders of its own (remove the link)"]
    assert (elsewhere / "4242" / "keep.txt").read_text() == "mine"
    assert _files_in(elsewhere) == [elsewhere / "4242" / "keep.txt"]
    assert _sent(fin_sandbox.url) == (0, 0)


@pytest.mark.slow
def test_a_run_refused_inside_the_flow_releases_its_run_id(
        prefect_harness: None, staged: str, bucket: str, fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """It lost the race for its customers' lease after the start-up gate: refused, and the run id stays free."""
    import flows.attach_flow as attach_flow

    real_lease = attach_flow.RunLease

    class TakenLease(real_lease):  # type: ignore[misc,valid-type]
        def acquire(self, *args: Any, **kwargs: Any) -> None:
            raise SetupError("report location: another run is working under it")

    monkeypatch.setattr(attach_flow, "RunLease", TakenLease)
    refused = _run(staged, bucket, "--run-id", "r1")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.splitlines()[-1] == "kyc-attach: cannot start: report location: another run is working " \
                                              "under it"
    assert _sent(fin_sandbox.url) == (0, 0)

    monkeypatch.setattr(attach_flow, "RunLease", real_lease)
    again = _run(staged, bucket, "--run-id", "r1")
    assert again.exit_code == 0, again.output
    assert _sent(fin_sandbox.url)[1] > 0


@pytest.mark.slow
def test_a_check_failing_after_documents_were_attached_is_not_cannot_start(
        prefect_harness: None, staged: str, bucket: str, fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    def refused_publish(*args: Any, **kwargs: Any) -> None:
        raise SetupError("reports/r1/rows.csv exists already and is never overwritten")

    monkeypatch.setattr(attach_flow, "publish_report", refused_publish)
    result = _run(staged, bucket, "--run-id", "r1")

    assert _sent(fin_sandbox.url)[1] > 0, "nothing was attached: nothing proved"
    assert result.exit_code == 3, result.output
    line = result.stderr.splitlines()[-1]
    assert "cannot start" not in line
    assert line == (f"kyc-attach: error: StoppedAfterSending: stopped after sending began (s3://{bucket}/reports/r1): "
                    "reports/r1/rows.csv exists already and is never overwritten")


@pytest.mark.slow
def test_a_refusal_inside_the_flow_is_one_line_on_stderr_without_a_traceback(
        prefect_harness: None, staged: str, bucket: str, fin_sandbox: Any, tmp_path: Path, elsewhere: Path) -> None:
    """A real process (Prefect logs to the process's own stderr), on the test's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    _plant(tmp_path / "work" / "runs" / "r1", elsewhere)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    args = [sys.executable, "-m", "flows.commands.cli", "run", staged, "--report-uri", f"s3://{bucket}/reports",
            "--run-id", "r1", "--no-progress"]

    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["kyc-attach: cannot start: work folder: runs/r1 is a symbolic link; the run "
                                         "writes only into folders of its own (remove the link)"]
    assert proc.stdout == ""

    debug = subprocess.run([*args, "--debug"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert _files_in(elsewhere) == []
    assert _sent(fin_sandbox.url) == (0, 0)


def test_report_open_never_writes_the_page_through_a_planted_link(bucket: str, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path, elsewhere: Path) -> None:
    from connectors.s3 import make_s3_client
    from flows.commands.report_command import find_report_page

    make_s3_client().put_object(Bucket=bucket, Key="reports/r1/report.html", Body=b"<html>the page</html>")
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    _plant(tmp_path / "work" / "report-pages", elsewhere)
    with pytest.raises(SetupError, match="work folder: report-pages is a symbolic link"):
        find_report_page(f"s3://{bucket}/reports/r1", fetch=True)
    assert _files_in(elsewhere) == []

    (tmp_path / "work" / "report-pages").unlink()
    (tmp_path / "work" / "report-pages").mkdir()
    (tmp_path / "work" / "report-pages" / "r1.html").symlink_to(elsewhere / "page.html")
    _, local = find_report_page(f"s3://{bucket}/reports/r1", fetch=True)
    assert local is not None and not local.is_symlink() and local.read_bytes() == b"<html>the page</html>"
    assert _files_in(elsewhere) == []


@pytest.mark.slow
def test_a_link_planted_at_the_local_ledger_folder_is_refused_before_anything_is_sent(
        prefect_harness: None, staged: str, bucket: str, fin_sandbox: Any, tmp_path: Path, elsewhere: Path) -> None:
    _plant(tmp_path / "work" / "ledger", elsewhere)

    result = _run(staged, bucket)

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == ("kyc-attach: cannot start: work folder: ledger is a symbolic link; "
                                              "the run writes only into folders of its own (remove the link)")
    assert _files_in(elsewhere) == []
    assert _sent(fin_sandbox.url) == (0, 0)
