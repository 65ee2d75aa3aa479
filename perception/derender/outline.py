"""Outline shape reader: a proposal mask's silhouette -> shape probabilities.

The Blender derenderer's remaining misreads are mostly cubes and cylinders swapped on
partly hidden objects (docs/results/derender.md, twenty-first and twenty-second
sessions).  A cube's and a cylinder's silhouettes differ in geometry -- straight edges
and corners against an elliptical top and rounded sides -- and a silhouette does not
depend on how the scene was lit or rendered, so a network that sees only masks can be
trained on our fast pybullet renders and read Blender ones.  :class:`OutlineNet` reads
each object's proposal mask cut around its box at ``crop_size`` (64 px by default, against
the attribute network's 48 px crop of image and mask), with a second channel holding the
other detections' masks: where the object's outline meets another object's mask it is an
occlusion boundary, not the object's own edge.  Its shape probabilities join the attribute
network's as a product of experts (:func:`fuse_shape`, after Hinton, 2002): ``p(shape) ∝
p_attr(shape) * p_outline(shape) ** weight``, with ``weight`` chosen on development data.

Shapes (K objects, crop side S)::

    crops   float [K, 2, S, S]   the object's mask and the other detections' masks, in [0, 1]
    boxes   float [K, 4]         (cx / W, cy / H, side / W, side / H) of each crop
    logits  float [K, 3]         CLEVR's shapes in vocabulary order
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.derender.attributes import crop_grid
from physics.errors import CheckpointError, ConfigError, StateError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["OutlineConfig", "OutlineNet", "outline_crops", "read_outline", "fuse_shape", "augment_outlines",
           "save_outline", "load_outline", "OUTLINE_FORMAT", "OUTLINE_CHECKPOINT"]

OUTLINE_FORMAT = "nesy-outline-v1"
OUTLINE_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "outline_blender.pt"
N_SHAPES = len(ATTRIBUTES["shape"])


@dataclass(frozen=True)
class OutlineConfig:
    """Architecture of :class:`OutlineNet`, its crop geometry and how it joins the attribute network."""

    crop_size: int = 64  # S: the silhouette's crop side (the attribute network reads 48)
    margin: float = 0.15  # crop side = (1 + 2 * margin) * the mask box's longer side
    min_side: float = 12.0  # smallest crop side in image pixels
    width: int = 16  # channels of the first conv stage
    weight: float = 1.0  # product-of-experts exponent of the outline's probabilities (0: not read)
    test_flip: bool = True  # also read each silhouette mirrored left to right and average

    def __post_init__(self) -> None:
        if isinstance(self.crop_size, bool) or not isinstance(self.crop_size, int) or self.crop_size < 16:
            raise ConfigError(f"OutlineConfig.crop_size must be an integer >= 16, got {self.crop_size!r}")
        if not math.isfinite(self.margin) or not 0.0 <= self.margin <= 1.0:
            raise ConfigError(f"OutlineConfig.margin must lie in [0, 1], got {self.margin!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ConfigError(f"OutlineConfig.width must be an integer >= 1, got {self.width!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not math.isfinite(
                self.weight) or not 0.0 <= self.weight <= 4.0:
            raise ConfigError(f"OutlineConfig.weight must be a number in [0, 4], got {self.weight!r}")


def outline_crops(masks: Tensor, config: OutlineConfig = OutlineConfig()) -> tuple[Tensor, Tensor]:
    """Silhouette crops of K masks of one image: bool or float [K, H, W] -> (crops [K, 2, S, S], boxes [K, 4]).

    Channel 0 is the object's own mask, channel 1 the union of the other K - 1 masks, both
    sampled bilinearly from the full-resolution masks over a square box around the object's
    mask (side ``(1 + 2 margin)`` times the mask box's longer side, at least ``min_side``).
    """
    if masks.dim() != 3:
        raise StateError(f"outline_crops expects masks [K, H, W], got {tuple(masks.shape)}")
    k, (h, w), s = masks.shape[0], masks.shape[1:], config.crop_size
    if k == 0:
        return torch.zeros(0, 2, s, s), torch.zeros(0, 4)
    m = masks > 0.5
    rows, cols = m.any(2), m.any(1)  # [K, H], [K, W]
    if not rows.any(1).all():
        raise StateError(f"outline_crops: mask {int((~rows.any(1)).nonzero()[0])} is empty")
    ys, xs = torch.arange(h), torch.arange(w)
    y0 = torch.where(rows, ys, h).min(1).values.float()
    y1 = torch.where(rows, ys, -1).max(1).values.float() + 1
    x0 = torch.where(cols, xs, w).min(1).values.float()
    x1 = torch.where(cols, xs, -1).max(1).values.float() + 1
    side = (torch.maximum(y1 - y0, x1 - x0) * (1 + 2 * config.margin)).clamp(min=config.min_side)
    boxes = torch.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, side / w, side / h], 1)
    own = m.float()
    others = (own.sum(0, keepdim=True) - own).clamp(max=1.0)
    grid = crop_grid(boxes, s)
    crops = F.grid_sample(torch.stack([own, others], 1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    return crops, boxes


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class OutlineNet(nn.Module):
    """Small CNN on a silhouette crop, with the crop box appended before the head.

    ``forward(crops [K, 2, S, S], boxes [K, 4]) -> logits [K, 3]`` (CLEVR's shapes).
    """

    def __init__(self, config: OutlineConfig = OutlineConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.features = nn.Sequential(_block(2, c), _block(c, 2 * c), _block(2 * c, 4 * c), _block(4 * c, 4 * c))
        side = -(-config.crop_size // 16)
        self.head = nn.Sequential(nn.Linear(4 * c * side * side + 4, 128), nn.ReLU(inplace=True),
                                  nn.Linear(128, N_SHAPES))

    def forward(self, crops: Tensor, boxes: Tensor) -> Tensor:
        if crops.dim() != 4 or crops.shape[1] != 2:
            raise StateError(f"OutlineNet expects crops [K, 2, S, S], got {tuple(crops.shape)}")
        f = self.features(crops).flatten(1)
        return self.head(torch.cat([f, boxes * 4.0], 1))  # boxes rescaled to the features' range, as AttributeNet's


def _mirror(crops: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    boxes = boxes.clone()
    boxes[:, 0] = 1.0 - boxes[:, 0]
    return crops.flip(-1), boxes


@torch.no_grad()
def read_outline(net: OutlineNet, masks: Tensor) -> Tensor:
    """Shape probabilities float [K, 3] of K masks of one image [K, H, W] (mirror averaged with ``test_flip``)."""
    crops, boxes = outline_crops(masks, net.config)
    if len(crops) == 0:
        return torch.zeros(0, N_SHAPES)
    probs = torch.softmax(net(crops, boxes), 1)
    if net.config.test_flip:
        probs = (probs + torch.softmax(net(*_mirror(crops, boxes)), 1)) / 2
    return probs


def fuse_shape(p_attribute: Tensor, p_outline: Tensor, weight: float) -> Tensor:
    """Product of experts: ``p_attribute * p_outline ** weight``, renormalised; float [K, 3] each."""
    if weight == 0:
        return p_attribute
    logp = p_attribute.clamp(min=1e-8).log() + weight * p_outline.clamp(min=1e-8).log()
    return torch.softmax(logp, 1)


def augment_outlines(crops: Tensor, boxes: Tensor, generator: torch.Generator, *, p_flip: float = 0.5,
                     p_mask: float = 0.3) -> tuple[Tensor, Tensor]:
    """Training augmentation: mirror each crop (probability ``p_flip``) and grow or shrink its own mask by one pixel.

    Predicted masks miss or add a rim of pixels (probability ``p_mask`` each way); a silhouette's class
    does not change in a mirror.  One draw of two uniforms per crop from ``generator``.
    """
    k = crops.shape[0]
    if k == 0:
        return crops, boxes
    u = torch.rand(k, 2, generator=generator)
    m_crops, m_boxes = _mirror(crops, boxes)
    flip = u[:, 0] < p_flip
    crops = torch.where(flip[:, None, None, None], m_crops, crops)
    boxes = torch.where(flip[:, None], m_boxes, boxes)
    own = crops[:, :1]
    grown = F.max_pool2d(own, 3, stride=1, padding=1)
    shrunk = -F.max_pool2d(-own, 3, stride=1, padding=1)
    grow = (u[:, 1] < p_mask)[:, None, None, None]
    shrink = ((u[:, 1] >= p_mask) & (u[:, 1] < 2 * p_mask))[:, None, None, None]
    own = torch.where(grow, grown, torch.where(shrink, shrunk, own))
    return torch.cat([own, crops[:, 1:]], 1), boxes


def save_outline(path: PathLike, net: OutlineNet, metadata: dict[str, Any] | None = None) -> None:
    """Write the network, its config and ``metadata`` (command, data, seed) atomically (weights_only-loadable)."""
    atomic_torch_save(path, {"format": OUTLINE_FORMAT, "config": asdict(net.config), "state_dict": net.state_dict(),
                             "metadata": dict(metadata or {})})


def load_outline(path: PathLike) -> OutlineNet:
    """Load a file written by :func:`save_outline` (``metadata`` on the network's ``metadata`` attribute).

    Raises:
        CheckpointError: missing, damaged, of another format, or not fitting the network.
    """
    ckpt = torch_load(path, "outline checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != OUTLINE_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an outline checkpoint (format {got!r}, expected {OUTLINE_FORMAT!r})")
    require_fields(ckpt, path, "outline checkpoint", {"config": dict, "state_dict": dict, "metadata": dict})
    try:
        net = OutlineNet(OutlineConfig(**ckpt["config"]))
        net.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: outline checkpoint does not fit the network: {exc}") from None
    net.metadata = dict(ckpt["metadata"])
    return net.eval()
