"""report.html of a real run (sandbox + S3 + Prefect), opened in headless Chromium (Debian's package).

The page must draw every chart, show the counts summary.json has, and carry no personal data. Locally the test
is skipped when Chromium is not installed; CI installs it and sets KYC_TEST_REQUIRE_BROWSER=1 so it never skips
there.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.cli import app
from tests.support.legacy_archives import stage_archive
from tests.support.scenario import DemoScenario, api_env, load_world

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags the machine needs: no sandbox as root, and no background connections (the network is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _browser_or_skip() -> str:
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("KYC_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required here (KYC_TEST_REQUIRE_BROWSER=1) but not installed")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def _page_facts(page_path: Path) -> dict[str, Any]:
    """What a person sees: per chart, the SVG shapes with a visible size; the status tiles; the visible text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_browser_or_skip(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            charts = page.eval_on_selector_all("figure.chart", """figs => Object.fromEntries(figs.map(f => [
                f.dataset.chart,
                [...f.querySelectorAll('svg path, svg rect, svg use')].filter(e => {
                    const b = e.getBoundingClientRect(); return b.width > 0 || b.height > 0; }).length]))""")
            tiles = page.eval_on_selector_all(".tile", """ts => Object.fromEntries(ts.map(t => [
                t.dataset.status, t.querySelector('.n').textContent]))""")
            exit_code = page.get_attribute("[data-exit-code]", "data-exit-code")
            text = page.inner_text("body")
            requests = page.evaluate("performance.getEntriesByType('resource').length")
        finally:
            browser.close()
    return {"charts": charts, "tiles": tiles, "exit": exit_code, "text": text, "resources": requests}


def test_report_page_of_a_throttled_run_draws_its_charts_and_matches_the_summary(
    demo_scenario: Callable[..., DemoScenario], tmp_path: Path,
) -> None:
    _browser_or_skip()
    # The seeded random 429s make the run throttled whatever the machine's speed (seed 4 refuses the first upload
    # and 3 of the first 8; seed 5 refused none of the first 16); four attaches alone may all fit under the attach
    # limit, as they do when the attach limiter starts slowly.
    faults = {"seed": 4, "rate_limit": {"rps": 20, "burst": 2, "endpoints": ["attach"], "retry_after": False},
              "random_429": {"share": 0.2, "endpoints": ["upload"]},
              "errors": {"share": 0.1, "statuses": [503], "endpoints": ["upload"]}}
    scenario = demo_scenario(customers=4, faults=faults, KYC_ATTACH_MAX_ATTEMPTS="12")

    summary = scenario.run()

    store = ObjectStore(S3Store(make_s3_client()))
    run = Location.parse(summary["report"])
    page_path = tmp_path / "report.html"
    page_path.write_bytes(store.read(run.child("report.html")))
    timeline = json.loads(store.read(run.child("timeline.json")))
    assert page_path.stat().st_size < 1_000_000
    facts = _page_facts(page_path)

    assert facts["resources"] == 0  # self-contained: nothing fetched, no CDN
    assert set(facts["charts"]) == {"status", "reason", "timeline", "latency"}
    for name, marks in facts["charts"].items():
        assert marks >= 5, (name, marks)
    assert {k: int(v.replace(",", "")) for k, v in facts["tiles"].items()} == {
        s: summary["by_status"].get(s, 0) for s in ("attached", "skipped", "rejected", "failed", "unknown")}
    assert facts["exit"] == ("1" if summary["by_status"]["failed"] or summary["by_status"]["unknown"] else "0")
    seconds = timeline["seconds"].values()
    assert sum(s.get("requests", 0) for s in seconds) == sum(summary["api"]["requests"].values())
    assert sum(s.get("429", 0) for s in seconds) == summary["api"]["throttled_429"] > 0
    assert sum(s.get("rows", 0) for s in seconds) == summary["rows_in"]
    for reason in summary["by_reason"]:
        assert reason in facts["text"]
    # No personal data on the page: document numbers, emails, and the documents' S3 keys (they can carry names).
    secrets = {r[k] for r in scenario.rows for k in ("document_number", "associated_party_email", "s3_uri")
               if r.get(k)}
    html = page_path.read_text()
    assert not [s for s in secrets if s in html]


def test_retry_command_on_the_page_of_a_mapped_run_works(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """README: report.html gives 'the exact command to retry failed rows'. For a legacy archive run with
    `--mapping` (carrier_c: cp1252, ';'), the page's command leaves `--mapping` out (summary.json does not even
    record the mapping), so the person who copies it gets exit 2 ('the header reads as one field holding
    ;-separated names') instead of a retry."""
    archive, mapping, world, _ = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world, {"errors": {"share": 1.0, "statuses": [503], "endpoints": ["upload"]}})
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_MAX_ATTEMPTS="1")
    reports = f"s3://{bucket}/reports"
    first = CliRunner().invoke(app, ["run", archive, "--report-uri", reports, "--mapping", mapping,
                                     "--run-id", "m1", "--no-progress"])
    assert first.exit_code == 1, first.output
    page = ObjectStore(S3Store(make_s3_client())).read(Location(bucket, "reports/m1/report.html")).decode()
    commands = [html.unescape(c) for c in re.findall(r"kyc-attach run [^<]*--retry-failed m1", page)]
    assert commands, "no retry command on the page"
    load_world(fin_sandbox.url, world)  # the outage is over
    args = [*shlex.split(commands[0])[1:], "--no-progress"]
    retry = CliRunner().invoke(app, args)
    assert retry.exit_code != 2, f"the page's retry command does not start: {retry.stderr.strip()}"
