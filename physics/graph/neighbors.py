"""Radius neighbour search without torch-cluster: a torch cell grid and a cKDTree.

Both return every ordered pair ``(j, i)`` of distinct nodes in the same graph with
``|pos_i - pos_j| <= r`` as an ``edge_index`` of shape ``[2, E]`` (row 0 the sender
``j``, row 1 the receiver ``i``, PyG's ``source_to_target`` flow), sorted by
receiver then sender, so the two back ends give identical tensors.

The cell grid hashes every node into a cubic cell of side ``r``; a node's
neighbours can only lie in its own or the ``3^D - 1`` adjacent cells, so the work
is O(N * mean cell occupancy) instead of the O(N^2) of all pairs
(the standard uniform-grid method of SPH codes and of GNS's data pipeline).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from physics.errors import ConfigError, StateError

__all__ = ["radius_graph", "radius_graph_kdtree", "radius_graph_brute", "RADIUS_METHODS"]

RADIUS_METHODS = ("grid", "kdtree", "brute")


def _check(pos: Tensor, r: float, batch: Tensor | None) -> Tensor:
    if pos.ndim != 2:
        raise StateError(f"radius graph: pos must be [N, D], got shape {tuple(pos.shape)}")
    if not (r > 0 and np.isfinite(r)):
        raise ConfigError(f"radius graph: radius must be a positive number, got {r}")
    if pos.numel() and not torch.isfinite(pos).all():
        raise StateError("radius graph: pos holds NaN or inf")
    if batch is None:
        return torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
    if batch.shape != (pos.shape[0],):
        raise StateError(f"radius graph: batch must be [N={pos.shape[0]}], got {tuple(batch.shape)}")
    return batch.long()


def _finish(src: Tensor, dst: Tensor, d2: Tensor, n: int, max_neighbors: int | None) -> Tensor:
    """Sort by (receiver, sender); keep the ``max_neighbors`` nearest per receiver."""
    if max_neighbors is not None and src.numel():
        # nearest first within each receiver (ties broken by sender index)
        order = torch.argsort(src, stable=True)
        src, dst, d2 = src[order], dst[order], d2[order]
        order = torch.argsort(d2, stable=True)
        src, dst, d2 = src[order], dst[order], d2[order]
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
        counts = torch.bincount(dst, minlength=n)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(dst.numel(), device=dst.device) - starts[dst]
        keep = rank < max_neighbors
        src, dst = src[keep], dst[keep]
    key = dst * max(n, 1) + src
    order = torch.argsort(key)
    return torch.stack([src[order], dst[order]])


def radius_graph_brute(
    pos: Tensor, r: float, batch: Tensor | None = None, max_neighbors: int | None = None
) -> Tensor:
    """All-pairs reference search, O(N^2) memory; for tests and tiny graphs."""
    b = _check(pos, r, batch)
    n = pos.shape[0]
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    ok = (d2 <= r * r) & (b[:, None] == b[None, :])
    ok.fill_diagonal_(False)
    dst, src = ok.nonzero(as_tuple=True)
    return _finish(src, dst, d2[dst, src], n, max_neighbors)


def radius_graph(
    pos: Tensor, r: float, batch: Tensor | None = None, max_neighbors: int | None = None
) -> Tensor:
    """Radius graph by a hashed uniform cell grid in plain torch.

    Args:
        pos: Node positions ``[N, D]`` (any D >= 1).
        r: Interaction radius; pairs with distance ``<= r`` are connected.
        batch: Graph id of each node ``[N]``; nodes of different graphs never connect.
        max_neighbors: Keep only the nearest ``max_neighbors`` senders per receiver.

    Returns:
        ``edge_index`` ``[2, E]`` (sender, receiver), sorted by receiver then sender.

    >>> radius_graph(torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0]]), 1.0).tolist()
    [[1, 0], [0, 1]]
    """
    b = _check(pos, r, batch)
    n, d = pos.shape
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    cell = torch.floor(pos / r).long()
    cell = cell - cell.min(0).values + 1  # pad by one so every neighbour offset stays >= 0
    size = cell.max(0).values + 2
    coords = torch.cat([b[:, None], cell], dim=1)  # batch is the slowest-varying coordinate
    dims = torch.cat([b.max().view(1) + 1, size])
    strides = torch.ones_like(dims)
    for k in range(dims.numel() - 2, -1, -1):
        strides[k] = strides[k + 1] * dims[k + 1]
    if float(dims.double().prod()) >= 2**62:
        raise StateError("radius graph: positions span too many cells for int64 hashing; use method='kdtree'")
    key = (coords * strides).sum(1)
    sorted_key, order = torch.sort(key)
    srcs, dsts = [], []
    for offset in itertools.product((-1, 0, 1), repeat=d):
        shift = (torch.tensor(offset, device=pos.device) * strides[1:]).sum()
        target = key + shift
        start = torch.searchsorted(sorted_key, target, side="left")
        end = torch.searchsorted(sorted_key, target, side="right")
        counts = end - start
        total = int(counts.sum())
        if total == 0:
            continue
        recv = torch.repeat_interleave(torch.arange(n, device=pos.device), counts)
        first = torch.repeat_interleave(start, counts)
        within = torch.arange(total, device=pos.device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        send = order[first + within]
        dsts.append(recv)
        srcs.append(send)
    src, dst = torch.cat(srcs), torch.cat(dsts)
    d2 = ((pos[src] - pos[dst]) ** 2).sum(-1)
    keep = (d2 <= r * r) & (src != dst)
    return _finish(src[keep], dst[keep], d2[keep], n, max_neighbors)


def radius_graph_kdtree(
    pos: Tensor, r: float, batch: Tensor | None = None, max_neighbors: int | None = None
) -> Tensor:
    """Radius graph by ``scipy.spatial.cKDTree.query_pairs`` per graph (same output as :func:`radius_graph`)."""
    from scipy.spatial import cKDTree

    b = _check(pos, r, batch)
    n = pos.shape[0]
    p = pos.detach().cpu().double().numpy()
    bn = b.cpu().numpy()
    pairs = []
    for g in np.unique(bn):
        idx = np.flatnonzero(bn == g)
        if idx.size < 2:
            continue
        # a hair of slack: the exact <= r test below decides, in the same arithmetic as the grid
        found = cKDTree(p[idx]).query_pairs(r * (1 + 1e-6), output_type="ndarray")
        if found.size:
            pairs.append(idx[found])
    if not pairs:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    pr = torch.from_numpy(np.concatenate(pairs)).to(pos.device)
    src = torch.cat([pr[:, 0], pr[:, 1]])
    dst = torch.cat([pr[:, 1], pr[:, 0]])
    d2 = ((pos[src] - pos[dst]) ** 2).sum(-1)
    keep = d2 <= r * r
    return _finish(src[keep], dst[keep], d2[keep], n, max_neighbors)
