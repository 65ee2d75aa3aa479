"""Trajectory records: validation of shapes and NaNs, npz round trip, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest

from physics.errors import DataError, StateError
from physics.trajectory import Trajectory, load_trajectory, save_trajectory


def _arrays(t=6, n=4, d=3):
    rng = np.random.default_rng(0)
    return dict(
        positions=rng.normal(size=(t, n, d)),
        node_attr=np.eye(n, 2),
        instance=np.arange(n),
        edges=np.array([[0, 1], [1, 2]]),
        edge_attr=np.zeros((2, 1)),
        actions=np.zeros((t, n, d)),
        observed=np.ones(n, bool),
    )


def test_round_trip_preserves_arrays_and_meta(tmp_path):
    traj = Trajectory.from_arrays(_arrays(), dt=0.02, meta={"world": "toy", "seed": 3})
    save_trajectory(tmp_path / "t.npz", traj)
    back = load_trajectory(tmp_path / "t.npz")
    assert np.array_equal(back.positions, traj.positions)
    assert back.dt == pytest.approx(0.02) and back.meta["world"] == "toy"
    assert back.velocities().shape == traj.positions.shape


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("actions", np.zeros((5, 4, 3)), "actions must have shape [6, 4, 3]"),
        ("instance", np.zeros(3), "instance must have shape [4]"),
        ("edges", np.array([[0, 1], [9, 2]]), "outside 0..3"),
    ],
)
def test_shape_mismatches_are_named(key, value, fragment):
    arrays = _arrays()
    arrays[key] = value
    with pytest.raises(StateError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        Trajectory.from_arrays(arrays, dt=0.02)


def test_nan_positions_are_rejected_with_index():
    arrays = _arrays()
    arrays["positions"][2, 1, 0] = np.nan
    with pytest.raises(StateError, match=r"positions holds NaN.*\[2, 1, 0\]"):
        Trajectory.from_arrays(arrays, dt=0.02)


def test_corrupt_file_gives_data_error(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.npz"):
        load_trajectory(path)
    path.write_bytes(bytes(range(256)) * 2)  # numpy's own words were "contains pickled (object) data"
    with pytest.raises(DataError, match="bad.npz is corrupt: not a NumPy .npz archive"):
        load_trajectory(path)


def test_a_nan_in_a_stored_trajectory_names_the_file(tmp_path):
    save_trajectory(tmp_path / "t.npz", Trajectory.from_arrays(_arrays(), dt=0.02, meta={"world": "toy"}))
    with np.load(tmp_path / "t.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["positions"][1, 0, 2] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(StateError, match=r"nan\.npz: .*positions holds NaN"):
        load_trajectory(tmp_path / "nan.npz")


def test_a_meta_entry_that_is_not_json_is_a_data_error_naming_the_file(tmp_path):
    # it was a UnicodeDecodeError traceback (nesy bench dynamics / train dynamics / data dynamics' resume)
    save_trajectory(tmp_path / "t.npz", Trajectory.from_arrays(_arrays(), dt=0.02, meta={"world": "toy"}))
    with np.load(tmp_path / "t.npz") as z:
        arrays = {k: z[k] for k in z.files}
    for name, meta in (("bytes.npz", b"\xff\xfe{x"), ("list.npz", b"[1, 2]")):
        np.savez(tmp_path / name, **{**arrays, "meta": np.frombuffer(meta, dtype=np.uint8)})
        with pytest.raises(DataError, match=rf"{name} is corrupt: its 'meta' entry is not"):
            load_trajectory(tmp_path / name)
