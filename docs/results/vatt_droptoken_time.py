"""DropToken's cut of the CPU time per VATT step, per video front end (twenty-fifth session, vatt2; dev clips only).

    PYTHONPATH=$PWD python docs/results/vatt_droptoken_time.py [BANKS [STEPS [REPEATS]]]

The benchmark's second check asks DropToken 0.5 to cut the CPU time of a pretraining step by at least 40%
(``run_vatt_bench``: ``1 - time(drop) / time(no drop)`` from :func:`train_vatt`'s process time). The object-token
towers of sessions 17 and 22 were never timed against their no-DropToken twins: their token MLPs run on every token
before DropToken (only the transformer sees half), so the cut may differ from the tubelet tower's. This times
STEPS steps of batch 32 (default 20) with DropToken 0.5 and 0, REPEATS times (default 2) interleaved so that a change
of the machine's load falls on both, on BANKS/train0.pt (default /work/data/vatt2/s25: 600 dev clips of seeds 0..,
with masks), 1 thread, lr 3e-4 (the object runs' rate). Designs: the benchmark's tubelets (8 frames; VATT's
positions), object tokens with frame attention, and session 22's learned-pair candidate with the kink change
(16 frames in 4 steps, no time positions, step 0 out of the step NCE). No probe is read.

Twenty-sixth session, vatt3: a fourth design, the depth candidate's tower (learned pairs, 7 floor features per
object token, the second-difference change, step 0 out of the step NCE), and DROPTIME_DESIGNS=i[,j] to time only the
designs of those indices (0-3). Its floor features here are the mask's (``ground_features``), not the depth's: the
step's cost depends on the tokens' count and width, not their values, and the 600 clips' depth is not in the bank.

Twenty-seventh session, vatt5: DROPTIME_MODE=objects|frames times the DropToken runs with that ``drop_token_mode``
(designs 2 and 3 only: they have pair tokens) against the same no-DropToken twin.
"""
import json
import os
import sys
import time
from dataclasses import replace

import torch

from perception.audiovisual.clips import CLIP_CONFIG, VOCABULARY
from perception.audiovisual.object_tokens import ground_features, object_features
from perception.audiovisual.vatt import VATT, VATTConfig, train_vatt
from perception.benchmark import BenchSize

torch.set_num_threads(1)
BANKS = sys.argv[1] if len(sys.argv) > 1 else "/work/data/vatt2/s25"
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
REPEATS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
t0 = time.process_time()
bank = torch.load(os.path.join(BANKS, "train0.pt"))
audio, text = bank["wave"][:, :22016], bank["text"]
base = VATTConfig(height=48, width=64, samples=22016, chunk=128, vocab=len(VOCABULARY), audio_front="stft",
                  temporal_nce=1.0, temporal_negatives="clip")
objects = replace(base, frames=16, tubelet=(4, 8, 8), video_stem="objects", audio_positions=False,
                  video_time_positions=False, object_attention="frame")
designs = {
    "tubelets (the benchmark's)": (base, bank["frames"][:, ::2].float() / 255.0),
    "object tokens, frame attention": (objects, object_features(bank["frames"], bank["masks"], 4)),
    "learned pairs, kink, skip first": (replace(objects, object_pairs=True, pair_tokens="learned",
                                                temporal_skip_first=True, object_change="kink"),
                                        object_features(bank["frames"], bank["masks"], 4, "kink")),
}
plain = object_features(bank["frames"], bank["masks"], 4)
designs["learned pairs, floor features, skip first (the depth candidate's cost)"] = (
    replace(objects, object_pairs=True, pair_tokens="learned", temporal_skip_first=True, object_ground=True),
    torch.cat([plain, ground_features(plain, CLIP_CONFIG.world_config().camera.with_size(64, 48))], -1))
if os.environ.get("DROPTIME_DESIGNS"):
    keep = {int(i) for i in os.environ["DROPTIME_DESIGNS"].split(",")}
    designs = {k: v for i, (k, v) in enumerate(designs.items()) if i in keep}
res = {}
for name, (cfg, video) in designs.items():
    seconds = {"drop_token": [], "no_drop": []}
    for r in range(REPEATS):
        for key, drop in (("drop_token", 0.5), ("no_drop", 0.0)):
            torch.manual_seed(r)
            model = VATT(replace(cfg, drop_token=drop, drop_token_mode=os.environ.get("DROPTIME_MODE", "tokens")
                                 if drop else "tokens"))
            seconds[key].append(train_vatt(model, video, audio, text, BenchSize(train=len(video), test=0, steps=STEPS,
                                                                                 batch=32, lr=3e-4), r))
    mean = {k: sum(v) / len(v) for k, v in seconds.items()}
    res[name] = {"cpu_s_per_step": {k: round(v, 4) for k, v in mean.items()},
                 "runs": {k: [round(x, 4) for x in v] for k, v in seconds.items()},
                 "cut": round(1 - mean["drop_token"] / mean["no_drop"], 3)}
res |= {"drop_token_mode": os.environ.get("DROPTIME_MODE", "tokens"), "steps": STEPS, "repeats": REPEATS, "cpu_s": round(time.process_time() - t0, 1)}
print(json.dumps(res))
