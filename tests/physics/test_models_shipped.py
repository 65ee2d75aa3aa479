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


@pytest.mark.parametrize("path", sorted(CHECKPOINTS.glob("*.pt")), ids=lambda p: p.stem)
def test_registered_presets_rebuild_the_shipped_configs_from_their_commands(path):
    import shlex

    from physics.io import torch_load
    from physics.models import preset
    from physics.models.config import config_from_dict
    from physics.settings import json_value, parse_settings

    ckpt = torch_load(path)
    words = shlex.split(ckpt["meta"]["command"])
    world, model = words[words.index("--world") + 1], words[words.index("--model") + 1]
    sets = parse_settings([words[i + 1] for i, w in enumerate(words) if w == "--set"], value=json_value)
    stored = config_from_dict(ckpt["config"])
    dims = {k: getattr(stored, k) for k in ("dim", "node_attr_dim", "edge_attr_dim")}
    assert preset(world, model, **dims, **sets) == stored
