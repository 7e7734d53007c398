"""core.io: atomic writes keep what was there until the new file is complete, and give
outputs the user's umask (never the 0600/0700 of temporary files)."""

from __future__ import annotations

import os
import stat

import pytest

from core.io import atomic_dir, atomic_write_text, current_umask


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_current_umask_is_the_process_umask(umask):
    assert current_umask() == umask
    assert os.umask(umask) == umask  # unchanged by reading it


def test_atomic_files_and_folders_get_the_umask(tmp_path, umask):
    f = atomic_write_text(tmp_path / "out" / "table.csv", "a,b\n1,2\n")
    assert _mode(f) == 0o666 & ~umask
    assert _mode(tmp_path / "out") == 0o777 & ~umask  # made by mkdir, like any tool
    with atomic_dir(tmp_path / "model") as d:
        (d / "config.json").write_text("{}")
    assert _mode(tmp_path / "model") == 0o777 & ~umask
    assert _mode(tmp_path / "model" / "config.json") == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    f = atomic_write_text(tmp_path / "t.csv", "old\n")

    with pytest.raises(TypeError):
        atomic_write_text(f, 123)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("half")
        raise KeyboardInterrupt
    assert f.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
