"""A start-up folder of one process, for what the start-up checks copy down (an S3 manifest: personal data).

The folder is ``WORK_DIR/startup/<pid>`` and goes when the checks end, however they end. A process killed
too hard to clean up (SIGKILL, a lost machine) leaves it behind; the next start removes every such folder
whose process is gone, so a copy never outlives the next run on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.guarded_delete import remove_tree
from connectors.work_folder import own_folder


@contextmanager
def startup_folder(work_dir: Path) -> Iterator[Path]:
    """A fresh folder for this process's start-up checks, removed on every way out."""
    root = own_folder(work_dir, "startup")  # checked before the sweep deletes anything in it
    sweep_orphans(root)
    folder = own_folder(root, str(os.getpid()), fresh=True)
    try:
        yield folder
    finally:
        remove_tree(folder, root=root)


def sweep_orphans(root: Path) -> list[Path]:
    """Remove the start-up folders of processes that no longer run; the folders removed."""
    if not root.is_dir():
        return []
    removed = []
    for child in root.iterdir():
        if child.name.isdigit() and _is_running(int(child.name)):
            continue
        if child.is_symlink():  # the link goes, never what it points at
            child.unlink()
            removed.append(child)
        elif child.is_dir():
            remove_tree(child, root=root)
            removed.append(child)
    return removed


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
