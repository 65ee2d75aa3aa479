"""Build a split of a dynamics data set: many seeded rollouts of one world.

The builder is resumable and deterministic: trajectory ``k`` has seed
``trajectory_seed(seed, split, k)``, every file is written atomically, and a rerun
of the same command skips the files already there (after checking from their
metadata that they belong to this data set; unreadable ones are made again).  Jobs fan out through
:func:`physics.fanout.make_fanout`, whose ``imap`` keeps submission order, so the
files are byte-identical whatever the worker count.

Layout and index format: :mod:`physics.worlds.dynamics.splits`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError
from physics.fanout import make_fanout
from physics.io import atomic_write_json, ensure_dir
from physics.trajectory import load_trajectory, save_trajectory
from physics.worlds.dynamics import WORLDS, make_world, world_config
from physics.worlds.dynamics.splits import (
    INDEX_FORMAT,
    INDEX_NAME,
    SPLITS,
    read_index,
    trajectory_file,
    trajectory_seed,
)

__all__ = ["DynamicsDataConfig", "build_dynamics_split"]


@dataclass(frozen=True)
class DynamicsDataConfig:
    """What ``nesy data dynamics`` generates (one split of one world)."""

    world: str = field(metadata={"help": "dynamics world", "registry": WORLDS})
    n: int = field(metadata={"min": 1, "help": "number of trajectories"})
    out: str = field(metadata={"help": "output folder (the split goes to OUT/<split>/)"})
    seed: int = field(default=0, metadata={"help": "base seed; trajectory k's seed derives from (seed, split, k)"})
    steps: int | None = field(default=None, metadata={"min": 1, "help": "recorded steps per trajectory (default: the world's preset)"})
    workers: int = field(default=1, metadata={"min": 1, "help": "worker processes"})
    split: str = field(default="train", metadata={"help": "split name", "choices": list(SPLITS)})
    backend: str = field(default="process", metadata={"help": "fan-out backend", "choices": ["serial", "process", "ray"]})
    address: str | None = field(
        default=None, metadata={"help": "Ray cluster to join with --backend ray (auto, HOST:PORT, ray://HOST:10001; "
                                "default: a local instance); OUT must be a path every node shares"}
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        WORLDS.get(self.world)  # unknown: ConfigError naming the closest worlds and the choices
        if self.n <= 0:
            raise ConfigError(f"--n must be a positive number of trajectories, got {self.n}")
        if not str(self.out).strip():
            raise ConfigError("--out must name the output folder, got an empty path")
        if self.seed < 0:
            raise ConfigError(f"--seed must be non-negative, got {self.seed}")
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"--steps must be positive, got {self.steps}")
        if self.workers <= 0:
            raise ConfigError(f"--workers must be positive, got {self.workers}")
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}; choose one of {list(SPLITS)}")


def _generate(job: tuple[str, dict[str, Any], int, str]) -> int:
    """Roll out one seeded episode and save it (runs in a worker process)."""
    name, config, seed, path = job
    world = make_world(name, **config)
    try:
        traj = world.rollout(seed)
    finally:
        world.close()
    save_trajectory(path, traj)
    return traj.num_steps


def _is_done(path: Path, world: str, seed: int, config: dict[str, Any]) -> bool:
    """True if ``path`` holds this trajectory whole; False if absent or damaged (regenerate it).

    Every array is read (each archive member's CRC is checked on the way) and
    validated as a :class:`~physics.trajectory.Trajectory`, not only the metadata.

    Raises:
        ConfigError: the file is readable but belongs to another data set.
    """
    if not path.is_file():
        return False
    try:
        meta = load_trajectory(path).meta
    except (ValueError, KeyError, EOFError, OSError):  # DataError, StateError, bad JSON or zip
        return False
    if meta.get("world") != world or meta.get("seed") != seed or meta.get("config") != config:
        raise ConfigError(
            f"{path} belongs to another data set (world {meta.get('world')!r}, seed {meta.get('seed')}); "
            "use another --out or delete the folder"
        )
    return True


def build_dynamics_split(
    cfg: DynamicsDataConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate (or finish) ``cfg.out/<split>/`` and return a JSON summary.

    Args:
        cfg: What to generate.
        overrides: World config fields to change from the preset (``{"num_boxes": 15}``).
        progress: Show a tqdm progress bar on stderr.

    Returns:
        ``{"world", "split", "folder", "count", "generated", "skipped", "seconds",
        "trajectories_per_s"}``, and ``index_rebuilt`` (why) when a damaged index was written anew.

    Raises:
        ConfigError: bad settings, or the folder already holds a different data
            set (another world, config or seed).
    """
    from tqdm import tqdm

    overrides = dict(overrides or {})
    if cfg.steps is not None:
        overrides["steps"] = cfg.steps
    wcfg = world_config(cfg.world, overrides).to_dict()
    folder = Path(cfg.out) / cfg.split
    index_path = folder / INDEX_NAME

    rebuilt = None
    if index_path.is_file():
        try:
            old = read_index(cfg.out, cfg.split)
        except DataError as exc:  # damaged (a rerun stopped here for good): write it anew below; each
            old, rebuilt = None, str(exc)  # trajectory file records its own world, seed and config (_is_done)
        if old is not None and (old["world"] != cfg.world or old["config"] != wcfg or old.get("seed") != cfg.seed):
            raise ConfigError(
                f"{folder} already holds a different data set (world {old['world']!r}, seed "
                f"{old.get('seed')}, config {old['config']}); use another --out or delete it"
            )
    ensure_dir(folder)
    for stale in folder.glob(".traj_*.tmp"):  # left by a killed run; atomic writes never finished them
        stale.unlink()

    seeds = [trajectory_seed(cfg.seed, cfg.split, k) for k in range(cfg.n)]
    files = [trajectory_file(k) for k in range(cfg.n)]
    index = {
        "format": INDEX_FORMAT,
        "world": cfg.world,
        "config": wcfg,
        "split": cfg.split,
        "seed": cfg.seed,
        "count": cfg.n,
        "complete": False,
        "seeds": seeds,
        "files": files,
    }
    atomic_write_json(index_path, index, indent=1)

    todo = [k for k in range(cfg.n) if not _is_done(folder / files[k], cfg.world, seeds[k], wcfg)]
    jobs = [(cfg.world, wcfg, seeds[k], str(folder / files[k])) for k in todo]
    fanout = make_fanout(cfg.backend, cfg.workers, cfg.address)
    start = time.perf_counter()
    bar = tqdm(total=cfg.n, initial=cfg.n - len(todo), desc=f"{cfg.world}/{cfg.split}",
               unit="traj", disable=not progress)
    try:
        for _ in fanout.imap(_generate, jobs):
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    index["complete"] = True
    atomic_write_json(index_path, index, indent=1)
    return {
        "world": cfg.world,
        "split": cfg.split,
        "folder": str(folder),
        "count": cfg.n,
        "generated": len(todo),
        "skipped": cfg.n - len(todo),
        "seconds": round(seconds, 3),
        "trajectories_per_s": round(len(todo) / seconds, 3) if todo and seconds > 0 else None,
        **({"index_rebuilt": rebuilt} if rebuilt else {}),  # only then: a clean rerun's summary is as before
    }
