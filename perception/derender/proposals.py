"""Object proposals with instance masks: a compact bottom-up segmenter.

NS-VQA (Yi et al., NeurIPS 2018, arXiv 1810.02338) proposes objects with Mask
R-CNN.  torchvision is not available here, so the proposals come from a small
fully-convolutional U-Net in the style of Panoptic-DeepLab (Cheng et al., CVPR
2020) and CenterNet (Zhou et al., 2019): per output pixel it predicts

* a foreground logit (object vs. ground),
* a centre heat-map logit (a Gaussian blob at each object's mask centroid),
* a 2D offset from the pixel to the centroid of the object it belongs to.

:func:`decode_instances` turns the three maps into instance masks: peaks of the
heat map after max-pool non-maximum suppression are the object centres, and
every foreground pixel joins the centre nearest to where its offset points
(offset voting).  With ``ProposalConfig.vote_min`` set, a place where many
pixels' votes pile up far from every heat-map peak is a centre too (an object
whose own heat blob is too weak or merged into a neighbour's, while its pixels
still point at their own centre); :func:`decode_scored` also gives each
instance's centre score.  :func:`proposal_targets` builds the training targets from an
instance-id mask.

Shapes (B images, input H x W, output stride ``s``; h = H / s, w = W / s)::

    image       float [B, 3, H, W]   in [0, 1]
    foreground  float [B, 1, h, w]   logits
    heatmap     float [B, 1, h, w]   logits
    offsets     float [B, 2, h, w]   (dy, dx) in output pixels
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = [
    "ProposalConfig",
    "ProposalNet",
    "ProposalOutput",
    "proposal_targets",
    "close_weights",
    "proposal_loss",
    "decode_instances",
    "decode_scored",
    "predict_masks",
    "predict_scored_masks",
]


@dataclass(frozen=True)
class ProposalConfig:
    """Architecture and decoding parameters of :class:`ProposalNet`.

    The network sees the image resized to ``input_size`` (CLEVR's 320 x 480 at
    half resolution by default) and predicts at 1/``stride`` of that size.
    """

    input_size: tuple[int, int] = (160, 240)  # (H, W) the network sees
    width: int = 16  # channels of the first stage; later stages double it
    heat_sigma: float = 2.0  # Gaussian radius of a centre blob, output pixels
    peak_threshold: float = 0.3  # minimum heat-map probability of a centre
    nms_kernel: int = 5  # max-pool window of peak suppression, output pixels
    fg_threshold: float = 0.5  # foreground probability threshold
    min_area: int = 4  # instances with fewer output pixels are dropped
    max_objects: int = 16  # CLEVR scenes hold at most 10
    # vote centres (0: off): a 3 x 3 window of output pixels where at least vote_min foreground
    # pixels' votes land, at least vote_far output pixels from every heat-map peak and from
    # every other vote centre, is an object centre too (decode-time only; no training)
    vote_min: int = 0
    vote_far: float = 4.0

    stride: int = 2  # fixed by the architecture: two down-, one up-sampling stage net

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        h, w = self.input_size
        if h % 8 or w % 8 or h <= 0 or w <= 0:
            raise ConfigError(f"ProposalConfig.input_size must be positive multiples of 8, got {self.input_size}")
        if self.nms_kernel % 2 != 1:
            raise ConfigError(f"ProposalConfig.nms_kernel must be odd, got {self.nms_kernel}")
        if self.stride != 2:
            raise ConfigError(f"ProposalConfig.stride is fixed at 2 by the architecture, got {self.stride}")
        if isinstance(self.vote_min, bool) or not isinstance(self.vote_min, int) or self.vote_min < 0:
            raise ConfigError(f"ProposalConfig.vote_min must be an integer >= 0 (0: off), got {self.vote_min!r}")
        if not (isinstance(self.vote_far, (int, float)) and 0 < self.vote_far < float("inf")):
            raise ConfigError(f"ProposalConfig.vote_far must be a positive number of output pixels, got {self.vote_far!r}")


@dataclass
class ProposalOutput:
    """The three prediction maps of :class:`ProposalNet` (see module docstring)."""

    foreground: Tensor
    heatmap: Tensor
    offsets: Tensor


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ProposalNet(nn.Module):
    """Compact U-Net: stride-8 encoder with dilated context, stride-2 decoder.

    Args:
        config: :class:`ProposalConfig`.

    ``forward(image [B, 3, H, W]) -> ProposalOutput`` with maps at (H/2, W/2).
    """

    def __init__(self, config: ProposalConfig = ProposalConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.stem = _block(3, c, stride=2)  # 1/2
        self.down1 = nn.Sequential(_block(c, 2 * c, stride=2), _block(2 * c, 2 * c))  # 1/4
        self.down2 = nn.Sequential(  # 1/8, dilations widen the view to whole objects
            _block(2 * c, 4 * c, stride=2),
            _block(4 * c, 4 * c, dilation=2),
            _block(4 * c, 4 * c, dilation=4),
        )
        self.up1 = _block(4 * c + 2 * c, 2 * c)
        self.up2 = nn.Sequential(_block(2 * c + c, c), _block(c, c))  # lean: full output size
        self.head = nn.Conv2d(c, 4, 1)  # foreground, heat, dy, dx
        with torch.no_grad():  # start with rare centres (CenterNet's prior bias)
            self.head.bias[1] = -4.0

    def forward(self, image: Tensor) -> ProposalOutput:
        if image.dim() != 4 or image.shape[1] != 3:
            raise StateError(f"ProposalNet expects images [B, 3, H, W], got {tuple(image.shape)}")
        s1 = self.stem(image)
        s2 = self.down1(s1)
        s3 = self.down2(s2)
        x = F.interpolate(s3, size=s2.shape[-2:], mode="bilinear", align_corners=False)
        x = self.up1(torch.cat([x, s2], 1))
        x = F.interpolate(x, size=s1.shape[-2:], mode="bilinear", align_corners=False)
        x = self.up2(torch.cat([x, s1], 1))
        out = self.head(x)
        return ProposalOutput(foreground=out[:, 0:1], heatmap=out[:, 1:2], offsets=out[:, 2:4])


def proposal_targets(masks: Tensor, config: ProposalConfig, *, close_weight: float = 1.0) -> dict[str, Tensor]:
    """Training targets from instance-id masks already at output resolution.

    Args:
        masks: int [B, h, w]; 0 is background, k >= 1 is instance k.
        config: gives the heat-map Gaussian radius.
        close_weight: w >= 1; with w > 1 the targets also hold ``close_weight`` maps
            (:func:`close_weights`) that :func:`proposal_loss` multiplies into its
            heat-map and offset weights: objects touching another in the image (where
            the network merges an object into its neighbour's instance) weigh w times.

    Returns:
        ``foreground`` float [B, 1, h, w], ``heatmap`` float [B, 1, h, w] (max of
        Gaussians centred on each instance's mask centroid), ``offsets`` float
        [B, 2, h, w] (centroid minus pixel, zero on background), and
        ``instance_weight`` float [B, 1, h, w]: on each instance's pixels one over
        (its area times the image's instance count), so that a sum over an image
        averages per instance (zero on background and in empty images); with
        ``close_weight`` > 1 also ``heat_weight`` and ``offset_weight`` float [B, 1, h, w].
    """
    if masks.dim() != 3:
        raise StateError(f"proposal_targets expects masks [B, h, w], got {tuple(masks.shape)}")
    _check_close_weight(close_weight)
    b, h, w = masks.shape
    ys = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
    xs = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    fg = (masks > 0).float().unsqueeze(1)
    heat = torch.zeros(b, 1, h, w)
    offsets = torch.zeros(b, 2, h, w)
    instance_weight = torch.zeros(b, 1, h, w)
    two_s2 = 2.0 * config.heat_sigma**2
    for i in range(b):
        ids = [k for k in masks[i].unique().tolist() if k > 0]
        for k in ids:
            sel = masks[i] == k
            cy, cx = ys[sel].mean(), xs[sel].mean()
            g = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / two_s2)
            heat[i, 0] = torch.maximum(heat[i, 0], g)
            offsets[i, 0][sel] = cy - ys[sel]
            offsets[i, 1][sel] = cx - xs[sel]
            instance_weight[i, 0][sel] = 1.0 / (float(sel.sum()) * len(ids))
    targets = {"foreground": fg, "heatmap": heat, "offsets": offsets, "instance_weight": instance_weight}
    if close_weight != 1.0:
        targets["heat_weight"], targets["offset_weight"] = close_weights(masks, config, close_weight)
    return targets


def _check_close_weight(close_weight: float) -> None:
    if isinstance(close_weight, bool) or not (isinstance(close_weight, (int, float)) and 1.0 <= close_weight < float("inf")):
        raise ConfigError(f"close_weight must be a finite number >= 1 (1: off), got {close_weight!r}")


def close_weights(masks: Tensor, config: ProposalConfig, close_weight: float) -> tuple[Tensor, Tensor]:
    """Loss weights that make objects touching a neighbour count ``close_weight`` times.

    An instance is *close* when its mask, grown by one output pixel (3 x 3), meets
    another instance's pixels: the partly hidden object behind a neighbour, or two side
    by side. Those are the objects the network can merge into one instance (no heat
    peak of their own, their pixels voting for the neighbour's centre).

    Args:
        masks: int [B, h, w] instance ids (0 background), as :func:`proposal_targets`.
        config: gives the heat-map Gaussian radius.
        close_weight: w >= 1.

    Returns:
        ``heat_weight`` float [B, 1, h, w]: w where a close instance's own centre
        Gaussian exceeds 0.1 (the heat loss's "near a centre" zone), else 1;
        ``offset_weight`` float [B, 1, h, w]: w on close instances' pixels, else 1.
    """
    _check_close_weight(close_weight)
    b, h, w = masks.shape
    ys = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
    xs = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    two_s2 = 2.0 * config.heat_sigma**2
    heat_weight = torch.ones(b, 1, h, w)
    offset_weight = torch.ones(b, 1, h, w)
    for i in range(b):
        objects = masks[i] > 0
        for k in [k for k in masks[i].unique().tolist() if k > 0]:
            sel = masks[i] == k
            grown = F.max_pool2d(sel[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
            if not (grown & objects & ~sel).any():
                continue
            cy, cx = ys[sel].mean(), xs[sel].mean()
            near = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / two_s2) > 0.1
            heat_weight[i, 0][near] = close_weight
            offset_weight[i, 0][sel] = close_weight
    return heat_weight, offset_weight


def proposal_loss(
    out: ProposalOutput, targets: dict[str, Tensor], *, instance_balance: float = 0.0,
    sum_over: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Panoptic-DeepLab's losses: BCE foreground, weighted MSE heat map, L1 offsets.

    The heat-map loss weights pixels near a centre 10x (centres are rare).  The
    offset loss is averaged over foreground pixels; with ``instance_balance`` =
    b > 0 it is ``(1 - b)`` times that plus ``b`` times its average per instance
    (then per image), so that a small object, such as the sliver of one seen
    behind another, pulls its offsets toward its own centre as hard as a large
    one does.  Targets with ``heat_weight`` / ``offset_weight`` (:func:`proposal_targets`'
    ``close_weight``) multiply the heat-map weights and the offset loss's pixel and
    instance weights (each average renormalised over its weights).  Returns the parts
    and their sum under ``"loss"``.

    ``sum_over``: under torchrun, adds a count up over the processes (an all-reduce);
    every average is then this share's sum over the whole global batch's count, so
    that the processes' parts add up to the global batch's loss.
    """
    if not 0.0 <= instance_balance <= 1.0:
        raise ConfigError(f"proposal_loss: instance_balance must lie in [0, 1], got {instance_balance}")
    if sum_over is not None:
        return _share_loss(out, targets, instance_balance, sum_over)
    fg_t, heat_t, off_t = targets["foreground"], targets["heatmap"], targets["offsets"]
    l_fg = F.binary_cross_entropy_with_logits(out.foreground, fg_t)
    weight = 1.0 + 9.0 * (heat_t > 0.1).float()
    if "heat_weight" in targets:  # close objects (proposal_targets' close_weight)
        weight = weight * targets["heat_weight"]
    l_heat = (weight * (torch.sigmoid(out.heatmap) - heat_t) ** 2).sum() / weight.sum() * 10.0
    err = (out.offsets - off_t).abs()
    fg_w, inst_w = fg_t, targets["instance_weight"]
    if "offset_weight" in targets:
        fg_w = fg_t * targets["offset_weight"]
        inst_w = inst_w * targets["offset_weight"]
        inst_w = inst_w / inst_w.flatten(1).sum(1).clamp(min=1e-12).view(-1, 1, 1, 1)  # each image sums to 1 again
    n_fg = fg_w.sum().clamp(min=1.0)
    l_off = (err * fg_w).sum() / n_fg
    if instance_balance > 0:
        per_image = (err * inst_w).sum(dim=(1, 2, 3))  # mean over instances, both offsets
        n_images = (targets["instance_weight"].flatten(1).sum(1) > 0).sum().clamp(min=1)
        l_off = (1.0 - instance_balance) * l_off + instance_balance * per_image.sum() / n_images
    l_off = l_off * 0.1
    return {"loss": l_fg + l_heat + l_off, "foreground": l_fg, "heatmap": l_heat, "offsets": l_off}


def _share_loss(
    out: ProposalOutput, targets: dict[str, Tensor], instance_balance: float, sum_over: Callable[[Tensor], Tensor]
) -> dict[str, Tensor]:
    """:func:`proposal_loss` of one process's share: its sums over the global batch's counts."""
    fg_t, heat_t, off_t = targets["foreground"], targets["heatmap"], targets["offsets"]
    count = torch.tensor(float(fg_t.numel()), dtype=fg_t.dtype, device=fg_t.device)
    l_fg = F.binary_cross_entropy_with_logits(out.foreground, fg_t, reduction="sum") / sum_over(count)
    weight = 1.0 + 9.0 * (heat_t > 0.1).float()
    if "heat_weight" in targets:
        weight = weight * targets["heat_weight"]
    l_heat = (weight * (torch.sigmoid(out.heatmap) - heat_t) ** 2).sum() / sum_over(weight.sum()) * 10.0
    err = (out.offsets - off_t).abs()
    fg_w, inst_w = fg_t, targets["instance_weight"]
    if "offset_weight" in targets:
        fg_w = fg_t * targets["offset_weight"]
        inst_w = inst_w * targets["offset_weight"]
        inst_w = inst_w / inst_w.flatten(1).sum(1).clamp(min=1e-12).view(-1, 1, 1, 1)
    n_fg = sum_over(fg_w.sum()).clamp(min=1.0)
    l_off = (err * fg_w).sum() / n_fg
    if instance_balance > 0:
        per_image = (err * inst_w).sum(dim=(1, 2, 3))
        n_images = sum_over((targets["instance_weight"].flatten(1).sum(1) > 0).sum().float()).clamp(min=1)
        l_off = (1.0 - instance_balance) * l_off + instance_balance * per_image.sum() / n_images
    l_off = l_off * 0.1
    return {"loss": l_fg + l_heat + l_off, "foreground": l_fg, "heatmap": l_heat, "offsets": l_off}


@torch.no_grad()
def decode_instances(out: ProposalOutput, config: ProposalConfig) -> list[Tensor]:
    """Instance label maps from the network maps (peak finding + offset voting).

    Args:
        out: :class:`ProposalOutput` for B images, maps of size (h, w).
        config: thresholds, NMS window and vote centres (:func:`decode_scored`).

    Returns:
        B int64 tensors [h, w]: 0 background, 1..K instances ordered by centre
        score (highest first; vote centres last).
    """
    return [label for label, _ in decode_scored(out, config)]


@torch.no_grad()
def decode_scored(out: ProposalOutput, config: ProposalConfig) -> list[tuple[Tensor, Tensor]]:
    """:func:`decode_instances` with each instance's centre score.

    The centres are the heat-map peaks above ``peak_threshold`` after max-pool
    suppression (at most ``max_objects``, highest first), then, with ``vote_min`` > 0,
    the vote centres: each foreground pixel votes for the output pixel its offset
    points at; a 3 x 3 window holding at least ``vote_min`` votes, the largest in its
    own 3 x 3 neighbourhood, at least ``vote_far`` output pixels from every peak and
    from every vote centre taken before it (row-major order), is a centre too. Every
    foreground pixel then joins the centre nearest to its vote; instances under
    ``min_area`` pixels are dropped.

    Returns:
        B pairs (label int64 [h, w] as :func:`decode_instances`, scores float [K]): the
        heat-map probability at each instance's centre (a vote centre's is the heat
        there, usually low).
    """
    heat = torch.sigmoid(out.heatmap)
    pooled = F.max_pool2d(heat, config.nms_kernel, stride=1, padding=config.nms_kernel // 2)
    peaks = (heat == pooled) & (heat > config.peak_threshold)
    fg = torch.sigmoid(out.foreground) > config.fg_threshold
    b, _, h, w = heat.shape
    ys = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
    xs = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    decoded = []
    for i in range(b):
        py, px = torch.nonzero(peaks[i, 0], as_tuple=True)
        scores = heat[i, 0, py, px]
        order = scores.argsort(descending=True)[: config.max_objects]
        py, px, scores = py[order].float(), px[order].float(), scores[order]
        label = torch.zeros(h, w, dtype=torch.int64)
        sel = fg[i, 0]
        if len(py) == 0 or not sel.any():
            decoded.append((label, torch.zeros(0)))
            continue
        vy = (ys + out.offsets[i, 0])[sel]
        vx = (xs + out.offsets[i, 1])[sel]
        if config.vote_min > 0 and len(py) < config.max_objects:
            cy, cx = _vote_centres(vy, vx, (h, w), py, px, config)
            cy, cx = cy[: config.max_objects - len(py)], cx[: config.max_objects - len(py)]
            scores = torch.cat([scores, heat[i, 0, cy.long(), cx.long()]])
            py, px = torch.cat([py, cy]), torch.cat([px, cx])
        d2 = (vy[:, None] - py[None]) ** 2 + (vx[:, None] - px[None]) ** 2  # [n_fg, K]
        label[sel] = d2.argmin(1) + 1
        decoded.append(_drop_small(label, config.min_area, scores))
    return decoded


def _vote_centres(
    vy: Tensor, vx: Tensor, hw: tuple[int, int], py: Tensor, px: Tensor, config: ProposalConfig
) -> tuple[Tensor, Tensor]:
    """Vote centres (float y, x) of one image: see :func:`decode_scored`."""
    h, w = hw
    votes = torch.zeros(h, w)
    iy, ix = vy.round().long().clamp(0, h - 1), vx.round().long().clamp(0, w - 1)
    votes.index_put_((iy, ix), torch.ones(len(iy)), accumulate=True)
    window = F.avg_pool2d(votes[None, None], 3, stride=1, padding=1, count_include_pad=True)[0, 0] * 9.0
    local_max = F.max_pool2d(window[None, None], 3, stride=1, padding=1)[0, 0]
    cand_y, cand_x = torch.nonzero((window == local_max) & (window >= config.vote_min - 1e-3), as_tuple=True)
    taken_y, taken_x = py.tolist(), px.tolist()
    n_peaks = len(taken_y)
    far2 = config.vote_far**2
    for y, x in zip(cand_y.tolist(), cand_x.tolist(), strict=True):
        if all((y - ty) ** 2 + (x - tx) ** 2 >= far2 for ty, tx in zip(taken_y, taken_x, strict=True)):
            taken_y.append(y)
            taken_x.append(x)
    return torch.tensor(taken_y[n_peaks:], dtype=torch.float32), torch.tensor(taken_x[n_peaks:], dtype=torch.float32)


@torch.no_grad()
def predict_masks(net: ProposalNet, images: list[Tensor]) -> list[Tensor]:
    """Instance masks of full-size images, as the derenderer sees them.

    Each image float [3, H, W] is resized to the network's input size, decoded
    (:func:`decode_instances`) and its label map upsampled back to (H, W).

    Returns:
        One bool [K, H, W] per image, without empty masks (an instance can
        vanish when its label map is upsampled).
    """
    return [masks for masks, _ in predict_scored_masks(net, images)]


@torch.no_grad()
def predict_scored_masks(net: ProposalNet, images: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """:func:`predict_masks` with each mask's centre score (:func:`decode_scored`): (bool [K, H, W], float [K])."""
    if not images:
        return []
    cfg = net.config
    small = torch.cat([
        F.interpolate(im.unsqueeze(0), size=cfg.input_size, mode="bilinear", align_corners=False, antialias=True)
        for im in images
    ])
    out = []
    for image, (label, scores) in zip(images, decode_scored(net(small), cfg), strict=True):
        k = int(label.max())
        full = F.interpolate(label[None, None].float(), size=image.shape[1:], mode="nearest")[0, 0].long()
        masks = full.unsqueeze(0) == torch.arange(1, k + 1).view(k, 1, 1)
        present = masks.flatten(1).any(1)
        out.append((masks[present], scores[present]))
    return out


def _drop_small(label: Tensor, min_area: int, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Remove instances below ``min_area`` pixels and renumber the rest 1..K (with their scores)."""
    out = torch.zeros_like(label)
    kept = []
    for k in range(1, int(label.max()) + 1):
        sel = label == k
        if int(sel.sum()) >= min_area:
            kept.append(k - 1)
            out[sel] = len(kept)
    return out, scores[kept]
