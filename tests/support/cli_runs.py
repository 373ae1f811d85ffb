"""Runs of ``kyc-attach run`` in child processes, as operators start them, and what their lease shows on S3."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET
from tests.support.scenario import release_held, sandbox_record
from transforms.lease_rules import Lock


def child_env(sandbox_url: str, work: Path, **extra: str) -> dict[str, str]:
    """A child run's environment: the sandbox, a private work folder, this session's Prefect server and S3."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env.update({
        "FIN_API_URL": sandbox_url, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
        "KYC_ATTACH_WORK_DIR": str(work), "KYC_ATTACH_RATE_LIMIT_RPS": "500", "KYC_ATTACH_SETTLE_DELAY_S": "0.05",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()), **extra,
    })
    return env


def start_run(manifest: str, report_uri: str, run_id: str, env: dict[str, str],
              wrapper: Sequence[str] = ()) -> subprocess.Popen[str]:
    """``kyc-attach run`` in a child process (behind ``wrapper``: ``unshare ...``, ``faketime ...``)."""
    cmd = [*wrapper, sys.executable, "-m", "flows.commands.cli", "run", manifest, "--report-uri", report_uri,
           "--run-id", run_id, "--no-progress"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lease_holders(ledger: Location) -> dict[str, str]:
    """Partition -> run id, of every partition lock under a ledger."""
    store = ObjectStore(S3Store(make_s3_client()))
    held: dict[str, str] = {}
    for loc in store.list(ledger.child("_lease", "partitions")):
        found = store.read_if_present(loc)
        lock = Lock.parse(found[0]) if found else None
        if lock is not None:
            held[Path(loc.key).stem] = lock.run_id
    return held


def wait_for(condition: Callable[[], bool], *, running: Sequence[subprocess.Popen[str]], timeout: float = 180,
             what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fails if a process of ``running`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        ended = [p for p in running if p.poll() is not None]
        if ended:
            try:
                _, err = ended[0].communicate(timeout=30)
            except subprocess.TimeoutExpired:  # a process it left behind holds the pipe open
                err = "(its output pipe is still held open)"
            raise AssertionError(f"a run ended (exit {ended[0].returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def stderr_once_ended(run: subprocess.Popen[str], sandbox_url: str) -> str:
    """The stderr of a run started beside one the sandbox's gate holds, once it has ended; a run held at the gate
    too (it started while the first was working) is let through first."""
    try:
        _, err = run.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        release_held(sandbox_url)
        _, err = run.communicate(timeout=300)
    return err


def check_refused_beside_first(first: subprocess.Popen[str], second: subprocess.Popen[str], second_err: str,
                               sandbox_url: str) -> None:
    """The second run did not start (exit 2, its one line naming run ``one``) and the first, released, finished
    alone: something attached, nothing attached twice."""
    _, first_err = first.communicate(timeout=300)
    assert second.returncode == 2, second_err[-2000:]
    assert "run one is working on customers of this manifest" in second_err
    assert first.returncode == 0, first_err[-2000:]
    record = sandbox_record(sandbox_url)
    assert len(record["attachments"]) > 0
    assert record["duplicates"]["attachments"] == 0, (
        f"{record['duplicates']['attachments']} documents attached twice by two overlapping runs")
