"""Speed of CLEVRER video generation, stage by stage (``nesy bench speed --suite clevrer-data``).

Times what ``nesy data clevrer`` does per video in each worker, on one core and
into a temporary folder: simulation (observed and future frames, then one
re-simulation per object for the counterfactuals), rendering every observed
frame, PNG encoding and atomic writing of frames and masks, the GIF and the two
JSON files.  The figure that matters is ``videos_per_minute`` at 480x320 with
128 observed and 50 future frames.  Start-up (pybullet connect) is paid once per
worker, in a warm-up video that is not timed.  On a shared machine the
wall-clock rate depends on the load; ``videos_per_cpu_minute`` (process CPU
time) is what one idle core would give.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.datasets.clevrer_builder import ClevrerDataConfig, build_video
from physics.config_types import check_field_types

__all__ = ["ClevrerSpeedConfig", "run_clevrer_data_speed", "clevrer_data_suite", "MAX_SUITE_VIDEOS"]

MAX_SUITE_VIDEOS = 20  # the shared --scenes default (1000) is sized for the executor suite


@dataclass(frozen=True)
class ClevrerSpeedConfig:
    """Parameters of the CLEVRER data speed run."""

    videos: int = field(default=3, metadata={"help": "videos timed (after one warm-up video)"})
    frames: int = field(default=128, metadata={"help": "observed frames per video"})
    future_frames: int = field(default=50, metadata={"help": "future frames per video"})
    width: int = field(default=480, metadata={"help": "frame width"})
    height: int = field(default=320, metadata={"help": "frame height"})
    seed: int = field(default=0, metadata={"help": "base seed"})
    future_share: float = field(default=ClevrerDataConfig.future_share, metadata={
        "help": "the builder's --future-share (-1: the sampler alone, without the predictive redraws)"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


def run_clevrer_data_speed(cfg: ClevrerSpeedConfig = ClevrerSpeedConfig()) -> dict[str, Any]:
    """Generate ``cfg.videos`` videos in this process and report per-stage seconds and videos per minute."""
    with tempfile.TemporaryDirectory(prefix="nesy-clevrer-speed-") as out:
        data = ClevrerDataConfig(n=cfg.videos + 1, out=out, seed=cfg.seed, split="train", frames=cfg.frames,
                                 future_frames=cfg.future_frames, width=cfg.width, height=cfg.height,
                                 future_share=cfg.future_share)
        t0 = time.perf_counter()
        build_video(data, cfg.videos)  # warm-up: pybullet connect, first-touch allocations
        warmup = time.perf_counter() - t0
        stages: dict[str, float] = {}
        objects = 0
        start, cpu = time.perf_counter(), time.process_time()
        for k in range(cfg.videos):
            objects += build_video(data, k, stages)["objects"]
        total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    stages["simulation + counterfactuals"] = total - sum(stages.values())
    return {
        "suite": "clevrer-data",
        "videos": cfg.videos,
        "frames": f"{cfg.frames} observed + {cfg.future_frames} future",
        "image": f"{cfg.width}x{cfg.height}",
        "future_share": cfg.future_share,
        "videos_per_minute": round(60.0 * cfg.videos / total, 3),
        "seconds": round(total, 3),
        "videos_per_cpu_minute": round(60.0 * cfg.videos / total_cpu, 3),
        "seconds_cpu": round(total_cpu, 3),
        "warmup_seconds": round(warmup, 3),
        "objects_per_video": round(objects / cfg.videos, 2),
        "ms_per_frame": {name: round(1000 * v / (cfg.videos * cfg.frames), 2) for name, v in stages.items()},
        "note": "one core, serial, written to a temporary folder; ms_per_frame divides each stage by observed frames",
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_avg": list(os.getloadavg()),
        },
    }


def clevrer_data_suite(cfg: Any) -> dict[str, Any]:
    """The ``clevrer-data`` suite of ``nesy bench speed`` (``--scenes`` videos, at most :data:`MAX_SUITE_VIDEOS`)."""
    videos = max(1, min(int(getattr(cfg, "scenes", 3)), MAX_SUITE_VIDEOS))
    return run_clevrer_data_speed(ClevrerSpeedConfig(videos=videos, seed=int(getattr(cfg, "seed", 0))))
