"""Which label-free audio target names the impacts' moments? (twenty-seventh session, vatt4; dev seed 0 only)

    PYTHONPATH=$PWD python docs/results/vatt_onset_look.py BANKS

Reads BANKS/train0.pt and BANKS/test0.pt (clip seeds 0-599 and 500,000-500,299: their ``wave`` and ``collisions``)
and fits the benchmark's linear probe (``collision_late``, seed 0) on audio statistics alone, made by the fixed
causal STFT of the ``"stft"`` audio front (Hann 256, hop 64; no training, no label): the positive spectral flux
of all bins (``onset_strength``, the ``onset_target``'s target) or of the bins from ``LOW_HZ`` up, where the
instruments' harmonics end (trumpet's 7th of 520 Hz: 3.64 kHz) and only the impacts' clicks and high modes
sound; and that band's log energy. Per time step (4 of the clip's steps) and per 2 frames (8 spans).
One JSON line per reader.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

from perception.audiovisual.vatt import (
    _causal_log_stft,
    collision_late,
    linear_probe,
    onset_strength,
)

torch.set_num_threads(1)
SAMPLES, CHUNK, RATE = 22016, 128, 11025
LOW_HZ = 3700.0


def stats(wave: torch.Tensor, spans: int, low_bin: int) -> dict[str, torch.Tensor]:
    logmag = _causal_log_stft(wave, CHUNK, torch.hann_window(2 * CHUNK))  # [N, 129, 344]
    n = wave.shape[0]
    rise = F.pad(logmag.diff(dim=2).clamp_min(0), (1, 0))  # [N, F, C]
    high_flux = rise[:, low_bin:].sum(1).log1p().view(n, spans, -1)
    high_energy = logmag[:, low_bin:].exp().square().mean(1).log().view(n, spans, -1)
    return {
        "flux_all": onset_strength(wave, spans, CHUNK).flatten(1),
        "flux_high": torch.stack([high_flux.mean(2), high_flux.amax(2)], 2).flatten(1),
        "energy_high": torch.stack([high_energy.mean(2), high_energy.amax(2)], 2).flatten(1),
    }


banks = sys.argv[1]
tr, te = (torch.load(os.path.join(banks, f)) for f in ("train0.pt", "test0.pt"))
ytr, yte = collision_late(tr["collisions"]), collision_late(te["collisions"])
low_bin = round(LOW_HZ / (RATE / (2 * CHUNK)))
for spans in (4, 8):
    a, b = stats(tr["wave"][:, :SAMPLES], spans, low_bin), stats(te["wave"][:, :SAMPLES], spans, low_bin)
    for key in a:
        print(json.dumps({"reader": key, "spans": spans, "low_hz": LOW_HZ,
                          "probe": linear_probe(a[key], ytr, b[key], yte, 2, 0)}))
    both_a = torch.cat([a["flux_all"], a["flux_high"]], 1)
    both_b = torch.cat([b["flux_all"], b["flux_high"]], 1)
    print(json.dumps({"reader": "flux_all+flux_high", "spans": spans, "probe": linear_probe(both_a, ytr, both_b, yte, 2, 0)}))
