"""A diagnosis after the twenty-fifth session's verdict (vatt2): do positions from a depth buffer reach the ceiling?

    PYTHONPATH=$PWD python docs/results/vatt_depth_ladder.py [CACHE]

Every reading of the 48 x 64 masks stops at 0.75-0.79 (sessions 17-25), and ``vatt_kink_ladder.py`` puts the
binding loss in the position of each object estimated from its mask's centre and size. The renderer also gives a
metric depth per pixel (``ClevrWorld._render_raw``; what an RGB-D camera would give, an oracle sensor as the
instance masks are an oracle segmenter). Here every mask pixel is lifted to its 3-D point, ``eye + depth * ray``,
and per object and frame:

* radius ``R`` = half the highest point's height (objects rest on the floor, the camera looks down on their tops);
* centre = the mean of the visible points pushed ``2 R / 3`` further along the mean viewing ray (a sphere's visible
  points, sampled evenly over its image, lie on average ``2 R / 3`` in front of its centre), its x, y kept.

Rungs (per-frame contact score of ``vatt_kink_ladder.py``, linear probe, 600 / 300 dev clips of seed 0):
``depth_difference`` / ``depth_kink2`` (the depth centres, second difference / kink change), ``depth_gap_exact_change``
and ``exact_gap_depth_change`` (which half is mended), beside ``exact`` and ``positions_masked`` of the same clips.
The clips are made again with the depth captured (``make_clip`` renders through ``ClevrWorld.render_frame``, which
this script wraps to keep the depth; nothing in the library changes) and cached in CACHE (default
/work/data/vatt2/s25/depth_cache.pt). It gates and ships nothing: the verdict of the round came first.
"""
import json
import sys
import time

import numpy as np
import torch
from vatt_kink_ladder import (  # docs/results, this folder
    cached_clips,
    differenced,
    kink,
    probe_rungs,
    score,
)

from perception.audiovisual.clips import CLIP_CONFIG
from physics.worlds import clevrer_world
from physics.worlds.audiovisual import make_clip
from physics.worlds.clevr_properties import SIZE_RADIUS

torch.set_num_threads(1)
T = CLIP_CONFIG.frames
_DEPTHS: list[np.ndarray] = []


def _render_frame_keeping_depth(self):  # ClevrerWorld.render_frame, with the depth buffer kept aside
    rgb, depth, mask = self._render_raw(self._camera)
    _DEPTHS.append(depth)
    return rgb, mask


clevrer_world.ClevrerWorld.render_frame = _render_frame_keeping_depth


def arrays(seed):
    _DEPTHS.clear()
    return depth_arrays(make_clip(seed, CLIP_CONFIG), list(_DEPTHS))


def depth_arrays(c, depths):
    """Per-object arrays of clip ``c`` from its frames' depth buffers ``depths`` (one [H, W] array per frame)."""
    camera = CLIP_CONFIG.world_config().camera.with_size(CLIP_CONFIG.width, CLIP_CONFIG.height)
    rays, eye = camera.pixel_rays(), np.asarray(camera.eye)
    order = sorted(c.objects, key=lambda o: o.index)
    n = len(order)
    centre, radius = np.zeros((T, n, 2)), np.zeros((T, n))
    seen = np.zeros((T, n), dtype=bool)
    for t, (m, d) in enumerate(zip(c.masks, depths, strict=True)):
        for o in range(n):
            rows, cols = np.nonzero(m == o)
            if not len(rows):
                continue
            pts = eye + d[rows, cols, None] * rays[rows, cols]
            view = rays[rows, cols].mean(0)
            r = max(pts[:, 2].max() / 2, 1e-3)
            centre[t, o] = (pts.mean(0) + 2 * r / 3 * view / np.linalg.norm(view))[:2]
            radius[t, o], seen[t, o] = r, True
    vel = np.stack([o.velocities[:, :2] for o in order], 1)
    return {"pos": np.stack([o.positions[:, :2] for o in order], 1), "rad": np.array([SIZE_RADIUS[o.size] for o in order]),
            "dv": np.linalg.norm(np.diff(vel, axis=0, prepend=vel[:1]), axis=2), "seen": seen, "depth_centre": centre,
            "depth_radius": radius, "late": int(any(k.frame >= T // 2 for k in c.collisions))}


def rungs(a):
    s, pos, dc, dr = a["seen"], a["pos"], a["depth_centre"], a["depth_radius"]
    return {"exact": score(pos, a["dv"], a["rad"], np.ones_like(s)),
            "positions_masked": score(pos, differenced(pos, s), a["rad"], s),
            "depth_difference": score(dc, differenced(dc, s), dr, s),
            "depth_kink2": score(dc, kink(dc, s, 2), dr, s),
            "depth_gap_exact_change": score(dc, a["dv"], dr, s),
            "exact_gap_depth_change": score(pos, differenced(dc, s), a["rad"], s)}


def main() -> None:
    cache = sys.argv[1] if len(sys.argv) > 1 else "/work/data/vatt2/s25/depth_cache.pt"
    t0 = time.process_time()
    data = cached_clips(cache, "DEPTH_CLIPS", arrays)
    made = time.process_time() - t0
    errors = [np.linalg.norm(a["depth_centre"] - a["pos"], axis=-1)[a["seen"]] for a in data["test"]]
    rad_err = [np.abs(a["depth_radius"] - a["rad"])[a["seen"]] for a in data["test"]]
    res, yte = probe_rungs([rungs(a) for a in data["train"]], [rungs(a) for a in data["test"]], data)
    res |= {"test_centre_error_median_p90": [round(float(np.percentile(np.concatenate(errors), q)), 3) for q in (50, 90)],
            "test_radius_error_median": round(float(np.median(np.concatenate(rad_err))), 3),
            "majority": float(max(yte.float().mean(), 1 - yte.float().mean())), "clips_cpu_s": round(made, 1),
            "cpu_s": round(time.process_time() - t0, 1)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
