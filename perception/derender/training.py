"""Training the derenderer on generated scenes (``nesy train derender``).

Three steps, each from the ground truth the world writes (instance masks and
CLEVR scene JSON):

1. calibrate the camera from the scenes' ``3d_coords``/``pixel_coords``
   (:func:`perception.derender.camera.fit_projection`);
2. train :class:`ProposalNet` on the images and instance masks;
3. train :class:`AttributeNet` on crops of the ground-truth masks, coarsened to
   the proposal network's output resolution so that training crops look like
   the crops of predicted masks (``--attribute-masks gt``), or on the trained
   proposal network's own masks, labelled by the true object they match
   (Hungarian assignment on centre distance; ``proposal``), or on both
   (``mixed``).  ``--attribute-init`` fine-tunes the attribute network of an
   earlier derenderer and ``--proposal-from`` takes its proposal network.

Each network checkpoints after every epoch (atomic writes) and resumes from the
last finished epoch; each epoch appends one JSON line to ``metrics.jsonl``.  The
final ``derender.pt`` stores both networks, the camera, and in its metadata the
command, seed and data that reproduce it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from perception.derender.attributes import (
    AttributeConfig,
    AttributeNet,
    attribute_loss,
    crop_objects,
    jitter_crops,
)
from perception.derender.camera import fit_projection, project
from perception.derender.data import (
    DerenderSample,
    load_derender_folder,
    load_image,
    load_instance_mask,
)
from perception.derender.derenderer import Derenderer, image_to_tensor, save_derenderer
from perception.derender.metrics import perception_metrics
from perception.derender.proposals import (
    ProposalConfig,
    ProposalNet,
    predict_masks,
    proposal_loss,
    proposal_targets,
)
from physics.errors import CheckpointError, ConfigError, DataError
from physics.io import atomic_torch_save, atomic_write_json, torch_load
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = [
    "DerenderTrainConfig",
    "calibrate_camera",
    "proposal_arrays",
    "attribute_arrays",
    "proposal_attribute_arrays",
    "train_proposal_net",
    "train_attribute_net",
    "evaluate_derenderer",
    "train_derenderer",
    "command_line",
]


@dataclass(frozen=True)
class DerenderTrainConfig:
    """Options of ``nesy train derender`` (each field is a flag)."""

    data: str = field(metadata={"help": "training data folder written by `nesy data clevr`"})
    out: str = field(default="runs/derender", metadata={"help": "output folder (checkpoints, metrics.jsonl)"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation and batch order"})
    epochs: int = field(default=10, metadata={"help": "epochs of each network unless set below"})
    proposal_epochs: int | None = field(default=None, metadata={"help": "epochs of the proposal network"})
    attribute_epochs: int | None = field(default=None, metadata={"help": "epochs of the attribute network"})
    batch_size: int = field(default=8, metadata={"help": "images per proposal-network batch"})
    attribute_batch_size: int = field(default=64, metadata={"help": "crops per attribute-network batch"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate (cosine decay to 5 percent)"})
    limit: int | None = field(default=None, metadata={"help": "use the first N training scenes"})
    stage: str = field(
        default="all",
        metadata={"help": "which networks to train", "choices": ("all", "proposal", "attribute")},
    )
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out data folder to evaluate on"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate on the first N held-out scenes"})
    input_height: int = field(default=160, metadata={"help": "proposal-network input height"})
    input_width: int = field(default=240, metadata={"help": "proposal-network input width"})
    width: int = field(default=16, metadata={"help": "proposal-network base channels"})
    attribute_width: int = field(default=32, metadata={"help": "attribute-network base channels"})
    crop_size: int = field(default=48, metadata={"help": "attribute crop side in pixels"})
    skip: int = field(default=0, metadata={"help": "leave out the first N training scenes (--limit counts after them)"})
    attribute_masks: str = field(
        default="gt",
        metadata={
            "help": "masks of the attribute network's training crops: true masks coarsened to the proposal grid, "
            "the proposal network's own masks (matched to true objects by centre distance), or both",
            "choices": ("gt", "proposal", "mixed"),
        },
    )
    match_distance: float = field(
        default=20.0, metadata={"help": "proposal masks: largest centre distance (px) to a matched true object"}
    )
    proposal_from: str | None = field(
        default=None,
        metadata={"help": "derender.pt whose proposal network makes the proposal masks and joins the result "
                  "(--stage attribute; default: OUT's trained proposal network)"},
    )
    attribute_init: str | None = field(
        default=None, metadata={"help": "derender.pt whose attribute network is fine-tuned instead of a new one"}
    )
    attribute_augment: bool = field(
        default=False,
        metadata={"help": "jitter each attribute training crop's box (shift, scale) and mask (grow, shrink)"},
    )
    proposal_init: str | None = field(
        default=None,
        metadata={"help": "derender.pt whose proposal network is fine-tuned instead of a new one (it is fully "
                  "convolutional: --input-height/--input-width may differ from its own)"},
    )
    offset_balance: float = field(
        default=0.0,
        metadata={"help": "share (0..1) of the proposal offset loss averaged per object instead of per pixel: "
                  "small, half-hidden objects weigh as much as large ones"},
    )

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "attribute_batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DerenderTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"DerenderTrainConfig.lr must be > 0, got {self.lr}")
        if self.skip < 0:
            raise ConfigError(f"DerenderTrainConfig.skip must be >= 0, got {self.skip}")
        if self.attribute_masks not in ("gt", "proposal", "mixed"):
            raise ConfigError(f"DerenderTrainConfig.attribute_masks must be gt, proposal or mixed, "
                              f"got {self.attribute_masks!r}")
        if not 0.0 <= self.offset_balance <= 1.0:
            raise ConfigError(f"DerenderTrainConfig.offset_balance must lie in [0, 1], got {self.offset_balance}")
        if not self.match_distance > 0:
            raise ConfigError(f"DerenderTrainConfig.match_distance must be > 0, got {self.match_distance}")
        if self.proposal_from is not None and self.stage != "attribute":
            raise ConfigError("DerenderTrainConfig.proposal_from needs stage='attribute' (it replaces training "
                              "the proposal network)")
        if self.proposal_init is not None and self.stage == "attribute":
            raise ConfigError("DerenderTrainConfig.proposal_init needs stage 'proposal' or 'all' (it starts the "
                              "proposal network's training)")

    @property
    def proposal_config(self) -> ProposalConfig:
        return ProposalConfig(input_size=(self.input_height, self.input_width), width=self.width)

    @property
    def attribute_config(self) -> AttributeConfig:
        return AttributeConfig(crop_size=self.crop_size, width=self.attribute_width)


# ---------------------------------------------------------------------- data
def calibrate_camera(scenes: Sequence[Any]) -> tuple[np.ndarray, float, dict[str, float]]:
    """Fit the camera and resting heights to annotated scenes.

    Args:
        scenes: SceneGraphs whose objects carry ``pixel_coords``.

    Returns:
        (P [3, 4], mean reprojection error in pixels, {"shape/size": median z}).
    """
    pts, pix = [], []
    for s in scenes:
        for o in s.objects:
            if o.pixel_coords is not None:
                pts.append(o.position)
                pix.append(o.pixel_coords[:2])
    if len(pts) < 6:
        raise DataError(f"camera calibration needs objects with pixel_coords; found {len(pts)} (need >= 6)")
    P = fit_projection(np.asarray(pts), np.asarray(pix))
    err = float(np.linalg.norm(project(P, np.asarray(pts))[:, :2] - np.asarray(pix), axis=1).mean())
    zs: dict[str, list[float]] = {}
    for s in scenes:
        for o in s.objects:
            zs.setdefault(f"{o.shape}/{o.size}", []).append(o.position[2])
    heights = {k: float(np.median(v)) for k, v in sorted(zs.items())}
    return P, err, heights


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
    from scipy.optimize import linear_sum_assignment

    proposal_net.eval()
    records = []
    counts = {"proposals": 0, "matched": 0, "true_objects": 0}
    starts = range(0, len(samples), batch_size)
    for start in tqdm(starts, desc="proposal masks", disable=not progress):
        batch = samples[start : start + batch_size]
        images = [image_to_tensor(load_image(s.image_path)) for s in batch]
        for s, image, masks in zip(batch, images, predict_masks(proposal_net, images), strict=True):
            objs = list(s.scene.objects)
            if s.mask_path is not None:  # objects hidden completely cannot be proposed
                visible = set(np.unique(_gt_mask(s)).tolist())
                objs = [o for k, o in enumerate(objs) if k + 1 in visible]
            counts["true_objects"] += len(objs)
            counts["proposals"] += len(masks)
            if len(masks) == 0 or not objs:
                continue
            if any(o.pixel_coords is None for o in objs):
                raise DataError(f"{s.image_path.name}: objects need pixel_coords for matching proposals")
            ys = torch.arange(image.shape[1], dtype=torch.float32).view(1, -1, 1)
            xs = torch.arange(image.shape[2], dtype=torch.float32).view(1, 1, -1)
            area = masks.flatten(1).sum(1).float()
            cx = (masks * xs).flatten(1).sum(1) / area
            cy = (masks * ys).flatten(1).sum(1) / area
            uv = np.array([o.pixel_coords[:2] for o in objs], dtype=np.float64)
            dist = np.hypot(cx.numpy()[:, None] - uv[None, :, 0], cy.numpy()[:, None] - uv[None, :, 1])
            rows, cols = linear_sum_assignment(dist)
            ok = dist[rows, cols] <= max_distance
            rows, cols = rows[ok], cols[ok]
            if len(rows) == 0:
                continue
            counts["matched"] += len(rows)
            records.append(_object_records(image, masks[torch.from_numpy(rows)], [objs[j] for j in cols], config))
    return _stack_records(records, "matched proposals"), counts


# ---------------------------------------------------------------------- training loops
def _lr_at(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 5% of it, after a short warm-up."""
    warm = max(1, total // 50)
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single O_APPEND write (stages may run side by side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: torch.Generator | None = None) -> int:
    """Load a training checkpoint if present; returns the number of finished epochs."""
    if not path.is_file():
        return 0
    ckpt = torch_load(path, "training checkpoint")
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if rng is not None and "rng" in ckpt:
            rng.set_state(ckpt["rng"])
        return int(ckpt["epoch"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot resume ({exc}); delete it to start over") from None


def _fit(
    name: str,
    model: torch.nn.Module,
    n_items: int,
    batch_size: int,
    epochs: int,
    lr: float,
    seed: int,
    step_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    ckpt_path: Path,
    metrics_path: Path,
    progress: bool,
    rng: torch.Generator | None = None,
) -> list[dict[str, Any]]:
    """Shared epoch loop: shuffled batches, Adam, cosine LR, resume, JSONL metrics.

    ``rng``: a generator ``step_fn`` draws from (augmentation); its state is
    checkpointed with the weights, so a resumed run draws what an uninterrupted one would.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = _resume(ckpt_path, model, opt, rng)
    steps_per_epoch = max(1, math.ceil(n_items / batch_size))
    total = steps_per_epoch * epochs
    history = []
    for epoch in range(start, epochs):
        model.train()
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)  # same order when resumed
        order = torch.randperm(n_items, generator=gen)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {epoch + 1}/{epochs}", disable=not progress)
        for b in bar:
            for group in opt.param_groups:
                group["lr"] = _lr_at(lr, epoch * steps_per_epoch + b, total)
            parts = step_fn(order[b * batch_size : (b + 1) * batch_size])
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{sums['loss'] / (b + 1):.4f}")
        record = {"stage": name, "epoch": epoch + 1, "wall_s": round(time.perf_counter() - t0, 2)}
        record.update({k: v / steps_per_epoch for k, v in sums.items()})
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1}
        if rng is not None:
            state["rng"] = rng.get_state()
        atomic_torch_save(ckpt_path, state)
        _append_jsonl(metrics_path, record)
        history.append(record)
    model.eval()
    return history


def train_proposal_net(
    images: torch.Tensor,
    masks: torch.Tensor,
    config: ProposalConfig,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    out: Path,
    init: ProposalNet | None = None,
    offset_balance: float = 0.0,
    progress: bool = True,
) -> tuple[ProposalNet, list[dict[str, Any]]]:
    """Train (or resume) a proposal network on uint8 images and output-resolution masks.

    ``init``: start from this network's weights (fine-tuning, e.g. at a larger
    input size) instead of a new one; its width must match ``config``'s.
    ``offset_balance``: :func:`proposal_loss`'s ``instance_balance``.
    """
    torch.manual_seed(seed)
    net = ProposalNet(config)
    if init is not None:
        try:
            net.load_state_dict(init.state_dict())
        except RuntimeError as exc:
            raise CheckpointError(f"the initial proposal network does not fit {config}: {exc}") from None

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images[idx].float() / 255.0
        targets = proposal_targets(masks[idx].long(), config)
        return proposal_loss(net(x), targets, instance_balance=offset_balance)

    hist = _fit("proposal", net, len(images), batch_size, epochs, lr, seed, step,
                out / "proposal_train.pt", out / "metrics.jsonl", progress)
    return net, hist


def train_attribute_net(
    arrays: dict[str, torch.Tensor],
    config: AttributeConfig,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    out: Path,
    init: AttributeNet | None = None,
    augment: bool = False,
    progress: bool = True,
) -> tuple[AttributeNet, list[dict[str, Any]]]:
    """Train (or resume) an attribute network on :func:`attribute_arrays` output.

    ``init``: start from this network's weights (fine-tuning) instead of a new one.
    ``augment``: jitter every batch's crops (:func:`jitter_crops`).
    """
    torch.manual_seed(seed)
    net = AttributeNet(config)
    if init is not None:
        try:
            net.load_state_dict(init.state_dict())
        except RuntimeError as exc:
            raise CheckpointError(f"the initial attribute network does not fit {config}: {exc}") from None
    names = list(ATTRIBUTES)
    gen = torch.Generator().manual_seed(seed)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        crops, boxes, target = arrays["crops"][idx].float() / 255.0, arrays["boxes"][idx], arrays["centre"][idx]
        if augment:
            crops, boxes, target = jitter_crops(crops, boxes, target, gen)
        logits, centre = net(crops, boxes)
        labels = {a: arrays["labels"][idx, k] for k, a in enumerate(names)}
        parts = attribute_loss(logits, centre, labels, target)
        with torch.no_grad():
            hits = torch.stack([logits[a].argmax(1) == labels[a] for a in names]).all(0)
            parts["train_accuracy"] = hits.float().mean()
        return parts

    hist = _fit("attribute", net, len(arrays["crops"]), batch_size, epochs, lr, seed, step,
                out / "attribute_train.pt", out / "metrics.jsonl", progress, rng=gen)
    return net, hist


# ---------------------------------------------------------------------- evaluation
def evaluate_derenderer(
    derenderer: Derenderer, samples: Sequence[DerenderSample], *, progress: bool = True
) -> dict[str, Any]:
    """Derender every sample's image and score it against its scene (perception_metrics)."""
    preds = [
        derenderer(load_image(s.image_path), image_index=s.scene.image_index, image_filename=s.scene.image_filename)
        for s in tqdm(samples, desc="derender", disable=not progress)
    ]
    return perception_metrics(preds, [s.scene for s in samples])


def train_derenderer(config: DerenderTrainConfig, *, command: str = "", progress: bool = True) -> dict[str, Any]:
    """Run ``nesy train derender``: calibrate, train both networks, save, evaluate.

    Returns a JSON-ready summary (paths, wall times, camera error, metrics).
    """
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    end = None if config.limit is None else config.skip + config.limit
    samples = load_derender_folder(config.data, limit=end)[config.skip :]
    if not samples:
        raise DataError(f"{config.data}: no training scenes (skip {config.skip}, limit {config.limit})")
    first = load_image(samples[0].image_path)
    image_size = (int(first.shape[0]), int(first.shape[1]))
    P, camera_err, heights = calibrate_camera([s.scene for s in samples])
    pcfg, acfg = config.proposal_config, config.attribute_config
    given_pnet = _network_from(config.proposal_from, "proposal") if config.proposal_from else None
    init_anet = _network_from(config.attribute_init, "attribute") if config.attribute_init else None
    init_pnet = _network_from(config.proposal_init, "proposal") if config.proposal_init else None
    if given_pnet is not None:
        pcfg = given_pnet.config
    summary: dict[str, Any] = {"config": asdict(config), "command": command or command_line(config),
                               "n_train_scenes": len(samples), "image_size": list(image_size),
                               "camera_reprojection_px": camera_err}
    p_epochs = config.proposal_epochs or config.epochs
    a_epochs = config.attribute_epochs or config.epochs

    t0 = time.perf_counter()
    if config.stage in ("all", "proposal"):
        images, masks = proposal_arrays(samples, pcfg, progress=progress)
        pnet, _ = train_proposal_net(images, masks, pcfg, epochs=p_epochs, batch_size=config.batch_size,
                                     lr=config.lr, seed=config.seed, out=out, init=init_pnet,
                                     offset_balance=config.offset_balance, progress=progress)
        del images, masks
        summary["proposal_wall_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    if config.stage in ("all", "attribute") and _load_trained(AttributeNet(acfg), out / "attribute_train.pt",
                                                             a_epochs) is None:
        parts = []
        if config.attribute_masks in ("gt", "mixed"):
            parts.append(attribute_arrays(samples, acfg, pcfg, progress=progress))
        if config.attribute_masks in ("proposal", "mixed"):
            mask_net = given_pnet or _load_trained(ProposalNet(pcfg), out / "proposal_train.pt", p_epochs)
            if mask_net is None:
                raise ConfigError("--attribute-masks proposal/mixed needs a trained proposal network: "
                                  f"--stage all, a finished {out / 'proposal_train.pt'}, or --proposal-from")
            t1 = time.perf_counter()
            arrays, counts = proposal_attribute_arrays(samples, mask_net, acfg, max_distance=config.match_distance,
                                                       progress=progress)
            summary["proposal_masks"] = {**counts, "wall_s": round(time.perf_counter() - t1, 1)}
            parts.append(arrays)
        arrays = {k: torch.cat([a[k] for a in parts]) for k in parts[0]}
        del parts
        summary["n_train_objects"] = len(arrays["crops"])
        summary["attribute_prep_s"] = round(time.perf_counter() - t0, 1)
        anet, _ = train_attribute_net(arrays, acfg, epochs=a_epochs, batch_size=config.attribute_batch_size,
                                      lr=config.lr, seed=config.seed, out=out, init=init_anet,
                                      augment=config.attribute_augment, progress=progress)
        summary["attribute_wall_s"] = round(time.perf_counter() - t0, 1)

    # a stage run alone (``--stage proposal``) finishes the derenderer once the
    # other stage's checkpoint is complete; until then it stops here
    pnet = given_pnet or _load_trained(ProposalNet(pcfg), out / "proposal_train.pt", p_epochs)
    anet = _load_trained(AttributeNet(acfg), out / "attribute_train.pt", a_epochs)
    if pnet is None or anet is None:
        summary["checkpoint"] = None
        atomic_write_json(out / f"summary_{config.stage}.json", summary, indent=2)
        return summary
    metadata = {"command": summary["command"], "seed": config.seed, "data": str(config.data),
                "n_train_scenes": len(samples), "camera_reprojection_px": camera_err,
                "proposal_epochs": p_epochs, "attribute_epochs": a_epochs}
    metadata.update({k: summary[k] for k in ("proposal_wall_s", "attribute_wall_s", "proposal_masks")
                     if k in summary})
    configs = [config]
    if config.stage != "all" and given_pnet is None:
        record, first_config = _other_stage(config, summary["command"], len(samples), out)
        metadata.update(record)
        configs = [c for c in (first_config, config) if c is not None]
    elif given_pnet is not None:  # the proposal network was not trained here
        metadata[f"{config.stage}_scenes"] = len(samples)
        del metadata["proposal_epochs"]
    metadata.update(_based_on(configs, metadata["command"]))
    derenderer = Derenderer(pnet, anet, P, image_size, heights, metadata=metadata)
    if config.eval_data:
        held_out = load_derender_folder(config.eval_data, limit=config.eval_limit)
        metrics = evaluate_derenderer(derenderer, held_out, progress=progress)
        metrics["data"] = str(config.eval_data)
        summary["eval"] = metrics
        metadata["eval"] = {k: v for k, v in metrics.items()}
        atomic_write_json(out / "eval.json", metrics, indent=2)
    save_derenderer(out / "derender.pt", pnet, anet, P, image_size, heights, metadata=metadata)
    summary["checkpoint"] = str(out / "derender.pt")
    atomic_write_json(out / "summary.json", summary, indent=2)
    return summary


def _other_stage(
    config: DerenderTrainConfig, command: str, n_scenes: int, out: Path
) -> tuple[dict[str, Any], DerenderTrainConfig | None]:
    """Metadata of a derenderer finished by one stage run: both stages' commands, data and wall times.

    The stage that finished first left ``OUT/summary_<stage>.json``; the
    returned ``command`` reruns the two stages in the order they ran (the
    finishing run calibrates the camera on its own scenes, so order matters).
    Also returns that first run's config (None when the other network came
    from elsewhere), whose own starting checkpoints :func:`_based_on` records.
    """
    other = "attribute" if config.stage == "proposal" else "proposal"
    path = out / f"summary_{other}.json"
    if not path.is_file():  # the other network came from elsewhere: say only what ran here
        return {f"{config.stage}_scenes": n_scenes}, None
    try:
        first = json.loads(path.read_text(encoding="utf-8"))
        first_config = DerenderTrainConfig(**first["config"])
        other_command = first.get("command") or command_line(first_config)
        record: dict[str, Any] = {f"{other}_scenes": int(first["n_train_scenes"]), f"{config.stage}_scenes": n_scenes}
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise DataError(f"{path}: unreadable stage summary ({exc}); delete it or rerun that stage") from None
    if f"{other}_wall_s" in first:
        record[f"{other}_wall_s"] = first[f"{other}_wall_s"]
    record["command"] = f"{other_command} && {command}"
    return record, first_config


def _network_from(path: str, part: str) -> Any:
    """The ``part`` ("proposal" or "attribute") network of a finished derender.pt."""
    from perception.derender.derenderer import load_derenderer

    derenderer = load_derenderer(path)
    net = derenderer.proposal_net if part == "proposal" else derenderer.attribute_net
    return net


def _based_on(configs: Sequence[DerenderTrainConfig], command: str) -> dict[str, Any]:
    """Metadata of a run started from earlier derenderers: their commands run first.

    ``command`` becomes ``<earlier command> && <this command>`` for each distinct
    checkpoint named by ``--proposal-from`` / ``--proposal-init`` /
    ``--attribute-init`` in any of ``configs`` (both stage runs of a derenderer
    trained by two ``--stage`` runs).
    """
    named = (p for c in configs for p in (c.proposal_from, c.proposal_init, c.attribute_init))
    paths = list(dict.fromkeys(p for p in named if p))
    if not paths:
        return {}
    from perception.derender.derenderer import load_derenderer

    earlier, training = [], {}
    keep = ("n_train_scenes", "proposal_scenes", "attribute_scenes", "proposal_epochs", "attribute_epochs",
            "proposal_wall_s", "attribute_wall_s")
    for path in paths:
        meta = load_derenderer(path).metadata
        if meta.get("command"):
            earlier.append(str(meta["command"]))
        training[path] = {k: meta[k] for k in keep if k in meta}
    return {"based_on": paths, "based_on_training": training, "command": " && ".join([*earlier, command])}


def _load_trained(net: Any, path: Path, epochs: int) -> Any:
    """The network of a finished training checkpoint, or None while it is missing or unfinished."""
    if not path.is_file():
        return None
    ckpt = torch_load(path, "training checkpoint")
    try:
        if int(ckpt["epoch"]) < epochs:
            return None
        net.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: does not fit the network: {exc}") from None
    return net.eval()


def command_line(config: DerenderTrainConfig) -> str:
    """The ``nesy train derender`` command that reproduces ``config`` (threads left out)."""
    parts = ["nesy", "train", "derender"]
    defaults = DerenderTrainConfig(data=config.data)
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "threads" or (f.name != "data" and value == getattr(defaults, f.name)):
            continue
        flag = f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(f"--{flag}" if value else f"--no-{flag}")
            continue
        parts += ["--" + flag, str(value)]
    return " ".join(parts)
