"""Dynamic Particle Interaction Network (Li et al. 2019, arXiv 1810.01566).

Differences from PropNet, all implemented here:

* the neighbour graph is rebuilt from the current positions at every step (the
  :class:`~physics.graph.GraphBuilder` does this when ``graph.radius`` is set);
* hierarchical propagation through root nodes (Sec. 3.3) in four stages, each
  with its own weights.  ``stage_order="leaves_first"`` is the paper's order (and
  that of its reference code): leaf <-> leaf (``propagation_steps``), leaf -> root
  (1 step), root -> root (``root_steps``), root -> leaf (1 step), then decode.
  ``"hierarchy_first"`` (the config default, kept for older checkpoints) runs the
  three hierarchy stages on the encoded leaves first and the leaf steps last;
* a shape-matching head (``shape_matching=True``) that moves the particles of each
  rigid object by the single rotation and translation closest to the free
  prediction (:mod:`physics.models.shape_matching`).

``graph.free_roots`` k >= 1 also gives the particles of no object (a fluid) k roots,
one body, so that a push on part of it (a container wall) reaches all of it
within one step through root -> root -> leaf.  Without roots
(``graph.roots_per_instance = 0`` and ``graph.free_roots = 0``) the hierarchy stages are skipped
and the model reduces to PropNet on a dynamic graph: the ablation "DPI-Net
without roots".
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn
from torch_geometric.data import Data

from physics.graph.builder import NodeType, Relation
from physics.models.base import LEAF_RELATIONS, DynamicsModel, register_model
from physics.models.config import ModelConfig, WorldPreset, apply_overrides
from physics.models.layers import RelationConv

__all__ = ["DPINet"]


class DPINet(DynamicsModel):
    """Hierarchical multi-stage propagation with optional shape matching."""

    name = "dpinet"

    @classmethod
    def preset_config(cls, world: WorldPreset) -> ModelConfig:
        """PropNet's processor plus the world's roots per object; shape matching on rigid worlds;
        then the world's DPI-Net settings (``WorldPreset.dpinet``)."""
        base = super().preset_config(world)
        cfg = dataclasses.replace(base, graph=world.graph(roots=world.roots), shape_matching=world.rigid)
        return apply_overrides(cfg, dict(world.dpinet)) if world.dpinet else cfg

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        hd, ly = config.hidden, config.mlp_layers
        n_leaf = 1 if config.share_weights else config.propagation_steps
        n_root = 1 if config.share_weights else config.root_steps
        self.leaf_convs = nn.ModuleList(RelationConv(hd, ly) for _ in range(n_leaf))
        self.has_roots = config.graph.has_roots
        if self.has_roots:
            self.up = RelationConv(hd, ly)
            self.root_convs = nn.ModuleList(RelationConv(hd, ly) for _ in range(n_root))
            self.down = RelationConv(hd, ly)

    def process(self, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        h = c_node
        if self.config.stage_order == "leaves_first":
            h = self._leaf_stage(h, c_node, c_edge, g)
            return self._hierarchy_stages(h, c_node, c_edge, g) if self.has_roots else h
        if self.has_roots:
            h = self._hierarchy_stages(h, c_node, c_edge, g)
        return self._leaf_stage(h, c_node, c_edge, g)

    def _leaf_stage(self, h: Tensor, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        """``propagation_steps`` residual steps among the leaves."""
        leaves = g.node_type == NodeType.LEAF
        idx, ei = self.stage_edges(g, LEAF_RELATIONS)
        for step in range(self.config.propagation_steps):
            h = self.leaf_convs[min(step, len(self.leaf_convs) - 1)](h, c_node, c_edge[idx], ei, leaves)
        return h

    def _hierarchy_stages(self, h: Tensor, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        """Leaf -> root (1 step), root -> root (``root_steps``), root -> leaf (1 step)."""
        leaves = g.node_type == NodeType.LEAF
        roots = ~leaves
        idx, ei = self.stage_edges(g, (Relation.LEAF_ROOT,))
        h = self.up(h, c_node, c_edge[idx], ei, roots)
        idx, ei = self.stage_edges(g, (Relation.ROOT_ROOT,))
        for step in range(self.config.root_steps):
            h = self.root_convs[min(step, len(self.root_convs) - 1)](h, c_node, c_edge[idx], ei, roots)
        idx, ei = self.stage_edges(g, (Relation.ROOT_LEAF,))
        return self.down(h, c_node, c_edge[idx], ei, leaves)


register_model(DPINet, help="DPI-Net: dynamic neighbours, root nodes, shape matching (Li et al. 2019)")
