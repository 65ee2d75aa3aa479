"""The shipped default checkpoints load (weights_only) and roll out finite on fresh world episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physics.models import load_model, rollout

CHECKPOINTS = Path(__file__).resolve().parents[2] / "physics" / "models" / "checkpoints"
SHIPPED_MODELS = ("in", "propnet", "dpinet")  # a checkpoint of each ships for every world


@pytest.mark.parametrize("world", ["cradle", "rope", "boxes"])
def test_shipped_checkpoints_roll_out_finite(world):
    from physics.worlds.dynamics import make_world

    with make_world(world, steps=6) as w:
        traj = w.rollout(seed=12345)
    for name in SHIPPED_MODELS:
        path = CHECKPOINTS / f"{world}_{name}.pt"
        assert path.is_file(), f"missing shipped checkpoint {path.name}"
        model, meta = load_model(path)
        assert model.name == name and meta["command"].startswith(f"nesy train dynamics --world {world} --model {name}")
        assert bool(model.vel_norm.fitted)
        pred = rollout(model, traj)
        assert pred.shape == traj.positions.shape and np.isfinite(pred).all()
        # one step ahead from true states the error is far below the motion itself
        h = model.config.graph.history
        err = np.abs(pred[h + 1] - traj.positions[h + 1]).max()
        assert err < 0.01, (world, name, err)
