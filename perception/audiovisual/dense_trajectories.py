"""Dense point trajectories from frames: pyramidal Lucas-Kanade optical flow, chained into tracks, in torch.

Sound of Motions (Zhao, Gan, Ma and Torralba, ICCV 2019, arXiv 1904.05979)
feeds a separation network with *dense trajectories* (Wang et al., CVPR 2011):
points on a dense grid followed through the clip by optical flow.  The paper
takes the flow from PWC-Net; here it comes from the classical pyramidal
Lucas-Kanade estimator (Bouguet's coarse-to-fine scheme), which needs no
training and costs a few milliseconds per frame pair at 64 x 96:

* :func:`lucas_kanade`: at each pyramid level (coarsest first) the second frame
  is warped by the flow so far and the 2 x 2 structure-tensor system of the
  brightness-constancy equation, summed over a window, is solved per pixel for
  the increment (regularised where the image has no texture: flow stays 0 on
  the flat floor);
* :func:`dense_tracks`: points on a grid of ``stride`` pixels in the first frame,
  each moved frame by frame by the flow sampled (bilinearly) at its position.

Shapes (T frames of H x W, P = (H / stride) * (W / stride) points)::

    frames     float [T, 3, H, W] in [0, 1]
    flow       float [B, 2, H, W]   (dx, dy) in pixels, from frame a to frame b
    positions  float [T, P, 2]      (x, y) in pixels, pixel centres at integers

>>> import torch
>>> y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
>>> blob = lambda cx, cy: torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 18.0).view(1, 1, 32, 32)
>>> flow = lucas_kanade(blob(14, 15), blob(17, 13))  # three pixels right, two up
>>> [round(float(v), 1) for v in flow[0, :, 15, 14]]
[3.0, -2.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from physics.errors import ConfigError, StateError

__all__ = ["grayscale", "warp", "lucas_kanade", "dense_tracks", "track_displacements"]

_GRAY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights
_RIDGE = 1e-3  # added to the structure tensor's diagonal: no texture -> no flow, never a division by 0


def grayscale(frames: Tensor) -> Tensor:
    """float ``[..., 3, H, W]`` -> ``[..., 1, H, W]`` luma."""
    w = torch.tensor(_GRAY, dtype=frames.dtype).view(3, 1, 1)
    return (frames * w).sum(-3, keepdim=True)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``image`` ``[B, C, H, W]`` sampled at ``x + flow(x)`` (bilinear, borders repeated)."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences (Sobel-smoothed) in x and y, ``[B, 1, H, W]`` each."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=image.dtype) / 8.0
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.view(1, 1, 3, 3))
    gy = F.conv2d(padded, kx.t().contiguous().view(1, 1, 3, 3))
    return gx, gy


def _lk_increment(a: Tensor, b: Tensor, window: int) -> Tensor:
    """One Lucas-Kanade solve for the flow from ``a`` to ``b`` ``[B, 1, H, W]`` -> ``[B, 2, H, W]``."""
    gx, gy = _gradients(0.5 * (a + b))
    gt = b - a

    def box(x: Tensor) -> Tensor:
        return F.avg_pool2d(F.pad(x, (window // 2,) * 4, mode="replicate"), window, stride=1)

    sxx, syy, sxy = box(gx * gx) + _RIDGE, box(gy * gy) + _RIDGE, box(gx * gy)
    sxt, syt = box(gx * gt), box(gy * gt)
    det = sxx * syy - sxy * sxy
    u = (-syy * sxt + sxy * syt) / det
    v = (sxy * sxt - sxx * syt) / det
    return torch.cat([u, v], 1)


def lucas_kanade(a: Tensor, b: Tensor, window: int = 7, levels: int = 3, iterations: int = 2) -> Tensor:
    """Optical flow from images ``a`` to ``b`` (float ``[B, 1, H, W]``), pyramidal Lucas-Kanade.

    Args:
        a, b: The two frames (grayscale).
        window: Side of the square window the brightness-constancy equations are summed over (odd).
        levels: Most pyramid levels (each halves the size; motions up to about ``2 ** levels`` pixels);
            no level is built narrower than four windows.
        iterations: Warp-and-solve rounds per level.

    Returns:
        float ``[B, 2, H, W]``: ``b(x + flow(x)) ~ a(x)``, (dx, dy) in pixels.
    """
    if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 1:
        raise StateError(f"lucas_kanade needs two [B, 1, H, W] images of one shape, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    if window < 3 or window % 2 == 0 or levels < 1 or iterations < 1:
        raise ConfigError(f"lucas_kanade: window must be odd >= 3, levels and iterations >= 1; got {window}, "
                          f"{levels}, {iterations}")
    pyramid = [(a, b)]
    for _ in range(levels - 1):
        if min(pyramid[-1][0].shape[-2:]) < 4 * window:  # a coarser level would be a few windows wide
            break
        pa, pb = pyramid[-1]
        pyramid.append((F.avg_pool2d(pa, 2), F.avg_pool2d(pb, 2)))
    flow = torch.zeros(a.shape[0], 2, *pyramid[-1][0].shape[-2:], dtype=a.dtype)
    for level, (pa, pb) in enumerate(reversed(pyramid)):
        if level:
            flow = 2.0 * F.interpolate(flow, size=pa.shape[-2:], mode="bilinear", align_corners=False)
        for _ in range(iterations):
            flow = flow + _lk_increment(pa, warp(pb, flow), window)
    return flow


def dense_tracks(frames: Tensor, stride: int = 4, window: int = 7, levels: int = 3) -> Tensor:
    """Points on a ``stride``-pixel grid of the first frame, followed through ``frames`` ``[T, 3, H, W]``.

    Returns:
        float ``[T, P, 2]``: each point's (x, y) per frame, kept inside the image; row 0 is the grid
        (point p = i * (W // stride) + j starts at the centre of cell (i, j)).
    """
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise StateError(f"dense_tracks needs frames [T, 3, H, W], got {tuple(frames.shape)}")
    if stride < 1:
        raise ConfigError(f"dense_tracks: stride must be >= 1, got {stride}")
    t, _, h, w = frames.shape
    gray = grayscale(frames.float())
    flows = lucas_kanade(gray[:-1], gray[1:], window, levels) if t > 1 else gray.new_zeros(0, 2, h, w)
    ys = (torch.arange(h // stride, dtype=torch.float32) + 0.5) * stride - 0.5
    xs = (torch.arange(w // stride, dtype=torch.float32) + 0.5) * stride - 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pos = torch.stack([gx.flatten(), gy.flatten()], -1)  # [P, 2]
    out = [pos]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    for k in range(t - 1):
        grid = (pos * scale - 1.0).view(1, 1, -1, 2)
        step = F.grid_sample(flows[k:k + 1], grid, mode="bilinear", padding_mode="border", align_corners=True)
        pos = pos + step[0, :, 0].t()
        pos = torch.stack([pos[:, 0].clamp(0, w - 1), pos[:, 1].clamp(0, h - 1)], -1)
        out.append(pos)
    return torch.stack(out)


def track_displacements(positions: Tensor) -> Tensor:
    """``[..., T, P, 2]`` -> ``[..., T - 1, P, 3]``: each step's (dx, dy) and its length."""
    d = positions[..., 1:, :, :] - positions[..., :-1, :, :]
    return torch.cat([d, d.norm(dim=-1, keepdim=True)], -1)
