"""Shape matching for rigid bodies (DPI-Net, Li et al. 2019, Sec. 3.3; Müller et al. 2005).

Given the particles of each rigid object at rest (their current positions) and
their freely predicted next positions, find per object the rotation R and
translation t minimising ``sum ||R x_k + t - y_k||^2`` (Kabsch / orthogonal
Procrustes, via SVD with the reflection fix) and move every particle by it.
All in torch, so gradients flow through the head.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kabsch", "shape_match", "rigidity_error"]


def kabsch(x: Tensor, y: Tensor, group: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Best rigid motion per group.

    Args:
        x: Rest positions ``[K, D]``.
        y: Target positions ``[K, D]``.
        group: Group id of each point ``[K]`` in ``0..G-1``.
        num_groups: G.

    Returns:
        ``(R [G, D, D], t [G, D])`` with ``R x + t ~ y`` and ``det R = +1``.
    """
    d = x.shape[1]
    cnt = torch.bincount(group, minlength=num_groups).clamp(min=1).to(x.dtype)[:, None]
    cx = torch.zeros(num_groups, d, dtype=x.dtype, device=x.device).index_add_(0, group, x) / cnt
    cy = torch.zeros(num_groups, d, dtype=y.dtype, device=y.device).index_add_(0, group, y) / cnt
    xc, yc = x - cx[group], y - cy[group]
    cov = torch.zeros(num_groups, d, d, dtype=x.dtype, device=x.device)
    cov.index_add_(0, group, xc[:, :, None] * yc[:, None, :])  # sum x y^T
    u, _, vt = torch.linalg.svd(cov)
    v = vt.transpose(1, 2)
    sign = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    fix = torch.ones(num_groups, d, dtype=x.dtype, device=x.device)
    fix[:, -1] = sign
    rot = v @ torch.diag_embed(fix) @ u.transpose(1, 2)
    t = cy - (rot @ cx[:, :, None]).squeeze(-1)
    return rot, t


def shape_match(rest: Tensor, pred: Tensor, group: Tensor) -> Tensor:
    """Replace ``pred`` ``[N, D]`` of grouped points by the rigid motion of ``rest`` ``[N, D]``.

    Points with ``group < 0``, and groups of a single point, are returned unchanged.
    """
    out = pred.clone()
    sel = group >= 0
    if not bool(sel.any()):
        return out
    _, g = torch.unique(group[sel], return_inverse=True)
    num = int(g.max()) + 1
    big = torch.bincount(g, minlength=num) >= 2
    keep = big[g]
    idx = sel.nonzero(as_tuple=True)[0][keep]
    if idx.numel() == 0:
        return out
    _, g2 = torch.unique(g[keep], return_inverse=True)
    n2 = int(g2.max()) + 1
    rot, t = kabsch(rest[idx].double(), pred[idx].double(), g2, n2)
    moved = (rot[g2] @ rest[idx].double()[:, :, None]).squeeze(-1) + t[g2]
    out[idx] = moved.to(pred.dtype)
    return out


def rigidity_error(positions: Tensor, group: Tensor) -> float:
    """How far the grouped points of a rollout are from rigid motions of their first-frame shape.

    For every frame and group, the rotation and translation that best map the
    group's first-frame points onto that frame's (:func:`kabsch`) are applied, and
    the largest remaining distance of any point is taken.

    Args:
        positions: ``[T, N, D]`` points over time (computed in float64).
        group: Rigid-object id of each point ``[N]`` (-1: not rigid).

    Returns:
        The largest distance over frames, groups and points (scene units); 0.0
        when no group has two points.
    """
    sel = group >= 0
    if int(sel.sum()) < 2:
        return 0.0
    _, g = torch.unique(group[sel], return_inverse=True)
    num = int(g.max()) + 1
    pos = positions[:, sel].double()
    rest = pos[0]
    worst = 0.0
    for t in range(1, pos.shape[0]):
        rot, shift = kabsch(rest, pos[t], g, num)
        fit = (rot[g] @ rest[:, :, None]).squeeze(-1) + shift[g]
        worst = max(worst, float((fit - pos[t]).norm(dim=-1).max()))
    return worst
