"""The vatt benchmark with vatt4's candidate (twenty-seventh session; docs/results/audiovisual.md, its rule).

    PYTHONPATH=$PWD python docs/results/vatt_heldout.py SEED GO_FILE OUT.json [quick PRETRAIN_CLIPS]

``nesy bench perception --model vatt --seed SEED`` with the variant: ``run_vatt_bench(False, SEED, lr=1e-3,
pretrain_clips=3000, ...)`` with session 26's depth tower and ``onset_target=W, onset_band=0.67``. The seed's clips
are made first (the benchmark's own ``clip_bank`` calls, so its cache holds them: the data only, no model, no
label read); then the script waits until GO_FILE exists and holds the onset weight W (the dev gate's verdict) or
``stop`` (no candidate passed: it ends with nothing trained or read). Writes the benchmark's JSON (checks, figures,
passed, as ``nesy bench`` does) to OUT.json atomically; ``quick`` runs the benchmark's tiny size on PRETRAIN_CLIPS
clips (a smoke test on a development seed).
"""
import json
import os
import sys
import time
from dataclasses import asdict, replace

import torch

from perception.audiovisual.clips import CLIP_CONFIG, clip_bank
from perception.audiovisual.vatt import _FULL, _QUICK, _TEST_OFFSET, run_vatt_bench
from physics.io import atomic_write_json

torch.set_num_threads(1)
seed, go, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
quick = len(sys.argv) > 4 and sys.argv[4] == "quick"
pretrain = int(sys.argv[5]) if quick else 3000
t0, c0 = time.perf_counter(), time.process_time()
clips, first = replace(CLIP_CONFIG, depth=True), 1_000_000 * seed  # as run_vatt_bench makes them
clip_bank(first, pretrain, clips)
clip_bank(first + _TEST_OFFSET, (_QUICK if quick else _FULL).test, clips)
print(f"clips made: {time.process_time() - c0:.1f} CPU s, {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
while not os.path.exists(go):
    time.sleep(20)
verdict = open(go).read().strip()
if verdict == "stop":
    raise SystemExit("vatt_heldout: stopped by the dev gate; nothing trained or read")
weight = float(verdict)
variant = dict(video_stem="objects", frames=16, tubelet=(4, 8, 8), audio_positions=False, video_time_positions=False,
               object_attention="frame", object_pairs=True, pair_tokens="learned", temporal_skip_first=True,
               object_ground="depth", onset_target=weight, onset_band=0.67)
c1, t1 = time.process_time(), time.perf_counter()
outcome = run_vatt_bench(quick, seed, lr=1e-3, pretrain_clips=pretrain, **variant)
checks = [asdict(c) for c in outcome.checks]
result = {"model": "vatt", "seed": seed, "quick": quick, "lr": 1e-3, "pretrain_clips": pretrain, "variant": variant,
          "clips_cpu_s": round(c1 - c0, 1), "bench_cpu_s": round(time.process_time() - c1, 1),
          "bench_wall_minutes": round((time.perf_counter() - t1) / 60, 2),
          "checks": checks, "figures": dict(outcome.figures), "passed": all(c["passed"] for c in checks)}
atomic_write_json(out, result)
print(json.dumps(result))
