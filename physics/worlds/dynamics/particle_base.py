"""ParticleWorld: DPI-Net's particle worlds on a 2-D MLS-MPM simulator (Taichi, CPU).

The ground truth of ``fluidfall``, ``boxbath``, ``fluidshake`` and ``ricegrip`` is
Taichi's MLS-MPM (kernels in :mod:`physics.worlds.dynamics._mpm_kernels`) in the
unit square (metres), y up.  A world fills in one hook, ``_build(rng)``, which
places

* simulated particles (``_add_particles``): fluid, rigid (one object id each,
  kept rigid by shape matching every substep) or plastic;
* kinematic bodies (``_add_body``): walls, containers and grippers, each a set of
  grid boundary conditions (slip planes, sticky rectangles) that moves with the
  body, and a *shell* of marker nodes on its surface, so the learned models see
  the walls as particles (as DPI-Net's FleX scenes do).

Nodes are the simulated particles first, then the shell nodes.  ``node_attr`` is
the material one-hot ``[fluid, rigid, plastic, wall]``; ``instance`` is the rigid
object id of rigid particles (0..K-1), ``K + b`` for the shell of body ``b``, and
-1 for fluid and plastic.  The action of a shell node is its body's velocity
(m/s, held for the recorded step); other nodes get zeros.  ``velocities()``
returns the simulator's own particle velocities of the current state.

Determinism: Taichi runs on the CPU with ``NESY_TAICHI_THREADS`` threads (default
1).  With one thread the particle-to-grid scatter adds in a fixed order, so a
seed gives bit-identical trajectories in any process; with more threads the
atomic float additions race and runs differ in the last bits.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from physics.errors import ConfigError, StateError
from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig

__all__ = ["ParticleConfig", "ParticleWorld", "MATERIALS", "taichi_kernels", "disk", "block"]

MATERIALS = ("fluid", "rigid", "plastic", "wall")  # node_attr columns
FLUID, RIGID, PLASTIC, WALL = range(4)
THREADS_ENV = "NESY_TAICHI_THREADS"
MAX_PLANES, MAX_RECTS = 8, 4
_TAICHI: dict[str, Any] = {}


def taichi_kernels() -> Any:
    """The compiled-on-demand MPM kernels; initialises Taichi (CPU) on first use.

    Raises:
        ConfigError: taichi is not installed (it is the ``particles`` extra).
    """
    if "kernels" not in _TAICHI:
        threads = int(os.environ.get(THREADS_ENV, "1"))
        if threads < 1:
            raise ConfigError(f"{THREADS_ENV}={threads} is not allowed; it must be a positive thread count")
        os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")  # no network call at import
        # Taichi prints its banner on stdout; commands print JSON there, so it goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            try:
                import taichi as ti
            except ImportError:
                raise ConfigError(
                    "particle worlds need the optional extra: pip install 'nesy-physics[particles]' (taichi==1.7.4)"
                ) from None
            ti.init(arch=ti.cpu, cpu_max_num_threads=threads, default_fp=ti.f32, random_seed=0, log_level=ti.ERROR)
        from physics.worlds.dynamics import _mpm_kernels

        _TAICHI["ti"] = ti
        _TAICHI["kernels"] = _mpm_kernels
        _TAICHI["threads"] = threads
    return _TAICHI["kernels"]


def disk(centre: np.ndarray, radius: float, spacing: float) -> np.ndarray:
    """Lattice points ``[P, 2]`` of spacing ``spacing`` inside a disk."""
    k = int(np.ceil(radius / spacing))
    g = (np.arange(-k, k + 1) + 0.5) * spacing
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    return pts[(pts**2).sum(1) <= radius**2] + np.asarray(centre)


def block(lo: np.ndarray, size: np.ndarray, spacing: float) -> np.ndarray:
    """Lattice points ``[P, 2]`` of spacing ``spacing`` filling the rectangle ``lo .. lo + size``."""
    nx, ny = (np.maximum(1, np.round(np.asarray(size) / spacing))).astype(int)
    gx = lo[0] + (np.arange(nx) + 0.5) * spacing
    gy = lo[1] + (np.arange(ny) + 0.5) * spacing
    return np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)


def segment(a: np.ndarray, b: np.ndarray, spacing: float) -> np.ndarray:
    """Points ``[S, 2]`` from ``a`` to ``b`` (both ends included), at most ``spacing`` apart."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    k = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing)))
    return a + np.linspace(0.0, 1.0, k + 1)[:, None] * (b - a)


@dataclass(frozen=True)
class ParticleConfig(WorldConfig):
    """MPM settings every particle world shares (the world adds its scene's)."""

    physics_dt: float = field(default=2e-4, metadata={"help": "MPM substep (s)"})
    frame_skip: int = field(default=40, metadata={"help": "MPM substeps per recorded step"})
    steps: int = field(default=100, metadata={"help": "recorded steps per rollout"})
    bound: float = field(default=1.5, metadata={"help": "|position| above this means the state exploded (m)"})
    grid: int = field(default=64, metadata={"help": "MPM grid cells per side of the unit square"})
    fluid_bulk: float = field(default=900.0, metadata={"help": "fluid bulk modulus (Pa per unit density)"})
    plastic_youngs: float = field(default=3000.0, metadata={"help": "plastic Young's modulus (per unit density)"})
    rigid_density: float = field(default=0.6, metadata={"help": "rigid objects' density relative to the fluid"})
    shell_spacing: float = field(default=1.0, metadata={"help": "wall marker spacing, in grid cells"})
    wall_marker_offset: float = field(default=0.0, metadata={
        "help": "how far the floor and side-wall markers sit outside the walls' boundary planes, in grid cells "
                "(MPM's slip planes act on grid nodes, so resting fluid sinks up to one cell past the plane)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grid < 16:
            raise ConfigError(f"{type(self).__name__}.grid must be >= 16, got {self.grid}")
        for key in ("fluid_bulk", "plastic_youngs", "rigid_density", "shell_spacing"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{type(self).__name__}.{key} must be positive, got {getattr(self, key)}")
        if not 0 <= self.wall_marker_offset <= 2:
            raise ConfigError(f"{type(self).__name__}.wall_marker_offset must lie in [0, 2] grid cells, "
                              f"got {self.wall_marker_offset}")

    @classmethod
    def recorded_defaults(cls) -> dict[str, Any]:
        """Recordings made before ``wall_marker_offset`` existed had their markers on the planes."""
        return {**super().recorded_defaults(), "wall_marker_offset": 0.0}

    @property
    def dx(self) -> float:
        """Grid cell side (m); particles start on a lattice of dx / 2."""
        return 1.0 / self.grid


@dataclass
class _Body:
    """A kinematic body: boundary conditions in its own frame, moved by ``offset``."""

    shell: np.ndarray  # [S, 2] marker points at offset 0
    planes: np.ndarray  # [P, 3] (nx, ny, d) at offset 0
    rects: np.ndarray  # [R, 4] (x0, y0, x1, y1) at offset 0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(2))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))


class ParticleWorld(DynamicsWorld):
    """A 2-D MLS-MPM particle world (see the module docstring); subclasses build the scene."""

    name: ClassVar[str] = "particles"
    config_cls: ClassVar[type[WorldConfig]] = ParticleConfig
    config: ParticleConfig
    dim: ClassVar[int] = 2

    def __init__(self, config: ParticleConfig | None = None) -> None:  # no pybullet client
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"world {self.name!r} takes a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config
        self._cid = -1
        self._ready = False
        self.seed: int | None = None
        self.node_attr = np.zeros((0, len(MATERIALS)), np.float32)
        self.instance = np.zeros(0, np.int64)
        self.edges = np.zeros((2, 0), np.int64)
        self.edge_attr = np.zeros((0, 0), np.float32)
        self.observed = np.zeros(0, bool)
        self._rng = np.random.default_rng(0)
        self._parts: list[tuple[np.ndarray, int, int]] = []
        self._bodies: list[_Body] = []
        self._t = 0

    def close(self) -> None:
        self._ready = False

    # ------------------------------------------------------------------ scene building (for _build)
    def _add_particles(self, pts: np.ndarray, material: int, rigid: bool = False) -> int:
        """Add simulated particles; returns the rigid object id (-1 when not rigid)."""
        obj = len({o for _, _, o in self._parts if o >= 0}) if rigid else -1
        self._parts.append((np.asarray(pts, np.float64).reshape(-1, 2), material, obj))
        return obj

    def _add_body(self, shell: np.ndarray, planes=(), rects=(), offset=(0.0, 0.0)) -> int:
        """Add a kinematic body (slip planes ``(nx, ny, d)``, sticky rects ``(x0, y0, x1, y1)``); returns its index."""
        self._bodies.append(_Body(
            shell=np.asarray(shell, np.float64).reshape(-1, 2),
            planes=np.asarray(planes, np.float64).reshape(-1, 3),
            rects=np.asarray(rects, np.float64).reshape(-1, 4),
            offset=np.asarray(offset, np.float64).copy(),
        ))
        return len(self._bodies) - 1

    def _domain_walls(self, floor: bool = True, sides: tuple[float, float] | None = None, height: float = 0.6) -> None:
        """Static floor (at 3 cells) and side walls at x = ``sides`` as one body with a marker shell.

        The markers sit ``config.wall_marker_offset`` grid cells outside the planes (below the
        floor, outward of the sides): where the grid boundary stops the fluid.
        """
        dx = self.config.dx
        y0 = 3 * dx
        sp = self.config.shell_spacing * dx
        lo, hi = sides if sides is not None else (3 * dx, 1 - 3 * dx)
        off = self.config.wall_marker_offset * dx
        my, mlo, mhi = y0 - off, lo - off, hi + off
        shell = [segment((mlo, my), (mhi, my), sp)] if floor else []
        shell += [segment((mlo, my + sp), (mlo, y0 + height), sp), segment((mhi, my + sp), (mhi, y0 + height), sp)]
        planes = [(0.0, 1.0, y0), (1.0, 0.0, lo), (-1.0, 0.0, -hi)]
        self._add_body(np.concatenate(shell), planes=planes)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int) -> None:
        """Start a new episode: rebuild the scene from ``seed`` alone."""
        seed = int(seed)
        if seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        k = taichi_kernels()
        ti = _TAICHI["ti"]
        cfg = self.config
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._parts, self._bodies, self._t = [], [], 0
        self._build(self._rng)
        x = np.concatenate([p for p, _, _ in self._parts]) if self._parts else np.zeros((0, 2))
        if not len(x):
            raise StateError(f"world {self.name!r} seed {seed}: the scene has no particles; enlarge its bodies")
        mat = np.concatenate([np.full(len(p), m) for p, m, _ in self._parts]).astype(np.int32)
        obj = np.concatenate([np.full(len(p), o) for p, _, o in self._parts]).astype(np.int32)
        dx = cfg.dx
        p_vol = (dx * 0.5) ** 2
        mass = np.where(mat == RIGID, cfg.rigid_density, 1.0) * p_vol
        rest = np.zeros_like(x)
        for o in range(int(obj.max()) + 1 if len(obj) else 0):
            sel = obj == o
            rest[sel] = x[sel] - (mass[sel, None] * x[sel]).sum(0) / mass[sel].sum()
        n = len(x)
        self._n_sim = n
        self._num_rigid = int(obj.max()) + 1 if (obj >= 0).any() else 0
        self._x = ti.ndarray(ti.math.vec2, n)
        self._x.from_numpy(x.astype(np.float32))
        self._v = ti.ndarray(ti.math.vec2, n)
        self._v.from_numpy(np.zeros((n, 2), np.float32))
        self._C = ti.ndarray(ti.math.mat2, n)
        self._C.from_numpy(np.zeros((n, 2, 2), np.float32))
        self._F = ti.ndarray(ti.math.mat2, n)
        self._F.from_numpy(np.tile(np.eye(2, dtype=np.float32), (n, 1, 1)))
        self._Jp = ti.ndarray(ti.f32, n)
        self._Jp.from_numpy(np.ones(n, np.float32))
        self._mat = ti.ndarray(ti.i32, n)
        self._mat.from_numpy(mat)
        self._mass = ti.ndarray(ti.f32, n)
        self._mass.from_numpy(mass.astype(np.float32))
        self._obj = ti.ndarray(ti.i32, n)
        self._obj.from_numpy(obj)
        self._rest = ti.ndarray(ti.math.vec2, n)
        self._rest.from_numpy(rest.astype(np.float32))
        self._acc = ti.ndarray(ti.f32, (max(self._num_rigid, 1), 12))
        self._grid = ti.ndarray(ti.math.vec3, (cfg.grid, cfg.grid))
        self._planes = ti.ndarray(ti.f32, (MAX_PLANES, 4))
        self._rects = ti.ndarray(ti.f32, (MAX_RECTS, 6))
        self._upload_bodies()
        self._kernels = k

        shells = [b.shell for b in self._bodies]
        n_shell = sum(len(s) for s in shells)
        attr = np.zeros((n + n_shell, len(MATERIALS)), np.float32)
        attr[np.arange(n), mat] = 1.0
        attr[n:, WALL] = 1.0
        inst = np.concatenate([obj.astype(np.int64)] + [
            np.full(len(s), self._num_rigid + b, np.int64) for b, s in enumerate(shells)
        ])
        self.node_attr = attr
        self.instance = inst
        self.observed = np.ones(n + n_shell, bool)
        self.materials = np.concatenate([mat.astype(np.int64), np.full(n_shell, WALL, np.int64)])
        self._ready = True

    def _upload_bodies(self) -> None:
        planes = np.zeros((MAX_PLANES, 4), np.float32)
        rects = np.zeros((MAX_RECTS, 6), np.float32)
        np_, nr = 0, 0
        for b in self._bodies:
            for nx, ny, d in b.planes:
                n = np.array([nx, ny])
                planes[np_] = (nx, ny, d + n @ b.offset, n @ b.velocity)
                np_ += 1
            for x0, y0, x1, y1 in b.rects:
                ox, oy = b.offset
                rects[nr] = (x0 + ox, y0 + oy, x1 + ox, y1 + oy, *b.velocity)
                nr += 1
        if np_ > MAX_PLANES or nr > MAX_RECTS:
            raise ConfigError(f"world {self.name!r}: at most {MAX_PLANES} planes and {MAX_RECTS} rectangles")
        self._planes.from_numpy(planes)
        self._rects.from_numpy(rects)
        self._n_planes, self._n_rects = np_, nr

    def step(self, action: np.ndarray | None = None) -> None:
        """Advance one recorded step (``frame_skip`` substeps); shell rows of ``action`` set body velocities."""
        full = self._full_action(action)
        cfg = self.config
        start = self._n_sim
        moving = False
        for b in self._bodies:
            rows = full[start : start + len(b.shell)]
            b.velocity = rows.mean(0) if len(rows) else np.zeros(2)
            moving |= bool(b.velocity.any())
            start += len(b.shell)
        self._upload_bodies()
        k, dx = self._kernels, cfg.dx
        for _ in range(cfg.frame_skip):
            k.substep(
                self._x, self._v, self._C, self._F, self._Jp, self._mat, self._mass, self._grid,
                self._planes, self._n_planes, self._rects, self._n_rects,
                cfg.physics_dt, dx, (dx * 0.5) ** 2, cfg.gravity,
                cfg.fluid_bulk, *_lame(cfg.plastic_youngs, 0.2), 2.5e-2, 4.5e-3, 10.0,
            )
            if self._num_rigid:
                k.rigid_project(self._x, self._v, self._C, self._F, self._mass, self._obj, self._rest, self._acc)
            if moving:
                for b in self._bodies:
                    b.offset = b.offset + cfg.physics_dt * b.velocity
                self._upload_bodies()
        self._t += 1

    def save_state(self) -> dict[str, Any]:
        """A copy of the MPM state (particle x, v, C, F, Jp), the bodies' offsets and velocities,
        the step count and the policy's random state (pybullet's saveState has no MPM counterpart)."""
        self._require_ready()
        return {
            "fields": {k: getattr(self, k).to_numpy() for k in ("_x", "_v", "_C", "_F", "_Jp")},
            "bodies": [(b.offset.copy(), b.velocity.copy()) for b in self._bodies],
            "t": self._t,
            "rng": self._rng.bit_generator.state,
        }

    def restore_state(self, saved: dict[str, Any]) -> None:
        """Return to a :meth:`save_state` snapshot of this episode (it stays valid)."""
        self._require_ready()
        if len(saved["bodies"]) != len(self._bodies) or len(saved["fields"]["_x"]) != self._n_sim:
            raise StateError(f"world {self.name!r}: the saved state belongs to another scene")
        for k, v in saved["fields"].items():
            getattr(self, k).from_numpy(v)
        for b, (offset, velocity) in zip(self._bodies, saved["bodies"], strict=True):
            b.offset, b.velocity = offset.copy(), velocity.copy()
        self._upload_bodies()
        self._t = saved["t"]
        self._rng.bit_generator.state = saved["rng"]

    def discard_state(self, saved: dict[str, Any]) -> None:
        """Nothing to free: the snapshot is plain arrays."""

    def _positions(self) -> np.ndarray:
        x = self._x.to_numpy().astype(np.float64)
        shells = [b.shell + b.offset for b in self._bodies]
        return np.concatenate([x, *shells]) if shells else x

    def velocities(self) -> np.ndarray:
        """The simulator's node velocities ``[N, 2]`` (m/s) of the current state (shells: their body's)."""
        self._require_ready()
        v = self._v.to_numpy().astype(np.float64)
        return np.concatenate([v] + [np.tile(b.velocity, (len(b.shell), 1)) for b in self._bodies])

    def rollout(self, seed: int, steps: int | None = None):
        traj = super().rollout(seed, steps)
        traj.meta["materials"] = list(MATERIALS)
        traj.meta["simulator"] = f"taichi MLS-MPM 2-D, {_TAICHI['threads']} CPU thread(s)"
        return traj

    def render(self, width: int = 160, height: int = 120) -> np.ndarray:
        """The nodes as dots on a white square (y up), coloured by material.

        Returns:
            uint8 ``[height, width, 3]`` RGB image.
        """
        self._require_ready()
        return render_particles(self._positions(), self.materials, width, height)

    def _camera(self) -> tuple[list[float], float, float, float]:  # not used: render draws the particles
        return [0.5, 0.0, 0.5], 1.0, 0.0, 0.0

    def _engine_parameters(self) -> dict[str, Any]:
        return {}

    def _shell_range(self, body: int) -> slice:
        """Node rows of body ``body``'s shell."""
        start = self._n_sim + sum(len(b.shell) for b in self._bodies[:body])
        return slice(start, start + len(self._bodies[body].shell))


def _lame(youngs: float, nu: float) -> tuple[float, float]:
    return youngs / (2 * (1 + nu)), youngs * nu / ((1 + nu) * (1 - 2 * nu))


COLOURS = np.array([[40, 110, 220], [220, 80, 40], [200, 170, 60], [90, 90, 90]], np.uint8)


def render_particles(pos: np.ndarray, materials: np.ndarray, width: int = 160, height: int = 120,
                     box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 0.75)) -> np.ndarray:
    """A 2-D scatter of ``pos`` ``[N, 2]`` in ``box`` (x0, y0, x1, y1), coloured by material, as RGB uint8."""
    from PIL import Image, ImageDraw

    if width < 1 or height < 1:
        raise ConfigError(f"render size must be positive, got {width}x{height}")
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    scale = min(width / (x1 - x0), height / (y1 - y0))
    r = max(1.0, 0.004 * scale)
    px = (pos[:, 0] - x0) * scale
    py = height - (pos[:, 1] - y0) * scale
    for u, w, m in zip(px, py, materials, strict=True):
        draw.ellipse((u - r, w - r, u + r, w + r), fill=tuple(int(c) for c in COLOURS[int(m)]))
    return np.asarray(img, np.uint8).copy()
