"""``report.html``: one self-contained page a person reads after a run (pure: summary + timeline in, HTML out).

Charts are matplotlib figures written as inline SVG. Why matplotlib and not Vega-Altair: a self-contained Altair
page inlines the Vega, Vega-Lite and vega-embed bundles (~1 MB of JavaScript) before any data, which alone breaks
the page's 1 MB budget, and it draws nothing where scripts are blocked (mail previews, locked-down browsers).
Static SVG needs no script, no CDN and no network, opens from S3 or a laptop alike, and weighs tens of KB.

The page holds counts, reason codes, timings, settings and ids of runs; never a document number, an email, a
name, a token or an S3 key of a document (the summary it is made from holds none of these).
"""

from __future__ import annotations

import html
import io
import pathlib
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from transforms.codes import REASON_MEANINGS, Reason, Status

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from transforms.run_timeline import REQUESTS, ROWS, SERVER_ERRORS, THROTTLED, Timeline, latency_percentiles, series

_STATUS_COLOURS = {
    Status.attached.value: "#2e7d32",
    Status.skipped.value: "#78909c",
    Status.rejected.value: "#ef6c00",
    Status.failed.value: "#c62828",
    Status.unknown.value: "#6a1b9a",
}
_SVG_RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "kyc-attach", "font.size": 9}
_XML_HEAD = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _svg(fig: Figure) -> str:
    """A figure as an inline ``<svg>`` element (no XML prolog, no doctype), text kept as text."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_SVG_RC):  # type: ignore[arg-type]  # keys are checked as Literals
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    # The RDF metadata block names the SVG's licence vocabulary by URL: bytes a reader never sees.
    return _METADATA.sub("", _XML_HEAD.sub("", buf.getvalue(), count=1), count=1)


def _bars(labels: Sequence[str], values: Sequence[float], colours: Sequence[str], *, horizontal: bool,
          xlabel: str) -> str:
    from matplotlib.figure import Figure  # here, not at module level: only a report page needs matplotlib
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, max(1.6, 0.32 * len(labels) + 0.6)) if horizontal else (6.4, 2.6))
    ax = fig.add_subplot()
    if horizontal:
        bars = ax.barh(list(labels), list(values), color=list(colours))
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
    else:
        bars = ax.bar(list(labels), list(values), color=list(colours))
        ax.set_ylabel(xlabel)
    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    ax.bar_label(bars, labels=[f"{int(v):,}" for v in values], padding=2, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.12) if horizontal else ax.margins(y=0.15)
    return _svg(fig)


def _over_time(tl: Timeline) -> str:
    s = series(tl)
    width = s["bin_s"][0]
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9.6, 3.0))
    ax = fig.add_subplot()
    ax.plot(s["t"], s[REQUESTS], color="#1565c0", linewidth=1.2, label="API requests / s")
    ax.plot(s["t"], s[ROWS], color="#2e7d32", linewidth=1.2, label="rows settled / s")
    for name, colour, marker, label in ((THROTTLED, "#f9a825", "v", "429 / s"),
                                        (SERVER_ERRORS, "#c62828", "x", "5xx / s")):
        points = [(t, v) for t, v in zip(s["t"], s[name], strict=True) if v > 0]
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], color=colour, marker=marker, s=14,
                       label=label, zorder=3)
    ax.set_xlabel(f"seconds since the first event (bins of {width:g} s)")
    ax.set_ylabel("per second")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _latency_chart(pcts: Mapping[str, Mapping[str, float]]) -> str:
    endpoints = list(pcts)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 2.6))
    ax = fig.add_subplot()
    keys = ("p50", "p90", "p99")
    step = 0.8 / len(keys)
    for i, key in enumerate(keys):
        xs = [j + (i - 1) * step for j in range(len(endpoints))]
        ax.bar(xs, [pcts[e].get(key, 0.0) for e in endpoints], width=step, label=key)
    ax.set_xticks(range(len(endpoints)), endpoints)
    ax.set_ylabel("ms")
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]], *, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header or ())
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if value < 1000 else f"{value:,.0f}"
    return str(value)


def _chart(name: str, title: str, svg: str) -> str:
    return f'<figure class="chart" data-chart="{name}"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'


def retry_commands(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a person runs next for failed and unknown rows, as (when, command); arguments shell-quoted."""
    by_status = summary.get("by_status", {})
    # in hashed report mode the summary holds the manifest's and the mapping's digests, which no command can read
    hashed = (summary.get("settings") or {}).get("report_s3_uri") == "hashed"
    base = ["kyc-attach", "run", (not hashed and summary.get("manifest")) or "MANIFEST", "--report-uri",
            summary.get("report_root") or "REPORT_PREFIX"]
    if summary.get("mapping"):
        base += ["--mapping", "MAPPING" if hashed else str(summary["mapping"])]
    run_id = str(summary.get("run_id", "RUN_ID"))
    out = []
    if by_status.get("failed"):
        out.append((f"{by_status['failed']:,} rows failed: work them again (nothing attached is sent twice)",
                    shlex.join([*base, "--retry-failed", run_id])))
    if by_status.get("unknown"):
        out.append((f"{by_status['unknown']:,} rows unknown: check the parties at Fin first (README, exactly once); "
                    "then, only if their documents are not there",
                    shlex.join([*base, "--resend-unknown"])))
    return out


def page_link(location: str, s3_endpoint: str | None) -> str:
    """Where a person opens a report object: the AWS console for AWS, the endpoint's own URL for another S3
    server (path style), a ``file://`` URL for an absolute local path (the caller resolves a relative one).
    Never a presigned URL (it is a credential)."""
    if not location.startswith("s3://"):
        path = pathlib.PurePosixPath(location)
        return path.as_uri() if path.is_absolute() else location
    bucket, _, key = location[5:].partition("/")
    if s3_endpoint:
        return f"{s3_endpoint.rstrip('/')}/{bucket}/{key}"
    return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"


def render_report_page(summary: Mapping[str, Any], timeline: Timeline, *, exit_code: int) -> str:
    """The whole page as one HTML string (inline CSS and SVG, no script, no external resource)."""
    by_status = {s.value: int(summary.get("by_status", {}).get(s.value, 0)) for s in Status}
    by_reason = sorted(((k, int(v)) for k, v in summary.get("by_reason", {}).items()), key=lambda kv: (-kv[1], kv[0]))
    pcts = latency_percentiles(timeline)
    run_id = str(summary.get("run_id", ""))
    tiles = "".join(
        f'<div class="tile" data-status="{s}" style="border-color:{_STATUS_COLOURS[s]}">'
        f'<div class="n" data-count="{n}">{n:,}</div><div>{s}</div></div>' for s, n in by_status.items()
    )
    charts = [_chart("status", "Rows by status",
                     _bars(list(by_status), list(by_status.values()), [_STATUS_COLOURS[s] for s in by_status],
                           horizontal=False, xlabel="rows"))]
    if by_reason:
        top = by_reason[:15]
        charts.append(_chart("reason", "Rows by reason (top 15)",
                             _bars([k for k, _ in top], [v for _, v in top], ["#5c6bc0"] * len(top),
                                   horizontal=True, xlabel="rows")))
    if timeline.seconds:
        charts.append(_chart("timeline", "Rows settled and API requests per second, 429s and 5xx marked",
                             _over_time(timeline)))
    if pcts:
        charts.append(_chart("latency", "API latency percentiles per endpoint", _latency_chart(pcts)))

    reasons_rows = [(k, v, REASON_MEANINGS.get(Reason(k), "") if k in Reason.__members__ else "")
                    for k, v in by_reason[:20]]
    latency_rows = [(e, int(p["requests"]), p.get("p50"), p.get("p90"), p.get("p99"), p.get("max"))
                    for e, p in pcts.items()]
    shards = sorted((summary.get("shard_seconds") or {}).items(), key=lambda kv: -kv[1])[:10]
    api = summary.get("api") or {}
    settings = sorted((summary.get("settings") or {}).items())
    commands = retry_commands(summary)
    next_steps = "".join(f"<p>{html.escape(when)}:</p><pre>{html.escape(cmd)}</pre>" for when, cmd in commands) \
        or "<p>Nothing to retry: no row failed and no outcome is unknown.</p>"
    facts = [("run id", run_id), ("exit code", exit_code), ("rows in the manifest", summary.get("rows_in", 0)),
             ("counts add up", summary.get("counts_add_up")), ("dry run", bool(summary.get("dry_run"))),
             ("seconds", summary.get("seconds")), ("shards", summary.get("shards")),
             ("API requests", sum((api.get("requests") or {}).values())), ("429 answers", api.get("throttled_429", 0)),
             ("stopped early", summary.get("stopped_early") or "no")]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kyc-attach run {html.escape(run_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1040px;color:#212121;padding:0 12px}}
h1{{font-size:20px}} h2{{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}}
.tiles{{display:flex;gap:10px;flex-wrap:wrap}} .tile{{border-left:6px solid;padding:6px 12px;background:#fafafa}}
.tile .n{{font-size:22px;font-weight:600}} .charts{{display:flex;flex-wrap:wrap;gap:16px}}
figure.chart{{margin:0}} figcaption{{font-weight:600;margin-bottom:4px}} svg{{max-width:100%;height:auto}}
table{{border-collapse:collapse;margin:6px 0}} td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}
pre{{background:#f5f5f5;padding:8px;overflow-x:auto}} .exit{{font-weight:600}}
</style></head><body>
<h1>kyc-attach run <code>{html.escape(run_id)}</code>
<span class="exit" data-exit-code="{exit_code}">exit {exit_code}</span></h1>
<div class="tiles">{tiles}</div>
<h2>Run</h2>{_table(None, facts, cls="facts")}
<h2>Charts</h2><div class="charts">{"".join(charts)}</div>
<h2>Rejected, failed and unknown rows by reason</h2>{_table(("reason", "rows", "meaning"), reasons_rows, cls="reasons")}
<h2>What to do next</h2>{next_steps}
<p>Row by row: <code>rows.csv</code> / <code>rows.parquet</code> next to this page.</p>
<h2>API latency</h2>{_table(("endpoint", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"), latency_rows)}
<h2>Slowest shards</h2>{_table(("shard", "seconds"), shards)}
<h2>Settings</h2>{_table(("setting", "value"), settings, cls="settings")}
</body></html>
"""
