"""Camera calibration of the derenderer from annotated scenes (its training's first step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perception.derender.camera import fit_projection, project
from physics.errors import DataError

__all__ = ["calibrate_camera"]


def calibrate_camera(scenes: Sequence[Any]) -> tuple[np.ndarray, float, dict[str, float]]:
    """Fit the camera and resting heights to annotated scenes.

    Args:
        scenes: SceneGraphs whose objects carry ``pixel_coords``.

    Returns:
        (P [3, 4], mean reprojection error in pixels, {"shape/size": median z}).
    """
    pts, pix = [], []
    for s in scenes:
        for o in s.objects:
            if o.pixel_coords is not None:
                pts.append(o.position)
                pix.append(o.pixel_coords[:2])
    if len(pts) < 6:
        raise DataError(f"camera calibration needs objects with pixel_coords; found {len(pts)} (need >= 6)")
    P = fit_projection(np.asarray(pts), np.asarray(pix))
    err = float(np.linalg.norm(project(P, np.asarray(pts))[:, :2] - np.asarray(pix), axis=1).mean())
    zs: dict[str, list[float]] = {}
    for s in scenes:
        for o in s.objects:
            zs.setdefault(f"{o.shape}/{o.size}", []).append(o.position[2])
    heights = {k: float(np.median(v)) for k, v in sorted(zs.items())}
    return P, err, heights
