"""Hierarchical root nodes for DPI-Net (Li et al. 2019, arXiv 1810.01566, Sec. 3.3).

Each object (nodes sharing an ``instance`` id >= 0) gets one root node, or, for a
deformable object such as the rope, ``k`` roots from k-means over its particles.
Three relation sets join the roots to the particles ("leaves"):

    leaf -> root   every particle sends to its own root          (gathers the object)
    root -> root   roots of one object, and roots whose leaves    (object-level effects,
                   touch (a fixed or neighbour edge joins them)    long range in one hop)
    root -> leaf   every root sends back to its particles         (broadcasts the result)

The assignment is computed once per trajectory (from its first frame) and kept,
so a root always stands for the same particles.
"""

from __future__ import annotations

import torch
from torch import Tensor

from physics.errors import ConfigError, StateError

__all__ = ["kmeans", "assign_roots", "hierarchy_edges"]

KMEANS_ITERS = 25  # Lloyd iterations; particle counts here are small, convergence is quick


def kmeans(x: Tensor, k: int, seed: int = 0, iters: int = KMEANS_ITERS) -> Tensor:
    """Seeded Lloyd k-means; returns the cluster of each row of ``x`` ``[N]`` (ids 0..k-1, all used).

    Initial centres are k-means++ picks from a generator seeded by ``seed``.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"kmeans: k must be in 1..{n} (number of points), got {k}")
    g = torch.Generator().manual_seed(seed)
    xc = x.detach().double().cpu()
    centres = [xc[int(torch.randint(n, (1,), generator=g))]]
    for _ in range(1, k):
        d2 = torch.cdist(xc, torch.stack(centres)).min(1).values ** 2
        prob = d2 / d2.sum() if d2.sum() > 0 else torch.full((n,), 1.0 / n, dtype=xc.dtype)
        centres.append(xc[int(torch.multinomial(prob, 1, generator=g))])
    c = torch.stack(centres)
    assign = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        assign = torch.cdist(xc, c).argmin(1)
        new = torch.zeros_like(c).index_add_(0, assign, xc)
        cnt = torch.bincount(assign, minlength=k).double()
        empty = cnt == 0
        new = new / cnt.clamp(min=1)[:, None]
        new[empty] = c[empty]
        if torch.allclose(new, c):
            break
        c = new
    # relabel so that every id 0..k-1 is used, in order of first appearance
    _, relabel = torch.unique(assign, return_inverse=True)
    return relabel.to(x.device)


def assign_roots(pos: Tensor, instance: Tensor, roots_per_instance: int | dict[int, int] = 1, seed: int = 0) -> Tensor:
    """Root id of every node ``[N]`` (-1 for nodes with ``instance == -1``).

    Args:
        pos: Node positions ``[N, D]`` at a reference frame (the trajectory's first).
        instance: Object id per node ``[N]``.
        roots_per_instance: Roots per object (k-means clusters); a dict maps
            instance id -> k for objects that differ (missing ids get 1).
        seed: k-means seed.

    Roots are numbered object by object in increasing instance id.
    """
    if pos.ndim != 2 or instance.shape != (pos.shape[0],):
        raise StateError(f"assign_roots: need pos [N, D] and instance [N], got {tuple(pos.shape)} and {tuple(instance.shape)}")
    root_of = torch.full_like(instance, -1)
    next_id = 0
    for inst in torch.unique(instance).tolist():
        if inst < 0:
            continue
        members = (instance == inst).nonzero(as_tuple=True)[0]
        k = roots_per_instance.get(inst, 1) if isinstance(roots_per_instance, dict) else roots_per_instance
        k = max(1, min(int(k), members.numel()))
        labels = kmeans(pos[members], k, seed=seed + inst) if k > 1 else torch.zeros_like(members)
        root_of[members] = labels + next_id
        next_id += int(labels.max()) + 1
    return root_of


def hierarchy_edges(
    root_of: Tensor, instance: Tensor, leaf_edges: Tensor
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Edges of the three hierarchy stages, with roots numbered after the leaves.

    Args:
        root_of: Root id per leaf ``[N]`` (-1: no root), ids ``0..R-1``.
        instance: Object id per leaf ``[N]``; roots of one object are all joined.
        leaf_edges: Leaf-leaf edges ``[2, E]``; roots whose leaves they join are joined too.

    Returns:
        ``(leaf_root [2, N'], root_root [2, E_rr], root_leaf [2, N'], R)`` where root
        ``q`` is node ``N + q`` and ``N'`` counts the leaves that have a root.
    """
    n = root_of.shape[0]
    has = root_of >= 0
    leaves = has.nonzero(as_tuple=True)[0]
    roots = root_of[leaves] + n
    num_roots = int(root_of.max()) + 1 if bool(has.any()) else 0
    leaf_root = torch.stack([leaves, roots])
    root_leaf = torch.stack([roots, leaves])
    pairs = [torch.zeros(2, 0, dtype=torch.long, device=root_of.device)]
    if num_roots:
        root_inst = torch.full((num_roots,), -1, dtype=torch.long, device=root_of.device)
        root_inst[root_of[leaves]] = instance[leaves]
        same = (root_inst[:, None] == root_inst[None, :]) & ~torch.eye(num_roots, dtype=torch.bool, device=root_of.device)
        dst, src = same.nonzero(as_tuple=True)
        pairs.append(torch.stack([src, dst]))
    if leaf_edges.numel():
        a, b = root_of[leaf_edges[0]], root_of[leaf_edges[1]]
        ok = (a >= 0) & (b >= 0) & (a != b)
        pairs.append(torch.stack([a[ok], b[ok]]))
    rr = torch.cat(pairs, 1)
    if rr.numel():
        rr = torch.unique(rr, dim=1)
    return leaf_root, rr + n, root_leaf, num_roots
