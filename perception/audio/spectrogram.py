"""Spectrogram helpers in plain torch (``torch.stft`` / ``torch.istft``; no torchaudio).

The audio-visual models work on log-magnitude spectrograms and turn masked
spectrograms back into waveforms with the mixture's phase (Sound of Pixels, Zhao
et al., ECCV 2018, arXiv 1804.03160).  Shapes:

* :func:`stft`: waveform ``[..., L]`` -> complex spectrogram ``[..., F, N]``,
  ``F = n_fft // 2 + 1`` frequency bins, ``N = 1 + L // hop`` frames (centred).
* :func:`istft`: complex ``[..., F, N]`` -> waveform ``[..., L]``.
* :func:`log_magnitude`: complex ``[..., F, N]`` -> real ``log(|X| + eps)``;
  :func:`from_log_magnitude` undoes it given the phase.

With a Hann window and ``hop <= n_fft / 4`` the round trip ``istft(stft(x))``
returns ``x`` to float32 precision (about 1e-6 for a waveform in [-1, 1]).

>>> import torch
>>> cfg = SpectrogramConfig(n_fft=256, hop=64)
>>> x = torch.randn(2, 4000)
>>> spec = stft(x, cfg)
>>> spec.shape, bool((istft(spec, cfg, length=4000) - x).abs().max() < 1e-5)
(torch.Size([2, 129, 63]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["SpectrogramConfig", "stft", "istft", "log_magnitude", "from_log_magnitude", "magnitude_phase"]


@dataclass(frozen=True)
class SpectrogramConfig:
    """Short-time Fourier transform settings.

    Args:
        n_fft: FFT size (the Hann window's length).
        hop: Samples between frames (at most ``n_fft // 2``; ``n_fft // 4`` by default use).
        eps: Added to the magnitude before the log (the floor of :func:`log_magnitude`).
    """

    n_fft: int = 512
    hop: int = 128
    eps: float = 1e-6

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.n_fft < 4 or not 1 <= self.hop <= self.n_fft // 2 or not self.eps > 0:
            raise ConfigError(f"SpectrogramConfig(n_fft={self.n_fft}, hop={self.hop}, eps={self.eps}): "
                             "need n_fft >= 4, 1 <= hop <= n_fft // 2 and eps > 0")

    @property
    def bins(self) -> int:
        """Frequency bins ``F``."""
        return self.n_fft // 2 + 1

    def frames(self, length: int) -> int:
        """Spectrogram frames ``N`` of a waveform of ``length`` samples."""
        return 1 + length // self.hop


def _window(cfg: SpectrogramConfig, like: torch.Tensor) -> torch.Tensor:
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(cfg.n_fft, dtype=dtype, device=like.device)


def stft(wave: torch.Tensor, cfg: SpectrogramConfig = SpectrogramConfig()) -> torch.Tensor:
    """Complex spectrogram ``[..., F, N]`` of waveforms ``[..., L]``.

    Raises:
        StateError: ``wave`` is not floating point or shorter than ``n_fft // 2 + 1`` samples.
    """
    if not wave.is_floating_point() or wave.ndim < 1:
        raise StateError(f"stft needs a float waveform [..., L], got {wave.dtype} of shape {tuple(wave.shape)}")
    if wave.shape[-1] <= cfg.n_fft // 2:
        raise StateError(f"stft: {wave.shape[-1]} samples is too short for n_fft = {cfg.n_fft}")
    lead = wave.shape[:-1]
    spec = torch.stft(wave.reshape(-1, wave.shape[-1]), cfg.n_fft, hop_length=cfg.hop, window=_window(cfg, wave),
                      center=True, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: SpectrogramConfig = SpectrogramConfig(), length: int | None = None) -> torch.Tensor:
    """Waveforms ``[..., L]`` from complex spectrograms ``[..., F, N]`` (``length`` trims or pads to ``L``).

    Raises:
        StateError: ``spec`` is not complex or has the wrong number of bins.
    """
    if not spec.is_complex() or spec.ndim < 2 or spec.shape[-2] != cfg.bins:
        raise StateError(f"istft needs a complex spectrogram [..., {cfg.bins}, N], got {spec.dtype} "
                         f"of shape {tuple(spec.shape)}")
    lead = spec.shape[:-2]
    wave = torch.istft(spec.reshape(-1, *spec.shape[-2:]), cfg.n_fft, hop_length=cfg.hop,
                       window=_window(cfg, spec), center=True, length=length)
    return wave.reshape(*lead, wave.shape[-1])


def magnitude_phase(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(magnitude, phase in radians) of a complex spectrogram, both real ``[..., F, N]``."""
    return spec.abs(), torch.angle(spec)


def log_magnitude(spec: torch.Tensor, cfg: SpectrogramConfig = SpectrogramConfig()) -> torch.Tensor:
    """``log(|X| + eps)`` of a complex spectrogram (or of a magnitude, if real), ``[..., F, N]``."""
    mag = spec.abs()
    return torch.log(mag + cfg.eps)


def from_log_magnitude(log_mag: torch.Tensor, phase: torch.Tensor,
                       cfg: SpectrogramConfig = SpectrogramConfig()) -> torch.Tensor:
    """The complex spectrogram with magnitude ``exp(log_mag) - eps`` (floored at 0) and ``phase``."""
    if log_mag.shape != phase.shape:
        raise StateError(f"log magnitude {tuple(log_mag.shape)} and phase {tuple(phase.shape)} differ in shape")
    mag = (torch.exp(log_mag) - cfg.eps).clamp_min(0.0)
    return torch.polar(mag, phase)
