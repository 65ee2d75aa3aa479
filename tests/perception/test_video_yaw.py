"""Cube yaw from instance masks: the silhouette fit, the per-track average, the option in the annotation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception.video.annotate import VideoPerceptionConfig, perception_config, tracks_to_annotation
from perception.video.detect import (
    VIDEO_ATTRIBUTES,
    FrameDetections,
    load_detections,
    save_detections,
)
from perception.video.track import Track
from perception.video.yaw import QUARTER, _inside, cube_silhouette, fit_cube_yaw, track_yaw
from physics.errors import ConfigError, StateError
from physics.worlds.camera import CLEVR_CAMERA
from physics.worlds.clevr_properties import ATTRIBUTES

HW = (320, 480)
HALF = 0.35 / math.sqrt(2.0)
HEIGHTS = {"cube": HALF, "sphere": 0.35, "cylinder": 0.35}
CAMERA = CLEVR_CAMERA.with_size(480, 320)


def _mask(centre: tuple[float, float], yaw: float) -> np.ndarray:
    """The exact silhouette mask [H, W] of an upright cube at ``centre`` turned by ``yaw``."""
    poly = cube_silhouette(CAMERA, centre, HALF, yaw)
    v, u = np.mgrid[0 : HW[0], 0 : HW[1]]
    return _inside(poly, u.ravel() + 0.5, v.ravel() + 0.5).reshape(HW)


def _wrapped(a: float, b: float) -> float:
    return abs((a - b + QUARTER / 2) % QUARTER - QUARTER / 2)


@pytest.mark.parametrize("yaw", [0.1, 0.5, 1.2, 2.9])
def test_fit_recovers_the_yaw_of_a_projected_cube_within_a_quarter_turn(yaw):
    centre = (0.6, -0.8)
    got, iou = fit_cube_yaw(_mask(centre, yaw), CLEVR_CAMERA, centre, HALF)
    assert 0.0 <= got < QUARTER and iou > 0.95
    assert _wrapped(got, yaw) < math.radians(2.0)
    # a perceived centre 0.05 off: the silhouette is moved onto the mask's centroid, the turn still found
    got_off, _ = fit_cube_yaw(_mask(centre, yaw), CLEVR_CAMERA, (centre[0] + 0.05, centre[1] - 0.04), HALF)
    assert _wrapped(got_off, yaw) < math.radians(3.0)


def test_fit_refuses_bad_input_and_scores_an_empty_mask_zero():
    assert fit_cube_yaw(np.zeros(HW, bool), CLEVR_CAMERA, (0.0, 0.0), HALF) == (0.0, 0.0)
    with pytest.raises(StateError, match="steps"):
        fit_cube_yaw(np.zeros(HW, bool), CLEVR_CAMERA, (0.0, 0.0), HALF, steps=2)
    with pytest.raises(StateError, match="mask"):
        fit_cube_yaw(np.zeros((2, 3, 4), bool), CLEVR_CAMERA, (0.0, 0.0), HALF)


def test_track_yaw_averages_modulo_a_quarter_turn_and_skips_poor_fits():
    frames = [0, 1, 2, 3, 10]
    yaws = [0.02, QUARTER - 0.02, 0.0, np.nan, 0.7]
    ious = [0.9, 0.9, 0.9, 0.9, 0.3]  # the fit at frame 10 overlaps too little
    out = track_yaw(frames, yaws, ious, [1, 10], window=3, min_iou=0.5)
    assert _wrapped(out[0], 0.0) < 1e-6  # not pi / 4: 0.02 and -0.02 are the same turn
    assert _wrapped(out[1], 0.0) < 1e-6  # frame 10 has no usable fit in its window: the nearest frame's
    assert np.isnan(track_yaw([0], [0.3], [0.1], [0, 1])).all()


def _cube_track(frames: range, centre: tuple[float, float]) -> tuple[Track, list[FrameDetections], np.ndarray]:
    """A resting cube seen in every frame, with the detections it was built from (yaw fits 0.4 and noise)."""
    track, dets = Track(), []
    pixel = CAMERA.project(np.array([[centre[0], centre[1], HALF]]))[0, :2]
    rng = np.random.default_rng(1)
    fits = (0.4 + rng.normal(0.0, 0.02, len(frames))) % QUARTER
    probs = {a: np.eye(len(ATTRIBUTES[a]))[ATTRIBUTES[a].index(v)]
             for a, v in zip(VIDEO_ATTRIBUTES, ("red", "metal", "cube"), strict=True)}
    for f, y in zip(frames, fits, strict=True):
        track.add(f, pixel, np.array([centre[0], centre[1], HALF]), probs, 900.0)
        dets.append(FrameDetections(f, pixel[None], np.array([[centre[0], centre[1], HALF]]),
                                    {a: probs[a][None] for a in VIDEO_ATTRIBUTES}, np.array([900]),
                                    np.array([y]), np.array([0.9])))
    return track, dets, fits


def test_annotation_writes_a_cube_yaw_only_with_the_option_on():
    track, dets, fits = _cube_track(range(12), (0.5, 0.5))
    off = tracks_to_annotation([track], list(range(12)), HW, HEIGHTS, detections=dets)
    assert all(o.orientation == (0.0, 0.0, 0.0) for fr in off.motion_trajectory for o in fr.objects)
    on = tracks_to_annotation([track], list(range(12)), HW, HEIGHTS, VideoPerceptionConfig(cube_yaw=1), detections=dets)
    written = [o.orientation for fr in on.motion_trajectory for o in fr.objects]
    assert len(written) == 12 and all(o[:2] == (0.0, 0.0) and abs(o[2] - 0.4) < 0.03 for o in written)
    with pytest.raises(ConfigError, match="no yaw fits"):
        tracks_to_annotation([track], list(range(12)), HW, HEIGHTS, VideoPerceptionConfig(cube_yaw=1))


def test_the_option_is_off_by_default_settable_and_checked():
    assert VideoPerceptionConfig().cube_yaw == 0
    assert perception_config(["cube_yaw=1", "yaw_window=5"]).cube_yaw == 1
    for bad in ("cube_yaw=2", "yaw_window=-1", "yaw_min_iou=1.5"):
        with pytest.raises(ConfigError):
            perception_config([bad])


def test_yaw_fits_round_trip_through_the_cache_file(tmp_path):
    _, dets, _ = _cube_track(range(3), (0.0, 0.0))
    dets.append(FrameDetections.empty(3, fitted=True))
    save_detections(tmp_path / "v.npz", dets, HW)
    back, _ = load_detections(tmp_path / "v.npz")
    for d, e in zip(dets, back, strict=True):
        np.testing.assert_array_equal(d.yaw, e.yaw)
        np.testing.assert_array_equal(d.yaw_fit, e.yaw_fit)
    plain = [FrameDetections(d.frame, d.pixel, d.location, d.probs, d.area) for d in dets]
    save_detections(tmp_path / "p.npz", plain, HW)
    assert all(d.yaw is None for d in load_detections(tmp_path / "p.npz")[0])  # made without fits: none read back
