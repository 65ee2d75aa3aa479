"""Event localisation over a CLEVRER video's tracks: a P-GCN's detections as CLEVRER collision events.

Plugs :mod:`~perception.events.pgcn` into the CLEVRER video pipeline: a
:class:`~physics.worlds.clevrer_annotation.VideoAnnotation` (the ground
truth's, or one perceived from frames by :mod:`perception.video`) becomes the
per-frame features the localiser was trained on
(:func:`~perception.events.collision_videos.frame_features`: per-colour speed
and contact, fractions moving and in view; or, for a P-GCN with proposals per
object pair, :func:`~perception.events.collision_videos.pair_features`), the P-GCN scores its proposals,
and every detection above a score threshold becomes one
:class:`~physics.worlds.clevrer_events.Event` of kind ``collision``, located
at the frame of its segment where two objects in view come closest, with
those two objects.

Units: CLEVRER's scene units are scaled so that an object's radius
(``radius``, CLEVRER's one size: small, 0.35) maps to the world's disc radius
(0.5 table units); velocities are read in scene units per second and divided
by ``fps``.  Shapes::

    annotation_features -> features float [T, D], object ids int64 [K]
    localise_collisions -> list of Event (kind "collision", frame, two object ids)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from perception.events.collision_videos import RADIUS, VideoConfig, frame_features, pair_features
from perception.events.pgcn import PGCN, detect, video_graph, video_pair_graph
from physics.errors import ConfigError, DataError
from physics.worlds.clevr_properties import COLORS, SIZE_RADIUS
from physics.worlds.clevrer_annotation import VideoAnnotation
from physics.worlds.clevrer_events import Event

__all__ = ["annotation_features", "annotation_pair_features", "detections_to_events", "localise_collisions"]

TRAINED_VIDEOS = VideoConfig()  # the feature configuration the pgcn benchmark trains on
CLEVRER_FPS = 25  # frames per second of CLEVRER's videos (physics.worlds.clevrer_world.ClevrerConfig.fps)


def _states(annotation: VideoAnnotation, radius: float, fps: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """positions, velocities [1, T, K, 2] (table units, per frame), in view [1, T, K], colour [1, K], ids [K]."""
    if radius <= 0 or fps < 1:
        raise ConfigError(f"annotation features need radius > 0 and fps >= 1, got {radius} and {fps}")
    if not annotation.motion_trajectory:
        raise DataError(f"video {annotation.scene_index}: empty motion_trajectory, nothing to localise")
    ids = [p.object_id for p in annotation.object_property]
    unknown = sorted({p.color for p in annotation.object_property} - set(COLORS))
    if unknown:
        raise DataError(f"video {annotation.scene_index}: colours {unknown} are not CLEVR's {list(COLORS)}")
    column = {k: i for i, k in enumerate(ids)}
    t, k, scale = len(annotation.motion_trajectory), len(ids), RADIUS / radius
    positions = torch.zeros(1, t, k, 2, dtype=torch.float64)
    velocities = torch.zeros_like(positions)
    in_view = torch.zeros(1, t, k, dtype=torch.bool)
    for f, frame in enumerate(annotation.motion_trajectory):
        for o in frame.objects:
            if o.object_id not in column:
                raise DataError(f"video {annotation.scene_index}, frame {frame.frame_id}: object {o.object_id} "
                                f"has no object_property entry")
            j = column[o.object_id]
            positions[0, f, j] = torch.tensor(o.location[:2], dtype=torch.float64) * scale
            velocities[0, f, j] = torch.tensor(o.velocity[:2], dtype=torch.float64) * scale / fps
            in_view[0, f, j] = o.inside_camera_view
    colour = torch.tensor([[COLORS.index(p.color) for p in annotation.object_property]], dtype=torch.int64)
    return positions, velocities, in_view, colour, torch.tensor(ids, dtype=torch.int64)


def annotation_features(annotation: VideoAnnotation, config: VideoConfig = TRAINED_VIDEOS,
                        radius: float = SIZE_RADIUS["small"], fps: int = CLEVRER_FPS) -> tuple[Tensor, Tensor]:
    """A video's noise-free per-frame features [T, D] and its object ids [K] (module docstring for the units)."""
    positions, velocities, in_view, colour, ids = _states(annotation, radius, fps)
    return frame_features(positions, velocities, in_view, colour, config)[0], ids


def annotation_pair_features(annotation: VideoAnnotation, config: VideoConfig = TRAINED_VIDEOS,
                             radius: float = SIZE_RADIUS["small"], fps: int = CLEVRER_FPS) -> Tensor:
    """A video's noise-free per-pair features [T, P, PAIR_DIM] (for a P-GCN with ``proposals="pairs"``)."""
    positions, velocities, in_view, colour, _ = _states(annotation, radius, fps)
    return pair_features(positions, velocities, in_view, colour, config)[0]


def detections_to_events(detections: Sequence[tuple[int, float, float, float]], annotation: VideoAnnotation,
                         threshold: float, radius: float = SIZE_RADIUS["small"]) -> list[Event]:
    """Detections (class, start, end, score) of one video -> its collision events, one per detection scoring
    at least ``threshold`` (the same frame and pair found twice count once), in CLEVRER's event order."""
    positions, _, in_view, _, ids = _states(annotation, radius, CLEVRER_FPS)
    pos, seen = positions[0], in_view[0]  # [T, K, 2], [T, K]
    t, k = seen.shape
    if k < 2:
        return []
    dist = (pos[:, :, None] - pos[:, None]).norm(dim=-1)
    dist = dist.masked_fill(~(seen[:, :, None] & seen[:, None]) | torch.eye(k, dtype=torch.bool), float("inf"))
    frame_ids = [fr.frame_id for fr in annotation.motion_trajectory]
    events: set[Event] = set()
    for _, start, end, score in detections:
        s, e = max(0, int(start)), min(t, int(round(end)))
        if score < threshold or e <= s:
            continue
        window = dist[s:e].flatten(1)  # [frames, K * K]
        best = int(window.argmin())
        if not torch.isfinite(window.flatten()[best]):
            continue  # fewer than two objects in view over the whole segment
        f, pair = divmod(best, k * k)
        a, b = sorted((int(ids[pair // k]), int(ids[pair % k])))
        events.add(Event(frame_ids[s + f], "collision", (a, b)))
    return sorted(events, key=Event.sort_key)


@torch.no_grad()
def localise_collisions(model: PGCN, annotation: VideoAnnotation, threshold: float = 0.3,
                        video: VideoConfig = TRAINED_VIDEOS, radius: float = SIZE_RADIUS["small"],
                        fps: int = CLEVRER_FPS) -> list[Event]:
    """The collision events a trained P-GCN finds in a video's tracks (module docstring).

    Args:
        model: A P-GCN trained on features of ``video``'s kind (``feature_dim`` must match).
        annotation: The video's object properties and motion trajectory (its ``collision`` list is not read).
        threshold: Least detection score kept.
        video: The feature configuration the model was trained with (its speed scale).
        radius, fps: CLEVRER's object radius (scene units) and frame rate.
    """
    features, _ = annotation_features(annotation, video, radius, fps)
    if features.shape[0] < 8:
        raise DataError(f"video {annotation.scene_index}: {features.shape[0]} frames, localisation needs at least 8")
    if model.config.proposals == "pairs":
        graph = video_pair_graph(annotation_pair_features(annotation, video, radius, fps), model.config)
    else:
        graph = video_graph(features, model.config)
    detections = detect(model, graph)
    return detections_to_events(detections, annotation, threshold, radius)
