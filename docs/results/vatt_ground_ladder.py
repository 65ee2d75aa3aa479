"""Where the contact score loses the label between exact trajectories and the masks (twenty-second session, vatt3).

    PYTHONPATH=$PWD python docs/results/vatt_ground_ladder.py [SCALE]

The exact 3-D trajectories' contact score (``vatt_trajectory_ceiling.py``: per frame, over object pairs, the smaller
velocity change times exp(-gap / 0.3), gap = floor distance less both radii) reads the probe's label at 0.913; the
same score from the floor estimates of the masks (``ground_features`` / ``ground_contact``, the known camera) reads
about 0.75-0.76. This walks from one to the other, one change at a time, on the development clips of
``vatt_dev.py`` (600 of seeds 0.., 300 of seeds 500000..; the benchmark's linear probe, seed 0, per-frame scores):

* ``exact``: true centres and the simulator's mean velocity per video frame, every object (the ceiling);
* ``exact_masked``: the same, only pairs whose two objects both have mask pixels in the frame;
* ``positions_all`` / ``positions_masked``: true centres, but velocities from frame-to-frame differences of the
  centres (what any tracker of the frames gets at 8 fps), every object / pairs in the masks only;
* ``floor_estimate``: the centres and radii estimated from the masks and the camera (``ground_features``),
  differenced the same way, pairs in the masks (what ``VATTConfig(object_ground=True)`` gives a model);
* ``floor_estimate_true_radius``: the same with the true radii in the gap (is the radius estimate the loss?);
* ``floor_gap_exact_change`` / ``exact_gap_floor_change``: which half fails, the estimated gaps with the exact
  velocity changes, or the exact gaps with the estimated (differenced) changes;
* ``foot_estimate``: another monocular cue, the mask's lowest pixel row (its mean column, the row's bottom edge)
  mapped to the floor z = 0 through the camera, pushed back by the estimated R along the view's floor direction;
* ``hand_2d``: the masks' 2-D hand score of ``vatt_headroom.py`` (image gaps in half-widths, exp(-gap / 0.1)).

With SCALE > 1 (an integer) each clip is also rendered at SCALE times the width and height (the same seed, so the
same objects and motion; checked) and ``floor_estimate_x{SCALE}`` / ``hand_2d_x{SCALE}`` are read from those masks:
does a finer mask raise the ceiling?
"""
import json
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from perception.audiovisual.clips import CLIP_CONFIG
from perception.audiovisual.object_tokens import (
    GROUND_SCALE,
    SIZE_SCALE,
    ground_features,
    object_features,
)
from perception.audiovisual.vatt import linear_probe
from physics.worlds.audiovisual import make_clip
from physics.worlds.clevr_properties import SIZE_RADIUS

SCALE = int(sys.argv[1]) if __name__ == "__main__" and len(sys.argv) > 1 else 1  # importable (vatt_kink_ladder.py)
FINE = replace(CLIP_CONFIG, height=CLIP_CONFIG.height * SCALE, width=CLIP_CONFIG.width * SCALE)
mismatched = 0


def score(pos, change, rad, seen, kernel=0.3):  # [T, O, 2], [T, O], [T, O] or [O], [T, O] bool -> [T]
    rad = np.broadcast_to(rad, seen.shape)
    out = np.zeros(len(pos))
    for i in range(pos.shape[1]):
        for j in range(i + 1, pos.shape[1]):
            gap = np.linalg.norm(pos[:, i] - pos[:, j], axis=1) - rad[:, i] - rad[:, j]
            s = np.minimum(change[:, i], change[:, j]) * np.exp(-np.clip(gap, 0, None) / kernel)
            out = np.maximum(out, np.where(seen[:, i] & seen[:, j], s, 0.0))
    return out


def differenced(pos, seen):  # |velocity change| from frame differences, 0 where a frame is missing: [T, O]
    vel = np.zeros_like(pos)
    ok = seen[1:] & seen[:-1]
    vel[1:] = (pos[1:] - pos[:-1]) * ok[..., None]
    change = np.zeros(seen.shape)
    both = ok[1:] & ok[:-1]
    change[2:] = np.linalg.norm(vel[2:] - vel[1:-1], axis=2) * both
    return change


def estimates(c, cfg, n):  # floor estimate and 2-D hand score from the clip's frames and masks: [T] each
    camera = cfg.world_config().camera.with_size(cfg.width, cfg.height)
    of = object_features(torch.from_numpy(c.frames).permute(0, 3, 1, 2)[None],
                         torch.from_numpy(c.masks.astype(np.int64))[None], n)
    g = ground_features(of, camera)[0].numpy()  # [T, O, 7]
    masked = of[0, ..., 0].numpy() > 0.5
    est = g[..., :2] * GROUND_SCALE
    f = of[0].numpy()
    radius = f[..., 3] / SIZE_SCALE * (cfg.height * cfg.width / np.pi) ** 0.5 / (cfg.width / 2)
    hand = score(f[..., 1:3], np.linalg.norm(f[..., 9:11], axis=2), radius, masked, kernel=0.1)
    return score(est, differenced(est, masked), g[..., 2], masked), hand, est, masked, g[..., 2]


def foot(c, cfg, n, radius):  # [T, O, 2] floor centres from each mask's lowest row; radius [T, O]
    camera = cfg.world_config().camera.with_size(cfg.width, cfg.height)
    right, up, forward = camera.axes()
    tan_x = np.tan(np.radians(camera.fov_x_deg) / 2)
    tan_y = np.tan(np.radians(camera.fov_y_deg) / 2)
    out = np.zeros((len(c.masks), n, 2))
    for t, m in enumerate(c.masks):
        for o in range(n):
            rows, cols = np.nonzero(m == o)
            if not len(rows):
                continue
            low = rows.max()
            col = cols[rows == low].mean()
            ray = forward + ((col + 0.5) / cfg.width * 2 - 1) * tan_x * right + (1 - (low + 1) / cfg.height * 2) * tan_y * up
            point = np.asarray(camera.eye) - camera.eye[2] / min(ray[2], -1e-3) * ray
            away = ray[:2] / np.linalg.norm(ray[:2])
            out[t, o] = point[:2] + radius[t, o] * away
    return out


def feats(seed):
    global mismatched
    c = make_clip(seed, CLIP_CONFIG)
    t = CLIP_CONFIG.frames
    order = sorted(c.objects, key=lambda o: o.index)
    pos = np.stack([o.positions[:, :2] for o in order], 1)
    vel = np.stack([o.velocities[:, :2] for o in order], 1)
    rad = np.array([SIZE_RADIUS[o.size] for o in order])
    masked = np.stack([(c.masks == o.index).any((1, 2)) for o in order], 1)  # [T, O]
    every = np.ones_like(masked)
    dv = np.linalg.norm(np.diff(vel, axis=0, prepend=vel[:1]), axis=2)
    floor, hand, est, _, est_rad = estimates(c, CLIP_CONFIG, len(order))
    feet = foot(c, CLIP_CONFIG, len(order), est_rad)
    f = {"exact": score(pos, dv, rad, every), "exact_masked": score(pos, dv, rad, masked),
         "positions_all": score(pos, differenced(pos, every), rad, every),
         "positions_masked": score(pos, differenced(pos, masked), rad, masked),
         "floor_estimate": floor, "floor_estimate_true_radius": score(est, differenced(est, masked), rad, masked),
         "floor_gap_exact_change": score(est, dv, est_rad, masked),
         "exact_gap_floor_change": score(pos, differenced(est, masked), rad, masked), "hand_2d": hand,
         "foot_estimate": score(feet, differenced(feet, masked), est_rad, masked)}
    if SCALE > 1:
        fine = make_clip(seed, FINE)
        same = len(fine.objects) == len(c.objects) and all(
            np.allclose(a.positions, b.positions) for a, b in zip(order, sorted(fine.objects, key=lambda o: o.index), strict=False))
        mismatched += not same
        f[f"floor_estimate_x{SCALE}"], f[f"hand_2d_x{SCALE}"], _, _, _ = estimates(fine, FINE, len(order))
    late = int(any(k.frame >= t // 2 for k in c.collisions))
    return f, late


if __name__ == "__main__":
    torch.set_num_threads(1)
    t0 = time.process_time()
    tr = [feats(s) for s in range(600)]
    te = [feats(500_000 + s) for s in range(300)]
    ytr, yte = torch.tensor([x[1] for x in tr]), torch.tensor([x[1] for x in te])
    res = {}
    for key in tr[0][0]:
        xtr = torch.tensor(np.stack([x[0][key] for x in tr]), dtype=torch.float32)
        xte = torch.tensor(np.stack([x[0][key] for x in te]), dtype=torch.float32)
        res[key] = round(linear_probe(xtr, ytr, xte, yte, 2, 0), 4)
    res |= {"scale": SCALE, "clips_whose_fine_render_differs": mismatched, "majority": float(max(yte.float().mean(), 1 - yte.float().mean())), "cpu_s": round(time.process_time() - t0, 1)}
    print(json.dumps(res))
