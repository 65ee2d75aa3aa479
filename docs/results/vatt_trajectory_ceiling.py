"""Ceiling of the VATT probe's label from exact trajectories (fifteenth session, development seed 0).

    PYTHONPATH=$PWD python docs/results/vatt_trajectory_ceiling.py

What a perfect tracker of the video would give: per frame, from the clip's true object centres and mean
velocities (what the frames show), the largest "contact change" over object pairs (the smaller of the two
objects' velocity changes, times exp(-gap / 0.3), gap = centre distance less both radii), the smallest
gap and the largest velocity change of any object; then the benchmark's linear probe (collision sounding in
frames 8..15) on 600 clips of seeds 0.. and 300 of seeds 500000.. (the dev clips of vatt_dev.py).
"""
import json
import time

import numpy as np
import torch

from perception.audiovisual.clips import CLIP_CONFIG
from perception.audiovisual.vatt import linear_probe
from physics.worlds.audiovisual import make_clip
from physics.worlds.clevr_properties import SIZE_RADIUS

torch.set_num_threads(1)


def feats(seed):
    c = make_clip(seed, CLIP_CONFIG)
    T = CLIP_CONFIG.frames
    pos = np.stack([o.positions[:, :2] for o in c.objects], 1)  # [T, O, 2]
    vel = np.stack([o.velocities[:, :2] for o in c.objects], 1)
    rad = np.array([SIZE_RADIUS[o.size] for o in c.objects])
    view = np.stack([o.in_view for o in c.objects], 1)
    dv = np.linalg.norm(np.diff(vel, axis=0, prepend=vel[:1]), axis=2)  # [T, O]
    n_obj = len(c.objects)
    contact = np.zeros(T)
    gapmin = np.full(T, 9.0)
    for i in range(n_obj):
        for j in range(i + 1, n_obj):
            gap = np.linalg.norm(pos[:, i] - pos[:, j], axis=1) - rad[i] - rad[j]
            gapmin = np.minimum(gapmin, gap)
            score = np.minimum(dv[:, i], dv[:, j]) * np.exp(-np.clip(gap, 0, None) / 0.3)
            contact = np.maximum(contact, score)
    f = np.stack([contact, gapmin, dv.max(1)], 1)  # [T, 3]
    late = np.array([k.frame >= T // 2 for k in c.collisions]).any() if c.collisions else False
    late_out = any(k.frame >= T // 2 and not all(view[k.frame, list(k.objects)]) for k in c.collisions)
    return f, int(late), late_out

t0 = time.process_time()
tr = [feats(s) for s in range(600)]
te = [feats(500_000 + s) for s in range(300)]


def X(d):
    return torch.tensor(np.stack([x[0] for x in d]), dtype=torch.float32)



ytr, yte = torch.tensor([x[1] for x in tr]), torch.tensor([x[1] for x in te])
xtr, xte = X(tr), X(te)
res = {
    "per_frame_contact_gap_dv": linear_probe(xtr.flatten(1), ytr, xte.flatten(1), yte, 2, 0),
    "contact_only": linear_probe(xtr[..., 0], ytr, xte[..., 0], yte, 2, 0),
    "late_contact_max_sum": linear_probe(torch.stack([xtr[:, 8:, 0].amax(1), xtr[:, 8:, 0].sum(1)], 1), ytr,
                                         torch.stack([xte[:, 8:, 0].amax(1), xte[:, 8:, 0].sum(1)], 1), yte, 2, 0),
    "test_late_with_an_object_out_of_view": float(np.mean([x[2] for x in te])),
    "majority": float(max(yte.float().mean(), 1 - yte.float().mean())), "cpu_s": time.process_time() - t0}
print(json.dumps(res))
