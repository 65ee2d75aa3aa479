"""Training the derenderer on generated scenes (``nesy train derender``).

Three steps, each from the ground truth the world writes (instance masks and
CLEVR scene JSON):

1. calibrate the camera from the scenes' ``3d_coords``/``pixel_coords``
   (:mod:`perception.derender.calibration`);
2. train :class:`ProposalNet` on the images and instance masks;
3. train :class:`AttributeNet` on crops of the ground-truth masks, coarsened to
   the proposal network's output resolution so that training crops look like
   the crops of predicted masks (``--attribute-masks gt``), or on the trained
   proposal network's own masks, labelled by the true object they match
   (Hungarian assignment on centre distance; ``proposal``), or on both
   (``mixed``).  ``--attribute-init`` fine-tunes the attribute network of an
   earlier derenderer and ``--proposal-from`` takes its proposal network.

The concerns live in their own modules: options and command line
(:mod:`~perception.derender.train_config`), calibration
(:mod:`~perception.derender.calibration`), training arrays
(:mod:`~perception.derender.arrays`), the two network trainers on the shared
training loop (:mod:`~perception.derender.trainers`: resumable after every epoch,
bit-identical, one JSON line per epoch in ``metrics.jsonl``) and provenance
(:mod:`~perception.derender.provenance`).  This module runs them in order; the
final ``derender.pt`` stores both networks, the camera, and in its metadata the
command, seed and data that reproduce it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from perception.derender.arrays import attribute_arrays, proposal_arrays, proposal_attribute_arrays
from perception.derender.attributes import AttributeNet
from perception.derender.calibration import calibrate_camera
from perception.derender.data import (
    DerenderSample,
    load_derender_folder,
    load_derender_folders,
    load_image,
)
from perception.derender.derenderer import Derenderer, save_derenderer
from perception.derender.metrics import perception_metrics
from perception.derender.proposals import ProposalNet
from perception.derender.provenance import based_on, other_stage
from perception.derender.train_config import DerenderTrainConfig, command_line
from perception.derender.trainers import (
    load_trained,
    network_from,
    train_attribute_net,
    train_proposal_net,
)
from physics.errors import ConfigError, DataError
from physics.io import atomic_write_json, ensure_dir
from physics.training.distributed import init_distributed, world_info

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

    Returns a JSON-ready summary (paths, wall times, camera error, metrics).  Under
    torchrun both networks split their batches across the processes
    (:mod:`~perception.derender.trainers`) and rank 0 alone evaluates and writes files.
    """
    from physics.models.training import resolve_device

    device = init_distributed(resolve_device(config.device))
    world = world_info()
    progress = progress and world.is_main
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    ensure_dir(out)
    end = None if config.limit is None else config.skip + config.limit
    samples = load_derender_folders(config.data, limit=end)[config.skip :]
    if not samples:
        raise DataError(f"{config.data}: no training scenes (skip {config.skip}, limit {config.limit})")
    # read before any training: a held-out folder that cannot be read is named first, not after the epochs
    held_out = load_derender_folder(config.eval_data, limit=config.eval_limit) if config.eval_data else []
    first = load_image(samples[0].image_path)
    image_size = (int(first.shape[0]), int(first.shape[1]))
    P, camera_err, heights = calibrate_camera([s.scene for s in samples])
    pcfg, acfg = config.proposal_config, config.attribute_config
    given_pnet = network_from(config.proposal_from, "proposal") if config.proposal_from else None
    init_anet = network_from(config.attribute_init, "attribute") if config.attribute_init else None
    init_pnet = network_from(config.proposal_init, "proposal") if config.proposal_init else None
    if given_pnet is not None:
        pcfg = given_pnet.config
    summary: dict[str, Any] = {"config": asdict(config), "command": command or command_line(config),
                               "n_train_scenes": len(samples), "image_size": list(image_size),
                               "camera_reprojection_px": camera_err}
    flags = asdict(config)
    p_epochs = config.proposal_epochs or config.epochs
    a_epochs = config.attribute_epochs or config.epochs

    t0 = time.perf_counter()
    if config.stage in ("all", "proposal"):
        images, masks = proposal_arrays(samples, pcfg, progress=progress)
        pnet, _ = train_proposal_net(images, masks, pcfg, epochs=p_epochs, batch_size=config.batch_size,
                                     lr=config.lr, seed=config.seed, out=out, init=init_pnet,
                                     offset_balance=config.offset_balance, close_weight=config.close_weight,
                                     look=config.look_augment,
                                     progress=progress, device=device, world=world,
                                     flags=flags, command=summary["command"])
        del images, masks
        summary["proposal_wall_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    if config.stage in ("all", "attribute") and load_trained(AttributeNet(acfg), out / "attribute_train.pt",
                                                             a_epochs) is None:
        parts = []
        if config.attribute_masks in ("gt", "mixed"):
            parts.append(attribute_arrays(samples, acfg, pcfg, progress=progress))
        if config.attribute_masks in ("proposal", "mixed"):
            mask_net = given_pnet or load_trained(ProposalNet(pcfg), out / "proposal_train.pt", p_epochs)
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
                                      augment=config.attribute_augment, look=config.look_augment,
                                      occlude=config.attribute_occlude,
                                      occlude_centre=not config.attribute_occlude_no_centre,
                                      flip=config.attribute_flip,
                                      progress=progress, device=device, world=world,
                                      flags=flags, command=summary["command"])
        summary["attribute_wall_s"] = round(time.perf_counter() - t0, 1)

    # a stage run alone (``--stage proposal``) finishes the derenderer once the
    # other stage's checkpoint is complete; until then it stops here
    pnet = given_pnet or load_trained(ProposalNet(pcfg), out / "proposal_train.pt", p_epochs)
    anet = load_trained(AttributeNet(acfg), out / "attribute_train.pt", a_epochs)
    if not world.is_main:  # the other processes' part ends with the training
        summary["checkpoint"] = None
        return summary
    if pnet is None or anet is None:
        summary["checkpoint"] = None
        atomic_write_json(out / f"summary_{config.stage}.json", summary, indent=2)
        return summary
    metadata = {"command": summary["command"], "seed": config.seed, "data": str(config.data),
                "n_train_scenes": len(samples), "camera_reprojection_px": camera_err,
                "proposal_epochs": p_epochs, "attribute_epochs": a_epochs, "world_size": world.size}
    metadata.update({k: summary[k] for k in ("proposal_wall_s", "attribute_wall_s", "proposal_masks")
                     if k in summary})
    configs = [config]
    if config.stage != "all" and given_pnet is None:
        record, first_config = other_stage(config, summary["command"], len(samples), out)
        metadata.update(record)
        configs = [c for c in (first_config, config) if c is not None]
    elif given_pnet is not None:  # the proposal network was not trained here
        metadata[f"{config.stage}_scenes"] = len(samples)
        del metadata["proposal_epochs"]
    metadata.update(based_on(configs, metadata["command"]))
    derenderer = Derenderer(pnet, anet, P, image_size, heights, metadata=metadata)
    if config.eval_data:
        metrics = evaluate_derenderer(derenderer, held_out, progress=progress)
        metrics["data"] = str(config.eval_data)
        summary["eval"] = metrics
        metadata["eval"] = {k: v for k, v in metrics.items()}
        atomic_write_json(out / "eval.json", metrics, indent=2)
    save_derenderer(out / "derender.pt", pnet, anet, P, image_size, heights, metadata=metadata)
    summary["checkpoint"] = str(out / "derender.pt")
    atomic_write_json(out / "summary.json", summary, indent=2)
    return summary
