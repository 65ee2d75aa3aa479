"""Tracks -> the official annotation: velocities, visibility, the collision rule, the file round trip, scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from perception.video.annotate import (
    CONTACT_DISTANCE,
    VideoPerceptionConfig,
    at_rest,
    attribute_votes,
    distinct_looks,
    drop_closing_at_end,
    drop_unchanged_passes,
    drop_unstruck,
    end_slide_velocity,
    perception_config,
    second_partners,
    slow_drift,
    steady_areas,
    stop_coasts_at_contact,
    struck_at_end,
    struck_partners,
    touch_collisions,
    tracking_config,
    tracks_to_annotation,
    video_index,
    voted_attributes,
)
from perception.video.detect import (
    VIDEO_ATTRIBUTES,
    FrameDetections,
    drop_small,
    ground_backproject,
    largest_parts,
)
from perception.video.metrics import score_video, summarize
from perception.video.track import Track
from physics.errors import ConfigError
from physics.worlds.camera import CLEVR_CAMERA
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
    read_annotation,
    write_annotation,
)
from physics.worlds.clevrer_events import derive_events

HW = (320, 480)
HEIGHTS = {"cube": 0.2475, "sphere": 0.35, "cylinder": 0.35}
CAMERA = CLEVR_CAMERA.with_size(480, 320)


def _track(attrs: tuple[str, str, str], path: dict[int, tuple[float, float]], shape_z: float,
           areas: dict[int, float] | None = None) -> Track:
    """A track whose observations are the pixels where ``path``'s ground points show (mask areas ``areas``)."""
    t = Track()
    for f, (x, y) in sorted(path.items()):
        pixel = CAMERA.project(np.array([[x, y, shape_z]]))[0, :2]
        probs = {a: np.eye(len(ATTRIBUTES[a]))[ATTRIBUTES[a].index(v)] for a, v in zip(VIDEO_ATTRIBUTES, attrs, strict=True)}
        t.add(f, pixel, np.array([x, y, shape_z]), probs, np.nan if areas is None else areas[f])
    return t


def test_ground_backprojection_inverts_the_camera():
    points = np.array([[0.5, -1.0, 0.35], [-2.0, 2.5, 0.2475], [3.0, 0.0, 0.35]])
    pixel = CAMERA.project(points)[:, :2]
    back = ground_backproject(CLEVR_CAMERA, pixel, points[:, 2], HW)
    np.testing.assert_allclose(back, points, atol=1e-9)
    # the same field of view at a quarter of the size
    np.testing.assert_allclose(ground_backproject(CLEVR_CAMERA, pixel / 4, points[:, 2], (80, 120)), points, atol=1e-9)


def test_annotation_has_finite_difference_velocities_interpolated_gaps_and_round_trips(tmp_path):
    moving = {f: (-1.0 + 0.1 * f, 0.5) for f in range(20) if f not in (6, 7)}  # 2.5 units/s at 25 fps, hidden 6-7
    edge, centre = ground_backproject(CLEVR_CAMERA, np.array([[5.0, 200.0], [240.0, 160.0]]), np.full(2, 0.2475), HW)
    entering = {f: tuple(edge[:2] + (centre[:2] - edge[:2]) * (f - 5) / 14) for f in range(5, 20)}  # in at frame 5
    hidden = {f: (1.5, -1.0) for f in range(8, 20)}  # first seen at frame 8, well inside the image
    tracks = [_track(("red", "metal", "sphere"), moving, 0.35), _track(("gray", "rubber", "cube"), entering, 0.2475),
              _track(("blue", "rubber", "cylinder"), hidden, 0.35)]
    ann = tracks_to_annotation(tracks, list(range(20)), HW, HEIGHTS, scene_index=3, video_filename="video_00003.gif")
    assert [p.shape for p in ann.object_property] == ["sphere", "cube", "cylinder"]
    by_frame = [fr.by_id() for fr in ann.motion_trajectory]
    assert all(0 in fr and 2 in fr for fr in by_frame) and [1 in fr for fr in by_frame] == [f >= 5 for f in range(20)]
    np.testing.assert_allclose(by_frame[0][2].location, (1.5, -1.0, 0.35), atol=1e-4)  # held: it was hidden
    assert [(e.kind, e.frame, e.objects) for e in derive_events(ann.motion_trajectory, ann.collision)
            if e.kind == "in"] == [("in", 5, (1,))]
    np.testing.assert_allclose(by_frame[6][0].location, (-0.4, 0.5, 0.35), atol=1e-4)  # interpolated
    np.testing.assert_allclose(by_frame[10][0].velocity, (2.5, 0.0, 0.0), atol=1e-3)
    np.testing.assert_allclose(by_frame[10][2].velocity, (0.0, 0.0, 0.0), atol=1e-3)
    assert by_frame[10][1].location[2] == pytest.approx(0.2475)
    assert ann.collision == ()
    path = tmp_path / "annotation_00003.json"
    write_annotation(path, ann)
    assert read_annotation(path) == dataclasses.replace(ann, extra={})
    assert video_index(tmp_path / "video_00012") == 12


def _frames(paths: dict[int, dict[int, tuple[float, float]]], n: int) -> tuple[FrameStates, ...]:
    zero = (0.0, 0.0, 0.0)
    return tuple(
        FrameStates(f, tuple(ObjectState(k, (*p[f], 0.35), zero, zero, zero, True) for k, p in paths.items() if f in p))
        for f in range(n)
    )


def _bounce(f: int) -> float:
    """x of a sphere sliding at 0.4 a frame into x = -0.35, 1/8 of a frame after frame 4, and back."""
    return -2.0 + 0.4 * f if f <= 4 else -0.7 - 0.4 * (f - 5)


def test_a_bounce_inside_one_frame_is_a_collision_at_that_frame():
    # the two spheres meet between frames 4 and 5 and bounce apart: never closer than 0.8 at a frame
    a = {f: (_bounce(f), 0.0) for f in range(12)}
    b = {f: (-_bounce(f), 0.0) for f in range(12)}
    shapes = {0: "sphere", 1: "sphere"}
    found = touch_collisions(_frames({0: a, 1: b}, 12), shapes, 0.72, 0.03, 5)
    assert [(c.object_ids, c.frame_id) for c in found] == [((0, 1), 5)]
    np.testing.assert_allclose(found[0].location, (0.0, 0.0, 0.35), atol=1e-6)


def test_objects_resting_in_contact_collide_once_and_again_only_after_the_gap():
    apart = {f: (0.0, 0.0) for f in range(30)}
    # touches at frames 3-10, parts for 3 frames (< gap), touches again, parts for 8 frames, touches again
    near = {f: (0.7 if (3 <= f <= 10 or 14 <= f <= 16 or f >= 25) else 1.2, 0.0) for f in range(30)}
    found = touch_collisions(_frames({0: apart, 1: near}, 30), {0: "sphere", 1: "sphere"}, 0.72, 0.03, 5)
    assert [c.frame_id for c in found] == [3, 25]
    # two cubes resting 0.7 apart do not touch (their contact distance is 0.72 - 2 * 0.03); two spheres do
    resting = _frames({0: apart, 1: {f: (0.7, 0.0) for f in range(30)}}, 30)
    assert touch_collisions(resting, {0: "cube", 1: "cube"}, 0.72, 0.03, 5) == ()
    assert len(touch_collisions(resting, {0: "sphere", 1: "sphere"}, 0.72, 0.03, 5)) == 1


def _struck_by_two(x_rests: bool = True) -> dict[int, dict[int, tuple[float, float]]]:
    """Sphere 0 at the origin is struck in frame 6 by sphere 1 from the left and sphere 2 from the right.

    Sphere 1 comes within 0.61 (found by the touch rule); sphere 2 slows and its centre
    stops 0.85 away (as perceived centres of three touching objects come out). Sphere 3
    rests 0.8 below sphere 0 throughout and is not struck. With ``x_rests`` False,
    sphere 0 slides up at 0.05 a frame before the strike.
    """
    def x_path(f: int) -> tuple[float, float]:
        before = 0.0 if x_rests else 0.05 * (f - 5)
        return (0.0, before if f <= 5 else 0.1 * (f - 5))

    return {
        0: {f: x_path(f) for f in range(16)},
        1: {f: (-3.0 + 0.4 * f if f <= 6 else -0.7, 0.0) for f in range(16)},
        2: {f: (1.5 - 0.1 * f if f <= 5 else (0.84 if f == 6 else 0.9 + 0.05 * (f - 7)), 0.0) for f in range(16)},
        3: {f: (0.0, -0.8) for f in range(16)},
    }


def test_a_resting_object_struck_by_two_gets_its_second_partner():
    states = _frames(_struck_by_two(), 16)
    shapes = dict.fromkeys(range(4), "sphere")
    first = touch_collisions(states, shapes, 0.72, 0.03, 5)
    assert [(c.object_ids, c.frame_id) for c in first] == [((0, 1), 6)]  # the right-hand partner is missed
    both = second_partners(states, shapes, first, 0.72 + 0.15, 0.03, 5)
    assert [(c.object_ids, c.frame_id) for c in both] == [((0, 1), 6), ((0, 2), 6)]
    np.testing.assert_allclose(both[1].location, (0.42, 0.05, 0.35), atol=1e-6)
    # within a looser distance than the partner came, or with no collision to start from: nothing added
    assert second_partners(states, shapes, first, 0.72 + 0.05, 0.03, 5) == first
    assert second_partners(states, shapes, (), 0.87, 0.03, 5) == ()
    # a partner already colliding with it within the gap is not counted twice
    again = (*first, Collision((0, 2), 8, (0.0, 0.0, 0.35)))
    assert second_partners(states, shapes, again, 0.87, 0.03, 5) == tuple(sorted(again, key=lambda c: c.frame_id))


def test_no_second_partner_for_an_object_that_was_already_moving():
    states = _frames(_struck_by_two(x_rests=False), 16)
    shapes = dict.fromkeys(range(4), "sphere")
    first = touch_collisions(states, shapes, 0.72, 0.03, 5)
    assert second_partners(states, shapes, first, 0.87, 0.03, 5) == first


def test_video_perception_config_refuses_nonsense():
    with pytest.raises(ConfigError, match="contact_distance"):
        VideoPerceptionConfig(contact_distance=0.0)
    with pytest.raises(ConfigError, match="batch"):
        VideoPerceptionConfig(batch=0)
    with pytest.raises(ConfigError, match="rest_radius"):
        VideoPerceptionConfig(rest_radius=0.0)
    with pytest.raises(ConfigError, match="min_area"):
        VideoPerceptionConfig(min_area=1.5)


def test_a_resting_object_whose_centre_jitters_has_zero_velocity_and_a_sliding_one_keeps_its_own():
    rng = np.random.default_rng(0)
    # perceived centres of a resting object wander by about 0.01 units a frame (seed-60601 videos)
    resting = {f: tuple(np.array([0.5, -1.0]) + rng.normal(0.0, 0.006, 2)) for f in range(40)}
    # a slow slide (0.3 units/s, the slowest CLEVRER objects move) that stops at frame 20
    sliding = {f: (-1.0 + 0.012 * min(f, 20), 1.0) for f in range(40)}
    tracks = [_track(("red", "metal", "sphere"), resting, 0.35), _track(("gray", "rubber", "cube"), sliding, 0.2475)]
    plain = tracks_to_annotation(tracks, list(range(40)), HW, HEIGHTS, VideoPerceptionConfig(rest_window=0))
    ann = tracks_to_annotation(tracks, list(range(40)), HW, HEIGHTS)
    speed = np.array([[np.hypot(*fr.by_id()[o].velocity[:2]) for o in (0, 1)] for fr in ann.motion_trajectory])
    plain_speed = np.array([np.hypot(*fr.by_id()[0].velocity[:2]) for fr in plain.motion_trajectory])
    assert plain_speed.max() > 0.05  # without the rest test the jitter reads as motion (the executor's 0.05)
    assert np.all(speed[:, 0] == 0.0)
    np.testing.assert_allclose(speed[2:15, 1], 0.3, atol=1e-3)  # still sliding: untouched
    assert np.all(speed[27:, 1] == 0.0)
    # the locations themselves are not moved
    assert [fr.by_id()[0].location for fr in ann.motion_trajectory] == [fr.by_id()[0].location for fr in plain.motion_trajectory]


def test_at_rest_needs_every_centre_of_the_window_near_their_median():
    still = np.zeros((20, 3))
    assert at_rest(still, 3, 0.04).all() and not at_rest(still, 0, 0.04).any()
    jump = still.copy()
    jump[10:, 0] = 0.2  # moved between frames 9 and 10
    rest = at_rest(jump, 3, 0.04)
    assert rest[:7].all() and not rest[7:13].any() and rest[13:].all()


def test_steady_areas_flag_masks_cut_or_swollen_against_their_neighbours():
    frames = list(range(20))
    areas = [1400.0] * 20
    areas[8], areas[9], areas[15] = 1750.0, 1800.0, 900.0  # swollen by a neighbour's pixels; cut by one in front
    areas[12] = 1480.0  # within 10%: steady
    steady = steady_areas(frames, areas, 6, 0.1)
    assert np.flatnonzero(~steady).tolist() == [8, 9, 15]
    assert steady_areas(frames, areas, 0, 0.1).all()  # no window: every observation is steady
    assert steady_areas(frames, [np.nan] * 20, 6, 0.1).all()  # areas not known: steady
    # an object coming closer grows slowly: no observation stands out
    assert steady_areas(frames, [1000.0 * 1.01**f for f in frames], 6, 0.1).all()


def test_at_rest_looks_at_steady_centres_only_and_needs_them_on_both_sides():
    xy = np.zeros((20, 3))
    xy[8:11, 0] = 0.15  # the centre pulled towards a passing neighbour while its mask swells
    steady = np.ones(20, bool)
    steady[8:11] = False
    assert not at_rest(xy, 4, 0.04)[4:15].any()
    assert at_rest(xy, 4, 0.04, steady).all()
    # a struck object: steady centres after the unsteady stretch have moved, so it no longer rests there
    struck = np.zeros((20, 3))
    struck[8:, 0] = 0.1 * np.arange(12)
    rest = at_rest(struck, 4, 0.04, steady)
    assert rest[:6].all() and not rest[8:].any()
    # no steady centre after frame 7 within the window: frame 7 is not called at rest from one side alone
    only_before = np.ones(20, bool)
    only_before[8:12] = False
    assert not at_rest(np.zeros((20, 3)), 3, 0.04, only_before)[7:9].any()


def test_a_resting_object_whose_mask_swells_under_a_passing_one_stays_put():
    # seed 46464 video 21: a resting cylinder's mask takes a passing sphere's pixels for 5 frames,
    # its area grows 10-25% and its centre moves 0.15 units towards the sphere, then back
    still = {f: (0.5, -1.0) for f in range(40)}
    pulled = {f: ((0.65, -1.0) if 18 <= f <= 22 else xy) for f, xy in still.items()}
    areas = {f: (1750.0 if 18 <= f <= 22 else 1440.0) for f in range(40)}
    cfg = VideoPerceptionConfig(area_tolerance=0.1)
    ann = tracks_to_annotation([_track(("green", "rubber", "cylinder"), pulled, 0.35, areas)], list(range(40)), HW, HEIGHTS, cfg)
    plain = tracks_to_annotation([_track(("green", "rubber", "cylinder"), pulled, 0.35, areas)], list(range(40)), HW, HEIGHTS,
                                 VideoPerceptionConfig(excursion_frames=0))
    assert max(np.hypot(*fr.by_id()[0].velocity[:2]) for fr in plain.motion_trajectory) > 0.05  # both rules off: moving
    default = tracks_to_annotation([_track(("green", "rubber", "cylinder"), pulled, 0.35, areas)], list(range(40)), HW, HEIGHTS)
    assert all(fr.by_id()[0].velocity == (0.0, 0.0, 0.0) for fr in default.motion_trajectory)  # the excursion rule
    assert all(fr.by_id()[0].velocity == (0.0, 0.0, 0.0) for fr in ann.motion_trajectory)
    np.testing.assert_allclose([fr.by_id()[0].location[:2] for fr in ann.motion_trajectory], [(0.5, -1.0)] * 40, atol=1e-4)
    with pytest.raises(ConfigError, match="area_tolerance"):
        VideoPerceptionConfig(area_tolerance=0.0)


def test_small_masks_are_dropped_before_tracking():
    det = FrameDetections(
        3, np.array([[10.0, 200.0], [240.0, 160.0]]), np.zeros((2, 3)),
        {a: np.full((2, len(ATTRIBUTES[a])), 1.0 / len(ATTRIBUTES[a])) for a in VIDEO_ATTRIBUTES},
        np.array([82, 900]),
    )
    kept = drop_small([det], 0.0013, HW)  # 200 pixels of 480x320
    assert len(kept) == 1 and kept[0].frame == 3 and kept[0].area.tolist() == [900]
    np.testing.assert_allclose(kept[0].pixel, [[240.0, 160.0]])
    assert all(p.shape == (1, len(ATTRIBUTES[a])) for a, p in kept[0].probs.items())
    assert len(drop_small([det], 0.0, HW)[0]) == 2


def _truth() -> VideoAnnotation:
    a = {f: (_bounce(f), 0.0) for f in range(12)}
    b = {f: (-_bounce(f), 0.0) for f in range(12)}
    props = (ObjectProperty(0, "red", "metal", "sphere"), ObjectProperty(1, "blue", "rubber", "cube"))
    return VideoAnnotation(0, "video_00000.gif", props, _frames({0: a, 1: b}, 12), (Collision((0, 1), 5, (0.0, 0.0, 0.35)),))


def test_scores_are_perfect_for_the_truth_under_other_ids_and_count_what_is_wrong():
    true = _truth()
    swap = {0: 1, 1: 0}
    renamed = dataclasses.replace(
        true,
        object_property=tuple(dataclasses.replace(p, object_id=swap[p.object_id]) for p in reversed(true.object_property)),
        motion_trajectory=tuple(FrameStates(fr.frame_id, tuple(dataclasses.replace(o, object_id=swap[o.object_id])
                                                               for o in fr.objects)) for fr in true.motion_trajectory),
    )
    perfect = summarize([score_video(renamed, true)])
    assert perfect["identity_accuracy"] == 1.0 and perfect["id_switches"] == 0
    assert perfect["attribute_accuracy"]["all"] == 1.0 and perfect["location_error"] == 0.0
    assert perfect["events"]["collision"]["f1"] == 1.0
    # a wrong colour, and the collision 3 frames late (outside the 2-frame tolerance)
    wrong = dataclasses.replace(
        true,
        object_property=(dataclasses.replace(true.object_property[0], color="green"), true.object_property[1]),
        collision=(Collision((0, 1), 8, (0.0, 0.0, 0.35)),),
    )
    scores = summarize([score_video(wrong, true)])
    assert scores["attribute_accuracy"]["color"] == 0.5 and scores["attribute_accuracy"]["shape"] == 1.0
    assert scores["events"]["collision"]["hits"] == 0 and scores["events"]["collision"]["f1"] == 0.0
    two_late = dataclasses.replace(true, collision=(Collision((0, 1), 7, (0.0, 0.0, 0.35)),))
    assert summarize([score_video(two_late, true)])["events"]["collision"]["hits"] == 1


def test_a_mask_keeps_its_largest_connected_part():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True  # the object
    masks[0, 8:10, 0:2] = True  # a shadow's pixels given to it
    masks[1, 0:3, 9:12] = True
    kept = largest_parts(masks)
    assert int(kept[0].sum()) == 16 and not kept[0, 8:, :2].any()
    assert torch.equal(kept[1], masks[1])


def test_a_resting_track_whose_centre_leaves_and_comes_back_rests_throughout():
    from perception.video.annotate import settle_excursions

    xy = np.zeros((60, 3))
    xy[:, :2] = (1.0, -0.5)
    xy[28:31, 0] += 0.15  # a passing object swells the mask for 3 frames; the object does not move
    rest = at_rest(xy, 6, 0.04)
    assert not rest[25:34].any()
    loc = xy.copy()
    settled = settle_excursions(loc, rest, 20, 0.04)
    assert settled.all()
    np.testing.assert_allclose(loc[:, :2], np.tile((1.0, -0.5), (60, 1)), atol=1e-9)
    # struck: it slides 0.5 units and stops elsewhere, so it moved
    moved = np.zeros((60, 3))
    moved[:, :2] = (1.0, -0.5)
    moved[28:36, 0] += np.linspace(0.06, 0.5, 8)
    moved[36:, 0] += 0.5
    loc = moved.copy()
    settled = settle_excursions(loc, at_rest(moved, 6, 0.04), 20, 0.04)
    assert not settled[28:36].any()
    np.testing.assert_array_equal(loc, moved)
    # an excursion longer than allowed (a stay of 30 frames elsewhere) is left alone
    long = np.zeros((80, 3))
    long[30:60, 0] = 0.15
    loc = long.copy()
    settle_excursions(loc, at_rest(long, 6, 0.04), 20, 0.04)
    np.testing.assert_array_equal(loc, long)


def test_the_pixel_perceiver_settles_excursions_by_default():
    still = {f: (1.0, -0.5) if not 28 <= f <= 30 else (1.15, -0.5) for f in range(60)}
    tracks = [_track(("blue", "metal", "cylinder"), still, 0.35)]
    on = tracks_to_annotation(tracks, list(range(60)), HW, HEIGHTS)
    off = tracks_to_annotation(tracks, list(range(60)), HW, HEIGHTS, VideoPerceptionConfig(excursion_frames=0))
    assert all(o.velocity == (0.0, 0.0, 0.0) for fr in on.motion_trajectory for o in fr.objects)
    assert any(o.velocity != (0.0, 0.0, 0.0) for fr in off.motion_trajectory for o in fr.objects)


def test_a_touch_with_a_cube_is_dated_where_the_pair_stops_closing_in():
    # a sphere slides at 0.04 a frame towards a resting cube and stops against its face (0.6 apart) at frame 12;
    # the contact distance less one cube inset (0.69) is crossed at frame 10
    sphere = {f: (-(0.6 + 0.04 * max(0, 12 - f)), 0.0) for f in range(25)}
    cube = {f: (0.0, 0.0) for f in range(25)}
    shapes = {0: "sphere", 1: "cube"}
    plain = touch_collisions(_frames({0: sphere, 1: cube}, 25), shapes, 0.72, 0.03, 5)
    settled = touch_collisions(_frames({0: sphere, 1: cube}, 25), shapes, 0.72, 0.03, 5, cube_settle=5)
    assert [c.frame_id for c in plain] == [10]
    assert [c.frame_id for c in settled] == [12]
    np.testing.assert_allclose(settled[0].location[:2], (-0.3, 0.0), atol=1e-6)
    # two spheres: the rule leaves them alone
    assert [c.frame_id for c in touch_collisions(_frames({0: sphere, 1: cube}, 25), {0: "sphere", 1: "sphere"},
                                                 0.72, 0.03, 5, cube_settle=5)] == [10]


def test_tracking_locations_on_one_plane_do_not_jump_when_a_shape_is_misread():
    from perception.video.detect import at_height

    pixel = CAMERA.project(np.array([[-2.9, 2.1, 0.35]]))[:, :2]
    probs = {a: np.eye(len(ATTRIBUTES[a]))[[0]] for a in VIDEO_ATTRIBUTES}
    as_cube = FrameDetections(0, pixel, ground_backproject(CLEVR_CAMERA, pixel, np.array([0.2475]), HW), probs, np.array([800]))
    as_sphere = FrameDetections(1, pixel, ground_backproject(CLEVR_CAMERA, pixel, np.array([0.35]), HW), probs, np.array([800]))
    assert np.linalg.norm(as_cube.location[0, :2] - as_sphere.location[0, :2]) > 0.2
    a, b = at_height([as_cube, as_sphere], CLEVR_CAMERA, HW, 0.35)
    np.testing.assert_allclose(a.location, b.location, atol=1e-9)
    np.testing.assert_allclose(b.location[0], (-2.9, 2.1, 0.35), atol=1e-6)
    assert a.pixel is as_cube.pixel and a.area is as_cube.area


def test_perception_settings_parse_and_refuse_nonsense():
    from perception.video.annotate import perception_config

    cfg = perception_config(["cube_settle=0", "track_height=none", "contact_distance=0.7"])
    assert (cfg.cube_settle, cfg.track_height, cfg.contact_distance) == (0, None, 0.7)
    assert perception_config([]) == VideoPerceptionConfig()
    for bad, match in (("bogus=1", "KEY=VALUE"), ("cube_settle", "KEY=VALUE"), ("cube_settle=nan", "finite"),
                       ("cube_settle=1.5", "whole"), ("cube_settle=x", "not a number"), ("cube_settle=-1", "cube_settle"),
                       ("contact_distance=none", "cannot be none"), ("track_height=inf", "finite"),
                       ("track_height=-1", "track_height")):
        with pytest.raises(ConfigError, match=match):
            perception_config([bad])


def test_detections_round_trip_through_the_cache_file(tmp_path):
    from perception.video.detect import load_detections, save_detections
    from physics.errors import DataError

    rng = np.random.default_rng(0)
    dets = []
    for f, k in enumerate((2, 0, 3)):
        probs = {a: rng.random((k, len(ATTRIBUTES[a]))) for a in VIDEO_ATTRIBUTES}
        dets.append(FrameDetections(f, rng.random((k, 2)), rng.random((k, 3)), probs, rng.integers(0, 900, k)))
    save_detections(tmp_path / "v.npz", dets, (320, 480))
    back, hw = load_detections(tmp_path / "v.npz")
    assert hw == (320, 480) and [d.frame for d in back] == [0, 1, 2] and [len(d) for d in back] == [2, 0, 3]
    for d, e in zip(dets, back, strict=True):
        np.testing.assert_array_equal(d.pixel, e.pixel)
        np.testing.assert_array_equal(d.location, e.location)
        np.testing.assert_array_equal(d.area, e.area)
        for a in VIDEO_ATTRIBUTES:
            np.testing.assert_array_equal(d.probs[a], e.probs[a])
    (tmp_path / "bad.npz").write_bytes(b"not a file")
    with pytest.raises(DataError, match="bad.npz"):
        load_detections(tmp_path / "bad.npz")
    # an unwritable cache is named, not a stack trace from numpy, and leaves no partial file
    from physics.errors import OutputError

    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputError, match="file"):
        save_detections(tmp_path / "file" / "v.npz", dets, (320, 480))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "file", "v.npz"]


def test_perception_cache_folder_that_cannot_be_made_is_named(tmp_path):
    from physics.errors import OutputError
    from reasoning.nsdr import perception_for

    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputError, match="perception cache folder"):
        perception_for("model", cache=str(tmp_path / "file" / "cache"))


def _tipped_track() -> Track:
    """Rests for 10 frames read 'gray metal cylinder', then slides 30 frames read 'gray rubber sphere'."""
    still = _track(("gray", "metal", "cylinder"), {f: (1.0, 0.5) for f in range(10)}, 0.35)
    sliding = _track(("gray", "rubber", "sphere"), {f: (1.0 - 0.1 * (f - 9), 0.5) for f in range(10, 40)}, 0.35)
    still.absorb(sliding)
    return still


def test_a_track_with_enough_resting_reads_takes_its_attributes_from_them():
    track = _tipped_track()
    everyone = voted_attributes(track, HW, VideoPerceptionConfig(rest_votes=0))
    assert everyone == track.attributes() == {"color": "gray", "material": "rubber", "shape": "sphere"}
    resting = voted_attributes(track, HW, VideoPerceptionConfig(rest_votes=3))
    assert resting == {"color": "gray", "material": "metal", "shape": "cylinder"}
    # fewer resting observations (frames 0-3 rest with a 6-frame window) than asked: every observation votes
    assert voted_attributes(track, HW, VideoPerceptionConfig(rest_votes=5)) == everyone
    ann = tracks_to_annotation([track], list(range(40)), HW, HEIGHTS, VideoPerceptionConfig(rest_votes=3))
    assert (ann.object_property[0].material, ann.object_property[0].shape) == ("metal", "cylinder")


def test_observations_at_the_image_edge_weigh_edge_weight_unless_every_one_is_there():
    # ground points whose pixels lie at the image's left edge (within 5% of the width) and well inside it
    edge = [p for p in ((x, y) for x in np.linspace(-4, 4, 81) for y in np.linspace(-4, 4, 81))
            if 0 <= CAMERA.project(np.array([[*p, 0.35]]))[0, 0] < 0.04 * 480
            and 20 < CAMERA.project(np.array([[*p, 0.35]]))[0, 1] < 300]
    assert edge, "no ground point shows at the left edge"
    cut = _track(("red", "rubber", "cube"), {f: edge[0] for f in range(6)}, 0.35)
    whole = _track(("red", "rubber", "sphere"), {f: (0.0, 0.0) for f in range(6, 10)}, 0.35)
    cut.absorb(whole)
    assert voted_attributes(cut, HW, VideoPerceptionConfig(edge_weight=1.0))["shape"] == "cube"
    assert voted_attributes(cut, HW, VideoPerceptionConfig(edge_weight=0.2))["shape"] == "sphere"
    only_edge = _track(("red", "rubber", "cube"), {f: edge[0] for f in range(6)}, 0.35)
    assert voted_attributes(only_edge, HW, VideoPerceptionConfig(edge_weight=0.0))["shape"] == "cube"


def test_vote_settings_refuse_nonsense():
    with pytest.raises(ConfigError, match="rest_votes"):
        VideoPerceptionConfig(rest_votes=-1)
    with pytest.raises(ConfigError, match="edge_weight"):
        VideoPerceptionConfig(edge_weight=1.5)
    for bad, match in (("rest_votes=2.5", "whole"), ("edge_weight=-0.1", "edge_weight"), ("edge_weight=nan", "finite"),
                       ("rest_votes=none", "cannot be none")):
        with pytest.raises(ConfigError, match=match):
            perception_config([bad])
    assert perception_config(["rest_votes=4", "edge_weight=0.5"]).rest_votes == 4


def test_second_partner_and_reentry_settings_refuse_nonsense():
    with pytest.raises(ConfigError, match="second_partner"):
        VideoPerceptionConfig(second_partner=-0.1)
    with pytest.raises(ConfigError, match="split_reentries"):
        VideoPerceptionConfig(split_reentries=2)
    for bad, match in (("second_partner=-1", "second_partner"), ("second_partner=nan", "finite"),
                       ("second_partner=x", "not a number"), ("split_reentries=0.5", "whole"),
                       ("split_reentries=3", "split_reentries"), ("split_reentries=none", "cannot be none")):
        with pytest.raises(ConfigError, match=match):
            perception_config([bad])
    cfg = perception_config(["second_partner=0.15", "split_reentries=0"])
    assert (cfg.second_partner, cfg.split_reentries) == (0.15, 0)


def test_coasting_carries_a_moving_track_lost_inside_the_image_on_and_leaves_resting_and_edge_tracks_held():
    n = 30
    # slides at 0.05 a frame (1.25 units/s) until frame 16, shrinking to a sliver (whose centre runs ahead)
    # in frames 14-16 as it goes behind another object, then is not seen: lost inside the image while moving
    sliding = {f: (-1.0 + 0.05 * f, 0.5) for f in range(14)}
    sliding.update({14: (-0.25, 0.5), 15: (-0.15, 0.5), 16: (-0.05, 0.5)})
    areas = {f: 700.0 if f < 14 else {14: 500.0, 15: 400.0, 16: 230.0}[f] for f in sliding}
    resting = {f: (1.5, -1.0) for f in range(17)}  # at rest, lost inside the image at frame 16
    # leaves across the image's left edge while moving
    edge, centre = ground_backproject(CLEVR_CAMERA, np.array([[5.0, 200.0], [240.0, 200.0]]), np.full(2, 0.35), HW)
    leaving = {f: tuple(centre[:2] + (edge[:2] - centre[:2]) * f / 16) for f in range(17)}
    tracks = [_track(("red", "rubber", "cube"), sliding, 0.2475, areas),
              _track(("blue", "metal", "cylinder"), resting, 0.35, {f: 1500.0 for f in resting}),
              _track(("green", "rubber", "sphere"), leaving, 0.35, {f: 900.0 for f in leaving})]
    held = tracks_to_annotation(tracks, list(range(n)), HW, HEIGHTS, VideoPerceptionConfig(coast_frames=0))
    coasted = tracks_to_annotation(tracks, list(range(n)), HW, HEIGHTS, VideoPerceptionConfig(coast_frames=8))
    h = [fr.by_id() for fr in held.motion_trajectory]
    c = [fr.by_id() for fr in coasted.motion_trajectory]
    # off: held at the sliver's last centre from frame 16 on
    np.testing.assert_allclose(h[25][0].location[:2], (-0.05, 0.5), atol=1e-4)
    np.testing.assert_allclose(h[25][0].velocity, (0.0, 0.0, 0.0), atol=1e-6)
    # on: from the last steady observation (frame 13, x = -0.35) at 0.05 a frame, to 8 frames past frame 16
    for f in (14, 16, 20, 24):
        np.testing.assert_allclose(c[f][0].location[:2], (-0.35 + 0.05 * (f - 13), 0.5), atol=1e-4)
    np.testing.assert_allclose(c[20][0].velocity, (1.25, 0.0, 0.0), atol=1e-3)
    np.testing.assert_allclose(c[29][0].location[:2], (-0.35 + 0.05 * 11, 0.5), atol=1e-4)  # held after frame 24
    # the resting track is not moved, the track that left across the edge is not extended
    for ann in (h, c):
        for f in (16, 29):
            np.testing.assert_allclose(ann[f][1].location[:2], (1.5, -1.0), atol=1e-4)
        assert max(f for f in range(n) if 2 in ann[f]) == 16
    for f in range(17):
        assert c[f][1] == h[f][1] and c[f][2] == h[f][2]
    assert perception_config(["coast_frames=8"]).coast_frames == 8
    with pytest.raises(ConfigError, match="coast_frames"):
        VideoPerceptionConfig(coast_frames=-1)
    with pytest.raises(ConfigError, match="coast_area"):
        VideoPerceptionConfig(coast_area=0.0)


def test_coast_stop_holds_a_coasted_track_where_it_meets_the_object_it_vanished_beside():
    n = 30
    # a cylinder slides at 0.05 a frame towards a sphere resting at x = -0.5 and vanishes (merged mask) after
    # frame 13, inside the image; a cube slides far away and vanishes the same way, meeting nobody
    sliding = {f: (-2.0 + 0.05 * f, 0.0) for f in range(14)}
    resting = {f: (-0.5, 0.0) for f in range(n)}
    far = {f: (2.0 - 0.05 * f, -2.0) for f in range(14)}
    tracks = [_track(("red", "rubber", "cylinder"), sliding, 0.35, {f: 900.0 for f in sliding}),
              _track(("blue", "metal", "sphere"), resting, 0.35, {f: 900.0 for f in resting}),
              _track(("green", "rubber", "cube"), far, 0.2475, {f: 700.0 for f in far})]
    frames = list(range(n))
    through = tracks_to_annotation(tracks, frames, HW, HEIGHTS, VideoPerceptionConfig(coast_frames=20, coast_stop=0))
    stopped = tracks_to_annotation(tracks, frames, HW, HEIGHTS, VideoPerceptionConfig(coast_frames=20, coast_stop=1))
    assert stopped == tracks_to_annotation(tracks, frames, HW, HEIGHTS)  # coast_stop 1 is the default
    t = [fr.by_id() for fr in through.motion_trajectory]
    s = [fr.by_id() for fr in stopped.motion_trajectory]
    # coasting alone carries the cylinder through the sphere to x = -0.55 at frame 29
    np.testing.assert_allclose(t[29][0].location[:2], (-0.55, 0.0), atol=1e-4)
    # with the stop: on its line until frame 16, the first under the contact distance (0.70 < 0.72), then held
    np.testing.assert_allclose(s[15][0].location[:2], (-1.25, 0.0), atol=1e-4)
    for f in (16, 22, 29):
        np.testing.assert_allclose(s[f][0].location[:2], (-1.2, 0.0), atol=1e-4)
        np.testing.assert_allclose(s[f][0].velocity, (0.0, 0.0, 0.0), atol=1e-6)
    assert [(c.frame_id, sorted(c.object_ids)) for c in stopped.collision] == [(16, [0, 1])]
    # the cube meets nobody: coasted the same either way; before the coast nothing changes
    for f in range(n):
        assert s[f][2] == t[f][2] and s[f][1] == t[f][1]
    for f in range(14):
        assert s[f][0] == t[f][0]
    assert perception_config(["coast_stop=1"]).coast_stop == 1
    with pytest.raises(ConfigError, match="coast_stop"):
        VideoPerceptionConfig(coast_stop=2)


def test_coast_ride_moves_a_stopped_coast_on_with_the_object_it_met():
    n = 30
    # the cylinder of the coast_stop test meets the sphere at frame 16 (0.70 < 0.72); the sphere, struck, slides
    # off at 0.03 a frame from frame 16 to 25 and rests there (frames 26-29)
    sliding = {f: (-2.0 + 0.05 * f, 0.0) for f in range(14)}
    struck = {f: (-0.5 + 0.03 * min(max(f - 16, 0), 9), 0.0) for f in range(n)}
    tracks = [_track(("red", "rubber", "cylinder"), sliding, 0.35, {f: 900.0 for f in sliding}),
              _track(("blue", "metal", "sphere"), struck, 0.35, {f: 900.0 for f in struck})]
    frames = list(range(n))
    held = tracks_to_annotation(tracks, frames, HW, HEIGHTS)  # coast_ride 0, the default: held at rest
    ride = tracks_to_annotation(tracks, frames, HW, HEIGHTS, perception_config(["coast_ride=1"]))
    h = [fr.by_id() for fr in held.motion_trajectory]
    r = [fr.by_id() for fr in ride.motion_trajectory]
    for f in (16, 22, 29):
        np.testing.assert_allclose(h[f][0].location[:2], (-1.2, 0.0), atol=1e-4)
    # with the ride: 0.70 behind the sphere from frame 16 on, at the sphere's velocity, then resting with it
    for f in (16, 20, 25, 29):
        np.testing.assert_allclose(r[f][0].location[:2], (r[f][1].location[0] - 0.7, 0.0), atol=1e-4)
        np.testing.assert_allclose(r[f][0].velocity, r[f][1].velocity, atol=1e-6)
    np.testing.assert_allclose(r[29][0].location[:2], (-1.2 + 0.27, 0.0), atol=1e-4)
    assert r[20][0].velocity[0] > 0.5 and r[29][0].velocity == (0.0, 0.0, 0.0)
    for f in range(16):
        assert r[f] == h[f]
    assert [c.frame_id for c in ride.collision] == [c.frame_id for c in held.collision] == [16]
    assert VideoPerceptionConfig().coast_ride == 0  # off by default
    with pytest.raises(ConfigError, match="coast_ride must be 0"):
        perception_config(["coast_ride=2"])
    with pytest.raises(ConfigError, match="coast_ride 1 needs coast_stop 1"):
        perception_config(["coast_ride=1", "coast_stop=0"])


def test_coast_ride_holds_where_the_object_ridden_with_leaves():
    frames = np.arange(6)
    coasted = np.array([False, False, True, True, True, True])
    lost = np.c_[np.linspace(-1.5, -1.0, 6), np.zeros(6), np.full(6, 0.35)]  # coasted on its line from frame 2
    met = np.c_[[-0.7, -0.7, -0.7, -0.5], np.zeros(4), np.full(4, 0.35)]  # pushed on at frame 3, then gone
    met_velocity = np.zeros((4, 3))
    met_velocity[2:, 0] = 2.5
    states = [(frames, lost, np.zeros((6, 3)), np.ones(6, bool), None, coasted),
              (frames[:4], met, met_velocity, np.ones(4, bool), None, np.zeros(4, bool))]
    out = stop_coasts_at_contact(states, {0: "sphere", 1: "sphere"}, VideoPerceptionConfig(coast_ride=1))
    # meets it at frame 2 (0.6 apart), rides 0.6 behind it to frame 3, then is held where the ride ended
    np.testing.assert_allclose(out[0][1][:, 0], [-1.5, -1.4, -1.3, -1.1, -1.1, -1.1], atol=1e-12)
    np.testing.assert_allclose(out[0][2][:, 0], [0.0, 0.0, 2.5, 2.5, 0.0, 0.0])
    assert out[1] is states[1] and np.array_equal(lost[:, 0], np.linspace(-1.5, -1.0, 6))  # inputs unchanged
    held = stop_coasts_at_contact(states, {0: "sphere", 1: "sphere"}, VideoPerceptionConfig())
    np.testing.assert_allclose(held[0][1][2:, 0], -1.3)  # coast_ride 0: held where it met it


def test_join_short_is_a_perception_setting_that_reaches_the_tracker():
    config = perception_config(["join_short=0"])
    assert config.join_short == 0 and tracking_config(config).join_short == 0
    assert tracking_config(VideoPerceptionConfig()).join_short == 1  # the default reaches the tracker
    with pytest.raises(ConfigError, match="join_short"):
        perception_config(["join_short=3"])


def test_collision_release_keeps_a_pair_resting_side_by_side_one_collision():
    still = {f: (0.0, 0.0) for f in range(80)}
    # slides in, touches at frame 4 (0.7), then rests beside it at 0.74-0.76 (over the 0.72 contact distance)
    # dipping to 0.71 every 9 frames: the perceived wobble of seed 55221 video 7 (frames 94-125)
    wobble = {f: (1.5 - 0.2 * f if f < 5 else (0.71 if f % 9 == 5 else 0.74 + 0.01 * (f % 3)), 0.0) for f in range(80)}
    shapes = {0: "sphere", 1: "sphere"}
    states = _frames({0: still, 1: wobble}, 80)
    assert [c.frame_id for c in touch_collisions(states, shapes, 0.72, 0.03, 5)] == [4, 14, 23, 32, 41, 50, 59, 68, 77]
    assert [c.frame_id for c in touch_collisions(states, shapes, 0.72, 0.03, 5, release=0.05)] == [4]
    # two genuine collisions: the pair parts to 1.2 for 8 frames (more than the gap) and meets again
    twice = {f: (0.7 if (3 <= f <= 10 or f >= 19) else 1.2, 0.0) for f in range(30)}
    again = _frames({0: still, 1: twice}, 30)
    assert [c.frame_id for c in touch_collisions(again, shapes, 0.72, 0.03, 5, release=0.05)] == [3, 19]


def test_collision_release_is_a_setting_and_refuses_a_negative_value():
    assert perception_config(["collision_release=0.05"]).collision_release == 0.05
    assert VideoPerceptionConfig().collision_release == 0.05  # the default
    with pytest.raises(ConfigError, match="collision_release"):
        perception_config(["collision_release=-0.1"])


def test_collision_release_holds_no_pair_in_contact_before_it_touches_again():
    still = {f: (0.0, 0.0) for f in range(30)}
    # touches at 3-6, parts to 1.2 at 7-14, jumps to 0.75 (under 0.72 + 0.05) at 15, so the
    # path carried on from there touches at 16: a new collision, not held in contact since frame 6
    path = {f: (0.7 if 3 <= f <= 6 or f >= 17 else (0.75 if f in (15, 16) else 1.2), 0.0) for f in range(30)}
    found = touch_collisions(_frames({0: still, 1: path}, 30), {0: "sphere", 1: "sphere"}, 0.72, 0.03, 5, release=0.05)
    assert [c.frame_id for c in found] == [3, 16]


def _moving_frames(paths: dict[int, dict[int, tuple[float, float]]], n: int) -> tuple[FrameStates, ...]:
    """Like ``_frames``, with each object's velocity the frame-to-frame change of its centre (units per frame)."""
    zero = (0.0, 0.0, 0.0)

    def vel(p: dict[int, tuple[float, float]], f: int) -> tuple[float, float, float]:
        g = f - 1 if f - 1 in p else f
        h = f + 1 if f + 1 in p else f
        return ((p[h][0] - p[g][0]) / max(h - g, 1), (p[h][1] - p[g][1]) / max(h - g, 1), 0.0)

    return tuple(FrameStates(f, tuple(ObjectState(k, (*p[f], 0.35), zero, vel(p, f), zero, True)
                                      for k, p in paths.items() if f in p)) for f in range(n))


def test_drop_closing_at_end_drops_a_last_frames_touch_no_bounce_follows():
    still = {f: (0.0, 0.0) for f in range(20)}
    # closes in at 0.1 a frame, under the 0.72 contact distance at frame 18, still closing at 19 (the last)
    closing = {f: (2.5 - 0.1 * f, 0.0) for f in range(20)}
    states = _frames({0: still, 1: closing}, 20)
    found = touch_collisions(states, {0: "sphere", 1: "sphere"}, 0.72, 0.03, 5)
    assert [c.frame_id for c in found] == [18]
    assert drop_closing_at_end(states, found, 2) == () and drop_closing_at_end(states, found, 1) == found
    # the same touch, then the pair parts at the last frame: the bounce is seen, kept
    bounced = {**closing, 19: (0.85, 0.0)}
    seen = _frames({0: still, 1: bounced}, 20)
    kept = touch_collisions(seen, {0: "sphere", 1: "sphere"}, 0.72, 0.03, 5)
    assert [c.frame_id for c in kept] == [18] and drop_closing_at_end(seen, kept, 2) == kept
    # a touch before the last W frames is never looked at, however the pair moves afterwards
    early = states
    at17 = (Collision((0, 1), 17, (0.4, 0.0, 0.35)),)
    assert drop_closing_at_end(early, at17, 2) == at17 and drop_closing_at_end(early, at17, 3) == ()
    # a pair with an object missing at one of the frames is kept
    gone = _frames({0: {f: (0.0, 0.0) for f in range(19)}, 1: closing}, 20)
    at18 = (Collision((0, 1), 18, (0.4, 0.0, 0.35)),)
    assert drop_closing_at_end(gone, at18, 2) == at18
    with pytest.raises(ConfigError, match="at least 1"):
        drop_closing_at_end(states, found, 0)


def test_closing_end_frames_is_a_setting_that_tracks_to_annotation_applies():
    assert VideoPerceptionConfig().closing_end_frames == 0
    assert perception_config(["closing_end_frames=2"]).closing_end_frames == 2
    with pytest.raises(ConfigError, match="closing_end_frames"):
        perception_config(["closing_end_frames=-1"])
    # two spheres sliding at each other, meeting at the last of 20 frames
    a = _track(("red", "rubber", "sphere"), {f: (-0.35 - 0.06 * (19 - f), 0.0) for f in range(20)}, 0.35)
    b = _track(("blue", "rubber", "sphere"), {f: (0.35 + 0.06 * (19 - f), 0.0) for f in range(20)}, 0.35)
    cfg = VideoPerceptionConfig(rest_window=0, second_partner=0.0)
    plain = tracks_to_annotation([a, b], list(range(20)), HW, HEIGHTS, cfg)
    assert [c.frame_id for c in plain.collision] == [19]
    cut = tracks_to_annotation([a, b], list(range(20)), HW, HEIGHTS, dataclasses.replace(cfg, closing_end_frames=2))
    assert cut.collision == () and cut.motion_trajectory == plain.motion_trajectory


def test_drop_unstruck_drops_a_touch_that_leaves_a_resting_object_resting():
    still = {f: (0.0, 0.0) for f in range(30)}
    # a passer grazes the resting sphere at frame 10 (0.7 apart) and slides on; the sphere never moves
    passer = {f: (-1.5 + 0.15 * f, 0.7) for f in range(30)}
    states = _moving_frames({0: still, 1: passer}, 30)
    graze = (Collision((0, 1), 10, (0.0, 0.35, 0.35)),)
    assert drop_unstruck(states, graze, 3) == ()
    # struck: the resting sphere moves off at frame 11
    struck = {f: (0.0 if f <= 10 else 0.1 * (f - 10), 0.0) for f in range(30)}
    hit = _moving_frames({0: struck, 1: passer}, 30)
    assert drop_unstruck(hit, graze, 3) == graze
    # too near the end to see what follows: kept
    late = (Collision((0, 1), 27, (0.0, 0.35, 0.35)),)
    assert drop_unstruck(states, late, 3) == late
    assert VideoPerceptionConfig().unstruck_frames == 0 and perception_config(["unstruck_frames=3"]).unstruck_frames == 3
    with pytest.raises(ConfigError, match="unstruck_frames"):
        VideoPerceptionConfig(unstruck_frames=-1)
    with pytest.raises(ConfigError, match="at least 1"):
        drop_unstruck(states, graze, 0)


def test_drift_window_reads_a_sphere_creeping_to_a_stop_as_moving_and_a_jittering_one_as_resting():
    rng = np.random.default_rng(0)
    n = 60
    jitter = rng.normal(0.0, 0.008, (n, 2))
    # 0.003 units a frame (0.075 units/s at 25 fps): within the rest test's 0.04 over its 13 frames
    creep = _track(("red", "rubber", "sphere"), {f: (-1.0 + 0.003 * f + jitter[f, 0], 0.5 + jitter[f, 1]) for f in range(n)}, 0.35)
    still = _track(("blue", "rubber", "sphere"), {f: (1.5 + jitter[f, 1], -1.0 + jitter[f, 0]) for f in range(n)}, 0.35)
    plain = tracks_to_annotation([creep, still], list(range(n)), HW, HEIGHTS)
    drift = tracks_to_annotation([creep, still], list(range(n)), HW, HEIGHTS, VideoPerceptionConfig(drift_window=15))

    def speeds(ann, oid):
        return np.array([np.hypot(*fr.by_id()[oid].velocity[:2]) for fr in ann.motion_trajectory])

    assert (speeds(plain, 0) == 0.0).mean() > 0.5  # the rest test alone: resting most of the time
    assert (speeds(drift, 0) > 0.05).all() and np.allclose(speeds(drift, 0), 0.075, atol=0.02)
    assert (speeds(drift, 1) == speeds(plain, 1)).all() and (speeds(drift, 1) == 0.0).all()
    assert drift.motion_trajectory[10].by_id()[0].location == plain.motion_trajectory[10].by_id()[0].location
    # the function alone: frames not resting, and windows too short, give NaN
    xy = np.c_[0.003 * np.arange(n), np.zeros(n)]
    out = slow_drift(xy, np.r_[np.zeros(5, bool), np.ones(n - 5, bool)], 15, 0.06 / 25, 0.02)
    assert np.isnan(out[:5]).all() and np.allclose(out[5:, 0], 0.003) and np.allclose(out[5:, 1], 0.0)
    assert np.isnan(slow_drift(xy[:10], np.ones(10, bool), 15, 0.06 / 25, 0.02)).all()
    assert VideoPerceptionConfig().drift_window == 0 and perception_config(["drift_window=15"]).drift_window == 15
    with pytest.raises(ConfigError, match="drift"):
        VideoPerceptionConfig(drift_window=-1)
    with pytest.raises(ConfigError, match="drift"):
        VideoPerceptionConfig(drift_speed=0.0)


def test_end_slide_reads_a_cylinder_sliding_to_a_stop_at_the_last_frame_as_stopped_and_keeps_a_fast_one_moving():
    rng = np.random.default_rng(3)
    n, fps, decel = 40, 25, 2.415
    t = np.arange(n) / fps
    # truth: stops at the last frame (the executor's moving speed is 0.05 units/s)
    v0 = decel * (n - 1) / fps
    stop = v0 * t - 0.5 * decel * t ** 2
    # a cube passing through the end at 1 unit/s
    fast = (1.0 + decel * t[-1]) * t - 0.5 * decel * t ** 2
    jitter = rng.normal(0.0, 0.008, (n, 4))
    slider = _track(("red", "rubber", "cylinder"), {f: (-2.5 + stop[f] + jitter[f, 0], 0.5 + jitter[f, 1]) for f in range(n)}, 0.35)
    cube = _track(("blue", "metal", "cube"), {f: (-1.5 + jitter[f, 2], -2.5 + fast[f] + jitter[f, 3]) for f in range(n)}, 0.2475)
    still = _track(("green", "rubber", "sphere"), {f: (2.0 + jitter[f, 1] / 2, 1.0 + jitter[f, 0] / 2) for f in range(n)}, 0.35)
    plain = tracks_to_annotation([slider, cube, still], list(range(n)), HW, HEIGHTS)
    slid = tracks_to_annotation([slider, cube, still], list(range(n)), HW, HEIGHTS, VideoPerceptionConfig(end_slide=16))

    def speed(ann, frame, oid):
        return float(np.hypot(*ann.motion_trajectory[frame].by_id()[oid].velocity[:2]))

    assert speed(plain, n - 1, 0) > 0.05  # the one-sided difference: still moving at the end
    assert speed(slid, n - 1, 0) < 0.05  # the slide fit: stopped
    assert abs(speed(slid, n - 1, 1) - 1.0) < 0.15 and speed(slid, n - 2, 1) > speed(slid, n - 1, 1)
    assert speed(slid, n - 1, 2) == speed(plain, n - 1, 2) == 0.0  # resting stays resting
    # a sphere rolling slowly (0.3 units/s): the rest test's window, cut at the end, reads its last frames resting
    roll = (0.3 + 0.16 * t[-1]) * t - 0.08 * t ** 2  # at 0.3 at the end, rolling friction 0.16 units/s^2
    sphere = _track(("cyan", "rubber", "sphere"), {f: (1.0 + roll[f] + jitter[f, 3] / 4, -1.0 + jitter[f, 2] / 4) for f in range(n)}, 0.35)
    plain_roll = tracks_to_annotation([sphere], list(range(n)), HW, HEIGHTS)
    slid_roll = tracks_to_annotation([sphere], list(range(n)), HW, HEIGHTS, VideoPerceptionConfig(end_slide=16))
    assert speed(plain_roll, n - 1, 0) == 0.0 and speed(plain_roll, n - 3, 0) > 0.05
    assert abs(speed(slid_roll, n - 1, 0) - 0.3) < 0.05
    # only the last velocity_span frames change; locations and collisions never
    assert slid.motion_trajectory[: n - 2] == plain.motion_trajectory[: n - 2]
    assert [fr.by_id()[o].location for fr in slid.motion_trajectory for o in range(3)] == \
        [fr.by_id()[o].location for fr in plain.motion_trajectory for o in range(3)]
    assert slid.collision == plain.collision
    # the function: a slide fitted exactly, a stop inside the window is zeros, a straight line at deceleration 0
    line = np.c_[0.04 * np.arange(10), 0.02 * np.arange(10)]
    assert np.allclose(end_slide_velocity(line, 0.0, fps), [1.0, 0.5])
    assert VideoPerceptionConfig().end_slide == 0 and perception_config(["end_slide=16"]).end_slide == 16
    for bad in (-1, 2):
        with pytest.raises(ConfigError, match="end_slide"):
            VideoPerceptionConfig(end_slide=bad)


def _states(frame: int, objects: dict[int, tuple[tuple[float, float], tuple[float, float]]]) -> FrameStates:
    zero = (0.0, 0.0, 0.0)
    return FrameStates(frame, tuple(ObjectState(o, (x, y, 0.35), zero, (vx, vy, 0.0), zero, True)
                                    for o, ((x, y), (vx, vy)) in sorted(objects.items())))


def test_struck_end_sets_an_object_struck_in_the_last_frames_and_read_resting_moving():
    # object 1 rests at (0, 0); object 0 slides into it along +x at 2 units/s and touches at frame 17 of 20
    frames = []
    for f in range(20):
        x0 = -2.0 + 0.08 * min(f, 17)
        frames.append(_states(f, {0: ((x0, 0.0), (2.0 if f < 17 else 0.0, 0.0)), 1: ((0.0, 0.0), (0.0, 0.0)),
                                  2: ((3.0, 3.0), (0.0, 0.0))}))
    trajectory = tuple(frames)
    touch = (Collision((0, 1), 17, (-0.35, 0.0, 0.35)),)
    out = struck_at_end(trajectory, touch, 5)
    v = [out[f].by_id()[1].velocity for f in range(20)]
    assert all(v[f] == (0.0, 0.0, 0.0) for f in range(18))  # up to and with the collision's frame: as read
    assert all(np.isclose(v[f][0], 2.0 * (1 + 0.49) / 2) and v[f][1] == 0.0 for f in range(18, 20))
    assert [fr.by_id()[1].location for fr in out] == [fr.by_id()[1].location for fr in trajectory]
    assert out[19].by_id()[2] == trajectory[19].by_id()[2] and out[19].by_id()[0] == trajectory[19].by_id()[0]
    # a collision before the last W frames, a partner not closing in, and W = 0 change nothing
    assert struck_at_end(trajectory, touch, 2) == trajectory
    away = (Collision((1, 2), 17, (1.5, 1.5, 0.35)),)
    assert struck_at_end(trajectory, away, 5) == trajectory
    assert struck_at_end(trajectory, touch, 0) == trajectory
    assert VideoPerceptionConfig().struck_end == 0 and perception_config(["struck_end=8"]).struck_end == 8
    with pytest.raises(ConfigError, match="struck_end"):
        VideoPerceptionConfig(struck_end=-1)


def _struck_at_distance(stop: float, kick_back: bool = True) -> dict[int, dict[int, tuple[float, float]]]:
    """Sphere 0 rests at the origin until sphere 1, sliding in at 0.2 a frame, comes to a stop ``stop`` short
    of it at frame 10 (slowing over the last two frames, as the merged masks of a fast contact place it);
    sphere 0 leaves at 0.2 a frame from frame 10.  With ``kick_back`` False sphere 1 slides on at its speed,
    its path bent aside instead (not an exchange)."""
    def approach(f: int) -> float:
        return -stop - (0.1 + 0.2 * (8 - f) if f <= 8 else 0.03 * (10 - f))

    striker = {f: (approach(f), 0.0) if f <= 10 else
               ((-stop, 0.0) if kick_back else (-stop + 0.2 * (f - 10), -0.2 * (f - 10))) for f in range(30)}
    struck = {f: (0.0, 0.0) if f <= 10 else (0.2 * (f - 10), 0.0) for f in range(30)}
    return {0: struck, 1: striker, 2: {f: (0.0, 2.0) for f in range(30)}}


def test_struck_partners_adds_the_strike_the_contact_rule_misses_at_merged_masks():
    states = _frames(_struck_at_distance(0.85), 30)
    shapes = dict.fromkeys(range(3), "sphere")
    assert touch_collisions(states, shapes, 0.72, 0.03, 5) == ()  # never closer than 0.85
    found = struck_partners(states, shapes, (), 0.72 + 0.2, 0.03, 5)
    assert [(c.object_ids, c.frame_id) for c in found] == [((0, 1), 10)]
    np.testing.assert_allclose(found[0].location, (-0.425, 0.0, 0.35), atol=1e-6)
    # a partner further off than the loose distance, or a cube pair where each cube takes cube_inset off it
    assert struck_partners(states, shapes, (), 0.72 + 0.1, 0.03, 5) == ()
    assert struck_partners(states, dict.fromkeys(range(3), "cube"), (), 0.72 + 0.15, 0.03, 5) == ()
    # a kick explained by a collision of the object near it, or the pair's own within the gap: nothing added
    seen = (Collision((0, 2), 12, (0.0, 1.0, 0.35)),)
    assert struck_partners(states, shapes, seen, 0.92, 0.03, 5) == seen
    own = (Collision((0, 1), 8, (-0.5, 0.0, 0.35)),)
    assert struck_partners(states, shapes, own, 0.92, 0.03, 5) == own


def test_struck_partners_needs_both_objects_kicked_the_opposite_ways():
    shapes = dict.fromkeys(range(3), "sphere")
    # the striker bent aside at its full speed: its velocity changes, but not against the struck object's
    bent = _frames(_struck_at_distance(0.85, kick_back=False), 30)
    assert struck_partners(bent, shapes, (), 0.92, 0.03, 5) == ()
    # a pair passing 0.85 apart, each slowing by friction along its own path: no kick, nothing added
    passing = {0: {f: (0.0, 0.0) for f in range(30)},
               1: {f: (-3.0 + 0.2 * f - 0.002 * f * f, 0.85) for f in range(30)}}
    assert struck_partners(_frames(passing, 30), shapes, (), 0.92, 0.03, 5) == ()


def test_struck_partner_is_on_by_default_at_0_2_and_tracks_to_annotation_applies_it():
    assert VideoPerceptionConfig().struck_partner == 0.2  # the default (docs/results/clevrer.md, thirty-first session)
    assert perception_config(["struck_partner=0.3"]).struck_partner == 0.3
    for bad in ("struck_partner=-0.1", "struck_partner=1.5"):
        with pytest.raises(ConfigError, match="struck_partner"):
            perception_config([bad])
    paths = _struck_at_distance(0.85)
    names = (("red", "rubber", "sphere"), ("blue", "rubber", "sphere"), ("green", "metal", "sphere"))
    tracks = [_track(names[k], paths[k], 0.35) for k in range(3)]
    cfg = VideoPerceptionConfig(rest_window=0, second_partner=0.0, coast_frames=0, struck_partner=0.0)
    plain = tracks_to_annotation(tracks, list(range(30)), HW, HEIGHTS, cfg)
    assert plain.collision == ()
    struck = tracks_to_annotation(tracks, list(range(30)), HW, HEIGHTS, dataclasses.replace(cfg, struck_partner=0.2))
    assert struck.collision == tracks_to_annotation(
        tracks, list(range(30)), HW, HEIGHTS, VideoPerceptionConfig(rest_window=0, second_partner=0.0, coast_frames=0)
    ).collision  # the defaults: the rule and its guards on
    assert [(c.object_ids, c.frame_id) for c in struck.collision] == [((0, 1), 10)]
    assert struck.motion_trajectory == plain.motion_trajectory


def _pass_paths(bounce: bool) -> dict[int, dict[int, tuple[float, float]]]:
    """Sphere 1 slides at 0.1 a frame past resting sphere 0, its centre 0.7 off the line at frame 15 (a touch by
    centres); with ``bounce`` the two exchange along the line of centres there (sphere 0 leaves, sphere 1 turns)."""
    rest = {f: (0.0, 0.0) for f in range(40)}
    passer = {f: (-1.5 + 0.1 * f, 0.7) for f in range(40)}
    if bounce:
        rest = {f: (0.0, 0.0) if f <= 15 else (0.0, -0.08 * (f - 15)) for f in range(40)}
        passer = {f: (-1.5 + 0.1 * f, 0.7) if f <= 15 else (0.1 * (f - 15), 0.7 + 0.02 * (f - 15)) for f in range(40)}
    return {0: rest, 1: passer}


def test_drop_unchanged_passes_drops_a_touch_that_leaves_both_velocities_as_they_were():
    shapes = {0: "sphere", 1: "sphere"}
    passing = _frames(_pass_paths(bounce=False), 40)
    found = touch_collisions(passing, shapes, 0.72, 0.03, 5)
    assert len(found) == 1 and 13 <= found[0].frame_id <= 15  # a near miss read as a touch by its centres
    assert drop_unchanged_passes(passing, found, 0.1) == ()
    # the same touch with the exchange: the relative velocity turns, kept at any ratio up to 1
    struck = _frames(_pass_paths(bounce=True), 40)
    hit = touch_collisions(struck, shapes, 0.72, 0.03, 5)
    assert len(hit) == 1 and drop_unchanged_passes(struck, hit, 1.0) == hit
    # friction's slowing along each path is no change: a passer slowing as it slides is still a pass
    slowing = {0: {f: (0.0, 0.0) for f in range(40)}, 1: {f: (-1.5 + 0.1 * f - 0.0015 * f * f, 0.7) for f in range(40)}}
    slow = _frames(slowing, 40)
    touch = touch_collisions(slow, shapes, 0.72, 0.03, 5)
    assert len(touch) == 1 and drop_unchanged_passes(slow, touch, 0.1) == ()
    # too near the video's end (or with an object missing) to read the kicks: kept
    late = (Collision((0, 1), 36, (0.0, 0.35, 0.35)),)  # the window's last frame, 36 - 3 + 9, is past frame 39
    assert drop_unchanged_passes(passing, late, 0.1) == late
    gone = _frames({0: {f: (0.0, 0.0) for f in range(14, 40)}, 1: _pass_paths(False)[1]}, 40)
    assert drop_unchanged_passes(gone, found, 0.1) == found
    with pytest.raises(ConfigError, match="ratio"):
        drop_unchanged_passes(passing, found, 0.0)


def test_unchanged_pass_is_an_option_off_by_default_that_tracks_to_annotation_applies():
    assert VideoPerceptionConfig().unchanged_pass == 0.0
    assert perception_config(["unchanged_pass=0.1"]).unchanged_pass == 0.1
    for bad in ("unchanged_pass=-0.1", "unchanged_pass=1.5"):
        with pytest.raises(ConfigError, match="unchanged_pass"):
            perception_config([bad])
    names = (("red", "rubber", "sphere"), ("blue", "rubber", "sphere"))
    for bounce, kept in ((False, 0), (True, 1)):
        paths = _pass_paths(bounce)
        tracks = [_track(names[k], paths[k], 0.35) for k in range(2)]
        cfg = VideoPerceptionConfig(rest_window=0, second_partner=0.0, coast_frames=0)
        plain = tracks_to_annotation(tracks, list(range(40)), HW, HEIGHTS, cfg)
        assert len(plain.collision) == 1
        cut = tracks_to_annotation(tracks, list(range(40)), HW, HEIGHTS, dataclasses.replace(cfg, unchanged_pass=0.1))
        assert cut.collision == plain.collision[:kept] and cut.motion_trajectory == plain.motion_trajectory


def test_struck_partner_guards_refuse_a_pair_that_looks_alike_or_comes_closer_than_the_floor():
    states = _frames(_struck_at_distance(0.85), 30)
    shapes = dict.fromkeys(range(3), "sphere")
    strike = [((0, 1), 10)]
    looks = {0: ("red", "rubber", "sphere"), 1: ("blue", "rubber", "sphere"), 2: ("green", "metal", "sphere")}
    found = struck_partners(states, shapes, (), 0.92, 0.03, 5, looks=looks, floor=0.5)
    assert [(c.object_ids, c.frame_id) for c in found] == strike  # two objects, never closer than 0.85: kept
    # one object's doubled track (the two tracks look alike): no collision with itself
    assert struck_partners(states, shapes, (), 0.92, 0.03, 5, looks={**looks, 1: looks[0]}) == ()
    # the floor reads the closest approach over the kick's window: 0.85 here
    assert [(c.object_ids, c.frame_id) for c in struck_partners(states, shapes, (), 0.92, 0.03, 5, floor=0.84)] == strike
    assert struck_partners(states, shapes, (), 0.92, 0.03, 5, floor=0.86) == ()
    # merged tracks: the striker's centre drops onto the struck one's for a frame inside the window
    paths = _struck_at_distance(0.85)
    paths[1][12] = (0.1, 0.0)
    merged = _frames(paths, 30)
    assert struck_partners(merged, shapes, (), 0.92, 0.03, 5) != ()  # without the floor the strike is still read
    assert struck_partners(merged, shapes, (), 0.92, 0.03, 5, floor=0.5) == ()


def test_struck_partner_guards_are_on_by_default_go_off_with_the_rule_and_are_refused_without_it_or_out_of_range():
    cfg = VideoPerceptionConfig()
    assert (cfg.struck_distinct, cfg.struck_floor) == (None, None)  # decided by the rule: on with it, off without
    assert (cfg.struck_partner, cfg.applied_struck_distinct, cfg.applied_struck_floor) == (0.2, 1, 0.5)
    off = perception_config(["struck_partner=0"])
    assert (off.struck_partner, off.applied_struck_distinct, off.applied_struck_floor) == (0.0, 0, 0.0)
    unguarded = perception_config(["struck_distinct=0", "struck_floor=0"])
    assert (unguarded.struck_partner, unguarded.applied_struck_distinct, unguarded.applied_struck_floor) == (0.2, 0, 0.0)
    for bad, name in ((["struck_partner=0.2", "struck_distinct=2"], "struck_distinct"),
                      (["struck_partner=0.2", "struck_floor=-0.1"], "struck_floor"),
                      (["struck_partner=0.2", "struck_floor=0.8"], "struck_floor"),
                      (["struck_partner=0", "struck_floor=0.5"], "struck_floor"),
                      (["struck_partner=0", "struck_distinct=1"], "struck_distinct"),
                      (["struck_distinct=0.5"], "struck_distinct takes a whole number")):
        with pytest.raises(ConfigError, match=name):
            perception_config(bad)
    paths = _struck_at_distance(0.85)
    names = (("red", "rubber", "sphere"), ("red", "rubber", "sphere"), ("green", "metal", "sphere"))
    tracks = [_track(names[k], paths[k], 0.35) for k in range(3)]
    base = VideoPerceptionConfig(rest_window=0, second_partner=0.0, coast_frames=0, struck_partner=0.2,
                                 struck_distinct=0, struck_floor=0.0)
    assert [(c.object_ids, c.frame_id) for c in tracks_to_annotation(tracks, list(range(30)), HW, HEIGHTS, base).collision] \
        == [((0, 1), 10)]
    guarded = dataclasses.replace(base, struck_distinct=1)
    assert tracks_to_annotation(tracks, list(range(30)), HW, HEIGHTS, guarded).collision == ()


def test_a_python_caller_and_perception_set_decide_the_struck_guards_alike():
    # VideoPerceptionConfig(struck_partner=0) kept the guards on (1, 0.5), doing nothing, where
    # --perception-set struck_partner=0 turned them off; the config decides for both now
    for settings, kwargs in ((["struck_partner=0"], {"struck_partner": 0.0}),
                             (["struck_partner=0", "struck_floor=0", "struck_distinct=0"],
                              {"struck_partner": 0.0, "struck_floor": 0.0, "struck_distinct": 0}),
                             (["struck_partner=0.3", "struck_floor=none"], {"struck_partner": 0.3})):
        assert perception_config(settings) == VideoPerceptionConfig(**kwargs)
    assert (VideoPerceptionConfig(struck_partner=0.0).applied_struck_distinct,
            VideoPerceptionConfig(struck_partner=0.0).applied_struck_floor) == (0, 0.0)
    for guard, value in (("struck_floor", 0.5), ("struck_distinct", 1)):  # on, guarding a rule that is off
        with pytest.raises(ConfigError, match=rf"^VideoPerceptionConfig.{guard} {value} needs struck_partner > 0"):
            VideoPerceptionConfig(struck_partner=0.0, **{guard: value})
        with pytest.raises(ConfigError, match=rf"^--perception-set struck_partner=0 {guard}={value}: "
                                              rf"VideoPerceptionConfig.{guard} {value} needs struck_partner > 0"):
            perception_config(["struck_partner=0", f"{guard}={value}"], option="--perception-set")


def test_the_default_config_gives_the_shipped_guards_answers_on_the_synthetic_tracks():
    # the shipped default (struck_partner 0.2, struck_distinct 1, struck_floor 0.5, as fields before) and the
    # default config give the same annotation on the synthetic tracks of this file, the guards' own cases included
    assert (VideoPerceptionConfig().applied_struck_distinct, VideoPerceptionConfig().applied_struck_floor) == (1, 0.5)
    shipped = dataclasses.replace(VideoPerceptionConfig(), struck_distinct=1, struck_floor=0.5)
    looks = {"other": (("red", "rubber", "sphere"), ("blue", "rubber", "sphere"), ("green", "metal", "sphere"),
                       ("gray", "metal", "cube")),
             "alike": (("red", "rubber", "sphere"), ("red", "rubber", "sphere"), ("green", "metal", "sphere"))}
    merged = _struck_at_distance(0.85)
    merged[1][12] = (0.1, 0.0)
    scenes = [(_struck_at_distance(0.85), 30, "other"), (_struck_at_distance(0.85), 30, "alike"), (merged, 30, "other"),
              (_struck_at_distance(0.85, kick_back=False), 30, "other"), (_struck_by_two(), 16, "other"),
              (_struck_by_two(False), 16, "other"), (_pass_paths(True), 40, "other"), (_pass_paths(False), 40, "other")]
    guarded = 0
    for paths, n, kind in scenes:
        tracks = [_track(looks[kind][k], paths[k], 0.35) for k in sorted(paths)]
        for extra in ({}, {"rest_window": 0, "second_partner": 0.0, "coast_frames": 0}):
            now = tracks_to_annotation(tracks, list(range(n)), HW, HEIGHTS, VideoPerceptionConfig(**extra))
            assert now == tracks_to_annotation(tracks, list(range(n)), HW, HEIGHTS, dataclasses.replace(shipped, **extra))
            bare = dataclasses.replace(shipped, struck_distinct=0, struck_floor=0.0, **extra)
            guarded += now.collision != tracks_to_annotation(tracks, list(range(n)), HW, HEIGHTS, bare).collision
    assert guarded >= 2  # the guards decide on some of these (alike looks, merged tracks): the comparison has teeth


def test_the_default_floor_follows_contact_distance_so_a_smaller_one_is_taken():
    # --perception-set contact_distance=0.4 was refused, naming struck_floor (0.5 by default); the default
    # floor now scales with the contact distance, exactly 0.5 at the default 0.72
    assert VideoPerceptionConfig().contact_distance == CONTACT_DISTANCE == 0.72
    assert VideoPerceptionConfig().applied_struck_floor == 0.5
    assert perception_config(["contact_distance=0.4"]).applied_struck_floor == pytest.approx(0.5 * 0.4 / 0.72)
    assert perception_config(["contact_distance=0.4"]) == VideoPerceptionConfig(contact_distance=0.4)
    assert VideoPerceptionConfig(contact_distance=0.9).applied_struck_floor == pytest.approx(0.625)
    assert perception_config(["contact_distance=0.4", "struck_partner=0"]).applied_struck_floor == 0.0
    assert perception_config(["contact_distance=0.4", "struck_floor=0.3"]).applied_struck_floor == 0.3
    # a floor given at or above the contact distance is refused, naming both and the default that would fit
    with pytest.raises(ConfigError, match=r"^--perception-set contact_distance=0.4 struck_floor=0.5: VideoPerceptionConfig"
                                          r".struck_floor must be 0 \(off\), a distance below contact_distance \(0.4\) "
                                          r"or None \(the default: 0.5 / 0.72 of contact_distance\), got 0.5$"):
        perception_config(["contact_distance=0.4", "struck_floor=0.5"], option="--perception-set")


def _unsure_track(attrs: tuple[str, str, str], at: tuple[float, float], frames: range,
                  runner_up: dict[str, tuple[str, float]]) -> Track:
    """A resting track read ``attrs``; each attribute named in ``runner_up`` gives that value the share."""
    t = _track(attrs, {f: at for f in frames}, 0.35)
    for probs in t.obs_probs:
        for a, (value, share) in runner_up.items():
            probs[a] = (1 - share) * probs[a] + share * np.eye(len(ATTRIBUTES[a]))[ATTRIBUTES[a].index(value)]
    return t


def test_distinct_looks_rereads_the_least_sure_attribute_of_two_objects_voted_alike():
    cfg = VideoPerceptionConfig(rest_window=0)
    sure = _unsure_track(("gray", "rubber", "sphere"), (-2.0, 0.0), range(20), {})
    # read a sphere at 0.55, a cylinder at 0.45; its material a little surer (rubber 0.6)
    unsure = _unsure_track(("gray", "rubber", "sphere"), (2.0, 0.0), range(20),
                           {"shape": ("cylinder", 0.45), "material": ("metal", 0.4)})
    votes = [attribute_votes(t, HW, cfg) for t in (sure, unsure)]
    assert [voted_attributes(t, HW, cfg) for t in (sure, unsure)] == [
        {"color": "gray", "material": "rubber", "shape": "sphere"}] * 2
    looks = distinct_looks([sure, unsure], votes, 1.0)
    assert looks == [{"color": "gray", "material": "rubber", "shape": "sphere"},
                     {"color": "gray", "material": "rubber", "shape": "cylinder"}]
    # a third object already is the gray rubber cylinder: the next least sure attribute (material) changes instead
    third = _unsure_track(("gray", "rubber", "cylinder"), (0.0, 2.0), range(20), {})
    looks = distinct_looks([sure, unsure, third], votes + [attribute_votes(third, HW, cfg)], 1.0)
    assert looks[1] == {"color": "gray", "material": "metal", "shape": "sphere"} and looks[0] == looks[1] | {"material": "rubber"}
    # one object's doubled track (centres 0.3 apart) is not two objects: both keep their vote
    double = _unsure_track(("gray", "rubber", "sphere"), (-1.7, 0.0), range(20), {"shape": ("cylinder", 0.45)})
    assert distinct_looks([sure, double], [attribute_votes(t, HW, cfg) for t in (sure, double)], 1.0) == [
        {"color": "gray", "material": "rubber", "shape": "sphere"}] * 2
    # nor are two tracks that never share a frame (an object that left and came back)
    later = _unsure_track(("gray", "rubber", "sphere"), (2.0, 0.0), range(20, 40), {"shape": ("cylinder", 0.45)})
    assert distinct_looks([sure, later], [attribute_votes(t, HW, cfg) for t in (sure, later)], 1.0)[1]["shape"] == "sphere"
    # colours are never misread by the detector, and a read without doubt is not undone: two alike tracks whose
    # only doubt is a colour keep their votes
    tinted = _unsure_track(("gray", "rubber", "sphere"), (2.0, 0.0), range(20), {"color": ("red", 0.45)})
    assert distinct_looks([sure, tinted], [attribute_votes(t, HW, cfg) for t in (sure, tinted)], 1.0) == [
        {"color": "gray", "material": "rubber", "shape": "sphere"}] * 2
    # two alike objects seen together for fewer than LOOKS_SHARED frames (a track handed over) are left alone
    brief = _unsure_track(("gray", "rubber", "sphere"), (2.0, 0.0), range(17, 30), {"shape": ("cylinder", 0.45)})
    assert distinct_looks([sure, brief], [attribute_votes(t, HW, cfg) for t in (sure, brief)], 1.0)[1]["shape"] == "sphere"


def test_distinct_looks_is_an_option_off_by_default_that_tracks_to_annotation_applies_and_refuses_nonsense():
    assert VideoPerceptionConfig().distinct_looks == 0.0
    sure = _unsure_track(("gray", "rubber", "sphere"), (-2.0, 0.0), range(20), {})
    unsure = _unsure_track(("gray", "rubber", "sphere"), (2.0, 0.0), range(20), {"shape": ("cylinder", 0.45)})
    base = VideoPerceptionConfig(rest_window=0, coast_frames=0)
    shipped = tracks_to_annotation([sure, unsure], list(range(20)), HW, HEIGHTS, base)
    assert [p.shape for p in shipped.object_property] == ["sphere", "sphere"]
    on = tracks_to_annotation([sure, unsure], list(range(20)), HW, HEIGHTS, dataclasses.replace(base, distinct_looks=1.0))
    assert [p.shape for p in on.object_property] == ["sphere", "cylinder"]
    assert perception_config(["distinct_looks=1.0"]).distinct_looks == 1.0
    for bad in ("distinct_looks=-0.5", "distinct_looks=inf"):
        with pytest.raises(ConfigError, match="distinct_looks"):
            perception_config([bad])
    with pytest.raises(ConfigError, match="distinct_looks"):
        distinct_looks([sure], [attribute_votes(sure, HW, base)], 0.0)
