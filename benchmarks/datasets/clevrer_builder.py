"""Build a CLEVRER-style data set: collision videos, instance masks, annotations and truth.

Output folder (one split; the official file names where CLEVRER has them)::

    OUT/annotation_<split>/annotation_00000.json   official CLEVRER annotation (observed frames)
    OUT/truth_<split>/truth_00000.json             events, future frames, counterfactuals, seed
    OUT/video_<split>/video_00000.gif              the observed frames as an animated GIF
    OUT/frames_<split>/video_00000/0000.png        RGB frames
    OUT/masks_<split>/video_00000/0000.png         palette PNG masks, index = object id + 1 (0 background)
    OUT/build_<split>.json                         the options the split is built with

``render=False`` (``--no-render``) simulates only: annotations and truth files, no
frames, masks or GIF (what the learned dynamics train on; about 3x faster).
``gif=False`` (``--no-gif``) renders frames and masks but writes no GIF (nothing in the
project reads it; it is about an eighth of a rendered video's CPU time); every other file is the same.
``gif=None`` (the default) writes a GIF whenever frames are rendered; ``gif=True`` (an explicit
``--gif``) with ``render=False`` is refused, since there are no frames to make one of.

Determinism and resumption, as for ``nesy data clevr``
(:mod:`benchmarks.datasets.clevr_builder`): video ``k`` is a pure function of
``scene_seed(seed, split, k)`` and the config; every file is written atomically
and the truth file is written last, so it marks the video done.  A rerun
removes temporary files a killed run left, checks every finished video (both
JSON files parse and fit, every frame, mask and the GIF pass their PNG/GIF
checks at the configured size) and makes again only the missing or damaged
ones.  Output bytes are identical whatever ``--workers`` is.  Resuming with
other content options is refused.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from benchmarks.datasets.build_record import check_same_build
from benchmarks.datasets.clevr_builder import PNG_COMPRESS_LEVEL, check_build_options, scene_seed
from perception.datasets.instance_masks import encode_mask_png
from perception.image_io import verify_image
from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError
from physics.fanout import make_fanout
from physics.io import atomic_write_bytes, ensure_dir
from physics.worlds.clevrer_annotation import read_annotation, write_annotation
from physics.worlds.clevrer_truth import read_truth, simulate_video, write_truth
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld

__all__ = ["ClevrerDataConfig", "build_clevrer", "build_video", "video_paths", "SPLITS"]

SPLITS = ("train", "val", "test")
FUTURE_SHARE = 0.715  # CLEVRER: 14,298 predictive questions / 20,000 videos (the CLEVRER paper's question counts)
LEGACY_SHARE = -1.0  # --future-share: every video as ClevrerWorld.sample draws it (no share asked)
GIF_FRAME_MS = 40  # 25 fps, CLEVRER's frame rate
GIF_QUANTIZE = Image.Quantize.FASTOCTREE  # measured: 6 ms a 480x320 frame vs 100 ms median cut, mean error 0.02 levels


@dataclass(frozen=True)
class ClevrerDataConfig:
    """What ``nesy data clevrer`` generates (one split)."""

    n: int = field(metadata={"min": 1, "help": "number of videos"})
    out: str = field(metadata={"help": "output folder"})
    seed: int = field(default=0, metadata={"help": "base seed; video k's seed derives from (seed, split, k)"})
    split: str = field(default="train", metadata={"help": "split name", "choices": list(SPLITS)})
    frames: int = field(default=128, metadata={"min": 2, "help": "observed (rendered) frames per video (CLEVRER: 128)"})
    future_frames: int = field(default=50, metadata={"help": "frames simulated after them, for predictive truth"})
    width: int = field(default=480, metadata={"min": 16, "help": "frame width in pixels"})
    height: int = field(default=320, metadata={"min": 16, "help": "frame height in pixels"})
    future_share: float = field(default=FUTURE_SHARE, metadata={
        "help": "share of videos with a collision after the observed frames between two objects seen in them "
                "(CLEVRER: 14,298 predictive questions of 20,000 videos); -1: every video as sampled"})
    render: bool = field(default=True, metadata={"help": "render frames, masks and GIF (--no-render: annotations and truth only)"})
    gif: bool | None = field(default=None, metadata={
        "help": "write each rendered video as a GIF too (default: yes when frames are rendered; --no-gif: frames and "
                "masks only, about an eighth less CPU a video, the other files the same; --gif with --no-render is "
                "refused)"})
    workers: int = field(default=1, metadata={"min": 1, "help": "worker processes"})
    backend: str = field(
        default="process", metadata={"help": "fan-out backend", "choices": ["serial", "process", "ray"]}
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        check_build_options(self, SPLITS, "videos")
        if self.frames < 2 or self.future_frames < 0:
            raise ConfigError(f"--frames must be >= 2 and --future-frames >= 0, got {self.frames}, {self.future_frames}")
        if not (self.future_share == LEGACY_SHARE or 0.0 <= self.future_share <= 1.0):
            raise ConfigError(f"--future-share must be in [0, 1] or {LEGACY_SHARE:g} (as sampled), got {self.future_share}")
        if self.gif and not self.render:
            raise ConfigError("--gif: a GIF is made of rendered frames and --no-render renders none; "
                              "drop --gif or --no-render", settings=("gif",))

    @property
    def writes_gif(self) -> bool:
        """Whether each video gets a GIF: frames are rendered and ``gif`` is not False."""
        return self.render and self.gif is not False

    def world_config(self) -> ClevrerConfig:
        share = None if self.future_share == LEGACY_SHARE else self.future_share
        return ClevrerConfig(width=self.width, height=self.height, frames=self.frames, future_frames=self.future_frames,
                             future_share=share)


# options that change what is generated (n, workers, backend and out do not)
_IDENTITY = ("seed", "split", "frames", "future_frames", "width", "height")


def video_paths(out: str | Path, split: str, k: int) -> dict[str, Path]:
    """Where video ``k`` of ``split`` lives: annotation, truth, gif, frames and masks folders."""
    out = Path(out)
    return {
        "annotation": out / f"annotation_{split}" / f"annotation_{k:05d}.json",
        "truth": out / f"truth_{split}" / f"truth_{k:05d}.json",
        "gif": out / f"video_{split}" / f"video_{k:05d}.gif",
        "frames": out / f"frames_{split}" / f"video_{k:05d}",
        "masks": out / f"masks_{split}" / f"video_{k:05d}",
    }


def frame_name(f: int) -> str:
    return f"{f:04d}.png"


# ---------------------------------------------------------------------- one video (worker side)
_WORLD: dict[str, Any] = {}


def _world(config: ClevrerConfig) -> ClevrerWorld:
    """This process's world for ``config`` (pybullet starts once per worker; results do not depend on it)."""
    key = (config, os.getpid())
    if _WORLD.get("key") != key:
        _WORLD.update(key=key, world=ClevrerWorld(config))
    return _WORLD["world"]


def build_video(cfg: ClevrerDataConfig, k: int, timings: dict[str, float] | None = None) -> dict[str, int]:
    """Simulate and render video ``k``; write frames, masks, GIF, annotation, then truth (the done mark).

    Args:
        cfg: The split's options.
        k: The video's index.
        timings: If given, seconds are added to its ``render``, ``png_frames``,
            ``png_masks``, ``gif`` and ``json`` entries (the rest of the time is simulation).

    Returns:
        Counts for the summary: objects, observed events by kind, future collisions.
    """
    paths = video_paths(cfg.out, cfg.split, k)
    gif_frames: list[Image.Image] = []
    clock = Counter() if timings is None else timings
    tick = time.perf_counter

    def on_frame(f: int, world: ClevrerWorld) -> None:
        t0 = tick()
        rgb, mask = world.render_frame()
        t1 = tick()
        # no fsync per frame (256 a video, as long as the rest of the video's work on a virtual disk):
        # the resume check verifies every frame's and mask's checksums, so one a crash lost is made again
        image = Image.fromarray(rgb, mode="RGB")  # one copy into PIL for the PNG and the GIF frame
        png = io.BytesIO()
        image.save(png, format="PNG", compress_level=PNG_COMPRESS_LEVEL)  # clevr_builder.encode_png's bytes
        atomic_write_bytes(paths["frames"] / frame_name(f), png.getvalue(), durable=False)
        t2 = tick()
        atomic_write_bytes(paths["masks"] / frame_name(f), encode_mask_png(mask), durable=False)
        t3 = tick()
        if cfg.writes_gif:
            gif_frames.append(image.quantize(colors=256, method=GIF_QUANTIZE, dither=Image.Dither.NONE))
        for name, dt in (("render", t1 - t0), ("png_frames", t2 - t1), ("png_masks", t3 - t2), ("gif", tick() - t3)):
            clock[name] = clock.get(name, 0.0) + dt

    annotation, truth = simulate_video(
        _world(cfg.world_config()), scene_seed(cfg.seed, cfg.split, k), k, f"video_{k:05d}.gif",
        on_frame if cfg.render else None,
    )
    t0 = tick()
    if cfg.writes_gif:
        buf = io.BytesIO()
        gif_frames[0].save(buf, format="GIF", save_all=True, append_images=gif_frames[1:], duration=GIF_FRAME_MS, loop=0)
        atomic_write_bytes(paths["gif"], buf.getvalue())
    t1 = tick()
    write_annotation(paths["annotation"], annotation)
    write_truth(paths["truth"], truth)
    clock["gif"] = clock.get("gif", 0.0) + t1 - t0
    clock["json"] = clock.get("json", 0.0) + tick() - t1
    return {
        "objects": len(annotation.object_property),
        "videos_with_collision": int(bool(annotation.collision)),
        "future_collisions": len(truth.future_collisions),
        "videos_with_future_collision": int(bool(truth.future_collisions)),
        **Counter(e.kind for e in truth.events if e.frame < cfg.frames),
    }


def _job(args: tuple[dict[str, Any], int]) -> dict[str, int]:
    cfg_dict, k = args
    return build_video(ClevrerDataConfig(**cfg_dict), k)


# ---------------------------------------------------------------------- checks and resumption
def _intact(cfg: ClevrerDataConfig, k: int) -> bool:
    """Video k is finished and whole (see the module docstring)."""
    paths = video_paths(cfg.out, cfg.split, k)
    if not paths["truth"].is_file():
        return False
    try:
        truth = read_truth(paths["truth"])
        ann = read_annotation(paths["annotation"])
        if truth.scene_index != k or ann.scene_index != k or ann.num_frames != cfg.frames:
            return False
        base = scene_seed(cfg.seed, cfg.split, k)
        if truth.seed[:len(base)] != base or len(truth.seed) > len(base) + 1:  # its seed, or one drawn from it
            return False
        if not cfg.render:
            return True
        size = (cfg.width, cfg.height)
        for f in range(cfg.frames):
            if verify_image(paths["frames"] / frame_name(f)) != size or verify_image(paths["masks"] / frame_name(f)) != size:
                return False
        if cfg.writes_gif and verify_image(paths["gif"]) != size:
            return False
    except DataError:
        return False
    return True


def _done(cfg: ClevrerDataConfig, k: int) -> bool:
    """Whether video k is whole; a damaged one loses its truth file so it is made again."""
    ok = _intact(cfg, k)
    if not ok:
        video_paths(cfg.out, cfg.split, k)["truth"].unlink(missing_ok=True)
    return ok


def _remove_stale_temporaries(cfg: ClevrerDataConfig) -> int:
    """Delete temporary files a killed run left (atomic writers name them ``.<name>.*.tmp``)."""
    out = Path(cfg.out)
    removed = 0
    for pattern in (".*.tmp", f"*_{cfg.split}/.*.tmp", f"*_{cfg.split}/video_*/.*.tmp"):
        for tmp in out.glob(pattern):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _check_same_build(cfg: ClevrerDataConfig) -> None:
    """Record the options of this split, or refuse to mix videos made with other options.

    Raises:
        ConfigError: OUT holds this split built with other options.
        DataError: the record is not an object of options.
    """
    marker = Path(cfg.out) / f"build_{cfg.split}.json"
    identity = {k: getattr(cfg, k) for k in _IDENTITY}
    if not cfg.render:
        identity["render"] = False  # only when off, so the records of rendered builds stay as they were
    elif not cfg.writes_gif:
        identity["gif"] = False  # likewise; without frames there is no GIF to leave out
    if cfg.future_share != LEGACY_SHARE:
        identity["future_share"] = cfg.future_share  # only when set, so older records read as the sampler they used
    check_same_build(marker, identity, what="CLEVRER build record", holds=f"{Path(cfg.out)} holds {cfg.split} videos built")


def build_clevrer(cfg: ClevrerDataConfig, *, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish) one split; returns a JSON-able summary.

    Raises:
        ConfigError: bad options or a folder built with other options.
    """
    ensure_dir(Path(cfg.out))
    stale = _remove_stale_temporaries(cfg)
    _check_same_build(cfg)
    todo = [k for k in range(cfg.n) if not _done(cfg, k)]
    fan = make_fanout(cfg.backend, cfg.workers)
    cfg_dict = asdict(cfg)
    totals: Counter[str] = Counter()
    start = time.perf_counter()
    with tqdm(total=cfg.n, initial=cfg.n - len(todo), desc=f"CLEVRER {cfg.split}", unit="video",
              disable=not progress) as bar:
        for stats in fan.imap(_job, [(cfg_dict, k) for k in todo]):
            totals.update(stats)
            bar.update(1)
    seconds = time.perf_counter() - start
    return {
        "out": str(cfg.out),
        "split": cfg.split,
        "videos": cfg.n,
        "generated": len(todo),
        "resumed": cfg.n - len(todo),
        "stale_temporaries_removed": stale,
        "frames_per_video": cfg.frames,
        "size": f"{cfg.width}x{cfg.height}",
        "generated_objects": totals["objects"],
        "generated_events": {kind: totals[kind] for kind in ("in", "out", "collision")},
        **{f"generated_{key}": totals[key] for key in ("videos_with_collision", "future_collisions",
                                                       "videos_with_future_collision")},
        "seconds": round(seconds, 3),
        "videos_per_minute": round(60.0 * len(todo) / seconds, 3) if todo and seconds > 0 else None,
    }
