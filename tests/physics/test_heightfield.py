"""Heightfield world: deterministic for a seed, the ball obeys the slope and the walls, frames show it."""

from __future__ import annotations

import pytest
import torch

from physics.errors import ConfigError, StateError
from physics.worlds.heightfield import (
    HeightfieldConfig,
    HeightfieldWorld,
    Terrain,
    heightfield_videos,
    random_terrain,
    simulate,
)


def test_videos_are_a_pure_function_of_the_seed_with_the_documented_shapes():
    cfg = HeightfieldConfig(size=16)
    a = heightfield_videos(3, 6, seed=4, config=cfg, rendered=2)
    b = heightfield_videos(3, 6, seed=4, config=cfg, rendered=2)
    c = heightfield_videos(3, 6, seed=5, config=cfg, rendered=2)
    assert a.frames.shape == (3, 2, 3, 16, 16) and a.positions.shape == (3, 6, 2) and a.terrain.shape == (3, 16, 16)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.positions, b.positions)
    assert not torch.equal(a.positions, c.positions)
    assert 0 <= float(a.frames.min()) and float(a.frames.max()) <= 1


def test_the_ball_stays_inside_the_walls_and_is_the_reddest_pixel_of_its_frame():
    cfg = HeightfieldConfig(size=32, noise=0.0)
    v = heightfield_videos(8, 30, seed=1, config=cfg)
    r = cfg.ball_radius * cfg.size
    assert float(v.positions.min()) >= r - 1e-4 and float(v.positions.max()) <= cfg.size - r + 1e-4
    redness = (v.frames[:, :, 0] - v.frames[:, :, 1:].mean(2)).flatten(2).argmax(-1)  # [N, T]
    peak = torch.stack([redness % cfg.size, redness // cfg.size], -1).float() + 0.5
    assert float((peak - v.positions).norm(dim=-1).max()) < 1.0


def test_on_a_slope_the_ball_accelerates_downhill_at_five_sevenths_of_sliding():
    # one wide bump far away: locally a near-constant slope; a ball at rest starts rolling down it
    terrain = Terrain(torch.tensor([[[2.0, 0.5]]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64),
                      torch.tensor([[0.5]], dtype=torch.float64))
    cfg = HeightfieldConfig(damping=0.0, substeps=50, frame_dt=0.01)
    p0 = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    pos, vel = simulate(terrain, p0, torch.zeros_like(p0), 2, cfg)
    grad = terrain.gradient(p0[:, None])[0, 0]
    expected = -(5 / 7) * 9.81 * grad / (1 + grad.pow(2).sum())
    assert torch.allclose(vel[0, 1] / 0.01, expected, rtol=2e-2)
    assert vel[0, 1, 0] < 0 and abs(float(vel[0, 1, 1])) < 1e-9  # downhill is away from the bump, along x


def test_terrain_gradient_matches_finite_differences():
    terrain = random_terrain(2, HeightfieldConfig(), torch.Generator().manual_seed(3))
    p = torch.rand(2, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    eps = 1e-6
    fd = torch.stack([(terrain.height(p + eps * e) - terrain.height(p - eps * e)) / (2 * eps)
                      for e in torch.eye(2, dtype=torch.float64)], -1)
    assert torch.allclose(terrain.gradient(p), fd, atol=1e-7)
    grid = terrain.grid(8)
    centre = torch.tensor([[[(3 + 0.5) / 8, (5 + 0.5) / 8]]], dtype=torch.float64).expand(2, 1, 2)
    assert torch.allclose(grid[:, 5, 3], terrain.height(centre)[:, 0])  # rows are y


def test_the_world_steps_to_the_same_states_as_the_batch_video():
    cfg = HeightfieldConfig(size=16)
    world = HeightfieldWorld(cfg)
    with pytest.raises(StateError, match="reset"):
        world.step()
    world.reset(9)
    for _ in range(4):
        world.step()
    video = heightfield_videos(1, 5, seed=9, config=cfg)
    assert torch.allclose(world.state()["position"].float() * cfg.size, video.positions[0, 4], atol=1e-4)
    assert world.render().shape == (3, 16, 16)


def test_bad_configs_are_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="size"):
        HeightfieldConfig(size=4)
    with pytest.raises(ConfigError, match="rendered"):
        heightfield_videos(2, 3, seed=0, rendered=5)
