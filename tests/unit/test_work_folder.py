"""The run's folders under the work folder: made fresh, never through a link; a claim released when unused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.run_claim import claim_run, release_claim
from connectors.s3 import Location
from connectors.startup_scratch import sweep_orphans
from connectors.work_folder import own_folder


@pytest.fixture()
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("planted", ["runs", "runs/r1", "runs/r1/more"])
def test_a_link_at_any_component_is_refused_and_nothing_is_made_through_it(
        planted: str, tmp_path: Path, elsewhere: Path) -> None:
    work = tmp_path / "work"
    link = work / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SetupError, match=f"work folder: {planted} is a symbolic link"):
        own_folder(work, "runs", "r1", "more", fresh=True)
    assert list(elsewhere.iterdir()) == []


def test_the_work_folder_itself_may_be_a_link(tmp_path: Path, elsewhere: Path) -> None:
    (tmp_path / "work").symlink_to(elsewhere, target_is_directory=True)  # the user's own setting
    assert own_folder(tmp_path / "work", "runs", "r1") == elsewhere.resolve() / "runs" / "r1"


def test_a_file_where_a_folder_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(SetupError, match="work folder: runs is not a folder"):
        own_folder(tmp_path, "runs", "r1")


def test_a_fresh_folder_is_private_and_empty_of_what_an_earlier_process_left(tmp_path: Path,
                                                                              elsewhere: Path) -> None:
    left = tmp_path / "runs" / "r1"
    left.mkdir(parents=True)
    (left / "rows.arrow").write_text("an earlier run's rows")
    (left / "link").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "keep.txt").write_text("mine")

    folder = own_folder(tmp_path, "runs", "r1", fresh=True)

    assert folder == left.resolve() and list(folder.iterdir()) == []
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (elsewhere / "keep.txt").read_text() == "mine"
    assert own_folder(tmp_path, "runs", "r1") == folder  # not fresh: an existing real folder is kept as it is


@pytest.mark.parametrize("planted", ["runs", "runs/r1"])
def test_a_folder_others_may_write_into_is_refused(planted: str, tmp_path: Path) -> None:
    folder = tmp_path / planted
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # made by someone else beforehand, e.g. under a shared /tmp: they could swap its content
    with pytest.raises(SetupError, match=f"work folder: {planted} can be written by other users"):
        own_folder(tmp_path, "runs", "r1", fresh=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user takes root")
def test_a_folder_another_user_owns_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir(mode=0o700)
    os.chown(folder, os.geteuid() + 4242, -1)  # they can read what the run would write into it
    with pytest.raises(SetupError, match="work folder: runs belongs to another user"):
        own_folder(tmp_path, "runs", "r1")


@pytest.mark.parametrize("name", ["..", ".", "", "a/b"])
def test_a_name_that_is_not_one_folder_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="is not a folder name"):
        own_folder(tmp_path, "runs", name)


def test_the_sweep_of_start_up_folders_removes_a_planted_link_never_its_target(tmp_path: Path,
                                                                               elsewhere: Path) -> None:
    root = tmp_path / "startup"
    root.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    (root / "999999999").symlink_to(elsewhere, target_is_directory=True)
    assert sweep_orphans(root) == [root / "999999999"]
    assert (elsewhere / "keep.txt").read_text() == "mine"


def _claim(store: ObjectStore, prefix: Location, token: str) -> None:
    claim_run(store, prefix, run_id="r1", token=token, started_at="2026-12-07T00:00:00")


def test_an_unused_claim_is_released_and_the_run_id_can_be_claimed_again(tmp_path: Path) -> None:
    store, prefix = ObjectStore(None), Location(None, str(tmp_path / "reports" / "r1"))
    _claim(store, prefix, "mine")
    assert release_claim(store, prefix, token="mine") is True
    _claim(store, prefix, "next")  # free again
    assert json.loads(store.read(prefix.child("_run.json")))["claim"] == "next"


def test_another_run_s_claim_or_a_claim_with_report_files_next_to_it_stays(tmp_path: Path) -> None:
    store, prefix = ObjectStore(None), Location(None, str(tmp_path / "reports" / "r1"))
    _claim(store, prefix, "theirs")
    assert release_claim(store, prefix, token="mine") is False
    assert store.exists(prefix.child("_run.json"))

    store.write(prefix.child("rows.parquet"), b"PAR1")
    assert release_claim(store, prefix, token="theirs") is False
    assert store.exists(prefix.child("_run.json"))


@pytest.mark.parametrize("marker", [b"[]", b'"claimed"', b"not json", b"null", b'{"started_at": "jo@example.com"}'])
def test_a_claim_marker_of_another_shape_is_another_run_s_claim(marker: bytes, tmp_path: Path) -> None:
    store, prefix = ObjectStore(None), Location(None, str(tmp_path / "reports" / "r1"))
    store.write(prefix.child("_run.json"), marker)
    with pytest.raises(SetupError, match=r"run id r1: another run claimed it \(started an unknown time\)"):
        _claim(store, prefix, "mine")
    assert release_claim(store, prefix, token="mine") is False
    assert store.read(prefix.child("_run.json")) == marker
