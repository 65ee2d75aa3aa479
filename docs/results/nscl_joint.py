"""Measure NS-CL's no-program variant (reasoning.nscl.joint): a fresh parser and concept learner from answers only.

    python docs/results/nscl_joint.py --data DIR --split train --limit-images 300 \
        --eval-data DIR2 --eval-split test --steps 400 --out history.json

Prints a record every ``--every`` steps (``train_accuracy``: the sampled programs' reward,
fraction of runnable programs, dev accuracy of greedy parses) and writes the history as JSON.
It writes no checkpoint: ``nesy train nscl --programs none`` trains the same variant with a
resumable checkpoint of both models (rounds of one epoch).
"""

from __future__ import annotations

import argparse

import torch

from physics.io import atomic_write_json
from reasoning.nscl import load_split
from reasoning.nscl.joint import JointConfig, train_joint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit-images", type=int, default=0)
    ap.add_argument("--eval-data", default=None)
    ap.add_argument("--eval-split", default="val")
    ap.add_argument("--eval-limit-images", type=int, default=0)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_split(args.data, args.split, limit_images=args.limit_images, progress=False, programs="none")
    valid = None
    if args.eval_data:
        valid = load_split(args.eval_data, args.eval_split, limit_images=args.eval_limit_images, progress=False,
                           programs="none")
    config = JointConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    _, _, history = train_joint(data, config, valid=valid, every=args.every, log=lambda r: print(r, flush=True))
    atomic_write_json(args.out, {"config": vars(args), "history": history}, indent=1)


if __name__ == "__main__":
    main()
