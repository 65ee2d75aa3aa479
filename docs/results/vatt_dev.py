"""VATT development runs of the fifteenth session (seed 0 only; docs/results/audiovisual.md, round 5).

    PYTHONPATH=$PWD python docs/results/vatt_dev.py MODE FRAMES VIDEO_INPUT ONSET STEPS [TEMPORAL_NCE [POSITIONS]]

MODE: random (probe an untrained encoder), sup (train the video tower and a linear head on the probe's own
label: the supervised upper bound; supbn: the same with the head's input batch-normalised), vatt (VATT pretraining as the benchmark does, then the probe).
FRAMES 8 or 16, VIDEO_INPUT rgb or diff, ONSET the onset_target weight, POSITIONS pos (default), nopos
(audio_positions=False) or notime (no audio positions and no video time positions). Clips: 600 of
clip_bank(0, 600) to train, 300 of clip_bank(500_000, 300) to test, read from VATT_BANKS (a folder whose
train0.pt and test0.pt hold the banks' frames, wave, text and collisions tensors) when set, else made here
(about 110 CPU s). One JSON line is
printed and appended to VATT_DEV_LOG when set.

Sixteenth session: VATT_STEM=conv (``video_stem="conv"``, a small CNN inside each tubelet) with VATT_STEM_WIDTH
(default 16), VATT_LR (default 1e-3) and VATT_EXTRA
(a file like train0.pt of more training clips, appended) when set;
sup and supbn runs also print their training loss per 50 steps, supbn its head read with the training set's
own feature statistics (``precise_bn``: the running ones lag the tower), and VATT_FLIP=1 mirrors half of each
supervised batch left to right.

Seventeenth session: VATT_STEM=objects (``video_stem="objects"``, one token per object per frame from the frames
and the renderer's instance masks, :mod:`perception.audiovisual.object_tokens`) reads banks that hold ``masks``
(``vatt_bank.py`` now saves them; VATT_BANKS=/work/data/vatt/s17); VATT_TUBELET_T sets the frames per time step
(default 2; with FRAMES 16 and VATT_TUBELET_T=4 the 4 time steps of the benchmark's 8 frames);
VATT_OBJECT_ATTENTION=frame (``object_attention="frame"``: object tokens attend within their frame).
Second round: VATT_OBJECT_PAIRS=1 (``object_pairs=True``: a token per pair of objects per frame) and
VATT_SKIP_FIRST=1 (``temporal_skip_first=True``: step 0 left out of the step NCE).

Twenty-second session: VATT_PAIR_TOKENS=learned (``pair_tokens="learned"``: the pair tokens come from a learned MLP of
the two objects' features, not the hand-made pair features) and VATT_INIT (the encoder's initialisation seed,
default 0; the probe's seed stays 0).

Twenty-second session, vatt2: VATT_EXTRA may name several files, comma-separated (appended in order), and keeps
their ``masks`` (the object front end needs them; before, the extra clips' masks were dropped); with more than
600 training clips the line also holds ``probe_video_600``, the same probe fitted on the first 600 only.

Twenty-fifth session, vatt2: VATT_OBJECT_CHANGE=kink (``object_change="kink"``: the object tokens' velocity change
is the difference of two slopes fitted over 2 frames before and after, not the mask centre's second difference).
VATT_DEPTH_CACHE=PATH (``object_ground=True`` with the floor features made from the renderer's depth per mask pixel,
``vatt_depth_ladder.py``'s cache of the same clip seeds, not from the mask and the camera; the same 7-feature layout:
x / GROUND_SCALE, y / GROUND_SCALE, R, velocity, second-difference change; no VATT_EXTRA with it).

Twenty-sixth session, vatt3: VATT_DEPTH_EXTRA=PATH[,PATH] (the depth arrays of VATT_EXTRA's clips, in the same
order, written beside each bank by ``vatt_depth_bank.py``) lets VATT_DEPTH_CACHE run on more than 600 training
clips; the check against the bank's masks covers every clip.

Twenty-seventh session, vatt4: VATT_ONSET_BAND=B (``onset_band=B``: the ONSET regression's spectral flux only from
B of the Nyquist frequency up, the impacts' band; needs ONSET > 0) and VATT_DROP_TOKEN=R (the ``vatt`` pretraining's
DropToken rate, default 0.5, VATT's: 0 trains the benchmark's no-DropToken ablation).

Twenty-seventh session, vatt5: VATT_DROP_MODE=objects|frames (``drop_token_mode``: DropToken drops object tokens
only and keeps every pair token, or whole frames, the same number from each time step; default tokens, VATT's).
"""
import dataclasses
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

from perception.audiovisual.clips import VOCABULARY, clip_bank
from perception.audiovisual.object_tokens import object_features
from perception.audiovisual.vatt import (
    VATT,
    VATTConfig,
    collision_late,
    linear_probe,
    step_means,
    train_vatt,
)
from perception.benchmark import BenchSize, train_steps

torch.set_num_threads(1)
mode, frames, vin, onset, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
tnce = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
apos = (sys.argv[7] not in ("nopos", "notime")) if len(sys.argv) > 7 else True
vtpos = (sys.argv[7] != "notime") if len(sys.argv) > 7 else True
ntest = 300


def bank(first, n, name):
    if os.environ.get("VATT_BANKS"):
        return torch.load(os.path.join(os.environ["VATT_BANKS"], name))
    b = clip_bank(first, n)
    return {"frames": b.frames, "masks": b.masks, "wave": b.wave, "text": b.text, "collisions": b.collisions}


tr, te = bank(0, 600, "train0.pt"), bank(500_000, 300, "test0.pt")
for extra in filter(None, os.environ.get("VATT_EXTRA", "").split(",")):  # more training clips (files like
    more = torch.load(extra)                                             # train0.pt, e.g. of clip_bank(600, 1800))
    p_, w_ = max(tr["text"].shape[1], more["text"].shape[1]), max(tr["text"].shape[2], more["text"].shape[2])
    pad = lambda t, p_=p_, w_=w_: F.pad(t, (0, w_ - t.shape[2], 0, p_ - t.shape[1]))  # noqa: E731
    keys = ("frames", "wave", "text", "collisions") + (("masks",) if "masks" in tr and "masks" in more else ())
    tr = {k: torch.cat([pad(tr[k]), pad(more[k])]) if k == "text" else torch.cat([tr[k], more[k]]) for k in keys}
    del more
stride = 16 // frames
depth_cache = torch.load(os.environ["VATT_DEPTH_CACHE"], weights_only=False) if os.environ.get("VATT_DEPTH_CACHE") else None
for extra in filter(None, os.environ.get("VATT_DEPTH_EXTRA", "").split(",")):  # depth arrays of VATT_EXTRA's clips,
    if depth_cache is None:                                                     # in the same order
        raise SystemExit("VATT_DEPTH_EXTRA: needs VATT_DEPTH_CACHE (the first 600 clips' depth arrays)")
    depth_cache["train"] = depth_cache["train"] + torch.load(extra, weights_only=False)["train"]


def depth_ground(split, n_clips):  # [N, 16, 4, 7] floor features from the depth cache's centres and radii
    from perception.audiovisual.object_tokens import GROUND_SCALE
    out = torch.zeros(n_clips, 16, 4, 7)
    for i, a in enumerate(depth_cache[split][:n_clips]):
        seen = torch.from_numpy(a["seen"])  # [16, n]
        pos = torch.from_numpy(a["depth_centre"]).float()
        n = seen.shape[1]
        vel = torch.zeros_like(pos)
        ok = seen[1:] & seen[:-1]
        vel[1:] = (pos[1:] - pos[:-1]) * ok[..., None]
        change = torch.zeros_like(pos)
        change[2:] = (vel[2:] - vel[1:-1]) * (ok[1:] & ok[:-1])[..., None]
        g = torch.cat([pos / GROUND_SCALE, torch.from_numpy(a["depth_radius"]).float()[..., None], vel, change], -1)
        out[i, :, :n] = g * seen[..., None]
    return out


def inputs(b, n=None, split="train"):
    if os.environ.get("VATT_STEM") == "objects":  # features at the clip's 8 fps, then strided
        v = object_features(b["frames"][:n], b["masks"][:n], 4, os.environ.get("VATT_OBJECT_CHANGE", "difference"))
        if depth_cache is not None:
            if not torch.equal(depth_ground(split, len(v))[..., 2] > 0, v[..., 0] > 0.5):
                raise SystemExit("VATT_DEPTH_CACHE: the cache's objects in view differ from the bank's masks")
            v = torch.cat([v, depth_ground(split, len(v))], -1)
        v = v[:, ::stride]
    else:
        v = b["frames"][:n, ::stride].float() / 255.0
    return v, b["wave"][:n, :22016], b["text"][:n]
video, audio, text = inputs(tr)
tv, ta, _ = inputs(te, ntest, "test")
ytr, yte = collision_late(tr["collisions"]), collision_late(te["collisions"][:ntest])
if os.environ.get("VATT_LABEL") == "cello":  # a sanity label the frames show plainly: a cello (brown cylinder) in the clip
    cello = VOCABULARY.ids["cello"]
    ytr, yte = (tr["text"] == cello).flatten(1).any(1).long(), (te["text"][:ntest] == cello).flatten(1).any(1).long()
cfg = VATTConfig(frames=frames, height=48, width=64, samples=22016, chunk=128, vocab=len(VOCABULARY),
                 audio_front="stft", temporal_nce=tnce, temporal_negatives="clip", video_input=vin, onset_target=onset, audio_positions=apos, video_time_positions=vtpos,
                 video_stem=os.environ.get("VATT_STEM", "linear"), stem_width=int(os.environ.get("VATT_STEM_WIDTH", "16")),
                 tubelet=(int(os.environ.get("VATT_TUBELET_T", "2")), 8, 8),
                 object_attention=os.environ.get("VATT_OBJECT_ATTENTION", "all"),
                 object_pairs=os.environ.get("VATT_OBJECT_PAIRS") == "1",
                 pair_tokens=os.environ.get("VATT_PAIR_TOKENS", "measured"),
                 temporal_skip_first=os.environ.get("VATT_SKIP_FIRST") == "1",
                 object_change=os.environ.get("VATT_OBJECT_CHANGE", "difference"),
                 object_ground=depth_cache is not None, onset_band=float(os.environ.get("VATT_ONSET_BAND", "0")),
                 drop_token_mode=os.environ.get("VATT_DROP_MODE", "tokens"))
lr = float(os.environ.get("VATT_LR", "1e-3"))
torch.manual_seed(int(os.environ.get("VATT_INIT", "0")))
t0 = time.process_time()
if mode in ("sup", "supbn"):
    model = VATT(dataclasses.replace(cfg, drop_token=0.0))
    head = torch.nn.Linear((1 + cfg.video_grid[0]) * cfg.dim, 2)
    if mode == "supbn":  # the tower's features barely vary across clips (std 0.003): standardise them for the head
        head = torch.nn.Sequential(torch.nn.BatchNorm1d(head.in_features, affine=False), head)
    both = torch.nn.ModuleDict({"m": model, "h": head})
    flip = torch.Generator().manual_seed(1)
    def step(idx):
        v = video[idx]
        if os.environ.get("VATT_FLIP") == "1":  # mirror half the clips left to right (the label does not change)
            v = torch.where(torch.rand(len(idx), 1, 1, 1, 1, generator=flip) < 0.5, v.flip(-1), v)
        agg, tok, st = model._video(v)
        f = torch.cat([agg, step_means(tok, st, cfg.video_grid[0]).flatten(1)], 1)
        return {"loss": F.cross_entropy(head(f), ytr[idx])}
    history = train_steps(both, step, items=len(video), steps=steps, batch=32, lr=lr, seed=0, desc="sup", per_round=50)
    model.eval()
    head.eval()
    with torch.no_grad():
        agg, tok, st = model._video(tv)
        direct = float((head(torch.cat([agg, step_means(tok, st, cfg.video_grid[0]).flatten(1)], 1)).argmax(1) == yte).float().mean())
        agg, tok, st = model._video(video)
        train_acc = float((head(torch.cat([agg, step_means(tok, st, cfg.video_grid[0]).flatten(1)], 1)).argmax(1) == ytr).float().mean())
    res = {"direct_head": direct, "train_acc_head": train_acc,
           "loss_per_50": [round(float(h["loss"]), 3) for h in history]}
    if mode == "supbn":  # the running statistics lag the tower; read the head again with the training set's own
        with torch.no_grad():
            f_tr = torch.cat([agg, step_means(tok, st, cfg.video_grid[0]).flatten(1)], 1)
            head[0].running_mean.copy_(f_tr.mean(0))
            head[0].running_var.copy_(f_tr.var(0))
            res["train_acc_head_precise_bn"] = float((head(f_tr).argmax(1) == ytr).float().mean())
            agg, tok, st = model._video(tv)
            res["direct_head_precise_bn"] = float((head(torch.cat([agg, step_means(tok, st, cfg.video_grid[0]).flatten(1)], 1)).argmax(1) == yte).float().mean())
elif mode == "vatt":
    model = VATT(dataclasses.replace(cfg, drop_token=float(os.environ.get("VATT_DROP_TOKEN", "0.5"))))
    res = {"drop_token": model.config.drop_token, "sec_per_step": train_vatt(model, video, audio, text, BenchSize(train=len(video), test=ntest, steps=steps, batch=32, lr=lr), 0)}
    with torch.no_grad():
        model.eval()
        out = model.losses(video[:64], audio[:64], text[:64])
        res["losses"] = {k: round(float(v), 4) for k, v in out.items()}
        # shortcut check: each clip's video against ANOTHER clip's audio; a step NCE as low as the matched one
        # means the steps are told apart by position, not by content
        mis = model.losses(video[:64], audio[:64].roll(1, 0), text[:64])
        res["losses_mismatched_audio"] = {k: round(float(v), 4) for k, v in mis.items()}
else:
    model = VATT(cfg)
    res = {}
train_s = time.process_time() - t0
with torch.no_grad():
    f_train, f_test = model.video_features(video, per_time=True), model.video_features(tv, per_time=True)
res["probe_video"] = linear_probe(f_train, ytr, f_test, yte, 2, 0)
if len(ytr) > 600:  # the same probe fitted on the benchmark's 600 labelled clips only (clip seeds 0-599)
    res["probe_video_600"] = linear_probe(f_train[:600], ytr[:600], f_test, yte, 2, 0)
res |= {"mode": mode, "frames": frames, "video_input": vin, "onset": onset, "steps": steps, "tnce": tnce, "audio_positions": apos, "video_time_positions": vtpos,
        "train_cpu_s": round(train_s, 1), "cpu_s": round(time.process_time() - t0, 1), "label": os.environ.get("VATT_LABEL", "collision_late"),
        "stem": cfg.video_stem, "stem_width": cfg.stem_width, "lr": lr, "tubelet_t": cfg.tubelet[0], "object_attention": cfg.object_attention,
        "object_pairs": cfg.object_pairs, "pair_tokens": cfg.pair_tokens, "init": int(os.environ.get("VATT_INIT", "0")),
        "temporal_skip_first": cfg.temporal_skip_first, "object_change": cfg.object_change,
        "depth_ground": depth_cache is not None, "onset_band": cfg.onset_band, "drop_token_mode": cfg.drop_token_mode,
        "flip": os.environ.get("VATT_FLIP") == "1", "train_clips": len(ytr), "majority": float(max(yte.float().mean(), 1 - yte.float().mean()))}
print(json.dumps(res))
if os.environ.get("VATT_DEV_LOG"):
    with open(os.environ["VATT_DEV_LOG"], "a") as f:
        f.write(json.dumps(res) + "\n")
