"""Building blocks: MLPs and the relation/object message-passing step.

:class:`RelationConv` is one propagation step of PropNet (Li et al. 2019,
arXiv 1809.11169, Eq. 3)::

    e_ij^l = f_R(c_ij, h_i^{l-1}, h_j^{l-1})           (relation effect, j -> i)
    h_i^l  = h_i^{l-1} + f_O(c_i, sum_j e_ij^l, h_i^{l-1})   (residual object update)

where ``c_i`` / ``c_ij`` are the encoded object and relation (computed once per
time step).  The Interaction Network (Battaglia et al. 2016) is the one-step case.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

__all__ = ["mlp", "RelationConv"]


def mlp(inp: int, hidden: int, out: int, layers: int, norm: bool = False) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``; LayerNorm on the output if ``norm``."""
    mods: list[nn.Module] = []
    d = inp
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    mods.append(nn.Linear(d, out))
    if norm:
        mods.append(nn.LayerNorm(out))
    return nn.Sequential(*mods)


class RelationConv(MessagePassing):
    """One PropNet propagation step over the edges given (sum aggregation).

    Args:
        hidden: Latent width of nodes and edges.
        layers: Hidden layers of f_R and f_O.
    """

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__(aggr="add")
        self.rel = mlp(3 * hidden, hidden, hidden, layers)
        self.obj = mlp(3 * hidden, hidden, hidden, layers)

    def forward(self, h: Tensor, c: Tensor, e: Tensor, edge_index: Tensor, receivers: Tensor) -> Tensor:
        """Args: h, c ``[M, H]``; e ``[E, H]``; edge_index ``[2, E]``; receivers bool ``[M]``
        (nodes this stage updates).  Returns the new ``h`` ``[M, H]``."""
        agg = self.propagate(edge_index, h=h, e=e, size=(h.shape[0], h.shape[0]))
        new = h + self.obj(torch.cat([c, agg, h], dim=-1))
        return torch.where(receivers[:, None], new, h)

    def message(self, h_i: Tensor, h_j: Tensor, e: Tensor) -> Tensor:
        return self.rel(torch.cat([e, h_i, h_j], dim=-1))
