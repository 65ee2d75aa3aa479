"""Contact geometry edge features (``ModelConfig.contact``): gaps between CLEVRER footprints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physics.errors import ConfigError
from physics.models import load_model, make_model, preset, save_model
from physics.models.config import apply_overrides, config_from_dict, config_to_dict
from physics.models.contact import CONTACT_CLIP, contact_features
from physics.video_dynamics import footprint_gaps
from physics.worlds.clevr_properties import SHAPES

CUBE, SPHERE, CYLINDER = (SHAPES.index(s) for s in ("cube", "sphere", "cylinder"))


def _attrs(*shapes: int) -> torch.Tensor:
    a = torch.zeros(len(shapes), 5)
    a[torch.arange(len(shapes)), torch.tensor(shapes)] = 1.0
    return a


def _pairs(states_a, states_b, shape_a, shape_b, vel_a=(0.0, 0.0), vel_b=(0.0, 0.0)) -> torch.Tensor:
    """Features of the edge a -> b for (x, y, yaw) states; velocities in units a frame (std 1)."""
    x = torch.tensor([states_a, states_b], dtype=torch.float32)
    prev = x.clone()
    prev[:, :2] -= torch.tensor([vel_a, vel_b], dtype=torch.float32)
    hist = torch.stack([prev, x], dim=1)  # [2, 2, 3]
    return contact_features("clevrer", hist, _attrs(shape_a, shape_b), torch.tensor([0]), torch.tensor([1]), 1.0,
                            torch.tensor([True]))[0]


def test_gaps_match_the_collision_rule_where_the_centre_line_is_the_separating_axis():
    cases = [  # (a, b, shape a, shape b)
        ((0.0, 0.0, 0.0), (0.9, 0.0, 0.0), SPHERE, CYLINDER),  # discs: 0.9 - 0.7
        ((0.0, 0.0, 0.0), (0.0, 0.8, 0.0), CUBE, SPHERE),  # a face towards the disc
        ((0.0, 0.0, 0.3), (0.6 * math.cos(0.3), 0.6 * math.sin(0.3), 0.3), CUBE, CUBE),  # face to face, turned alike
    ]
    for a, b, sa, sb in cases:
        want = footprint_gaps(np.array([a]), np.array([b]), np.array([sa == CUBE]), np.array([sb == CUBE]))[0]
        got = float(_pairs(a, b, sa, sb)[0]) * CONTACT_CLIP
        assert got == pytest.approx(want, abs=1e-5), (a, b)


def test_a_cube_reaches_further_along_its_diagonal_and_features_clip_and_follow_velocity():
    half = 0.35 / math.sqrt(2.0)
    face = float(_pairs((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), CUBE, SPHERE)[0]) * CONTACT_CLIP
    corner = float(_pairs((0.0, 0.0, math.pi / 4), (1.0, 0.0, 0.0), CUBE, SPHERE)[0]) * CONTACT_CLIP
    assert face == pytest.approx(1.0 - half - 0.35, abs=1e-6)
    assert corner == pytest.approx(1.0 - half * math.sqrt(2.0) - 0.35, abs=1e-6)
    # a quarter turn changes nothing (the orientation channel is the yaw modulo a quarter turn)
    turned = float(_pairs((0.0, 0.0, math.pi / 2), (1.0, 0.0, 0.0), CUBE, SPHERE)[0]) * CONTACT_CLIP
    assert turned == pytest.approx(face, abs=1e-6)
    # closing in at 0.15 a frame from 0.1 apart: the next frame overlaps by 0.05, approach -0.15
    gap, nxt, approach = _pairs((0.0, 0.0, 0.0), (0.8, 0.0, 0.0), SPHERE, SPHERE, vel_a=(0.15, 0.0)).tolist()
    assert (gap * CONTACT_CLIP, nxt * CONTACT_CLIP, approach) == pytest.approx((0.1, -0.05, -0.15), abs=1e-6)
    far = _pairs((0.0, 0.0, 0.0), (9.0, 0.0, 0.0), SPHERE, SPHERE, vel_b=(0.3, 0.0)).tolist()
    assert far[:2] == [1.0, 1.0] and far[2] == pytest.approx(0.3)
    hist = torch.zeros(2, 2, 3)
    hist[1, :, 0] = 0.5
    off = contact_features("clevrer", hist, _attrs(SPHERE, SPHERE), torch.tensor([0]), torch.tensor([1]), 1.0,
                           torch.tensor([False]))
    assert off.abs().sum() == 0  # edges to helper nodes get zeros


def test_the_option_is_checked_saved_only_when_on_and_widens_the_edge_encoder(tmp_path):
    plain = preset("clevrer", "propnet", dim=3, node_attr_dim=5)
    assert "contact" not in config_to_dict(plain) and config_from_dict(config_to_dict(plain)) == plain
    cfg = apply_overrides(plain, {"contact": "clevrer"})
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"ModelConfig.contact must be '' \(none\) or one of clevrer, got 'boxes'"):
        apply_overrides(plain, {"contact": "boxes"})
    with pytest.raises(ConfigError, match=r"--set contact=1: must be text"):
        apply_overrides(plain, {"contact": 1})
    torch.manual_seed(0)
    model = make_model("propnet", cfg)
    assert model.edge_encoder[0].in_features == make_model("propnet", plain).edge_encoder[0].in_features + 3
    save_model(tmp_path / "m.pt", model)
    back, _ = load_model(tmp_path / "m.pt")
    assert back.config.contact == "clevrer"
    # one step of two touching objects: the features reach the output (a changed gap changes the prediction)
    from physics.graph.builder import GraphBuilder

    hist = torch.tensor([[[0.5, 0.0, 0.0], [0.6, 0.0, 0.0], [0.7, 0.0, 0.0]], [[1.3, 0.0, 0.0]] * 3])  # [N, H+1, 3]
    hist = hist.transpose(0, 1)
    edges = torch.tensor([[0, 1], [1, 0]])
    g = GraphBuilder(cfg.graph).build(hist, _attrs(SPHERE, CUBE), edges=edges, edge_attr=torch.zeros(2, 0))
    with torch.no_grad():
        touching = back.next_positions(g)
        back.edge_encoder[0].weight[:, -3:].zero_()
        blind = back.next_positions(g)
    assert not torch.allclose(touching, blind)
