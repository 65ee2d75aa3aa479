"""A cube's yaw from its instance mask: the projected cube whose outline best fits the mask.

The pixel perceiver reads position, colour, material and shape, not orientation;
a cube's yaw matters to collisions (its reach along the centre line runs from
``half`` at a face to ``half * sqrt(2)`` at a corner).  A CLEVRER cube rests
upright on the floor, so its pose is its ground-plane centre and one yaw, known
only within a quarter turn (the cube's symmetry).

:func:`fit_cube_yaw` tries ``steps`` yaws in ``[0, pi / 2)``: for each, the
eight corners of the cube (half side ``half``, centre at height ``half``) are
projected with the videos' fixed camera, their convex hull is the cube's
silhouette, the silhouette is shifted so that its area centroid falls on the
mask's centroid (the perceived centre is off by a few pixels; the fit is for
the turn, not the place), and the yaw whose silhouette overlaps the mask best
(intersection over union on the mask's box, grown by a margin) wins, refined by
a parabola through the best score and its two neighbours.

:func:`track_yaw` turns one cube track's per-frame fits into a yaw per frame:
the fits are angles modulo a quarter turn, so they are averaged as unit vectors
of four times the angle over a window of frames (weighted by each fit's overlap,
fits under ``min_iou`` left out), and frames with no fit in their window take
the nearest frame's yaw.

Shapes: ``mask`` bool [H, W]; ``centre`` float [2] ground-plane (x, y); a
silhouette float [M, 2] pixel polygon (u, v), counter-clockwise in the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from physics.errors import StateError
from physics.worlds.camera import Camera

__all__ = ["cube_corners", "cube_silhouette", "fit_cube_yaw", "track_yaw", "QUARTER"]

QUARTER = math.pi / 2.0  # a cube looks the same turned by a quarter turn


def cube_corners(centre: Sequence[float], half: float, yaw: float) -> np.ndarray:
    """The 8 corners, float [8, 3], of an upright cube of half side ``half`` resting on z = 0."""
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([(sx, sy) for sx in (-half, half) for sy in (-half, half)], float)
    xy = local @ np.array([[c, s], [-s, c]]) + np.asarray(centre[:2], float)[None]
    low = np.concatenate([xy, np.zeros((4, 1))], 1)
    high = np.concatenate([xy, np.full((4, 1), 2.0 * half)], 1)
    return np.concatenate([low, high])


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of float [N, 2] points (monotone chain), counter-clockwise in (u, v) axes."""
    pts = sorted(set(map(tuple, np.round(points, 9))))
    if len(pts) < 3:
        return np.asarray(pts, float)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1], float)


def cube_silhouette(camera: Camera, centre: Sequence[float], half: float, yaw: float) -> np.ndarray:
    """The image outline (convex hull of the projected corners) of an upright cube: float [M, 2]."""
    return _hull(camera.project(cube_corners(centre, half, yaw))[:, :2])


def _polygon_centroid(poly: np.ndarray) -> np.ndarray:
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2.0
    if abs(area) < 1e-9:
        return poly.mean(0)
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6.0 * area)


def _inside(poly: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v) lie inside convex polygon ``poly`` (either winding)."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    side = (b[:, 0, None] - a[:, 0, None]) * (v[None] - a[:, 1, None]) - (b[:, 1, None] - a[:, 1, None]) * (u[None] - a[:, 0, None])
    return np.all(side >= 0, axis=0) | np.all(side <= 0, axis=0)


def fit_cube_yaw(mask: np.ndarray, camera: Camera, centre: Sequence[float], half: float, *,
                 steps: int = 30, margin: int = 4) -> tuple[float, float]:
    """(yaw in [0, pi / 2), overlap) of the upright cube whose silhouette best fits ``mask``.

    Args:
        mask: bool [H, W] one object's instance mask (``camera`` is resized to it).
        camera: The videos' fixed camera.
        centre: The object's ground-plane (x, y) (perceived; only its neighbourhood matters).
        half: The cube's half side (scene units).
        steps: Yaws tried in the quarter turn.
        margin: Pixels the mask's box is grown by for the overlap.

    Returns:
        The yaw (radians, modulo a quarter turn) and the best intersection over union
        (0 when the mask is empty).

    Raises:
        StateError: ``steps`` < 3, ``half`` <= 0 or a mask that is not 2-D.
    """
    if steps < 3 or half <= 0:
        raise StateError(f"fit_cube_yaw: needs steps >= 3 and half > 0, got {steps}, {half}")
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise StateError(f"fit_cube_yaw: mask must be [H, W], got shape {mask.shape}")
    vs, us = np.nonzero(mask)
    if len(us) == 0:
        return 0.0, 0.0
    h, w = mask.shape
    cam = camera.with_size(w, h)
    v0, v1 = max(int(vs.min()) - margin, 0), min(int(vs.max()) + margin + 1, h)
    u0, u1 = max(int(us.min()) - margin, 0), min(int(us.max()) + margin + 1, w)
    grid_v, grid_u = np.mgrid[v0:v1, u0:u1]
    pu, pv = grid_u.ravel() + 0.5, grid_v.ravel() + 0.5
    inside_mask = mask[v0:v1, u0:u1].ravel()
    target = np.array([us.mean() + 0.5, vs.mean() + 0.5])
    n_mask = inside_mask.sum()
    yaws = np.arange(steps) * (QUARTER / steps)
    scores = np.empty(steps)
    for i, yaw in enumerate(yaws):
        poly = cube_silhouette(cam, centre, half, float(yaw))
        poly = poly + (target - _polygon_centroid(poly))[None]
        sil = _inside(poly, pu, pv)
        inter = np.count_nonzero(sil & inside_mask)
        scores[i] = inter / max(np.count_nonzero(sil) + n_mask - inter, 1)
    k = int(np.argmax(scores))
    a, b, c = scores[(k - 1) % steps], scores[k], scores[(k + 1) % steps]
    denom = a - 2.0 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    yaw = (yaws[k] + float(np.clip(shift, -0.5, 0.5)) * QUARTER / steps) % QUARTER
    return float(yaw), float(b)


def track_yaw(frames: Sequence[int], yaws: Sequence[float], ious: Sequence[float], out_frames: Sequence[int], *,
              window: int = 3, min_iou: float = 0.5) -> np.ndarray:
    """One cube track's yaw at each of ``out_frames`` from its per-frame fits (module docstring).

    Args:
        frames: Observed frame of each fit (increasing).
        yaws: Fitted yaw of each (modulo a quarter turn; NaN: no fit).
        ious: Each fit's overlap (its weight).
        out_frames: The frames wanted.
        window: Frames either side averaged.
        min_iou: Fits with less overlap are left out.

    Returns:
        float [len(out_frames)] yaws in [0, pi / 2); NaN everywhere when no fit is usable.
    """
    f = np.asarray(frames, float)
    y = np.asarray(yaws, float)
    wgt = np.asarray(ious, float)
    good = np.isfinite(y) & (wgt >= min_iou)
    out = np.full(len(out_frames), np.nan)
    if not good.any():
        return out
    f, y, wgt = f[good], y[good], wgt[good]
    vec = np.stack([np.cos(4.0 * y), np.sin(4.0 * y)], 1) * wgt[:, None]
    for i, t in enumerate(out_frames):
        near = np.abs(f - t) <= window
        if not near.any():
            near = np.abs(f - t) == np.abs(f - t).min()
        s = vec[near].sum(0)
        out[i] = (math.atan2(s[1], s[0]) / 4.0) % QUARTER
    return out
