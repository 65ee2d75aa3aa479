"""Spectrogram helpers: shapes, the STFT round trip, log magnitude round trip."""

from __future__ import annotations

import pytest
import torch

from perception.audio.spectrogram import (
    SpectrogramConfig,
    from_log_magnitude,
    istft,
    log_magnitude,
    magnitude_phase,
    stft,
)
from physics.errors import ConfigError, StateError


def test_stft_round_trip_is_exact_to_float32_precision():
    torch.manual_seed(0)
    cfg = SpectrogramConfig(n_fft=512, hop=128)
    x = torch.rand(3, 2, 11025) * 2 - 1
    spec = stft(x, cfg)
    assert spec.shape == (3, 2, cfg.bins, cfg.frames(11025)) and spec.is_complex()
    assert (istft(spec, cfg, length=11025) - x).abs().max() < 2e-6


def test_log_magnitude_and_phase_give_the_waveform_back():
    torch.manual_seed(1)
    cfg = SpectrogramConfig(n_fft=256, hop=64)
    x = torch.rand(4000) * 2 - 1
    spec = stft(x, cfg)
    _, phase = magnitude_phase(spec)
    back = istft(from_log_magnitude(log_magnitude(spec, cfg), phase, cfg), cfg, length=4000)
    assert (back - x).abs().max() < 1e-5
    assert log_magnitude(torch.zeros_like(spec), cfg).min() == pytest.approx(torch.log(torch.tensor(cfg.eps)).item())


def test_bad_inputs_are_nesy_errors():
    with pytest.raises(ConfigError, match="hop"):
        SpectrogramConfig(n_fft=256, hop=200)
    with pytest.raises(StateError, match="too short"):
        stft(torch.zeros(100), SpectrogramConfig(n_fft=512))
    with pytest.raises(StateError, match="complex"):
        istft(torch.zeros(257, 10), SpectrogramConfig(n_fft=512))


def test_docstring_example_runs():
    import doctest

    import perception.audio.spectrogram as spectrogram

    assert doctest.testmod(spectrogram).failed == 0
