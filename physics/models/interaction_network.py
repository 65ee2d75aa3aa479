"""Interaction Network (Battaglia et al. 2016, arXiv 1612.00222): the one-step baseline.

Relation model and object model applied once: an effect travels one edge per
time step, so a push at one end of a chain reaches the other end only after as
many steps as there are links — the limitation PropNet removes.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor
from torch_geometric.data import Data

from physics.graph.builder import NodeType
from physics.models.base import LEAF_RELATIONS, DynamicsModel, register_model
from physics.models.config import ModelConfig, WorldPreset
from physics.models.layers import RelationConv

__all__ = ["InteractionNetwork"]


class InteractionNetwork(DynamicsModel):
    """One relation/object step over fixed and neighbour relations."""

    name = "in"

    @classmethod
    def preset_config(cls, world: WorldPreset) -> ModelConfig:
        """One propagation step: an effect crosses one relation per time step."""
        return dataclasses.replace(super().preset_config(world), propagation_steps=1)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.conv = RelationConv(config.hidden, config.mlp_layers)

    def process(self, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        idx, ei = self.stage_edges(g, LEAF_RELATIONS)
        leaves = g.node_type == NodeType.LEAF
        return self.conv(c_node, c_node, c_edge[idx], ei, leaves)


register_model(InteractionNetwork, help="Interaction Network: one propagation step (Battaglia et al. 2016)")
