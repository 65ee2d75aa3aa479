"""Tracking hand-made detections: objects entering, leaving, crossing, hidden, and spurious blips."""

from __future__ import annotations

import numpy as np
import pytest

from perception.video.detect import VIDEO_ATTRIBUTES, FrameDetections
from perception.video.track import TrackConfig, track_detections
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES


def _probs(color: str, material: str, shape: str, confidence: float = 0.9) -> dict[str, np.ndarray]:
    out = {}
    for a, value in zip(VIDEO_ATTRIBUTES, (color, material, shape), strict=True):
        n = len(ATTRIBUTES[a])
        p = np.full(n, (1.0 - confidence) / (n - 1))
        p[ATTRIBUTES[a].index(value)] = confidence
        out[a] = p
    return out


RED_CUBE = ("red", "metal", "cube")
BLUE_SPHERE = ("blue", "rubber", "sphere")
GREEN_CYL = ("green", "rubber", "cylinder")


def _frames(n: int, objects: dict[tuple[str, str, str], dict[int, tuple[float, float]]]) -> list[FrameDetections]:
    """Detections of ``objects`` (attributes -> {frame: (x, y)}) over ``n`` frames, in a fixed shuffled order."""
    rng = np.random.default_rng(0)
    out = []
    for f in range(n):
        here = [(attrs, xy) for attrs, path in objects.items() if (xy := path.get(f)) is not None]
        here = [here[i] for i in rng.permutation(len(here))]
        if not here:
            out.append(FrameDetections.empty(f))
            continue
        loc = np.array([[x, y, 0.35] for _, (x, y) in here])
        probs = [_probs(*attrs) for attrs, _ in here]
        out.append(FrameDetections(
            f, pixel=loc[:, :2] * 10 + 200, location=loc,
            probs={a: np.stack([p[a] for p in probs]) for a in VIDEO_ATTRIBUTES},
            area=np.full(len(here), 300),
        ))
    return out


def _by_attributes(tracks):
    return {tuple(t.attributes().values()): t for t in tracks}


def test_entering_and_leaving_objects_get_tracks_spanning_their_frames():
    still = {f: (0.0, 0.0) for f in range(30)}
    entering = {f: (3.0 - 0.1 * (f - 10), 1.0) for f in range(10, 30)}  # comes in at frame 10
    leaving = {f: (-1.0 - 0.2 * f, -1.0) for f in range(0, 12)}  # gone after frame 11
    tracks = track_detections(_frames(30, {RED_CUBE: still, BLUE_SPHERE: entering, GREEN_CYL: leaving}))
    assert len(tracks) == 3
    got = _by_attributes(tracks)
    assert got[RED_CUBE].frames == list(range(30))
    assert got[BLUE_SPHERE].frames == list(range(10, 30))
    assert got[GREEN_CYL].frames == list(range(12))
    # ids by first appearance: the two present at frame 0 first, the entrant last
    assert tuple(tracks[-1].attributes().values()) == BLUE_SPHERE


def test_crossing_objects_keep_their_identity_through_a_hidden_stretch():
    # two objects pass each other 0.3 apart; the sphere is hidden for frames 9-11 as they cross
    a = {f: (-2.0 + 0.2 * f, 0.15) for f in range(21)}
    b = {f: (2.0 - 0.2 * f, -0.15) for f in range(21) if f not in (9, 10, 11)}
    tracks = track_detections(_frames(21, {RED_CUBE: a, BLUE_SPHERE: b}))
    assert len(tracks) == 2
    got = _by_attributes(tracks)
    cube_x = [loc[0] for loc in got[RED_CUBE].locations]
    sphere_x = [loc[0] for loc in got[BLUE_SPHERE].locations]
    assert cube_x == sorted(cube_x) and sphere_x == sorted(sphere_x, reverse=True)  # nobody swapped
    assert got[BLUE_SPHERE].frames == [f for f in range(21) if f not in (9, 10, 11)]


def test_same_looking_crossing_objects_are_told_apart_by_motion():
    # identical attributes cannot happen in CLEVRER, but the motion cue alone must still hold
    a = {f: (-2.0 + 0.2 * f, 0.2) for f in range(21)}
    b = {f: (2.0 - 0.2 * f, -0.2) for f in range(21)}
    tracks = track_detections(_frames(21, {RED_CUBE: a, ("red", "metal", "sphere"): b}),
                              TrackConfig(attribute_weight=0.0))
    for t in tracks:
        xs = [loc[0] for loc in t.locations]
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)


def test_an_object_hidden_long_is_joined_again_by_its_unique_attributes():
    path = {f: (0.05 * f, 0.0) for f in range(40) if not 10 <= f < 30}  # hidden 20 frames > max_missing
    tracks = track_detections(_frames(40, {RED_CUBE: path}), TrackConfig(max_missing=5))
    assert len(tracks) == 1 and len(tracks[0]) == 20


def test_spurious_blips_are_dropped():
    still = {f: (0.0, 0.0) for f in range(20)}
    blip = {7: (2.0, 2.0)}
    tracks = track_detections(_frames(20, {RED_CUBE: still, GREEN_CYL: blip}))
    assert [tuple(t.attributes().values()) for t in tracks] == [RED_CUBE]


def test_track_config_refuses_nonsense():
    with pytest.raises(ConfigError, match="max_distance"):
        TrackConfig(max_distance=0.0)
    with pytest.raises(ConfigError, match="min_length"):
        TrackConfig(min_length=0)


def _collision_with_a_merged_mask() -> list[FrameDetections]:
    """A red cube slides at 0.3 a frame into a resting blue sphere and stops; the sphere goes on at its speed.

    At the contact (frames 10-11) the two masks are one detection, read as the cube, as
    the proposal network gives them; from frame 12 both are seen again.
    """
    cube = {f: (-3.0 + 0.3 * min(f, 10), 0.0) for f in range(30) if f not in (10, 11)}
    sphere = {f: (0.7 + 0.3 * max(f - 11, 0), 0.0) for f in range(30) if f not in (10, 11)}
    merged = {f: (0.35, 0.0) for f in (10, 11)}
    dets = _frames(30, {RED_CUBE: cube, BLUE_SPHERE: sphere})
    return [_frames(30, {RED_CUBE: merged})[f] if f in merged else d for f, d in enumerate(dets)]


def test_two_tracks_that_trade_objects_at_a_contact_get_their_tails_exchanged():
    dets = _collision_with_a_merged_mask()
    # by motion alone the tracker hands the moving-on sphere to the cube's track, and the stopped cube to the sphere's
    swapped = track_detections(dets, TrackConfig(attribute_weight=0.0, swap_run=0))
    assert len(swapped) == 2
    for t in swapped:
        assert len(set(t.labels)) == 2  # each track reads both objects
    tracks = track_detections(dets, TrackConfig(attribute_weight=0.0))
    got = _by_attributes(tracks)
    assert set(got) == {RED_CUBE, BLUE_SPHERE}
    cube, sphere = got[RED_CUBE], got[BLUE_SPHERE]
    # cut at the later switch: the merged detections (frames 10, 11) stay with whichever track took them
    assert set(cube.labels) == {RED_CUBE}
    assert [f for f, lab in zip(sphere.frames, sphere.labels, strict=True) if lab != BLUE_SPHERE] == [10]
    assert [f for f in cube.frames if f >= 12] == list(range(12, 30))
    assert [f for f in sphere.frames if f >= 12] == list(range(12, 30))
    np.testing.assert_allclose([p[0] for p, f in zip(cube.locations, cube.frames, strict=True) if f >= 12], 0.0)
    assert sphere.locations[-1][0] == pytest.approx(0.7 + 0.3 * 18)


def test_a_track_whose_reading_changes_alone_is_not_cut():
    # one object misread for good from frame 15 (no second track reads the mirror image): left as it is
    path = {f: (-1.0 + 0.1 * f, 0.0) for f in range(30)}
    dets = _frames(30, {RED_CUBE: path})
    late = _frames(30, {BLUE_SPHERE: path})
    tracks = track_detections([late[f] if f >= 15 else d for f, d in enumerate(dets)], TrackConfig(attribute_weight=0.0))
    assert len(tracks) == 1 and tracks[0].frames == list(range(30))
    assert tracks[0].labels[:15] == [RED_CUBE] * 15 and tracks[0].labels[15:] == [BLUE_SPHERE] * 15


def _exit_then_entry(entrant: tuple[str, str, str]) -> list[FrameDetections]:
    """A brown sphere leaves across the bottom edge at frame 14; ``entrant`` enters there at frame 20.

    Pixels are made as in ``_frames`` (x * 10 + 200, y * 10 + 200) in a 480x320 image, so
    y = 11.5 is at the bottom edge (v = 315).
    """
    leaving = {f: (0.0, 7.0 + 0.3 * f) for f in range(15)}  # v from 270 to 312: within 24 px of the edge from frame 9
    entering = {f: (0.5, 11.5 - 0.3 * (f - 20)) for f in range(20, 40)}
    if entrant == ("brown", "metal", "sphere"):
        return _frames(40, {entrant: {**leaving, **entering}})
    return _frames(40, {("brown", "metal", "sphere"): leaving, entrant: entering})


def test_an_object_entering_where_another_left_gets_its_own_track():
    dets = _exit_then_entry(("yellow", "rubber", "sphere"))
    joined = track_detections(dets)  # without the image size: the online gate hands the entrant to the leaver's track
    assert len(joined) == 1 and joined[0].frames == [*range(15), *range(20, 40)]
    tracks = track_detections(dets, image_hw=(320, 480))
    got = _by_attributes(tracks)
    assert set(got) == {("brown", "metal", "sphere"), ("yellow", "rubber", "sphere")}
    assert got[("brown", "metal", "sphere")].frames == list(range(15))
    assert got[("yellow", "rubber", "sphere")].frames == list(range(20, 40))


def test_an_object_that_comes_back_across_the_edge_stays_one_track():
    # the same object seen again: same attributes, so the parts are joined again
    tracks = track_detections(_exit_then_entry(("brown", "metal", "sphere")), image_hw=(320, 480))
    assert len(tracks) == 1 and tracks[0].frames == [*range(15), *range(20, 40)]


def test_a_gap_away_from_the_edge_is_not_split():
    # hidden behind another object in the middle of the image for 4 frames, read otherwise after: not a re-entry
    path = {f: (-1.0 + 0.1 * f, 0.0) for f in range(30) if not 12 <= f < 16}
    dets = _frames(30, {RED_CUBE: path})
    late = _frames(30, {BLUE_SPHERE: path})
    tracks = track_detections([late[f] if f >= 16 else d for f, d in enumerate(dets)], image_hw=(320, 480))
    assert len(tracks) == 1 and len(tracks[0]) == 26


def test_a_short_entrant_is_joined_back():
    # a part shorter than min_length is not made a track of its own (it would be dropped as a blip)
    dets = _exit_then_entry(("yellow", "rubber", "sphere"))[:24]  # the entrant seen in frames 20-23 only
    tracks = track_detections(dets, image_hw=(320, 480))
    assert len(tracks) == 1 and len(tracks[0]) == 19


def test_join_short_keeps_the_first_frames_of_an_object_that_vanished_into_a_merged_mask():
    # a cube seen in frames 0-3 only (fewer than min_length), hidden in frames 4-16, seen again from 17;
    # a green blip (other attributes) stays dropped, and so does a red cube blip at frames 8-9 out of reach
    seen = {f: (-1.0 - 0.05 * f, 1.8) for f in range(30) if not 4 <= f <= 16}
    dets = _frames(30, {RED_CUBE: seen, GREEN_CYL: {f: (2.0, 2.0) for f in range(5)}})
    far = _frames(30, {RED_CUBE: {8: (9.0, -9.0), 9: (9.0, -9.0)}})
    dets = [far[f] if f in (8, 9) else d for f, d in enumerate(dets)]
    shipped = track_detections(dets)
    assert [t.frames[0] for t in shipped] == [17]  # the first 4 frames are dropped as a blip
    joined = track_detections(dets, TrackConfig(join_short=1))
    assert len(joined) == 1 and joined[0].frames == [f for f in range(30) if not 4 <= f <= 16]
    assert np.allclose(joined[0].locations[0][:2], (-1.0, 1.8))
    assert joined[0].attributes() == dict(zip(VIDEO_ATTRIBUTES, RED_CUBE, strict=True))


def test_join_short_is_refused_unless_0_or_1():
    with pytest.raises(ConfigError, match="join_short"):
        TrackConfig(join_short=2)
