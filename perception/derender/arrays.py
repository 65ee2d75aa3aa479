"""Training arrays of the derenderer's two networks, built from a ``nesy data clevr`` folder.

* :func:`proposal_arrays` -- images resized to the proposal network's input and
  instance masks at its output resolution;
* :func:`attribute_arrays` -- crops of the ground-truth masks (coarsened to the
  proposal grid, so they look like predicted masks) with attribute labels and centres;
* :func:`proposal_attribute_arrays` -- crops of a trained proposal network's own
  masks, labelled by the true object each matches (Hungarian assignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from perception.derender.attributes import AttributeConfig, crop_objects
from perception.derender.data import DerenderSample, load_image, load_instance_mask
from perception.derender.derenderer import image_to_tensor
from perception.derender.proposals import ProposalConfig, ProposalNet, predict_masks
from physics.errors import DataError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["proposal_arrays", "attribute_arrays", "proposal_attribute_arrays", "match_proposals", "visible_objects"]


def _gt_mask(sample: DerenderSample) -> np.ndarray:
    if sample.mask_path is None:
        raise DataError(f"no instance mask for {sample.image_path.name} (expected under masks/)")
    return load_instance_mask(sample.mask_path)


def proposal_arrays(
    samples: Sequence[DerenderSample], config: ProposalConfig, *, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images resized to the network input and masks at its output resolution.

    Returns:
        images uint8 [N, 3, Hin, Win] and masks int16 [N, Hin/2, Win/2] (0 ground,
        k = object k-1).
    """
    hin, win = config.input_size
    images = torch.zeros(len(samples), 3, hin, win, dtype=torch.uint8)
    masks = torch.zeros(len(samples), hin // config.stride, win // config.stride, dtype=torch.int16)
    for i, s in enumerate(tqdm(samples, desc="load images", disable=not progress)):
        img = image_to_tensor(load_image(s.image_path)).unsqueeze(0)
        img = F.interpolate(img, size=(hin, win), mode="bilinear", align_corners=False, antialias=True)
        images[i] = (img[0] * 255).round().clamp(0, 255).to(torch.uint8)
        m = torch.from_numpy(_gt_mask(s)).float()[None, None]
        masks[i] = F.interpolate(m, size=masks.shape[1:], mode="nearest")[0, 0].to(torch.int16)
    return images, masks


def _coarsen(masks: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Nearest down- then up-sampling, as predicted masks are made: bool [K, H, W]."""
    h, w = masks.shape[1:]
    small = F.interpolate(masks.float().unsqueeze(1), size=out_hw, mode="nearest")
    return F.interpolate(small, size=(h, w), mode="nearest")[:, 0] > 0.5


def _object_records(
    image: torch.Tensor, masks: torch.Tensor, objs: Sequence[Any], config: AttributeConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crops of ``masks`` labelled with the attributes and centres of ``objs`` (one each).

    Returns crops uint8 [K, 4, S, S], boxes [K, 4], labels int64 [K, 4], centre [K, 2].
    """
    c, b = crop_objects(image, masks, config)
    h, w = image.shape[1:]
    for o in objs:
        if o.pixel_coords is None:
            raise DataError("objects need pixel_coords for the centre target")
    uv = torch.tensor([o.pixel_coords[:2] for o in objs], dtype=torch.float32)
    side = b[:, 2] * w
    centre = torch.stack([(uv[:, 0] - b[:, 0] * w) / side, (uv[:, 1] - b[:, 1] * h) / side], 1)
    labels = torch.tensor([[ATTRIBUTES[a].index(o.attribute(a)) for a in ATTRIBUTES] for o in objs], dtype=torch.int64)
    return (c * 255).round().clamp(0, 255).to(torch.uint8), b, labels, centre


def _stack_records(records: list[tuple[torch.Tensor, ...]], what: str) -> dict[str, torch.Tensor]:
    if not records:
        raise DataError(f"no {what} in the training scenes")
    return {name: torch.cat([r[k] for r in records]) for k, name in enumerate(("crops", "boxes", "labels", "centre"))}


def attribute_arrays(
    samples: Sequence[DerenderSample],
    config: AttributeConfig,
    proposal_config: ProposalConfig,
    *,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Crops of every ground-truth object with its labels and centre target.

    Returns:
        ``crops`` uint8 [M, 4, S, S], ``boxes`` float [M, 4], ``labels`` int64
        [M, 4] (shape, color, material, size indices), ``centre`` float [M, 2].
    """
    hin, win = proposal_config.input_size
    out_hw = (hin // proposal_config.stride, win // proposal_config.stride)
    records = []
    for s in tqdm(samples, desc="crop objects", disable=not progress):
        image = image_to_tensor(load_image(s.image_path))
        ids = torch.from_numpy(_gt_mask(s))
        n = len(s.scene.objects)
        full = ids.unsqueeze(0) == torch.arange(1, n + 1).view(n, 1, 1)
        coarse = _coarsen(full, out_hw)
        empty = ~coarse.flatten(1).any(1)
        coarse[empty] = full[empty]
        keep = full.flatten(1).any(1)  # objects hidden completely have no crop
        if not keep.any():
            continue
        objs = [o for o, k in zip(s.scene.objects, keep.tolist(), strict=True) if k]
        try:
            records.append(_object_records(image, coarse[keep], objs, config))
        except DataError as exc:
            raise DataError(f"{s.image_path.name}: {exc}") from None
    return _stack_records(records, "visible objects")


def match_proposals(masks: torch.Tensor, objs: Sequence[Any], max_distance: float,
                    where: str = "scene") -> tuple[np.ndarray, np.ndarray]:
    """Pairs (mask k, object j) of predicted masks [K, H, W] and true objects with ``pixel_coords``.

    Each mask's centroid is matched to the objects' image centres by Hungarian assignment;
    pairs further apart than ``max_distance`` pixels are dropped.  Returns (rows, cols), both
    empty when there are no masks or no objects.

    Raises:
        DataError: an object has no ``pixel_coords`` (named by ``where``, e.g. the image's file name).
    """
    from scipy.optimize import linear_sum_assignment

    if len(masks) == 0 or not objs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if any(o.pixel_coords is None for o in objs):
        raise DataError(f"{where}: objects need pixel_coords for matching proposals")
    ys = torch.arange(masks.shape[1], dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(masks.shape[2], dtype=torch.float32).view(1, 1, -1)
    area = masks.flatten(1).sum(1).float()
    cx = (masks * xs).flatten(1).sum(1) / area
    cy = (masks * ys).flatten(1).sum(1) / area
    uv = np.array([o.pixel_coords[:2] for o in objs], dtype=np.float64)
    dist = np.hypot(cx.numpy()[:, None] - uv[None, :, 0], cy.numpy()[:, None] - uv[None, :, 1])
    rows, cols = linear_sum_assignment(dist)
    ok = dist[rows, cols] <= max_distance
    return rows[ok], cols[ok]


def visible_objects(sample: DerenderSample) -> list[Any]:
    """The scene's objects that show in its instance mask (all of them when it has none)."""
    objs = list(sample.scene.objects)
    if sample.mask_path is not None:  # objects hidden completely cannot be proposed
        visible = set(np.unique(_gt_mask(sample)).tolist())
        objs = [o for k, o in enumerate(objs) if k + 1 in visible]
    return objs


@torch.no_grad()
def proposal_attribute_arrays(
    samples: Sequence[DerenderSample],
    proposal_net: ProposalNet,
    config: AttributeConfig,
    *,
    max_distance: float = 20.0,
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Crops of the proposal network's own masks, labelled by the true objects they match.

    Each image is derendered as :class:`Derenderer` does (resize, proposal
    network, decoding, masks upsampled to the image); each mask's centroid is
    matched to the true objects' ``pixel_coords`` by Hungarian assignment, and
    pairs further apart than ``max_distance`` pixels are dropped, as are
    unmatched proposals.  The centre target is the true object's centre in the
    predicted mask's crop.

    Returns:
        the arrays of :func:`attribute_arrays` and counts ``{"proposals",
        "matched", "true_objects"}``.
    """
    proposal_net.eval()
    records = []
    counts = {"proposals": 0, "matched": 0, "true_objects": 0}
    starts = range(0, len(samples), batch_size)
    for start in tqdm(starts, desc="proposal masks", disable=not progress):
        batch = samples[start : start + batch_size]
        images = [image_to_tensor(load_image(s.image_path)) for s in batch]
        for s, image, masks in zip(batch, images, predict_masks(proposal_net, images), strict=True):
            objs = visible_objects(s)
            counts["true_objects"] += len(objs)
            counts["proposals"] += len(masks)
            rows, cols = match_proposals(masks, objs, max_distance, where=s.image_path.name)
            if len(rows) == 0:
                continue
            counts["matched"] += len(rows)
            records.append(_object_records(image, masks[torch.from_numpy(rows)], [objs[j] for j in cols], config))
    return _stack_records(records, "matched proposals"), counts
