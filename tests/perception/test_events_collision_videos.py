"""Collision videos: seeded, elastic, and each collision's class follows the causal rule."""

from __future__ import annotations

import pytest
import torch

from perception.events.collision_videos import (
    COLLISION_CLASSES,
    PAIR_DIM,
    PAIRS,
    RADIUS,
    VideoConfig,
    _events,
    _simulate,
    collision_videos,
    frame_labels,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = VideoConfig(frames=40)


def test_videos_have_the_documented_shapes_and_are_a_function_of_the_seed():
    videos = collision_videos(4, seed=5, config=SMALL)
    assert videos.features.shape == (4, 40, SMALL.feature_dim) and len(videos.events) == 4
    again = collision_videos(4, seed=5, config=SMALL)
    assert torch.equal(videos.features, again.features) and videos.events == again.events
    assert not torch.equal(videos.features, collision_videos(4, seed=6, config=SMALL).features)
    for events in videos.events:
        for cls, start, end in events:
            assert 0 <= cls < len(COLLISION_CLASSES) and 0 <= start < end <= 40


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="objects"):
        VideoConfig(objects=(1, 9))
    with pytest.raises(ConfigError, match="movers"):
        VideoConfig(movers=(3, 6))


def _two_discs(gap: float, moving_b: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pos = torch.full((1, 8, 2), -1e3, dtype=torch.float64)
    vel = torch.zeros(1, 8, 2, dtype=torch.float64)
    present = torch.zeros(1, 8, dtype=torch.bool)
    pos[0, 0], pos[0, 1] = torch.tensor([4.0, 7.0]), torch.tensor([4.0 + 2 * RADIUS + gap, 7.0])
    vel[0, 0] = torch.tensor([0.25, 0.0])
    if moving_b:
        vel[0, 1] = torch.tensor([-0.25, 0.0])
    present[0, :2] = True
    return pos, vel, present


def test_a_head_on_strike_hands_the_velocity_over_and_is_recorded_once():
    (positions, velocities, _), collisions = _simulate(*_two_discs(1.9, moving_b=False), VideoConfig(frames=20))
    assert len(collisions[0]) == 1 and collisions[0][0]["pair"] == (0, 1)
    assert collisions[0][0]["moving"] == (True, False) and collisions[0][0]["frame"] == 7  # 1.9 units at 0.25 a frame: inside frame 7
    assert torch.allclose(velocities[0, -1, 0], torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(velocities[0, -1, 1], torch.tensor([0.25, 0.0], dtype=torch.float64))
    assert torch.allclose(velocities[0, 0].sum(0), velocities[0, -1].sum(0))  # momentum, equal masses


def test_classes_follow_the_causal_rule():
    positions = torch.zeros(30, 8, 2, dtype=torch.float64)
    positions[:, :, 0] = torch.arange(8, dtype=torch.float64) * 10  # far apart: each event is its contact frame
    cfg = VideoConfig(frames=30)
    chain = [{"frame": 3, "pair": (0, 1), "moving": (True, False)},   # A hits resting B ...
             {"frame": 9, "pair": (1, 2), "moving": (True, False)},   # ... B, set moving by it, hits C
             {"frame": 15, "pair": (3, 4), "moving": (True, False)},  # an isolated strike
             {"frame": 20, "pair": (5, 6), "moving": (True, True)}]   # a clash
    assert _events(positions, chain, cfg) == ((2, 3, 4), (2, 9, 10), (0, 15, 16), (1, 20, 21))
    deflected = [{"frame": 3, "pair": (0, 1), "moving": (True, False)},
                 {"frame": 9, "pair": (0, 2), "moving": (True, False)}]  # A was moving before its first hit
    assert [e[0] for e in _events(positions, deflected, cfg)] == [0, 0]


def test_an_event_spans_the_frames_the_pair_is_near():
    (positions, _, _), collisions = _simulate(*_two_discs(2.0, moving_b=True), VideoConfig(frames=20))
    ((cls, start, end),) = _events(positions[0], collisions[0], VideoConfig(frames=20, near=1.0))
    gap = (positions[0, :, 0] - positions[0, :, 1]).norm(dim=-1) - 2 * RADIUS
    assert cls == 1 and bool((gap[start:end] < 1.0).all())
    assert float(gap[start - 1]) >= 1.0 and float(gap[end]) >= 1.0


def test_frame_labels_mark_each_event_with_its_class():
    videos = collision_videos(3, seed=2, config=VideoConfig(frames=60))
    labels, agnostic = frame_labels(videos), frame_labels(videos, classes=False)
    assert labels.shape == agnostic.shape == (3, 60) and labels.dtype == torch.int64
    assert torch.equal(agnostic, (labels > 0).long())
    for row, events in zip(labels, videos.events, strict=True):
        inside = torch.zeros(60, dtype=torch.bool)
        for _, start, end in events:
            inside[start:end] = True
        assert torch.equal(row > 0, inside)
        if events:
            cls, start, end = events[-1]  # the last-starting event holds all its frames
            assert bool((row[start:end] == cls + 1).all())


def test_pair_features_read_each_pair_and_leave_the_frame_features_unchanged():
    clean = VideoConfig(frames=60, noise=0.0)
    videos = collision_videos(3, seed=2, config=clean)
    assert videos.pair_features.shape == (3, 60, len(PAIRS), PAIR_DIM)
    assert len(videos.event_pairs) == 3
    for i, (events, pairs) in enumerate(zip(videos.events, videos.event_pairs, strict=True)):
        assert len(events) == len(pairs)
        for (_, start, end), p in zip(events, pairs, strict=True):
            # the colliding pair touches inside its event (contact 1 at gap 0; frames sample it); both are in view
            assert float(videos.pair_features[i, start:end, p, 0].max()) > 0.8
            assert bool((videos.pair_features[i, start:end, p, 4:] == 1).all())
    # the per-frame speed of a colour is the pair features' speed of that colour
    a, b = PAIRS[0]
    assert torch.allclose(videos.pair_features[..., 0, 2], videos.features[..., a], atol=1e-6)
    assert torch.allclose(videos.pair_features[..., 0, 3], videos.features[..., b], atol=1e-6)
    noisy = collision_videos(3, seed=2, config=VideoConfig(frames=60))
    assert noisy.events == videos.events and not torch.equal(noisy.pair_features, videos.pair_features)
