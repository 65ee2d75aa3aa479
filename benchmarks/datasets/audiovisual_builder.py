"""Build an audio-visual data set: clips with frames, masks, per-source WAVs, the mixture and truth.

Output folder::

    OUT/clip_00000/clip.json      objects (look, instrument class, pitch, per-frame positions,
                                  speeds, loudness), collisions (frame, pair, onset sample,
                                  speed), sources (file, object, kind), the clip options, seed
    OUT/clip_00000/frames.npz     frames uint8 [T, H, W, 3] and masks int16 [T, H, W]
    OUT/clip_00000/mixture.wav    the mixture (32-bit PCM, mono)
    OUT/clip_00000/source_0.wav   one WAV per source (instruments in object order, then impacts)
    OUT/build.json                the options the folder is built with

(the clip format of :func:`physics.worlds.audiovisual.write_clip`; read a clip
back with :func:`~physics.worlds.audiovisual.read_clip`).

Determinism and resumption, as for ``nesy data clevrer``: clip ``k`` is
``make_clip(clip_seed(seed, k), config)``, a pure function of them; every file
is written atomically and ``clip.json`` last, so it marks the clip done.  A rerun
removes temporary files a killed run left, reads every finished clip back (a
damaged one loses its ``clip.json`` and is made again) and makes only the
missing ones.  Output bytes are identical whatever ``--workers`` is.  Resuming
with other content options is refused.  A clip that cannot be made (a
:class:`~physics.errors.NesyError`) is reported in the summary and skipped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.datasets.build_record import check_same_build
from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError, NesyError
from physics.fanout import make_fanout
from physics.io import ensure_dir
from physics.worlds.audiovisual import (
    SAMPLE_RATES,
    AudioVisualConfig,
    make_clip,
    read_clip,
    write_clip,
)
from physics.worlds.sound import INSTRUMENTS

__all__ = ["AudioVisualDataConfig", "build_audiovisual", "build_clip", "clip_folder", "clip_seed", "SEEDS_PER_BASE"]

SEEDS_PER_BASE = 1_000_000  # clip k of --seed S has seed S * SEEDS_PER_BASE + k (readable, no overlap)


@dataclass(frozen=True)
class AudioVisualDataConfig:
    """What ``nesy data audiovisual`` generates."""

    n: int = field(metadata={"min": 1, "help": "number of clips"})
    out: str = field(metadata={"help": "output folder"})
    seed: int = field(default=0, metadata={"help": f"base seed; clip k's seed is seed * {SEEDS_PER_BASE} + k"})
    frames: int = field(default=16, metadata={"min": 1, "help": "video frames per clip"})
    fps: int = field(default=8, metadata={"min": 1, "help": "video frames per second (a clip lasts frames / fps seconds)"})
    width: int = field(default=96, metadata={"min": 1, "help": "frame width in pixels"})
    height: int = field(default=64, metadata={"min": 1, "help": "frame height in pixels"})
    sample_rate: int = field(default=11025, metadata={"min": 1, "help": "audio samples per second",
                                                      "choices": list(SAMPLE_RATES)})
    min_objects: int = field(default=3, metadata={"min": 1, "help": "fewest objects in a clip"})
    max_objects: int = field(default=4, metadata={"min": 1, "help": "most objects in a clip"})
    n_sounding: int = field(default=2, metadata={"help": "instrument objects per clip (they sound while moving)"})
    same_category: bool = field(default=False, metadata={"help": "instruments share one class and look"})
    impacts: bool = field(default=True, metadata={"help": "add collision impact sounds (one more source)"})
    workers: int = field(default=1, metadata={"min": 1, "help": "worker processes"})
    backend: str = field(default="process", metadata={"help": "fan-out backend",
                                                      "choices": ["serial", "process", "ray"]})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.n <= 0 or self.n > SEEDS_PER_BASE:
            raise ConfigError(f"--n must be 1..{SEEDS_PER_BASE} clips, got {self.n}")
        if not str(self.out).strip():
            raise ConfigError("--out must name the output folder, got an empty path")
        if self.seed < 0:
            raise ConfigError(f"--seed must be non-negative, got {self.seed}")
        if self.workers <= 0:
            raise ConfigError(f"--workers must be positive, got {self.workers}")
        self.clip_config()  # the clip options' own checks, with their messages

    def clip_config(self) -> AudioVisualConfig:
        """The clip options (:class:`AudioVisualConfig`) this build uses."""
        return AudioVisualConfig(
            frames=self.frames, fps=self.fps, width=self.width, height=self.height, sample_rate=self.sample_rate,
            n_objects=(self.min_objects, self.max_objects), n_sounding=self.n_sounding,
            same_category=self.same_category, impacts=self.impacts,
        )


def clip_seed(seed: int, k: int) -> int:
    """The seed of clip ``k`` of a build with base seed ``seed``."""
    return int(seed) * SEEDS_PER_BASE + int(k)


def clip_folder(out: str | Path, k: int) -> Path:
    """Where clip ``k`` lives."""
    return Path(out) / f"clip_{k:05d}"


def build_clip(cfg: AudioVisualDataConfig, k: int) -> dict[str, Any]:
    """Make and write clip ``k``.

    Returns:
        Counts for the summary (objects, collisions, sources, seconds), or ``{"skipped": message}``
        when the clip cannot be made.
    """
    t0 = time.perf_counter()
    try:
        clip = make_clip(clip_seed(cfg.seed, k), cfg.clip_config())
    except NesyError as exc:
        return {"skipped": f"clip {k} (seed {clip_seed(cfg.seed, k)}): {exc}"}
    t1 = time.perf_counter()
    write_clip(clip, clip_folder(cfg.out, k))
    return {
        "objects": len(clip.objects), "collisions": len(clip.collisions), "sources": len(clip.source_object),
        "make_seconds": t1 - t0, "write_seconds": time.perf_counter() - t1,
        **{f"category_{o.category}": 1 for o in clip.objects if o.category is not None},
    }


def _job(args: tuple[dict[str, Any], int]) -> dict[str, Any]:
    cfg_dict, k = args
    return build_clip(AudioVisualDataConfig(**cfg_dict), k)


def _done(cfg: AudioVisualDataConfig, k: int) -> bool:
    """Whether clip ``k`` is whole; a damaged one loses its ``clip.json`` so it is made again."""
    folder = clip_folder(cfg.out, k)
    if not (folder / "clip.json").is_file():
        return False
    try:
        clip = read_clip(folder)
        ok = clip.seed == clip_seed(cfg.seed, k) and clip.config == cfg.clip_config()
    except DataError:
        ok = False
    if not ok:
        (folder / "clip.json").unlink(missing_ok=True)
    return ok


def _remove_stale_temporaries(out: Path) -> int:
    removed = 0
    for pattern in (".*.tmp", "clip_*/.*.tmp"):
        for tmp in out.glob(pattern):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


# options that change what is generated (n, workers, backend and out do not)
_IDENTITY = ("seed", "frames", "fps", "width", "height", "sample_rate", "min_objects", "max_objects",
             "n_sounding", "same_category", "impacts")


def _check_same_build(cfg: AudioVisualDataConfig) -> None:
    check_same_build(Path(cfg.out) / "build.json", {k: getattr(cfg, k) for k in _IDENTITY},
                     what="audio-visual build record", holds=f"{cfg.out} holds clips built")


def build_audiovisual(cfg: AudioVisualDataConfig, *, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish) the clips; returns a JSON-able summary.

    Raises:
        ConfigError: bad options or a folder built with other options.
    """
    out = ensure_dir(Path(cfg.out))
    stale = _remove_stale_temporaries(out)
    _check_same_build(cfg)
    todo = [k for k in range(cfg.n) if not _done(cfg, k)]
    fan = make_fanout(cfg.backend, cfg.workers)
    cfg_dict = asdict(cfg)
    totals: Counter[str] = Counter()
    skipped: list[str] = []
    start = time.perf_counter()
    with tqdm(total=cfg.n, initial=cfg.n - len(todo), desc="audio-visual clips", unit="clip",
              disable=not progress) as bar:
        for stats in fan.imap(_job, [(cfg_dict, k) for k in todo]):
            if "skipped" in stats:
                skipped.append(stats["skipped"])
            else:
                totals.update(stats)
            bar.update(1)
    seconds = time.perf_counter() - start
    made = len(todo) - len(skipped)
    return {
        "out": str(cfg.out),
        "clips": cfg.n,
        "generated": made,
        "resumed": cfg.n - len(todo),
        "skipped": skipped,
        "stale_temporaries_removed": stale,
        "frames_per_clip": cfg.frames,
        "size": f"{cfg.width}x{cfg.height}",
        "seconds_per_clip": round(cfg.frames / cfg.fps, 3),
        "sample_rate": cfg.sample_rate,
        "generated_objects": totals["objects"],
        "generated_collisions": totals["collisions"],
        "generated_sources": totals["sources"],
        "generated_instruments": {c: totals[f"category_{c}"] for c in INSTRUMENTS if totals[f"category_{c}"]},
        "make_seconds_per_clip": round(totals["make_seconds"] / made, 3) if made else None,
        "write_seconds_per_clip": round(totals["write_seconds"] / made, 3) if made else None,
        "seconds": round(seconds, 3),
        "clips_per_minute": round(60.0 * len(todo) / seconds, 3) if todo and seconds > 0 else None,
    }
