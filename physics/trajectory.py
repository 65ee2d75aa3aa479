"""Trajectory: one rollout of a world, the unit that dynamics data sets store.

Every dynamics world (Newton's cradle, rope, box pushing, particle worlds) records
its rollouts in this one validated structure, and every learned simulator reads it.

Fields and shapes (T time steps, N nodes, D spatial dimensions, A node features,
E fixed relations)::

    positions   float32 [T, N, D]  node positions per step (scene units)
    node_attr   float32 [N, A]     static node features (type one-hot, radius, ...)
    instance    int64   [N]        rigid body / object id of each node (-1: none);
                                   DPI-Net's hierarchy and shape matching group by it
    edges       int64   [2, E]     fixed relations (links, joints, springs), sender row 0
    edge_attr   float32 [E, B]     features of the fixed relations (B may be 0)
    actions     float32 [T, N, D]  external control applied to each node at each step
                                   (zeros where a node is not actuated)
    observed    bool    [N]        nodes a partially observed model may see
    dt          float              seconds between steps

Validation happens in ``__post_init__``; code that receives a Trajectory trusts it.
Files are ``.npz`` archives written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physics.errors import DataError, StateError
from physics.io import PathLike, atomic_write_bytes, npz_failure

__all__ = ["Trajectory", "load_trajectory", "save_trajectory"]

_ARRAYS = ("positions", "node_attr", "instance", "edges", "edge_attr", "actions", "observed")


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A validated rollout (see the module docstring for shapes)."""

    positions: np.ndarray
    node_attr: np.ndarray
    instance: np.ndarray
    edges: np.ndarray
    edge_attr: np.ndarray
    actions: np.ndarray
    observed: np.ndarray
    dt: float
    meta: Mapping[str, Any] = field(default_factory=dict)  # world name, seed, parameters

    def __post_init__(self) -> None:
        name = self.meta.get("name", "trajectory")
        pos = self.positions
        if pos.ndim != 3:
            raise StateError(f"{name}: positions must be [T, N, D], got shape {pos.shape}")
        t, n, d = pos.shape
        expect = {
            "node_attr": (n, None),
            "instance": (n,),
            "edges": (2, None),
            "actions": (t, n, d),
            "observed": (n,),
        }
        for key, shape in expect.items():
            arr = getattr(self, key)
            if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
                want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
                raise StateError(f"{name}: {key} must have shape {want}, got {tuple(arr.shape)}")
        e = self.edges.shape[1]
        if self.edge_attr.ndim != 2 or self.edge_attr.shape[0] != e:
            raise StateError(f"{name}: edge_attr must be [E={e}, B], got {tuple(self.edge_attr.shape)}")
        if e and (self.edges.min() < 0 or self.edges.max() >= n):
            raise StateError(f"{name}: edges index nodes outside 0..{n - 1}")
        for key in ("positions", "node_attr", "edge_attr", "actions"):
            arr = getattr(self, key)
            if not np.isfinite(arr).all():
                bad = np.argwhere(~np.isfinite(arr))[0].tolist()
                raise StateError(f"{name}: {key} holds NaN or inf (first at index {bad})")
        if not (self.dt > 0 and np.isfinite(self.dt)):
            raise StateError(f"{name}: dt must be a positive number, got {self.dt}")

    @property
    def num_steps(self) -> int:
        return self.positions.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.positions.shape[1]

    def velocities(self) -> np.ndarray:
        """Finite-difference velocities [T, N, D]; step 0 repeats step 1."""
        v = np.diff(self.positions, axis=0) / self.dt
        return np.concatenate([v[:1], v], axis=0).astype(np.float32)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], dt: float, meta: Mapping[str, Any] | None = None) -> Trajectory:
        """Build from plain arrays, casting dtypes (float32 / int64 / bool)."""
        casts = {
            "positions": np.float32,
            "node_attr": np.float32,
            "instance": np.int64,
            "edges": np.int64,
            "edge_attr": np.float32,
            "actions": np.float32,
            "observed": bool,
        }
        missing = [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise DataError(f"trajectory lacks arrays: {', '.join(missing)}")
        return cls(**{k: np.asarray(arrays[k], dtype=casts[k]) for k in _ARRAYS}, dt=float(dt), meta=dict(meta or {}))


def save_trajectory(path: PathLike, traj: Trajectory) -> None:
    """Write ``traj`` as a compressed ``.npz`` archive, atomically."""
    import json

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        **{k: getattr(traj, k) for k in _ARRAYS},
        dt=np.float64(traj.dt),
        meta=np.frombuffer(json.dumps(dict(traj.meta), sort_keys=True).encode(), dtype=np.uint8),
    )
    atomic_write_bytes(path, buf.getvalue())


def load_trajectory(path: PathLike) -> Trajectory:
    """Read a trajectory archive written by :func:`save_trajectory`.

    Raises:
        DataError: missing, corrupt or incomplete file (names the file).
        StateError: arrays of the wrong shape or holding NaN.
    """
    import json
    import zipfile
    import zlib

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"trajectory file not found: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:  # zlib: damaged bytes
        raise DataError(f"trajectory file {path} is corrupt: {npz_failure(exc)}") from None
    if "dt" not in arrays:
        raise DataError(f"trajectory file {path} lacks 'dt'")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode()) if "meta" in arrays else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"trajectory file {path} is corrupt: its 'meta' entry is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"trajectory file {path} is corrupt: its 'meta' entry is not a JSON object")
    meta.setdefault("name", path.name)
    try:
        return Trajectory.from_arrays(arrays, float(arrays.pop("dt")), meta)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except StateError as exc:  # NaN or a bad shape: name the file, not only the world-seed name
        raise StateError(f"{path}: {exc}") from None
