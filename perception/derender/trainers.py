"""The derenderer's two network trainers, on the shared :class:`~physics.training.TrainLoop`.

Each network trains for whole epochs of shuffled batches (the order of epoch e
comes from a generator seeded by ``(seed, e)``) with Adam and a warm-up + cosine
learning rate (:class:`~physics.training.WarmupCosine`, down to 5 percent); it
checkpoints after every epoch to ``OUT/<network>_train.pt`` (weights, optimiser,
RNG states including the augmentation generator, flags and command) and appends
one JSON line per epoch to ``OUT/metrics.jsonl`` (and TensorBoard scalars to
``OUT/tb/`` when ``tensorboard`` is installed).  A rerun resumes bit-identically;
a rerun with other training flags is refused (only
:data:`~perception.derender.train_config.RESUMABLE_CHANGES` may differ).

Under ``torchrun`` (:mod:`physics.training.distributed`) both networks split each
global batch (``--batch-size``, ``--attribute-batch-size``) across the processes:
every process draws the same order and the same augmentation of the whole batch
(on the CPU, from the checkpointed generators) and trains on its share
(:func:`~physics.training.distributed.rank_share`).  The attribute network's
losses are per-crop means, so each share is weighted by its size; the proposal
network's losses are ratios over the whole batch (pixels, foreground pixels,
images), so their counts are summed over the processes and each share's sums
divided by them.  Either way the averaged gradient is the global batch's.  Rank 0
alone writes checkpoints and metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from perception.derender.attributes import (
    AttributeConfig,
    AttributeNet,
    attribute_loss,
    flip_crops,
    jitter_crops,
)
from perception.derender.look import jitter_look
from perception.derender.occlusion import occlude_crops
from perception.derender.outline import OutlineConfig, OutlineNet, augment_outlines
from perception.derender.proposals import (
    ProposalConfig,
    ProposalNet,
    proposal_loss,
    proposal_targets,
)
from perception.derender.train_config import RESUMABLE_CHANGES
from physics.errors import CheckpointError
from physics.io import require_fields, torch_load
from physics.training import RunLog, TrainLoop, WarmupCosine
from physics.training.distributed import (
    WorldInfo,
    global_batch_norm,
    rank_share,
    sum_over_ranks,
    world_info,
)
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["train_proposal_net", "train_attribute_net", "train_outline_net", "load_trained", "network_from",
           "TRAIN_FORMAT"]

TRAIN_FORMAT = "nesy-derender-train-1"


def _fit(
    name: str,
    model: torch.nn.Module,
    n_items: int,
    batch_size: int,
    epochs: int,
    lr: float,
    seed: int,
    step_fn: Any,
    out: Path,
    progress: bool,
    flags: dict[str, Any] | None,
    command: str,
    generators: dict[str, torch.Generator] | None = None,
    world: WorldInfo | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` on shuffled index batches of ``n_items`` with the shared loop (resuming if possible).

    Under torchrun every process gets the same global batches; ``step_fn`` takes its share.
    """
    world = world or world_info()
    steps_per_epoch = max(1, math.ceil(n_items / batch_size))

    def payload() -> dict[str, Any]:
        return {"format": TRAIN_FORMAT, "network": name, "config": _plain(model.config),
                "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}

    def same_network(ckpt: dict[str, Any]) -> None:
        if ckpt.get("network", name) != name:
            raise CheckpointError(f"{out / f'{name}_train.pt'} holds a {ckpt.get('network')} network, not a {name} one")

    def batches(epoch: int) -> list[torch.Tensor]:
        order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        every = [order[b * batch_size : (b + 1) * batch_size] for b in range(steps_per_epoch)]
        # a last batch smaller than the world would leave a process without a share
        return every if world.size == 1 else [b for b in every if len(b) >= world.size]

    loop = TrainLoop(
        model, torch.optim.Adam(model.parameters(), lr=lr), WarmupCosine(lr, steps_per_epoch * epochs),
        out / f"{name}_train.pt", flags=flags if flags is not None else {"epochs": epochs, "lr": lr, "seed": seed,
                                                                          "batch_size": batch_size},
        command=command, payload=payload, generators=generators,
        log=RunLog(out / "metrics.jsonl", rewrite=False, tensorboard=out / "tb") if world.is_main else None,
        tags={"stage": name}, may_change=RESUMABLE_CHANGES, desc=name, progress=progress,
        distributed=True, world=world,
    )
    loop.resume(check=same_network)
    try:
        return loop.fit(epochs, batches, step_fn, steps_in=lambda _: steps_per_epoch)
    finally:
        if loop.log is not None:
            loop.log.close()


def _share(n: int, world: WorldInfo) -> slice:
    """This process's contiguous share of a global batch of ``n`` (everything outside torchrun)."""
    if world.size == 1:
        return slice(0, n)
    positions = rank_share(range(n), world)
    return slice(positions[0], positions[-1] + 1)


def _new_network(cls: type, config: Any, seed: int, init: torch.nn.Module | None, part: str,
                 device: torch.device | None = None, world: WorldInfo | None = None) -> Any:
    """A ``cls`` network initialised from ``seed``, or with ``init``'s weights (fine-tuning)."""
    torch.manual_seed(seed)
    net = cls(config)
    if init is not None:
        try:
            net.load_state_dict(init.state_dict())
        except RuntimeError as exc:
            raise CheckpointError(f"the initial {part} network does not fit {config}: {exc}") from None
    if world is not None and world.size > 1:
        global_batch_norm(net)  # statistics of the global batch, not of each share
    return net if device is None else net.to(device)


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
    close_weight: float = 1.0,
    look: bool = False,
    progress: bool = True,
    flags: dict[str, Any] | None = None,
    command: str = "",
    device: torch.device | None = None,
    world: WorldInfo | None = None,
) -> tuple[ProposalNet, list[dict[str, Any]]]:
    """Train (or resume) a proposal network on uint8 images and output-resolution masks.

    ``init``: start from this network's weights (fine-tuning, e.g. at a larger
    input size) instead of a new one; its width must match ``config``'s.
    ``offset_balance``: :func:`proposal_loss`'s ``instance_balance``.
    ``close_weight``: :func:`proposal_targets`' weight of objects touching a neighbour (1: off).
    ``look``: jitter every batch's look (:func:`~perception.derender.look.jitter_look`)
    with a generator seeded by ``seed`` and checkpointed with the weights.
    ``flags`` / ``command``: the run's training flags (a resume must match them) and
    the command that reproduces it (default: the arguments here).
    ``device``: where the network trains (data stay on the CPU until each batch).
    ``world``: the torchrun process group (default: the running one, if any).
    """
    world = world or world_info()
    net = _new_network(ProposalNet, config, seed, init, "proposal", device, world)
    gen = torch.Generator().manual_seed(seed)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images[idx].float() / 255.0
        if look:
            x = jitter_look(x, gen)  # the whole global batch: the same draws on every process
        share = _share(len(idx), world)
        x, targets = x[share], proposal_targets(masks[idx[share]].long(), config, close_weight=close_weight)
        if device is not None:
            x, targets = x.to(device), {k: v.to(device) for k, v in targets.items()}
        if world.size == 1:
            return proposal_loss(net(x), targets, instance_balance=offset_balance)
        parts = proposal_loss(net(x), targets, instance_balance=offset_balance, sum_over=sum_over_ranks)
        # the shares' parts add up to the global loss; DDP averages, so each counts world.size times
        return {k: v * world.size for k, v in parts.items()}

    hist = _fit("proposal", net, len(images), batch_size, epochs, lr, seed, step, Path(out), progress, flags, command,
                generators={"look": gen}, world=world)
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
    look: bool = False,
    occlude: float = 0.0,
    occlude_centre: bool = True,
    flip: float = 0.0,
    progress: bool = True,
    flags: dict[str, Any] | None = None,
    command: str = "",
    device: torch.device | None = None,
    world: WorldInfo | None = None,
) -> tuple[AttributeNet, list[dict[str, Any]]]:
    """Train (or resume) an attribute network on :func:`~perception.derender.arrays.attribute_arrays` output.

    ``init``: start from this network's weights (fine-tuning) instead of a new one.
    ``augment``: jitter every batch's crops (:func:`jitter_crops`) with a generator
    seeded by ``seed`` and checkpointed with the weights.
    ``look``: also jitter every crop's look (:func:`~perception.derender.look.jitter_look`;
    the mask channel is kept), from a second checkpointed generator.
    ``occlude``: hide part of this share of each batch's crops behind another crop's
    object and re-cut them (:func:`~perception.derender.occlusion.occlude_crops`;
    before the jitter), from a third checkpointed generator; 0 draws nothing.
    ``occlude_centre``: False leaves the occluded crops' centre target out of the loss
    (their labels still count), so the occluders train the class heads only.
    ``flip``: mirror this share of each batch's crops left to right (:func:`flip_crops`;
    after the jitter), from a fourth checkpointed generator; 0 draws nothing.
    ``device`` / ``world``: as for :func:`train_proposal_net`.
    """
    world = world or world_info()
    net = _new_network(AttributeNet, config, seed, init, "attribute", device, world)
    names = list(ATTRIBUTES)
    gen = torch.Generator().manual_seed(seed)
    look_gen = torch.Generator().manual_seed(seed + 1)
    occlude_gen = torch.Generator().manual_seed(seed + 2)
    flip_gen = torch.Generator().manual_seed(seed + 3)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        crops, boxes, target = arrays["crops"][idx].float() / 255.0, arrays["boxes"][idx], arrays["centre"][idx]
        weight = None
        if occlude > 0:  # the scene first (a nearer object), then the proposal mask's wander
            crops, boxes, target, kept = occlude_crops(crops, boxes, target, occlude_gen, p=occlude,
                                                       margin=config.margin)
            if not occlude_centre:
                weight = (~kept).float()
        if augment:
            crops, boxes, target = jitter_crops(crops, boxes, target, gen)
        if flip > 0:
            crops, boxes, target = flip_crops(crops, boxes, target, flip_gen, p=flip)
        if look:
            crops = jitter_look(crops, look_gen)
        # augmented as a whole global batch (the same draws on every process), then this process's share
        share = _share(len(idx), world)
        crops, boxes, target, idx = crops[share], boxes[share], target[share], idx[share]
        if weight is not None:
            weight = weight[share]
        labels = {a: arrays["labels"][idx, k] for k, a in enumerate(names)}
        if device is not None:
            crops, boxes, target = crops.to(device), boxes.to(device), target.to(device)
            weight = weight.to(device) if weight is not None else None
            labels = {a: v.to(device) for a, v in labels.items()}
        logits, centre = net(crops, boxes)
        parts = attribute_loss(logits, centre, labels, target, weight)
        with torch.no_grad():
            hits = torch.stack([logits[a].argmax(1) == labels[a] for a in names]).all(0)
            parts["train_accuracy"] = hits.float().mean()
        if world.size > 1:
            parts["weight"] = len(idx)  # per-crop means: the loop weights each share by its size
        return parts

    hist = _fit("attribute", net, len(arrays["crops"]), batch_size, epochs, lr, seed, step, Path(out), progress,
                flags, command, generators={"augment": gen, "look": look_gen, **({"occlude": occlude_gen} if occlude > 0 else {}),
                                                  **({"flip": flip_gen} if flip > 0 else {})},
                world=world)
    return net, hist


def train_outline_net(
    arrays: dict[str, torch.Tensor],
    config: OutlineConfig,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    out: Path,
    augment: bool = True,
    progress: bool = True,
    flags: dict[str, Any] | None = None,
    command: str = "",
) -> tuple[OutlineNet, list[dict[str, Any]]]:
    """Train (or resume) an outline network on ``{"crops" uint8 [M, 2, S, S], "boxes" [M, 4], "shape" int64 [M]}``.

    ``augment``: mirror crops and grow or shrink their masks
    (:func:`~perception.derender.outline.augment_outlines`) from a generator seeded by
    ``seed`` and checkpointed with the weights.  One process (the network is small).
    """
    net = _new_network(OutlineNet, config, seed, None, "outline")
    gen = torch.Generator().manual_seed(seed)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        crops, boxes, labels = arrays["crops"][idx].float() / 255.0, arrays["boxes"][idx], arrays["shape"][idx]
        if augment:
            crops, boxes = augment_outlines(crops, boxes, gen)
        logits = net(crops, boxes)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        with torch.no_grad():
            accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss, "shape": loss.detach(), "train_accuracy": accuracy}

    hist = _fit("outline", net, len(arrays["crops"]), batch_size, epochs, lr, seed, step, Path(out), progress, flags,
                command, generators={"augment": gen}, world=WorldInfo())
    return net, hist


def load_trained(net: Any, path: Path, epochs: int) -> Any:
    """The network of a finished training checkpoint, or None while it is missing or unfinished.

    Raises:
        CheckpointError: damaged, wrongly structured, or not fitting ``net``.
    """
    if not path.is_file():
        return None
    ckpt = require_fields(torch_load(path, "training checkpoint"), path, "derenderer training checkpoint",
                          {"model": dict, "train_state": dict})
    state = require_fields(ckpt["train_state"], path, "derenderer training checkpoint's train_state", {"round": int})
    if state["round"] < epochs:
        return None
    try:
        net.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: does not fit the network: {exc}") from None
    return net.eval()


def network_from(path: str, part: str) -> Any:
    """The ``part`` ("proposal" or "attribute") network of a finished derender.pt."""
    from perception.derender.derenderer import load_derenderer

    derenderer = load_derenderer(path)
    return derenderer.proposal_net if part == "proposal" else derenderer.attribute_net


def _plain(config: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
