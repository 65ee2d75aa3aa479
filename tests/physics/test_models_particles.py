"""Learned simulators on the particle worlds: GNS, rigidity error, one training step per model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physics.graph.builder import GraphBuilder, collate
from physics.models import make_model, make_samples, preset, rigidity_error, rollout


def test_gns_preset_has_long_history_noise_unshared_blocks_and_no_hierarchy():
    cfg = preset("boxbath", "gns", dim=2, node_attr_dim=4)
    assert cfg.graph.history == 5 and cfg.noise_std > 0 and not cfg.share_weights
    assert cfg.graph.roots_per_instance == 0 and not cfg.shape_matching
    dpi = preset("boxbath", "dpinet", dim=2, node_attr_dim=4)
    assert dpi.graph.roots_per_instance == 1 and dpi.shape_matching and dpi.graph.radius == cfg.graph.radius
    assert len(make_model("gns", cfg).blocks) == cfg.propagation_steps


def test_fluidfall_dpinet_preset_is_the_papers_fluid_setting_and_leaves_the_other_models_alone():
    # DPI-Net's FluidFall: no hierarchy (the tank's markers are given), no shape matching (nothing
    # rigid moves), L = 2, on the IN's shipped radius; the IN and GNS keep the shared preset
    dpi = preset("fluidfall", "dpinet", dim=2, node_attr_dim=4)
    assert not dpi.graph.has_roots and not dpi.shape_matching
    assert dpi.propagation_steps == 2 and dpi.graph.radius == 0.025
    assert not make_model("dpinet", dpi).has_roots
    for model in ("in", "gns"):
        assert preset("fluidfall", model, dim=2, node_attr_dim=4) == preset("fluidshake", model, dim=2, node_attr_dim=4)
    assert preset("fluidshake", "dpinet", dim=2, node_attr_dim=4).graph.roots_per_instance == 1
    # --set still wins over the world's DPI-Net settings
    assert preset("fluidfall", "dpinet", dim=2, node_attr_dim=4, propagation_steps=3).propagation_steps == 3


def test_rigidity_error_is_zero_for_rigid_motion_and_sees_a_dent():
    rng = np.random.default_rng(0)
    rest = torch.tensor(rng.normal(size=(12, 2)))
    frames = []
    for t in range(4):
        a = 0.3 * t
        rot = torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        frames.append(rest @ rot.T + torch.tensor([0.1 * t, -0.2 * t]))
    pos = torch.stack(frames)
    group = torch.tensor([0] * 6 + [1] * 6)
    assert rigidity_error(pos, group) < 1e-12
    pos[2, 3, 0] += 1e-3
    assert 3e-4 < rigidity_error(pos, group) < 1e-3
    assert rigidity_error(pos, torch.full((12,), -1)) == 0.0


@pytest.fixture(scope="module")
def boxbath_tiny():
    pytest.importorskip("taichi", reason="the particle worlds need the particles extra: pip install -e '.[particles]'")
    from tests.physics.test_particle_worlds import tiny

    world = tiny("boxbath", steps=9)
    return [world.rollout(seed=s) for s in (0, 1)]


@pytest.mark.parametrize("name", ["in", "dpinet", "gns", "dpinet+fluid-root"])
def test_one_training_step_lowers_the_loss(boxbath_tiny, name):
    torch.manual_seed(0)
    name, _, variant = name.partition("+")
    # the variant is the fluidshake DPI-Net with one root for the fluid and the paper's stage order
    extra = {"graph.free_roots": 1, "stage_order": "leaves_first"} if variant else {}
    cfg = preset("boxbath", name, dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=16, **extra)
    model = make_model(name, cfg)
    samples = make_samples(boxbath_tiny, GraphBuilder(cfg.graph), max_samples=4)
    if variant:
        fluid = samples[0].node_attr[:, 0] == 1
        assert int((samples[0].node_type == 1).sum()) == int(samples[0].instance.max()) + 2  # box, walls, fluid
        assert bool(torch.isin(fluid.nonzero(as_tuple=True)[0], samples[0].edge_index[0, samples[0].edge_type == 2]).all())
    model.fit_normalizers(samples)
    batch = collate(samples)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        before = float(model.loss(batch))
    model.train()
    opt.zero_grad()
    model.loss(batch, generator=torch.Generator().manual_seed(0)).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        after = float(model.loss(batch))
    assert after < before, (name, before, after)


def test_dpinet_shape_matching_keeps_the_box_rigid_in_a_rollout(boxbath_tiny):
    traj = boxbath_tiny[0]
    torch.manual_seed(0)
    cfg = preset("boxbath", "dpinet", dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=16)
    model = make_model("dpinet", cfg)
    model.fit_normalizers(make_samples(boxbath_tiny, GraphBuilder(cfg.graph), max_samples=4))
    pred = rollout(model, traj)
    box = torch.from_numpy(np.where(traj.node_attr[:, 1] == 1, traj.instance, -1))
    assert np.isfinite(pred).all()
    assert rigidity_error(torch.from_numpy(pred), box) < 1e-6
    walls = traj.node_attr[:, 3] == 1  # kinematic markers follow the recording
    assert np.array_equal(pred[:, walls], traj.positions[:, walls]) and not np.array_equal(pred[:, ~walls], traj.positions[:, ~walls])


@pytest.mark.parametrize("world", ["fluidfall", "boxbath", "fluidshake", "ricegrip"])
def test_shipped_particle_checkpoints_roll_out_finite(boxbath_tiny, world):
    from pathlib import Path

    from physics.models import load_model

    folder = Path(__file__).resolve().parents[2] / "physics" / "models" / "checkpoints"
    names = sorted(p.stem.split("_", 1)[1] for p in folder.glob(f"{world}_*.pt"))
    assert {"in", "dpinet"} <= set(names), names  # every particle world ships DPI-Net and the IN
    if world in ("fluidfall", "boxbath"):
        traj = boxbath_tiny[0]  # a smaller tank than trained on: the models are local
    else:
        from tests.physics.test_particle_worlds import tiny

        traj = tiny(world, steps=9).rollout(seed=0)  # a moving container / moving grippers: actions drive the walls
    walls = traj.node_attr[:, 3] == 1
    for name in names:
        model, meta = load_model(folder / f"{world}_{name}.pt")
        assert model.name == name and meta["command"].startswith(f"nesy train dynamics --world {world} --model {name}")
        pred = rollout(model, traj)
        assert pred.shape == traj.positions.shape and np.isfinite(pred).all()
        assert np.array_equal(pred[:, walls], traj.positions[:, walls])
