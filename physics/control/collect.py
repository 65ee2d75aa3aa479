"""Data the planner collects: closed-loop episodes written as a dynamics data split (DAgger-style).

A learned simulator trained on a random policy's data is accurate where that
policy goes; a planner drives the world elsewhere (pushes from every side of a
box, towards a goal).  DAgger (Ross et al., AISTATS 2011, arXiv 1011.0686),
applied to model learning: roll out the planner on the current model, record
the *true* transitions of the world it visits, add them to the training data and
retrain.  :class:`SplitWriter` writes each recorded episode
(``EpisodeResult.trajectory``, see :func:`~physics.control.episode.run_episode`)
into the layout ``nesy data dynamics`` writes (``DIR/<split>/traj_00000.npz`` and
``index.json``, :mod:`physics.worlds.dynamics.splits`), so ``nesy train dynamics
--data DIR`` (or ``--data RANDOM_DATA --data DIR``) trains on it unchanged.

The command line: ``nesy control ... --record DIR --record-split train --explore 0.3``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from physics.errors import ConfigError, DataError
from physics.io import PathLike, atomic_write_json, ensure_dir, read_json
from physics.trajectory import Trajectory, load_trajectory, save_trajectory
from physics.worlds.dynamics.splits import INDEX_FORMAT, INDEX_NAME, SPLITS, trajectory_file

__all__ = ["SplitWriter"]


class SplitWriter:
    """Writes recorded episodes as one split of a dynamics data set, resumable.

    The index is rewritten after every episode (``complete`` once ``total`` are
    in), so ``load_split`` reads the folder as soon as the run ends and a killed
    run continues where it stopped (episodes already written are kept and checked).

    Args:
        root: The data set folder (``DIR``; the split goes to ``DIR/<split>``).
        split: ``train``, ``valid`` or ``test``.
        total: Episodes the finished split holds.
        source: What produced the episodes (task, model, planner, seed, settings),
            stored in the index; a folder holding another source is refused.

    Raises:
        ConfigError: unknown split, or the folder holds another run's episodes.
    """

    def __init__(self, root: PathLike, split: str, total: int, source: dict[str, Any]) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        if total < 1:
            raise ConfigError(f"SplitWriter: total must be >= 1, got {total}")
        self.folder = ensure_dir(Path(root) / split)
        self.split, self.total, self.source = split, int(total), _as_json(source)
        self.seeds: list[int] = []
        self.files: list[str] = []
        self.world: str | None = None
        self.config: dict[str, Any] | None = None
        index = self.folder / INDEX_NAME
        if index.exists():
            old = read_json(index, what="dynamics data set index")
            if not isinstance(old, dict) or old.get("source") != self.source:
                raise ConfigError(
                    f"{self.folder} holds episodes of another run ({old.get('source') if isinstance(old, dict) else old}); "
                    "use another --record folder or the same settings"
                )
            self.seeds, self.files = list(old["seeds"]), list(old["files"])
            self.world, self.config = old["world"], old["config"]

    @property
    def count(self) -> int:
        """Episodes written so far."""
        return len(self.files)

    def trajectory(self, k: int) -> Trajectory:
        """Episode ``k`` as written (to resume a run)."""
        if not 0 <= k < self.count:
            raise DataError(f"{self.folder}: episode {k} is not written (holds {self.count})")
        return load_trajectory(self.folder / self.files[k])

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` episodes (a resumed run whose result file stopped earlier).

        Also rewrites the index, so a run resumed with ``total`` episodes already written is complete.
        """
        count = min(count, self.total)
        self.seeds, self.files = self.seeds[:count], self.files[:count]
        if self.files:
            self._write_index()

    def add(self, traj: Trajectory) -> None:
        """Write the next episode and the index.

        Raises:
            DataError: the split is full, or ``traj`` comes from another world or config.
        """
        if self.count >= self.total:
            raise DataError(f"{self.folder} already holds its {self.total} episodes")
        world, config = traj.meta.get("world"), _as_json(traj.meta.get("config"))
        if self.world is not None and (world != self.world or config != self.config):
            raise DataError(f"{self.folder}: episode of world {world!r} does not fit a split of {self.world!r}")
        self.world, self.config = world, config
        name = trajectory_file(self.count)
        save_trajectory(self.folder / name, traj)
        self.files.append(name)
        self.seeds.append(int(traj.meta.get("seed", -1)))
        self._write_index()

    def _write_index(self) -> None:
        atomic_write_json(self.folder / INDEX_NAME, {
            "format": INDEX_FORMAT,
            "world": self.world,
            "config": self.config,
            "split": self.split,
            "seed": self.source.get("seed"),
            "count": self.count,
            "complete": self.count == self.total,
            "seeds": self.seeds,
            "files": self.files,
            "source": self.source,
        }, indent=1)


def _as_json(obj: Any) -> Any:
    """``obj`` as JSON stores it (tuples become lists), so a resumed run compares equal."""
    return json.loads(json.dumps(obj))
