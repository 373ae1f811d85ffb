"""One real run and one dry run of the whole flow over the hostile corpus, shared by the corpus and leak tests.

Both runs happen with every logger at DEBUG and everything logged captured to a file, so the leak test can
read what a maximally verbose run writes. Running the flow once for all cases keeps the suite fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.helpers import MAX_FILE_BYTES, CorpusRun, corpus_files, corpus_rows, manifest_bytes, world

# Every logger a run may write through, set to DEBUG for the capture (root catches everything that propagates).
VERBOSE_LOGGERS = ("", "httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3", "prefect", "kyc_attach",
                   "connectors", "flows", "transforms", "asyncio")


@contextlib.contextmanager
def _debug_capture(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    saved = []
    for name in VERBOSE_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)  # on each: prefect's loggers do not propagate to the root
    try:
        yield
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


def point_run_at_sandbox(mp: pytest.MonkeyPatch, sandbox_url: str, world: dict[str, Any], work_dir: Path) -> None:
    """Settings for a run against the sandbox: its URL, the world's API client, a private work folder."""
    mp.setenv("FIN_API_URL", sandbox_url)
    mp.setenv("FIN_CLIENT_ID", world["clients"][0]["client_id"])
    mp.setenv("FIN_CLIENT_SECRET", world["clients"][0]["client_secret"])
    mp.setenv("KYC_ATTACH_WORK_DIR", str(work_dir))


@pytest.fixture()
def corpus_api_url(fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The sandbox's URL, with the corpus world loaded (its record emptied) and the run's settings pointed at it."""
    from tests.support.scenario import load_world

    w = world()
    load_world(fin_sandbox.url, w)
    point_run_at_sandbox(monkeypatch, fin_sandbox.url, w, tmp_path / "work")
    url: str = fin_sandbox.url
    return url


@pytest.fixture(scope="session")
def corpus_run(prefect_harness: None, fin_sandbox: Any, s3_endpoint: str,
               tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    import flows.attach_flow as attach_flow
    from connectors.objects import ObjectStore
    from connectors.s3 import Location, S3Store, make_s3_client
    from tests.support.scenario import load_world, sandbox_record

    tmp = tmp_path_factory.mktemp("corpus")
    bucket = f"hostile-{uuid.uuid4().hex[:10]}"
    client = make_s3_client()
    client.create_bucket(Bucket=bucket)
    rows = corpus_rows(bucket)
    store = ObjectStore(S3Store(client))
    for key, data in corpus_files(rows, bucket).items():
        store.write(Location(bucket, key), data)
    store.write(Location(bucket, "manifests/corpus.csv"), manifest_bytes(bucket))
    manifest = f"s3://{bucket}/manifests/corpus.csv"
    w = world()
    load_world(fin_sandbox.url, w)

    clients: list[Any] = []
    from flows import runtime  # the run's client is built there (runtime.run_mode)

    real_fin_client = runtime.fin_client

    @contextlib.asynccontextmanager
    async def spying_fin_client(settings: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with real_fin_client(settings, **kwargs) as fin:
            clients.append(fin)
            yield fin

    log_path = tmp / "debug.log"
    with pytest.MonkeyPatch.context() as mp:
        point_run_at_sandbox(mp, fin_sandbox.url, w, tmp / "work")
        mp.setenv("KYC_ATTACH_RATE_LIMIT_RPS", "500")
        mp.setenv("KYC_ATTACH_MAX_FILE_BYTES", str(MAX_FILE_BYTES))
        mp.setenv("KYC_ATTACH_ALLOWED_BUCKETS", f'["{bucket}/docs/"]')
        mp.setenv("KYC_ATTACH_SETTLE_DELAY_S", "0.05")
        mp.setenv("KYC_ATTACH_LEDGER_URI", f"s3://{bucket}/ledger/")
        mp.setattr(runtime, "fin_client", spying_fin_client)
        with _debug_capture(log_path):
            real = asyncio.run(attach_flow.run_attach(manifest, f"s3://{bucket}/reports", run_id="corpus-real"))
            record = sandbox_record(fin_sandbox.url)
            dry = asyncio.run(attach_flow.run_attach(manifest, f"s3://{bucket}/reports", run_id="corpus-dry",
                                                          dry_run=True))
    tokens = []
    for fin in clients:
        token = getattr(fin, "_token", None)
        if token is not None:
            tokens += [t for t in (token.access, token.refresh) if t]
    return CorpusRun(bucket, rows, real, dry, record, log_path, tmp / "work", tokens,
                     w["clients"][0]["client_secret"])


@pytest.fixture()
def staged(demo_scenario: Any) -> str:
    """Two customers' demo documents: the world in the sandbox, files and manifest on S3, the run pointed at both;
    the manifest's uri."""
    manifest: str = demo_scenario(customers=2).manifest
    return manifest
