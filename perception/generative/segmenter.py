"""Per-pixel shape segmenter of small renders, and the objects it finds in an image.

GAN dissection (Bau et al., ICLR 2019) needs to know which pixels of a
generated image show which concept; the GAN check needs to find the objects in
a generated image before the attribute network can judge them.  Both read
generated images with :class:`ShapeSegmenter`, a small fully convolutional
network trained on renders with the renderer's exact masks
(:mod:`perception.generative.scenes`) to label each pixel background, cube,
sphere or cylinder.  :func:`object_masks` splits its foreground into connected
components, one mask per object.

Shapes (N images of H x W, H and W multiples of 4)::

    images     float [N, 3, H, W]   RGB in [0, 1]
    logits     float [N, 4, H, W]   background, then SHAPES order
    labels     int64 [N, H, W]      argmax of the logits
    masks      bool  [K, H, W]      one image's objects (object_masks)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from perception.benchmark import train_steps
from perception.generative.scenes import SHAPES, SceneRenders, random_hflip
from perception.generative.upsample import nearest2x
from physics.errors import StateError

__all__ = ["ShapeSegmenter", "train_segmenter", "segment", "segment_logits", "object_masks"]

CLASSES = 1 + len(SHAPES)  # background and each shape


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ShapeSegmenter(nn.Module):
    """A two-level U-Net: ``forward(images [N, 3, H, W]) -> logits [N, 4, H, W]``."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        c = width
        self.enc1 = nn.Sequential(_conv(3, c), _conv(c, c))
        self.enc2 = nn.Sequential(_conv(c, 2 * c, 2), _conv(2 * c, 2 * c))
        self.mid = nn.Sequential(_conv(2 * c, 4 * c, 2), _conv(4 * c, 4 * c))
        self.dec2 = _conv(4 * c + 2 * c, 2 * c)
        self.dec1 = _conv(2 * c + c, c)
        self.out = nn.Conv2d(c, CLASSES, 1)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] % 4 or images.shape[-2] % 4:
            raise StateError(f"ShapeSegmenter expects images [N, 3, H, W] with H, W multiples of 4, "
                             f"got {tuple(images.shape)}")
        e1 = self.enc1(images)
        e2 = self.enc2(e1)
        m = self.mid(e2)
        d2 = self.dec2(torch.cat([nearest2x(m), e2], 1))
        d1 = self.dec1(torch.cat([nearest2x(d2), e1], 1))
        return self.out(d1)


def train_segmenter(data: SceneRenders, *, steps: int, batch: int, lr: float, seed: int,
                    width: int = 24) -> ShapeSegmenter:
    """Train on renders and their shape maps (random horizontal flips)."""
    torch.manual_seed(seed)
    model = ShapeSegmenter(width)
    flip = torch.Generator().manual_seed(seed + 7)

    def step(idx: Tensor) -> dict[str, Tensor]:
        x, y = random_hflip(flip, data.images[idx], data.shapes[idx])
        return {"loss": F.cross_entropy(model(x), y)}

    train_steps(model, step, items=len(data), steps=steps, batch=batch, lr=lr, seed=seed, desc="shape segmenter")
    return model.eval()


@torch.no_grad()
def segment_logits(model: ShapeSegmenter, images: Tensor) -> Tensor:
    """Per-pixel logits float [N, 1 + len(SHAPES), H, W] (background first), in chunks of 128 images."""
    model.eval()
    return torch.cat([model(x) for x in images.split(128)])


@torch.no_grad()
def segment(model: ShapeSegmenter, images: Tensor) -> Tensor:
    """Per-pixel labels int64 [N, H, W]: 0 background, 1 + SHAPES index (chunked: no [N, C, H, W] logits kept)."""
    return torch.cat([segment_logits(model, x).argmax(1) for x in images.split(128)])


def object_masks(labels: Tensor, min_pixels: int = 6) -> Tensor:
    """Connected components (8-neighbour) of one label map's foreground: bool [K, H, W].

    Components smaller than ``min_pixels`` are dropped (speckle, not objects).
    """
    if labels.dim() != 2:
        raise StateError(f"object_masks expects one label map [H, W], got {tuple(labels.shape)}")
    comp, n = ndimage.label(labels.numpy() > 0, structure=np.ones((3, 3), dtype=bool))
    comp_t = torch.from_numpy(comp.astype("int64"))
    masks = [comp_t == k for k in range(1, n + 1)]
    masks = [m for m in masks if int(m.sum()) >= min_pixels]
    return torch.stack(masks) if masks else torch.zeros(0, *labels.shape, dtype=torch.bool)
