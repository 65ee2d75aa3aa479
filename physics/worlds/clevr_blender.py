"""CLEVR scenes rendered by Blender's Cycles from the official CLEVR assets.

The pybullet world (:mod:`physics.worlds.clevr_world`) stays the source of the
scene: it places the objects with CLEVR's rules, lets them settle, and jitters
the camera.  This module hands that scene graph to Blender (Debian's
``blender`` package, run headless) which rebuilds it from the official assets
-- ``base_scene.blend`` (ground, backdrop, lamps, camera), ``shapes/*.blend``
and ``materials/*.blend`` in a folder the user names -- and renders two
images with Cycles on the CPU (script :mod:`physics.worlds.blender_scene`):

* the photograph (``samples`` path-traced samples, fixed seed and thread count);
* a flat-colour pass: each object an emission shader of its own code colour,
  one sample at each pixel centre, decoded here into the instance mask
  (``k`` = object ``k``, ``-1`` = background).

The scene dict is the pybullet one (same ``objects``, ``3d_coords``,
``pixel_coords``, ``directions`` and ``camera``: Blender's camera is set to
that very eye, target and field of view), except that ``light_direction`` (the
pybullet light) gives way to ``lamp_offsets``, the seeded jitter of the base
scene's three area lamps (CLEVR: up to 1.0 along each axis).  If an object
shows fewer than ``min_pixels`` pixels in the Blender mask (the official
shapes are bevelled, so visibility can differ by a few pixels), the layout is
drawn again from the derived seed ``(*seed, RESAMPLE_TAG, attempt)``.

Determinism: the layout, lamp jitter and Cycles seed are pure functions of the
scene seed, so the scene JSON and the mask are identical on every run; Cycles
on the CPU with a fixed seed and thread count gives the same image bytes (see
docs/results/data.md for what was measured across thread counts).
"""

from __future__ import annotations

import atexit
import collections
import json
import math
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from physics.config_types import check_field_types
from physics.errors import ConfigError, NesyError, StateError
from physics.worlds.blender_scene import DONE, FAIL
from physics.worlds.clevr_properties import COLOR_RGB, SIZE_RADIUS
from physics.worlds.clevr_world import BACKGROUND, ClevrRender, ClevrWorldConfig, process_world

__all__ = [
    "BlenderConfig",
    "BlenderError",
    "find_blender",
    "check_assets",
    "lamp_offsets",
    "blender_spec",
    "render_blender",
    "close_blender_processes",
    "render_clevr_scene_blender",
    "decode_mask",
    "SCRIPT",
    "LAMPS",
]

SCRIPT = Path(__file__).with_name("blender_scene.py")
LAMPS = ("Lamp_Key", "Lamp_Fill", "Lamp_Back")  # the base scene's area lamps, jittered per scene
ASSET_FILES = (
    "base_scene.blend",
    "shapes/SmoothCube_v2.blend",
    "shapes/Sphere.blend",
    "shapes/SmoothCylinder.blend",
    "materials/Rubber.blend",
    "materials/MyMetal.blend",
)
RESAMPLE_TAG = 0xB1E2  # seed component of layouts drawn again for Blender's visibility check
_LAMP_TAG = 0x1A4B  # seed component of the lamp jitter and the Cycles seed
_CODE_STEP = 20  # mask code of object k: sRGB red (k + 1) * 20, green and blue 0
MAX_OBJECTS = 255 // _CODE_STEP - 1


class BlenderError(NesyError, RuntimeError):
    """Blender is missing, failed, or wrote something unreadable."""


@dataclass(frozen=True)
class BlenderConfig:
    """How Blender renders a scene.

    Args:
        assets: Folder of the official CLEVR Blender assets (``base_scene.blend``,
            ``shapes/``, ``materials/``), e.g. ``../shared/data/clevr/blender``.
        samples: Cycles samples per pixel (the official renders use 512).
        threads: CPU threads Cycles uses (fixed, for reproducible images).
        denoise: Run OpenImageDenoise after sampling (needs a Blender built with it;
            Debian's 3.4 package is not).
        bounces: Cycles' most light bounces per path (the official renders: 8);
            fewer is cheaper and darkens what only indirect light reaches.
        lamp_jitter: Most shift of each lamp coordinate (CLEVR: 1.0).
        executable: The Blender program (a name on PATH or a path).
        timeout_s: Most seconds one scene may take before it counts as failed.
        scenes_per_process: Scenes one Blender process renders before it is
            restarted (1: a process per scene).  Start-up and loading the base
            scene cost about 4 s, so a long-lived process saves that per scene;
            the PNGs are byte-identical either way (every scene re-opens the
            base scene in a fresh state).
    """

    assets: str
    samples: int = 64
    threads: int = 1
    denoise: bool = False
    bounces: int = 8
    lamp_jitter: float = 1.0
    executable: str = "blender"
    timeout_s: float = 1800.0
    scenes_per_process: int = 100

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.samples < 1:
            raise ConfigError(f"Blender samples must be >= 1, got {self.samples}")
        if self.threads < 1:
            raise ConfigError(f"Blender threads must be >= 1, got {self.threads}")
        if self.bounces < 0:
            raise ConfigError(f"Blender light bounces must be >= 0, got {self.bounces}")
        if self.lamp_jitter < 0:
            raise ConfigError(f"lamp jitter must be >= 0, got {self.lamp_jitter}")
        if self.timeout_s <= 0:
            raise ConfigError(f"Blender timeout must be positive, got {self.timeout_s}")
        if self.scenes_per_process < 1:
            raise ConfigError(f"Blender scenes per process must be >= 1, got {self.scenes_per_process}")


def find_blender(executable: str = "blender") -> str:
    """The path of the Blender program.

    Raises:
        ConfigError: it is not on PATH (install Debian's ``blender`` package).
    """
    path = shutil.which(executable)
    if path is None:
        raise ConfigError(
            f"Blender program {executable!r} not found on PATH; install it (Debian: apt-get install blender) "
            f"or use --renderer pybullet"
        )
    return path


def check_assets(folder: str | Path) -> Path:
    """The asset folder, checked to hold the official CLEVR Blender files.

    Raises:
        ConfigError: the folder or one of its files is missing.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--assets {folder}: no such folder (the CLEVR Blender assets: base_scene.blend, shapes/, materials/)")
    for name in ASSET_FILES:
        if not (root / name).is_file():
            raise ConfigError(f"--assets {folder}: lacks {name} (the official CLEVR image_generation/data files)")
    return root.resolve()


def _seed_tuple(seed: int | Sequence[int]) -> tuple[int, ...]:
    return (int(seed),) if isinstance(seed, (int, np.integer)) else tuple(int(s) for s in seed)


def lamp_offsets(seed: int | Sequence[int], jitter: float) -> dict[str, list[float]]:
    """Each lamp's shift, U(-jitter, jitter) per coordinate, a pure function of the scene seed."""
    rng = np.random.default_rng((*_seed_tuple(seed), _LAMP_TAG))
    return {name: [round(float(d), 6) + 0.0 for d in rng.uniform(-jitter, jitter, 3)] for name in LAMPS}


def cycles_seed(seed: int | Sequence[int]) -> int:
    """Cycles' sampling seed for a scene (a pure function of its seed)."""
    return int(np.random.SeedSequence((*_seed_tuple(seed), _LAMP_TAG, 1)).generate_state(1)[0] % (2**31))


def _srgb_to_linear(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def _mask_code(k: int) -> list[float]:
    """Linear emission colour whose 8-bit sRGB render is red ``(k + 1) * 20``."""
    return [_srgb_to_linear((k + 1) * _CODE_STEP / 255.0), 0.0, 0.0]


def decode_mask(flat: np.ndarray, num_objects: int) -> np.ndarray:
    """The flat-colour pass (uint8 [H, W, 3]) -> instance mask int16 [H, W] (``-1`` background).

    Raises:
        BlenderError: a pixel holds a colour that is no object's code.
    """
    red = flat[..., 0].astype(np.int32)
    index = (red + _CODE_STEP // 2) // _CODE_STEP - 1
    off_code = np.abs(red - (index + 1) * _CODE_STEP) > 2
    if off_code.any() or (flat[..., 1:] > 2).any() or index.max() >= num_objects:
        raise BlenderError(
            f"Blender's flat-colour pass holds colours that are no object's code "
            f"({int(off_code.sum())} pixels off code, max index {int(index.max())} for {num_objects} objects)"
        )
    return np.where(index < 0, BACKGROUND, index).astype(np.int16)


def blender_spec(scene: dict[str, Any], config: BlenderConfig, seed: int | Sequence[int], *, image: str, mask: str) -> dict[str, Any]:
    """What ``blender_scene.py`` needs to build and render ``scene`` (a CLEVR scene dict with ``camera``)."""
    if len(scene["objects"]) > MAX_OBJECTS:
        raise ConfigError(f"the Blender renderer codes at most {MAX_OBJECTS} objects a scene, got {len(scene['objects'])}")
    cam = scene["camera"]
    objects = []
    for o in scene["objects"]:
        r = SIZE_RADIUS[o["size"]]
        half = r / math.sqrt(2.0) if o["shape"] == "cube" else r  # the assets have half size 1
        objects.append(
            {
                "shape": o["shape"],
                "material": o["material"],
                "rgb": [c / 255.0 for c in COLOR_RGB[o["color"]]],
                "location": list(o["3d_coords"]),
                "scale": half,
                "rotation_deg": o["rotation"],
            }
        )
    return {
        "assets": str(check_assets(config.assets)),
        "width": int(cam["width"]),
        "height": int(cam["height"]),
        "samples": config.samples,
        "denoise": config.denoise,
        "bounces": config.bounces,
        "threads": config.threads,
        "seed": cycles_seed(seed),
        "camera": {k: cam[k] for k in ("eye", "target", "up", "fov_x_deg")},
        "lamp_offsets": lamp_offsets(seed, config.lamp_jitter),
        "objects": objects,
        "mask_codes": [_mask_code(k) for k in range(len(objects))],
        "image": image,
        "mask": mask,
    }


def _last_lines(text: str, count: int = 3) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("Fra:")]
    return " | ".join(lines[-count:]) or "(no output)"


def _blender_command(program: str, argument: str) -> list[str]:
    """Headless Blender running :data:`SCRIPT` with ``argument`` (a spec file, or ``--serve``)."""
    return [program, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "-P", str(SCRIPT), "--", argument]


class _BlenderServer:
    """One long-lived ``blender_scene.py --serve`` process: a spec path in, a DONE/FAIL line out."""

    def __init__(self, program: str) -> None:
        cmd = _blender_command(program, "--serve")
        self.program = program
        self.served = 0
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def render(self, spec_file: Path, timeout_s: float, seed: Any) -> None:
        """Render one spec; raises BlenderError (and leaves the process dead) on failure or timeout."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{spec_file}\n")
            self.proc.stdin.flush()
        except OSError:
            self.close()
            raise BlenderError(f"Blender quit before scene seed {seed!r}: {_last_lines(chr(10).join(self.tail))}") from None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                raise BlenderError(f"Blender took over {timeout_s:g} s for scene seed {seed!r}") from None
            if line is None:
                self.close()
                raise BlenderError(
                    f"Blender failed on scene seed {seed!r} (exit {self.proc.returncode}): "
                    f"{_last_lines(chr(10).join(self.tail))}"
                )
            if line == DONE:
                self.served += 1
                return
            if line.startswith(FAIL):
                self.served += 1
                raise BlenderError(f"Blender failed on scene seed {seed!r}: {line[len(FAIL):].strip()}")
            self.tail.append(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


_SERVERS: dict[str, _BlenderServer] = {}


def _server(program: str, scenes_per_process: int) -> _BlenderServer:
    server = _SERVERS.get(program)
    if server is not None and (not server.alive() or server.served >= scenes_per_process):
        server.close()
        server = None
    if server is None:
        server = _SERVERS[program] = _BlenderServer(program)
    return server


@atexit.register
def close_blender_processes() -> None:
    """End this process's long-lived Blender processes (also run at exit)."""
    while _SERVERS:
        _SERVERS.popitem()[1].close()


def _run_once(program: str, spec_file: Path, timeout_s: float, seed: Any) -> None:
    cmd = _blender_command(program, str(spec_file))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise BlenderError(f"Blender took over {timeout_s:g} s for scene seed {seed!r}") from None
    if done.returncode != 0:
        raise BlenderError(f"Blender failed on scene seed {seed!r} (exit {done.returncode}): {_last_lines(done.stdout + done.stderr)}")


def render_blender(scene: dict[str, Any], config: BlenderConfig, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Render ``scene`` with Blender: (rgb uint8 [H, W, 3], mask int16 [H, W]).

    With ``config.scenes_per_process > 1`` the scene goes to this process's
    long-lived Blender (started on first use, restarted after that many scenes
    or after a failure); otherwise a Blender process is started for it alone.

    Raises:
        ConfigError: Blender or the assets are missing.
        BlenderError: Blender failed, timed out, or wrote unreadable images.
    """
    program = find_blender(config.executable)
    with tempfile.TemporaryDirectory(prefix="nesy_blender_") as tmp:
        image, mask = f"{tmp}/image.png", f"{tmp}/mask.png"
        spec = blender_spec(scene, config, seed, image=image, mask=mask)
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        if config.scenes_per_process > 1:
            _server(program, config.scenes_per_process).render(spec_file, config.timeout_s, seed)
        else:
            _run_once(program, spec_file, config.timeout_s, seed)
        if not (Path(image).is_file() and Path(mask).is_file()):
            raise BlenderError(f"Blender wrote no image for scene seed {seed!r}")
        try:
            with Image.open(image) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
            with Image.open(mask) as im:
                flat = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except OSError as exc:
            raise BlenderError(f"Blender wrote an unreadable image for scene seed {seed!r}: {exc}") from None
    return rgb, decode_mask(flat, len(scene["objects"]))


def render_clevr_scene_blender(
    seed: int | Sequence[int], config: ClevrWorldConfig, blender: BlenderConfig
) -> ClevrRender:
    """Place a scene with the pybullet world and render it with Blender.

    Returns:
        A :class:`ClevrRender` whose ``depth`` is the pybullet depth of the same
        layout (the geometry Blender draws, up to the assets' bevels).

    Raises:
        StateError: no layout kept every object visible in Blender's mask.
        BlenderError, ConfigError: as :func:`render_blender`.
    """
    world = process_world(config)
    base = _seed_tuple(seed)
    for attempt in range(config.max_layouts):
        layout_seed = seed if attempt == 0 else (*base, RESAMPLE_TAG, attempt)
        scene = world.reset(layout_seed)
        rgb, mask = render_blender(scene, blender, layout_seed)
        counts = np.bincount(mask.ravel() + 1, minlength=len(scene["objects"]) + 1)[1:]
        if counts.min() >= config.min_pixels:
            _, depth, _ = world.render()
            scene = {k: v for k, v in scene.items() if k != "light_direction"}
            scene["lamp_offsets"] = lamp_offsets(layout_seed, blender.lamp_jitter)
            return ClevrRender(scene, rgb, depth, mask)
    raise StateError(
        f"seed {seed!r}: no layout kept every object >= {config.min_pixels} visible pixels in Blender's render "
        f"in {config.max_layouts} tries"
    )
