"""Write a clip bank to a file that docs/results/vatt_dev.py reads (VATT_BANKS folder or VATT_EXTRA).

    PYTHONPATH=$PWD python docs/results/vatt_bank.py FIRST N OUT

Saves ``clip_bank(FIRST, N)``'s frames, wave, text and collisions tensors to OUT (written to OUT.tmp, then
renamed). Sixteenth session: ``vatt_bank.py 600 1800 /work/data/vatt/s16/train600_1800.pt`` (144.7 CPU s),
1,800 training clips more for the supervised run on 2,400 clips (docs/results/audiovisual.md).
Seventeenth session: the renderer's instance masks are saved too (``masks``, int8 [N, T, H, W], -1 background),
for the object-token video front end (``VATTConfig(video_stem="objects")``).
"""
import os
import sys
import time

import torch

from perception.audiovisual.clips import clip_bank

torch.set_num_threads(1)
first, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.process_time()
b = clip_bank(first, n)
torch.save({"frames": b.frames, "masks": b.masks, "wave": b.wave, "text": b.text, "collisions": b.collisions}, out + ".tmp")
os.replace(out + ".tmp", out)
print(f"clip_bank({first}, {n}) -> {out}: frames {tuple(b.frames.shape)}, skipped {list(b.skipped)}, "
      f"{time.process_time() - t0:.1f} CPU s")
