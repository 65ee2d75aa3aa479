"""Does a better velocity-change estimate from the masks raise the contact score's ceiling? (twenty-fifth session, vatt2)

    PYTHONPATH=$PWD python docs/results/vatt_kink_ladder.py [CACHE]

The ladder of ``vatt_ground_ladder.py`` (twenty-second session, vatt3) put most of the masks' loss (0.897 with exact
centres differenced at 8 fps, 0.750 from the masks) in the velocity change: the change differenced twice from the
mask's floor estimate costs 9-10 points, the estimated gap 6-7. A second difference of a position whose error is a
slowly varying bias plus noise amplifies the noise; a *kink* estimate does not: at frame t, the difference of two
least-squares slopes, one over frames t-k .. t and one over t .. t+k (the frames all exist when the score is read;
each side needs two frames in the masks, else 0). Rungs (per-frame contact score, the benchmark's linear probe, seed
0, on the development clips of ``vatt_dev.py``: 600 of seeds 0.., 300 of seeds 500000..):

* ``exact`` / ``positions_masked`` / ``floor_estimate`` / ``floor_gap_exact_change`` / ``hand_2d``: the references
  of ``vatt_ground_ladder.py`` (reproduced here to check the cache);
* ``positions_masked_kinkK``: exact centres, the kink change (what the kink estimator itself loses);
* ``exact_gap_floor_kinkK``: exact gaps, kink changes from the floor estimates (which half it mends);
* ``floor_kinkK``: the floor estimates with kink changes (frame-derived only: what a model's tokens could carry);
* ``floor_kinkK_gapW``: the same with each pair's smallest estimated gap over frames t-W .. t+W;
* ``hand_2d_kinkK``: the 2-D hand score (image centres in half-widths, kernel 0.1) with kink changes;
* ``floor_smooth``: floor positions averaged over 3 frames, then differenced twice.

The clips' per-object arrays are made once (``make_clip``, about 0.1 CPU s a clip) and kept in CACHE (default
/work/data/vatt2/s25/kink_cache.pt) so that rungs can be added without rendering again.
"""
import json
import os
import sys
import time

import numpy as np
import torch
from vatt_ground_ladder import differenced  # docs/results, this folder

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

torch.set_num_threads(1)
T = CLIP_CONFIG.frames


def arrays(seed):
    c = make_clip(seed, CLIP_CONFIG)
    order = sorted(c.objects, key=lambda o: o.index)
    n = len(order)
    camera = CLIP_CONFIG.world_config().camera.with_size(CLIP_CONFIG.width, CLIP_CONFIG.height)
    of = object_features(torch.from_numpy(c.frames).permute(0, 3, 1, 2)[None],
                         torch.from_numpy(c.masks.astype(np.int64))[None], n)
    g = ground_features(of, camera)[0].numpy()
    f = of[0].numpy()
    vel = np.stack([o.velocities[:, :2] for o in order], 1)
    return {"pos": np.stack([o.positions[:, :2] for o in order], 1), "rad": np.array([SIZE_RADIUS[o.size] for o in order]),
            "dv": np.linalg.norm(np.diff(vel, axis=0, prepend=vel[:1]), axis=2),
            "seen": f[..., 0] > 0.5, "est": g[..., :2] * GROUND_SCALE, "est_rad": g[..., 2],
            "c2d": f[..., 1:3], "rad2d": f[..., 3] / SIZE_SCALE * (CLIP_CONFIG.height * CLIP_CONFIG.width / np.pi) ** 0.5
            / (CLIP_CONFIG.width / 2), "late": int(any(k.frame >= T // 2 for k in c.collisions))}


def score(pos, change, rad, seen, kernel=0.3, window=0):  # [T, O, 2], [T, O], [T, O] or [O], [T, O] -> [T]
    rad = np.broadcast_to(rad, seen.shape)
    out = np.zeros(len(pos))
    for i in range(pos.shape[1]):
        for j in range(i + 1, pos.shape[1]):
            both = seen[:, i] & seen[:, j]
            gap = np.where(both, np.linalg.norm(pos[:, i] - pos[:, j], axis=1) - rad[:, i] - rad[:, j], np.inf)
            if window:
                gap = np.stack([np.roll(np.pad(gap, window, constant_values=np.inf), -d)[window:-window]
                                for d in range(-window, window + 1)]).min(0)
            s = np.minimum(change[:, i], change[:, j]) * np.exp(-np.clip(gap, 0, None) / kernel)
            out = np.maximum(out, np.where(both, s, 0.0))
    return out


def _slope(pos, seen, frames):  # least-squares velocity over the seen frames of ``frames``, None if < 2
    t = np.array([f for f in frames if 0 <= f < len(pos) and seen[f]])
    if len(t) < 2:
        return None
    tc = t - t.mean()
    return (tc[:, None] * (pos[t] - pos[t].mean(0))).sum(0) / (tc ** 2).sum()


def kink(pos, seen, k):  # |slope(t .. t+k) - slope(t-k .. t)| per frame and object: [T, O]
    out = np.zeros(seen.shape)
    for o in range(seen.shape[1]):
        for t in range(len(pos)):
            if not seen[t, o]:
                continue
            a, b = _slope(pos[:, o], seen[:, o], range(t - k, t + 1)), _slope(pos[:, o], seen[:, o], range(t, t + k + 1))
            if a is not None and b is not None:
                out[t, o] = np.linalg.norm(b - a)
    return out


def smoothed(pos, seen):  # 3-frame mean over the seen frames (a frame alone keeps its value)
    out = pos.copy()
    for t in range(len(pos)):
        lo, hi = max(t - 1, 0), min(t + 2, len(pos))
        w = seen[lo:hi].astype(float)[..., None]
        out[t] = np.where(w.sum(0) > 0, (pos[lo:hi] * w).sum(0) / np.maximum(w.sum(0), 1), pos[t])
    return out


def rungs(a):
    every = np.ones_like(a["seen"])
    s, est, pos = a["seen"], a["est"], a["pos"]
    r = {"exact": score(pos, a["dv"], a["rad"], every),
         "positions_masked": score(pos, differenced(pos, s), a["rad"], s),
         "floor_estimate": score(est, differenced(est, s), a["est_rad"], s),
         "floor_gap_exact_change": score(est, a["dv"], a["est_rad"], s),
         "hand_2d": score(a["c2d"], differenced(a["c2d"], s), a["rad2d"], s, kernel=0.1),
         "floor_smooth": score(est, differenced(smoothed(est, s), s), a["est_rad"], s)}
    for k in (2, 3):
        fk = kink(est, s, k)
        r[f"positions_masked_kink{k}"] = score(pos, kink(pos, s, k), a["rad"], s)
        r[f"exact_gap_floor_kink{k}"] = score(pos, fk, a["rad"], s)
        r[f"floor_kink{k}"] = score(est, fk, a["est_rad"], s)
        r[f"floor_kink{k}_gap1"] = score(est, fk, a["est_rad"], s, window=1)
        r[f"hand_2d_kink{k}"] = score(a["c2d"], kink(a["c2d"], s, k), a["rad2d"], s, kernel=0.1)
    return r


def cached_clips(cache, counts_env, arrays):
    """The clips' arrays from ``cache``, or made by ``arrays`` (600 training and 300 test clips, or the counts
    "TRAIN,TEST" in the environment variable ``counts_env``: fewer for a smoke run) and cached there."""
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)  # our own cache of numpy arrays (written below)
    n_train, n_test = (int(x) for x in os.environ.get(counts_env, "600,300").split(","))
    data = {"train": [arrays(s) for s in range(n_train)], "test": [arrays(500_000 + s) for s in range(n_test)]}
    torch.save(data, cache + ".tmp")
    os.replace(cache + ".tmp", cache)
    return data


def probe_rungs(train_rows, test_rows, data):
    """Each rung's linear-probe accuracy: fitted on the training clips' rows, read on the test clips' -> (dict, test
    labels)."""
    ytr = torch.tensor([a["late"] for a in data["train"]])
    yte = torch.tensor([a["late"] for a in data["test"]])
    res = {}
    for key in train_rows[0]:
        xtr = torch.tensor(np.stack([x[key] for x in train_rows]), dtype=torch.float32)
        xte = torch.tensor(np.stack([x[key] for x in test_rows]), dtype=torch.float32)
        res[key] = round(linear_probe(xtr, ytr, xte, yte, 2, 0), 4)
    return res, yte


def main() -> None:
    cache = sys.argv[1] if len(sys.argv) > 1 else "/work/data/vatt2/s25/kink_cache.pt"
    t0 = time.process_time()
    data = cached_clips(cache, "KINK_CLIPS", arrays)
    made = time.process_time() - t0
    res, yte = probe_rungs([rungs(a) for a in data["train"]], [rungs(a) for a in data["test"]], data)
    res |= {"majority": float(max(yte.float().mean(), 1 - yte.float().mean())), "clips_cpu_s": round(made, 1),
            "cpu_s": round(time.process_time() - t0, 1)}
    print(json.dumps(res))


if __name__ == "__main__":  # vatt_depth_ladder.py and vatt_mask_gap.py import its helpers
    main()
