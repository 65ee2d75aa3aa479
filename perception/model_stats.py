"""Size and cost of a network: parameters and multiply-accumulate operations (FLOPs as MACs).

Benchmarks that compare a model with its ablation "of the same size" report
both figures, counted rather than estimated: :func:`count_parameters` sums the
trainable tensors, :func:`count_macs` runs one forward pass with hooks on the
layers that multiply (convolutions and linear layers) and adds up their
multiply-accumulates.  Element-wise work (activations, normalisation, a
temporal shift, a pooling) is not counted, as is usual for FLOP counts of CNNs.

>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 2))
>>> count_parameters(net), count_macs(net, torch.zeros(1, 3, 4, 4))
(482, 3712)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["count_parameters", "count_macs"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_macs(model: nn.Module, *inputs: Any) -> int:
    """Multiply-accumulates of one forward pass on ``inputs`` (convolutions and linear layers).

    The model is run in eval mode and left in the mode it was in.
    """
    total = 0

    def conv_hook(module: nn.Conv1d | nn.Conv2d | nn.Conv3d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups) * int(torch.tensor(module.kernel_size).prod())
        total += out.numel() * per_output

    def linear_hook(module: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(*inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
