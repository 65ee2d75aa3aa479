"""A ball rolling on a smooth random heightfield, seen from above: frames and true positions.

The world of Ehrhardt et al.'s intuitive-physics papers ("Unsupervised
intuitive physics from visual observations", ACCV 2018, arXiv 1805.05086;
"Taking visual motion prediction to new heightfields", CVIU 2019), made small
and fast: a square box of side 1 (metres) holds a terrain ``z = h(x, y)``, a
sum of Gaussian bumps and pits (:class:`Terrain`), and a solid ball that rolls
on it without slipping.  Treated as a point on the surface, the ball's
horizontal acceleration is ``a = -(5/7) g grad h / (1 + |grad h|^2) - c v``
(rolling sphere: ``5/7`` of the sliding value; ``c`` a small linear damping),
integrated with semi-implicit Euler in sub-steps; the box's walls reflect it
with a restitution.  Everything is a pure function of the seed (float64 on the
CPU, one ``torch.Generator``).

Frames are a top view: the terrain is drawn with a fixed colour map of its
height plus a hill-shade (so the same height always has the same colour and a
network can read slopes from pixels), and the ball as an anti-aliased red disk.

Coordinates: a position ``(x, y)`` in the box maps to pixel coordinates
``(x * S, y * S)`` on an ``S x S`` image, x along columns and y along rows,
pixel ``(i, j)``'s centre at ``(j + 0.5, i + 0.5)``.

Shapes (N videos, T frames, K bumps, S pixels)::

    Terrain.centres   float64 [N, K, 2]  in the box
    Terrain.widths    float64 [N, K]
    Terrain.heights   float64 [N, K]     signed (pits are negative)
    HeightfieldVideos.frames     float32 [N, R, 3, S, S] in [0, 1]  (R = rendered frames, the first R of T)
    HeightfieldVideos.positions  float32 [N, T, 2]  pixel coordinates
    HeightfieldVideos.velocities float32 [N, T, 2]  pixels per frame
    HeightfieldVideos.terrain    float32 [N, S, S]  h at the pixel centres (metres)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["HeightfieldConfig", "Terrain", "HeightfieldVideos", "HeightfieldWorld", "random_terrain",
           "simulate", "render", "heightfield_videos"]

GRAVITY = 9.81  # m / s^2
ROLLING = 5.0 / 7.0  # a solid sphere rolling without slipping accelerates at 5/7 of a sliding point


@dataclass(frozen=True)
class HeightfieldConfig:
    """The world's constants.

    Args:
        size: S, image side in pixels.
        bumps: K, Gaussian bumps and pits per terrain.
        max_height: Largest |height| of one bump (metres; the box's side is 1).
        widths: (min, max) standard deviation of a bump (metres).
        frame_dt: Seconds between frames.
        substeps: Integration steps per frame.
        damping: Linear damping c (1 / s): rolling resistance and air.
        restitution: Fraction of the normal speed kept at a wall.
        ball_radius: Radius of the ball (metres); the walls stop its centre one radius away.
        max_speed: Largest initial speed (m / s); the direction is uniform.
        noise: Standard deviation of the Gaussian pixel noise added to frames.
    """

    size: int = 32
    bumps: int = 6
    max_height: float = 0.08
    widths: tuple[float, float] = (0.08, 0.2)
    frame_dt: float = 0.04
    substeps: int = 4
    damping: float = 0.3
    restitution: float = 0.8
    ball_radius: float = 0.04
    max_speed: float = 0.8
    noise: float = 0.02

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.size < 8:
            raise ConfigError(f"HeightfieldConfig: size must be >= 8 pixels, got {self.size}")
        if self.bumps < 1 or self.substeps < 1:
            raise ConfigError(f"HeightfieldConfig: bumps and substeps must be >= 1, got {self.bumps}, {self.substeps}")
        if not 0 < self.widths[0] <= self.widths[1]:
            raise ConfigError(f"HeightfieldConfig: widths must be 0 < min <= max, got {self.widths}")
        if not 0 < self.ball_radius < 0.25:
            raise ConfigError(f"HeightfieldConfig: ball_radius must be in (0, 0.25), got {self.ball_radius}")
        if not 0 <= self.restitution <= 1 or self.damping < 0 or self.frame_dt <= 0:
            raise ConfigError("HeightfieldConfig: need 0 <= restitution <= 1, damping >= 0 and frame_dt > 0")


@dataclass(frozen=True)
class Terrain:
    """N heightfields, each a sum of K Gaussians ``heights * exp(-|p - centre|^2 / (2 width^2))``."""

    centres: Tensor
    widths: Tensor
    heights: Tensor

    def height(self, p: Tensor) -> Tensor:
        """h at points ``p`` [N, M, 2] -> [N, M]."""
        d2 = ((p[:, :, None, :] - self.centres[:, None]) ** 2).sum(-1)  # [N, M, K]
        return (self.heights[:, None] * torch.exp(-d2 / (2 * self.widths[:, None] ** 2))).sum(-1)

    def gradient(self, p: Tensor) -> Tensor:
        """grad h at points ``p`` [N, M, 2] -> [N, M, 2]."""
        diff = p[:, :, None, :] - self.centres[:, None]  # [N, M, K, 2]
        w2 = self.widths[:, None, :, None] ** 2
        g = self.heights[:, None, :, None] * torch.exp(-(diff**2).sum(-1, keepdim=True) / (2 * w2))
        return (-g * diff / w2).sum(2)

    def grid(self, size: int) -> Tensor:
        """h at the centres of an ``size x size`` pixel grid -> [N, size, size] (rows are y).

        Each Gaussian factorises into an x and a y profile, so the grid costs O(N K S), not O(N K S^2).
        """
        axis = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        w2 = 2 * self.widths[..., None] ** 2  # [N, K, 1]
        ex = torch.exp(-((axis - self.centres[..., 0:1]) ** 2) / w2)  # [N, K, S]
        ey = torch.exp(-((axis - self.centres[..., 1:2]) ** 2) / w2)
        return torch.einsum("nk,nky,nkx->nyx", self.heights, ey, ex)


@dataclass(frozen=True)
class HeightfieldVideos:
    """Rendered videos with their ground truth (shapes in the module docstring)."""

    frames: Tensor
    positions: Tensor
    velocities: Tensor
    terrain: Tensor


def random_terrain(n: int, config: HeightfieldConfig, generator: torch.Generator) -> Terrain:
    """``n`` random terrains: K bumps with uniform centres, widths and signed heights."""
    k = config.bumps
    centres = torch.rand(n, k, 2, generator=generator, dtype=torch.float64)
    lo, hi = config.widths
    widths = lo + (hi - lo) * torch.rand(n, k, generator=generator, dtype=torch.float64)
    heights = config.max_height * (2 * torch.rand(n, k, generator=generator, dtype=torch.float64) - 1)
    return Terrain(centres, widths, heights)


def simulate(terrain: Terrain, position: Tensor, velocity: Tensor, frames: int,
             config: HeightfieldConfig) -> tuple[Tensor, Tensor]:
    """Roll N balls for ``frames`` frames from ``position`` / ``velocity`` [N, 2] (metres, m / s).

    Returns:
        positions, velocities: float64 [N, frames, 2], frame 0 being the initial state.
    """
    if position.shape != velocity.shape or position.dim() != 2 or position.shape[1] != 2:
        raise StateError(f"simulate: position and velocity must both be [N, 2], got {tuple(position.shape)}, "
                         f"{tuple(velocity.shape)}")
    dt = config.frame_dt / config.substeps
    lo, hi = config.ball_radius, 1.0 - config.ball_radius
    p, v = position.clone().double(), velocity.clone().double()
    ps, vs = [p.clone()], [v.clone()]
    for _ in range(frames - 1):
        for _ in range(config.substeps):
            grad = terrain.gradient(p[:, None])[:, 0]
            a = -ROLLING * GRAVITY * grad / (1 + (grad**2).sum(-1, keepdim=True)) - config.damping * v
            v = v + dt * a
            p = p + dt * v
            for bound, outside in ((lo, p < lo), (hi, p > hi)):  # reflect at the walls
                p = torch.where(outside, 2 * bound - p, p)
                v = torch.where(outside, -config.restitution * v, v)
        ps.append(p.clone())
        vs.append(v.clone())
    return torch.stack(ps, 1), torch.stack(vs, 1)


def render(terrain_grid: Tensor, positions: Tensor, config: HeightfieldConfig,
           generator: torch.Generator | None = None) -> Tensor:
    """Top-view frames of balls at ``positions`` [N, R, 2] (metres) over ``terrain_grid`` [N, S, S].

    Returns:
        float32 [N, R, 3, S, S] in [0, 1]; pixel noise only when a ``generator`` is given.
    """
    s = config.size
    t = (terrain_grid / config.max_height).clamp(-2, 2).float()  # height in units of the largest bump
    gy, gx = torch.gradient(t, dim=(1, 2))
    shade = (-(gx + gy) * s / 8).clamp(-0.5, 0.5)  # light from the top left
    base = torch.stack([0.35 + 0.10 * t + 0.25 * shade, 0.45 + 0.15 * t + 0.25 * shade,
                        0.55 + 0.12 * t + 0.25 * shade], 1)  # [N, 3, S, S]
    axis = torch.arange(s, dtype=torch.float32) + 0.5
    centre = positions.float() * s  # pixels
    radius = config.ball_radius * s
    dx2 = ((axis.view(1, 1, 1, s) - centre[..., 0, None, None]) / radius) ** 2  # [N, R, 1, S]
    dy2 = ((axis.view(1, 1, s, 1) - centre[..., 1, None, None]) / radius) ** 2  # [N, R, S, 1]
    d2 = dx2 + dy2  # squared distance in ball radii, [N, R, S, S]
    cover = torch.sigmoid((1 - d2) * (radius / 0.7))[:, :, None]  # anti-aliased disk, edge ~0.35 px wide
    ball = torch.tensor([0.95, 0.2, 0.15]).view(1, 1, 3, 1, 1) * (1 - 0.5 * d2.clamp(max=1))[:, :, None]
    frames = base[:, None] * (1 - cover) + ball * cover
    if generator is not None and config.noise > 0:
        frames = frames + config.noise * torch.randn(frames.shape, generator=generator)
    return frames.clamp(0, 1)


def _draw(n: int, config: HeightfieldConfig, generator: torch.Generator) -> tuple[Terrain, Tensor, Tensor]:
    """Terrains and initial states (positions [n, 2] inside the walls, velocities [n, 2] of uniform direction)."""
    terrain = random_terrain(n, config, generator)
    r = config.ball_radius
    start = r + (1 - 2 * r) * torch.rand(n, 2, generator=generator, dtype=torch.float64)
    angle = 2 * torch.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    speed = config.max_speed * torch.rand(n, generator=generator, dtype=torch.float64)
    return terrain, start, speed[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], 1)


def heightfield_videos(n: int, frames: int, seed: int, config: HeightfieldConfig = HeightfieldConfig(), *,
                       rendered: int | None = None) -> HeightfieldVideos:
    """``n`` videos of ``frames`` frames, each on its own terrain: a pure function of ``seed``.

    Args:
        n: Videos.
        frames: T, simulated frames per video.
        seed: Seeds the terrains, the initial states and the pixel noise.
        config: The world's constants.
        rendered: R, how many of the first frames to render (default all; the positions cover all T).

    Returns:
        :class:`HeightfieldVideos` (shapes in the module docstring).
    """
    rendered = frames if rendered is None else rendered
    if n < 1 or frames < 1 or not 0 <= rendered <= frames:
        raise ConfigError(f"heightfield_videos: need n >= 1, frames >= 1 and 0 <= rendered <= frames, "
                          f"got {n}, {frames}, {rendered}")
    g = torch.Generator().manual_seed(seed)
    terrain, start, velocity = _draw(n, config, g)
    pos, vel = simulate(terrain, start, velocity, frames, config)
    grid = terrain.grid(config.size)
    images = render(grid, pos[:, :rendered], config, g)
    s = config.size
    return HeightfieldVideos(images, (pos * s).float(), (vel * s * config.frame_dt).float(), grid.float())


class HeightfieldWorld:
    """One ball on one terrain, stepped a frame at a time: ``reset(seed)``, ``step()``, ``state()``, ``render()``.

    The batch functions above do the work (N = 1); a run of ``step()`` from
    ``reset(seed)`` reproduces the frames of the same seed's video exactly.
    """

    def __init__(self, config: HeightfieldConfig = HeightfieldConfig()) -> None:
        self.config = config
        self._terrain: Terrain | None = None
        self._p = self._v = torch.zeros(1, 2, dtype=torch.float64)

    def reset(self, seed: int) -> dict[str, Tensor]:
        """New terrain and initial state from ``seed`` (the same draws as ``heightfield_videos(1, T, seed)``)."""
        self._terrain, self._p, self._v = _draw(1, self.config, torch.Generator().manual_seed(seed))
        return self.state()

    def _require(self) -> Terrain:
        if self._terrain is None:
            raise StateError("HeightfieldWorld: call reset(seed) before step(), state() or render()")
        return self._terrain

    def step(self) -> dict[str, Tensor]:
        """Advance one frame; returns the new state."""
        pos, vel = simulate(self._require(), self._p, self._v, 2, self.config)
        self._p, self._v = pos[:, 1], vel[:, 1]
        return self.state()

    def state(self) -> dict[str, Tensor]:
        """``{"position": float64 [2] metres, "velocity": float64 [2] m / s}``."""
        self._require()
        return {"position": self._p[0].clone(), "velocity": self._v[0].clone()}

    def render(self) -> Tensor:
        """The current frame without pixel noise: float32 [3, S, S]."""
        grid = self._require().grid(self.config.size)
        return render(grid, self._p[:, None], self.config)[0, 0]
