"""Capture and restore every random-number generator a training run draws from.

torch's global CPU generator (and CUDA's, when present), numpy's legacy global
generator, Python's ``random``, and any named :class:`torch.Generator` a trainer
owns.  States are stored as tensors and plain values, so they fit a
``weights_only`` checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from physics.errors import CheckpointError

__all__ = ["seed_everything", "rng_state", "set_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The state of every generator (see the module docstring)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, inner, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(inner), "gauss_next": gauss_next},
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None,
                  where: str = "checkpoint") -> None:
    """Restore what :func:`rng_state` captured.

    Raises:
        CheckpointError: the state is incomplete or lacks one of ``generators``.
    """
    try:
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        p = state["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
        for name, gen in (generators or {}).items():
            gen.set_state(state["generators"][name])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"{where}: random-generator state is incomplete or damaged ({exc!r})") from None
