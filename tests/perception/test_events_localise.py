"""Event localisation on CLEVRER annotations: the localiser sees its training features, detections become events."""

from __future__ import annotations

import pytest
import torch

from perception.events.collision_videos import (
    PAIR_DIM,
    PAIRS,
    RADIUS,
    VideoConfig,
    _simulate,
    frame_features,
)
from perception.events.localise import (
    annotation_features,
    annotation_pair_features,
    detections_to_events,
    localise_collisions,
)
from perception.events.pgcn import PGCN, PGCNConfig
from physics.errors import DataError
from physics.worlds.clevr_properties import COLORS
from physics.worlds.clevrer_annotation import (
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)
from physics.worlds.clevrer_events import Event

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLEVRER_RADIUS, FPS = 0.35, 25
IDS = (3, 5)  # object ids that are not column numbers


def _head_on(frames: int = 20):
    """Disc 0 slides into resting disc 1 (contact inside frame 7), as world states and as a CLEVRER annotation."""
    pos = torch.full((1, 8, 2), -1e3, dtype=torch.float64)
    vel = torch.zeros(1, 8, 2, dtype=torch.float64)
    present = torch.zeros(1, 8, dtype=torch.bool)
    pos[0, 0], pos[0, 1] = torch.tensor([4.0, 7.0]), torch.tensor([4.0 + 2 * RADIUS + 1.9, 7.0])
    vel[0, 0] = torch.tensor([0.25, 0.0])
    present[0, :2] = True
    (positions, velocities, in_view), _ = _simulate(pos, vel, present, VideoConfig(frames=frames))
    scale = CLEVRER_RADIUS / RADIUS
    trajectory = tuple(
        FrameStates(t, tuple(
            ObjectState(IDS[j], (*(positions[0, t, j] * scale).tolist(), CLEVRER_RADIUS), (0.0, 0.0, 0.0, 1.0),
                        (*(velocities[0, t, j] * scale * FPS).tolist(), 0.0), (0.0, 0.0, 0.0), bool(in_view[0, t, j]))
            for j in range(2)))
        for t in range(frames))
    props = (ObjectProperty(IDS[0], COLORS[2], "rubber", "cube"), ObjectProperty(IDS[1], COLORS[6], "metal", "sphere"))
    annotation = VideoAnnotation(0, "video_00000.mp4", props, trajectory, ())
    return (positions, velocities, in_view), annotation


def test_an_annotation_gives_the_features_the_localiser_was_trained_on():
    (positions, velocities, in_view), annotation = _head_on()
    features, ids = annotation_features(annotation, radius=CLEVRER_RADIUS, fps=FPS)
    colour = torch.full((1, 8), -1, dtype=torch.int64)
    colour[0, 0], colour[0, 1] = 2, 6  # the annotation's colours, by CLEVR's colour order
    world = frame_features(positions, velocities, in_view, colour, VideoConfig())[0]
    assert ids.tolist() == list(IDS) and features.shape == world.shape == (20, VideoConfig().feature_dim)
    assert torch.allclose(features, world, atol=1e-5)


def test_detections_become_collision_events_of_the_closest_pair():
    _, annotation = _head_on()
    dets = [(0, 4.0, 12.0, 0.9), (2, 5.0, 11.0, 0.8), (1, 4.0, 12.0, 0.1)]  # two find the same contact; one is weak
    events = detections_to_events(dets, annotation, threshold=0.3, radius=CLEVRER_RADIUS)
    assert len(events) == 1 and events[0].kind == "collision" and events[0].objects == IDS
    assert events[0].frame in (7, 8)  # frames start inside frame 7's contact and just after it
    assert detections_to_events(dets, annotation, threshold=0.95, radius=CLEVRER_RADIUS) == []


def test_localise_collisions_returns_events_of_the_videos_objects():
    _, annotation = _head_on(frames=40)
    torch.manual_seed(0)
    model = PGCN(PGCNConfig(hidden=8)).eval()
    events = localise_collisions(model, annotation, threshold=0.0, radius=CLEVRER_RADIUS, fps=FPS)
    assert events and all(isinstance(e, Event) and e.kind == "collision" and e.objects == IDS for e in events)
    assert localise_collisions(model, annotation, threshold=1.01, radius=CLEVRER_RADIUS, fps=FPS) == []
    bad = VideoAnnotation(0, "v.mp4", (ObjectProperty(1, "pink", "rubber", "cube"),), annotation.motion_trajectory, ())
    with pytest.raises(DataError, match="colours"):
        annotation_features(bad)


def test_a_pair_model_localises_from_the_pair_features():
    _, annotation = _head_on(frames=40)
    pairs = annotation_pair_features(annotation, radius=CLEVRER_RADIUS, fps=FPS)
    assert pairs.shape == (40, len(PAIRS), PAIR_DIM)
    touching = PAIRS.index((2, 6))  # the two annotated colours
    assert float(pairs[:, touching, 0].max()) > 0.9 and float(pairs[:, 0, 0].abs().max()) == 0.0
    torch.manual_seed(0)
    model = PGCN(PGCNConfig(feature_dim=PAIR_DIM, hidden=8, proposals="pairs")).eval()
    events = localise_collisions(model, annotation, threshold=0.0, radius=CLEVRER_RADIUS, fps=FPS)
    assert events and all(e.kind == "collision" and e.objects == IDS for e in events)
