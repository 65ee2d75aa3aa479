"""Build a CLEVR-style data set: rendered images, instance masks, scenes and questions.

Output folder (the official CLEVR file names, flat layout)::

    OUT/images/CLEVR_<split>_000000.png     RGB renders
    OUT/masks/CLEVR_<split>_000000.png      palette PNG, index = object id + 1 (0 background)
    OUT/CLEVR_<split>_scenes.json           official scene JSON (+ directions, relationships)
    OUT/CLEVR_<split>_questions.json        official questions JSON (template generator)

Determinism and resumption.  Scene ``k`` is a pure function of
:func:`scene_seed` ``(seed, split, k)`` and the config.  Each scene is written
as its image, its mask, then a JSON shard ``OUT/.partial/<name>.json`` (every
file atomically); the shard marks the scene done.  Questions are then made per
chunk of :data:`QUESTION_CHUNK` consecutive scenes, in scene order with one
generator whose template and answer counts start fresh at the chunk -- exactly
CLEVR's generator, which resets those counts every 250 images -- so chunks run
in parallel and each is a pure function of (seed, split, chunk).  A rerun skips
scenes and chunks already written, removes temporary files a killed run left
behind, and the final JSON files are merged in index order, so they are
byte-identical whatever the number of workers or interruptions.  The options
that shape the content are recorded in ``OUT/.partial/build.json`` (and in the
scenes file's ``info``); resuming or overwriting with other options is refused.
"""

from __future__ import annotations

import io
import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from perception.datasets.clevr_render import generate_scene
from perception.datasets.instance_masks import encode_mask_png, read_mask_png
from perception.image_io import load_image, verify_image
from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError
from physics.fanout import make_fanout
from physics.io import atomic_write_bytes, atomic_write_json, ensure_dir, read_json
from physics.worlds.clevr_blender import BlenderConfig, check_assets, find_blender
from physics.worlds.clevr_layout import LayoutConfig
from physics.worlds.clevr_properties import COGENT_CONDITIONS
from physics.worlds.clevr_world import ClevrWorldConfig

__all__ = [
    "ClevrDataConfig",
    "build_clevr",
    "build_scene",
    "build_questions",
    "scene_seed",
    "check_build_options",
    "question_chunk_seed",
    "image_name",
    "world_config",
    "SPLITS",
    "QUESTION_CHUNK",
    "RENDERERS",
    "blender_config",
]

SPLITS = ("train", "val", "test", "trainA", "valA", "valB", "testA", "testB")  # CoGenT names last
PNG_COMPRESS_LEVEL = 3  # measured: level 3 encodes a 480x320 render ~2x faster than 6 for ~25 % more bytes
PARTIAL = ".partial"
QUESTION_CHUNK = 250  # CLEVR's generate_questions.py resets template/answer counts every 250 images
FORMAT_VERSION = "1.0"  # CLEVR v1.0 file formats
MIN_SIDE = 16  # pixels; smaller renders leave no room for CLEVR's 200 visible pixels an object
MAX_SIDE = 4096  # pixels; TinyRenderer aborts the process (C++ bad_alloc) on huge buffers, e.g. 100000^2
RENDERERS = ("pybullet", "blender")


@dataclass(frozen=True)
class ClevrDataConfig:
    """What ``nesy data clevr`` generates (one split)."""

    n: int = field(metadata={"min": 1, "help": "number of scenes (images)"})
    out: str = field(metadata={"help": "output folder"})
    seed: int = field(default=0, metadata={"help": "base seed; scene k's seed derives from (seed, split, k)"})
    split: str = field(default="train", metadata={"help": "split name", "choices": list(SPLITS)})
    questions_per_scene: int = field(
        default=10, metadata={"help": "templates instantiated per scene (CLEVR's templates_per_image); 0: none"}
    )
    templates: str | None = field(
        default=None, metadata={"help": "folder or file of CLEVR-format templates (default: the project's own)"}
    )
    cogent: str | None = field(
        default=None, metadata={"help": "CLEVR-CoGenT condition (shape-colour split)", "choices": ["A", "B"]}
    )
    workers: int = field(default=1, metadata={"min": 1, "help": "worker processes"})
    width: int = field(default=480, metadata={"min": 16, "help": "image width in pixels"})
    height: int = field(default=320, metadata={"min": 16, "help": "image height in pixels"})
    min_pixels: int = field(default=200, metadata={"help": "fewest visible pixels per object (CLEVR: 200)"})
    min_objects: int = field(default=3, metadata={"min": 1, "help": "fewest objects in a scene (CLEVR: 3)"})
    max_objects: int = field(
        default=10, metadata={"min": 1, "help": "most objects in a scene (CLEVR: 10; more crowd and hide each other)"}
    )
    min_dist: float = field(
        default=0.25, metadata={"help": "least gap between object surfaces (CLEVR: 0.25; smaller: more touching)"}
    )
    margin: float = field(
        default=0.4, metadata={"help": "least gap between object centres along each of left/right/front/behind "
                               "(CLEVR: 0.4; more than 10 objects need less, e.g. 0.25 for 11-13)"}
    )
    backend: str = field(
        default="process", metadata={"help": "fan-out backend", "choices": ["serial", "process", "ray"]}
    )
    renderer: str = field(
        default="pybullet",
        metadata={"help": "pybullet (fast, default) or blender (Cycles with the official CLEVR assets)",
                  "choices": list(RENDERERS)},
    )
    samples: int = field(default=64, metadata={"min": 1, "help": "Cycles samples per pixel (--renderer blender)"})
    assets: str | None = field(
        default=None,
        metadata={"help": "folder of the official CLEVR Blender assets, e.g. ../shared/data/clevr/blender "
                  "(--renderer blender)"},
    )
    threads: int = field(default=1, metadata={"min": 1, "help": "CPU threads per Blender render (--renderer blender)"})
    bounces: int = field(
        default=8, metadata={"help": "Cycles' most light bounces per path (official: 8; --renderer blender)"}
    )
    scenes_per_process: int = field(
        default=100,
        metadata={"min": 1, "help": "scenes one Blender process renders before it restarts (1: a process per scene; the "
                  "images are byte-identical either way; --renderer blender)"},
    )
    denoise: bool = field(
        default=False, metadata={"help": "OpenImageDenoise after sampling, if Blender has it (--renderer blender)"}
    )
    address: str | None = field(
        default=None, metadata={"help": "Ray cluster to join with --backend ray (auto, HOST:PORT, ray://HOST:10001; "
                                "default: a local instance); OUT must be a path every node shares"}
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        check_build_options(self, SPLITS, "scenes")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(
                f"need 1 <= --min-objects <= --max-objects, got {self.min_objects} and {self.max_objects}"
            )
        for flag, value in (("--min-dist", self.min_dist), ("--margin", self.margin)):
            if not (np.isfinite(value) and value >= 0):  # NaN fails every comparison: test it by name
                raise ConfigError(f"{flag} must be a finite number >= 0, got {value}")
        if self.questions_per_scene < 0:
            raise ConfigError(f"--questions-per-scene must be >= 0, got {self.questions_per_scene}")
        if self.cogent is not None and self.cogent not in COGENT_CONDITIONS:
            raise ConfigError(f"unknown CoGenT condition {self.cogent!r}; choose one of {sorted(COGENT_CONDITIONS)}")
        if self.templates is not None and not Path(self.templates).exists():
            raise ConfigError(f"--templates {self.templates}: no such file or folder")
        if self.renderer not in RENDERERS:
            raise ConfigError(f"unknown renderer {self.renderer!r}; choose one of {list(RENDERERS)}")
        if self.renderer == "blender":
            if self.assets is None:
                raise ConfigError("--renderer blender needs --assets DIR (the CLEVR Blender assets folder)")
            blender_config(self)  # checks samples, threads, the assets and the Blender program


def blender_config(cfg: ClevrDataConfig) -> BlenderConfig | None:
    """The Blender render settings of a data config (``None`` for the pybullet renderer).

    Raises:
        ConfigError: bad samples or threads, missing assets, or no Blender program on PATH.
    """
    if cfg.renderer != "blender":
        return None
    blender = BlenderConfig(assets=str(cfg.assets), samples=cfg.samples, threads=cfg.threads, denoise=cfg.denoise,
                            bounces=cfg.bounces, scenes_per_process=cfg.scenes_per_process)
    check_assets(blender.assets)
    find_blender(blender.executable)
    return blender


def check_build_options(cfg: Any, splits: Sequence[str], unit: str) -> None:
    """The checks every data builder's config shares (``n``, ``out``, ``seed``, ``split``, ``workers``, size).

    Args:
        cfg: A config with those fields.
        splits: The split names allowed.
        unit: What ``n`` counts, for the message ("scenes", "videos").

    Raises:
        ConfigError: the first option that is not allowed, naming its flag.
    """
    if cfg.n <= 0:
        raise ConfigError(f"--n must be a positive number of {unit}, got {cfg.n}")
    if not str(cfg.out).strip():
        raise ConfigError("--out must name the output folder, got an empty path")
    if cfg.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {cfg.seed}")
    if cfg.split not in splits:
        raise ConfigError(f"unknown split {cfg.split!r}; choose one of {list(splits)}")
    if cfg.workers <= 0:
        raise ConfigError(f"--workers must be positive, got {cfg.workers}")
    if not (MIN_SIDE <= cfg.width <= MAX_SIDE and MIN_SIDE <= cfg.height <= MAX_SIDE):
        raise ConfigError(f"image size must be {MIN_SIDE}..{MAX_SIDE} pixels a side, got {cfg.width}x{cfg.height}")


def scene_seed(seed: int, split: str, k: int) -> tuple[int, int, int]:
    """The seed of scene ``k``: depends on (seed, split, k) only (CRC-32 names the split)."""
    return (int(seed), zlib.crc32(split.encode("utf-8")), int(k))


def image_name(split: str, k: int) -> str:
    """CLEVR's file name of image ``k``: ``CLEVR_<split>_<k:06d>.png``."""
    return f"CLEVR_{split}_{k:06d}.png"


def world_config(cfg: ClevrDataConfig) -> ClevrWorldConfig:
    """The world config a data config asks for (CoGenT palettes, image size, visibility)."""
    layout = LayoutConfig(
        min_objects=cfg.min_objects,
        max_objects=cfg.max_objects,
        min_dist=cfg.min_dist,
        margin=cfg.margin,
        shape_colors=COGENT_CONDITIONS[cfg.cogent] if cfg.cogent else None,
    )
    return ClevrWorldConfig(width=cfg.width, height=cfg.height, min_pixels=cfg.min_pixels, layout=layout)


def _info(cfg: ClevrDataConfig) -> dict[str, Any]:
    info = {
        "split": cfg.split,
        "version": FORMAT_VERSION,
        "license": "Creative Commons Attribution (CC BY 4.0)",
        "generator": "nesy-physics (pybullet TinyRenderer)",
        "num_images": cfg.n,
        "seed": cfg.seed,
        "width": cfg.width,
        "height": cfg.height,
        "min_pixels": cfg.min_pixels,
        "cogent": cfg.cogent,
        "questions_per_scene": cfg.questions_per_scene,
        "templates": cfg.templates or "nesy-physics default templates",
        "mask_format": "palette PNG, pixel index = object index + 1, 0 = background",
    }
    info.update(_crowding(cfg))
    if cfg.renderer == "blender":  # pybullet builds keep the info they always had
        info["generator"] = "nesy-physics (Blender Cycles, official CLEVR assets)"
        info.update(renderer="blender", samples=cfg.samples, denoise=cfg.denoise, bounces=cfg.bounces)
    return info


def _crowding(cfg: ClevrDataConfig) -> dict[str, Any]:
    """The layout options that differ from CLEVR's (none for a default build, whose files stay as they were)."""
    return {k: getattr(cfg, k) for k, v in _CROWDING_DEFAULTS.items() if getattr(cfg, k) != v}


_CROWDING_DEFAULTS = {"min_objects": 3, "max_objects": 10, "min_dist": 0.25, "margin": 0.4}


# ---------------------------------------------------------------------- one scene (worker side)
_GENERATORS: dict[str | None, Any] = {}


def _question_generator(templates: str | None, split: str):
    """One QuestionGenerator per process and template source (templates load once)."""
    key = f"{templates}|{split}"
    if key not in _GENERATORS:
        from reasoning.questions import GeneratorConfig, QuestionGenerator

        _GENERATORS[key] = QuestionGenerator(templates, config=GeneratorConfig(split=split))
    return _GENERATORS[key]


def encode_png(rgb: np.ndarray) -> bytes:
    """RGB uint8 [H, W, 3] -> PNG bytes (deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def build_scene(cfg: ClevrDataConfig, k: int) -> dict[str, Any]:
    """Render scene ``k``, write its image and mask, and return its shard record ``{"scene": ...}``."""
    out = Path(cfg.out)
    name = image_name(cfg.split, k)
    seed = scene_seed(cfg.seed, cfg.split, k)
    scene, rgb, _depth, mask = generate_scene(
        seed, world_config(cfg), image_index=k, image_filename=name, split=cfg.split, blender=blender_config(cfg)
    )
    atomic_write_bytes(out / "images" / name, encode_png(rgb))
    atomic_write_bytes(out / "masks" / name, encode_mask_png(mask))
    return {"scene": scene.to_clevr()}


def question_chunk_seed(seed: int, split: str, start: int) -> int:
    """The question generator's seed for the chunk of scenes starting at ``start``."""
    state = np.random.SeedSequence((int(seed), zlib.crc32(split.encode("utf-8")), int(start), 1))
    return int(state.generate_state(1)[0])


def build_questions(cfg: ClevrDataConfig, start: int, end: int) -> list[dict[str, Any]]:
    """Questions for scenes ``start .. end - 1`` (read from their shards), without ``question_index``."""
    from perception.scene_graph import SceneGraph

    scenes = [
        SceneGraph.from_clevr(read_json(_shard(cfg, k), "scene shard")["scene"], where=str(_shard(cfg, k)))
        for k in range(start, end)
    ]
    gen = _question_generator(cfg.templates, cfg.split)
    questions = gen.generate(scenes, per_scene=cfg.questions_per_scene, seed=question_chunk_seed(cfg.seed, cfg.split, start))
    for q in questions:
        q.pop("question_index", None)
    return questions


def _job(args: tuple[dict[str, Any], int]) -> int:
    """Worker entry point: build scene k and write its shard last (it marks the scene done)."""
    cfg_dict, k = args
    cfg = ClevrDataConfig(**cfg_dict)
    record = build_scene(cfg, k)
    atomic_write_json(_shard(cfg, k), record)
    return len(record["scene"]["objects"])


def _render_job(args: tuple[dict[str, Any], int]) -> dict[str, Any]:
    """Worker entry point: render scene k again (image and mask) and return its scene record."""
    cfg_dict, k = args
    return build_scene(ClevrDataConfig(**cfg_dict), k)["scene"]


def _questions_job(args: tuple[dict[str, Any], int, int]) -> int:
    """Worker entry point: questions of one chunk, written atomically (the file marks the chunk done)."""
    cfg_dict, start, end = args
    cfg = ClevrDataConfig(**cfg_dict)
    questions = build_questions(cfg, start, end)
    atomic_write_json(_chunk_file(cfg, start, end), {"questions": questions})
    return end - start


def _shard(cfg: ClevrDataConfig, k: int) -> Path:
    return Path(cfg.out) / PARTIAL / f"{Path(image_name(cfg.split, k)).stem}.json"


def _chunk_file(cfg: ClevrDataConfig, start: int, end: int) -> Path:
    return Path(cfg.out) / PARTIAL / f"questions_{cfg.split}_{start:06d}_{end:06d}.json"


def _chunks(cfg: ClevrDataConfig) -> list[tuple[int, int]]:
    return [(s, min(s + QUESTION_CHUNK, cfg.n)) for s in range(0, cfg.n, QUESTION_CHUNK)]


def _chunk_done(cfg: ClevrDataConfig, start: int, end: int) -> bool:
    path = _chunk_file(cfg, start, end)
    if not path.is_file():
        return False
    try:
        ok = isinstance(read_json(path, "question chunk").get("questions"), list)
    except (DataError, AttributeError):
        ok = False
    if not ok:
        path.unlink(missing_ok=True)
    return ok


# ---------------------------------------------------------------------- the build
def _remove_stale_temporaries(out: Path) -> int:
    """Delete temporary files a killed run left (atomic writers name them ``.<name>.*.tmp``)."""
    removed = 0
    for folder in (out, out / "images", out / "masks", out / PARTIAL):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def _intact(cfg: ClevrDataConfig, k: int, scene: Any) -> bool:
    """Scene k's image and mask are whole and fit its scene record.

    Both PNGs pass their checksums and decode at the config's size, the record
    names image k, and the mask's ids are exactly the record's objects (each
    object has at least ``min_pixels`` visible pixels, so each is in the mask).
    """
    name = image_name(cfg.split, k)
    if not isinstance(scene, dict) or not isinstance(scene.get("objects"), list):
        return False
    if scene.get("image_index") != k or scene.get("image_filename") != name:
        return False
    out = Path(cfg.out)
    try:
        for folder in ("images", "masks"):
            if verify_image(out / folder / name) != (cfg.width, cfg.height):
                return False
        rgb = load_image(out / "images" / name)
        mask = read_mask_png(out / "masks" / name)
    except DataError:
        return False
    if rgb.shape != (cfg.height, cfg.width, 3) or mask.shape != (cfg.height, cfg.width):
        return False
    ids = set(np.unique(mask).tolist()) - {-1}
    objects = set(range(len(scene["objects"])))
    return ids == objects if cfg.min_pixels > 0 else ids <= objects


def _done(cfg: ClevrDataConfig, k: int) -> bool:
    """Scene k is finished and whole: its shard parses and its image and mask are intact.

    A damaged shard, image or mask has its shard removed, so the scene is made
    again (identically: it is a pure function of its seed).
    """
    shard = _shard(cfg, k)
    if not shard.is_file():
        return False
    try:
        record = read_json(shard, "scene shard")
        ok = isinstance(record, dict) and _intact(cfg, k, record.get("scene"))
    except DataError:
        ok = False
    if not ok:
        shard.unlink(missing_ok=True)
    return ok


def scenes_path(out: str | Path, split: str) -> Path:
    """``OUT/CLEVR_<split>_scenes.json``."""
    return Path(out) / f"CLEVR_{split}_scenes.json"


def questions_path(out: str | Path, split: str) -> Path:
    """``OUT/CLEVR_<split>_questions.json``."""
    return Path(out) / f"CLEVR_{split}_questions.json"


def build_clevr(cfg: ClevrDataConfig, *, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish) one split; returns a JSON-able summary.

    Raises:
        ConfigError: bad options.  DataError: unreadable shards at merge time.
    """
    if cfg.questions_per_scene > 0:  # read the templates now: a malformed file failed only after every render,
        _question_generator(cfg.templates, cfg.split)  # and --templates is part of the build's identity
    out = Path(cfg.out)
    for sub in ("images", "masks", PARTIAL):
        ensure_dir(out / sub)
    stale = _remove_stale_temporaries(out)
    _check_same_build(cfg)
    if _complete(cfg):
        if not any((out / PARTIAL).iterdir()):
            (out / PARTIAL).rmdir()
        start = time.perf_counter()
        repaired = _repair(cfg, progress=progress)
        return _summary(cfg, generated=repaired, stale=stale, seconds=time.perf_counter() - start if repaired else 0.0)
    marker = out / PARTIAL / BUILD_MARKER
    if not marker.is_file():  # the options this partial build is made with
        atomic_write_json(marker, _identity(cfg))
    todo = [k for k in range(cfg.n) if not _done(cfg, k)]
    start = time.perf_counter()
    fan = make_fanout(cfg.backend, cfg.workers, cfg.address)
    cfg_dict = asdict(cfg)
    with tqdm(total=cfg.n, initial=cfg.n - len(todo), desc=f"CLEVR {cfg.split}", unit="scene", disable=not progress) as bar:
        for _ in fan.imap(_job, [(cfg_dict, k) for k in todo]):
            bar.update(1)
    questions: list[dict[str, Any]] = []
    if cfg.questions_per_scene > 0:
        chunks = [c for c in _chunks(cfg) if not _chunk_done(cfg, *c)]
        done = cfg.n - sum(e - s for s, e in chunks)
        with tqdm(total=cfg.n, initial=done, desc="questions", unit="scene", disable=not progress) as bar:
            for count in fan.imap(_questions_job, [(cfg_dict, s, e) for s, e in chunks]):
                bar.update(count)
        for s, e in _chunks(cfg):
            for q in read_json(_chunk_file(cfg, s, e), "question chunk")["questions"]:
                questions.append({**q, "question_index": len(questions)})
    render_s = time.perf_counter() - start
    scenes = [read_json(_shard(cfg, k), "scene shard")["scene"] for k in range(cfg.n)]
    info = _info(cfg)
    atomic_write_json(scenes_path(out, cfg.split), {"info": info, "scenes": scenes})
    if cfg.questions_per_scene > 0:
        from reasoning.questions import save_questions

        save_questions(questions_path(out, cfg.split), questions, info)
    for k in range(cfg.n):
        _shard(cfg, k).unlink(missing_ok=True)
    for s, e in _chunks(cfg):
        _chunk_file(cfg, s, e).unlink(missing_ok=True)
    if not any((out / PARTIAL).glob("*_*.json")):  # shards of a larger earlier run keep their marker
        (out / PARTIAL / BUILD_MARKER).unlink(missing_ok=True)
        (out / PARTIAL).rmdir()
    return _summary(cfg, generated=len(todo), stale=stale, seconds=render_s)


BUILD_MARKER = "build.json"
# options that change what is generated (n, workers, backend and out do not; nor do the assets' folder
# and Blender's thread count and scenes per process, which leave the scenes, masks and image bytes as they are)
_IDENTITY = ("seed", "split", "width", "height", "min_pixels", "cogent", "questions_per_scene", "templates")
_BLENDER_IDENTITY = ("renderer", "samples", "denoise")


def _identity(cfg: ClevrDataConfig) -> dict[str, Any]:
    """The options a partial build records (Blender's only for Blender builds, so older markers still match)."""
    keys = _IDENTITY + (_BLENDER_IDENTITY if cfg.renderer == "blender" else ())
    identity = {k: getattr(cfg, k) for k in keys}
    identity.update(_crowding(cfg))  # only where not CLEVR's, so older markers still match
    if cfg.renderer == "blender" and cfg.bounces != BlenderConfig.bounces:  # older markers hold the default
        identity["bounces"] = cfg.bounces
    return identity


def _check_same_build(cfg: ClevrDataConfig) -> None:
    """Refuse to mix scenes of different options in one folder.

    A partial build record whose run made no scene or question shard yet (it failed before the
    first) binds nothing: the options given now replace it.

    Raises:
        ConfigError: OUT holds a partial or finished build of this split with other options.
    """
    out = Path(cfg.out)
    identity = _identity(cfg)
    marker = out / PARTIAL / BUILD_MARKER
    if marker.is_file():
        try:
            previous = read_json(marker, "partial build record")
        except DataError as exc:  # damaged: say how to go on, as for a record that is no object
            raise DataError(f"{exc}; delete it to resume with the options given now") from None
        if not isinstance(previous, dict):
            raise DataError(
                f"{marker} is not a partial build record (expected an object of options, got "
                f"{type(previous).__name__}); delete it to resume with the options given now"
            )
        if previous != identity and not any((out / PARTIAL).glob("*_*.json")):
            marker.unlink()  # no scene or question shard was made with those options: nothing to resume
        elif previous != identity:
            diff = ", ".join(f"{k}={previous.get(k)!r}" for k in sorted(set(previous) | set(identity))
                             if previous.get(k) != identity.get(k))
            raise ConfigError(
                f"{out} holds a partial build with {diff}; rerun with the same options to resume it, "
                f"or choose another --out"
            )
    scenes_file = scenes_path(out, cfg.split)
    if scenes_file.is_file():
        try:
            info = read_json(scenes_file, "CLEVR scenes file").get("info", {})
        except (DataError, AttributeError):
            info = None
        wanted = {**_CROWDING_DEFAULTS, **{k: v for k, v in _info(cfg).items() if k != "num_images"}}
        if isinstance(info, dict):
            info = {**_CROWDING_DEFAULTS, **info}  # a default build's file does not name them
        if isinstance(info, dict) and {k: info.get(k) for k in wanted} != wanted:
            diff = ", ".join(f"{k}={info.get(k)!r}" for k in wanted if info.get(k) != wanted[k])
            raise ConfigError(
                f"{scenes_file} was built with {diff}; remove it or choose another --out"
            )


def _complete(cfg: ClevrDataConfig) -> bool:
    """The split was already built with this very config (a rerun has at most damaged items to redo)."""
    path = scenes_path(cfg.out, cfg.split)
    if not path.is_file() or (Path(cfg.out) / PARTIAL / f"{Path(image_name(cfg.split, 0)).stem}.json").exists():
        return False
    try:
        data = read_json(path, "CLEVR scenes file")
    except DataError:
        return False
    if not isinstance(data, dict) or data.get("info") != _info(cfg):
        return False
    if not isinstance(data.get("scenes"), list) or len(data["scenes"]) != cfg.n:
        return False
    return cfg.questions_per_scene == 0 or questions_path(cfg.out, cfg.split).is_file()


def _repair(cfg: ClevrDataConfig, *, progress: bool) -> int:
    """Render again the scenes of a finished split whose image or mask is missing or damaged.

    Each scene is a pure function of its seed, so the new files are the bytes
    an uninterrupted build wrote, and its scene record must equal the one in the
    scenes file.

    Returns:
        How many scenes were rendered again.

    Raises:
        DataError: a scene rendered again differs from its record in the scenes
            file (the folder was built by another version of the renderer).
    """
    path = scenes_path(cfg.out, cfg.split)
    scenes = read_json(path, "CLEVR scenes file")["scenes"]
    damaged = [k for k in range(cfg.n) if not _intact(cfg, k, scenes[k])]
    if not damaged:
        return 0
    fan = make_fanout(cfg.backend, cfg.workers, cfg.address)
    jobs = [(asdict(cfg), k) for k in damaged]
    with tqdm(total=len(damaged), desc=f"CLEVR {cfg.split} repair", unit="scene", disable=not progress) as bar:
        for k, scene in zip(damaged, fan.imap(_render_job, jobs), strict=True):
            if json.loads(json.dumps(scene)) != scenes[k]:
                raise DataError(
                    f"{path}: scene {k} renders differently from its record (another renderer version "
                    f"built this folder); build it again in a new --out"
                )
            bar.update(1)
    return len(damaged)


def _summary(cfg: ClevrDataConfig, *, generated: int, stale: int, seconds: float) -> dict[str, Any]:
    scenes = read_json(scenes_path(cfg.out, cfg.split), "CLEVR scenes file")["scenes"]
    qpath = questions_path(cfg.out, cfg.split)
    questions = read_json(qpath, "CLEVR questions file")["questions"] if cfg.questions_per_scene > 0 else []
    return {
        "out": str(cfg.out),
        "split": cfg.split,
        "scenes": cfg.n,
        "generated": generated,
        "resumed": cfg.n - generated,
        "stale_temporaries_removed": stale,
        "questions": len(questions),
        "objects": sum(len(s["objects"]) for s in scenes),
        "seconds": round(seconds, 3),
        "scenes_per_second": round(generated / seconds, 3) if generated and seconds > 0 else None,
    }
