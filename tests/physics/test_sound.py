"""Modal impacts, instrument tones and WAV files: what physics.worlds.sound guarantees."""

from __future__ import annotations

import numpy as np
import pytest

from physics.errors import ConfigError, DataError, NesyError
from physics.worlds.sound import (
    INSTRUMENTS,
    impact_modes,
    impact_sound,
    instrument_tone,
    read_wav,
    speed_envelope,
    write_wav,
)

SR = 11025


def _peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1.0 / SR)[spectrum.argmax()])


def test_modes_depend_on_shape_size_and_material():
    small, large = impact_modes("cube", "small", "metal"), impact_modes("cube", "large", "metal")
    assert large.frequencies[0] < small.frequencies[0]  # larger rings lower
    rubber = impact_modes("cube", "small", "rubber")
    assert rubber.frequencies[0] < small.frequencies[0] and rubber.decays[0] > 5 * small.decays[0]
    assert impact_modes("cylinder", "small", "metal").frequencies != small.frequencies
    with pytest.raises(ConfigError, match="shape 'cone'"):
        impact_modes("cone", "small", "metal")


def test_impact_rings_at_its_fundamental_scales_with_speed_and_metal_rings_longer():
    modes = impact_modes("sphere", "small", "metal")
    slow, fast = (impact_sound(modes, v, SR, SR, seed=3) for v in (1.0, 3.0))
    np.testing.assert_allclose(fast, 3.0 * slow, rtol=1e-5, atol=1e-6)
    assert abs(_peak_hz(slow) - modes.frequencies[0]) < 5.0
    rubber = impact_sound(impact_modes("sphere", "small", "rubber"), 1.0, SR, SR, seed=3)
    tail = slice(SR // 2, SR)
    assert np.abs(slow[tail]).max() > 100 * np.abs(rubber[tail]).max()


def test_sound_is_deterministic_for_a_seed_and_the_click_differs_between_seeds():
    modes = impact_modes("cube", "large", "rubber")
    a, b = impact_sound(modes, 2.0, SR, 500, seed=(1, 2)), impact_sound(modes, 2.0, SR, 500, seed=(1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, impact_sound(modes, 2.0, SR, 500, seed=(1, 3)))


def test_instrument_loudness_follows_the_speed_envelope_and_timbre_differs_by_class():
    env = speed_envelope([0.0, 4.0, 0.0], [0.0, 0.5, 1.0], SR, SR)
    assert env[0] == 0.0 and env.max() == pytest.approx(2.0, rel=1e-3)  # 4 units/s = twice the reference
    tone = instrument_tone(INSTRUMENTS["flute"], 600.0, env, SR)
    quarter = [np.abs(tone[i * SR // 4:(i + 1) * SR // 4]).mean() for i in range(4)]
    assert quarter[1] > 2 * quarter[0] and quarter[2] > 2 * quarter[3]
    steady = np.ones(SR, dtype=np.float32)
    flute = np.abs(np.fft.rfft(instrument_tone(INSTRUMENTS["flute"], 300.0, steady, SR)))
    cello = np.abs(np.fft.rfft(instrument_tone(INSTRUMENTS["cello"], 300.0, steady, SR)))
    second = lambda s: s[600] / s[300]  # noqa: E731 (1 Hz bins: harmonic 2 over harmonic 1)
    assert second(cello) > 3 * second(flute)


@pytest.mark.parametrize("width, tol", [(4, 1e-9), (2, 2e-5)])
def test_wav_round_trip(tmp_path, width, tol):
    wave = np.sin(np.linspace(0, 60, 3000)).astype(np.float32) * 0.8
    write_wav(tmp_path / "a.wav", wave, SR, sample_width=width)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == SR and back.dtype == np.float32 and back.shape == wave.shape
    assert np.abs(back - wave).max() < tol


def test_corrupt_or_missing_wav_is_a_nesy_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(DataError, match="bad.wav"):
        read_wav(bad)
    write_wav(tmp_path / "cut.wav", np.zeros(1000, np.float32), SR)
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:-100])
    with pytest.raises(NesyError, match="cut.wav"):
        read_wav(tmp_path / "cut.wav")
    with pytest.raises(DataError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")


def test_a_collision_rings_when_metal_takes_part_and_thuds_otherwise():
    from physics.worlds.sound import SOUND_WORDS, impact_word

    assert impact_word(["metal", "rubber"]) == "ring" and impact_word(["rubber", "rubber"]) == "thud"
    assert {"ring", "thud", "cello"} <= set(SOUND_WORDS)
    with pytest.raises(ConfigError, match="wood"):
        impact_word(["wood"])
