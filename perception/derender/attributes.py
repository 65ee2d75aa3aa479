"""Attribute network: each proposal's crop and mask -> attributes and centre.

As in NS-VQA (Yi et al., 2018, Sec. 3.1) every object proposal is classified
from its image crop stacked with its mask; the network predicts the CLEVR
attributes (shape 3, colour 8, material 2, size 2) and, for the 3D position,
the image position of the object's centre relative to the crop.  The derenderer
turns that pixel position into 3D with the calibrated camera
(:mod:`perception.derender.camera`): the ray through it meets the plane at the
object's resting height (its size class's radius).

Shapes (K objects, crop side S)::

    crops   float [K, 4, S, S]   RGB in [0, 1] and the mask channel
    boxes   float [K, 4]         (cx / W, cy / H, side / W, side / H) of each crop
    logits  {attr: float [K, n_values]}
    centre  float [K, 2]         ((u - cx) / side, (v - cy) / side)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["AttributeConfig", "AttributeNet", "crop_objects", "crop_grid", "recrop", "read_attributes", "jitter_crops",
           "mirror_crops", "flip_crops", "attribute_loss"]


@dataclass(frozen=True)
class AttributeConfig:
    """Architecture of :class:`AttributeNet` and the crop geometry."""

    crop_size: int = 48  # S: crops are resized to S x S
    margin: float = 0.25  # crop side = (1 + 2 * margin) * the mask box's longer side
    min_side: float = 12.0  # smallest crop side in image pixels
    width: int = 32  # channels of the first conv stage
    # test-time crops: the class probabilities of the plain crop are averaged with those of crops
    # re-cut at these multiples of its side (same centre); () reads the plain crop only. Used by
    # read_attributes (the derenderer), not by training; the centre is always the plain crop's.
    test_scales: tuple[float, ...] = ()
    # test-time mirror: the class probabilities are also averaged with those of each crop mirrored left to
    # right (mirror_crops); for networks trained with mirrored crops (--attribute-flip). Centre: plain crop's.
    test_flip: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        for s in self.test_scales:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0.5 <= s <= 2.0:
                raise ConfigError(f"AttributeConfig.test_scales must be numbers in [0.5, 2], got {self.test_scales!r}")
        if len(set(self.test_scales)) != len(self.test_scales):  # a repeated scale weighs its crop twice
            raise ConfigError(f"AttributeConfig.test_scales must name each scale once, got {self.test_scales!r}")


def crop_objects(image: Tensor, masks: Tensor, config: AttributeConfig = AttributeConfig()) -> tuple[Tensor, Tensor]:
    """Square crops around each mask, resized to ``config.crop_size``.

    Args:
        image: float [3, H, W] in [0, 1].
        masks: bool or float [K, H, W], one mask per object (non-empty).

    Returns:
        crops float [K, 4, S, S] (RGB + mask; outside the image is zero) and
        boxes float [K, 4] = (cx / W, cy / H, side / W, side / H), where
        (cx, cy) is the crop centre and side its length in pixels.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise StateError(f"crop_objects expects image [3, H, W], got {tuple(image.shape)}")
    if masks.dim() != 3 or masks.shape[1:] != image.shape[1:]:
        raise StateError(
            f"crop_objects expects masks [K, H, W] matching image {tuple(image.shape[1:])}, got {tuple(masks.shape)}"
        )
    k = masks.shape[0]
    h, w = image.shape[1:]
    s = config.crop_size
    if k == 0:
        return torch.zeros(0, 4, s, s), torch.zeros(0, 4)
    boxes = torch.zeros(k, 4)
    for i in range(k):
        ys, xs = torch.nonzero(masks[i] > 0.5, as_tuple=True)
        if len(ys) == 0:
            raise StateError(f"crop_objects: mask {i} is empty")
        y0, y1 = ys.min().item(), ys.max().item() + 1
        x0, x1 = xs.min().item(), xs.max().item() + 1
        side = max(max(y1 - y0, x1 - x0) * (1 + 2 * config.margin), config.min_side)
        boxes[i] = torch.tensor([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, side / w, side / h])
    return recrop(image, masks, boxes, 1.0, s), boxes


def crop_grid(boxes: Tensor, size: int) -> Tensor:
    """Sampling grid of each crop box for ``F.grid_sample``: float [K, S, S, 2] in [-1, 1] image coordinates.

    Args:
        boxes: float [K, 4] (cx / W, cy / H, side / W, side / H), as :func:`crop_objects` returns them.
        size: S, the crop side in pixels.
    """
    # affine_grid works in [-1, 1] coordinates (align_corners=False)
    theta = torch.zeros(len(boxes), 2, 3)
    theta[:, 0, 0] = boxes[:, 2]
    theta[:, 0, 2] = boxes[:, 0] * 2 - 1
    theta[:, 1, 1] = boxes[:, 3]
    theta[:, 1, 2] = boxes[:, 1] * 2 - 1
    return F.affine_grid(theta, [len(boxes), 1, size, size], align_corners=False)


def recrop(image: Tensor, masks: Tensor, boxes: Tensor, scale: float, size: int) -> Tensor:
    """Crops [K, 4, S, S] (RGB + mask) of boxes [K, 4] grown by ``scale`` about their centres.

    ``image`` float [3, H, W], ``masks`` [K, H, W]; as :func:`crop_objects` cuts them.
    """
    k = len(boxes)
    if k == 0:
        return torch.zeros(0, 4, size, size)
    scaled = boxes.clone()
    scaled[:, 2:] *= scale
    grid = crop_grid(scaled, size)
    # the K crops of the one image are sampled as one tall grid: no K copies of the image
    rgb = F.grid_sample(image.unsqueeze(0), grid.reshape(1, k * size, size, 2), mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    rgb = rgb.view(3, k, size, size).transpose(0, 1)
    mask = F.grid_sample(masks.float().unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.cat([rgb, mask], 1)


@torch.no_grad()
def read_attributes(net: AttributeNet, image: Tensor, masks: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Attribute probabilities, centres and crop boxes of the K masked objects of one image.

    The plain crop of each mask (:func:`crop_objects`) gives the centre; the class
    probabilities are the mean over it and the crops re-cut at each of
    ``net.config.test_scales`` times its side (test-time augmentation; the
    network was trained on crops whose box was scaled by up to +-10%), and, with
    ``net.config.test_flip``, each of those crops mirrored left to right
    (:func:`mirror_crops`; for networks trained with mirrored crops).

    Returns:
        ({attribute: float [K, n_values] probabilities}, centre float [K, 2], boxes float [K, 4]).
    """
    crops, boxes = crop_objects(image, masks, net.config)
    logits, centre = net(crops, boxes)
    probs = {a: torch.softmax(v, 1) for a, v in logits.items()}
    views = [(crops, boxes)] if net.config.test_flip else []
    for scale in net.config.test_scales:
        scaled = boxes * torch.tensor([1, 1, scale, scale])
        views.append((recrop(image, masks, boxes, scale, net.config.crop_size), scaled))
        extra, _ = net(*views[-1])
        for a, v in extra.items():
            probs[a] = probs[a] + torch.softmax(v, 1)
    n = 1 + len(net.config.test_scales)
    if net.config.test_flip:
        for view_crops, view_boxes in views:
            extra, _ = net(*mirror_crops(view_crops, view_boxes, torch.zeros(len(view_boxes), 2))[:2])
            for a, v in extra.items():
                probs[a] = probs[a] + torch.softmax(v, 1)
        n *= 2
    return {a: p / n for a, p in probs.items()}, centre, boxes


def mirror_crops(crops: Tensor, boxes: Tensor, centre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The crops mirrored left to right, as cut from the mirrored image.

    ``crops`` float [K, C, S, S], ``boxes`` [K, 4] (cx / W, cy / H, side / W, side / H),
    ``centre`` [K, 2] in crop units; the crop box's x centre becomes ``1 - cx / W`` and the
    object centre's x offset changes sign. CLEVR's shapes, colours, materials and sizes
    look the same in a mirror; only the light comes from the other side.
    """
    boxes = boxes.clone()
    boxes[:, 0] = 1.0 - boxes[:, 0]
    return crops.flip(-1), boxes, centre * torch.tensor([-1.0, 1.0], dtype=centre.dtype)


def flip_crops(
    crops: Tensor, boxes: Tensor, centre: Tensor, generator: torch.Generator, *, p: float = 0.5
) -> tuple[Tensor, Tensor, Tensor]:
    """Training augmentation: mirror each crop left to right with probability ``p`` (:func:`mirror_crops`).

    One uniform draw per crop from ``generator``; shapes as :func:`jitter_crops`.
    """
    k = crops.shape[0]
    if k == 0:
        return crops, boxes, centre
    flip = torch.rand(k, generator=generator) < p
    m_crops, m_boxes, m_centre = mirror_crops(crops, boxes, centre)
    return (torch.where(flip[:, None, None, None], m_crops, crops), torch.where(flip[:, None], m_boxes, boxes),
            torch.where(flip[:, None], m_centre, centre))


def jitter_crops(
    crops: Tensor,
    boxes: Tensor,
    centre: Tensor,
    generator: torch.Generator,
    *,
    shift: float = 0.08,
    scale: float = 0.1,
    p_geometry: float = 0.5,
    p_mask: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor]:
    """Training augmentation: re-crop slightly off the mask box, and grow or shrink masks.

    Predicted masks miss or add a rim of pixels and their boxes wander, so each
    crop (with probability ``p_geometry``) is resampled from a box moved by up to
    ``shift`` of its side and scaled by up to 1 +- ``scale``, with its box input
    and centre target moved to match; independently, with probability ``p_mask``
    each, the mask channel is dilated or eroded by one crop pixel.  Colours are
    left alone (they are what the network classifies).

    Args:
        crops: float [K, 4, S, S] from :func:`crop_objects`.
        boxes: float [K, 4] (cx / W, cy / H, side / W, side / H).
        centre: float [K, 2] object centre in crop units.
        generator: source of the random draws (reproducible batches).

    Returns:
        (crops, boxes, centre) of the same shapes.
    """
    k = crops.shape[0]
    if k == 0:
        return crops, boxes, centre
    # columns: move?, shift x, shift y, scale, mask op (the sixth is unused; dropping it would
    # change the draws behind the shipped checkpoint)
    u = torch.rand(k, 6, generator=generator)
    move = u[:, 0] < p_geometry
    t = (u[:, 1:3] * 2 - 1) * shift * move[:, None]  # shift in crop sides, (x, y)
    s = 1 + (u[:, 3] * 2 - 1) * scale * move  # new side / old side
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, :, 2] = 2 * t  # [-1, 1] spans one side
    grid = F.affine_grid(theta, list(crops.shape), align_corners=False)
    # border padding: a crop grown past the stored one continues its rim instead of a black frame
    out = F.grid_sample(crops, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = torch.where(move[:, None, None, None], out, crops)
    mask = out[:, 3:4]
    grown = F.max_pool2d(mask, 3, stride=1, padding=1)
    shrunk = -F.max_pool2d(-mask, 3, stride=1, padding=1)
    grow = (u[:, 4] < p_mask)[:, None, None, None]
    shrink = ((u[:, 4] >= p_mask) & (u[:, 4] < 2 * p_mask))[:, None, None, None]
    mask = torch.where(grow, grown, torch.where(shrink, shrunk, mask))
    out = torch.cat([out[:, :3], mask], 1)
    new_boxes = boxes.clone()
    new_boxes[:, 0] += t[:, 0] * boxes[:, 2]
    new_boxes[:, 1] += t[:, 1] * boxes[:, 3]
    new_boxes[:, 2:] *= s[:, None]
    return out, new_boxes, (centre - t) / s[:, None]


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class AttributeNet(nn.Module):
    """Small CNN on crop + mask, with the crop box appended before the heads.

    ``forward(crops [K, 4, S, S], boxes [K, 4]) -> (logits, centre)``: logits is
    ``{attribute: [K, n_values]}`` for shape, color, material, size (CLEVR
    vocabulary order); centre is [K, 2] (see module docstring).
    """

    def __init__(self, config: AttributeConfig = AttributeConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.features = nn.Sequential(
            _block(4, c, 2),  # S/2
            _block(c, 2 * c, 1),
            _block(2 * c, 2 * c, 2),  # S/4
            _block(2 * c, 4 * c, 2),  # S/8
            _block(4 * c, 4 * c, 2),  # S/16
        )
        side = -(-config.crop_size // 16)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * c * side * side + 4, 256), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({name: nn.Linear(256, len(values)) for name, values in ATTRIBUTES.items()})
        self.centre = nn.Linear(256, 2)

    def forward(self, crops: Tensor, boxes: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        if crops.dim() != 4 or crops.shape[1] != 4:
            raise StateError(f"AttributeNet expects crops [K, 4, S, S], got {tuple(crops.shape)}")
        f = self.features(crops)
        f = torch.cat([f.flatten(1), boxes * 4.0], 1)  # boxes rescaled to the features' range
        z = self.fc(f)
        return {name: head(z) for name, head in self.heads.items()}, self.centre(z)


def attribute_loss(
    logits: dict[str, Tensor],
    centre: Tensor,
    labels: dict[str, Tensor],
    centre_target: Tensor,
    centre_weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """Cross-entropy per attribute plus smooth-L1 on the centre (in crop units x 10).

    Args:
        labels: {attribute: int64 [K]} vocabulary indices.
        centre_target: float [K, 2].
        centre_weight: optional float [K]: the centre term is the mean over the crops
            weighted by it (0 leaves a crop's centre out); None weighs all alike.

    Returns the parts and their sum under ``"loss"``.
    """
    parts = {name: F.cross_entropy(logits[name], labels[name]) for name in logits}
    if centre_weight is None:
        parts["centre"] = F.smooth_l1_loss(centre * 10.0, centre_target * 10.0)
    else:
        per_crop = F.smooth_l1_loss(centre * 10.0, centre_target * 10.0, reduction="none").mean(1)
        parts["centre"] = (per_crop * centre_weight).sum() / centre_weight.sum().clamp(min=1.0)
    parts["loss"] = sum(parts.values())
    return parts
