"""Deletes that cannot reach outside their own work folder.

Every local clean-up (a run's folder, a shard's scratch, the copy of an S3 manifest) goes through here. The
path is resolved (``..``, symlinks) and must lie strictly inside the folder it belongs to; anything else is
refused, so a hostile run id or a bad setting can never turn a clean-up into deleting someone's data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from connectors.errors import SetupError


def inside(path: Path, root: Path) -> Path:
    """``path`` resolved, when it lies strictly inside ``root`` (never ``root`` itself); ``SetupError`` otherwise."""
    resolved, base = path.resolve(), root.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise SetupError(f"refusing to delete {path}: it is not inside the work folder {root}")
    return resolved


def remove_tree(path: Path, *, root: Path) -> None:
    """Delete the folder ``path`` (gone already is fine) after checking it lies inside ``root``."""
    target = inside(path, root)
    # The checked path is what is deleted: a symlink named ``path`` resolves inside root or is refused above.
    shutil.rmtree(target, ignore_errors=True)


def remove_file(path: Path, *, root: Path) -> None:
    """Delete the file ``path`` (gone already is fine) after checking it lies inside ``root``."""
    inside(path, root).unlink(missing_ok=True)
