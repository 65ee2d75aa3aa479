"""Contact geometry as edge features: the gap between two objects' footprints.

A learned simulator sees a relation's relative position divided by the mean distance
between objects (``rel_scale``); on CLEVRER objects that is 5.1 scene units, so two
touching objects (centres 0.7 apart) and two 1.2 apart differ by 0.1 in the input, and
the network barely sees a contact coming (without these features the video PropNet predicts
a small share of a collision's velocity change: docs/results/clevrer.md, tenth session).
With ``ModelConfig.contact`` naming a footprint registered here, every leaf edge
``s -> r`` gets three more features, computed from the positions at each step (so
they follow a multi-step training unroll and a rollout):

* ``gap``: centre distance minus the two footprints' extents along the centre line
  (negative: overlapping), clipped to ``[-CONTACT_CLIP, CONTACT_CLIP]`` and divided by it;
* ``gap_next``: the gap after one more frame at the current velocities,
  ``gap + (v_r - v_s) . n`` (``n`` the unit vector from ``s`` to ``r``), clipped the same
  way: below zero, the two touch within the next frame unless something acts;
* ``approach``: ``(v_r - v_s) . n`` in units of the velocity normaliser's std
  (negative: closing in).

A footprint function maps the last positions ``[M, D]``, the static node attributes
``[M, A]`` and a unit direction per edge to each endpoint's extent along it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from physics.errors import ConfigError
from physics.worlds.clevr_properties import SHAPES, SIZE_RADIUS

__all__ = ["CONTACT_FEATURES", "CONTACT_CLIP", "FOOTPRINTS", "check_contact", "clevrer_extent", "contact_features"]

CONTACT_FEATURES = 3  # gap, gap_next, approach
CONTACT_CLIP = 0.5  # scene units: gaps beyond this read the same (objects move < 0.25 units a frame)

# extent(pos [K, D], node_attr [K, A], direction [K, 2]) -> [K]: the footprint's reach along direction
Extent = Callable[[Tensor, Tensor, Tensor], Tensor]


def clevrer_extent(pos: Tensor, node_attr: Tensor, direction: Tensor) -> Tensor:
    """Reach of CLEVRER footprints (the video PropNet's state and attributes) along ``direction``.

    State ``(x, y, theta)``, ``theta`` the cube's yaw modulo a quarter turn; ``node_attr``
    starts with the shape one-hot in :data:`~physics.worlds.clevr_properties.SHAPES` order.
    Spheres and cylinders are discs of radius 0.35 (the one size CLEVRER uses), a cube a
    square of half-side ``0.35 / sqrt(2)`` (as :func:`physics.video_dynamics.footprint_gaps`),
    whose reach along a unit ``u`` is ``half-side * (|u . e1| + |u . e2|)``.
    """
    h = SIZE_RADIUS["small"]
    c, s = torch.cos(pos[:, 2]), torch.sin(pos[:, 2])
    along = (direction[:, 0] * c + direction[:, 1] * s).abs() + (-direction[:, 0] * s + direction[:, 1] * c).abs()
    cube = node_attr[:, SHAPES.index("cube")] > 0.5
    return torch.where(cube, (h / math.sqrt(2.0)) * along, torch.full_like(along, h))


FOOTPRINTS: dict[str, Extent] = {"clevrer": clevrer_extent}


def check_contact(name: str) -> None:
    """ConfigError unless ``name`` is empty (no contact features) or a known footprint."""
    if name and name not in FOOTPRINTS:
        raise ConfigError(f"ModelConfig.contact must be '' (none) or one of {', '.join(sorted(FOOTPRINTS))}, got {name!r}")


def contact_features(name: str, pos_hist: Tensor, node_attr: Tensor, senders: Tensor, receivers: Tensor,
                     vel_std: Tensor | float, leaf_edge: Tensor) -> Tensor:
    """``[E, CONTACT_FEATURES]`` gap, next-frame gap and approach speed of each edge (see the module).

    Args:
        name: A footprint of :data:`FOOTPRINTS`.
        pos_hist: ``[M, H+1, D]`` positions (x, y first); velocities are the last difference.
        node_attr: ``[M, A]`` static attributes (raw, not normalised).
        senders, receivers: ``[E]`` edge endpoints.
        vel_std: The velocity normaliser's std (the approach speed's unit).
        leaf_edge: ``[E]`` bool: edges between two objects (others get zeros).
    """
    x = pos_hist[:, -1]
    v = x - pos_hist[:, -2]
    off = x[receivers, :2] - x[senders, :2]
    dist = off.norm(dim=-1)
    n = off / dist.clamp(min=1e-6)[:, None]
    extent = FOOTPRINTS[name]
    gap = dist - extent(x[senders], node_attr[senders], n) - extent(x[receivers], node_attr[receivers], -n)
    approach = ((v[receivers, :2] - v[senders, :2]) * n).sum(-1)
    feats = torch.stack([
        gap.clamp(-CONTACT_CLIP, CONTACT_CLIP) / CONTACT_CLIP,
        (gap + approach).clamp(-CONTACT_CLIP, CONTACT_CLIP) / CONTACT_CLIP,
        approach / vel_std,
    ], dim=-1)
    return feats * leaf_edge.to(feats.dtype)[:, None]
