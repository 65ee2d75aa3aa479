"""CLEVRER-style collision videos as per-frame features, with their collision events as segments.

The event localisers (:mod:`~perception.events.pgcn`) read a video the way
temporal action localisers read I3D features: one feature vector per frame,
here what a per-colour frame detector reports.  The videos come from a small,
seeded 2-D world of CLEVRER's kind, simulated in torch for many videos at
once: discs of distinct colours (CLEVR's eight) rest on a table, a few are
launched towards others, and they collide elastically (equal masses); an
object that leaves the table leaves the view.  Rendering CLEVRER videos in
pybullet and running a video backbone would cost the benchmark's whole time
budget, so the features are computed from the simulated states, with noise.

Every collision is an event with a temporal extent (the frames in which the
two objects are closer than ``near``: the approach, the contact and the
separation) and a class, after CLEVRER's explanatory questions
("which collision is responsible for ..."):

* ``chained``: the collision is linked to another one by cause: one of its
  objects was set in motion from rest by the other collision, or it sets in
  motion an object that goes on to collide (so a chain A->B->C makes both
  of its collisions ``chained``);
* ``clash``: not chained, and both objects were moving before the contact;
* ``strike``: not chained, a moving object hits a resting one.

Per-frame features (``D = 2 * COLOURS + 2``), each with Gaussian noise:
``speed[c]`` of the object of colour c (scaled, 0 when absent or out of
view), ``contact[c] = exp(-gap / 0.5)`` with ``gap`` the distance from that
object's rim to the nearest other rim, the fraction of objects moving and the
fraction in view.

Per-pair features (``PAIR_DIM = 6`` for each of the :data:`PAIRS` colour pairs (a, b), a < b), what
the CLEVRER pipeline's per-object tracks give two objects, each with Gaussian noise: the pair's
``contact = exp(-gap_ab / 0.5)``, its closing speed along the line of centres (scaled), each
object's speed and whether each is in view.  Drawn after the per-frame features, so those (and the
C-TCN that reads them) are unchanged.

Shapes (N videos, T frames, D features, P = 28 colour pairs)::

    features       float [N, T, D]
    pair_features  float [N, T, P, PAIR_DIM]
    events         per video, a list of (class index, start frame, end frame), end exclusive
    event_pairs    per video, the colour pair index (into PAIRS) of each event, in the order of ``events``
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = ["COLLISION_CLASSES", "COLOURS", "PAIRS", "PAIR_DIM", "RADIUS", "CollisionVideos", "VideoConfig",
           "collision_videos", "frame_features", "frame_labels", "pair_features"]

COLLISION_CLASSES = ("strike", "clash", "chained")
COLOURS = 8  # CLEVR's gray, red, blue, green, brown, purple, cyan, yellow: one object each at most
RADIUS = 0.5  # disc radius, table units
SUBSTEPS = 4  # integration steps per frame: at the top speed an object moves 0.1 radius per substep
REST = 0.02  # speed (units per frame) below which an object counts as resting
MAX_EVENT = 32  # frames; a pair that stays close longer is cut there
PAIRS = tuple((a, b) for a in range(COLOURS) for b in range(a + 1, COLOURS))  # colour pairs, a < b
PAIR_DIM = 6  # contact, closing speed, speed of a, speed of b, a in view, b in view


@dataclass(frozen=True)
class VideoConfig:
    """What the collision videos look like.

    Args:
        frames: T.
        width, height: The table (the camera's view), in table units (a disc is 1 across).
        objects: (fewest, most) objects per video, at most :data:`COLOURS`.
        movers: (fewest, most) objects launched at the start.
        speed: (slowest, fastest) launch speed, units per frame.
        spacing: Least distance between two objects' centres at the start.
        near: Rim-to-rim distance below which two objects are in a collision event.
        noise: Standard deviation of the Gaussian noise on every feature.
    """

    frames: int = 128
    width: float = 20.0
    height: float = 14.0
    objects: tuple[int, int] = (6, 8)
    movers: tuple[int, int] = (2, 3)
    speed: tuple[float, float] = (0.12, 0.3)
    spacing: float = 2.0
    near: float = 1.0
    noise: float = 0.3

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if not (2 <= self.objects[0] <= self.objects[1] <= COLOURS):
            raise ConfigError(f"VideoConfig.objects must be 2 <= fewest <= most <= {COLOURS}, got {self.objects}")
        if not (1 <= self.movers[0] <= self.movers[1] < self.objects[0]):
            raise ConfigError(f"VideoConfig.movers must be 1 <= fewest <= most < fewest objects, got {self.movers}")
        if self.spacing < 2 * RADIUS:
            raise ConfigError(f"VideoConfig.spacing must be at least a diameter ({2 * RADIUS}), got {self.spacing}")
        if self.frames < 8 or not (0 < self.speed[0] <= self.speed[1]) or self.near <= 0 or self.noise < 0:
            raise ConfigError(f"VideoConfig needs frames >= 8, 0 < speeds, near > 0 and noise >= 0, got {self}")

    @property
    def feature_dim(self) -> int:
        return 2 * COLOURS + 2


@dataclass(frozen=True)
class CollisionVideos:
    """Videos as features with their events (module docstring for the shapes)."""

    features: Tensor
    events: tuple[tuple[tuple[int, int, int], ...], ...]
    config: VideoConfig
    pair_features: Tensor | None = None
    event_pairs: tuple[tuple[int, ...], ...] = ()

    def __len__(self) -> int:
        return self.features.shape[0]


def _layout(n_obj: int, cfg: VideoConfig, g: torch.Generator) -> Tensor:
    """Random positions [n_obj, 2] inside the table, centres at least ``cfg.spacing`` apart."""
    pos: list[Tensor] = []
    while len(pos) < n_obj:
        p = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([cfg.width - 4, cfg.height - 4]) + 2
        if all(float((p - q).norm()) > cfg.spacing for q in pos):
            pos.append(p)
    return torch.stack(pos)


def collision_videos(n: int, seed: int, config: VideoConfig = VideoConfig()) -> CollisionVideos:
    """``n`` videos and their collision events; a pure function of ``seed`` and ``config``.

    Each video: 6-8 objects of distinct colours at rest on the table; 2-3 of
    them are launched, each aimed at another object (within 0.15 rad), so
    that collisions, and chains of them, happen.
    """
    cfg = config
    g = torch.Generator().manual_seed(seed)
    k = COLOURS
    pos = torch.full((n, k, 2), -1e3, dtype=torch.float64)  # absent objects sit far away, never seen
    vel = torch.zeros(n, k, 2, dtype=torch.float64)
    present = torch.zeros(n, k, dtype=torch.bool)
    for i in range(n):
        n_obj = int(torch.randint(cfg.objects[0], cfg.objects[1] + 1, (1,), generator=g))
        colours = torch.randperm(k, generator=g)[:n_obj]
        pos[i, colours] = _layout(n_obj, cfg, g) + 0.0
        present[i, colours] = True
        n_mov = int(torch.randint(cfg.movers[0], cfg.movers[1] + 1, (1,), generator=g))
        order = colours[torch.randperm(n_obj, generator=g)]
        for m in range(n_mov):
            mover, target = int(order[m]), int(order[n_mov + int(torch.randint(n_obj - n_mov, (1,), generator=g))])
            d = pos[i, target] - pos[i, mover]
            angle = math.atan2(float(d[1]), float(d[0])) + float(torch.rand(1, generator=g) - 0.5) * 0.3
            speed = cfg.speed[0] + float(torch.rand(1, generator=g)) * (cfg.speed[1] - cfg.speed[0])
            vel[i, mover] = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64) * speed
    states, collisions = _simulate(pos, vel, present, cfg)
    colour = torch.where(present, torch.arange(k), torch.full_like(present, -1, dtype=torch.int64))
    features = frame_features(*states, colour, cfg, g)
    pairs = pair_features(*states, colour, cfg, g)  # drawn after: the per-frame features are unchanged
    labelled = [_events(states[0][i], collisions[i], cfg, with_pairs=True) for i in range(n)]
    events = tuple(tuple(e for e, _ in ev) for ev in labelled)
    event_pairs = tuple(tuple(PAIRS.index(p) for _, p in ev) for ev in labelled)
    return CollisionVideos(features, events, cfg, pairs, event_pairs)


def _simulate(pos: Tensor, vel: Tensor, present: Tensor, cfg: VideoConfig
              ) -> tuple[tuple[Tensor, Tensor, Tensor], list[list[dict]]]:
    """Integrate all videos at once; returns (positions [N, T, K, 2], velocities [N, T, K, 2],
    in view [N, T, K]) and, per video, its collisions in order: {frame, pair, moving (bool, bool)}."""
    n, k = present.shape
    active = present.clone()
    positions = torch.zeros(n, cfg.frames, k, 2, dtype=torch.float64)
    velocities = torch.zeros_like(positions)
    in_view = torch.zeros(n, cfg.frames, k, dtype=torch.bool)
    collisions: list[list[dict]] = [[] for _ in range(n)]
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    dt = 1.0 / SUBSTEPS
    for t in range(cfg.frames):
        positions[:, t], velocities[:, t], in_view[:, t] = pos, vel, active
        for _ in range(SUBSTEPS):
            pos = pos + vel * dt
            inside = (pos[..., 0] > 0) & (pos[..., 0] < cfg.width) & (pos[..., 1] > 0) & (pos[..., 1] < cfg.height)
            active = active & inside  # an object that leaves the view is gone
            for a, b in pairs:
                d = pos[:, b] - pos[:, a]
                dist = d.norm(dim=-1).clamp_min(1e-9)
                normal = d / dist[:, None]
                closing = ((vel[:, a] - vel[:, b]) * normal).sum(-1)
                hit = active[:, a] & active[:, b] & (dist < 2 * RADIUS) & (closing > 0)
                if not bool(hit.any()):
                    continue
                for i in hit.nonzero().flatten().tolist():
                    moving = (float(vel[i, a].norm()) > REST, float(vel[i, b].norm()) > REST)
                    collisions[i].append({"frame": t, "pair": (a, b), "moving": moving})
                impulse = closing[:, None] * normal * hit[:, None]  # equal masses: swap the normal components
                vel = vel.clone()
                vel[:, a] -= impulse
                vel[:, b] += impulse
    return (positions, velocities, in_view), collisions


def frame_features(positions: Tensor, velocities: Tensor, in_view: Tensor, colour: Tensor, config: VideoConfig,
                   generator: torch.Generator | None = None) -> Tensor:
    """Per-frame detector features [N, T, D] (module docstring) of objects' states.

    Args:
        positions: float [N, T, K, 2], table units.
        velocities: float [N, T, K, 2], table units per frame.
        in_view: bool [N, T, K].
        colour: int64 [N, K], each object's colour index (0..COLOURS-1), -1 for no object;
            objects sharing a colour share its slot (the larger speed, the closer contact).
        config: The speed scale and the noise.
        generator: Draws the noise; None gives the noise-free features.
    """
    n, t, k = in_view.shape
    present = colour >= 0
    in_view = in_view & present[:, None]
    speed = velocities.norm(dim=-1) * in_view / config.speed[1]  # [N, T, K]
    dist = (positions[:, :, :, None] - positions[:, :, None]).norm(dim=-1)  # [N, T, K, K]
    seen = in_view[:, :, :, None] & in_view[:, :, None, :]
    dist = dist.masked_fill(~seen | torch.eye(k, dtype=torch.bool), float("inf"))
    gap = (dist.amin(-1) - 2 * RADIUS).clamp_min(0)
    contact = torch.exp(-gap / 0.5) * in_view
    slot = colour.clamp_min(0)[:, None].expand(n, t, k)
    per_colour = []
    for value in (speed, contact):
        out = value.new_zeros(n, t, COLOURS)
        per_colour.append(out.scatter_reduce(2, slot, value * present[:, None], reduce="amax"))
    count = present.sum(1).clamp_min(1)[:, None].double()
    moving = ((velocities.norm(dim=-1) > REST) & in_view).sum(-1) / count
    visible = in_view.sum(-1) / count
    feats = torch.cat([*per_colour, moving[..., None], visible[..., None]], -1).float()
    if generator is None or config.noise == 0:
        return feats
    return feats + config.noise * torch.randn(feats.shape, generator=generator)


def pair_features(positions: Tensor, velocities: Tensor, in_view: Tensor, colour: Tensor, config: VideoConfig,
                  generator: torch.Generator | None = None) -> Tensor:
    """Per-pair features [N, T, P, PAIR_DIM] (module docstring) of objects' states, for the colour pairs :data:`PAIRS`.

    Args as :func:`frame_features` (each colour is one object at most; a pair with an absent
    colour reads zeros, plus noise).
    """
    n, t, k = in_view.shape
    present = colour >= 0
    seen = in_view & present[:, None]
    slot = torch.full((n, COLOURS), k, dtype=torch.int64)  # colour -> object column; k: no object
    rows = torch.arange(n)[:, None].expand(n, k)
    slot[rows[present], colour[present]] = torch.arange(k).expand(n, k)[present]

    def pad(x: Tensor) -> Tensor:  # one more column: "no object", never in view
        return torch.cat([x, x.new_zeros(x.shape[:2] + (1,) + x.shape[3:])], 2)

    pos, vel, view = pad(positions), pad(velocities), pad(seen)
    a_idx = torch.tensor([a for a, _ in PAIRS])
    b_idx = torch.tensor([b for _, b in PAIRS])
    ca, cb = slot[:, a_idx], slot[:, b_idx]  # [N, P] object columns of each pair

    def take(x: Tensor, cols: Tensor) -> Tensor:  # x [N, T, K+1, ...] -> [N, T, P, ...]
        index = cols[:, None].expand(n, t, cols.shape[1])
        return torch.gather(x, 2, index.view(*index.shape, *([1] * (x.dim() - 3))).expand(
            n, t, cols.shape[1], *x.shape[3:]))

    pa, pb, va, vb = take(pos, ca), take(pos, cb), take(vel, ca), take(vel, cb)
    both = take(view, ca) & take(view, cb)
    d = pb - pa
    dist = d.norm(dim=-1).clamp_min(1e-9)
    gap = (dist - 2 * RADIUS).clamp_min(0)
    contact = torch.exp(-gap / 0.5) * both
    closing = ((va - vb) * d / dist[..., None]).sum(-1) * both / config.speed[1]
    speed_a = va.norm(dim=-1) * take(view, ca) / config.speed[1]
    speed_b = vb.norm(dim=-1) * take(view, cb) / config.speed[1]
    feats = torch.stack([contact, closing, speed_a, speed_b, take(view, ca).double(), take(view, cb).double()],
                        -1).float()
    if generator is None or config.noise == 0:
        return feats
    return feats + config.noise * torch.randn(feats.shape, generator=generator)


def _events(positions: Tensor, collisions: list[dict], cfg: VideoConfig, with_pairs: bool = False) -> tuple:
    """Events (class, start, end) of one video from its positions [T, K, 2] and ordered collisions;
    ``with_pairs``: ((class, start, end), (a, b)) with the colliding pair, in the same order."""
    origin: dict[int, int] = {}  # object -> the collision that set it in motion from rest
    linked = [False] * len(collisions)
    for c, col in enumerate(collisions):
        for obj, was_moving in zip(col["pair"], col["moving"], strict=True):
            if was_moving and obj in origin:
                linked[c] = linked[origin[obj]] = True
            elif not was_moving:
                origin[obj] = c
    events = []
    for c, col in enumerate(collisions):
        a, b = col["pair"]
        gap = (positions[:, a] - positions[:, b]).norm(dim=-1) - 2 * RADIUS  # [T]
        close = (gap < cfg.near).tolist()
        t0 = t1 = col["frame"]
        close[t0] = True  # the contact happened inside this frame
        while t0 > 0 and close[t0 - 1] and col["frame"] - t0 < MAX_EVENT // 2:
            t0 -= 1
        while t1 + 1 < cfg.frames and close[t1 + 1] and t1 - col["frame"] < MAX_EVENT // 2:
            t1 += 1
        cls = 2 if linked[c] else (1 if all(col["moving"]) else 0)
        events.append(((cls, t0, t1 + 1), (a, b)))
    ordered = sorted(events, key=lambda e: (e[0][1], e[0][2], e[0][0]))
    return tuple(ordered) if with_pairs else tuple(e for e, _ in ordered)


def frame_labels(videos: CollisionVideos, *, classes: bool = True) -> Tensor:
    """Per-frame labels int64 [N, T] of the videos' events, for frame-wise localisers (``perception.events.ctcn``).

    0 is background; a frame inside an event holds its class + 1 (``classes=False``: 1 for every
    event).  Where two events overlap, the later-starting one holds the frame.
    """
    n, t = videos.features.shape[:2]
    labels = torch.zeros(n, t, dtype=torch.int64)
    for i, events in enumerate(videos.events):
        for cls, start, end in events:  # sorted by start: a later event overwrites an earlier one
            labels[i, start:end] = cls + 1 if classes else 1
    return labels
