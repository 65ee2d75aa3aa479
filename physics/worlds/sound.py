"""Sound for the CLEVR/CLEVRER worlds: modal impact synthesis and instrument tones, in numpy.

Two kinds of sound, both pure functions of their arguments (a seed where noise is involved):

* **Impacts** (modal synthesis, as in van den Doel, Kry and Pai, "FoleyAutomatic",
  SIGGRAPH 2001): a struck solid rings as a sum of exponentially damped sinusoids,
  its *modes*.  :func:`impact_modes` gives an object's modes from its look: the
  frequency ratios from its shape (a cube rings like a plate, a cylinder like a free
  bar, 1 : 2.756 : 5.404, a sphere like a shell), the fundamental from its material
  (metal high, rubber low) divided by its size (a large object rings an octave
  lower), the decay from its material (metal rings for about a second, rubber
  thuds for a few hundredths); higher modes decay faster.  :func:`impact_sound`
  rings them with an amplitude proportional to the impact speed, plus a short
  contact click (seeded noise).
* **Instruments**: an object of an instrument class plays a harmonic tone whose
  timbre is the class's harmonic amplitudes (:data:`INSTRUMENTS`) while it moves;
  :func:`instrument_tone` scales it, sample by sample, by an envelope that is
  proportional to the object's speed (:func:`speed_envelope`), so it is silent at
  rest and loudest when fastest.

:func:`write_wav` and :func:`read_wav` store a mono waveform as PCM WAV with the
standard library's ``wave`` (32-bit by default: a float32 waveform in [-1, 1]
comes back within 5e-10, so stored sources still sum to the stored mixture).

Waveforms are float32 numpy arrays ``[L]`` at ``sample_rate`` Hz, nominally in
[-1, 1]; frequencies above 0.45 of the sample rate are left out (no aliasing).

>>> modes = impact_modes("cube", "small", "metal")
>>> len(modes.frequencies), modes.frequencies[0] > impact_modes("cube", "large", "metal").frequencies[0]
(4, True)
>>> impact_sound(modes, speed=2.0, sample_rate=11025, length=2000, seed=0).shape
(2000,)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from physics.errors import ConfigError, DataError, StateError
from physics.io import PathLike, atomic_open
from physics.worlds.clevr_properties import MATERIALS, SHAPES, SIZE_RADIUS

__all__ = [
    "Modes",
    "Instrument",
    "INSTRUMENTS",
    "SHAPE_MODE_RATIOS",
    "MATERIAL_SOUND",
    "REFERENCE_SPEED",
    "IMPACT_WORDS",
    "SOUND_WORDS",
    "impact_modes",
    "impact_word",
    "impact_sound",
    "instrument_tone",
    "speed_envelope",
    "write_wav",
    "read_wav",
]

# Mode frequency ratios per shape: a free-free bar (Euler-Bernoulli) for the cylinder, a square
# plate's first modes for the cube, a thin spherical shell's (l = 2, 3, 4, 5) for the sphere.
SHAPE_MODE_RATIOS: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "cube": (1.0, 1.47, 1.81, 2.66),
    "cylinder": (1.0, 2.756, 5.404, 8.933),
    "sphere": (1.0, 1.53, 1.98, 2.38),
})

# material -> (fundamental of a small object in Hz, decay rate of the fundamental in 1/s,
#              how fast higher modes decay more (decay_k = decay * ratio_k ** this),
#              gain of the click relative to the modes)
MATERIAL_SOUND: Mapping[str, tuple[float, float, float, float]] = MappingProxyType({
    "metal": (880.0, 4.0, 1.0, 0.15),
    "rubber": (220.0, 45.0, 1.5, 0.6),
})

# Speed (scene units per second) at which an instrument plays at amplitude `Instrument.gain` and an
# impact rings at amplitude 1 (before the clip's normalisation).
REFERENCE_SPEED = 2.0
_NYQUIST_FRACTION = 0.45
_CLICK_SECONDS = 0.006


@dataclass(frozen=True)
class Modes:
    """The damped modes of one object: frequencies (Hz), decay rates (1/s), relative gains."""

    frequencies: tuple[float, ...]
    decays: tuple[float, ...]
    gains: tuple[float, ...]
    click: float = 0.0


@dataclass(frozen=True)
class Instrument:
    """An instrument class: its timbre, pitch range and the look of the objects that play it.

    Args:
        harmonics: Amplitude of harmonic 1, 2, ... (the class's timbre).
        pitch: (lowest, highest) fundamental in Hz; each object draws one.
        shape: Shape of the objects of this class.
        color: Colour of the objects of this class.
        gain: Amplitude at :data:`REFERENCE_SPEED`.
    """

    harmonics: tuple[float, ...]
    pitch: tuple[float, float]
    shape: str
    color: str
    gain: float = 0.3


# Each class looks different (shape and colour), so a model can tell the classes apart by sight;
# timbres: bowed string (many harmonics), flute (nearly pure), clarinet (odd harmonics), brass.
INSTRUMENTS: Mapping[str, Instrument] = MappingProxyType({
    "cello": Instrument((1.0, 0.8, 0.6, 0.5, 0.35, 0.25, 0.15, 0.1), (110.0, 220.0), "cylinder", "brown"),
    "flute": Instrument((1.0, 0.15, 0.05), (520.0, 880.0), "sphere", "cyan"),
    "clarinet": Instrument((1.0, 0.02, 0.7, 0.02, 0.45, 0.02, 0.25), (180.0, 360.0), "cylinder", "blue"),
    "trumpet": Instrument((0.5, 1.0, 0.9, 0.7, 0.5, 0.35, 0.2), (260.0, 520.0), "cube", "yellow"),
})


# What a collision sounds like, in one word: metal rings (about a second), rubber thuds (a few
# hundredths); when a metal object takes part its ring outlasts any thud, so the collision rings.
IMPACT_WORDS: Mapping[str, str] = MappingProxyType({"metal": "ring", "rubber": "thud"})
# Every word a sound can be named by: the instrument classes, then the impact words.
SOUND_WORDS: tuple[str, ...] = (*INSTRUMENTS, *dict.fromkeys(IMPACT_WORDS.values()))


def impact_word(materials: Sequence[str]) -> str:
    """The word for a collision of objects of ``materials``: ``ring`` when one is metal, else ``thud``.

    Raises:
        ConfigError: no materials, or an unknown one.
    """
    unknown = [m for m in materials if m not in IMPACT_WORDS]
    if unknown or not materials:
        raise ConfigError(f"no impact word for materials {list(materials)!r}; choose from {list(IMPACT_WORDS)}")
    return IMPACT_WORDS["metal"] if "metal" in materials else IMPACT_WORDS["rubber"]


def impact_modes(shape: str, size: str, material: str) -> Modes:
    """The modes of an object of this shape, size and material.

    Raises:
        ConfigError: an unknown shape, size or material (names the choices).
    """
    if shape not in SHAPE_MODE_RATIOS:
        raise ConfigError(f"no impact modes for shape {shape!r}; choose one of {list(SHAPES)}")
    if material not in MATERIAL_SOUND:
        raise ConfigError(f"no impact modes for material {material!r}; choose one of {list(MATERIALS)}")
    if size not in SIZE_RADIUS:
        raise ConfigError(f"no impact modes for size {size!r}; choose one of {sorted(SIZE_RADIUS)}")
    base, decay, tilt, click = MATERIAL_SOUND[material]
    f0 = base * SIZE_RADIUS["small"] / SIZE_RADIUS[size]  # pitch falls as size grows
    ratios = SHAPE_MODE_RATIOS[shape]
    return Modes(
        frequencies=tuple(f0 * r for r in ratios),
        decays=tuple(decay * r ** tilt for r in ratios),
        gains=tuple(1.0 / (1.0 + k) for k in range(len(ratios))),
        click=click,
    )


def impact_sound(modes: Modes, speed: float, sample_rate: int, length: int, seed: int | Sequence[int]) -> np.ndarray:
    """One impact: the modes rung with amplitude ``speed / REFERENCE_SPEED``, starting at sample 0.

    Args:
        modes: The struck object's modes.
        speed: Impact speed (relative speed of the two bodies, units/s).
        sample_rate: Samples per second.
        length: Samples to return.
        seed: Seeds the contact click's noise (an int or ints, as numpy's ``default_rng`` takes).

    Returns:
        float32 ``[length]``.
    """
    _check_rate(sample_rate)
    if speed < 0 or not np.isfinite(speed):
        raise StateError(f"impact speed must be finite and >= 0, got {speed}")
    t = np.arange(length, dtype=np.float64) / sample_rate
    out = np.zeros(length, dtype=np.float64)
    for f, d, g in zip(modes.frequencies, modes.decays, modes.gains, strict=True):
        if f < _NYQUIST_FRACTION * sample_rate:
            out += g * np.exp(-d * t) * np.sin(2.0 * np.pi * f * t)
    n_click = min(length, max(1, int(_CLICK_SECONDS * sample_rate)))
    noise = np.random.default_rng(seed).standard_normal(n_click)
    out[:n_click] += modes.click * noise * np.exp(-np.arange(n_click) / (0.25 * n_click))
    return (speed / REFERENCE_SPEED * out).astype(np.float32)


def speed_envelope(speeds: Sequence[float] | np.ndarray, times: Sequence[float] | np.ndarray,
                   sample_rate: int, length: int) -> np.ndarray:
    """Per-sample amplitude ``speed / REFERENCE_SPEED``, speeds linearly interpolated between ``times``.

    Args:
        speeds: Speeds (units/s) at ``times``.
        times: Increasing times in seconds.
        sample_rate: Samples per second.
        length: Samples to return.

    Returns:
        float32 ``[length]``, >= 0.
    """
    _check_rate(sample_rate)
    speeds = np.asarray(speeds, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if speeds.shape != times.shape or speeds.ndim != 1 or len(speeds) < 1:
        raise StateError(f"speeds {speeds.shape} and times {times.shape} must be equal 1-D sequences")
    if not (np.isfinite(speeds).all() and (speeds >= 0).all()):
        raise StateError("speeds must be finite and >= 0")
    t = np.arange(length, dtype=np.float64) / sample_rate
    return (np.interp(t, times, speeds) / REFERENCE_SPEED).astype(np.float32)


def instrument_tone(instrument: Instrument, pitch: float, envelope: np.ndarray, sample_rate: int) -> np.ndarray:
    """The instrument's harmonic tone at ``pitch`` Hz, scaled sample by sample by ``envelope``.

    Args:
        instrument: The class (its harmonic amplitudes are the timbre).
        pitch: Fundamental in Hz.
        envelope: float ``[L]`` per-sample amplitude (e.g. :func:`speed_envelope`).
        sample_rate: Samples per second.

    Returns:
        float32 ``[L]``: ``gain * envelope * sum_k a_k sin(2 pi k pitch t) / sum_k a_k``.
    """
    _check_rate(sample_rate)
    if not (0.0 < pitch < _NYQUIST_FRACTION * sample_rate):
        raise ConfigError(f"pitch {pitch} Hz must be in (0, {_NYQUIST_FRACTION * sample_rate}) at {sample_rate} Hz")
    envelope = np.asarray(envelope, dtype=np.float64)
    t = np.arange(len(envelope), dtype=np.float64) / sample_rate
    wave = np.zeros(len(envelope), dtype=np.float64)
    for k, a in enumerate(instrument.harmonics, start=1):
        if k * pitch < _NYQUIST_FRACTION * sample_rate:
            wave += a * np.sin(2.0 * np.pi * k * pitch * t)
    wave /= sum(instrument.harmonics)
    return (instrument.gain * envelope * wave).astype(np.float32)


def _check_rate(sample_rate: int) -> None:
    if int(sample_rate) != sample_rate or sample_rate < 1000:
        raise ConfigError(f"sample_rate must be a whole number of Hz >= 1000, got {sample_rate}")


def write_wav(path: PathLike, wave: np.ndarray, sample_rate: int, sample_width: int = 4) -> None:
    """Write a mono float waveform (clipped to [-1, 1]) as PCM WAV, atomically.

    Args:
        path: Destination file.
        wave: float ``[L]``.
        sample_rate: Samples per second.
        sample_width: Bytes per sample: 2 (16-bit) or 4 (32-bit, the default).

    Raises:
        StateError: ``wave`` is not 1-D or holds NaN/inf.
        ConfigError: another sample width.
    """
    import wave as wavelib

    _check_rate(sample_rate)
    if sample_width not in _PCM:
        raise ConfigError(f"WAV sample width must be one of {sorted(_PCM)} bytes, got {sample_width}")
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or not np.isfinite(wave).all():
        raise StateError(f"cannot write {path}: need a finite 1-D waveform, got shape {wave.shape}")
    dtype, scale = _PCM[sample_width]
    pcm = np.round(np.clip(wave, -1.0, 1.0) * scale).astype(dtype)
    with atomic_open(path, "wb") as fh:
        with wavelib.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(sample_width)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())


def read_wav(path: PathLike) -> tuple[np.ndarray, int]:
    """Read a mono PCM WAV (16- or 32-bit) as float32 in [-1, 1].

    Returns:
        (waveform float32 ``[L]``, sample rate).

    Raises:
        DataError: the file is missing, not a WAV, truncated, not mono or of another sample width
            (names the file).
    """
    import wave as wavelib

    path = Path(path)
    try:
        with wavelib.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(n)
    except FileNotFoundError:
        raise DataError(f"WAV file not found: {path}") from None
    except (wavelib.Error, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable PCM WAV file ({exc})") from None
    if channels != 1 or width not in _PCM:
        raise DataError(f"{path}: {channels} channels of {8 * width}-bit samples; expected mono 16- or 32-bit PCM")
    if len(data) != n * width:
        raise DataError(f"{path}: truncated ({len(data)} bytes of samples, the header says {n * width})")
    dtype, scale = _PCM[width]
    return (np.frombuffer(data, dtype=dtype).astype(np.float64) / scale).astype(np.float32), rate


_PCM = {2: (np.dtype("<i2"), 32767.0), 4: (np.dtype("<i4"), 2147483647.0)}
