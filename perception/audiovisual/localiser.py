"""AVOL-Net as a learned sounding-object localiser (``--localiser avol``; ``--localiser-checkpoint PATH`` for another).

Arandjelovic and Zisserman, "Objects that Sound", ECCV 2018 (arXiv 1712.06651):
the localisation map of :class:`~perception.audiovisual.correspondence.AVOLNet`,
computed for every frame of a clip against the second of audio around it, and its
peak read through the clip's instance masks
(:func:`perception.audio.localise.sounding_from_maps`): the object under the
peak is the one making the sound.  Frames whose mixture is silent (mean absolute
amplitude below :data:`~physics.worlds.audiovisual.SOUNDING_LEVEL`) mark no object.

The shipped ``checkpoints/avol.pt`` (loaded when no ``--localiser-checkpoint``
is given) is the network the ``avol-net`` benchmark trains at seed 1, written by
:func:`~perception.audiovisual.correspondence.train_localiser` (docs/results/perception.md:
its figures, and how often its answers agree with the clip's truth).  It was trained on
one-instrument clips of 48 x 64 pixels at 11,025 Hz.  Frames
of another size are resized to the checkpoint's (bilinear); audio of another
sample rate is refused.

Shapes: a clip's frames uint8 ``[T, H, W, 3]`` and mixture float ``[L]`` in;
:class:`~perception.audio.localise.SoundingEstimate` (bool ``[T, objects]``) out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from perception.audio.localise import (
    Localise,
    SoundingEstimate,
    register_localiser,
    sounding_from_maps,
)
from perception.audiovisual.clips import SPEC_HOP, spectrogram
from perception.audiovisual.correspondence import (
    SINGLE_FRAME,
    AVOLNet,
    Window,
    load_avol,
)
from physics.errors import ConfigError
from physics.worlds.audiovisual import SOUNDING_LEVEL, AudioVisualClip

__all__ = ["CHECKPOINT", "avol_maps", "avol_localiser"]

CHECKPOINT = Path(__file__).parent / "checkpoints" / "avol.pt"


@torch.no_grad()
def avol_maps(model: AVOLNet, clip: AudioVisualClip, size: tuple[int, int], window: Window = SINGLE_FRAME) -> np.ndarray:
    """AVOL-Net's localisation map of every frame against the audio around it: float ``[T, h, w]`` in (0, 1).

    A frame near the clip's ends takes the first or last whole window; a clip
    shorter than one window is padded with silence.
    """
    t_all = clip.frames.shape[0]
    span = window.before + window.after
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255.0
    if tuple(frames.shape[-2:]) != tuple(size):
        frames = F.interpolate(frames, size=tuple(size), mode="bilinear", align_corners=False)
    wave = torch.from_numpy(clip.mixture)
    need = clip.frame_start(max(span, t_all))
    spec = spectrogram(F.pad(wave, (0, max(0, need - wave.shape[0]))))  # [F, S]
    width = int(round(clip.frame_start(span) / SPEC_HOP))
    windows = []
    for t in range(t_all):
        first = max(min(t - window.before, t_all - span), 0)
        start = int(round(clip.frame_start(first) / SPEC_HOP))
        windows.append(spec[:, start : start + width])
    return torch.sigmoid(model.similarity_map(frames, torch.stack(windows)[:, None])).numpy()


def avol_localiser(checkpoint: str | None) -> Localise:
    """Factory of the ``avol`` localiser (``checkpoint``: None for the shipped one)."""
    if checkpoint is None and not CHECKPOINT.is_file():
        raise ConfigError(f"the shipped AVOL-Net checkpoint {CHECKPOINT} is missing: train one with "
                          "perception.audiovisual.correspondence.train_localiser(PATH, seed=1) and pass "
                          "--localiser-checkpoint PATH")
    model, meta = load_avol(checkpoint or CHECKPOINT)

    def localise(clip: AudioVisualClip) -> SoundingEstimate:
        if clip.sample_rate != meta["sample_rate"]:
            raise ConfigError(f"clip {clip.seed}: AVOL-Net was trained at {meta['sample_rate']} Hz, "
                              f"the clip is {clip.sample_rate} Hz")
        maps = avol_maps(model, clip, (meta["height"], meta["width"]))
        starts = [clip.frame_start(f) for f in range(clip.frames.shape[0] + 1)]
        active = np.array([np.abs(clip.mixture[a:b]).mean() >= SOUNDING_LEVEL if b > a else False
                           for a, b in zip(starts[:-1], starts[1:], strict=True)])
        return sounding_from_maps(maps, clip.masks, len(clip.objects), active=active, source="avol")

    return localise


register_localiser("avol", avol_localiser,
                   help="AVOL-Net (Objects that Sound): the object under its localisation map's peak")
