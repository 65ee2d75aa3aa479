"""Object tokens: what each segmented object looks like and how it moves, per frame, for VATT's video tower.

A grid of raw tubelets, linear or convolutional, did not let VATT's video tower see two objects of a few pixels
touch (``docs/results/audiovisual.md``, rounds 5-6): it memorised its training clips instead.  Object tokens
replace the grid by one token per object per frame, in the spirit of object-centric video transformers
(e.g. Ding et al., "Attention over learned object embeddings enables complex visual reasoning", NeurIPS 2021,
who feed MONet slots to a transformer): the instance masks group the pixels, and each token carries only what
the frames show of its object, measured from the pixels and the mask, never a label of an event.

Features of object ``o`` in frame ``t`` (``OBJECT_FEATURES`` = 11, all zero where the object is not in view)::

    0      present     1 when the mask has a pixel in the frame
    1, 2   centre      mean pixel column and row, scaled to [-1, 1]
    3      size        sqrt(mask area / frame area) * SIZE_SCALE
    4-6    colour      mean RGB of the mask's pixels, in [-0.5, 0.5]
    7, 8   velocity    centre(t) - centre(t - 1), times VELOCITY_SCALE (0 unless in view in both frames)
    9, 10  change      velocity(t) - velocity(t - 1), times VELOCITY_SCALE (0 unless both velocities exist)

With ``change="kink"`` (off by default) features 9-10 are instead the *kink* at frame
``t``: the least-squares velocity over frames ``t .. t + KINK_FRAMES`` less the one over ``t - KINK_FRAMES .. t``
(times VELOCITY_SCALE; each side needs the object in view in frame ``t`` and in one more frame of its side, else 0).
The mask's centre carries a bias that drifts as an object turns and crosses the view; a second difference of it
reads that drift as velocity changes, while two slopes fitted over a few frames each average it out
(``docs/results/vatt_kink_ladder.py``; ``docs/results/audiovisual.md``, twenty-fifth session, vatt2). It looks ahead ``KINK_FRAMES`` frames, so it needs the clip, not a stream.

The masks must keep an object's index from frame to frame (a tracker's identities, or a renderer's exact masks);
which source fed a run is the caller's to state.

Pair features: for each unordered pair ``i < j`` of slots in a frame
(``pair_slots``), computed from the two objects' features of that frame only (``PAIR_FEATURES`` = 8, all zero
unless both are in view), as an interaction network's relation inputs, so that "two objects meet and both change
velocity" is one small read of a pair token rather than something attention must assemble across tokens::

    0      both        1 when both objects are in view
    1      gap         centre distance less both radii sqrt(area / pi), in half-widths (negative: overlapping)
    2      closeness   exp(-max(gap, 0) / CLOSENESS_SCALE)
    3      closing     -(relative position . relative velocity) / distance: the speed at which they approach
    4      speed       |velocity(i) - velocity(j)|
    5, 6   change      the smaller and the larger of the two |velocity change|
    7      opposed     |change(i) - change(j)|

Ground features (off unless asked for): where each object stands on the floor,
in scene units, from the same two measurements of the mask (its centre and its size) and the camera that rendered
the frames (fixed and known: CLEVRER's camera does not move). It is a monocular cue any viewer of the frames with
the camera's calibration can compute, not the simulator's truth: objects rest on the floor (z = 0), so an object
of radius ``R`` has its centre at height ``R``, and seen at depth ``d`` its mask has a radius of about
``R * f / d`` pixels (``f`` the focal length in pixels). The ray through the mask's centre meets the plane
``z = R`` at ``d = eye_z / (k - ray_z)`` with ``k = sqrt(area / pi) / f`` (the ray scaled to unit depth), which
gives ``R = k * d`` and the centre ``eye + d * ray``. Occlusion (a mask cut by a nearer object) biases both.
``ground_features(object_features(...), camera)`` -> float [N, T, S, GROUND_FEATURES] (all zero where the object
is not in view)::

    0, 1   ground     the centre's x, y on the floor, divided by GROUND_SCALE
    2      radius     R, scene units
    3, 4   velocity   ground(t) - ground(t - 1), scene units a frame (0 unless in view in both frames)
    5, 6   change     velocity(t) - velocity(t - 1) (0 unless both velocities exist)

Depth features (off unless asked for): the same 7 ground features, measured from the
renderer's depth per mask pixel instead of the mask's size (an RGB-D camera's view: the depth channel is a sensor,
an oracle one as the instance masks are an oracle segmenter). Each object pixel is lifted to its 3-D point
``eye + depth * ray``; the radius is half the highest point's height (objects rest on the floor and the camera
looks down on their tops), the centre the points' mean pushed ``2 R / 3`` further along their mean viewing ray (a
sphere's visible points, sampled evenly over its image, lie on average ``2 R / 3`` in front of its centre).
``depth_features(masks, depth, camera, S)`` -> float [N, T, S, GROUND_FEATURES], the layout above. Its centres are
about half as far off as the mask size's, and its contact score reads the probe's label better than any reading of
the masks (docs/results/vatt_depth_ladder.py; docs/results/audiovisual.md, twenty-sixth session, vatt3).

Shapes (N clips, T frames of H x W, S object slots)::

    frames    uint8 [N, T, 3, H, W] (or float in [0, 1])
    masks     int   [N, T, H, W]     -1 background, else the object's index in 0 .. S - 1
    object_features(frames, masks, S) -> float [N, T, S, OBJECT_FEATURES]
    pair_features(object_features(...), H, W) -> float [N, T, S * (S - 1) / 2, PAIR_FEATURES]
    ground_features(object_features(...), camera) -> float [N, T, S, GROUND_FEATURES]
    depth_features(masks, depth float [N, T, H, W], camera, S) -> float [N, T, S, GROUND_FEATURES]
    ground_contact(ground_features(...)) -> float [N, T]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from physics.errors import StateError
from physics.worlds.camera import Camera

__all__ = ["CHANGES", "GROUND_FEATURES", "GROUND_SCALE", "KINK_FRAMES", "OBJECT_FEATURES", "PAIR_FEATURES",
           "SIZE_SCALE", "VELOCITY_SCALE", "depth_features", "ground_contact", "ground_features", "kink", "object_features",
           "pair_features", "pair_slots"]

OBJECT_FEATURES = 11
PAIR_FEATURES = 8
CLOSENESS_SCALE = 0.1  # half-widths: the trajectory ceiling's contact kernel (docs/results/vatt_mask_ceiling.py)
SIZE_SCALE = 4.0  # an object of about 60 of 3,072 pixels (48 x 64) gets a size near 0.6
VELOCITY_SCALE = 10.0  # a pushed object moves 0.02-0.1 of the half-width a frame; this maps it near [-1, 1]
GROUND_FEATURES = 7
GROUND_SCALE = 3.0  # scene units: the clips' objects stay within about +-3 (AudioVisualConfig.extent 2.5)
GROUND_CONTACT_SCALE = 0.3  # scene units: the exact-trajectory ceiling's contact kernel (vatt_trajectory_ceiling.py)
CHANGES = ("difference", "kink")  # how object_features measures features 9-10
KINK_FRAMES = 2  # frames each side of a kink's two slopes (0.25 s at 8 fps): vatt_kink_ladder.py's k = 2
_CLIPS_AT_ONCE = 32  # the one-hot masks of 32 clips of 16 x 48 x 64 x 4 slots take 25 MB


@torch.no_grad()
def object_features(frames: Tensor, masks: Tensor, slots: int, change: str = "difference") -> Tensor:
    """Per-frame features of each object slot (module docstring): -> float [N, T, slots, OBJECT_FEATURES].

    ``change``: how features 9-10 are measured, ``"difference"`` (velocity(t) - velocity(t - 1)) or ``"kink"``
    (the difference of two slopes fitted over ``KINK_FRAMES`` frames before and after ``t``).
    """
    if change not in CHANGES:
        raise StateError(f"object_features: change must be one of {', '.join(CHANGES)}, got {change!r}")
    if frames.dim() != 5 or frames.shape[2] != 3 or masks.dim() != 4 or masks.shape[:2] != frames.shape[:2] \
            or masks.shape[2:] != frames.shape[3:]:
        raise StateError(f"object_features: needs frames [N, T, 3, H, W] and masks [N, T, H, W] of the same N, T, "
                         f"H, W; got frames {tuple(frames.shape)}, masks {tuple(masks.shape)}")
    if slots < 1 or int(masks.max()) >= slots or int(masks.min()) < -1:
        raise StateError(f"object_features: mask values must be -1 (background) or an object index below "
                         f"slots={slots}; got values {int(masks.min())} .. {int(masks.max())}")
    return torch.cat([_features(f, m, slots, change) for f, m in
                      zip(frames.split(_CLIPS_AT_ONCE), masks.split(_CLIPS_AT_ONCE), strict=True)])


def _features(frames: Tensor, masks: Tensor, slots: int, change_kind: str = "difference") -> Tensor:
    n, t, _, h, w = frames.shape
    rgb = frames.float() / 255.0 if not frames.is_floating_point() else frames.float()
    onehot = (masks.long()[..., None] == torch.arange(slots)).float()  # [N, T, H, W, S]
    area = onehot.sum((2, 3))  # [N, T, S]
    present = area > 0
    denom = area.clamp_min(1.0)
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2 - 1
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    cx = torch.einsum("nthws,w->nts", onehot, xs) / denom
    cy = torch.einsum("nthws,h->nts", onehot, ys) / denom
    colour = torch.einsum("ntchw,nthws->ntsc", rgb, onehot) / denom[..., None] - 0.5
    centre = torch.stack([cx, cy], -1)  # [N, T, S, 2]
    moved = present[:, 1:] & present[:, :-1]
    velocity = torch.zeros_like(centre)
    velocity[:, 1:] = (centre[:, 1:] - centre[:, :-1]) * moved[..., None] * VELOCITY_SCALE
    has_velocity = torch.zeros_like(present)
    has_velocity[:, 1:] = moved
    change = torch.zeros_like(centre)
    both = has_velocity[:, 1:] & has_velocity[:, :-1]
    change[:, 1:] = (velocity[:, 1:] - velocity[:, :-1]) * both[..., None]
    if change_kind == "kink":
        change = kink(centre, present, KINK_FRAMES) * VELOCITY_SCALE
    size = (area / (h * w)).sqrt() * SIZE_SCALE
    out = torch.cat([present.float()[..., None], centre, size[..., None], colour, velocity, change], -1)
    return out * present[..., None]


def kink(centre: Tensor, present: Tensor, frames: int) -> Tensor:
    """Slope after less slope before at each frame: centres float [N, T, S, 2] of objects ``present`` bool
    [N, T, S] -> float [N, T, S, 2], the least-squares velocity (per frame) over the frames ``t .. t + frames`` in
    view less the one over ``t - frames .. t``; 0 unless the object is in view at ``t`` and in at least one other
    frame on each side."""
    n, t, s, _ = centre.shape
    w = torch.nn.functional.pad(present.float(), (0, 0, frames, frames))  # [N, T + 2k, S]
    x = torch.nn.functional.pad(centre, (0, 0, 0, 0, frames, frames))
    slopes = []
    for sign in (-1, 1):
        sums = torch.zeros(5, n, t, s, 2)  # S0, S1, S2, Sx, Stx
        for d in range(frames + 1):
            wd = w[:, frames + sign * d : frames + sign * d + t, :, None].expand(n, t, s, 2)
            xd = x[:, frames + sign * d : frames + sign * d + t]
            tau = float(sign * d)
            sums += torch.stack([wd, wd * tau, wd * tau * tau, wd * xd, wd * tau * xd])
        s0, s1, s2, sx, stx = sums
        den = s0 * s2 - s1 * s1
        ok = (s0 >= 2) & (den > 1e-9)
        slopes.append((torch.where(ok, (s0 * stx - s1 * sx) / den.clamp_min(1e-9), torch.zeros_like(den)), ok))
    (before, ok_b), (after, ok_a) = slopes
    valid = ok_b & ok_a & present[..., None]
    return (after - before) * valid


def pair_slots(slots: int) -> tuple[Tensor, Tensor]:
    """The slot indices (i, j), i < j, of every unordered pair, int64 [P] each, P = slots * (slots - 1) / 2."""
    i, j = torch.triu_indices(slots, slots, offset=1)
    return i, j


def pair_features(features: Tensor, height: int, width: int) -> Tensor:
    """Per-frame features of each pair of object slots (module docstring) from :func:`object_features`' output
    [N, T, S, OBJECT_FEATURES] of frames ``height`` x ``width`` -> float [N, T, P, PAIR_FEATURES]."""
    if features.dim() != 4 or features.shape[-1] != OBJECT_FEATURES or features.shape[2] < 2:
        raise StateError(f"pair_features: needs object features [N, T, S >= 2, {OBJECT_FEATURES}], "
                         f"got {tuple(features.shape)}")
    if height < 1 or width < 1:
        raise StateError(f"pair_features: height and width must be >= 1, got {height} x {width}")
    i, j = pair_slots(features.shape[2])
    a, b = features[:, :, i], features[:, :, j]  # [N, T, P, F]
    both = (a[..., 0] > 0.5) & (b[..., 0] > 0.5)
    # size = sqrt(area / (H W)) * SIZE_SCALE, so the radius sqrt(area / pi) in half-widths is:
    to_radius = (height * width / torch.pi) ** 0.5 / (width / 2) / SIZE_SCALE
    offset = a[..., 1:3] - b[..., 1:3]
    distance = offset.norm(dim=-1)
    gap = distance - (a[..., 3] + b[..., 3]) * to_radius
    closeness = torch.exp(-gap.clamp_min(0) / CLOSENESS_SCALE)
    relative = a[..., 7:9] - b[..., 7:9]
    closing = -(offset * relative).sum(-1) / distance.clamp_min(1e-3)
    change_a, change_b = a[..., 9:11].norm(dim=-1), b[..., 9:11].norm(dim=-1)
    opposed = (a[..., 9:11] - b[..., 9:11]).norm(dim=-1)
    out = torch.stack([both.float(), gap, closeness, closing, relative.norm(dim=-1), torch.minimum(change_a, change_b),
                       torch.maximum(change_a, change_b), opposed], -1)
    return out * both[..., None]


def ground_features(features: Tensor, camera: Camera) -> Tensor:
    """Where each object stands on the floor, from :func:`object_features`' output [N, T, S, OBJECT_FEATURES] of
    frames rendered by ``camera`` (its ``width`` x ``height`` must be the frames'; module docstring)
    -> float [N, T, S, GROUND_FEATURES]."""
    if features.dim() != 4 or features.shape[-1] != OBJECT_FEATURES:
        raise StateError(f"ground_features: needs object features [N, T, S, {OBJECT_FEATURES}], "
                         f"got {tuple(features.shape)}")
    right, up, forward = (torch.tensor(a, dtype=torch.float32) for a in camera.axes())
    eye = torch.tensor(camera.eye, dtype=torch.float32)
    tan_x, tan_y = camera.half_fov_tangents()
    present = features[..., 0] > 0.5
    # the centre feature is the pixel centre's position in [-1, 1] (v downwards), as pixel_rays_at takes it
    ray = forward + (features[..., 1:2] * tan_x) * right - (features[..., 2:3] * tan_y) * up  # [N, T, S, 3]
    focal = camera.width / 2.0 / tan_x  # pixels
    radius_px = features[..., 3] / SIZE_SCALE * (camera.height * camera.width / math.pi) ** 0.5
    k = radius_px / focal
    depth = eye[2] / (k - ray[..., 2]).clamp_min(1e-3)  # z = R = k d on the ray eye + d ray
    centre = eye + depth[..., None] * ray
    ground = centre[..., :2]
    velocity, change = _moved(ground, present)
    out = torch.cat([ground / GROUND_SCALE, (k * depth)[..., None], velocity, change], -1)
    return out * present[..., None]


def _moved(ground: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """Velocity and velocity change of floor positions [N, T, S, 2] in view (bool [N, T, S]), 0 where a frame is
    missing: ground(t) - ground(t - 1) and velocity(t) - velocity(t - 1)."""
    moved = present[:, 1:] & present[:, :-1]
    velocity = torch.zeros_like(ground)
    velocity[:, 1:] = (ground[:, 1:] - ground[:, :-1]) * moved[..., None]
    has_velocity = torch.zeros_like(present)
    has_velocity[:, 1:] = moved
    change = torch.zeros_like(ground)
    both = has_velocity[:, 1:] & has_velocity[:, :-1]
    change[:, 1:] = (velocity[:, 1:] - velocity[:, :-1]) * both[..., None]
    return velocity, change


@torch.no_grad()
def depth_features(masks: Tensor, depth: Tensor, camera: Camera, slots: int) -> Tensor:
    """Where each object stands on the floor, from the renderer's depth per pixel of its mask (module docstring)
    -> float [N, T, slots, GROUND_FEATURES], zero where the object is not in view.

    Args:
        masks: int [N, T, H, W], -1 background, else the object's slot.
        depth: float [N, T, H, W], distance along the camera's forward axis (``camera.eye + depth * ray``).
        camera: The camera that rendered them (its ``width`` x ``height`` the masks').
        slots: Object slots S.
    """
    if masks.dim() != 4 or depth.shape != masks.shape or (camera.height, camera.width) != tuple(masks.shape[-2:]):
        raise StateError(f"depth_features: needs masks and depth [N, T, H, W] of the camera's {camera.height} x "
                         f"{camera.width}, got {tuple(masks.shape)} and {tuple(depth.shape)}")
    rays = torch.from_numpy(camera.pixel_rays()).float()  # [H, W, 3], unit depth
    eye = torch.tensor(camera.eye, dtype=torch.float32)
    ground, radius, present = [], [], []
    for first in range(0, len(masks), _CLIPS_AT_ONCE):  # the lifted points of 32 clips take 28 MB at 48 x 64
        m, d = masks[first : first + _CLIPS_AT_ONCE], depth[first : first + _CLIPS_AT_ONCE]
        points = eye + d.float()[..., None] * rays  # [n, T, H, W, 3]
        one_hot = (m.long()[..., None] == torch.arange(slots)).float()  # [n, T, H, W, S]
        count = one_hot.sum((2, 3))  # [n, T, S]
        seen = count > 0
        weight = one_hot / count.clamp_min(1)[:, :, None, None]
        mean = torch.einsum("nthws,nthwc->ntsc", weight, points)
        view = torch.einsum("nthws,hwc->ntsc", weight, rays)
        top = torch.where(one_hot > 0, points[..., 2:3], torch.full_like(one_hot, -math.inf)).amax((2, 3))
        r = torch.where(seen, (top / 2).clamp_min(1e-3), torch.zeros_like(top))
        centre = mean + (2 * r / 3)[..., None] * view / view.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        ground.append(centre[..., :2] * seen[..., None])
        radius.append(r)
        present.append(seen)
    ground, radius, present = torch.cat(ground), torch.cat(radius), torch.cat(present)
    velocity, change = _moved(ground, present)
    out = torch.cat([ground / GROUND_SCALE, radius[..., None], velocity, change], -1)
    return out * present[..., None]


def ground_contact(ground: Tensor, present: Tensor) -> Tensor:
    """The exact-trajectory ceiling's contact score from :func:`ground_features` [N, T, S, GROUND_FEATURES] and
    which slots are in view, bool [N, T, S]: per frame, over pairs in view, the smaller |velocity change| times
    exp(-gap / GROUND_CONTACT_SCALE), gap = floor distance less both radii -> float [N, T]."""
    if ground.dim() != 4 or ground.shape[-1] != GROUND_FEATURES or present.shape != ground.shape[:3]:
        raise StateError(f"ground_contact: needs ground features [N, T, S, {GROUND_FEATURES}] and present [N, T, S], "
                         f"got {tuple(ground.shape)} and {tuple(present.shape)}")
    s = ground.shape[2]
    centre, radius, change = ground[..., 0:2] * GROUND_SCALE, ground[..., 2], ground[..., 5:7].norm(dim=-1)
    gap = (centre[..., :, None, :] - centre[..., None, :, :]).norm(dim=-1) - radius[..., :, None] - radius[..., None, :]
    pair = present[..., :, None] & present[..., None, :] & ~torch.eye(s, dtype=torch.bool)
    score = torch.minimum(change[..., :, None], change[..., None, :]) * torch.exp(-gap.clamp_min(0) / GROUND_CONTACT_SCALE)
    return torch.where(pair, score, torch.zeros_like(score)).flatten(-2).amax(-1)
