"""Mix-and-separate on the sounding worlds: single-instrument clips, the audio U-Net, the mask loss and SDR.

Zhao, Gan, Rouditchenko, Vondrick, McDermott and Torralba, "The Sound of
Pixels", ECCV 2018 (arXiv 1804.03160): add the audio of two videos, then ask a
network to recover each video's audio from the mixture given that video's
frames.  The mixture's own parts are the targets, so no labels are needed.
This module holds what the separation models of this package share:

* :func:`separation_clips`: clips of :mod:`physics.worlds.audiovisual` with one
  instrument each (and silent objects beside it, no impact sounds), as tensors;
* :func:`draw_partners`: the second clip of each mixture, of another category
  (``"different"``) or of the very same look (``"same-look"``: category,
  material and size, so the two instruments cannot be told apart by sight);
* :class:`AudioUNet`: the U-Net over the mixture's log-magnitude spectrogram
  (stride-2 encoder, nearest-upsampling decoder with skips, as PixelPlayer's);
* :func:`mixture_batch`, :func:`mask_loss`: the mixture spectrogram and the
  binary-mask target ``|S_s| >= |S_other|`` with PixelPlayer's weighting by
  ``log(1 + |mixture|)``;
* :func:`separate`, :func:`sdr`: masked spectrograms back to waveforms with the
  mixture's phase, and SDR from torchmetrics (a maintained package).

Shapes (B mixtures of S = 2 clips, T frames of H x W, L samples; F bins, N frames)::

    frames   uint8 [N_clips, T, 3, H, W]      waves    float [N_clips, L]
    mixture  complex [B, F, N]                log_mix  float [B, 1, F - 1, N_pad] (U-Net input)
    logits   float [B, S, F - 1, N_pad]       estimates float [B, S, L]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.audio.spectrogram import SpectrogramConfig, istft, log_magnitude, stft
from physics.errors import ConfigError, StateError
from physics.worlds.audiovisual import AudioVisualConfig, make_clip
from physics.worlds.clevr_properties import MATERIALS
from physics.worlds.sound import INSTRUMENTS

__all__ = [
    "CATEGORIES",
    "SPECTROGRAM",
    "clip_config",
    "SeparationClips",
    "separation_clips",
    "draw_partners",
    "AudioUNet",
    "MixtureBatch",
    "mixture_batch",
    "mask_loss",
    "separate",
    "sdr",
    "pool_seeds",
    "bench_pools",
    "frames_float",
    "chunks",
]

CATEGORIES = tuple(INSTRUMENTS)  # channel k of a disentangled model is category CATEGORIES[k]
# n_fft 256 at 11,025 Hz: 43 Hz bins resolve the harmonics of the lowest instrument (cello, 110 Hz);
# hop 128: 173 frames for a 2 s clip, 86 per second
SPECTROGRAM = SpectrogramConfig(n_fft=256, hop=128, eps=1e-4)
_UNET_STRIDE = 16  # four stride-2 stages: the U-Net's input is padded to a multiple of this in time
_QUIET_RMS = 0.01  # a clip whose instrument is quieter than this (it barely moved) is skipped


def clip_config(**overrides: object) -> AudioVisualConfig:
    """The clips the separation models train on: one instrument and one or two silent objects, no impacts.

    ``kick_seconds = 1.0`` leaves the instruments time to slow down and stop between pushes, so
    their loudness (which follows their speed) rises and falls during a clip.
    """
    base = AudioVisualConfig(n_objects=(2, 3), n_sounding=1, impacts=False, kick_seconds=1.0)
    return replace(base, **overrides)


@dataclass(frozen=True)
class SeparationClips:
    """N single-instrument clips as tensors.

    Attributes:
        frames: uint8 ``[N, T, 3, H, W]``.
        masks: bool ``[N, T, H, W]``: the pixels of the clip's instrument (the renderer's instance mask).
        waves: float32 ``[N, L]``: the instrument's sound (the clip's whole audio).
        category: int64 ``[N]``: index of the instrument's class in :data:`CATEGORIES`.
        look: int64 ``[N]``: one id per (category, material, size); equal ids look identical.
        seeds: The clip seeds kept.
        skipped: The clip seeds left out, with why.
    """

    frames: Tensor
    masks: Tensor
    waves: Tensor
    category: Tensor
    look: Tensor
    seeds: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...]

    def __len__(self) -> int:
        return len(self.seeds)


@lru_cache(maxsize=4)
def separation_clips(seeds: tuple[int, ...], config: AudioVisualConfig) -> SeparationClips:
    """Make (once per process, then from memory) the clips of ``seeds`` under ``config`` as tensors.

    A clip whose instrument is nearly silent, or whose objects could not be placed, is
    skipped and listed in ``skipped``.

    Raises:
        ConfigError: ``config`` does not have exactly one instrument, or leaves fewer than two clips.
    """
    if config.n_sounding != 1 or config.impacts:
        raise ConfigError(f"separation clips need n_sounding=1 and impacts=False, got {config.n_sounding}, "
                          f"{config.impacts}")
    sizes = sorted({*config.sizes})
    frames, masks, waves, category, look, kept, skipped = [], [], [], [], [], [], []
    for seed in seeds:
        try:
            clip = make_clip(int(seed), config)
        except StateError as exc:
            skipped.append((int(seed), str(exc)))
            continue
        (k,) = clip.sounding
        wave = clip.sources[clip.source_object.index(k)]
        if float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) < _QUIET_RMS:
            skipped.append((int(seed), "instrument nearly silent"))
            continue
        obj = clip.objects[k]
        c = CATEGORIES.index(obj.category)
        frames.append(torch.from_numpy(clip.frames).permute(0, 3, 1, 2))
        masks.append(torch.from_numpy(clip.masks == k))
        waves.append(torch.from_numpy(wave))
        category.append(c)
        look.append((c * len(MATERIALS) + MATERIALS.index(obj.material)) * len(sizes) + sizes.index(obj.size))
        kept.append(int(seed))
    if len(kept) < 2:
        raise ConfigError(f"only {len(kept)} of {len(seeds)} clips are usable; mixtures need two")
    return SeparationClips(torch.stack(frames), torch.stack(masks), torch.stack(waves),
                           torch.tensor(category), torch.tensor(look), tuple(kept), tuple(skipped))


def draw_partners(clips: SeparationClips, idx: Tensor, mode: str, generator: torch.Generator) -> Tensor:
    """For each clip in ``idx``, a partner clip to mix it with, drawn with ``generator``.

    Args:
        clips: The clip pool.
        idx: int64 ``[B]`` clip indices.
        mode: ``"different"`` (a clip of another category) or ``"same-look"`` (another clip of the
            same category, material and size; a clip with no such twin gets one of its category,
            and failing that any other clip).

    Returns:
        int64 ``[B]`` partner indices, never equal to ``idx``.
    """
    if mode not in ("different", "same-look"):
        raise ConfigError(f"partner mode {mode!r}: choose 'different' or 'same-look'")
    n = len(clips)
    others = torch.arange(n)
    out = []
    for i in idx.tolist():
        if mode == "different":
            pool = others[clips.category != clips.category[i]]
        else:
            pool = others[(clips.look == clips.look[i]) & (others != i)]
            if len(pool) == 0:
                pool = others[(clips.category == clips.category[i]) & (others != i)]
        if len(pool) == 0:
            pool = others[others != i]
        out.append(int(pool[torch.randint(len(pool), (1,), generator=generator)]))
    return torch.tensor(out, dtype=torch.long)


# ---------------------------------------------------------------------- audio network
def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1),
                         nn.BatchNorm2d(cout), nn.ReLU())


class AudioUNet(nn.Module):
    """PixelPlayer's audio network, small: a U-Net from spectrogram channels to ``out`` channels.

    ``forward(x [B, cin, F, N]) -> [B, out, F, N]`` with F and N multiples of 16.

    Args:
        cin: Input channels (1: the log-magnitude mixture; more when a model adds conditioning maps).
        out: Output channels (K, one per visual feature channel).
        width: Channels of the first stage (doubled twice on the way down).
    """

    def __init__(self, cin: int = 1, out: int = 4, width: int = 8) -> None:
        super().__init__()
        w = width
        self.norm = nn.BatchNorm2d(cin)
        self.enc = nn.ModuleList([_down(cin, w), _down(w, 2 * w), _down(2 * w, 4 * w), _down(4 * w, 4 * w)])
        self.dec = nn.ModuleList([_up(4 * w, 4 * w), _up(8 * w, 2 * w), _up(4 * w, w)])
        self.head = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w, out, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] % _UNET_STRIDE or x.shape[-2] % _UNET_STRIDE:
            raise StateError(f"AudioUNet needs [B, C, F, N] with F, N multiples of {_UNET_STRIDE}, "
                             f"got {tuple(x.shape)}")
        skips = []
        h = self.norm(x)
        for layer in self.enc:
            h = layer(h)
            skips.append(h)
        skips.pop()
        for layer in self.dec:
            h = torch.cat([layer(h), skips.pop()], 1)
        return self.head(h)


# ---------------------------------------------------------------------- mixtures
@dataclass(frozen=True)
class MixtureBatch:
    """B mixtures of S waveforms and their spectrograms.

    Attributes:
        mixture: complex ``[B, F, N]``.
        log_mix: float ``[B, 1, F - 1, N_pad]``: ``log(|mixture| + eps)`` without the Nyquist bin,
            padded in time (with the floor) to a multiple of 16.
        source_mag: float ``[B, S, F, N]``: each source's magnitude.
        length: L, samples per waveform.
    """

    mixture: Tensor
    log_mix: Tensor
    source_mag: Tensor
    length: int

    @property
    def frames(self) -> int:
        """N, the spectrogram frames before padding."""
        return self.mixture.shape[-1]


def mixture_batch(sources: Tensor, spec: SpectrogramConfig = SPECTROGRAM) -> MixtureBatch:
    """Spectrograms of the mixtures of ``sources`` float ``[B, S, L]`` (summed over S)."""
    if sources.dim() != 3:
        raise StateError(f"mixture_batch needs sources [B, S, L], got {tuple(sources.shape)}")
    src = stft(sources, spec)  # [B, S, F, N]
    mixture = src.sum(1)
    log_mix = log_magnitude(mixture, spec)[:, None, :-1]
    n = log_mix.shape[-1]
    pad = -n % _UNET_STRIDE
    log_mix = F.pad(log_mix, (0, pad), value=float(np.log(spec.eps)))
    return MixtureBatch(mixture, log_mix, src.abs(), sources.shape[-1])


def _full(logits: Tensor, frames: int) -> Tensor:
    """Logits ``[B, S, F - 1, N_pad]`` -> ``[B, S, F, N]``: trim the padding, Nyquist bin masked off."""
    x = logits[..., :frames]
    return F.pad(x, (0, 0, 0, 1), value=-30.0)


def mask_loss(logits: Tensor, batch: MixtureBatch) -> Tensor:
    """PixelPlayer's loss: binary cross-entropy of the masks against ``|S_s| >= max_other |S_o|``,
    each bin weighted by ``log(1 + |mixture|)`` (quiet bins count little)."""
    full = _full(logits, batch.frames)
    mag = batch.source_mag
    others = torch.stack([torch.cat([mag[:, :s], mag[:, s + 1:]], 1).amax(1) for s in range(mag.shape[1])], 1)
    target = (mag >= others).float()
    weight = torch.log1p(batch.mixture.abs())[:, None].expand_as(target)
    bce = F.binary_cross_entropy_with_logits(full, target, weight=weight, reduction="sum")
    return bce / weight.sum().clamp_min(1e-8)


def separate(logits: Tensor, batch: MixtureBatch, spec: SpectrogramConfig = SPECTROGRAM) -> Tensor:
    """Waveforms ``[B, S, L]``: the mixture's spectrogram times each sigmoid mask, with the mixture's phase."""
    masks = torch.sigmoid(_full(logits, batch.frames))
    return istft(masks * batch.mixture[:, None], spec, length=batch.length)


def sdr(estimate: Tensor, reference: Tensor) -> Tensor:
    """Signal-to-distortion ratio in dB per waveform (torchmetrics' ``signal_distortion_ratio``, BSS-eval v4
    with a 512-tap distortion filter), ``[..., L]`` -> ``[...]``."""
    from torchmetrics.functional.audio import signal_distortion_ratio  # the [audio] extra

    return signal_distortion_ratio(estimate.double(), reference.double()).float()


def pool_seeds(seed: int, part: int, n: int) -> tuple[int, ...]:
    """Clip seeds of pool ``part`` (0 train, 1 test, ...) of a benchmark run from ``seed``: disjoint ranges."""
    base = (4 * seed + part) * 100_000
    return tuple(range(base, base + n))


def bench_pools(seed: int, train: int, test: int) -> tuple[SeparationClips, SeparationClips]:
    """A benchmark run's clips: ``train`` clips of seed range 0 of ``seed`` and ``test`` of range 1
    (:func:`pool_seeds`), under :func:`clip_config`."""
    config = clip_config()
    return separation_clips(pool_seeds(seed, 0, train), config), separation_clips(pool_seeds(seed, 1, test), config)


def frames_float(frames: Tensor) -> Tensor:
    """uint8 frames -> float in [0, 1]."""
    return frames.float() / 255.0


def chunks(n: int, size: int) -> Sequence[Tensor]:
    """``range(n)`` in int64 chunks of ``size``."""
    return torch.arange(n).split(size)
