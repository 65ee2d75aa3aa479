"""Camera calibration from correspondences, back-projection, and relation directions."""

from __future__ import annotations

import numpy as np
import pytest

from perception.derender.camera import (
    backproject_to_plane,
    fit_projection,
    ground_directions,
    project,
)
from physics.errors import DataError


def _look_at(eye, target, f=400.0, cx=240.0, cy=160.0) -> np.ndarray:
    """P = K [R | -R eye] for a camera at ``eye`` looking at ``target`` (v grows downwards)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
    return K @ np.c_[R, -R @ eye]


def test_calibration_recovers_a_known_camera():
    P_true = _look_at([7.4, -6.9, 5.0], [0, 0, 0])
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-3, 3, (50, 2)), rng.choice([0.35, 0.7, 0.25], 50)]
    pix = project(P_true, pts)[:, :2]
    P = fit_projection(pts, pix)
    test = np.c_[rng.uniform(-3, 3, (20, 2)), np.full(20, 0.5)]
    np.testing.assert_allclose(project(P, test), project(P_true, test), atol=1e-6)
    # depth is the distance along the optical axis
    eye = np.array([7.4, -6.9, 5.0])
    assert project(P, np.zeros((1, 3)))[0, 2] == pytest.approx(np.linalg.norm(eye), rel=1e-6)


def test_backprojection_inverts_projection_on_the_plane():
    P = _look_at([7.4, -6.9, 5.0], [0, 0, 0])
    pts = np.array([[1.0, 2.0, 0.7], [-2.5, 0.3, 0.35], [0.0, -2.9, 0.2475]])
    back = backproject_to_plane(P, project(P, pts)[:, :2], pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_directions_of_a_camera_looking_along_plus_y():
    P = _look_at([0, -10, 6], [0, 0, 0])
    d = ground_directions(P)
    np.testing.assert_allclose(d["right"], (1, 0, 0), atol=1e-9)
    np.testing.assert_allclose(d["behind"], (0, 1, 0), atol=1e-9)
    np.testing.assert_allclose(d["left"], (-1, 0, 0), atol=1e-9)
    assert d["above"] == (0.0, 0.0, 1.0)


def test_too_few_or_degenerate_correspondences_are_data_errors():
    with pytest.raises(DataError, match="at least 6"):
        fit_projection(np.zeros((3, 3)), np.zeros((3, 2)))
    coplanar = np.c_[np.random.default_rng(1).uniform(-3, 3, (20, 2)), np.zeros(20)]
    with pytest.raises(DataError, match="degenerate"):
        fit_projection(coplanar, coplanar[:, :2])
