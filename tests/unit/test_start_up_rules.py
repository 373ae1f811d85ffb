"""Start-up rules that need no server: run ids, guarded deletes, start-up folders, settings, the S3 write policy's
defaults and the report's formula escaping."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.errors import SetupError
from connectors.guarded_delete import inside, remove_file, remove_tree
from connectors.report_store import assemble_report
from connectors.s3 import S3Store
from connectors.startup_scratch import startup_folder, sweep_orphans
from flows.settings import Settings, load_settings, without_user_info
from transforms.report import REPORT_SCHEMA
from transforms.run_ids import RUN_ID_MAX_LENGTH, run_id_problem

# -- run ids ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["20261129T134500Z-a1b2c3", "a", "Nightly_2026.11.29-retry", "9",
                                    "x" * RUN_ID_MAX_LENGTH, "corpus-real"])
def test_plain_run_ids_are_accepted(run_id: str) -> None:
    assert run_id_problem(run_id) is None


@pytest.mark.parametrize("run_id", ["", ".", "..", "../x", "../../etc", "/abs", "a/b", "a\\b", ".hidden", "-rf",
                                    "_x", "x" * (RUN_ID_MAX_LENGTH + 1), "a b", "run\x00id", "rün", "a\nb", "~",
                                    "s3://b/k"])
def test_run_ids_that_are_not_one_plain_segment_are_refused(run_id: str) -> None:
    problem = run_id_problem(run_id)
    assert problem is not None
    if len(run_id) >= 3:
        assert run_id not in problem  # the reason never repeats the value


# -- guarded deletes -------------------------------------------------------------------------------------------


def test_deletes_inside_the_work_folder_happen(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (root / "r1" / "parts").mkdir(parents=True)
    (root / "r1" / "parts" / "a.parquet").write_text("x")
    (root / "copy.csv").write_text("rows")
    remove_tree(root / "r1", root=root)
    remove_file(root / "copy.csv", root=root)
    remove_tree(root / "gone-already", root=root)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("target", ["..", ".", "../canary", "r1/../../canary", "/tmp"])
def test_deletes_outside_the_work_folder_or_of_the_folder_itself_are_refused(target: str, tmp_path: Path) -> None:
    root = tmp_path / "work" / "runs"
    root.mkdir(parents=True)
    canary = tmp_path / "work" / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("mine")
    with pytest.raises(SetupError, match="not inside the work folder"):
        remove_tree(root / target, root=root)
    with pytest.raises(SetupError, match="not inside the work folder"):
        remove_file(root / target, root=root)
    assert (canary / "keep.txt").read_text() == "mine" and root.is_dir()


def test_a_symlink_out_of_the_work_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (root / "r1").symlink_to(outside)
    with pytest.raises(SetupError):
        inside(root / "r1", root)
    with pytest.raises(SetupError):
        remove_tree(root / "r1", root=root)
    assert (outside / "keep.txt").exists()


# -- start-up folders ------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def test_start_up_folder_goes_on_an_error_and_orphans_are_swept(tmp_path: Path) -> None:
    orphan = tmp_path / "startup" / str(_dead_pid())
    (orphan / "manifests").mkdir(parents=True)
    (orphan / "manifests" / "m.csv").write_text("rows of a killed run")
    stray = tmp_path / "startup" / "not-a-pid"
    stray.mkdir()
    with pytest.raises(RuntimeError), startup_folder(tmp_path) as folder:
        assert not orphan.exists() and not stray.exists()
        assert folder == tmp_path / "startup" / str(os.getpid())
        (folder / "manifests").mkdir()
        (folder / "manifests" / "m.csv").write_text("rows")
        raise RuntimeError("start-up failed")
    assert not folder.exists()


def test_sweep_keeps_the_folders_of_running_processes(tmp_path: Path) -> None:
    mine = tmp_path / "startup" / str(os.getpid())
    mine.mkdir(parents=True)
    assert sweep_orphans(tmp_path / "startup") == []
    assert mine.is_dir()


# -- settings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "line"), [
    ("KYC_ATTACH_MAX_FILE_BYTES", "100k",
     "setting KYC_ATTACH_MAX_FILE_BYTES: Input should be a valid integer, unable to parse string as an integer"),
    ("KYC_ATTACH_ALLOWED_BUCKETS", "notjson", "setting KYC_ATTACH_ALLOWED_BUCKETS: the value is not valid JSON"),
    ("KYC_ATTACH_S3_SSE", "", "setting KYC_ATTACH_S3_SSE: Input should be 'AES256' or 'aws:kms'"),
    ("KYC_ATTACH_S3_SSE", "AES-256", "setting KYC_ATTACH_S3_SSE: Input should be 'AES256' or 'aws:kms'"),
    ("KYC_ATTACH_S3_SSE", "aes256", "setting KYC_ATTACH_S3_SSE: Input should be 'AES256' or 'aws:kms'"),
    ("KYC_ATTACH_RATE_LIMIT_RPS", "0", "setting KYC_ATTACH_RATE_LIMIT_RPS: Input should be greater than 0"),
    ("KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS", "attach=10",
     "setting KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS: the value is not valid JSON"),
    ("KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS", '{"attachments": 10}',
     "setting KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS: Input should be 'token', 'customer', 'upload' or 'attach'"),
    ("KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS", '{"attach": 0}',
     "setting KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS: Input should be greater than or equal to 0.01"),
    ("KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS", '{"attach": 1e999}',
     "setting KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS: Input should be a finite number"),
    ("KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK", "Fin Secret",
     "setting KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK: Value error, a block name has lowercase letters, digits and "
     "dashes only"),
])
def test_a_malformed_setting_is_one_line_naming_the_variable(name: str, value: str, line: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SetupError) as caught:
        load_settings()
    assert str(caught.value) == line


def test_a_secret_block_stands_for_fin_client_secret_and_its_name_goes_to_shard_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.fanout import secret_block_env

    monkeypatch.setenv("FIN_CLIENT_ID", "client")
    monkeypatch.delenv("FIN_CLIENT_SECRET", raising=False)
    with pytest.raises(SetupError, match=r"^FIN_CLIENT_SECRET is not set$"):
        load_settings().require_api_credentials()
    assert secret_block_env(load_settings()) is None
    monkeypatch.setenv("KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK", "fin-client-secret")
    settings = load_settings()
    settings.require_api_credentials()
    assert settings.has_credentials()
    assert secret_block_env(settings) == {"env": {"KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK": "fin-client-secret"}}


def test_the_aws_credentials_block_names_go_to_shard_runs_and_a_bad_name_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.fanout import secret_block_env

    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS", "legacy-archive")
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_REPORT", "reports-writer")
    assert secret_block_env(load_settings()) == {"env": {
        "KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS": "legacy-archive",
        "KYC_ATTACH_AWS_CREDENTIALS_BLOCK_REPORT": "reports-writer"}}
    monkeypatch.setenv("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_MANIFEST", "Not A Block")
    with pytest.raises(SetupError, match=r"KYC_ATTACH_AWS_CREDENTIALS_BLOCK_MANIFEST: .*lowercase") as caught:
        load_settings()
    assert "Not A Block" not in str(caught.value)


def test_a_rate_name_that_reads_as_another_names_sending_runs_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its shard runs would carry, from their creation, the tag the runs of the shorter name count as sending."""
    monkeypatch.setenv("KYC_ATTACH_RATE_LIMIT_NAME", "fin:sending")
    with pytest.raises(SetupError, match=r"KYC_ATTACH_RATE_LIMIT_NAME: .*ends with ':sending'"):
        load_settings()
    monkeypatch.setenv("KYC_ATTACH_RATE_LIMIT_NAME", "fin:sending-eu")
    assert load_settings().rate_limit_name == "fin:sending-eu"


def test_without_credentials_blocks_the_cli_does_not_import_prefect_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from flows.stores import make_store

    monkeypatch.delitem(sys.modules, "prefect_aws", raising=False)
    make_store(load_settings())
    assert "prefect_aws" not in sys.modules


def test_a_tighter_limit_for_one_endpoint_is_read_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS", '{"attach": 10, "upload": 45.5}')
    assert load_settings().endpoint_rate_limits_rps == {"attach": 10.0, "upload": 45.5}


@pytest.mark.parametrize("sse", ["AES256", "aws:kms"])
def test_both_encryption_modes_are_accepted(sse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYC_ATTACH_S3_SSE", sse)
    assert load_settings().s3_sse == sse


@pytest.mark.parametrize(("url", "shown"), [
    ("https://ops:hunter2@api.fin.com/v1", "https://api.fin.com/v1"),
    ("https://token@api.fin.com", "https://api.fin.com"),
    ("http://u:p@127.0.0.1:8700", "http://127.0.0.1:8700"),
    ("https://api.fin.com", "https://api.fin.com"),
    ("s3://bucket/work", "s3://bucket/work"),
    ("not a url", "not a url"),
])
def test_urls_are_shown_without_user_info(url: str, shown: str) -> None:
    assert without_user_info(url) == shown


def test_public_settings_never_show_url_user_info_or_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIN_API_URL", "https://ops:hunter2@api.fin.com")
    monkeypatch.setenv("FIN_CLIENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("KYC_ATTACH_WORK_URI", "s3://u:p@bucket/work")
    public = Settings().public_dict()
    text = repr(public)
    assert public["api_url"] == "https://api.fin.com"
    assert "hunter2" not in text and "ops" not in text and "s3cr3t" not in text and "u:p@" not in text


# -- the S3 write policy's defaults ----------------------------------------------------------------------------


class _PutRecorder:
    """Stands in for a boto3 client: records what ``put_object`` is sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def put_object(self, **kw: Any) -> dict[str, Any]:
        self.sent.append(kw)
        return {}


def test_default_settings_write_every_object_encrypted_with_aes256(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.stores import make_s3_store

    monkeypatch.delenv("KYC_ATTACH_S3_SSE", raising=False)
    store = make_s3_store(Settings())
    rec = _PutRecorder()
    store.client = rec
    store.put("b", "reports/r1/summary.json", b"{}", content_type="application/json", overwrite=False)
    store.put("b", "_ledger/j/seg-1.jsonl", b"x", content_type="application/json", overwrite=True)
    assert [kw["ServerSideEncryption"] for kw in rec.sent] == ["AES256", "AES256"]
    assert "SSEKMSKeyId" not in rec.sent[0]
    assert rec.sent[0]["IfNoneMatch"] == "*" and "IfNoneMatch" not in rec.sent[1]


def test_the_store_on_its_own_defaults_to_aes256_too() -> None:
    rec = _PutRecorder()
    S3Store(rec).put("b", "k", b"x", content_type="text/plain", overwrite=False)
    assert rec.sent[0]["ServerSideEncryption"] == "AES256"


# -- the report's formula escaping -----------------------------------------------------------------------------


def test_assemble_report_escapes_formula_cells_in_csv_and_keeps_parquet_raw(tmp_path: Path) -> None:
    cells = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "plain", "a=b", None]
    n = len(cells)
    part = pa.table({
        "row_number": list(range(n, 0, -1)),  # out of order: the report sorts by row number
        "customer_id": cells, "associated_party_id": [None] * n, "document_type": ["OTHER"] * n,
        "side": [None] * n, "s3_uri": ["s3://b/k.pdf"] * n, "status": ["rejected"] * n,
        "reason_code": ["bad_uuid"] * n, "message": cells[::-1], "uri": [None] * n,
        "http_status": [None] * n, "attempts": [0] * n,
    }, schema=REPORT_SCHEMA)
    pq.write_table(part, tmp_path / "part.parquet")

    parquet_path, csv_path, table = assemble_report([tmp_path / "part.parquet", tmp_path / "absent.parquet"],
                                                    tmp_path / "out")

    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_number = {int(r["row_number"]): r for r in rows}
    expected = {"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")", "+1": "'+1", "-2": "'-2",
                "@SUM(A1)": "'@SUM(A1)", "\tTAB": "'\tTAB", "\rCR": "'\rCR", "plain": "plain", "a=b": "a=b", None: ""}
    for i, cell in enumerate(cells):
        assert by_number[n - i]["customer_id"] == expected[cell], cell
    assert [r["row_number"] for r in rows] == [str(i) for i in range(1, n + 1)]
    # The Parquet report keeps the values as they were: escaping is for spreadsheets only.
    assert sorted(pq.read_table(parquet_path).column("customer_id").to_pylist(), key=str) == sorted(cells, key=str)
    assert table.num_rows == n


@pytest.mark.parametrize("sse", ["", "AES-256", "aes256", "none"])
def test_the_store_refuses_to_write_unencrypted_or_with_a_typo(sse: str) -> None:
    with pytest.raises(SetupError, match="must be AES256 or aws:kms"):
        S3Store(_PutRecorder(), sse=sse)


# -- the S3 work area's deletes and the claim on a local report folder --------------------------------------------


@pytest.mark.parametrize("run_id", ["..", "../other-run", "a/b", ""])
def test_the_s3_work_area_of_a_hostile_run_id_is_refused(run_id: str) -> None:
    from connectors.objects import ObjectStore
    from connectors.s3_workarea import S3WorkArea

    with pytest.raises(SetupError, match="run id: the value"):
        S3WorkArea.for_run(ObjectStore(None), "s3://bucket/work", run_id)


def test_the_s3_work_area_never_deletes_at_a_bucket_root() -> None:
    from connectors.objects import ObjectStore
    from connectors.s3 import Location
    from connectors.s3_workarea import S3WorkArea

    with pytest.raises(SetupError, match="root of a bucket"):
        S3WorkArea(ObjectStore(None), Location("bucket", "")).remove_shard_rows()


def test_a_claim_is_accepted_again_by_its_own_token_only(tmp_path: Path) -> None:
    from connectors.objects import ObjectStore
    from connectors.run_claim import CLAIM_NAME, claim_run
    from connectors.s3 import Location

    store, prefix = ObjectStore(None), Location(None, str(tmp_path / "reports" / "r1"))
    claim_run(store, prefix, run_id="r1", token="t-cli", started_at="2026-11-29T14:00:00+00:00")
    claim_run(store, prefix, run_id="r1", token="t-cli", started_at="2026-11-29T14:00:05+00:00")  # the flow, after
    with pytest.raises(SetupError, match=r"another run claimed it \(started 2026-11-29T14:00:00\+00:00\)"):
        claim_run(store, prefix, run_id="r1", token="t-other", started_at="2026-11-29T14:01:00+00:00")
    assert [p.name for p in (tmp_path / "reports" / "r1").iterdir()] == [CLAIM_NAME]


def test_a_claim_after_a_published_report_is_refused(tmp_path: Path) -> None:
    from connectors.objects import ObjectStore
    from connectors.run_claim import claim_run
    from connectors.s3 import Location

    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "summary.json").write_text("{}")
    with pytest.raises(SetupError, match="a report exists already"):
        claim_run(ObjectStore(None), Location(None, str(tmp_path / "r1")), run_id="r1", token="t", started_at="now")
