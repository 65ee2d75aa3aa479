"""Articulated pybullet chains: deterministic for a seed, points where the links are, the tree they form."""

from __future__ import annotations

import numpy as np
import pytest

from physics.errors import ConfigError
from physics.worlds.articulated import ArticulatedChain, ChainConfig, render_chains


def test_samples_are_deterministic_for_a_seed_and_differ_between_seeds():
    config = ChainConfig(image_size=32)
    a, b = render_chains([3, 4], config), render_chains([3, 4], config)
    assert a.images.shape == (2, 32, 32, 3) and a.images.dtype == np.uint8
    assert a.points.shape == (2, 5, 2) and a.angles.shape == (2, 5)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.points, b.points)
    assert not np.array_equal(a.images[0], a.images[1])


def test_forward_kinematics_keeps_every_link_its_length_and_follows_the_angles():
    config = ChainConfig()
    chain = ArticulatedChain(config)
    try:
        straight = chain.pose((0.0, 0.0), np.zeros(5))
        bent = chain.pose((0.1, -0.05), np.array([0.3, 0.5, -0.4, 1.0, 0.2]))
    finally:
        chain.close()
    # straight along x from the base; every link keeps its length when bent
    assert np.allclose(straight[:, 0], [0.0, 0.35, 0.7, 1.05, 1.4], atol=1e-5)
    for a, b in config.tree_edges:
        assert np.linalg.norm(bent[b, :2] - bent[a, :2]) == pytest.approx(config.link_length, abs=1e-5)
    heading = np.arctan2(*(bent[1, :2] - bent[0, :2])[::-1])
    assert heading == pytest.approx(0.3 + 0.5, abs=1e-5)  # base yaw plus the first joint


def test_projected_points_lie_on_the_rendered_body_and_the_base_is_red():
    samples = render_chains(range(10), ChainConfig())
    for image, points in zip(samples.images, samples.points, strict=True):
        inside = (points >= 1) & (points < 63)
        for (u, v), ok in zip(points, inside.all(1), strict=True):
            if ok:  # a 3x3 neighbourhood of each visible point holds body pixels
                assert image[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2].max() > 60
        u, v = points[0].astype(int)  # the base: a red ring shows around the first link
        around = image[v - 3:v + 4, u - 3:u + 4].reshape(-1, 3).astype(int)
        assert ((around[:, 0] > 100) & (around[:, 0] > 2 * around[:, 1])).any()


def test_a_branching_tree_and_bad_configs():
    config = ChainConfig(parents=(0, 1, 1))
    assert config.tree_edges == ((0, 1), (1, 2), (1, 3)) and config.num_points == 4
    assert render_chains([0], config).points.shape == (1, 4, 2)
    with pytest.raises(ConfigError, match="parents"):
        ChainConfig(parents=(0, 2))
    with pytest.raises(ConfigError):
        ChainConfig(joint_range_deg=0)
