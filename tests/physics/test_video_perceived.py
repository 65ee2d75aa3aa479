"""Perceived starting states for the video PropNet: tracks matched to their objects, inputs written where the
video was perceived (and a counterfactual re-run still follows it), packs that keep them, samples whose history
is perceived while their targets stay true, and the training flag that uses or drops them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from physics.errors import ConfigError, DataError
from physics.graph.builder import GraphBuilder
from physics.models import make_model, preset
from physics.models.data import make_samples, one_step_graphs
from physics.models.training import TrainConfig, _flags, _inputs
from physics.models.video_perceived import match_tracks, with_perceived_inputs
from physics.models.video_propnet import (
    NODE_ATTR_DIM,
    STATE_DIM,
    _make_trajectory,
    load_trajectory_pack,
    save_trajectory_pack,
)

T = 12


def _traj(n: int = 2, name: str = "video 0") -> object:
    """Objects sliding along x at 0.05 units a frame from x = 0, 1, ... (y = k), orientation channel 0.3."""
    pos = np.zeros((T, n, STATE_DIM), np.float32)
    for k in range(n):
        pos[:, k, 0] = k + 0.05 * np.arange(T)
        pos[:, k, 1] = k
        pos[:, k, 2] = 0.3
    attr = np.zeros((n, NODE_ATTR_DIM), np.float32)
    attr[:, 0] = 1.0
    return _make_trajectory(pos, attr, 25.0, {"name": name, "video": 0, "object_ids": list(range(n))})


def test_match_tracks_maps_a_split_track_to_one_object_keeps_the_nearer_and_drops_far_ones():
    true = np.zeros((6, 2, 2))
    true[:, 1] = [3.0, 0.0]
    perceived = np.full((6, 4, 2), np.nan)
    perceived[:3, 0] = true[:3, 0] + 0.01  # object 0, first half
    perceived[3:, 1] = true[3:, 0] - 0.02  # object 0 again after a re-entry (a split track)
    perceived[:, 2] = true[:, 1] + 0.05  # object 1 ...
    perceived[2, 3] = true[2, 1] + 0.01  # ... and a 1-frame ghost on it: too few frames to match
    perceived[4, 3] = [9.0, 9.0]
    m = match_tracks(true, perceived)
    assert m[:, 0].tolist() == [0, 0, 0, 1, 1, 1] and m[:, 1].tolist() == [2] * 6
    far = np.full((6, 1, 2), np.nan)
    far[:, 0] = true[:, 0] + 0.8  # beyond MATCH_DISTANCE: a misread, not noise
    assert (match_tracks(true, far) == -1).all()
    overlap = np.stack([true[:, 0] + 0.03, true[:, 0] + 0.01], axis=1)  # two tracks on one object: nearer kept
    assert (match_tracks(true[:, :1], overlap)[:, 0] == 1).all()
    with pytest.raises(ConfigError, match="max_distance"):
        match_tracks(true, perceived, max_distance=0)
    with pytest.raises(DataError, match="same frames"):
        match_tracks(true, perceived[:5])


def test_perceived_inputs_are_written_in_observed_frames_only_within_reach_and_the_truth_is_untouched():
    traj = _traj()
    before = traj.positions.copy()
    seen = np.full((8, 2, 2), np.nan)  # 8 observed frames of 12
    seen[:, 0] = traj.positions[:8, 0, :2] + [0.02, -0.01]
    seen[:5, 1] = traj.positions[:5, 1, :2] + 0.9  # too far: a misread, the truth stays
    seen[5:, 1] = traj.positions[5:8, 1, :2] - 0.01
    out = with_perceived_inputs(traj, seen)
    inp = out.meta["input_positions"]
    assert np.allclose(inp[:8, 0, :2], seen[:, 0]) and np.allclose(inp[8:], before[8:])
    assert np.allclose(inp[:5, 1], before[:5, 1]) and np.allclose(inp[5:8, 1, :2], seen[5:, 1])
    assert np.allclose(inp[..., 2], 0.3)  # the orientation channel stays the true one
    assert out.meta["perceived_frames"] == 8 + 3
    assert np.array_equal(out.positions, before) and "input_positions" not in traj.meta
    with pytest.raises(DataError, match="perceived centres"):
        with_perceived_inputs(traj, seen[:, :1])
    for bad in ({"max_distance": float("nan")}, {"max_distance": 0.0}, {"tolerance": float("nan")}):
        with pytest.raises(ConfigError, match="max_distance must be > 0 and tolerance >= 0"):
            with_perceived_inputs(traj, seen, **bad)


def test_a_counterfactual_rerun_takes_perceived_centres_only_until_it_leaves_the_video():
    rerun = _traj()
    factual = rerun.positions[:, :, :2].copy()
    factual[4:, 1, 0] += 0.5  # in the video object 1 was struck at frame 4; in the re-run it was not
    seen = factual[:8] + 0.01
    inp = with_perceived_inputs(rerun, seen, factual=factual).meta["input_positions"]
    assert np.allclose(inp[:8, 0, :2], seen[:, 0])  # object 0 unchanged: perceived all along
    assert np.allclose(inp[:4, 1, :2], seen[:4, 1]) and np.allclose(inp[4:, 1], rerun.positions[4:, 1])


def test_a_pack_keeps_perceived_inputs_and_a_pack_without_them_has_none(tmp_path):
    seen = _traj().positions[:8, :, :2] + 0.01
    trajs = [with_perceived_inputs(_traj(), seen), _traj(name="video 1")]
    save_trajectory_pack(tmp_path / "p.npz", trajs)
    back = load_trajectory_pack(tmp_path / "p.npz")
    assert np.allclose(back[0].meta["input_positions"], trajs[0].meta["input_positions"])
    assert "input_positions" not in back[1].meta and back[0].meta["perceived_frames"] == 16
    save_trajectory_pack(tmp_path / "q.npz", [_traj()])
    with np.load(tmp_path / "q.npz") as z:
        assert "inputs" not in z.files


def test_samples_take_their_history_from_the_inputs_and_their_targets_from_the_truth():
    model = make_model("propnet", preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM))
    builder = GraphBuilder(model.config.graph)
    h = builder.config.history
    traj = _traj()
    seen = traj.positions[:8, :, :2] + np.array([0.03, 0.0], np.float32)
    with_in = with_perceived_inputs(traj, seen)
    t = h + 1
    g, = one_step_graphs(with_in, builder, [t], horizon=3)
    plain, = one_step_graphs(traj, builder, [t], horizon=3)
    inp = torch.as_tensor(with_in.meta["input_positions"])
    assert torch.allclose(g.pos_hist, inp[t - h : t + 1].transpose(0, 1))
    assert torch.allclose(g.target_seq, plain.target_seq) and torch.allclose(g.true_last, plain.pos_hist[:, -1])
    assert "true_last" not in plain
    bad = dataclasses.replace(traj, meta={**traj.meta, "input_positions": np.zeros((3, 2, 3))})
    with pytest.raises(DataError, match="input_positions"):
        make_samples([bad], builder, horizon=2)
    # the velocity loss's first step charges the move against the TRUE last state (true_last), not the perceived one
    from torch_geometric.data import Batch

    model.fit_normalizers([plain])
    model.eval()
    without = g.clone()
    del without.true_last
    with torch.no_grad():
        charged = [float(model.loss(Batch.from_data_list([x]), velocity_weight=1.0)) for x in (g, without)]
        positions = [float(model.loss(Batch.from_data_list([x]))) for x in (g, without)]
    assert positions[0] == pytest.approx(positions[1]) and charged[0] != pytest.approx(charged[1], rel=1e-4)


def test_the_flag_uses_the_inputs_only_when_set_is_stored_only_then_and_is_refused_without_inputs():
    traj = _traj()
    with_in = with_perceived_inputs(traj, traj.positions[:8, :, :2] + 0.01)
    assert "input_positions" not in _inputs([with_in], False)[0].meta
    both = _inputs([with_in, traj], True)
    assert both[0] is with_in and np.array_equal(both[1].meta["input_positions"], traj.positions)
    from torch_geometric.data import Batch

    builder = GraphBuilder(preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM).graph)
    Batch.from_data_list(make_samples(both, builder, horizon=2))  # one batch: the same fields in every sample
    with pytest.raises(ConfigError, match="--perceived-inputs"):
        _inputs([traj], True)
    assert "perceived_inputs" not in _flags(TrainConfig())
    assert _flags(TrainConfig(perceived_inputs=True))["perceived_inputs"] is True
