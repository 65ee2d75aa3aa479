"""Training the outline shape reader (``nesy train outline``) on generated scenes.

The silhouettes come from what the reader will see at test time: the proposal masks of a
registered derenderer (``--perceiver``, by default ``derender-blender``, its detection
settings included), each labelled with the shape of the true object it matches
(Hungarian assignment on centre distance, :func:`~perception.derender.arrays.match_proposals`),
and, with ``--masks mixed``, the true masks coarsened to the proposal grid as well.  The
network trains on the shared :class:`~physics.training.TrainLoop`
(:func:`~perception.derender.trainers.train_outline_net`: resumable after every epoch,
one JSON line per epoch in ``OUT/metrics.jsonl``); the result is ``OUT/outline.pt``
(:func:`~perception.derender.outline.save_outline`), read by ``derender-blender-outline``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from perception.derender.arrays import _coarsen, _gt_mask, match_proposals, visible_objects
from perception.derender.data import DerenderSample, load_derender_folders, load_image
from perception.derender.derenderer import image_to_tensor
from perception.derender.outline import OutlineConfig, OutlineNet, outline_crops, save_outline
from perception.derender.proposals import ProposalNet, predict_masks
from perception.derender.trainers import load_trained, train_outline_net
from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError
from physics.io import atomic_write_json, ensure_dir
from physics.training import config_flags
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["OutlineTrainConfig", "outline_arrays", "train_outline", "outline_command_line"]


@dataclass(frozen=True)
class OutlineTrainConfig:
    """Options of ``nesy train outline`` (each field is a flag)."""

    data: str = field(metadata={"help": "training data folder(s) written by `nesy data clevr` (comma-separated)"})
    out: str = field(default="runs/outline", metadata={"help": "output folder (outline.pt, metrics.jsonl)"})
    perceiver: str = field(default="derender-blender",
                           metadata={"help": "registered derenderer whose proposal masks the network learns from"})
    checkpoint: str | None = field(default=None, metadata={"help": "that derenderer's checkpoint (default: shipped)"})
    masks: str = field(default="mixed", metadata={"help": "training silhouettes: the perceiver's proposal masks, "
                                                  "the true masks coarsened to its grid, or both",
                                                  "choices": ("proposal", "gt", "mixed")})
    match_distance: float = field(default=20.0, metadata={"help": "largest centre distance (px) of a matched proposal"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, batch order and augmentation"})
    epochs: int = field(default=8, metadata={"min": 1, "help": "training epochs"})
    batch_size: int = field(default=128, metadata={"min": 1, "help": "crops per batch"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate (cosine decay to 5 percent)"})
    limit: int | None = field(default=None, metadata={"min": 1, "help": "use the first N training scenes"})
    crop_size: int = field(default=64, metadata={"min": 16, "help": "silhouette crop side in pixels"})
    width: int = field(default=16, metadata={"min": 1, "help": "channels of the first conv stage"})
    weight: float = field(default=1.0, metadata={"help": "product-of-experts weight recorded in outline.pt "
                                                 "(the derenderer's shape probabilities times the outline's ** weight)"})
    augment: bool = field(default=True, metadata={"help": "mirror the silhouettes and grow or shrink their masks by a "
                                                  "pixel in training (--no-augment: neither)"})
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        for name in ("epochs", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"OutlineTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"OutlineTrainConfig.lr must be > 0, got {self.lr}")
        if self.masks not in ("proposal", "gt", "mixed"):
            raise ConfigError(f"OutlineTrainConfig.masks must be proposal, gt or mixed, got {self.masks!r}")
        if not self.match_distance > 0:
            raise ConfigError(f"OutlineTrainConfig.match_distance must be > 0, got {self.match_distance}")
        self.outline_config  # noqa: B018 -- one-line errors for crop size, width and weight

    @property
    def outline_config(self) -> OutlineConfig:
        return OutlineConfig(crop_size=self.crop_size, width=self.width, weight=self.weight)


def outline_command_line(config: OutlineTrainConfig) -> str:
    """The ``nesy train outline`` command that reproduces ``config`` (threads and defaults left out)."""
    flags = config_flags(config, skip=("threads",), defaults=OutlineTrainConfig(data=config.data), keep=("data",))
    return " ".join(["nesy", "train", "outline", *flags])


def _to_uint8(crops: torch.Tensor) -> torch.Tensor:
    return (crops * 255).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def outline_arrays(
    samples: Sequence[DerenderSample],
    proposal_net: ProposalNet,
    config: OutlineConfig,
    *,
    masks: str = "mixed",
    max_distance: float = 20.0,
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Silhouette crops with shape labels: proposal masks matched to true objects, true masks, or both.

    Returns:
        ``{"crops": uint8 [M, 2, S, S], "boxes": float [M, 4], "shape": int64 [M]}`` and counts
        ``{"true_objects", "proposals", "matched", "gt_crops"}``.
    """
    proposal_net.eval()
    hin, win = proposal_net.config.input_size
    out_hw = (hin // proposal_net.config.stride, win // proposal_net.config.stride)
    shapes = ATTRIBUTES["shape"]
    records: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    counts = {"true_objects": 0, "proposals": 0, "matched": 0, "gt_crops": 0}
    for start in tqdm(range(0, len(samples), batch_size), desc="outline crops", disable=not progress):
        batch = samples[start : start + batch_size]
        images = [image_to_tensor(load_image(s.image_path)) for s in batch]
        predicted = predict_masks(proposal_net, images) if masks != "gt" else [None] * len(batch)
        for s, pred in zip(batch, predicted, strict=True):
            objs = visible_objects(s)
            counts["true_objects"] += len(objs)
            if masks != "proposal":
                ids = torch.from_numpy(_gt_mask(s))
                n = len(s.scene.objects)
                full = ids.unsqueeze(0) == torch.arange(1, n + 1).view(n, 1, 1)
                full = full[full.flatten(1).any(1)]
                coarse = _coarsen(full, out_hw)
                empty = ~coarse.flatten(1).any(1)
                coarse[empty] = full[empty]
                if len(coarse):
                    crops, boxes = outline_crops(coarse, config)
                    labels = torch.tensor([shapes.index(o.shape) for o in objs])
                    records.append((_to_uint8(crops), boxes, labels))
                    counts["gt_crops"] += len(coarse)
            if pred is None:
                continue
            counts["proposals"] += len(pred)
            rows, cols = match_proposals(pred, objs, max_distance, where=s.image_path.name)
            if len(rows) == 0:
                continue
            counts["matched"] += len(rows)
            crops, boxes = outline_crops(pred, config)
            idx = torch.from_numpy(rows)
            records.append((_to_uint8(crops[idx]), boxes[idx], torch.tensor([shapes.index(objs[j].shape) for j in cols])))
    if not records:
        raise DataError("no silhouettes in the training scenes")
    arrays = {name: torch.cat([r[k] for r in records]) for k, name in enumerate(("crops", "boxes", "shape"))}
    return arrays, counts


def train_outline(config: OutlineTrainConfig, *, command: str = "", progress: bool = True) -> dict[str, Any]:
    """Run ``nesy train outline``: silhouettes of the training scenes, the network, ``OUT/outline.pt``."""
    from perception.registry import load_perceiver

    torch.set_num_threads(config.threads)
    out = Path(config.out)
    ensure_dir(out)
    samples = load_derender_folders(config.data, limit=config.limit)
    if not samples:
        raise DataError(f"{config.data}: no training scenes")
    command = command or outline_command_line(config)
    ocfg = config.outline_config
    summary: dict[str, Any] = {"config": asdict(config), "command": command, "n_train_scenes": len(samples)}
    t0 = time.perf_counter()
    net = load_trained(OutlineNet(ocfg), out / "outline_train.pt", config.epochs)
    if net is None:
        derenderer = load_perceiver(config.perceiver, config.checkpoint)
        proposal_net = getattr(derenderer, "proposal_net", None)
        if proposal_net is None:
            raise ConfigError(f"--perceiver {config.perceiver!r} has no proposal network (a derenderer is needed)")
        arrays, counts = outline_arrays(samples, proposal_net, ocfg, masks=config.masks,
                                        max_distance=config.match_distance, progress=progress)
        summary.update(counts=counts, n_train_crops=len(arrays["crops"]), prep_s=round(time.perf_counter() - t0, 1))
        net, _ = train_outline_net(arrays, ocfg, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                                   seed=config.seed, out=out, augment=config.augment, progress=progress,
                                   flags=asdict(config), command=command)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    save_outline(out / "outline.pt", net, metadata={"command": command, "seed": config.seed, "data": config.data,
                                                      "n_train_scenes": len(samples), "perceiver": config.perceiver,
                                                      **{k: summary[k] for k in ("counts", "n_train_crops") if k in summary}})
    summary["checkpoint"] = str(out / "outline.pt")
    atomic_write_json(out / "summary.json", summary, indent=2)
    return summary
