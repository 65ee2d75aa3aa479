"""Exact 2x nearest up-sampling, cheaper on the CPU than ``F.interpolate``'s kernel.

The resize generators (:class:`~perception.generative.autoencoder.ConvDecoder` with
``CodecConfig.upsample="nearest"``, after Odena, Dumoulin and Olah, "Deconvolution and
Checkerboard Artifacts", Distill 2016) and the shape segmenter's decoder
(:class:`~perception.generative.segmenter.ShapeSegmenter`) double their grid by repeating
each value in a 2 x 2 block.  :func:`nearest2x` writes that as a broadcast view
(``expand``) copied to a new contiguous tensor: the same values as
``F.interpolate(x, scale_factor=2, mode="nearest")`` bit for bit, for about half of its
CPU on the sizes these models use (one thread).  Its gradient is computed by the same
ATen kernel ``F.interpolate``'s backward calls (``upsample_nearest2d_backward``, which
adds the four output gradients of a block in a fixed order), so training follows the
same trajectory to the last bit; a plain ``expand`` backward adds them in another order.

Shapes::

    x      float [N, C, H, W]    contiguous (anything else goes through ``F.interpolate``)
    out    float [N, C, 2H, 2W]  out[..., 2i + a, 2j + b] == x[..., i, j] for a, b in {0, 1}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["nearest2x", "Nearest2x"]


class _Nearest2x(torch.autograd.Function):
    """Forward: broadcast and copy; backward: ATen's nearest up-sampling gradient (double backward too)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        n, c, h, w = x.shape
        ctx.input_size = (n, c, h, w)
        # contiguous() always copies (the size-2 dimensions have stride 0); reshape would return a view when w == 1
        return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).contiguous().view(n, c, 2 * h, 2 * w)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        n, c, h, w = ctx.input_size
        # the kernel (and scales) of F.interpolate(scale_factor=2.0)'s backward: the same sums, the same order
        return torch.ops.aten.upsample_nearest2d_backward(grad, [2 * h, 2 * w], [n, c, h, w], 2.0, 2.0)


def nearest2x(x: Tensor) -> Tensor:
    """``x`` [N, C, H, W] up-sampled to [N, C, 2H, 2W] by nearest neighbour.

    Equal bit for bit, values and gradients, to ``F.interpolate(x, scale_factor=2.0, mode="nearest")``,
    which it calls itself for anything but a contiguous 4-d tensor (a channels-last input keeps
    ``F.interpolate``'s output layout that way).

    >>> nearest2x(torch.arange(4.0).view(1, 1, 2, 2))[0, 0]
    tensor([[0., 0., 1., 1.],
            [0., 0., 1., 1.],
            [2., 2., 3., 3.],
            [2., 2., 3., 3.]])
    """
    if x.dim() != 4 or not x.is_contiguous():
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return _Nearest2x.apply(x)


class Nearest2x(nn.Upsample):
    """``nn.Upsample(scale_factor=2, mode="nearest")`` computed by :func:`nearest2x` (same outputs, less CPU).

    A subclass, so a model built with it has the same module settings and ``state_dict`` keys as one
    built with ``nn.Upsample``.
    """

    def __init__(self) -> None:
        super().__init__(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return nearest2x(x)
