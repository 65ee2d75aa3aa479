"""Windows of the video PropNet turned about the vertical axis: rotation augmentation, and a turn-averaged step.

The floor of a CLEVRER video is isotropic: a scene turned by an angle ``phi`` about the vertical axis through the
origin is as likely as the scene itself, and its future is the turned future.  A learned step that is not
rotation-equivariant turns even a lone sliding object by a few degrees depending on its absolute heading
(``docs/results/clevrer.md``, thirty-second session, nsdr20).  Training on windows turned by random angles
(``nesy train video-dynamics --augment-rotate DEG``, :class:`~physics.models.training.TrainConfig`'s
``augment_rotate``) shows the network every heading of each window.

A turned window holds what the world's annotation would give for the turned scene (the state of
:mod:`physics.models.video_propnet`, ``(x, y, theta)``):

* every centre ``(x, y)`` of the history, the targets and the true last state turned about the origin (the model
  reads only differences of centres, so the pivot does not matter to it);
* every action's ``(x, y)`` (a launch is a displacement) turned the same way, its orientation entry kept;
* a cube's orientation channel (its yaw) plus ``phi``, shifted by whole turns so that the window's last history
  frame lies in ``[-pi, pi)`` (a turned cube's annotation gives its yaw in that range); spheres and cylinders keep
  their channel at zero (their yaw is invisible);
* velocities, gaps and approach speeds follow, since the model computes them from the turned positions.

:func:`turn_averaged_step` uses the same turn at rollout time (``RolloutConfig.turn_average``): one step predicted
for K copies of the scene turned by ``2 pi j / K``, each prediction turned back, the K averaged: the averaged step is
equivariant to the K turns by construction, whatever the network learned (group averaging).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from physics.errors import ConfigError
from physics.models.base import DynamicsModel
from physics.worlds.clevr_properties import SHAPES

__all__ = ["POSITION_FIELDS", "ACTION_FIELDS", "rotate_windows", "random_rotation", "turn_averaged_step"]

# node fields holding states (x, y, theta) in the last axis: centres turn, a cube's theta gains the angle
POSITION_FIELDS = ("pos_hist", "target_pos", "target_seq", "true_last")
# node fields holding actions (x, y displacement, orientation entry): (x, y) turn, the orientation entry stays
ACTION_FIELDS = ("action", "action_seq")
# graph fields that hold geometry this module does not know how to turn (particle worlds' containers)
_REFUSED = ("box_bounds", "wall_feat")


def _turn_xy(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``x`` ``[M, ..., D]`` with its first two entries turned by the per-row angle (``cos``, ``sin`` ``[M]``)."""
    shape = (-1,) + (1,) * (x.dim() - 2)
    c, s = cos.view(shape), sin.view(shape)
    xx, yy = x[..., 0], x[..., 1]
    return torch.cat([torch.stack([c * xx - s * yy, s * xx + c * yy], dim=-1), x[..., 2:]], dim=-1)


def rotate_windows(g: Data, angles: Tensor) -> Data:
    """A copy of graph (batch) ``g`` whose windows are turned about the vertical axis by ``angles`` (radians).

    Args:
        g: A video PropNet training sample or a batch of them (:mod:`physics.models.data`; ``batch`` assigns nodes
            to graphs; a lone graph is graph 0).
        angles: ``[G]`` one angle per graph of ``g``.

    Returns:
        A new graph; ``g`` and its tensors are left as they were.

    Raises:
        ConfigError: ``g`` holds container geometry (``box_bounds``, ``wall_feat``), a state without the
            orientation channel (last axis not 3), or ``angles`` of the wrong length.
    """
    held = [k for k in _REFUSED if k in g]
    if held:
        raise ConfigError(f"rotate_windows turns the video PropNet's (x, y, theta) windows; this graph also holds "
                          f"{', '.join(held)} (a particle world's container), which it cannot turn")
    if g.pos_hist.shape[-1] != 3:
        raise ConfigError(f"rotate_windows needs states (x, y, theta), got pos_hist of shape {tuple(g.pos_hist.shape)}")
    batch = g.batch if getattr(g, "batch", None) is not None else torch.zeros(g.num_nodes, dtype=torch.long)
    n_graphs = int(g.num_graphs) if hasattr(g, "num_graphs") else 1
    angles = torch.as_tensor(angles, dtype=g.pos_hist.dtype, device=g.pos_hist.device).reshape(-1)
    if angles.numel() != n_graphs:
        raise ConfigError(f"rotate_windows: {angles.numel()} angles for {n_graphs} graphs; give one per graph")
    phi = angles[batch.to(angles.device)]  # [M]
    cos, sin = torch.cos(phi), torch.sin(phi)
    cube = g.node_attr[:, SHAPES.index("cube")] > 0.5
    # whole turns that bring a cube's last history theta into [-pi, pi) once turned
    last = g.pos_hist[:, -1, 2] + phi
    shift = torch.where(cube, phi - 2.0 * math.pi * torch.floor((last + math.pi) / (2.0 * math.pi)),
                        torch.zeros_like(phi))
    out = g.clone()
    for key in POSITION_FIELDS:
        if key in g:
            x = _turn_xy(g[key], cos, sin)
            theta = x[..., 2:3] + shift.view((-1,) + (1,) * (x.dim() - 1))
            out[key] = torch.cat([x[..., :2], theta, x[..., 3:]], dim=-1)
    for key in ACTION_FIELDS:
        if key in g:
            out[key] = _turn_xy(g[key], cos, sin)
    return out


def random_rotation(g: Data, max_degrees: float, generator: torch.Generator | None = None) -> Data:
    """:func:`rotate_windows` with one angle per graph drawn uniformly in ``[-max_degrees, max_degrees]``.

    Args:
        g: A training batch (or one graph).
        max_degrees: Largest turn, in degrees (180: every heading alike).
        generator: The draws' generator (the training loop's, seeded per epoch).
    """
    n_graphs = int(g.num_graphs) if hasattr(g, "num_graphs") else 1
    u = torch.rand(n_graphs, generator=generator, device="cpu", dtype=torch.float64)
    angles = (2.0 * u - 1.0) * math.radians(max_degrees)
    return rotate_windows(g, angles.to(g.pos_hist.dtype))


def turn_averaged_step(model: DynamicsModel, g: Data, turns: int) -> Tensor:
    """The next states ``[M, 3]`` of one graph ``g``: ``model.next_positions`` averaged over ``turns`` copies of
    ``g`` turned by ``2 pi j / turns`` (``j = 0 .. turns - 1``), each prediction turned back first.

    Args:
        model: A :class:`~physics.models.base.DynamicsModel` over the video PropNet's state.
        g: One rollout graph (``pos_hist`` ``[M, H+1, 3]``, ``action``, ``node_attr``, edges).
        turns: K >= 2.

    Raises:
        ConfigError: ``turns`` below 2.
    """
    if isinstance(turns, bool) or not isinstance(turns, int) or turns < 2:
        raise ConfigError(f"turn_averaged_step needs turns >= 2, got {turns!r}")
    m = g.num_nodes
    angles = torch.arange(turns, dtype=g.pos_hist.dtype) * (2.0 * math.pi / turns)
    batch = Batch.from_data_list([g] * turns)
    turned = rotate_windows(batch, angles)
    nxt = model.next_positions(turned).reshape(turns, m, -1)
    shift = (turned.pos_hist[:, -1, 2] - batch.pos_hist[:, -1, 2]).reshape(turns, m)  # the yaw each copy gained
    back = torch.stack([_turn_xy(nxt[j], torch.full((m,), math.cos(-float(a))), torch.full((m,), math.sin(-float(a))))
                        for j, a in enumerate(angles)])
    theta = back[..., 2] - shift
    return torch.cat([back[..., :2], theta[..., None], back[..., 3:]], dim=-1).mean(0)
