"""The Blender renderer: spec, mask decoding, and (with ``blender``) a tiny scene rendered for real."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from perception.scene_graph import SceneGraph
from physics.errors import ConfigError
from physics.worlds.clevr_blender import (
    _SERVERS,
    MAX_OBJECTS,
    BlenderConfig,
    BlenderError,
    blender_spec,
    check_assets,
    close_blender_processes,
    decode_mask,
    find_blender,
    lamp_offsets,
    render_blender,
    render_clevr_scene_blender,
)
from physics.worlds.clevr_properties import SIZE_RADIUS
from physics.worlds.clevr_world import ClevrWorldConfig, process_world
from tests.conftest import SHARED_CLEVR

ASSETS = SHARED_CLEVR / "blender"
TINY = ClevrWorldConfig(width=120, height=80, min_pixels=10)

requires_blender = pytest.mark.skipif(
    shutil.which("blender") is None or not (ASSETS / "base_scene.blend").is_file(),
    reason="the Blender renderer needs `blender` on PATH (Debian: apt-get install blender) "
    f"and the CLEVR Blender assets at {ASSETS}",
)


def _srgb_code(k: int) -> int:
    return (k + 1) * 20


def test_decode_mask_reads_object_codes_and_rejects_other_colours():
    flat = np.zeros((4, 5, 3), np.uint8)
    flat[0, :2, 0] = _srgb_code(0)
    flat[3, 4, 0] = _srgb_code(2) + 1  # 8-bit rounding of the sRGB transfer
    mask = decode_mask(flat, 3)
    assert mask.dtype == np.int16 and mask[0, 0] == 0 and mask[3, 4] == 2 and (mask == -1).sum() == 17
    flat[1, 1] = (_srgb_code(1) + 9, 0, 0)  # between two codes: a blended pixel, not an object
    with pytest.raises(BlenderError, match="no object's code"):
        decode_mask(flat, 3)
    flat[1, 1] = (_srgb_code(5), 0, 0)  # a code beyond the scene's objects
    with pytest.raises(BlenderError, match="max index 5 for 3 objects"):
        decode_mask(flat, 3)


def test_missing_program_and_assets_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="apt-get install blender"):
        find_blender("no-such-blender-program")
    with pytest.raises(ConfigError, match="no such folder"):
        check_assets(tmp_path / "missing")
    (tmp_path / "base_scene.blend").write_bytes(b"")
    with pytest.raises(ConfigError, match="lacks shapes/SmoothCube_v2.blend"):
        check_assets(tmp_path)
    with pytest.raises(ConfigError, match="samples must be >= 1"):
        BlenderConfig(assets=str(tmp_path), samples=0)


def test_lamp_jitter_is_a_pure_function_of_the_seed():
    a = lamp_offsets((3, 4, 5), 1.0)
    assert a == lamp_offsets((3, 4, 5), 1.0) != lamp_offsets((3, 4, 6), 1.0)
    assert set(a) == {"Lamp_Key", "Lamp_Fill", "Lamp_Back"}
    assert all(abs(d) <= 1.0 for v in a.values() for d in v)
    assert all(d == 0.0 for v in lamp_offsets(7, 0.0).values() for d in v)


@pytest.mark.skipif(not (ASSETS / "base_scene.blend").is_file(), reason=f"CLEVR Blender assets not at {ASSETS}")
def test_spec_places_the_pybullet_scene_with_the_assets_half_sizes():
    scene = process_world(TINY).reset(2)
    spec = blender_spec(scene, BlenderConfig(assets=str(ASSETS)), 2, image="i.png", mask="m.png")
    assert json.loads(json.dumps(spec)) == spec and (spec["width"], spec["height"]) == (120, 80)
    assert spec["camera"]["eye"] == scene["camera"]["eye"]
    for o, s in zip(scene["objects"], spec["objects"], strict=True):
        r = SIZE_RADIUS[o["size"]]
        assert s["scale"] == pytest.approx(r / math.sqrt(2) if o["shape"] == "cube" else r)
        assert s["location"] == o["3d_coords"] and s["rotation_deg"] == o["rotation"]
        # resting on the ground: the centre is one half size up (the assets span -1..1)
        assert o["3d_coords"][2] == pytest.approx(s["scale"], abs=2e-3)
    assert len({tuple(c) for c in spec["mask_codes"]}) == len(scene["objects"])
    too_many = {**scene, "objects": scene["objects"][:1] * (MAX_OBJECTS + 1)}
    with pytest.raises(ConfigError, match=f"at most {MAX_OBJECTS} objects"):
        blender_spec(too_many, BlenderConfig(assets=str(ASSETS)), 2, image="i.png", mask="m.png")


@pytest.fixture(scope="module")
def tiny_render():
    return render_clevr_scene_blender((5, 1), TINY, BlenderConfig(assets=str(ASSETS), samples=2))


@requires_blender
def test_tiny_blender_scene_masks_agree_with_its_scene_json(tiny_render):
    scene, rgb, mask = tiny_render.scene, tiny_render.rgb, tiny_render.mask
    assert rgb.shape == (80, 120, 3) and mask.shape == (80, 120)
    assert "light_direction" not in scene and set(scene["lamp_offsets"]) == {"Lamp_Key", "Lamp_Fill", "Lamp_Back"}
    graph = SceneGraph.from_clevr(scene, where="tiny Blender scene")  # relationships follow the directions
    assert set(np.unique(mask).tolist()) == {-1, *range(len(graph))}
    _, _, bullet_mask = process_world(TINY).render()  # the same layout drawn by pybullet
    for k, o in enumerate(graph.objects):
        rows, cols = np.nonzero(mask == k)
        assert len(rows) >= TINY.min_pixels
        u, v, _ = o.pixel_coords
        assert cols.min() - 2 <= u <= cols.max() + 2 and rows.min() - 2 <= v <= rows.max() + 2
        same = bullet_mask == k
        assert ((mask == k) & same).sum() / ((mask == k) | same).sum() > 0.6  # same object, same place
    assert rgb[mask >= 0].std() > 5 and rgb.mean() > 40  # lit objects, not a blank frame


@requires_blender
def test_a_seed_gives_the_same_scene_mask_and_image_every_time(tiny_render):
    again = render_clevr_scene_blender((5, 1), TINY, BlenderConfig(assets=str(ASSETS), samples=2))
    assert json.dumps(again.scene) == json.dumps(tiny_render.scene)
    assert np.array_equal(again.mask, tiny_render.mask) and np.array_equal(again.rgb, tiny_render.rgb)
    two = render_clevr_scene_blender((5, 1), TINY, BlenderConfig(assets=str(ASSETS), samples=2, threads=2))
    assert json.dumps(two.scene) == json.dumps(tiny_render.scene) and np.array_equal(two.mask, tiny_render.mask)
    # Cycles on the CPU gave identical bytes for 1 and 2 threads here; allow 2 levels for other machines
    diff = np.abs(two.rgb.astype(int) - tiny_render.rgb.astype(int))
    assert diff.max() <= 2


@requires_blender
def test_one_blender_process_for_many_scenes_gives_the_bytes_of_one_process_per_scene(tiny_render):
    served = BlenderConfig(assets=str(ASSETS), samples=2, scenes_per_process=2)  # 3 scenes: one restart
    alone = BlenderConfig(assets=str(ASSETS), samples=2, scenes_per_process=1)
    try:
        many = [render_clevr_scene_blender(seed, TINY, served) for seed in ((5, 1), (5, 2), (5, 3))]
        assert 1 <= next(iter(_SERVERS.values())).served <= 2  # restarted after two renders
    finally:
        close_blender_processes()
    assert not _SERVERS
    assert np.array_equal(many[0].rgb, tiny_render.rgb) and np.array_equal(many[0].mask, tiny_render.mask)
    one = render_clevr_scene_blender((5, 3), TINY, alone)
    assert json.dumps(one.scene) == json.dumps(many[2].scene)
    assert np.array_equal(one.rgb, many[2].rgb) and np.array_equal(one.mask, many[2].mask)


@requires_blender
def test_a_failed_scene_in_a_long_lived_blender_is_reported_and_the_next_one_renders(tmp_path):
    config = BlenderConfig(assets=str(ASSETS), samples=1, scenes_per_process=10)
    world = process_world(TINY)
    scene = world.reset(2)
    broken = {**scene, "objects": [{**scene["objects"][0], "shape": "cube"}]}
    try:
        bad_assets = tmp_path / "assets"  # links to the real files, but a damaged cube
        for name in ("base_scene.blend", "shapes/Sphere.blend", "shapes/SmoothCylinder.blend",
                     "materials/Rubber.blend", "materials/MyMetal.blend"):
            (bad_assets / name).parent.mkdir(parents=True, exist_ok=True)
            (bad_assets / name).symlink_to(ASSETS.resolve() / name)
        (bad_assets / "shapes" / "SmoothCube_v2.blend").write_bytes(b"not a blend file")
        with pytest.raises(BlenderError, match="Blender failed on scene seed 2"):
            render_blender(broken, BlenderConfig(assets=str(bad_assets), samples=1, scenes_per_process=10), 2)
        rgb, mask = render_blender(scene, config, 2)  # the same long-lived process goes on
        assert rgb.shape == (80, 120, 3) and set(np.unique(mask).tolist()) == {-1, *range(len(scene["objects"]))}
    finally:
        close_blender_processes()
