"""Audio-visual clips as tensors for the correspondence models and VATT, made in-process and cached.

A :class:`ClipBank` holds ``N`` clips of :func:`physics.worlds.audiovisual.make_clip`
(one seed each) as tensors; the benchmarks draw (frames, audio) windows from it.
A seed whose clip cannot be made is reported in ``skipped`` and left out, so one
bad clip does not stop a benchmark.  :func:`clip_bank` caches banks in memory
per process, so the entries of one ``nesy bench perception --all`` run share them.

Shapes (N clips, T frames of H x W, O objects at most, F bins, S spectrogram frames, L samples)::

    frames    uint8 [N, T, 3, H, W]
    masks     int8  [N, T, H, W]        -1 background, else the object's index
    sounding  bool  [N, T, O]           object o's tone is audible in frame t (the clip's truth)
    spec      float [N, F, S]           normalised log-magnitude spectrogram of the mixture
    wave      float [N, L]              the mixture
    text      int64 [N, P, W]           the clip's description, P phrases of W word ids (0 = padding)
    collisions int64 [N, T]             collisions whose sound starts in each frame
    depth     float [N, T, H, W]        the renderer's depth per pixel, only with ``config.depth`` (else None)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from perception.audio.spectrogram import SpectrogramConfig, log_magnitude, stft
from physics.errors import NesyError, StateError
from physics.worlds.audiovisual import AudioVisualClip, AudioVisualConfig, make_clip
from physics.worlds.clevr_properties import COLORS, MATERIALS, SHAPES, SIZE_RADIUS
from physics.worlds.sound import INSTRUMENTS

__all__ = ["Vocabulary", "CLIP_CONFIG", "SPECTROGRAM", "SPEC_HOP", "SPEC_BINS", "MAX_OBJECTS", "VOCABULARY",
           "ClipBank", "clip_bank", "describe", "spectrogram"]

class Vocabulary:
    """Word ids of a closed vocabulary: 0 is padding, 1 unknown, then the words in the order given.

    >>> v = Vocabulary(["red", "cube"])
    >>> v.encode(["red cube", "blue cube"], words=3).tolist()
    [[2, 3, 0], [1, 3, 0]]
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words = ("<pad>", "<unk>", *dict.fromkeys(words))
        self.ids = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, phrases: Sequence[str], words: int) -> Tensor:
        """``P`` phrases -> int64 [P, words] (cut or padded with 0)."""
        out = torch.zeros(len(phrases), words, dtype=torch.long)
        for i, phrase in enumerate(phrases):
            ids = [self.ids.get(w, 1) for w in phrase.lower().split()][:words]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


CLIP_CONFIG = AudioVisualConfig(height=48, width=64)  # 16 frames at 8 fps (2 s), 11,025 Hz, 2 instruments
SPECTROGRAM = SpectrogramConfig(n_fft=256, hop=128, eps=1e-3)  # 43 Hz bins up to 5.5 kHz, 11.6 ms frames
_POOL = 2  # the log-magnitudes are averaged over 2 x 2 cells: 86 Hz x 23 ms (a second is 64 x 43)
SPEC_HOP = SPECTROGRAM.hop * _POOL  # samples per frame of :func:`spectrogram`
SPEC_BINS = (SPECTROGRAM.n_fft // 2) // _POOL  # frequency bins of :func:`spectrogram` (64)
MAX_OBJECTS = 8
_LOG_CENTRE, _LOG_SCALE = -4.0, 2.5  # log(|X| + 1e-3) spans about [-6.9, 3]; this maps it near [-1, 3]
PHRASES, WORDS = 7, 6  # up to 4 objects and 3 collisions; "small red rubber cube cello sounds"
VOCABULARY = Vocabulary([*SIZE_RADIUS, *COLORS, *MATERIALS, *SHAPES, *INSTRUMENTS, "sounds", "silent", "hits"])


def spectrogram(wave: Tensor) -> Tensor:
    """Normalised log-magnitude ``[..., F, S]`` of waveforms ``[..., L]``, averaged over 2 x 2 cells.

    F = 64 (the Nyquist bin dropped, then pairs of bins), S = (1 + L // 128) // 2 (frames of ``SPEC_HOP``).
    """
    log_mag = (log_magnitude(stft(wave, SPECTROGRAM), SPECTROGRAM)[..., :-1, :] - _LOG_CENTRE) / _LOG_SCALE
    lead = log_mag.shape[:-2]
    pooled = torch.nn.functional.avg_pool2d(log_mag.reshape(-1, 1, *log_mag.shape[-2:]), _POOL)
    return pooled.reshape(*lead, *pooled.shape[-2:])


def describe(clip: AudioVisualClip) -> list[str]:
    """The clip's description: one phrase per object, then one per collision (at most ``PHRASES``).

    >>> describe(make_clip(0, AudioVisualConfig(frames=4, height=32, width=48)))[0]  # doctest: +SKIP
    'large brown rubber cylinder cello sounds'
    """
    phrases = [f"{o.size} {o.color} {o.material} {o.shape} " + (f"{o.category} sounds" if o.category else "silent")
               for o in clip.objects]
    for c in clip.collisions:
        a, b = (clip.objects[i] for i in c.objects)
        phrases.append(f"{a.color} {a.shape} hits {b.color} {b.shape}")
    return phrases[:PHRASES]


@dataclass(frozen=True, eq=False)
class ClipBank:
    """Clips as tensors (module docstring), with the seeds they came from and those skipped."""

    frames: Tensor
    masks: Tensor
    sounding: Tensor
    spec: Tensor
    wave: Tensor
    text: Tensor
    collisions: Tensor
    seeds: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...]
    config: AudioVisualConfig
    depth: Tensor | None = None

    def __len__(self) -> int:
        return len(self.seeds)

    def spec_frame(self, f: int) -> int:
        """Spectrogram frame nearest the first sample of video frame ``f``."""
        return int(round(self.config.frame_start(f) / SPEC_HOP))

    def frame_stack(self, idx: Tensor, t: Tensor, offsets: Sequence[int]) -> Tensor:
        """Frames ``t + offset`` of clips ``idx`` stacked on channels: float ``[B, 3 * len(offsets), H, W]``."""
        rows = [self.frames[idx, (t + o).clamp(0, self.frames.shape[1] - 1)] for o in offsets]
        return torch.cat(rows, 1).float() / 255.0

    def audio_window(self, idx: Tensor, t: Tensor, before: int, after: int) -> Tensor:
        """Spectrogram of video frames ``[t - before, t + after)`` of clips ``idx``: ``[B, 1, F, S]``."""
        width = self.spec_frame(before + after)
        starts = [self.spec_frame(int(f) - before) for f in t]
        if min(starts) < 0 or max(starts) + width > self.spec.shape[-1]:
            raise StateError(f"audio_window: frames {t.tolist()} -{before}/+{after} leave the clip")
        return torch.stack([self.spec[i, :, s : s + width] for i, s in zip(idx.tolist(), starts, strict=True)])[:, None]


def _bank(seeds: Sequence[int], config: AudioVisualConfig) -> ClipBank:
    clips: list[AudioVisualClip] = []
    skipped: list[tuple[int, str]] = []
    for s in seeds:
        try:
            clips.append(make_clip(s, config))
        except NesyError as exc:  # one bad clip is reported and skipped
            skipped.append((s, str(exc)))
    if len(clips) < 2:
        raise StateError(f"clip_bank: only {len(clips)} of {len(seeds)} clips could be made; first error: "
                         f"{skipped[0][1] if skipped else 'none'}")
    t = config.frames
    frames = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 1, 4, 2, 3).contiguous()
    masks = torch.from_numpy(np.stack([c.masks for c in clips]).astype(np.int8))
    sounding = torch.zeros(len(clips), t, MAX_OBJECTS, dtype=torch.bool)
    collisions = torch.zeros(len(clips), t, dtype=torch.long)
    for i, c in enumerate(clips):
        for o in c.objects:
            sounding[i, :, o.index] = torch.from_numpy(o.sounding_frames)
        for k in c.collisions:
            collisions[i, k.frame] += 1
    wave = torch.from_numpy(np.stack([c.mixture for c in clips]))
    text = torch.stack([_padded(VOCABULARY.encode(describe(c), WORDS)) for c in clips])
    depth = torch.from_numpy(np.stack([c.depth for c in clips])) if config.depth else None
    return ClipBank(frames, masks, sounding, spectrogram(wave), wave, text, collisions,
                    tuple(c.seed for c in clips), tuple(skipped), config, depth)


def _padded(phrases: Tensor) -> Tensor:
    return torch.nn.functional.pad(phrases, (0, 0, 0, PHRASES - phrases.shape[0]))


@functools.lru_cache(maxsize=4)
def clip_bank(first: int, n: int, config: AudioVisualConfig = CLIP_CONFIG) -> ClipBank:
    """The clips of seeds ``first .. first + n - 1`` (cached per process; the newest four banks are kept)."""
    return _bank(range(first, first + n), config)
