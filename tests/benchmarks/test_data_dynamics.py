"""``nesy data dynamics``: end to end, resume, determinism across workers, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets.dynamics_builder import DynamicsDataConfig, build_dynamics_split
from physics.errors import ConfigError, DataError
from physics.worlds.dynamics import load_split, trajectory_seed

REGISTERED = cli.COMMAND_MODULES  # as shipped, before the fixture below narrows it


@pytest.fixture(autouse=True)
def only_this_command(monkeypatch):
    """Build the CLI with this command alone: the other commands' imports (torch, ...) cost seconds."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("data_dynamics",))


def test_command_is_registered_in_the_cli():
    assert "data_dynamics" in REGISTERED


def _run(capsys, *argv: str) -> dict:
    rc = main(["data", "dynamics", "--quiet", *argv])
    assert rc == 0
    return json.loads(capsys.readouterr().out)


def test_command_writes_split_and_resumes_after_a_lost_file(tmp_path, capsys):
    args = ("--world", "cradle", "--n", "3", "--seed", "7", "--steps", "12", "--out", str(tmp_path))
    first = _run(capsys, *args)
    assert first["generated"] == 3 and first["skipped"] == 0
    folder = tmp_path / "train"
    assert sorted(p.name for p in folder.iterdir()) == ["index.json", "traj_00000.npz", "traj_00001.npz", "traj_00002.npz"]
    index = json.loads((folder / "index.json").read_text())
    assert index["complete"] and index["world"] == "cradle" and index["count"] == 3
    assert index["seeds"] == [trajectory_seed(7, "train", k) for k in range(3)]
    before = load_split(tmp_path, "train")
    assert [t.meta["seed"] for t in before] == index["seeds"]
    assert all(t.positions.shape == (12, 10, 3) for t in before)

    (folder / "traj_00001.npz").unlink()  # a run killed before this file was written
    (folder / ".traj_00002.npz.abc.tmp").write_bytes(b"half")  # and its leftover temp file
    again = _run(capsys, *args)
    assert again["generated"] == 1 and again["skipped"] == 2
    assert not list(folder.glob("*.tmp"))
    after = load_split(tmp_path, "train")
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a.positions, b.positions)


def test_files_are_identical_whatever_the_worker_count(tmp_path):
    common = {"world": "cradle", "n": 4, "seed": 1, "steps": 10, "split": "valid"}
    build_dynamics_split(DynamicsDataConfig(out=str(tmp_path / "a"), workers=1, **common), progress=False)
    build_dynamics_split(DynamicsDataConfig(out=str(tmp_path / "b"), workers=2, **common), progress=False)
    for k in range(4):
        name = f"valid/traj_{k:05d}.npz"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_splits_get_disjoint_seeds():
    train = {trajectory_seed(0, "train", k) for k in range(100)}
    test = {trajectory_seed(0, "test", k) for k in range(100)}
    assert len(train) == 100 and not train & test


def test_world_overrides_reach_the_config_and_index(tmp_path, capsys):
    _run(capsys, "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path), "--set", "num_balls=3")
    traj = load_split(tmp_path, "train")[0]
    assert traj.positions.shape == (5, 6, 3) and traj.meta["config"]["num_balls"] == 3


def test_bad_input_fails_with_one_line_and_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit):  # a count >= 1, refused as argparse parses it
        main(["data", "dynamics", "--world", "cradle", "--n", "0", "--out", str(tmp_path)])
    assert "argument --n: must be an integer >= 1, got '0'" in capsys.readouterr().err
    assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--out", str(tmp_path), "--set", "radius"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--out", str(tmp_path), "--set", "wheels=3"]) == 2
    assert "no setting" in capsys.readouterr().err
    assert main(["data", "dynamics", "--world", "rop", "--n", "1", "--out", str(tmp_path)]) == 2
    assert "unknown dynamics world 'rop' (did you mean 'rope'?); choose one of cradle, rope, boxes, fluidfall, boxbath, fluidshake, ricegrip" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="choose one of"):
        DynamicsDataConfig(world="pendulum", n=1, out=str(tmp_path))


def test_other_data_set_in_the_folder_is_refused(tmp_path, capsys):
    _run(capsys, "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path))
    assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "6", "--out", str(tmp_path)]) == 2
    assert "different data set" in capsys.readouterr().err


def test_load_split_names_missing_and_incomplete_splits(tmp_path, capsys):
    with pytest.raises(DataError, match="not found"):
        load_split(tmp_path, "train")
    _run(capsys, "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path))
    index = tmp_path / "train" / "index.json"
    data = json.loads(index.read_text())
    data["complete"] = False
    index.write_text(json.dumps(data))
    with pytest.raises(DataError, match="incomplete"):
        load_split(tmp_path, "train")
    with pytest.raises(ConfigError, match="train"):
        load_split(tmp_path, "dev")


@pytest.mark.parametrize("world", ["rope", "boxes"])
def test_every_world_builds_a_loadable_split(tmp_path, world):
    cfg = DynamicsDataConfig(world=world, n=2, seed=3, steps=8, out=str(tmp_path), split="test")
    summary = build_dynamics_split(cfg, progress=False)
    assert summary["generated"] == 2
    trajs = load_split(tmp_path, "test")
    assert [t.meta["world"] for t in trajs] == [world, world]
    assert all(t.num_steps == 8 for t in trajs)
    assert not np.array_equal(trajs[0].positions, trajs[1].positions)


def test_gif_preview_shows_the_recorded_episode(tmp_path, capsys):
    import imageio.v2 as imageio

    gif = tmp_path / "cradle.gif"
    out = _run(capsys, "--world", "cradle", "--n", "1", "--steps", "6", "--out", str(tmp_path), "--gif", str(gif))
    assert out["gif"] == str(gif)
    frames = imageio.mimread(gif)
    assert len(frames) == 3 and frames[0].shape[:2] == (180, 240)
    assert not np.array_equal(frames[0], frames[-1]), "the lifted ball moves"


def test_in_memory_twin_equals_the_written_files(tmp_path, capsys):
    from physics.worlds.dynamics import generate_split

    _run(capsys, "--world", "boxes", "--n", "2", "--seed", "5", "--steps", "7", "--split", "valid",
         "--out", str(tmp_path), "--set", "num_boxes=4")
    written = load_split(tmp_path, "valid")
    twin = generate_split("boxes", 2, seed=5, split="valid", steps=7, num_boxes=4)
    for a, b in zip(written, twin, strict=True):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.actions, b.actions)
        assert a.meta == {**b.meta}


def test_resume_regenerates_a_corrupt_file_and_refuses_a_foreign_one(tmp_path, capsys):
    args = ("--world", "cradle", "--n", "2", "--steps", "5", "--out", str(tmp_path))
    _run(capsys, *args)
    folder = tmp_path / "train"
    good = (folder / "traj_00000.npz").read_bytes()
    (folder / "traj_00000.npz").write_bytes(good[:100])  # damaged outside our atomic writes
    assert _run(capsys, *args)["generated"] == 1
    assert (folder / "traj_00000.npz").read_bytes() == good

    (folder / "index.json").unlink()  # lose the index, then drop in a file of another data set
    (folder / "traj_00001.npz").write_bytes(good)
    assert main(["data", "dynamics", "--quiet", *args]) == 2
    assert "another data set" in capsys.readouterr().err


def _flip_inside(path, member: str) -> None:
    """Flip one byte in the middle of an archive member's compressed data."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    data = bytearray(path.read_bytes())
    header = 30 + len(info.filename.encode()) + len(info.extra)  # local file header, then the data
    data[info.header_offset + header + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["positions.npy", "actions.npy"])
def test_resume_remakes_a_file_whose_arrays_are_damaged_not_only_its_metadata(tmp_path, capsys, member):
    args = ("--world", "cradle", "--n", "2", "--steps", "5", "--out", str(tmp_path))
    _run(capsys, *args)
    folder = tmp_path / "train"
    good = (folder / "traj_00001.npz").read_bytes()
    _flip_inside(folder / "traj_00001.npz", member)
    assert (folder / "traj_00001.npz").read_bytes() != good
    again = _run(capsys, *args)
    assert again["generated"] == 1 and again["skipped"] == 1
    assert (folder / "traj_00001.npz").read_bytes() == good


def test_loading_a_bit_flipped_trajectory_is_a_data_error(tmp_path, capsys):
    from physics.trajectory import load_trajectory

    _run(capsys, "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path))
    path = tmp_path / "train" / "traj_00000.npz"
    for member in ("positions.npy", "meta.npy"):
        original = path.read_bytes()
        _flip_inside(path, member)
        with pytest.raises(DataError, match="traj_00000.npz"):
            load_trajectory(path)
        path.write_bytes(original)


@pytest.mark.parametrize("setting", ["radius=NaN", "radius=Infinity", "lift_angle_deg=[10,-Infinity]"])
def test_non_finite_settings_are_refused_in_one_line(tmp_path, capsys, setting):
    argv = ["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path), "--set", setting]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--set {setting!r}" in err and "finite" in err, err
    assert not (tmp_path / "train").exists()


def test_a_setting_given_twice_is_refused_not_the_later_one_taken(tmp_path, capsys):
    """``--set radius=0.02 --set radius=0.03`` built with 0.03 without a word; bench perception's --set refuses it."""
    argv = ["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path),
            "--set", "radius=0.02", "--set", "radius=0.03"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("--set 'radius=0.03': radius given twice; give each setting once"), err
    assert not (tmp_path / "train").exists()


def test_a_setting_without_a_value_is_refused_naming_it_and_what_a_key_is(tmp_path, capsys):
    argv = ["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path), "--set", "radius"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--set 'radius': not KEY=VALUE; expected KEY=VALUE with KEY a world config field"), err


@pytest.mark.parametrize("damage", [b'{"format": "nesy-dyn', b"[1]", bytes(range(128, 256))])
def test_a_damaged_index_is_written_anew_on_resume(tmp_path, capsys, damage):
    # it stopped every rerun ("index.json is not valid JSON") although each trajectory file records its own
    # world, seed and config: the resume checks those, so the index can be made again
    args = ("--world", "cradle", "--n", "2", "--seed", "3", "--steps", "6", "--out", str(tmp_path))
    _run(capsys, *args)
    folder = tmp_path / "train"
    first = (folder / "index.json").read_bytes()
    (folder / "index.json").write_bytes(damage)
    again = _run(capsys, *args)
    assert again["generated"] == 0 and again["skipped"] == 2 and "index.json" in again["index_rebuilt"]
    assert (folder / "index.json").read_bytes() == first
    (folder / "index.json").write_bytes(damage)  # a trajectory of another data set is still refused
    assert main(["data", "dynamics", "--world", "cradle", "--n", "2", "--seed", "4", "--steps", "6", "--out",
                 str(tmp_path), "--quiet"]) == 2
    assert "belongs to another data set" in capsys.readouterr().err


@pytest.mark.parametrize(("setting", "message"), [
    ("radius=nan", "CradleConfig.radius must be a finite number, got 'nan'"),
    ("radius=inf", "CradleConfig.radius must be a finite number, got 'inf'"),
    ("num_balls=abc", "CradleConfig.num_balls must be an integer, got 'abc'"),
    ("num_balls=2.5", "CradleConfig.num_balls must be an integer, got 2.5"),
    ("lift_counts=abc", "CradleConfig.lift_counts must be a list of integers, got 'abc'"),
    ("lift_counts=[1,\"x\"]", "CradleConfig.lift_counts must be a list of integers, got [1, 'x']"),
    ("include_pivots=1", "CradleConfig.include_pivots must be true or false, got 1"),
])
def test_a_setting_of_the_wrong_kind_names_what_the_field_takes(tmp_path, capsys, setting, message):
    # `nan` as text reached the index writer ("Out of range float values are not JSON compliant"), and a
    # wrong type was named as "is not a valid <class 'int'>"
    argv = ["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path), "--set", setting]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(message), err
    assert not (tmp_path / "train").exists()


def test_a_gif_it_cannot_write_is_refused_before_any_trajectory(tmp_path, capsys):
    # the split was written, then the GIF failed
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    for gif in (tmp_path / "a_file" / "x.gif", tmp_path / "a_folder"):
        argv = ["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5", "--out", str(tmp_path / "d"),
                "--gif", str(gif), "--quiet"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"cannot write {gif}" in err, err
        assert not (tmp_path / "d").exists()
