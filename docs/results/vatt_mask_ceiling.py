"""What a linear probe reads from object tokens' own features, with no encoder (seventeenth session, dev seed 0).

    PYTHONPATH=$PWD python docs/results/vatt_mask_ceiling.py [BANKS]

Reads BANKS/train0.pt and BANKS/test0.pt (default /work/data/vatt/s17: ``vatt_bank.py`` banks with masks: 600
clips of seeds 0.., 300 of seeds 500000..), computes ``object_features`` (frames and the renderer's instance masks,
4 slots, 16 frames), and runs the benchmark's linear probe (collision sounding in frames 8..15) on:

* ``raw_step_means``: each of the 4 time steps' mean feature over the objects in view (what mean pooling keeps);
* ``max_velocity_change_per_step``: the largest |velocity change| of any object in each step;
* ``mask_contact_*``: the trajectory ceiling's contact score from the masks instead of the exact 3-D trajectories
  (per frame, over pairs in view, the smaller velocity change times exp(-gap / 0.1), gap = centre distance less
  both radii sqrt(area / pi), in half-widths), per frame, or per step with the smallest gap;
* ``pair_step_means`` / ``pair_step_max`` (vatt2): each step's mean / largest ``pair_features`` over the pairs in
  view (what the pair tokens carry before any encoder).
"""
import json
import os
import sys
import time

import torch

from perception.audiovisual.object_tokens import SIZE_SCALE, object_features, pair_features
from perception.audiovisual.vatt import collision_late, linear_probe

torch.set_num_threads(1)
banks = sys.argv[1] if len(sys.argv) > 1 else "/work/data/vatt/s17"
SLOTS, STEPS = 4, 4
t0 = time.process_time()
tr, te = torch.load(os.path.join(banks, "train0.pt")), torch.load(os.path.join(banks, "test0.pt"))
ftr, fte = object_features(tr["frames"], tr["masks"], SLOTS), object_features(te["frames"], te["masks"], SLOTS)
ytr, yte = collision_late(tr["collisions"]), collision_late(te["collisions"])


def pooled(f):
    n, t = f.shape[:2]
    x = f.view(n, STEPS, t // STEPS, SLOTS, -1)
    present = x[..., 0:1]
    mean = (x * present).sum((2, 3)) / present.sum((2, 3)).clamp_min(1)
    return mean.flatten(1), x[..., 9:11].norm(dim=-1).amax((2, 3))


def contact(f):
    n, t = f.shape[:2]
    present = f[..., 0] > 0
    centre = f[..., 1:3]
    height, width = tr["masks"].shape[2:]
    radius = (f[..., 3] / SIZE_SCALE) * (height * width / torch.pi) ** 0.5 / (width / 2)  # half-widths
    change = f[..., 9:11].norm(dim=-1)
    gap = (centre[..., :, None, :] - centre[..., None, :, :]).norm(dim=-1) - radius[..., :, None] - radius[..., None, :]
    pair = present[..., :, None] & present[..., None, :] & ~torch.eye(SLOTS, dtype=torch.bool)
    score = torch.minimum(change[..., :, None], change[..., None, :]) * torch.exp(-gap.clamp_min(0) / 0.1)
    score = torch.where(pair, score, torch.zeros_like(score)).flatten(-2).amax(-1)  # [N, T]
    gap = torch.where(pair, gap, torch.full_like(gap, 9.0)).flatten(-2).amin(-1)
    per_step = torch.stack([score.view(n, STEPS, -1).amax(2), gap.view(n, STEPS, -1).amin(2)], 2).flatten(1)
    return per_step, score


def pair_pooled(f):
    p = pair_features(f, *tr["masks"].shape[2:])
    n, t = p.shape[:2]
    x = p.view(n, STEPS, t // STEPS, p.shape[2], -1)
    both = x[..., 0:1]
    mean = (x * both).sum((2, 3)) / both.sum((2, 3)).clamp_min(1)
    return mean.flatten(1), x.amax((2, 3)).flatten(1)


(mtr, ctr), (mte, cte) = pooled(ftr), pooled(fte)
(pmtr, pxtr), (pmte, pxte) = pair_pooled(ftr), pair_pooled(fte)
(str_, sftr), (ste, sfte) = contact(ftr), contact(fte)
res = {
    "raw_step_means": linear_probe(mtr, ytr, mte, yte, 2, 0),
    "max_velocity_change_per_step": linear_probe(ctr, ytr, cte, yte, 2, 0),
    "mask_contact_per_frame": linear_probe(sftr, ytr, sfte, yte, 2, 0),
    "mask_contact_and_gap_per_step": linear_probe(str_, ytr, ste, yte, 2, 0),
    "pair_step_means": linear_probe(pmtr, ytr, pmte, yte, 2, 0),
    "pair_step_max": linear_probe(pxtr, ytr, pxte, yte, 2, 0),
    "majority": float(max(yte.float().mean(), 1 - yte.float().mean())),
    "in_view_share": float(ftr[..., 0].mean()), "cpu_s": round(time.process_time() - t0, 1)}
print(json.dumps(res))
