"""Training augmentation for the attribute network: synthetic occluders.

The Blender derenderer's remaining misreads are partly hidden objects (a cube
behind a cylinder read as a cylinder, a large object read as small): the
proposal mask of such an object is its visible part only, and its crop is cut
around that part, with the occluder's pixels beside it.  Crowded scenes have
few of them, so :func:`occlude_crops` makes more from any batch: another crop
of the batch (the donor) is pasted in front of the object, below it or beside
it as CLEVR's nearer objects are, the donor's pixels are taken out of the
object's mask, and the crop is re-cut around what is left of the mask, as
:func:`~perception.derender.attributes.crop_objects` would cut it.  The box
input and the centre target follow the re-cut; the labels stay the hidden
object's.

Shapes as in :mod:`perception.derender.attributes`: crops float [K, 4, S, S]
(RGB and mask), boxes float [K, 4] (cx / W, cy / H, side / W, side / H),
centre float [K, 2] (object centre in crop sides from the crop centre).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from physics.errors import ConfigError

__all__ = ["occlude_crops"]


def occlude_crops(
    crops: Tensor,
    boxes: Tensor,
    centre: Tensor,
    generator: torch.Generator,
    *,
    p: float = 0.3,
    margin: float = 0.25,
    hidden: tuple[float, float] = (0.15, 0.65),
    reach: float = 0.45,
    min_scale: float = 0.5,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Hide part of about ``p`` of the crops behind another crop's object, and re-cut them.

    For each crop chosen (probability ``p``) a donor crop of the same batch (never
    itself) is placed with its object's centre at the crop's object centre plus an
    offset of up to ``reach`` crop sides sideways and 0 to ``reach`` down (nearer
    objects stand lower in a CLEVR image), at its own scale in the image (the ratio of
    the two boxes' sides).  Its masked pixels cover the crop's, and leave the crop's
    mask.  The occlusion is kept only if it hides a share of the mask within ``hidden``;
    otherwise the crop is left as it was.  A kept crop is re-cut around the bounding
    box of its remaining mask with side ``(1 + 2 margin)`` times the box's longer
    side (the crop geometry of ``crop_objects``), no smaller than ``min_scale`` of
    the old side and no larger than it (outside the stored crop is unknown); the rim
    continues the border pixels, as in ``jitter_crops``.

    Returns:
        (crops, boxes, centre, kept): the first three of the same shapes, the crops not
        occluded unchanged; ``kept`` bool [K] marks the crops that were occluded (so a
        trainer can leave their centre target out of the loss).
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"occlude_crops: p must lie in [0, 1], got {p}")
    if not 0.0 <= hidden[0] < hidden[1] <= 1.0:
        raise ConfigError(f"occlude_crops: hidden must be (low, high) with 0 <= low < high <= 1, got {hidden}")
    k, _, s, _ = crops.shape
    if k < 2 or p == 0.0:
        return crops, boxes, centre, torch.zeros(k, dtype=torch.bool)
    u = torch.rand(k, 4, generator=generator)
    chosen = u[:, 0] < p
    donor = (torch.arange(k) + 1 + (u[:, 1] * (k - 1)).long().clamp(max=k - 2)) % k  # never the crop itself
    offset = torch.stack([(u[:, 2] * 2 - 1) * reach, u[:, 3] * reach], 1)  # crop sides, (x, y)
    # the donor's crop, mapped into this crop's frame: crop point q (in [-1, 1]) is image offset q * side / 2
    # from this crop's centre; the donor's object centre lands at (centre + offset) * side
    ratio = boxes[:, 2] / boxes[donor, 2]  # this crop's side over the donor's, in image pixels
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0] = ratio
    theta[:, 1, 1] = ratio
    theta[:, :, 2] = -2 * (centre + offset) * ratio[:, None] + 2 * centre[donor]
    grid = F.affine_grid(theta, [k, 4, s, s], align_corners=False)
    pasted = F.grid_sample(crops[donor], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cover = pasted[:, 3:4].clamp(0, 1)
    rgb = crops[:, :3] * (1 - cover) + pasted[:, :3] * cover
    mask = crops[:, 3:4] * (1 - cover)
    before = crops[:, 3].sum((1, 2))
    left = mask[:, 0].sum((1, 2)) / before.clamp(min=1e-6)
    inside = mask[:, 0] > 0.5
    keep = chosen & (before > 0) & (left >= 1 - hidden[1]) & (left <= 1 - hidden[0]) & inside.flatten(1).any(1)
    if not keep.any():
        return crops, boxes, centre, keep
    # bounding box of what is left of the mask, in crop pixels
    idx = torch.arange(s, dtype=torch.float32)
    rows, cols = inside.any(2), inside.any(1)  # [K, S] each
    big = float(s)
    y0 = torch.where(rows, idx, big).amin(1)
    y1 = torch.where(rows, idx, -1.0).amax(1) + 1
    x0 = torch.where(cols, idx, big).amin(1)
    x1 = torch.where(cols, idx, -1.0).amax(1) + 1
    scale = (torch.maximum(y1 - y0, x1 - x0) * (1 + 2 * margin) / s).clamp(min=min_scale, max=1.0)
    shift = torch.stack([(x0 + x1) / 2 / s - 0.5, (y0 + y1) / 2 / s - 0.5], 1)  # crop sides
    scale = torch.where(keep, scale, torch.ones_like(scale))
    shift = torch.where(keep[:, None], shift, torch.zeros_like(shift))
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = 2 * shift
    grid = F.affine_grid(theta, [k, 4, s, s], align_corners=False)
    recut = F.grid_sample(torch.cat([rgb, mask], 1), grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = torch.where(keep[:, None, None, None], recut, crops)
    new_boxes = boxes.clone()
    new_boxes[:, 0] += shift[:, 0] * boxes[:, 2]
    new_boxes[:, 1] += shift[:, 1] * boxes[:, 3]
    new_boxes[:, 2:] *= scale[:, None]
    return out, new_boxes, (centre - shift) / scale[:, None], keep
