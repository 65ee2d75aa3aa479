"""Simulators: shapes, permutation equivariance, shape matching, checkpoints, clear errors.

The data is a tiny spring-mass chain integrated in numpy here (no pybullet), so
the tests are fast and independent of the worlds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from physics.errors import CheckpointError, ConfigError, StateError
from physics.graph import GraphBuilder, collate
from physics.models import (
    MODELS,
    kabsch,
    load_model,
    make_model,
    one_step_graphs,
    preset,
    rollout,
    save_model,
    shape_match,
)
from physics.models.config import config_from_dict, config_to_dict
from physics.trajectory import Trajectory

SUBSTEPS = 10  # integrator steps per recorded step


def spring_chain(seed: int = 0, n: int = 6, steps: int = 40, dt: float = 0.02) -> Trajectory:
    """A 2-D chain of unit masses joined by springs, node 0 pinned, under gravity.

    Semi-implicit Euler with ``SUBSTEPS`` substeps; the start is a seeded random
    perturbation of the straight horizontal chain.  Two objects: nodes 0..2 and 3..n-1.
    """
    rng = np.random.default_rng(seed)
    rest, k, g, damping = 0.1, 400.0, np.array([0.0, -9.8]), 0.2
    x = np.stack([np.arange(n) * rest, np.zeros(n)], 1) + rng.normal(0, 0.02, (n, 2))
    x[0] = 0.0
    v = np.zeros((n, 2))
    out = []
    h = dt / SUBSTEPS
    for _ in range(steps):
        out.append(x.copy())
        for _ in range(SUBSTEPS):
            f = np.tile(g, (n, 1)) - damping * v
            d = x[1:] - x[:-1]
            length = np.linalg.norm(d, axis=1, keepdims=True)
            fs = k * (length - rest) * d / length
            f[:-1] += fs
            f[1:] -= fs
            v += h * f
            v[0] = 0.0
            x += h * v
    edges = np.stack([np.arange(n - 1), np.arange(1, n)])
    pinned = np.zeros((n, 1))
    pinned[0] = 1.0
    return Trajectory.from_arrays(
        dict(
            positions=np.array(out),
            node_attr=pinned,
            instance=np.array([0] * 3 + [1] * (n - 3)),
            edges=edges,
            edge_attr=np.full((n - 1, 1), rest),
            actions=np.zeros((steps, n, 2)),
            observed=np.ones(n, bool),
        ),
        dt=dt,
        meta={"name": f"chain{seed}"},
    )


def chain_config(name: str, **kw):
    return preset("toy", name, dim=2, node_attr_dim=1, edge_attr_dim=1, hidden=16, **kw)


def fitted_model(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    model = make_model(name, chain_config(name, **kw))
    traj = spring_chain(seed)
    model.fit_normalizers(one_step_graphs(traj, GraphBuilder(model.config.graph)))
    return model.eval(), traj


@pytest.mark.parametrize("name", MODELS.names())
def test_output_shapes_and_next_positions(name):
    model, traj = fitted_model(name)
    graphs = one_step_graphs(traj, GraphBuilder(model.config.graph))[:3]
    batch = collate(graphs)
    out = model(batch)
    assert out.shape == (batch.num_nodes, 2)
    nxt = model.next_positions(batch)
    assert nxt.shape == (batch.num_nodes, 2) and torch.isfinite(nxt).all()
    assert model.loss(batch).ndim == 0


@pytest.mark.parametrize("name", MODELS.names())
def test_permuting_nodes_permutes_the_prediction(name):
    model, traj = fitted_model(name)
    n = traj.num_nodes
    perm = np.random.default_rng(3).permutation(n)
    inv = np.argsort(perm)
    permuted = Trajectory.from_arrays(
        dict(
            positions=traj.positions[:, perm],
            node_attr=traj.node_attr[perm],
            instance=traj.instance[perm],
            edges=inv[traj.edges],
            edge_attr=traj.edge_attr,
            actions=traj.actions[:, perm],
            observed=traj.observed[perm],
        ),
        dt=traj.dt,
    )
    b = GraphBuilder(model.config.graph)
    g0 = one_step_graphs(traj, b, [5])[0]
    g1 = one_step_graphs(permuted, b, [5])[0]
    with torch.no_grad():
        y0 = model.next_positions(g0)[:n]
        y1 = model.next_positions(g1)[:n]
    assert torch.allclose(y1, y0[perm], atol=1e-5)


def test_interaction_network_reaches_one_hop_propnet_reaches_l_hops():
    """An effect crosses one relation per step in the IN and L relations in PropNet."""
    traj = spring_chain(0, n=8)
    for name, steps, reach in (("in", 1, 1), ("propnet", 3, 3)):
        model, _ = fitted_model(name, propagation_steps=steps)
        model.config = dataclasses.replace(model.config, graph=dataclasses.replace(model.config.graph, radius=None))
        b = GraphBuilder(model.config.graph)
        g = one_step_graphs(traj, b, [5])[0]
        moved = g.clone()
        moved.node_attr = g.node_attr.clone()
        moved.node_attr[7, 0] += 5.0  # change the last node only
        model.double()  # far effects are tiny at initialisation; float32 would round them away
        for graph in (g, moved):
            graph.pos_hist, graph.node_attr, graph.action, graph.edge_attr = (
                graph.pos_hist.double(), graph.node_attr.double(), graph.action.double(), graph.edge_attr.double())
        with torch.no_grad():
            diff = (model(moved) - model(g)).abs().sum(1)
        changed = (diff > 0).nonzero().flatten().tolist()
        assert changed == list(range(7 - reach, 8)), (name, changed)


def test_dpinet_with_a_weight_set_per_step_contains_the_interaction_network():
    """Without roots and with ``share_weights=False`` DPI-Net's first leaf step is the IN's one step:
    given the IN's weights and a second step whose object update is zero, it predicts what the IN
    predicts.  With shared weights (the default) the second step repeats the first, so DPI-Net
    cannot fall back to the IN (docs/results/particles.md, fluidfall, fifteenth session)."""
    in_model, traj = fitted_model("in")
    over = {"propagation_steps": 2, "graph.roots_per_instance": 0}
    dpi = make_model("dpinet", chain_config("dpinet", share_weights=False, **over)).eval()
    assert len(dpi.leaf_convs) == 2 and not dpi.has_roots
    assert len(make_model("dpinet", chain_config("dpinet", **over)).leaf_convs) == 1
    state = {k.replace("conv.", "leaf_convs.0.", 1) if k.startswith("conv.") else k: v
             for k, v in in_model.state_dict().items()}
    missing = dpi.load_state_dict(state, strict=False).missing_keys
    assert missing and all(k.startswith("leaf_convs.1.") for k in missing)
    g = one_step_graphs(traj, GraphBuilder(dpi.config.graph), [5])[0]
    with torch.no_grad():
        assert not torch.allclose(dpi.next_positions(g), in_model.next_positions(g))  # step 2 still acts
        last = dpi.leaf_convs[1].obj[-1]
        last.weight.zero_()
        last.bias.zero_()
        assert torch.equal(dpi.next_positions(g), in_model.next_positions(g))


def test_dpinet_leaves_first_roots_carry_what_the_leaves_learned():
    """Paper order (leaf <-> leaf, then leaf -> root -> root -> leaf): a change on one
    leaf-leaf relation reaches every leaf of the object through the roots in one
    time step.  In the old order the roots act before any leaf-leaf relation is
    read, so with L = 1 only the two ends of that relation feel it."""
    traj = spring_chain(0, n=8)
    reached = {}
    for order in ("leaves_first", "hierarchy_first"):
        model, _ = fitted_model("dpinet", propagation_steps=1, stage_order=order)
        model.config = dataclasses.replace(model.config, graph=dataclasses.replace(model.config.graph, radius=None))
        g = one_step_graphs(traj, GraphBuilder(model.config.graph), [5])[0]
        moved = g.clone()
        moved.edge_attr = g.edge_attr.clone()
        link = ((g.edge_index[0] == 6) & (g.edge_index[1] == 7)).nonzero().flatten()
        assert link.numel() == 1
        moved.edge_attr[link, 0] += 5.0  # the 6 -> 7 spring only
        model.double()
        for graph in (g, moved):
            graph.pos_hist, graph.node_attr, graph.action, graph.edge_attr = (
                graph.pos_hist.double(), graph.node_attr.double(), graph.action.double(), graph.edge_attr.double())
        with torch.no_grad():
            diff = (model(moved) - model(g)).abs().sum(1)[: traj.num_nodes]
        reached[order] = (diff > 0).nonzero().flatten().tolist()
    assert reached["hierarchy_first"] == [7]  # the receiver of the changed relation only
    assert set(range(3, 8)) <= set(reached["leaves_first"]), reached  # the whole object (nodes 3..7)


def test_dpinet_stage_order_is_checked_and_old_configs_keep_their_order():
    with pytest.raises(ConfigError, match="stage_order must be one of hierarchy_first, leaves_first"):
        chain_config("dpinet", stage_order="roots_last")
    old = config_to_dict(chain_config("dpinet"))
    old.pop("stage_order")  # a checkpoint saved before the field existed
    assert config_from_dict(old).stage_order == "hierarchy_first"


def test_kabsch_recovers_a_rigid_motion():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    rot = q * torch.sign(torch.linalg.det(q))
    y = x @ rot.T + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    group = torch.tensor([0] * 6 + [1] * 6)
    r, t = kabsch(x, y, group, 2)
    assert torch.allclose(r[0], rot, atol=1e-8) and torch.allclose(r[1], rot, atol=1e-8)
    assert torch.allclose(torch.linalg.det(r), torch.ones(2, dtype=torch.float64))
    noisy = y + torch.randn(12, 3, generator=g, dtype=torch.float64) * 0.05
    matched = shape_match(x, noisy, torch.tensor([0] * 6 + [1] * 5 + [-1]))
    d0 = torch.cdist(x[:6], x[:6])
    assert torch.allclose(torch.cdist(matched[:6], matched[:6]), d0, atol=1e-9)  # rigid
    assert torch.equal(matched[11], noisy[11])  # ungrouped point untouched


def test_dpinet_shape_matching_keeps_objects_rigid():
    model, traj = fitted_model("dpinet", shape_matching=True)
    g = one_step_graphs(traj, GraphBuilder(model.config.graph), [5])[0]
    with torch.no_grad():
        nxt = model.next_positions(g)[:6]
    now = g.pos_hist[:6, -1]
    for members in (slice(0, 3), slice(3, 6)):
        assert torch.allclose(torch.cdist(nxt[members], nxt[members]), torch.cdist(now[members], now[members]), atol=1e-5)


def test_partially_observed_inputs_ignore_hidden_nodes():
    model, traj = fitted_model("propnet", partially_observed=True)
    observed = np.ones(traj.num_nodes, bool)
    observed[4] = False
    arrays = {k: getattr(traj, k) for k in ("positions", "node_attr", "instance", "edges", "edge_attr", "actions")}
    t1 = Trajectory.from_arrays({**arrays, "observed": observed}, dt=traj.dt)
    shifted = traj.positions.copy()
    shifted[:, 4] += np.random.default_rng(0).normal(0, 0.05, shifted[:, 4].shape)
    t2 = Trajectory.from_arrays({**arrays, "positions": shifted, "observed": observed}, dt=traj.dt)
    b = GraphBuilder(model.config.graph)
    with torch.no_grad():
        y1 = model(one_step_graphs(t1, b, [5])[0])
        y2 = model(one_step_graphs(t2, b, [5])[0])
    keep = torch.from_numpy(observed)
    assert torch.allclose(y1[keep], y2[keep], atol=1e-6)


@pytest.mark.parametrize("name", MODELS.names())
def test_rollout_stays_finite_and_starts_from_truth(name):
    model, traj = fitted_model(name)
    pred = rollout(model, traj, steps=15)
    h = model.config.graph.history
    assert pred.shape == (h + 1 + 15, traj.num_nodes, 2)
    assert np.isfinite(pred).all()
    assert np.array_equal(pred[: h + 1], traj.positions[: h + 1])


def test_rollout_names_the_step_that_turns_nan():
    model, traj = fitted_model("propnet")
    with torch.no_grad():
        model.decoder[-1].bias.fill_(float("nan"))
    with pytest.raises(StateError, match=r"prediction for step 3 holds NaN"):
        rollout(model, traj, steps=5)


@pytest.mark.parametrize("steps", [-5, 0, 2.5, True])
def test_rollout_refuses_steps_that_are_not_a_positive_integer(steps):
    model, traj = fitted_model("in")
    with pytest.raises(ConfigError, match=f"rollout steps must be a positive integer.*got {steps!r}"):
        rollout(model, traj, steps=steps)


def test_mismatched_state_shapes_are_named():
    model, traj = fitted_model("in")
    arrays = {k: getattr(traj, k) for k in ("node_attr", "instance", "edges", "edge_attr", "observed")}
    three_d = Trajectory.from_arrays(
        {**arrays, "positions": np.zeros((10, 6, 3)), "actions": np.zeros((10, 6, 3))}, dt=0.02
    )
    with pytest.raises(StateError, match="model expects D=2.*trajectory has D=3"):
        rollout(model, three_d)


def test_unknown_model_and_world_list_the_choices():
    with pytest.raises(ConfigError, match="choose one of in, propnet"):
        make_model("gnn", chain_config("in"))
    with pytest.raises(ConfigError, match="choose one of cradle, rope, boxes"):
        preset("fluid", "in")
    with pytest.raises(ConfigError, match="predict must be one of acceleration, velocity"):
        chain_config("in", predict="force")


def test_checkpoint_round_trip_keeps_weights_and_statistics(tmp_path):
    model, traj = fitted_model("dpinet")
    save_model(tmp_path / "m.pt", model, {"command": "nesy train dynamics", "seed": 0})
    back, meta = load_model(tmp_path / "m.pt")
    assert meta["seed"] == 0
    assert torch.equal(back.vel_norm.std, model.vel_norm.std) and bool(back.vel_norm.fitted)
    g = one_step_graphs(traj, GraphBuilder(model.config.graph), [4])[0]
    with torch.no_grad():
        assert torch.equal(back(g), model(g))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
