"""A clip bank and its depth arrays in one render (twenty-sixth session, vatt3): more training clips for the
supervised bound with depth tokens on 3,000 clips (docs/results/audiovisual.md, History of `vatt`).

    PYTHONPATH=$PWD python docs/results/vatt_depth_bank.py FIRST N OUT

Writes ``clip_bank(FIRST, N)``'s tensors to OUT exactly as ``vatt_bank.py`` does (``vatt_dev.py`` reads it with
VATT_EXTRA) and the per-object depth arrays of the same clips, in the bank's order, to OUT.depth.pt as
``{"train": [...]}`` (the layout of ``vatt_depth_ladder.py``'s cache; ``vatt_dev.py`` reads it with
VATT_DEPTH_EXTRA). Each clip is rendered once: ``vatt_depth_ladder`` keeps every frame's depth buffer aside, and
the bank's ``make_clip`` is wrapped to turn them into the clip's arrays. Both files are written atomically.
"""
import os
import sys
import time

import torch
import vatt_depth_ladder as ladder  # docs/results, this folder; importing it keeps the renderer's depth

from perception.audiovisual import clips

torch.set_num_threads(1)
_ARRAYS: dict[int, dict] = {}
_make_clip = clips.make_clip


def _make_clip_with_depth(seed, config):
    ladder._DEPTHS.clear()
    c = _make_clip(seed, config)
    _ARRAYS[seed] = ladder.depth_arrays(c, list(ladder._DEPTHS))
    return c


def main() -> None:
    first, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if clips.CLIP_CONFIG.frames != ladder.T:
        raise SystemExit("vatt_depth_bank: the ladder's frame count differs from the clips'")
    clips.make_clip = _make_clip_with_depth
    t0 = time.process_time()
    b = clips.clip_bank(first, n)
    torch.save({"frames": b.frames, "masks": b.masks, "wave": b.wave, "text": b.text, "collisions": b.collisions},
               out + ".tmp")
    os.replace(out + ".tmp", out)
    torch.save({"train": [_ARRAYS[s] for s in b.seeds]}, out + ".depth.pt.tmp")
    os.replace(out + ".depth.pt.tmp", out + ".depth.pt")
    print(f"clip_bank({first}, {n}) with depth -> {out}: frames {tuple(b.frames.shape)}, skipped {list(b.skipped)}, "
          f"{time.process_time() - t0:.1f} CPU s")


if __name__ == "__main__":
    main()
