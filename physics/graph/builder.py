"""State -> torch_geometric graph: fixed relations, radius neighbours, root nodes.

A :class:`GraphBuilder` turns one state of a world (a short position history,
static node features, the current action) into a :class:`torch_geometric.data.Data`
whose edges carry a relation type; :func:`collate` batches such graphs with
PyG's ``Batch`` (edge indices shift per graph).

Fields of a built graph (M = N leaves + R roots, H = history length, E edges)::

    pos_hist    float32 [M, H+1, D]  positions at t-H .. t (roots: mean of their leaves)
    node_attr   float32 [M, A]       static features (roots: zeros)
    action      float32 [M, D]       control at step t (roots: mean of their leaves)
    node_type   int64   [M]          NodeType.LEAF or NodeType.ROOT
    observed    bool    [M]          what a partially observed model may see (roots: True)
    instance    int64   [M]          object id (roots: their object's id)
    edge_index  int64   [2, E]       sender row 0, receiver row 1
    edge_type   int64   [E]          Relation value of each edge
    edge_attr   float32 [E, B]       features of fixed relations (zeros for the others)
    target_pos  float32 [M, D]       positions at t+1, when known (training)
    wall_feat   float32 [M, D+1]     with ``wall_clip`` > 0 only: each non-wall leaf's vector to
                                     the nearest wall marker and that distance, both divided by
                                     ``wall_clip``, zeros beyond it (distance 1); markers, roots: 0
    box_bounds  float32 [M, 2, D]    with ``wall_box`` > 0 only: the container the node's copy of
                                     the scene's wall markers outline, ``[lo, hi]`` (``hi`` of the
                                     last, up, axis +inf: open on top); markers, roots and scenes
                                     without markers: -inf / +inf (no wall).  The model turns it
                                     into signed distances of its (noisy) input positions.

Relation types follow PropNet/DPI-Net: fixed relations of the world (springs,
links), dynamic neighbours within a radius (contacts, recomputed every step as
in DPI-Net), and DPI-Net's leaf->root, root->root, root->leaf hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.graph.hierarchy import assign_roots, hierarchy_edges, kmeans
from physics.graph.neighbors import (
    RADIUS_METHODS,
    radius_graph,
    radius_graph_brute,
    radius_graph_kdtree,
)

__all__ = ["Relation", "NodeType", "GraphConfig", "GraphBuilder", "box_distances", "collate"]


class Relation(IntEnum):
    """Relation (edge) types; a model picks edges of one stage by type."""

    FIXED = 0
    NEIGHBOR = 1
    LEAF_ROOT = 2
    ROOT_ROOT = 3
    ROOT_LEAF = 4


class NodeType(IntEnum):
    LEAF = 0
    ROOT = 1


NUM_RELATIONS = len(Relation)


@dataclass(frozen=True)
class GraphConfig:
    """How states become graphs.

    Attributes:
        history: Past velocities fed to the model (GNS uses 5); the graph holds
            ``history + 1`` positions.
        radius: Neighbour radius in scene units; ``None`` adds no dynamic neighbours.
        max_neighbors: Nearest senders kept per receiver within the radius.
        fixed: Use the world's fixed relations (``Trajectory.edges``).
        symmetric_fixed: Add the reverse of every fixed relation that lacks one.
        roots_per_instance: 0 builds no hierarchy; k >= 1 gives each object k roots.
        free_roots: k >= 1 gives the nodes of no object (``instance == -1``: a fluid,
            a plastic block) k roots of their own, as one body (k-means clusters of the
            first frame, numbered after the objects' roots); 0 (the default): none.
        neighbor_search: ``grid`` (torch cell grid), ``kdtree`` (scipy) or ``brute``.
        wall_clip: > 0 gives each particle its distance (and vector) to the nearest wall
            marker, clipped at this distance, as node features (``wall_feat``), so a model
            sees a kinematic wall's side and distance, not only the markers inside the
            radius: GNS's boundary features (Sanchez-Gonzalez et al. 2020) built from the
            markers; 0 (the default): none.
        wall_column: The ``node_attr`` column that flags wall markers (particle worlds:
            the last, ``wall``).
        wall_box: > 0 gives each non-wall particle its *signed* distances to the walls of
            the container the markers outline (``box_bounds``; the model computes
            ``(x - lo) / wall_box`` on every axis and ``(hi - x) / wall_box`` on every axis
            but the last, clipped to [-1, 1]; negative: past that wall), so a model can
            tell the inside of a wall from its outside, which neither the edges to the
            markers nor ``wall_clip``'s vector to the nearest one can: past the right wall
            the markers lie where they lie for a particle just inside the left one.  GNS's
            clipped distance to each boundary (Sanchez-Gonzalez et al. 2020), signed.
            0 (the default): none.
    """

    history: int = field(default=1, metadata={"help": "past velocities fed to the model"})
    radius: float | None = None
    max_neighbors: int | None = None
    fixed: bool = True
    symmetric_fixed: bool = True
    roots_per_instance: int = 0
    neighbor_search: str = "grid"
    free_roots: int = 0
    wall_clip: float = 0.0
    wall_column: int = -1
    wall_box: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.history < 1:
            raise ConfigError(f"GraphConfig.history must be >= 1, got {self.history}")
        if self.radius is not None and not self.radius > 0:
            raise ConfigError(f"GraphConfig.radius must be positive or None, got {self.radius}")
        if self.neighbor_search not in RADIUS_METHODS:
            raise ConfigError(f"GraphConfig.neighbor_search must be one of {', '.join(RADIUS_METHODS)}, got {self.neighbor_search!r}")
        if self.roots_per_instance < 0:
            raise ConfigError(f"GraphConfig.roots_per_instance must be >= 0, got {self.roots_per_instance}")
        if self.free_roots < 0:
            raise ConfigError(f"GraphConfig.free_roots must be >= 0, got {self.free_roots}")
        if not self.wall_clip >= 0:
            raise ConfigError(f"GraphConfig.wall_clip must be >= 0, got {self.wall_clip}")
        if not (self.wall_box >= 0 and self.wall_box < float("inf")):
            raise ConfigError(f"GraphConfig.wall_box must be a finite number >= 0, got {self.wall_box}")

    @property
    def has_roots(self) -> bool:
        """Whether graphs get root nodes (objects' or the free nodes')."""
        return self.roots_per_instance > 0 or self.free_roots > 0


_SEARCH = {"grid": radius_graph, "kdtree": radius_graph_kdtree, "brute": radius_graph_brute}


def _symmetrize(edges: Tensor, attr: Tensor, n: int) -> tuple[Tensor, Tensor]:
    key = edges[0] * n + edges[1]
    rev = edges[1] * n + edges[0]
    missing = ~torch.isin(rev, key)
    return torch.cat([edges, edges[:, missing].flip(0)], 1), torch.cat([attr, attr[missing]], 0)


class GraphBuilder:
    """Builds one graph per state; see the module docstring for the fields.

    >>> b = GraphBuilder(GraphConfig(history=1, radius=0.5))
    >>> g = b.build(torch.zeros(2, 3, 2), torch.zeros(3, 1), edges=torch.tensor([[0], [1]]))
    >>> g.edge_type.tolist()  # one fixed link both ways, and all three pairs within the radius
    [0, 0, 1, 1, 1, 1, 1, 1]
    """

    def __init__(self, config: GraphConfig) -> None:
        self.config = config

    def roots_for(self, pos0: Tensor, instance: Tensor, seed: int = 0) -> Tensor | None:
        """Root assignment for a trajectory (from its first frame), or None without a hierarchy."""
        cfg = self.config
        if not cfg.has_roots:
            return None
        if cfg.roots_per_instance:
            root_of = assign_roots(pos0, instance, cfg.roots_per_instance, seed=seed)
        else:
            root_of = torch.full_like(instance, -1)
        free = (instance < 0).nonzero(as_tuple=True)[0]
        if cfg.free_roots and free.numel():
            k = min(cfg.free_roots, free.numel())
            labels = kmeans(pos0[free], k, seed=seed) if k > 1 else torch.zeros_like(free)
            root_of[free] = labels + int(root_of.max()) + 1
        return root_of

    def neighbor_edges(self, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """The dynamic neighbour edges ``[2, E]`` (``Relation.NEIGHBOR``) of positions ``pos`` ``[N, D]``:
        pairs within ``config.radius`` (at most ``max_neighbors`` senders per receiver), none joining
        two graphs of ``batch``; what :meth:`build` adds, and what a training unroll rebuilds each step.

        Raises:
            ConfigError: the config has no radius.
        """
        cfg = self.config
        if cfg.radius is None:
            raise ConfigError("graph builder: neighbour edges need GraphConfig.radius; it is None")
        return _SEARCH[cfg.neighbor_search](pos, cfg.radius, batch=batch, max_neighbors=cfg.max_neighbors)

    def build(
        self,
        pos_hist: Tensor,
        node_attr: Tensor,
        action: Tensor | None = None,
        edges: Tensor | None = None,
        edge_attr: Tensor | None = None,
        instance: Tensor | None = None,
        observed: Tensor | None = None,
        root_of: Tensor | None = None,
        target_pos: Tensor | None = None,
        batch: Tensor | None = None,
    ) -> Data:
        """Build the graph of one state.

        Args:
            pos_hist: Positions ``[H+1, N, D]``, oldest first (H = ``config.history``).
            node_attr: ``[N, A]``.
            action: ``[N, D]`` control at the last step (zeros when None).
            edges: Fixed relations ``[2, E]`` (sender row 0).
            edge_attr: ``[E, B]``.
            instance: ``[N]`` object ids (-1 none).
            observed: ``[N]`` bool.
            root_of: ``[N]`` from :meth:`roots_for` (needed when the config has roots).
            target_pos: ``[N, D]`` positions one step later (training only).
            batch: ``[N]`` copy id of each node when ``pos_hist`` holds several
                disjoint copies of a scene (batched planning rollouts): no
                neighbour edge joins two copies.

        Raises:
            StateError: shapes disagree or values are NaN/inf (names the field).
        """
        cfg = self.config
        if pos_hist.ndim != 3 or pos_hist.shape[0] != cfg.history + 1:
            raise StateError(
                f"graph builder: pos_hist must be [history+1={cfg.history + 1}, N, D], got {tuple(pos_hist.shape)}"
            )
        _, n, d = pos_hist.shape
        dev = pos_hist.device
        action = torch.zeros(n, d, device=dev) if action is None else action
        edges = torch.zeros(2, 0, dtype=torch.long, device=dev) if edges is None else edges.long()
        edge_attr = torch.zeros(edges.shape[1], 0, device=dev) if edge_attr is None else edge_attr
        instance = torch.full((n,), -1, dtype=torch.long, device=dev) if instance is None else instance.long()
        observed = torch.ones(n, dtype=torch.bool, device=dev) if observed is None else observed.bool()
        expect = {"node_attr": (node_attr, (n, None)), "action": (action, (n, d)), "instance": (instance, (n,)),
                  "observed": (observed, (n,)), "edges": (edges, (2, None)), "edge_attr": (edge_attr, (edges.shape[1], None))}
        if target_pos is not None:
            expect["target_pos"] = (target_pos, (n, d))
        for key, (t, shape) in expect.items():
            if t.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, t.shape, strict=True)):
                want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
                raise StateError(f"graph builder: {key} must have shape {want}, got {tuple(t.shape)}")
        for key, t in (("pos_hist", pos_hist), ("action", action), ("node_attr", node_attr), ("target_pos", target_pos)):
            if t is not None and not torch.isfinite(t).all():
                raise StateError(f"graph builder: {key} holds NaN or inf")
        if edges.numel() and (edges.min() < 0 or edges.max() >= n):
            raise StateError(f"graph builder: fixed edges index nodes outside 0..{n - 1}")

        parts, types, attrs = [], [], []
        b = edge_attr.shape[1]
        if cfg.fixed and edges.numel():
            fe, fa = _symmetrize(edges, edge_attr, n) if cfg.symmetric_fixed else (edges, edge_attr)
            parts.append(fe)
            types.append(torch.full((fe.shape[1],), Relation.FIXED, dtype=torch.long, device=dev))
            attrs.append(fa.float())
        if cfg.radius is not None:
            ne = self.neighbor_edges(pos_hist[-1], batch)
            parts.append(ne)
            types.append(torch.full((ne.shape[1],), Relation.NEIGHBOR, dtype=torch.long, device=dev))
            attrs.append(torch.zeros(ne.shape[1], b, device=dev))
        leaf_edges = torch.cat(parts, 1) if parts else torch.zeros(2, 0, dtype=torch.long, device=dev)

        pos_m, attr_m, act_m, inst_m, obs_m, tgt_m = pos_hist, node_attr.float(), action.float(), instance, observed, target_pos
        node_type = torch.zeros(n, dtype=torch.long, device=dev)
        if cfg.has_roots:
            if root_of is None:
                raise StateError("graph builder: this config builds root nodes; pass root_of from roots_for()")
            if root_of.shape != (n,):
                raise StateError(f"graph builder: root_of must have shape [{n}], got {tuple(root_of.shape)}")
            lr, rr, rl, r = hierarchy_edges(root_of, instance, leaf_edges)
            if r:
                cnt = torch.bincount(root_of[root_of >= 0], minlength=r).float()

                def mean(x: Tensor) -> Tensor:  # leaves -> roots, x: [N, ...]
                    out = torch.zeros((r,) + x.shape[1:], dtype=x.dtype, device=dev)
                    out.index_add_(0, lr[1] - n, x[lr[0]])
                    return out / cnt.view(-1, *([1] * (x.dim() - 1)))

                pos_m = torch.cat([pos_hist, mean(pos_hist.transpose(0, 1)).transpose(0, 1)], 1)
                attr_m = torch.cat([attr_m, torch.zeros(r, attr_m.shape[1], device=dev)])
                act_m = torch.cat([act_m, mean(act_m)])
                root_inst = torch.full((r,), -1, dtype=torch.long, device=dev)
                root_inst[lr[1] - n] = instance[lr[0]]
                inst_m = torch.cat([instance, root_inst])
                obs_m = torch.cat([observed, torch.ones(r, dtype=torch.bool, device=dev)])
                node_type = torch.cat([node_type, torch.ones(r, dtype=torch.long, device=dev)])
                if target_pos is not None:
                    tgt_m = torch.cat([target_pos, mean(target_pos)])
                for e, rel in ((lr, Relation.LEAF_ROOT), (rr, Relation.ROOT_ROOT), (rl, Relation.ROOT_LEAF)):
                    parts.append(e)
                    types.append(torch.full((e.shape[1],), rel, dtype=torch.long, device=dev))
                    attrs.append(torch.zeros(e.shape[1], b, device=dev))
        edge_index = torch.cat(parts, 1) if parts else torch.zeros(2, 0, dtype=torch.long, device=dev)
        data = Data(
            pos_hist=pos_m.transpose(0, 1).contiguous().float(),
            node_attr=attr_m,
            action=act_m,
            node_type=node_type,
            observed=obs_m,
            instance=inst_m,
            edge_index=edge_index,
            edge_type=torch.cat(types) if types else torch.zeros(0, dtype=torch.long, device=dev),
            edge_attr=torch.cat(attrs) if attrs else torch.zeros(0, b, device=dev),
            num_nodes=node_type.shape[0],
        )
        if tgt_m is not None:
            data.target_pos = tgt_m.float()
        if cfg.wall_clip > 0:
            data.wall_feat = self._wall_features(pos_hist[-1].float(), node_attr, batch, node_type.shape[0])
        if cfg.wall_box > 0:
            data.box_bounds = self._box_bounds(pos_hist[-1].float(), node_attr, batch, node_type.shape[0])
        return data

    def _wall_mask(self, node_attr: Tensor) -> Tensor:
        cfg = self.config
        if not -node_attr.shape[1] <= cfg.wall_column < node_attr.shape[1]:
            raise StateError(f"graph builder: wall_column {cfg.wall_column} is outside node_attr's "
                             f"{node_attr.shape[1]} columns")
        return node_attr[:, cfg.wall_column] > 0.5

    def _box_bounds(self, x: Tensor, node_attr: Tensor, batch: Tensor | None, m: int) -> Tensor:
        """``[M, 2, D]`` the container ``[lo, hi]`` of each non-wall leaf's copy of the scene (see ``box_bounds``)."""
        n, d = x.shape
        inf = float("inf")
        out = torch.empty(m, 2, d, device=x.device)
        out[:, 0], out[:, 1] = -inf, inf
        wall = self._wall_mask(node_attr)
        copies = batch if batch is not None else torch.zeros(n, dtype=torch.long, device=x.device)
        for c in torch.unique(copies[wall]).tolist():
            marks = x[wall & (copies == c)]
            rows = torch.nonzero(~wall & (copies == c)).squeeze(1)
            out[rows, 0] = marks.min(0).values
            out[rows, 1, :-1] = marks.max(0).values[:-1]
        return out

    def _wall_features(self, x: Tensor, node_attr: Tensor, batch: Tensor | None, m: int) -> Tensor:
        """``[M, D+1]`` clipped vector and distance of each non-wall leaf to its nearest wall marker."""
        cfg = self.config
        n, d = x.shape
        wall = self._wall_mask(node_attr)
        out = torch.zeros(m, d + 1, device=x.device)
        out[:n, d] = 1.0
        out[:n][wall] = 0.0
        free = ~wall
        if not wall.any() or not free.any():
            return out
        dist = torch.cdist(x[free], x[wall])
        if batch is not None:  # no wall of another copy of the scene
            dist = dist.masked_fill(batch[free][:, None] != batch[wall][None, :], float("inf"))
        near, j = dist.min(1)
        inside = near < cfg.wall_clip
        vec = (x[wall][j] - x[free]) / cfg.wall_clip
        feat = torch.cat([vec * inside[:, None], (near.clamp(max=cfg.wall_clip) / cfg.wall_clip)[:, None]], 1)
        rows = torch.nonzero(free).squeeze(1)
        out[rows] = feat
        return out


def box_distances(x: Tensor, bounds: Tensor, clip: float) -> Tensor:
    """``[M, 2D-1]`` signed distances of positions ``x`` ``[M, D]`` to the walls of ``bounds``
    ``[M, 2, D]`` (``box_bounds``): ``x - lo`` on every axis, ``hi - x`` on every axis but the
    last (open on top), divided by ``clip`` and clipped to [-1, 1]; positive inside, 1 where
    there is no wall (infinite bounds)."""
    d = x.shape[1]
    dist = torch.cat([x - bounds[:, 0], (bounds[:, 1] - x)[:, : d - 1]], 1)
    return (dist / clip).clamp(-1.0, 1.0)


def collate(graphs: list[Data]) -> Batch:
    """Batch graphs with PyG (``edge_index`` shifted per graph, ``batch`` vector added)."""
    return Batch.from_data_list(graphs)
