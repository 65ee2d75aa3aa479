"""A diagnosis after the twenty-fifth session's verdict (vatt2): is the masks' *boundary* gap a better contact cue?

    PYTHONPATH=$PWD python docs/results/vatt_mask_gap.py [CACHE [BANKS]]

``vatt_kink_ladder.py`` found the gap estimate binding: the floor gap from each mask's centre and size costs 6-8
points even with exact velocity changes (0.897 -> 0.833). Two objects that touch also have masks that touch in the
image (or overlap, when one hides part of the other), whatever their centres' bias. This reads, per frame and pair
of objects, the smallest distance in pixels between a pixel of one mask and a pixel of the other (1 for neighbours,
``scipy.ndimage.distance_transform_edt``), and scores ``min(change_i, change_j) * exp(-(distance - 1) / KAPPA)``
as the ladder does, for KAPPA = 1, 2, 4 pixels, with the change taken three ways: exact (the simulator's, isolates
the gap cue), the floor estimate's kink (k = 2, :func:`perception.audiovisual.object_tokens.kink`) and the floor
estimate's second difference. ``both_gaps_*`` (added after the first read, KAPPA = 4 taken from it) also multiplies
by the floor gap's kernel exp(-floor_gap / 0.3) (the ladder's, from ``est`` and ``est_rad``), so that masks touching
in the image but apart in depth are not counted. Reads the ladder's CACHE (default /work/data/vatt2/s25/kink_cache.pt) and the banks
of the same clip seeds with their masks (BANKS/train0.pt, BANKS/test0.pt; default /work/data/vatt2/s25). It is
a diagnosis for the next round, read after the verdict on the same 300 test clips: it gates and ships nothing.
"""
import json
import os
import sys
import time

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from vatt_kink_ladder import differenced, probe_rungs  # docs/results, this folder

from perception.audiovisual.object_tokens import kink

torch.set_num_threads(1)
CACHE = sys.argv[1] if len(sys.argv) > 1 else "/work/data/vatt2/s25/kink_cache.pt"
BANKS = sys.argv[2] if len(sys.argv) > 2 else "/work/data/vatt2/s25"
FAR = 99.0  # pixels: a pair not both in view


def mask_gaps(masks, n):  # int8 [T, H, W] -> [T, n, n] smallest pixel distance between masks i and j
    out = np.full((len(masks), n, n), FAR)
    for t, m in enumerate(masks):
        for i in range(n):
            if not (m == i).any():
                continue
            dist = distance_transform_edt(m != i)  # distance of every pixel to mask i
            for j in range(n):
                if j != i and (m == j).any():
                    out[t, i, j] = dist[m == j].min()
    return np.minimum(out, out.transpose(0, 2, 1))


def score(gaps, change, seen, kappa):  # [T, n, n], [T, n], [T, n] -> [T]
    n = seen.shape[1]
    out = np.zeros(len(gaps))
    for i in range(n):
        for j in range(i + 1, n):
            s = np.minimum(change[:, i], change[:, j]) * np.exp(-np.clip(gaps[:, i, j] - 1, 0, None) / kappa)
            out = np.maximum(out, np.where(seen[:, i] & seen[:, j], s, 0.0))
    return out


def floor_gaps(est, rad):  # [T, n, 2], [T, n] -> [T, n, n] centre distance on the floor less both radii
    return np.linalg.norm(est[:, :, None] - est[:, None], axis=-1) - rad[:, :, None] - rad[:, None]


def rungs(a, masks):
    n = a["seen"].shape[1]
    gaps = mask_gaps(masks, n)
    # a pixel-gap equivalent of the floor kernel, so ``score`` applies exp(-(px - 1) / 4) * exp(-floor_gap / 0.3)
    both = gaps + 4 * np.clip(floor_gaps(a["est"], a["est_rad"]), 0, None) / 0.3
    est = torch.from_numpy(a["est"]).float()[None]
    fk = kink(est, torch.from_numpy(a["seen"])[None], 2)[0].norm(dim=-1).numpy()
    changes = {"exact": a["dv"], "floor_kink2": fk, "floor_difference": differenced(a["est"], a["seen"])}
    out = {f"mask_gap{k}_{name}": score(gaps, c, a["seen"], k) for name, c in changes.items() for k in (1, 2, 4)}
    return out | {f"both_gaps_{name}": score(both, c, a["seen"], 4) for name, c in changes.items()}


t0 = time.process_time()
data = torch.load(CACHE, weights_only=False)  # vatt_kink_ladder.py's own cache of numpy arrays
res = {}
rows = {}
for split, bank in (("train", "train0.pt"), ("test", "test0.pt")):
    masks = torch.load(os.path.join(BANKS, bank))["masks"].numpy()
    rows[split] = [rungs(a, m) for a, m in zip(data[split], masks, strict=True)]
res |= probe_rungs(rows["train"], rows["test"], data)[0]
res["cpu_s"] = round(time.process_time() - t0, 1)
print(json.dumps(res))
