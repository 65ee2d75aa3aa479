"""The render's fast paths give the same pixels, depth and masks as the straightforward pass they replaced.

The fast paths: the floor and sky are copied from an image built once per camera, only object
pixels get TinyRenderer's colour and depth, and the shadow and metal passes look at fewer pixels.
The functions below are the straightforward pass (the reference); every output must match it bit
for bit, on real TinyRenderer frames with shadows, metal and rubber objects.
"""

from __future__ import annotations

import numpy as np
import pytest

from physics.worlds import clevr_shading
from physics.worlds._pybullet import pybullet as p
from physics.worlds.camera import Camera, Light
from physics.worlds.clevr_shading import SKY_RGB, floor_depth, paint_floor
from physics.worlds.clevr_world import BACKGROUND, GROUND_RGB, ClevrWorld, ClevrWorldConfig
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld


# ---------------------------------------------------------------------- the reference (the pass before)
def _reference_paint_floor(rgb, depth, mask, camera: Camera, light: Light, floor_rgb):
    floor = floor_depth(camera)
    background = mask < 0
    hits_floor = background & (floor < camera.far)
    intensity = min(light.ambient + light.diffuse * max(float(light.unit_direction()[2]), 0.0), 1.0)
    shade_rgb = np.rint(np.asarray(floor_rgb) * 255.0 * intensity * np.asarray(light.color)).astype(np.uint8)
    rgb = rgb.copy()
    np.copyto(rgb, np.asarray(SKY_RGB, np.uint8), where=(background & ~hits_floor)[..., None])
    np.copyto(rgb, shade_rgb, where=hits_floor[..., None])
    depth = depth.astype(np.float32, copy=True)
    np.copyto(depth, floor, where=background)
    return rgb, depth


def _reference_shade(rgb, depth, mask, camera: Camera, light: Light, solids):
    out = rgb.copy()
    to_light = light.unit_direction()
    eye = np.asarray(camera.eye, float)
    h, w = mask.shape
    floor, gx, gy = clevr_shading._floor_geometry(camera)
    ground = (mask < 0) & (floor < camera.far)
    shadowed = np.zeros(mask.shape, dtype=bool)
    for solid in solids:
        c = solid.center
        foot = c[:2] - c[2] / to_light[2] * to_light[:2]
        reach = solid.bounding_radius / to_light[2]
        box = clevr_shading._pixel_box(camera, foot, reach, w, h)
        if box is None:
            continue
        v0, v1, u0, u1 = box
        sx, sy = gx[v0:v1, u0:u1], gy[v0:v1, u0:u1]
        near = (
            ground[v0:v1, u0:u1]
            & ~shadowed[v0:v1, u0:u1]
            & (np.hypot(sx - np.float32(foot[0]), sy - np.float32(foot[1])) < reach)
        )
        if near.any():
            origins = np.stack([sx[near], sy[near], np.zeros(int(near.sum()), np.float32)], axis=1)
            shadowed[v0:v1, u0:u1][near] = clevr_shading._ray_hits(solid, origins.astype(np.float64), to_light)
    out[shadowed] = np.rint(out[shadowed] * np.float32(light.shadow)).astype(np.uint8)
    flat = mask.ravel()
    for k, solid in enumerate(solids):
        if not solid.metal:
            continue
        idx = np.flatnonzero(flat == k)
        if len(idx) == 0:
            continue
        pts = eye + depth.ravel()[idx, None].astype(np.float64) * camera.pixel_rays_at(idx // w, idx % w)
        n = clevr_shading._normals(solid, pts)
        v = eye[None, :] - pts
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ndotl = n @ to_light
        refl_light = 2.0 * ndotl[:, None] * n - to_light[None, :]
        cos_r = np.clip(np.sum(refl_light * v, axis=1), 0.0, 1.0) * (ndotl > 0.0)
        spec = cos_r**light.metal_shininess
        broad = cos_r**6
        ndotv = np.clip(np.sum(n * v, axis=1), 0.0, 1.0)
        refl_view = 2.0 * ndotv[:, None] * n - v
        env = np.where(refl_view[:, 2] > 0.0, 0.35 + 0.65 * refl_view[:, 2], 0.3)
        fresnel = (1.0 - ndotv) ** 3
        base = np.asarray(solid.base_rgb, np.float32)
        pix = out.reshape(-1, 3)
        shaded = pix[idx].astype(np.float32) * 0.5 + base[None, :] * (0.05 + 0.55 * env[:, None])
        shaded += 255.0 * (light.metal_specular * (spec + 0.2 * broad) + 0.25 * fresnel * env)[:, None]
        pix[idx] = np.clip(np.rint(shaded), 0, 255).astype(np.uint8)
    return out


def _reference_render(world: ClevrWorld, camera: Camera):
    """TinyRenderer, full-image depth and mask, then the reference floor and shading passes."""
    light = world.light
    view, proj = camera.pybullet_matrices()
    _, _, rgba, depth_buf, seg = world._client.getCameraImage(
        camera.width, camera.height, viewMatrix=view, projectionMatrix=proj, renderer=p.ER_TINY_RENDERER,
        shadow=0, lightDirection=list(light.unit_direction()), lightColor=list(light.color),
        lightAmbientCoeff=light.ambient, lightDiffuseCoeff=light.diffuse, lightSpecularCoeff=0.0,
    )
    h, w = camera.height, camera.width
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
    depth = camera.linear_depth(np.asarray(depth_buf, dtype=np.float32).reshape(h, w))
    seg = np.asarray(seg, dtype=np.int64).reshape(h, w)
    lut = np.full(max(b.uid for b in world._bodies) + 2, BACKGROUND, dtype=np.int16)
    for k, body in enumerate(world._bodies):
        lut[body.uid + 1] = k
    mask = lut[np.clip(seg, -1, len(lut) - 2) + 1]
    rgb, depth = _reference_paint_floor(rgb, depth, mask, camera, light, GROUND_RGB)
    return _reference_shade(rgb, depth, mask, camera, light, world._solids()), depth, mask


# ---------------------------------------------------------------------- the checks
def test_video_frames_match_the_reference_pass_bit_for_bit():
    """Frames of two videos (metal and rubber, moving, entering, shadows across objects) at 160x112."""
    with ClevrerWorld(ClevrerConfig(width=160, height=112, frames=40, future_frames=0)) as world:
        metal = 0
        for seed in (3, 11):
            start = world.sample((seed,))
            metal += sum(o.material == "metal" for o in start.objects)
            frames: list = []

            def keep(f, w, frames=frames):
                if f % 13 == 0:
                    frames.append((f, *w.render_frame()))

            world.simulate(start, on_frame=keep)
            world.begin(start)
            for f, rgb, mask in frames:
                if f:
                    world.step(f - world.frame)
                ref_rgb, _, ref_mask = _reference_render(world, world.camera)
                assert np.array_equal(rgb, ref_rgb) and rgb.dtype == ref_rgb.dtype
                assert np.array_equal(mask, ref_mask) and mask.dtype == ref_mask.dtype
        assert metal > 0  # the metal pass was exercised


def test_clevr_scene_render_and_depth_match_the_reference_pass_bit_for_bit():
    with ClevrWorld(ClevrWorldConfig(width=120, height=80, min_pixels=10)) as world:
        for seed in (0, 1):
            world.reset(seed)
            rgb, depth, mask = world.render()
            ref_rgb, ref_depth, ref_mask = _reference_render(world, world.camera)
            assert np.array_equal(rgb, ref_rgb) and np.array_equal(mask, ref_mask)
            assert np.array_equal(depth, ref_depth) and depth.dtype == np.float32


@pytest.mark.parametrize("size", [(40, 30), (96, 64)])
def test_paint_floor_matches_the_reference_on_any_mask(size):
    w, h = size
    rng = np.random.default_rng(0)
    cam = Camera(width=w, height=h, eye=(0.5, -12.0, 2.0))  # far enough and low: sky shows above the floor
    light = Light(direction=(1.0, -0.5, 2.0), color=(0.9, 1.0, 0.8))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 20.0, (h, w))  # float64 in: stored as float32, as before
    mask = rng.integers(-1, 3, (h, w))
    got_rgb, got_depth = paint_floor(rgb, depth, mask, cam, light, (0.5, 0.6, 0.7))
    ref_rgb, ref_depth = _reference_paint_floor(rgb, depth, mask, cam, light, (0.5, 0.6, 0.7))
    assert (floor_depth(cam) >= cam.far).any() and (floor_depth(cam) < cam.far).any()  # sky and floor both in view
    assert np.array_equal(got_rgb, ref_rgb) and np.array_equal(got_depth, ref_depth)
    assert got_depth.dtype == np.float32 and got_rgb.flags.writeable and got_depth.flags.writeable
