"""ClevrWorld: CLEVR placement, settling, exact masks, pixel coordinates, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physics.errors import StateError
from physics.worlds.clevr_layout import LayoutConfig
from physics.worlds.clevr_properties import COGENT_CONDITIONS, SIZE_RADIUS
from physics.worlds.clevr_world import BACKGROUND, ClevrWorld, ClevrWorldConfig, render_clevr_scene

SEEDS = range(8)  # fresh scenes, 3-10 objects each (CLEVR keeps the count while it resamples)


@pytest.fixture(scope="module")
def world():
    w = ClevrWorld(ClevrWorldConfig())
    yield w
    w.close()


@pytest.fixture(scope="module")
def scenes(world):
    out = []
    for seed in SEEDS:
        scene = world.reset(seed)
        out.append((scene, *world.render(), world.camera))
    return out


def _half(obj) -> float:
    r = SIZE_RADIUS[obj["size"]]
    return r / math.sqrt(2.0) if obj["shape"] == "cube" else r


def test_scene_has_3_to_10_objects_resting_on_the_ground_inside_the_extent(scenes):
    for scene, *_ in scenes:
        assert 3 <= len(scene["objects"]) <= 10
        for o in scene["objects"]:
            x, y, z = o["3d_coords"]
            assert abs(x) <= 3.0 + 1e-3 and abs(y) <= 3.0 + 1e-3
            assert z == pytest.approx(_half(o), abs=5e-3)  # read back from pybullet after settling
            assert 0.0 <= o["rotation"] < 360.0


def test_render_shapes_and_types(scenes):
    _, rgb, depth, mask, cam = scenes[0]
    assert rgb.shape == (320, 480, 3) and rgb.dtype == np.uint8
    assert depth.shape == (320, 480) and depth.dtype == np.float32
    assert mask.shape == (320, 480) and np.issubdtype(mask.dtype, np.integer)
    assert (depth > cam.near).all() and (depth <= cam.far * 1.001).all()


def test_mask_ids_follow_object_order_and_every_object_keeps_200_pixels(scenes):
    for scene, _, _, mask, _ in scenes:
        n = len(scene["objects"])
        assert set(np.unique(mask).tolist()) == {BACKGROUND, *range(n)}
        counts = np.bincount(mask.ravel() + 1, minlength=n + 1)[1:]
        assert counts.min() >= 200


def test_mask_pixels_show_the_object_colour_family(scenes):
    # pixels of a red object are redder than blue or green on average, etc.
    checked = 0
    for scene, rgb, _, mask, _ in scenes:
        for k, o in enumerate(scene["objects"]):
            mean = rgb[mask == k].astype(float).mean(axis=0)
            if o["color"] == "red":
                assert mean[0] > mean[1] and mean[0] > mean[2]
                checked += 1
            if o["color"] == "blue":
                assert mean[2] > mean[0] and mean[2] > mean[1]
                checked += 1
    assert checked > 0


def test_depth_at_pixel_coords_is_the_near_surface_of_that_object(scenes):
    for scene, _, depth, mask, _ in scenes:
        for k, o in enumerate(scene["objects"]):
            u, v, d = o["pixel_coords"]
            if mask[v, u] != k:  # centre hidden behind another object
                continue
            assert d - 2.0 * _half(o) <= depth[v, u] <= d + 1e-3


def _unoccluded(scene, camera) -> list[int]:
    """Objects whose projected bounding circle overlaps no other object's."""
    objs = scene["objects"]
    f = camera.height / 2.0 / math.tan(math.radians(camera.fov_y_deg) / 2.0)
    circles = [
        (o["pixel_coords"][0], o["pixel_coords"][1], f * _half(o) * math.sqrt(3.0) / o["pixel_coords"][2])
        for o in objs
    ]
    keep = []
    for i, (u, v, r) in enumerate(circles):
        if all(math.hypot(u - u2, v - v2) > r + r2 for j, (u2, v2, r2) in enumerate(circles) if j != i):
            keep.append(i)
    return keep


def test_pixel_coords_lie_within_3_pixels_of_the_mask_centroid(scenes):
    checked = 0
    for scene, _, _, mask, cam in scenes:
        for k in _unoccluded(scene, cam):
            rows, cols = np.nonzero(mask == k)
            cu, cv = cols.mean() + 0.5, rows.mean() + 0.5
            u, v, _ = scene["objects"][k]["pixel_coords"]
            assert math.hypot(u - cu, v - cv) <= 3.0, (k, (u, v), (cu, cv))
            checked += 1
    assert checked >= 3


def test_directions_come_from_the_jittered_camera(scenes):
    for scene, _, _, _, cam in scenes:
        d = scene["directions"]
        right, _, forward = cam.axes()
        assert np.dot(d["right"], right) > 0.9 and np.dot(d["behind"], forward) > 0.7
        assert d["left"] == [-x + 0.0 for x in d["right"]] and d["front"] == [-x + 0.0 for x in d["behind"]]
        assert d["above"] == [0.0, 0.0, 1.0] and d["below"] == [0.0, 0.0, -1.0]
        assert abs(np.dot(d["left"], d["behind"])) < 1e-5
    eyes = {tuple(np.round(c.eye, 6)) for *_, c in scenes}
    assert len(eyes) == len(scenes)  # jitter differs per seed


def test_same_seed_gives_identical_bytes_in_a_reused_and_a_fresh_world(world):
    a = world.reset(7)
    rgb_a, depth_a, mask_a = world.render()
    world.reset(3)
    with ClevrWorld(ClevrWorldConfig()) as fresh:
        b = fresh.reset(7)
        rgb_b, depth_b, mask_b = fresh.render()
    assert a == b
    assert rgb_a.tobytes() == rgb_b.tobytes()
    assert depth_a.tobytes() == depth_b.tobytes()
    assert mask_a.tobytes() == mask_b.tobytes()
    assert world.reset(8) != a


def test_sequence_seeds_are_supported_and_distinct():
    s1 = render_clevr_scene((0, 1, 2)).scene
    s2 = render_clevr_scene((0, 1, 3)).scene
    assert s1 != s2 and render_clevr_scene((0, 1, 2)).scene == s1


def test_metal_spheres_show_white_highlights_rubber_never_does(world):
    metal = rubber = 0
    for seed in range(12):
        scene = world.reset(seed)
        rgb, _, mask = world.render()
        for k, o in enumerate(scene["objects"]):
            if o["shape"] != "sphere" or (mask == k).sum() < 400:
                continue
            white = (rgb[mask == k] > 215).all(axis=1).sum()
            if o["material"] == "metal":
                assert white > 0
                metal += 1
            else:
                assert white == 0
                rubber += 1
    assert metal > 0 and rubber > 0


def test_ground_shows_cast_shadows(scenes):
    # the ground just behind an object, away from the light, is darker than open ground
    for _scene, rgb, _, mask, _ in scenes:
        ground = rgb[mask == BACKGROUND].astype(int).sum(axis=1)
        assert (ground < 0.8 * np.median(ground)).sum() > 200


def test_cogent_condition_a_restricts_cube_and_cylinder_colours():
    cond = COGENT_CONDITIONS["A"]
    cfg = ClevrWorldConfig(width=160, height=120, min_pixels=20, layout=LayoutConfig(shape_colors=cond))
    with ClevrWorld(cfg) as w:
        for seed in range(4):
            for o in w.reset(seed)["objects"]:
                assert o["color"] in cond[o["shape"]]


def test_impossible_visibility_raises_state_error_naming_the_seed():
    cfg = ClevrWorldConfig(width=32, height=24, min_pixels=10_000, max_layouts=2)
    with ClevrWorld(cfg) as w, pytest.raises(StateError, match="seed 5"):
        w.reset(5)


def test_render_before_reset_is_a_clear_error():
    with ClevrWorld() as w, pytest.raises(StateError, match="reset"):
        w.render()


def test_step_keeps_a_settled_scene_in_place(world):
    before = world.reset(4)
    after = world.step(60)
    for a, b in zip(before["objects"], after["objects"], strict=True):
        assert np.allclose(a["3d_coords"], b["3d_coords"], atol=2e-3)


def test_scene_records_its_camera_so_pixel_coords_can_be_recomputed(scenes):
    from physics.worlds.camera import Camera

    for scene, *_, cam in scenes:
        rebuilt = Camera.from_dict(scene["camera"])
        assert rebuilt.eye == pytest.approx(cam.eye, abs=1e-6)
        for o in scene["objects"]:
            u, v, d = rebuilt.project(np.asarray(o["3d_coords"]))[0]
            assert (round(u), round(v)) == tuple(o["pixel_coords"][:2]) and d == pytest.approx(o["pixel_coords"][2], abs=1e-4)
        assert np.linalg.norm(scene["light_direction"]) == pytest.approx(1.0, abs=1e-5)


def test_docstring_example_runs():
    import doctest

    import physics.worlds.clevr_world as module

    assert doctest.testmod(module).failed == 0
