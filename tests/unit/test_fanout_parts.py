"""The pure parts of the fan-out: shard run parameters, the work area's layout, merging API statistics."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.rate_share import RateShare
from connectors.s3 import Location
from connectors.s3_workarea import S3WorkArea
from flows.fanout import FanOutResult, ShardJob, merge_api_stats
from transforms.codes import Reason


def test_shard_job_is_references_only_and_round_trips_as_json() -> None:
    job = ShardJob(run_id="r1", shard="b0000-0010", rows_uri="s3://w/r1/rows/b0000-0010.arrow",
                   work_prefix="s3://w/r1", part_uri="s3://w/r1/parts/b0000-0010.parquet",
                   ledger_root="s3://rep/_ledger/j", run_date=date(2024, 5, 1),
                   rate_share=RateShare(tag="kyc-attach-rate:fin", total_rps=10.0, expected_runs=4))
    assert ShardJob.model_validate(job.model_dump(mode="json")) == job
    with pytest.raises(ValueError):
        ShardJob.model_validate({**job.model_dump(mode="json"), "client_secret": "x"})


def test_work_area_layout_and_s3_only() -> None:
    store = ObjectStore(None)
    work = S3WorkArea.for_run(store, "s3://work/kyc", "r1")
    assert str(work.part("b1")) == "s3://work/kyc/r1/parts/b1.parquet"
    assert str(work.result("b1")) == "s3://work/kyc/r1/results/b1.json"
    with pytest.raises(SetupError):
        S3WorkArea(store, Location.parse("/tmp/work"))
    with pytest.raises(SetupError):
        S3WorkArea.for_run(store, None, "r1")


def test_a_shard_run_stopped_by_a_refused_ledger_write_tells_the_parent_not_to_compact() -> None:
    def result(shard: str, stop: str | None, code: str | None) -> dict[str, object]:
        return {"shard": shard, "api": {}, "stopped_early": stop, "stop_code": code}

    lease_lost = result("b1", "stopped: the run's lease was lost", Reason.lease_lost.value)
    refused = result("b2", "stopped: the ledger's store refused a write (SlowDown)", Reason.ledger_unavailable.value)
    merged = FanOutResult.merged([result("b0", None, None), lease_lost, refused])
    assert merged.store_refused and merged.stopped_early == lease_lost["stopped_early"]
    assert not FanOutResult.merged([result("b0", None, None), lease_lost]).store_refused
    # halted by its lost lease first, then refused by the ledger's store: its stop code is the lease's
    assert FanOutResult.merged([{**lease_lost, "store_refused": True}]).store_refused
    assert not FanOutResult.merged([{**refused, "store_refused": False}]).store_refused  # the flag, where written
    # a result written by a shard run of an older release, without a stop code
    assert not FanOutResult.merged([{"shard": "b0", "api": {}, "stopped_early": "stopped"}]).store_refused


def test_merge_api_stats_sums_counts_weights_means_keeps_slowest() -> None:
    a = {"throttled_429": 1, "requests": {"attach": 2}, "statuses": {"200": 2, "429": 1},
         "mean_seconds": {"attach": 0.1}, "slowest_seconds": {"attach": 0.2}}
    b = {"throttled_429": 0, "requests": {"attach": 6, "upload": 1}, "statuses": {"200": 7},
         "mean_seconds": {"attach": 0.5, "upload": 1.0}, "slowest_seconds": {"attach": 0.9, "upload": 1.0}}
    merged = merge_api_stats([a, {}, b])
    assert merged["throttled_429"] == 1
    assert merged["requests"] == {"attach": 8, "upload": 1}
    assert merged["statuses"] == {"200": 9, "429": 1}
    assert merged["mean_seconds"] == {"attach": 0.4, "upload": 1.0}
    assert merged["slowest_seconds"] == {"attach": 0.9, "upload": 1.0}
    assert merge_api_stats([{}, {}]) == {}


def test_merge_api_stats_adds_the_rate_buckets_and_the_429_share() -> None:
    a = {"throttled_429": 3, "requests": {"upload": 20}, "throttled_seconds": 4.0,
         "per_10s": [{"from_s": 0, "requests": 15, "429": 3}, {"from_s": 10, "requests": 5, "429": 0}]}
    b = {"throttled_429": 1, "requests": {"upload": 20}, "throttled_seconds": 1.5,
         "per_10s": [{"from_s": 0, "requests": 20, "429": 1}]}
    merged = merge_api_stats([a, b])
    assert merged["per_10s"] == [{"from_s": 0, "requests": 35, "429": 4}, {"from_s": 10, "requests": 5, "429": 0}]
    assert merged["share_429"] == 0.1
    assert merged["throttled_seconds"] == 4.0


def test_a_refused_delete_of_the_shards_rows_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    from flows.fanout import _remove_shard_rows

    class NoDeleteRight(S3WorkArea):
        def remove_shard_rows(self) -> int:
            raise PermissionError("AccessDenied")

    work = NoDeleteRight(ObjectStore(None), Location.parse("s3://work/kyc/r1"))
    with caplog.at_level(logging.WARNING):
        asyncio.run(_remove_shard_rows(work, logging.getLogger("test")))
    assert "s3://work/kyc/r1/rows" in caplog.text and "PermissionError" in caplog.text
