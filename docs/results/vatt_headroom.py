"""Headroom of VATT's probe check on development seed 0 (twenty-second session; docs/results/audiovisual.md).

    PYTHONPATH=$PWD python docs/results/vatt_headroom.py [BANKS] [INITS] [DESIGNS]

The check asks the pretrained encoder's probe to beat a *randomly initialised encoder of the same design* by
15 points. Before any training, this measures how far that can go: the random encoder's probe, over INITS
(default 5) initialisation seeds, for each video design tried so far, against the best reading of the same
information that needs no encoder. Per design (banks of ``vatt_bank.py`` with masks, default
/work/data/vatt/s17: 600 training clips of seeds 0.., 300 test clips of seeds 500000..; the benchmark's
``linear_probe``, seed 0, on ``video_features(per_time=True)``, as ``vatt_dev.py`` reads it):

* ``tubelets``: the benchmark's linear tubelet tower (8 frames of 48x64 at 4 fps, VATT's positions);
* ``objects_all`` / ``objects_frame``: object tokens (16 frames in 4 steps, no time positions), attention over
  the clip / within the frame (the seventeenth session's first round);
* ``objects_frame_pairs``: the same with the hand-made pair tokens (its second round, ``object_pairs=True``);
* ``objects_frame_learned_pairs``: the same with learned pair tokens (``pair_tokens="learned"``, this session).

DESIGNS (comma-separated names; default all but the last) picks the designs; ``none`` skips to the ceilings.

And the ceilings on the same clips, with no encoder: the hand contact score from the masks per frame (the
smaller velocity change times exp(-gap / 0.1), the largest over pairs in view; ``vatt_mask_ceiling.py``), read
by the same linear probe and by scikit-learn's gradient-boosted trees with their default settings (not tuned)
on every pair feature of every frame, the most a non-linear reader of the masks' tokens gets here.
One JSON object is printed.

Twenty-second session, vatt2: HEADROOM_EXTRA (comma-separated ``vatt_bank.py`` files with masks) appends more
training clips, e.g. the 2,400 of seeds 600-2999 in /work/data/vatt2/s22, to see whether the readers gain with data.

Twenty-second session, vatt3: the floor. ``ground_features`` (where each object stands on the floor, from its mask's
centre and size and the clips' fixed, known camera; ``perception.audiovisual.object_tokens``) add the designs
``objects_frame_ground`` and ``objects_frame_learned_pairs_ground`` (``object_ground=True``: each object token carries
them too) and the ceilings ``ground_contact_*`` (the exact-trajectory ceiling's score, exp(-gap / 0.3) in scene units,
from the floor estimates instead of the truth), ``hand_and_ground_contact_*`` (both scores per frame),
``all_ground_features_*`` and ``all_object_and_ground_features_boosted_trees``; ``probe_600`` gives every linear
probe a second figure fitted on the first 600 training clips only (the benchmark's labelled clips).
"""
import json
import os
import sys
import time

import torch

from perception.audiovisual.clips import CLIP_CONFIG, VOCABULARY
from perception.audiovisual.object_tokens import (
    SIZE_SCALE,
    ground_contact,
    ground_features,
    object_features,
    pair_features,
)
from perception.audiovisual.vatt import VATT, VATTConfig, collision_late, linear_probe

torch.set_num_threads(1)
banks = sys.argv[1] if len(sys.argv) > 1 else "/work/data/vatt/s17"
inits = int(sys.argv[2]) if len(sys.argv) > 2 else 5
t0 = time.process_time()
tr, te = torch.load(os.path.join(banks, "train0.pt")), torch.load(os.path.join(banks, "test0.pt"))
for extra in filter(None, os.environ.get("HEADROOM_EXTRA", "").split(",")):  # more training clips (vatt2)
    more = torch.load(extra)
    tr = {k: torch.cat([tr[k], more[k]]) for k in ("frames", "masks", "collisions")}
    del more
ytr, yte = collision_late(tr["collisions"]), collision_late(te["collisions"])
otr, ote = object_features(tr["frames"], tr["masks"], 4), object_features(te["frames"], te["masks"], 4)
camera = CLIP_CONFIG.world_config().camera.with_size(CLIP_CONFIG.width, CLIP_CONFIG.height)  # the banks' (fixed)
gtr, gte = ground_features(otr, camera), ground_features(ote, camera)
ogtr, ogte = torch.cat([otr, gtr], -1), torch.cat([ote, gte], -1)
common = dict(height=48, width=64, samples=22016, chunk=128, vocab=len(VOCABULARY), audio_front="stft",
              temporal_nce=1.0, temporal_negatives="clip")
objects = dict(common, frames=16, tubelet=(4, 8, 8), video_stem="objects", audio_positions=False,
               video_time_positions=False)
designs = {
    "tubelets": (VATTConfig(frames=8, **common), tr["frames"][:, ::2].float() / 255, te["frames"][:, ::2].float() / 255),
    "objects_all": (VATTConfig(**objects), otr, ote),
    "objects_frame": (VATTConfig(**objects, object_attention="frame"), otr, ote),
    "objects_frame_pairs": (VATTConfig(**objects, object_attention="frame", object_pairs=True), otr, ote),
    "objects_frame_learned_pairs": (VATTConfig(**objects, object_attention="frame", object_pairs=True,
                                               pair_tokens="learned"), otr, ote),
    "objects_frame_ground": (VATTConfig(**objects, object_attention="frame", object_ground=True), ogtr, ogte),
    "objects_frame_learned_pairs_ground": (VATTConfig(**objects, object_attention="frame", object_pairs=True,
                                                      pair_tokens="learned", object_ground=True), ogtr, ogte),
}
N600 = min(600, len(ytr))  # the first 600 training clips: the benchmark's labelled ones


def probe(a, b):  # the benchmark's linear probe, fitted on every training clip and on the first 600 only
    return {"probe": round(linear_probe(a, ytr, b, yte, 2, 0), 4),
            "probe_600": round(linear_probe(a[:N600], ytr[:N600], b, yte, 2, 0), 4)}

chosen = sys.argv[3].split(",") if len(sys.argv) > 3 else list(designs)[:4]
designs = {k: designs[k] for k in chosen if k != "none"}
res = {"random_encoder": {}}
for name, (cfg, vtr, vte) in designs.items():
    probes, probes600 = [], []
    for s in range(inits):
        torch.manual_seed(s)
        model = VATT(cfg)
        r = probe(model.video_features(vtr, per_time=True), model.video_features(vte, per_time=True))
        probes.append(r["probe"])
        probes600.append(r["probe_600"])
    p, p6 = torch.tensor(probes), torch.tensor(probes600)
    res["random_encoder"][name] = {"per_init": [round(x, 4) for x in probes], "mean": round(float(p.mean()), 4),
                                   "min": round(float(p.min()), 4), "max": round(float(p.max()), 4),
                                   "per_init_600": [round(x, 4) for x in probes600],
                                   "mean_600": round(float(p6.mean()), 4)}


def contact(f):  # vatt_mask_ceiling.py's hand score, per frame: [N, T]
    present, centre, change = f[..., 0] > 0, f[..., 1:3], f[..., 9:11].norm(dim=-1)
    radius = (f[..., 3] / SIZE_SCALE) * (48 * 64 / torch.pi) ** 0.5 / 32
    gap = (centre[..., :, None, :] - centre[..., None, :, :]).norm(dim=-1) - radius[..., :, None] - radius[..., None, :]
    pair = present[..., :, None] & present[..., None, :] & ~torch.eye(4, dtype=torch.bool)
    score = torch.minimum(change[..., :, None], change[..., None, :]) * torch.exp(-gap.clamp_min(0) / 0.1)
    return torch.where(pair, score, torch.zeros_like(score)).flatten(-2).amax(-1)


ctr, cte = contact(otr), contact(ote)
ktr, kte = ground_contact(gtr, otr[..., 0] > 0.5), ground_contact(gte, ote[..., 0] > 0.5)
hktr, hkte = torch.cat([ctr, ktr], 1), torch.cat([cte, kte], 1)
ceil = {"hand_contact_linear_probe": linear_probe(ctr, ytr, cte, yte, 2, 0),
        "hand_contact_linear_probe_600": probe(ctr, cte)["probe_600"],
        "ground_contact_linear_probe": probe(ktr, kte), "hand_and_ground_contact_linear_probe": probe(hktr, hkte)}
try:
    from sklearn.ensemble import HistGradientBoostingClassifier

    ptr, pte = pair_features(otr, 48, 64).flatten(1), pair_features(ote, 48, 64).flatten(1)
    for name, (a, b) in {"hand_contact": (ctr, cte), "all_pair_features": (ptr, pte),
                         "all_object_features": (otr.flatten(1), ote.flatten(1)),
                         "ground_contact": (ktr, kte), "hand_and_ground_contact": (hktr, hkte),
                         "all_ground_features": (gtr.flatten(1), gte.flatten(1)),
                         "all_object_and_ground_features": (ogtr.flatten(1), ogte.flatten(1))}.items():
        gbt = HistGradientBoostingClassifier(random_state=0).fit(a.numpy(), ytr.numpy())
        ceil[f"{name}_boosted_trees"] = float((torch.from_numpy(gbt.predict(b.numpy())) == yte).float().mean())
except ImportError:  # the [tools] extra is not installed
    ceil["boosted_trees"] = "scikit-learn not installed"
res["ceiling_no_encoder"] = ceil
res |= {"majority": float(max(yte.float().mean(), 1 - yte.float().mean())), "test_clips": len(yte),
        "standard_error": round(float((0.25 / len(yte)) ** 0.5), 4), "inits": inits, "train_clips": len(ytr),
        "cpu_s": round(time.process_time() - t0, 1)}
print(json.dumps(res))
