"""Camera geometry (projection, depth, directions) and the shadow / metal shading pass."""

from __future__ import annotations

import numpy as np
import pytest

from physics.errors import ConfigError
from physics.worlds.camera import CLEVR_CAMERA, Camera, Light, jitter_camera
from physics.worlds.clevr_shading import Solid, shade


def test_project_then_unproject_round_trips():
    cam = CLEVR_CAMERA.with_size(64, 48)
    depth = np.full((48, 64), 9.0)
    pts = cam.unproject(depth)  # world points seen at pixel centres
    uvd = cam.project(pts.reshape(-1, 3)).reshape(48, 64, 3)
    cols, rows = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
    assert np.allclose(uvd[..., 0], cols, atol=1e-6) and np.allclose(uvd[..., 1], rows, atol=1e-6)
    assert np.allclose(uvd[..., 2], 9.0)


def test_rays_through_projected_points_pass_through_them_at_any_resolution():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-3, 3, (20, 2)), rng.uniform(0, 1, 20)]
    eye = np.asarray(CLEVR_CAMERA.eye)
    u, v, _ = CLEVR_CAMERA.project(pts).T
    for scale in (1.0, 0.4):  # the same field of view at 192 x 128: pixel positions scale with the image
        hw = (round(CLEVR_CAMERA.height * scale), round(CLEVR_CAMERA.width * scale))
        rays = CLEVR_CAMERA.rays_through(u * scale, v * scale, hw)
        along = np.einsum("ij,ij->i", pts - eye, rays) / np.einsum("ij,ij->i", rays, rays)
        assert np.allclose(eye + along[:, None] * rays, pts, atol=1e-9)
    rows, cols = np.array([0, 319, 17]), np.array([0, 479, 203])
    assert np.array_equal(CLEVR_CAMERA.pixel_rays_at(rows, cols), CLEVR_CAMERA.rays_through(cols + 0.5, rows + 0.5))


def test_target_projects_to_the_image_centre():
    u, v, d = CLEVR_CAMERA.project(np.zeros(3))[0]
    assert (u, v) == pytest.approx((240.0, 160.0))
    assert d == pytest.approx(np.linalg.norm(CLEVR_CAMERA.eye))


def test_linear_depth_inverts_the_opengl_depth_buffer():
    cam = Camera(near=0.5, far=50.0)
    z = np.array([0.5, 1.0, 10.0, 50.0])
    ndc = (cam.far + cam.near) / (cam.far - cam.near) - 2 * cam.far * cam.near / ((cam.far - cam.near) * z)
    assert np.allclose(cam.linear_depth((ndc + 1) / 2), z, rtol=1e-5)


def test_clevr_directions_are_ground_plane_unit_vectors():
    d = CLEVR_CAMERA.directions()
    for name in ("left", "right", "front", "behind"):
        assert d[name][2] == 0.0 and np.linalg.norm(d[name]) == pytest.approx(1.0, abs=1e-5)
    # the camera sits in front-right of the origin, looking behind-left
    assert np.dot(d["behind"], -np.asarray(CLEVR_CAMERA.eye)) > 0


def test_jitter_is_seeded_and_bounded():
    a = jitter_camera(CLEVR_CAMERA, np.random.default_rng(3), 0.5)
    b = jitter_camera(CLEVR_CAMERA, np.random.default_rng(3), 0.5)
    assert a == b and a != CLEVR_CAMERA
    assert np.abs(np.subtract(a.eye, CLEVR_CAMERA.eye)).max() <= 0.5


def test_bad_camera_and_light_raise_config_errors():
    with pytest.raises(ConfigError, match="near < far"):
        Camera(near=2.0, far=1.0)
    with pytest.raises(ConfigError, match="parallel"):
        Camera(eye=(0, 0, 5), target=(0, 0, 0), up=(0, 0, 1))
    with pytest.raises(ConfigError, match="upwards"):
        Light(direction=(1, 0, -1))


def _ground_view(cam: Camera):
    rays = cam.pixel_rays()
    depth = (cam.eye[2] / -rays[..., 2]).astype(np.float32)
    return depth, cam.unproject(depth)


@pytest.mark.parametrize("shape", ["sphere", "cube", "cylinder"])
def test_shadow_falls_where_the_light_ray_meets_the_solid(shape):
    cam = CLEVR_CAMERA.with_size(96, 64)
    light = Light(direction=(0.0, -1.0, 1.0))
    depth, pts = _ground_view(cam)
    mask = np.full(depth.shape, -1)
    solid = Solid(shape, np.array([0.0, 0.0, 0.5]), np.eye(3), 0.5, False, (200, 0, 0))
    rgb = np.full((*depth.shape, 3), 200, np.uint8)
    out = shade(rgb, depth, mask, cam, light, [solid])
    # the ground point behind the centre (away from the light) is shadowed; the origin side towards the light is not
    to_light = light.unit_direction()
    foot = np.array([0.0, 0.0, 0.5]) - 0.5 / to_light[2] * to_light
    near_foot = np.linalg.norm(pts[..., :2] - foot[:2], axis=-1) < 0.15
    lit = pts[..., 1] < -1.5
    assert (out[near_foot] == round(200 * light.shadow)).all()
    assert (out[lit] == 200).all()
    assert np.array_equal(rgb, np.full_like(rgb, 200))  # input untouched


def test_metal_gets_a_specular_highlight_rubber_stays_as_rendered():
    cam = CLEVR_CAMERA.with_size(96, 64)
    light = Light()
    depth, _ = _ground_view(cam)
    # a sphere of radius 1 at the origin: replace depth/mask where camera rays hit it
    rays = cam.pixel_rays()
    eye = np.asarray(cam.eye)
    dirs = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    b = dirs @ eye
    disc = b**2 - (eye @ eye - 1.0)
    hit = disc > 0
    t = -b - np.sqrt(np.maximum(disc, 0))
    depth = np.where(hit, t * np.linalg.norm(rays, axis=-1) ** -1, depth).astype(np.float32)
    mask = np.where(hit, 0, -1)
    rgb = np.full((*depth.shape, 3), 60, np.uint8)
    for metal in (False, True):
        solid = Solid("sphere", np.zeros(3), np.eye(3), 1.0, metal, (60, 60, 60))
        out = shade(rgb, depth, mask, cam, light, [solid])
        white = (out[hit] > 215).all(axis=1).sum()
        assert (white > 0) == metal


def test_camera_from_a_bad_record_is_a_data_error():
    from physics.errors import DataError

    with pytest.raises(DataError, match="fov_x_deg"):
        Camera.from_dict({"eye": [1, 2, 3], "width": 4, "height": 4})


def test_camera_matrices_are_computed_once_and_cannot_be_changed_through_the_cache():
    cam = CLEVR_CAMERA.with_size(64, 48)
    view = cam.view_matrix()
    view[:] = 0.0  # a caller's copy: the camera keeps its own
    assert np.array_equal(cam.view_matrix(), CLEVR_CAMERA.view_matrix())
    assert cam._frame is cam._frame and not cam._frame[3].flags.writeable
    right, up, forward = cam.axes()
    right[:] = 0.0
    assert np.linalg.norm(cam.axes()[0]) == pytest.approx(1.0)
    moved = jitter_camera(cam, np.random.default_rng(1), 0.5)  # a new camera gets its own matrices
    assert not np.array_equal(moved.view_matrix(), cam.view_matrix())
    assert moved == Camera(**{k: getattr(moved, k) for k in ("eye", "target", "up", "fov_x_deg", "width", "height")})
    pts = np.array([[0.3, -1.2, 0.35], [4.0, 2.0, 0.0]])
    homo = np.concatenate([pts, np.ones((2, 1))], axis=1)
    clip = (homo @ moved.view_matrix().T) @ moved.projection_matrix().T
    assert np.array_equal(moved.project(pts)[:, 0], (clip[:, 0] / clip[:, 3] + 1.0) * 0.5 * 64)
