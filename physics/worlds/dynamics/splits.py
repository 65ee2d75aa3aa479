"""On-disk layout of a dynamics data set, and ``load_split`` to read one back.

``nesy data dynamics`` writes, per split::

    DIR/<split>/traj_00000.npz   one Trajectory each (physics.trajectory.save_trajectory)
    DIR/<split>/index.json       {"format", "world", "config", "split", "seed",
                                  "count", "complete", "seeds", "files"}

Trajectory ``k``'s seed depends only on (base seed, split, k) (:func:`trajectory_seed`),
so a data set is the same whatever the worker count or how often it was resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from physics.errors import ConfigError, DataError, StateError
from physics.io import PathLike, read_json
from physics.trajectory import Trajectory, load_trajectory

__all__ = [
    "INDEX_NAME",
    "INDEX_FORMAT",
    "SPLITS",
    "trajectory_file",
    "trajectory_seed",
    "read_index",
    "load_split",
    "generate_split",
]

INDEX_NAME = "index.json"
INDEX_FORMAT = "nesy-dynamics-v1"
# a stable number per split, mixed into every trajectory seed (never Python's salted hash)
SPLITS: dict[str, int] = {"train": 0, "valid": 1, "test": 2}


def _check_split(split: str) -> int:
    try:
        return SPLITS[split]
    except KeyError:
        raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}") from None


def trajectory_file(k: int) -> str:
    """File name of trajectory ``k`` inside its split folder."""
    return f"traj_{k:05d}.npz"


def trajectory_seed(seed: int, split: str, k: int) -> int:
    """The world seed of trajectory ``k`` of ``split`` in a data set with base ``seed``.

    Derived with NumPy's ``SeedSequence`` from the three numbers alone, so splits
    never share episodes and seeds do not depend on generation order.
    """
    if seed < 0 or k < 0:
        raise ConfigError(f"seed and index must be non-negative, got seed={seed}, k={k}")
    ss = np.random.SeedSequence([int(seed), _check_split(split), int(k)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def read_index(root: PathLike, split: str) -> dict:
    """Read and check ``root/<split>/index.json``.

    Raises:
        DataError: the index is missing, malformed or of another format.
    """
    _check_split(split)
    path = Path(root) / split / INDEX_NAME
    index = read_json(path, what="dynamics data set index")
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise DataError(f"{path} is not a dynamics data set index (want format {INDEX_FORMAT!r})")
    missing = [k for k in ("world", "config", "count", "seeds", "files", "complete") if k not in index]
    if missing:
        raise DataError(f"{path} lacks field(s) {missing}")
    if len(index["files"]) != index["count"] or len(index["seeds"]) != index["count"]:
        raise DataError(f"{path}: count {index['count']} does not match the files/seeds lists")
    return index


def load_split(root: PathLike, split: str = "train", *, skipped: list[str] | None = None) -> list[Trajectory]:
    """All trajectories of one split, in index order.

    Args:
        root: The ``--out`` folder given to ``nesy data dynamics``.
        split: ``train``, ``valid`` or ``test``.
        skipped: When given, a trajectory file that cannot be read (corrupt, missing, NaN or
            misshapen arrays) is left out and the reason, naming the file, appended here (a
            benchmark reports and skips it); by default it is an error (training stops).

    Raises:
        DataError: missing or incomplete split (the generation was interrupted:
            rerun the same command to finish it), a corrupt trajectory file (without
            ``skipped``), or no readable trajectory at all (with it).
        StateError: a trajectory holds NaN or misshapen arrays (without ``skipped``).
    """
    index = read_index(root, split)
    folder = Path(root) / split
    if not index["complete"]:
        raise DataError(
            f"{folder} is incomplete (generation was interrupted); rerun the same "
            "`nesy data dynamics` command to finish it"
        )
    if skipped is None:
        return [load_trajectory(folder / name) for name in index["files"]]
    trajs = []
    for name in index["files"]:
        try:
            trajs.append(load_trajectory(folder / name))
        except (DataError, StateError) as exc:
            skipped.append(str(exc))
    if not trajs and index["files"]:
        raise DataError(f"{folder}: no readable trajectory (all {len(skipped)} skipped; first: {skipped[0]})")
    return trajs


def generate_split(
    world: str, n: int, *, seed: int = 0, split: str = "train", steps: int | None = None, **overrides: Any
) -> list[Trajectory]:
    """The trajectories ``nesy data dynamics`` would write, made in memory (the synthetic twin).

    Tests and quick experiments use it to skip the disk; trajectory ``k`` is
    identical to ``traj_<k>.npz`` of the same command.

    Args:
        world: ``cradle``, ``rope`` or ``boxes``.
        n: Number of trajectories.
        seed: Base seed of the data set.
        split: ``train``, ``valid`` or ``test``.
        steps: Recorded steps (default: the world's preset).
        **overrides: World config fields to change from the preset.
    """
    from physics.worlds.dynamics.registry import make_world

    if n <= 0:
        raise ConfigError(f"n must be a positive number of trajectories, got {n}")
    if steps is not None:
        overrides["steps"] = steps
    with make_world(world, **overrides) as w:
        return [w.rollout(trajectory_seed(seed, split, k)) for k in range(n)]
