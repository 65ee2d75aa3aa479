"""GNS-style simulator (Sanchez-Gonzalez et al., ICML 2020, arXiv 2002.09405).

What makes it GNS here, beside the shared encode-process-decode skeleton:

* a longer velocity history (:data:`GNS_HISTORY` past velocities, GNS's C = 5)
  instead of the world's;
* random-walk input noise in training (the world preset's ``noise``, or
  :data:`GNS_NOISE` where the preset has none);
* a processor of ``propagation_steps`` interaction-network blocks with their own
  weights (``share_weights=False``) that update the edge latents as well as the
  node latents, both with residuals (GNS's "graph network" blocks);
* no hierarchy (no root nodes) and no shape matching: every particle moves on
  its own prediction, rigid ones included.

The graph is the world's dynamic radius graph, rebuilt every step.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing

from physics.graph.builder import NodeType
from physics.models.base import LEAF_RELATIONS, DynamicsModel, register_model
from physics.models.config import ModelConfig, WorldPreset
from physics.models.layers import mlp

__all__ = ["GNS", "GNSBlock", "GNS_HISTORY", "GNS_NOISE"]

GNS_HISTORY = 5  # past velocities (Sanchez-Gonzalez et al. 2020, Sec. 4)
GNS_NOISE = 3e-4  # input noise std where the world preset sets none (scene units)


class GNSBlock(MessagePassing):
    """One GNS graph-network block: edge update, sum aggregation, node update (both residual)."""

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__(aggr="add")
        self.edge_fn = mlp(3 * hidden, hidden, hidden, layers, norm=True)
        self.node_fn = mlp(2 * hidden, hidden, hidden, layers, norm=True)

    def forward(self, h: Tensor, e: Tensor, edge_index: Tensor, receivers: Tensor) -> tuple[Tensor, Tensor]:
        """Args: h ``[M, H]``; e ``[E, H]``; edge_index ``[2, E]``; receivers bool ``[M]``.
        Returns the new ``(h, e)``."""
        s, r = edge_index
        e_new = e + self.edge_fn(torch.cat([e, h[r], h[s]], dim=-1))
        agg = self.propagate(edge_index, e=e_new, size=(h.shape[0], h.shape[0]))
        h_new = h + self.node_fn(torch.cat([h, agg], dim=-1))
        return torch.where(receivers[:, None], h_new, h), e_new

    def message(self, e: Tensor) -> Tensor:
        return e


class GNS(DynamicsModel):
    """Deep unshared processor on the radius graph, long velocity history, input noise, no hierarchy."""

    name = "gns"

    @classmethod
    def preset_config(cls, world: WorldPreset) -> ModelConfig:
        """The world's radius and steps, GNS's history and noise, unshared blocks, no roots."""
        base = super().preset_config(world)
        graph = dataclasses.replace(world.graph(roots=0), history=max(GNS_HISTORY, world.history))
        return dataclasses.replace(base, graph=graph, share_weights=False, noise_std=world.noise or GNS_NOISE)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n = 1 if config.share_weights else config.propagation_steps
        self.blocks = nn.ModuleList(GNSBlock(config.hidden, config.mlp_layers) for _ in range(n))

    def process(self, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        idx, ei = self.stage_edges(g, LEAF_RELATIONS)
        leaves = g.node_type == NodeType.LEAF
        h, e = c_node, c_edge[idx]
        for step in range(self.config.propagation_steps):
            h, e = self.blocks[min(step, len(self.blocks) - 1)](h, e, ei, leaves)
        return h


register_model(GNS, help="GNS-style: 5 past velocities, input noise, unshared edge+node blocks, no hierarchy (Sanchez-Gonzalez et al. 2020)")
