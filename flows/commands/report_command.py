"""``kyc-attach report RUN_URI``: find a run's ``report.html``, and copy it here to open it (wiring only)."""

from __future__ import annotations

from pathlib import Path

from connectors.errors import SetupError
from connectors.s3 import Location
from connectors.work_folder import own_folder
from flows.progress import report_link
from flows.settings import load_settings
from flows.stores import make_store


def find_report_page(run_uri: str, *, fetch: bool) -> tuple[str, Path | None]:
    """The page's location and link (one line for a person), and with ``fetch`` a local file to open.

    ``SetupError`` when no page is there (a run that did not finish, or a run id typed wrong).
    """
    settings = load_settings()
    loc = Location.parse(run_uri).child("report.html")
    store = make_store(settings, s3=loc.is_s3, roles=())
    if not store.exists(loc):
        raise SetupError(f"report: no report.html under {run_uri} (did the run finish? is the run id right?)")
    if not loc.is_s3:
        path = Path(loc.key).resolve()
        return str(path), path
    where = f"{loc}  {report_link(str(loc))}"
    if not fetch:
        return where, None
    # An S3 page is copied down: browsers do not open s3:// and a presigned URL is a credential best not printed.
    local = own_folder(settings.work_dir, "report-pages") / f"{Path(loc.key).parent.name}.html"
    local.unlink(missing_ok=True)  # a link left under the page's name is replaced, never written through
    local.write_bytes(store.read(loc))
    return where, local
