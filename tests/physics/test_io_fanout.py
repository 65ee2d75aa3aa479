"""Atomic writes leave no partial file; fan-out backends agree and keep order."""

from __future__ import annotations

import pytest

from physics.errors import CheckpointError, ConfigError
from physics.fanout import make_fanout
from physics.io import atomic_open, atomic_torch_save, atomic_write_json, read_json, torch_load


def _square(x: int) -> int:
    return x * x


def test_failed_atomic_write_keeps_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write('{"half":')
            raise RuntimeError("killed")
    assert read_json(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize("backend,workers", [("serial", None), ("process", 1), ("process", 2)])
def test_fanout_returns_results_in_input_order(backend, workers):
    fan = make_fanout(backend, workers)
    assert list(fan.imap(_square, range(20))) == [x * x for x in range(20)]


def test_unknown_backend_lists_choices():
    with pytest.raises(ConfigError, match="process"):
        make_fanout("threads")


def test_checkpoints_load_weights_only_and_corruption_is_reported(tmp_path):
    import torch

    path = tmp_path / "ckpt.pt"
    atomic_torch_save(path, {"w": torch.ones(3)})
    assert torch.equal(torch_load(path)["w"], torch.ones(3))
    good = path.read_bytes()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="ckpt.pt"):
        torch_load(path)
    # one line naming the reason, without torch's advice to load with weights_only=False
    for corrupt in (good[:100], b"garbage"):
        path.write_bytes(corrupt)
        with pytest.raises(CheckpointError) as info:
            torch_load(path)
        message = str(info.value)
        assert "\n" not in message and "weights_only" not in message and message.endswith(")"), message


def test_atomic_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    import os
    import stat

    path = tmp_path / "shared.json"
    atomic_write_json(path, {})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_unwritable_destinations_raise_output_error_naming_the_path_and_leave_nothing(tmp_path):
    from physics.errors import NesyError, OutputError
    from physics.io import ensure_dir

    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    cases = {
        str(tmp_path / "folder"): "it is a folder",
        str(tmp_path / "file" / "x.json"): "a file is in the way",
        "": "names no file",
    }
    for path, reason in cases.items():
        with pytest.raises(OutputError) as info:
            atomic_write_json(path, {"a": 1})
        message = str(info.value)
        assert reason in message and path in message and "\n" not in message
        assert isinstance(info.value, NesyError) and isinstance(info.value, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
    assert (tmp_path / "file").read_text() == "x"
    with pytest.raises(OutputError, match="a file is in the way"):
        ensure_dir(tmp_path / "file" / "sub")
    with pytest.raises(OutputError, match="empty path"):
        ensure_dir("")
    assert ensure_dir(tmp_path / "new" / "deep").is_dir()


def test_a_failed_rename_is_an_output_error_and_removes_the_temporary(tmp_path, monkeypatch):
    import os

    from physics.errors import OutputError

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="cannot write .*out.json: Permission denied"):
        atomic_write_json(tmp_path / "out.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_json_with_nan_is_a_data_error_naming_the_file_and_writes_nothing(tmp_path):
    from physics.errors import DataError

    path = tmp_path / "answers.json"
    for bad in ({"a": float("nan")}, [1.0, float("-inf")]):
        with pytest.raises(DataError, match="cannot write .*answers.json.*finite numbers only"):
            atomic_write_json(path, bad)
    assert list(tmp_path.iterdir()) == []


def test_durable_writes_fsync_and_the_others_write_the_same_bytes_without(tmp_path, monkeypatch):
    import os

    from physics.io import atomic_write_bytes

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write_bytes(tmp_path / "a.bin", b"frame")
    assert len(synced) == 1
    atomic_write_bytes(tmp_path / "b.bin", b"frame", durable=False)
    assert len(synced) == 1  # no fsync
    assert (tmp_path / "b.bin").read_bytes() == (tmp_path / "a.bin").read_bytes() == b"frame"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]  # no temporaries left
