"""A guarded delete stays inside its root by whole path segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import SetupError
from connectors.guarded_delete import remove_file, remove_tree


@pytest.mark.parametrize("target", ["runs-old", "runs-old/r1", "runs2/r1"])
def test_a_sibling_folder_whose_name_starts_with_the_root_s_is_refused(tmp_path: Path, target: str) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    victim = tmp_path / target
    victim.mkdir(parents=True)
    (victim / "keep.csv").write_text("data")
    with pytest.raises(SetupError, match="not inside the work folder"):
        remove_tree(victim, root=root)
    with pytest.raises(SetupError, match="not inside the work folder"):
        remove_file(victim / "keep.csv", root=root)
    assert (victim / "keep.csv").read_text() == "data"
