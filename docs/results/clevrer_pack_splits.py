"""Pack a ``nesy data clevrer`` folder's train-split videos, then its val-split videos, into one trajectory file.

The twenty-fifth session's shipped video PropNet (nsdr4's relation-path fine-tune) trained on this pack of seed
27341: ``nesy data video-trajectories`` packs one split, and ``nesy train video-dynamics --valid-fraction F`` holds
out the last videos of a pack, so the val-split videos go last (their ids + 10,000, to stay apart from the train
split's) and ``F`` = val videos / all videos holds out exactly them. Each video comes with its counterfactual
re-runs (``video_trajectories(..., counterfactuals=True)``). Only videos whose truth file is written are taken (a
generator stopped mid-video leaves an annotation alone).

Usage (from the repository root)::

    nesy data clevrer --n 93 --seed 27341 --split train --no-render --workers 1 --out DIR
    nesy data clevrer --n 45 --seed 27341 --split val --no-render --workers 1 --out DIR
    PYTHONPATH=$PWD python docs/results/clevrer_pack_splits.py DIR OUT.npz
"""
import dataclasses
import json
import sys
from pathlib import Path

from physics.models.video_propnet import load_video_split, save_trajectory_pack, video_trajectories

VAL_OFFSET = 10_000  # val-split video ids are shifted by this


def main() -> None:
    root, out = Path(sys.argv[1]), sys.argv[2]
    trajs, counts = [], {}
    for split, offset in (("train", 0), ("val", VAL_OFFSET)):
        truth = root / f"truth_{split}"
        n = len(list(truth.glob("*"))) if truth.is_dir() else 0
        if not n:
            continue
        pairs = load_video_split(root, split, limit=n)
        got = [t for a, tr in pairs for t in video_trajectories(a, tr, counterfactuals=True)]
        trajs += [dataclasses.replace(t, meta={**t.meta, "video": int(t.meta["video"]) + offset}) for t in got]
        counts[split] = (len(pairs), len(got))
    save_trajectory_pack(out, trajs)
    print(json.dumps({"counts": counts, "trajectories": len(trajs), "out": out}))


if __name__ == "__main__":
    main()
