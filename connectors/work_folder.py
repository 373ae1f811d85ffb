"""Folders under the work folder (``KYC_ATTACH_WORK_DIR``) that are the run's own.

Everything a run writes locally (the plan's rows, a copy of an S3 manifest, payloads, report files) is personal
data, so it goes only into folders this process made itself or checked to be real folders: each component under
the work folder is made with ``mkdir`` (which never follows a link) and, when it exists already, looked at with
``lstat``. A symbolic link (or a file) planted where a folder should be is refused with a ``SetupError``
before anything is written through it, and so is an existing folder of another user or one that other users may
write into (under a shared ``/tmp`` anyone can make ``runs`` first, then read the rows or swap a link in).
The work folder itself is the user's setting and may be a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from connectors.errors import SetupError
from connectors.guarded_delete import remove_tree


def own_folder(work_dir: Path, *names: str, fresh: bool = False) -> Path:
    """``work_dir/names[0]/names[1]/...``, every component a real folder (made here, private, when missing).

    ``SetupError`` when a component is a symbolic link or not a folder. With ``fresh`` the last component is
    emptied first (what an earlier, killed process left in it goes), so the folder holds only what this process
    writes.
    """
    folder = work_dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for depth, name in enumerate(names, start=1):
        if name in ("", ".", "..") or "/" in name or os.sep in name:
            raise SetupError(f"work folder: {name!r} is not a folder name")
        parent, folder = folder, folder / name
        shown = "/".join(names[:depth])
        if _make_or_check(folder, shown) and fresh and depth == len(names):
            remove_tree(folder, root=parent)
            _make_or_check(folder, shown)
    return folder


def _make_or_check(folder: Path, shown: str) -> bool:
    """Make ``folder`` (private); True when it existed already as a real folder, ``SetupError`` for anything else."""
    try:
        os.mkdir(folder, 0o700)
        return False
    except FileExistsError:
        found = os.lstat(folder)
        _refuse_unless_folder(found.st_mode, shown)
        _refuse_unless_private(found, shown)
        return True


def _refuse_unless_private(found: os.stat_result, shown: str) -> None:
    if found.st_uid != os.geteuid():
        raise SetupError(f"work folder: {shown} belongs to another user; the run writes only into folders of its "
                         "own (remove it)")
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SetupError(f"work folder: {shown} can be written by other users; the run writes only into folders "
                         "of its own (chmod go-w, or remove it)")


def _refuse_unless_folder(mode: int, shown: str) -> None:
    if stat.S_ISLNK(mode):
        raise SetupError(f"work folder: {shown} is a symbolic link; the run writes only into folders of its own "
                         "(remove the link)")
    if not stat.S_ISDIR(mode):
        raise SetupError(f"work folder: {shown} is not a folder (remove it)")
