"""Speed of CLEVR data generation, stage by stage (``nesy bench speed --suite clevr-data``).

Times the whole per-scene pipeline that ``nesy data clevr`` runs in each worker,
on one core: layout + body creation, settling, the TinyRenderer call, mask
remapping, the shading pass, PNG encoding of image and mask, and question
generation.  The figure that matters is ``scenes_per_second`` (target: >= 5 per
core at 480x320, questions included).  Start-up (pybullet connect, template
loading) is measured separately and excluded, as it is paid once per worker.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.datasets.clevr_builder import ClevrDataConfig, encode_png, scene_seed, world_config
from perception.datasets.clevr_render import generate_scene
from perception.datasets.instance_masks import encode_mask_png
from physics.config_types import check_field_types
from physics.worlds.clevr_world import process_world

__all__ = ["ClevrSpeedConfig", "run_clevr_data_speed", "clevr_data_suite", "MAX_SUITE_SCENES"]

MAX_SUITE_SCENES = 200  # the shared --scenes default (1000) is sized for the executor suite


@dataclass(frozen=True)
class ClevrSpeedConfig:
    """Parameters of the CLEVR data speed run."""

    scenes: int = field(default=40, metadata={"help": "scenes timed (after 2 warm-up scenes)"})
    width: int = field(default=480, metadata={"help": "image width"})
    height: int = field(default=320, metadata={"help": "image height"})
    questions_per_scene: int = field(
        default=10, metadata={"help": "templates instantiated per scene"}
    )
    templates: str | None = field(
        default=None, metadata={"help": "template folder (default: the project's own)"}
    )
    seed: int = field(default=0, metadata={"help": "base seed"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


def run_clevr_data_speed(cfg: ClevrSpeedConfig = ClevrSpeedConfig()) -> dict[str, Any]:
    """Generate ``cfg.scenes`` scenes in this process and report per-stage seconds and scenes/s."""
    import torch

    torch.set_num_threads(1)
    data_cfg = ClevrDataConfig(
        n=cfg.scenes,
        out=os.devnull,
        seed=cfg.seed,
        split="train",
        width=cfg.width,
        height=cfg.height,
        questions_per_scene=cfg.questions_per_scene,
        templates=cfg.templates,
    )
    wcfg = world_config(data_cfg)
    t0 = time.perf_counter()
    world = process_world(wcfg)
    gen = None
    if cfg.questions_per_scene > 0:
        from benchmarks.datasets.clevr_builder import _question_generator

        gen = _question_generator(cfg.templates, "train")
    startup = time.perf_counter() - t0

    def one(k: int, stages: dict[str, float] | None) -> tuple[int, int]:
        seed = scene_seed(cfg.seed, "train", k)
        a = time.perf_counter()
        scene, rgb, _, mask = generate_scene(seed, wcfg, image_index=k, split="train")
        b = time.perf_counter()
        encode_png(rgb)
        c = time.perf_counter()
        encode_mask_png(mask)
        d = time.perf_counter()
        nq = 0
        if (
            gen is not None
        ):  # one generator over consecutive scenes, as the builder's question chunks
            nq = len(gen.generate_for_scene(scene, cfg.questions_per_scene, qrng))
        e = time.perf_counter()
        if stages is not None:
            stages["scene (world + SceneGraph)"] += b - a
            stages["png_image"] += c - b
            stages["png_mask"] += d - c
            stages["questions"] += e - d
        return len(scene), nq

    qrng = np.random.default_rng(cfg.seed)
    for k in range(2):  # warm-up: first-touch allocations, template caches
        one(cfg.scenes + k, None)
    if gen is not None:
        gen.reset_counts()  # a fresh chunk: template and answer counts start at zero
    before = dict(world.timings)
    layouts_before = world.layouts_tried
    stages = dict.fromkeys(
        ("scene (world + SceneGraph)", "png_image", "png_mask", "questions"), 0.0
    )
    objects = questions = 0
    start = time.perf_counter()
    for k in range(cfg.scenes):
        n_obj, nq = one(k, stages)
        objects += n_obj
        questions += nq
    total = time.perf_counter() - start
    world_stages = {name: world.timings[name] - before[name] for name in world.timings}
    per_scene_ms = {
        name: round(1000 * v / cfg.scenes, 2) for name, v in {**world_stages, **stages}.items()
    }
    return {
        "suite": "clevr-data",
        "scenes": cfg.scenes,
        "image": f"{cfg.width}x{cfg.height}",
        "questions_per_scene": cfg.questions_per_scene,
        "scenes_per_second": round(cfg.scenes / total, 3),
        "seconds": round(total, 3),
        "startup_seconds": round(startup, 3),
        "layouts_per_scene": round((world.layouts_tried - layouts_before) / cfg.scenes, 3),
        "objects_per_scene": round(objects / cfg.scenes, 2),
        "questions_generated": questions,
        "ms_per_scene": per_scene_ms,
        "note": "world stages (build, settle, tinyrenderer, mask, shade) are parts of 'scene'; one core, serial",
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_avg": list(os.getloadavg()),
        },
    }


def clevr_data_suite(cfg: Any) -> dict[str, Any]:
    """The ``clevr-data`` suite of ``nesy bench speed`` (reads ``scenes`` and ``seed`` of the shared config).

    At most :data:`MAX_SUITE_SCENES` scenes are timed; the result says how many.
    """
    scenes = max(1, min(int(getattr(cfg, "scenes", 40)), MAX_SUITE_SCENES))
    return run_clevr_data_speed(ClevrSpeedConfig(scenes=scenes, seed=int(getattr(cfg, "seed", 0))))


if __name__ == "__main__":
    import json
    import sys

    args = dict(a.split("=", 1) for a in sys.argv[1:])
    kw = {k: (v if k == "templates" else int(v)) for k, v in args.items()}
    print(json.dumps(run_clevr_data_speed(ClevrSpeedConfig(**kw)), indent=1))
