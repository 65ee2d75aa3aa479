"""Propagation Network (Li et al. 2019, arXiv 1809.11169).

Objects and relations are encoded once per time step; then L propagation steps
(Eq. 3, residual object updates) let an effect cross L relations within one
time step — the instant chain propagation that Newton's cradle needs.  With
``share_weights=False`` each step has its own weights (the GNS option).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.data import Data

from physics.graph.builder import NodeType
from physics.models.base import LEAF_RELATIONS, DynamicsModel, register_model
from physics.models.config import ModelConfig
from physics.models.layers import RelationConv

__all__ = ["PropNet"]


class PropNet(DynamicsModel):
    """L residual propagation steps over fixed and neighbour relations."""

    name = "propnet"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n = 1 if config.share_weights else config.propagation_steps
        self.convs = nn.ModuleList(RelationConv(config.hidden, config.mlp_layers) for _ in range(n))

    def process(self, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        idx, ei = self.stage_edges(g, LEAF_RELATIONS)
        e = c_edge[idx]
        leaves = g.node_type == NodeType.LEAF
        h = c_node
        for step in range(self.config.propagation_steps):
            h = self.convs[min(step, len(self.convs) - 1)](h, c_node, e, ei, leaves)
        return h


register_model(PropNet, help="PropNet: L residual propagation steps (Li et al. 2019)")
