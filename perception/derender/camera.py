"""Pinhole camera geometry for derendering: calibrate, project, back-project.

The derenderer sees only pixels.  To place an object in 3D it predicts the
image position of the object's centre (CLEVR's ``pixel_coords``) and intersects
the viewing ray with the horizontal plane at the object's resting height
(CLEVR objects stand on the ground, so the centre lies at z = radius of its
size class).  The camera is a 3 x 4 projection matrix ``P`` (``[u, v, 1]^T ~ P
[x, y, z, 1]^T``) calibrated from annotated training scenes with the direct
linear transform (Hartley & Zisserman, *Multiple View Geometry*, Alg. 7.1) --
the world's camera never needs to be exported.  Where the world jitters its
camera per scene, ``P`` is the least-squares mean camera, and the jitter shows
up as position error (measured, not hidden).

Shapes: points3d float [N, 3], pixels float [N, 2] (u = column, v = row).
"""

from __future__ import annotations

import numpy as np

from physics.errors import DataError

__all__ = ["fit_projection", "project", "backproject_to_plane", "ground_directions"]


def fit_projection(points3d: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Least-squares 3 x 4 projection matrix from 3D-2D correspondences (normalised DLT).

    Args:
        points3d: float [N, 3] scene coordinates, N >= 6, not all coplanar.
        pixels: float [N, 2] their image positions (u, v).

    Returns:
        P float64 [3, 4], scaled so that the third row's first three entries have
        unit norm and points in front of the camera get positive depth; then
        ``(P @ [X, 1])[2]`` is the depth along the optical axis in scene units.

    Raises:
        DataError: too few or degenerate correspondences.
    """
    X = np.asarray(points3d, dtype=np.float64)
    x = np.asarray(pixels, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 3 or x.shape != (len(X), 2):
        raise DataError(f"fit_projection needs points3d [N, 3] and pixels [N, 2], got {X.shape}, {x.shape}")
    if len(X) < 6:
        raise DataError(f"fit_projection needs at least 6 correspondences, got {len(X)}")
    # Hartley normalisation: centre and scale both point sets
    mx, sx = X.mean(0), np.sqrt(3) / max(np.linalg.norm(X - X.mean(0), axis=1).mean(), 1e-12)
    mu, su = x.mean(0), np.sqrt(2) / max(np.linalg.norm(x - x.mean(0), axis=1).mean(), 1e-12)
    T3 = np.diag([sx, sx, sx, 1.0])
    T3[:3, 3] = -sx * mx
    T2 = np.diag([su, su, 1.0])
    T2[:2, 2] = -su * mu
    Xn = (T3 @ np.c_[X, np.ones(len(X))].T).T
    xn = (T2 @ np.c_[x, np.ones(len(x))].T).T
    rows = []
    for Xi, (u, v, _) in zip(Xn, xn, strict=True):
        rows.append(np.r_[np.zeros(4), -Xi, v * Xi])
        rows.append(np.r_[Xi, np.zeros(4), -u * Xi])
    _, s, vt = np.linalg.svd(np.asarray(rows), full_matrices=False)  # U would be 2N x 2N
    if s[-2] < 1e-9 * s[0]:
        raise DataError("fit_projection: correspondences are degenerate (coplanar or repeated points)")
    Pn = vt[-1].reshape(3, 4)
    P = np.linalg.inv(T2) @ Pn @ T3
    P = P / np.linalg.norm(P[2, :3])
    if (np.c_[X, np.ones(len(X))] @ P[2]).mean() < 0:
        P = -P
    return P


def project(P: np.ndarray, points3d: np.ndarray) -> np.ndarray:
    """Image coordinates and depth of 3D points: float [N, 3] -> float [N, 3] (u, v, depth)."""
    X = np.atleast_2d(np.asarray(points3d, dtype=np.float64))
    h = np.c_[X, np.ones(len(X))] @ P.T
    return np.c_[h[:, 0] / h[:, 2], h[:, 1] / h[:, 2], h[:, 2]]


def backproject_to_plane(P: np.ndarray, pixels: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Where the rays through ``pixels`` meet the horizontal planes at height ``z``.

    Args:
        P: float [3, 4] projection matrix.
        pixels: float [N, 2] (u, v).
        z: float [N] or scalar plane heights.

    Returns:
        float [N, 3] points (x, y, z).
    """
    uv = np.atleast_2d(np.asarray(pixels, dtype=np.float64))
    z = np.broadcast_to(np.asarray(z, dtype=np.float64), (len(uv),))
    out = np.empty((len(uv), 3))
    for i, ((u, v), zi) in enumerate(zip(uv, z, strict=True)):
        # u * (P3 . X) = P1 . X and v * (P3 . X) = P2 . X, linear in (x, y) for fixed z
        a = np.array([
            [P[0, 0] - u * P[2, 0], P[0, 1] - u * P[2, 1]],
            [P[1, 0] - v * P[2, 0], P[1, 1] - v * P[2, 1]],
        ])
        b = -np.array([
            P[0, 2] * zi + P[0, 3] - u * (P[2, 2] * zi + P[2, 3]),
            P[1, 2] * zi + P[1, 3] - v * (P[2, 2] * zi + P[2, 3]),
        ])
        out[i, :2] = np.linalg.lstsq(a, b, rcond=None)[0]
        out[i, 2] = zi
    return out


def ground_directions(P: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """CLEVR's relation directions from the camera: its ground-plane axes and +-z.

    ``right`` is the ground direction in which the image column u grows,
    ``behind`` the ground-projected viewing direction (away from the camera);
    ``left``/``front`` are their negatives and ``above``/``below`` are +-z.
    """
    # Rows of M = P[:, :3] are K R up to scale; R's third row is the optical axis,
    # and u grows along R's first row (up to a positive scale of K).
    m = P[:, :3]
    forward = m[2] / np.linalg.norm(m[2])
    # first row of R: orthogonalise the first row of M against the optical axis
    r1 = m[0] - forward * (m[0] @ forward)
    right = np.array([r1[0], r1[1], 0.0])
    right /= np.linalg.norm(right)
    behind = np.array([forward[0], forward[1], 0.0])
    behind /= np.linalg.norm(behind)
    as_t = lambda v: tuple(float(c) for c in v)  # noqa: E731
    return {
        "left": as_t(-right),
        "right": as_t(right),
        "behind": as_t(behind),
        "front": as_t(-behind),
        "above": (0.0, 0.0, 1.0),
        "below": (0.0, 0.0, -1.0),
    }
