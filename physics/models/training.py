"""One-step supervised training of a simulator, on the shared :class:`~physics.training.TrainLoop`.

Each sample is a state graph and the next positions (:mod:`physics.models.data`);
the loss is the next-position error in units of the target's std (equal to the
normalised-acceleration MSE of GNS).  With ``rollout_steps`` K > 1 each sample holds
K future frames and the loss averages the errors of a K-step rollout of the model
on its own predictions (:meth:`DynamicsModel.loss`), which trains rollout stability.
Adam with an exponential learning-rate decay per epoch
(:class:`~physics.training.ExponentialDecay`, from ``lr`` to ``lr_final``), optionally
ramped up over the first ``lr_warmup`` updates (:class:`~physics.training.LinearWarmup`).
With ``init`` a run starts from the weights of a saved model of the same name
and config (fine-tuning, e.g. on data a planner collected,
:mod:`physics.control.collect`), its normalisation statistics included.  The
training input noise (``noise_std``) may differ: it shapes no weight, so a model
can be fine-tuned with more noise than it was trained with.

Files written to ``out_dir`` (all atomically):

    checkpoint.pt   latest epoch: weights (normalisation buffers included), model
                    name/config, metadata, and the loop's ``train_state`` (optimizer,
                    RNG states, history, training flags, command)
    model.pt        the weights of the epoch with the lowest validation loss, with
                    name/config/metadata (what ``load_model`` and the benchmarks read)
    loss.jsonl      one JSON line per epoch: epoch, step, train_loss, valid_loss, lr, seconds
                    (and valid_rollout_mse with ``select_rollouts``)
    TensorBoard events under ``tb/`` when the ``tensorboard`` package is installed

With ``select_rollouts`` N > 0, ``model.pt`` keeps instead the epoch whose full rollouts
(:func:`~physics.models.rollout.rollout_errors`, from each trajectory's first frames to its
end) of the first N validation trajectories have the lowest mean position MSE; a rollout
that turns NaN/inf scores ``inf``.  With ``init`` the starting weights compete as epoch 0,
so a continuation that only breaks the rollouts leaves ``model.pt`` at its start.  The
one-step validation loss can fall while the rollouts break (``docs/results/particles.md``,
``fluidshake``); this option costs N rollouts per epoch.  Off (0), nothing changes: the flag
is not stored, so a run directory written without it resumes unchanged.  With ``select_max_outside``
L < 1 (particle worlds) the check also measures the mean fraction of moving particles outside
the container at the rollouts' last frame (:func:`~physics.models.rollout.outside_container`,
the bench's ``left_container``; ``valid_rollout_outside`` in ``loss.jsonl``; when the rollouts are
projected (``wall_projection``, flag or declared) it is measured on a second, UNPROJECTED rollout
of the same trajectories, the epoch-0 start included, since a projected rollout is inside by
construction: N more rollouts per check; the MSE stays the projected one's), and epochs rank by
``(max(0, outside - L), rollout MSE)``: an epoch within the limit beats every epoch past it, and
past it the one with less outside wins, so a lower error bought by letting the fluid out is not
kept.  ``rebuild_edges`` (with ``rollout_steps`` K > 1) rebuilds the neighbour edges from the
predicted positions before every unrolled step (:meth:`DynamicsModel.loss`).  ``wall_penalty``
w > 0 adds w times a containment penalty to the training loss (the squared distance by which
the predicted particles of every step lie past the container's walls,
:func:`~physics.models.base.wall_excess`; the validation loss stays the plain error).
``velocity_weight`` w > 0 (with ``rollout_steps`` K > 1) adds w times the velocity error of the
unrolled steps a sample marks (``vel_mask_seq``, :mod:`physics.models.data`; every step when it marks
none) to the training loss (:meth:`DynamicsModel.loss`; the validation loss stays the plain error).
``bulk_weight`` w > 0 adds w times the squared error of each graph's bulk step (its moving
particles' mean predicted position against the mean true one, every unrolled step;
:meth:`DynamicsModel.bulk_error`; the validation loss stays the plain error).
``average_last`` K >= 2 keeps every epoch's weights (``epochs/epoch_N.pt``, loadable as ``model.pt`` is)
and, after the last epoch, scores the mean of the last K epochs' weights
(:func:`~physics.models.averaging.average_state_dicts`) as an epoch is scored; it becomes
``model.pt`` (its metadata's ``averaged_epochs``) when it ranks before the kept epoch, and
``loss.jsonl``'s last line records its scores (``average_*``).  ``checkpoint.pt`` keeps the last epoch.
``keep_epochs`` writes the same ``epochs/epoch_N.pt`` files without averaging (``model.pt`` is chosen as without it),
so every epoch of a run that does not reproduce bit for bit on another machine can be rebuilt from files.
``ema_decay`` d in (0, 1) keeps an exponential moving average of the weights (Polyak averaging; the
"EMA of parameters" of e.g. Tan & Le's EfficientNet training), folded in after every optimiser step from the
run's first weights: each epoch's one-step validation, rollout check, ``model.pt`` and ``epochs/`` files are the
average's, so the epoch kept is a mean over the last ~1/(1 - d) updates rather than one point of a swinging run;
training goes on from the raw weights (``checkpoint.pt``, which also stores the average for a bit-identical resume).
``sample_from`` N > 0 draws the training and one-step validation samples only from frames ``t >= N``
(:func:`~physics.models.data.make_samples`' ``first_step``), so the loss lives where the long rollouts
lose (e.g. the fluid's spreading and settling after its impact); the rollout check still rolls out from
each trajectory's first frames.
``own_rollouts`` N > 0 (with ``wall_penalty``) also puts that penalty where a model's long
rollouts leak: N times per epoch the model rolls a training trajectory out from its first
frames, as a test rollout does, and every batch adds the penalty alone (no error term: those
states have no ground truth) of a K-step unroll from ``own_samples`` of its predicted states
(:class:`~physics.models.own_states.OwnStates`; ``own_penalty`` in ``loss.jsonl``, and inside
``train_loss``).  Its draws have their own generator, so the training batches and their noise
are those of the run without it.  ``train_only`` (comma-separated parameter-name prefixes) trains only
the parameters those prefixes name (:func:`trainable_parameters`; e.g. a fine-tune of a PropNet's
relation path alone, ``edge_encoder,convs.0.rel``); the others keep the ``init`` weights.
``augment_rotate`` D > 0 turns every training batch's windows about the vertical axis by angles drawn uniformly
within +-D degrees, anew each batch from the epoch's generator, by the turn the world's trainer passes as
``rotate`` (:mod:`physics.models.video_propnet.augment` for the video PropNet); a world without one refuses it.
``perceived_inputs`` builds every sample's history from the trajectories' ``input_positions``
(:mod:`physics.models.data`; e.g. the video PropNet's states as its perceiver saw them) and keeps the
true states as targets, so a model learns to reach the truth from perceived starts; off, those
inputs are dropped and the samples are the true states'.
Each option, left at its default, is not stored.

``resume=True`` continues from ``checkpoint.pt``: the result is bit-identical to an
uninterrupted run.  Only ``threads`` and ``device`` may differ from the run's
flags; any other change (``--epochs`` included: it sets the decay rate) is refused.

Under ``torchrun --nproc_per_node N`` (:mod:`physics.training.distributed`) each
process trains on its share of every global batch of ``batch_size`` graphs
(the same shuffled order as one process; a last batch smaller than N is
skipped), gradients are averaged by DistributedDataParallel, and rank 0 writes
the files; ``world_size`` is recorded in the metadata and a resume needs the same N.
Training noise is drawn per process, so an N-process run is not bit-identical to
a 1-process one, but a resumed N-process run is to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchLoader
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from physics.config_types import check_field_types
from physics.errors import CheckpointError, ConfigError, StateError
from physics.graph.builder import GraphBuilder
from physics.io import PathLike, ensure_dir
from physics.models.base import DynamicsModel
from physics.models.config import config_to_dict
from physics.models.data import make_samples
from physics.models.own_states import OwnStates
from physics.models.resolver import save_model
from physics.models.rollout import outside_container, rollout_errors
from physics.training import ExponentialDecay, LinearWarmup, RunLog, Schedule, TrainLoop
from physics.training.distributed import init_distributed, rank_share, world_info
from physics.trajectory import Trajectory

__all__ = ["TrainConfig", "train", "resolve_device", "trainable_parameters", "Rotation", "RESUMABLE_CHANGES"]

# a world's turn of a training batch about its vertical axis: (batch, max_degrees, generator) -> a new batch
Rotation = Callable[[Data, float, "torch.Generator | None"], Data]

RESUMABLE_CHANGES = ("threads", "device")  # resources only: they do not change what is computed


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the CLI makes one flag per field)."""

    epochs: int = field(default=20, metadata={"min": 1, "help": "passes over the training samples"})
    batch_size: int = field(default=16, metadata={"min": 1, "help": "graphs per batch"})
    lr: float = field(default=1e-3, metadata={"help": "initial Adam learning rate"})
    lr_final: float = field(default=1e-4, metadata={"help": "learning rate at the last epoch (exponential decay)"})
    lr_warmup: int = field(
        default=0, metadata={"help": "scale the learning rate linearly from ~0 up to its schedule's over the run's first "
                             "N optimiser steps (e.g. a fine-tune's first epoch; 0: none)"}
    )
    max_samples: int = field(default=3000, metadata={"min": 1, "help": "one-step training samples drawn from the trajectories"})
    valid_samples: int = field(default=400, metadata={"help": "one-step validation samples"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient norm clip (0: none)"})
    select_rollouts: int = field(
        default=0, metadata={"help": "keep as model.pt the epoch with the lowest full-rollout MSE on the first N "
                             "validation trajectories (with --init, the starting weights compete as epoch 0) "
                             "instead of the lowest one-step validation loss (0: one-step)"}
    )
    wall_projection: bool = field(
        default=False, metadata={"help": "with --select-rollouts: project the rollouts' particles back inside the "
                                "container the wall markers outline, as nesy bench dynamics does (particle worlds; "
                                "off: as the model declares, ModelConfig.wall_projection)"}
    )
    select_max_outside: float = field(
        default=1.0, metadata={"help": "with --select-rollouts: an epoch whose rollouts leave more than this fraction "
                               "of the moving particles outside the container at the last frame (the bench's "
                               "left_container; measured on an unprojected rollout when the rollouts are projected) ranks "
                               "behind every epoch within it, and among such epochs the one with less outside wins "
                               "(particle worlds; 1: no limit)"}
    )
    rollout_steps: int = field(
        default=1, metadata={"min": 1, "help": "train on K-step rollouts of the model's own predictions (1: one-step targets)"}
    )
    sample_from: int = field(
        default=0, metadata={"help": "draw the training and one-step validation samples only from frames t >= N (the "
                             "frame a sample's rollout starts from; e.g. 30 on fluidfall: after the impact, where the "
                             "long rollouts lose); 0: every frame"}
    )
    rebuild_edges: bool = field(
        default=False, metadata={"help": "with --rollout-steps K > 1: search the neighbour edges again from the "
                                 "predicted positions before every unrolled step (default: the first state's edges)"}
    )
    velocity_weight: float = field(
        default=0.0, metadata={"help": "with --rollout-steps K > 1: add this weight times the velocity error (each "
                               "unrolled step's predicted displacement against the true one, squared, in the loss's "
                               "units) on the steps a sample marks (the frames just after a recorded contact for the "
                               "video PropNet; every step when a sample marks none; 0: none)"}
    )
    bulk_weight: float = field(
        default=0.0, metadata={"help": "add this weight times the squared error of each graph's bulk step (the mean "
                               "predicted position of its moving particles against the mean true one, every unrolled "
                               "step, in the loss's units) to the training loss: a bias that moves every particle the "
                               "same way, which input noise hides in the per-particle error (0: none)"}
    )
    average_last: int = field(
        default=0, metadata={"help": "keep every epoch's weights (OUT/epochs/epoch_N.pt) and, after the last epoch, "
                             "score the mean of the last K epochs' weights as an epoch is scored (the rollout check "
                             "with --select-rollouts, else the one-step validation loss); it becomes model.pt when it "
                             "beats the kept epoch (0: off; else 2 <= K <= --epochs)"}
    )
    ema_decay: float = field(
        default=0.0, metadata={"help": "keep an exponential moving average of the weights, updated after every optimiser "
                               "step (ema = d * ema + (1 - d) * weights, from the run's first weights); each epoch's "
                               "validation, rollout check, model.pt and epochs/ files are the average's, while training "
                               "goes on from the raw weights (checkpoint.pt); 0: off, else 0 < d < 1"}
    )
    keep_epochs: bool = field(
        default=False, metadata={"help": "keep every epoch's weights (OUT/epochs/epoch_N.pt, loadable as model.pt is) "
                                 "without averaging them, so a run's every epoch can be benched or fine-tuned later "
                                 "(--average-last keeps them too)"}
    )
    wall_penalty: float = field(
        default=0.0, metadata={"help": "add this weight times the containment penalty to the training loss: the "
                               "squared distance (in the loss's units) by which each predicted particle of the "
                               "(unrolled) steps lies past the container's walls (particle worlds; needs "
                               "--set graph.wall_box > 0; 0: none)"}
    )
    own_rollouts: int = field(
        default=0, metadata={"help": "with --wall-penalty: per epoch, N rollouts of training trajectories by the model "
                             "being trained (no gradient, projected when the model declares wall_projection), spread "
                             "over the epoch; every batch also adds the penalty alone of a K-step unroll "
                             "(K = --rollout-steps) from --own-samples states of the latest one, where the model's "
                             "own long rollouts leak (0: none)"}
    )
    own_samples: int = field(
        default=4, metadata={"min": 1, "help": "with --own-rollouts: states of the model's own rollout drawn per batch"}
    )
    train_only: str | None = field(
        default=None, metadata={"help": "train only the parameters whose names start with one of these comma-separated "
                                "prefixes (e.g. edge_encoder,convs.0.rel: a PropNet's relation path, whose messages "
                                "carry every contact); every other weight stays as --init gave it (default: all)"}
    )
    augment_rotate: float = field(
        default=0.0, metadata={"help": "turn every training window about the vertical axis by an angle drawn anew each "
                               "batch, uniformly within +-this many degrees (180: every heading; positions, velocities, "
                               "actions and a cube's yaw alike), so the network sees each window at every heading; "
                               "worlds whose trainer declares the turn only (the video PropNet); 0: off"}
    )
    perceived_inputs: bool = field(
        default=False, metadata={"help": "build each sample's history from the trajectories' input_positions (a "
                                 "perceiver's states of the same objects, e.g. the video PropNet's perceived packs) "
                                 "while the targets stay the true states; off: the true states, input_positions "
                                 "ignored"}
    )
    init: str | None = field(
        default=None, metadata={"help": "start from this model file's weights and normalisers (same model and "
                                "config; fine-tuning); default: a fresh model"}
    )
    seed: int = field(default=0, metadata={"help": "seed of initialisation, sampling, shuffling and noise"})
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads"})
    device: str = field(default="auto", metadata={"help": "auto (cuda when present), cpu, cuda, cuda:N"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        for name in ("epochs", "batch_size", "max_samples", "threads", "rollout_steps", "own_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.velocity_weight >= 0 and math.isfinite(self.velocity_weight)):
            raise ConfigError(f"TrainConfig.velocity_weight must be a finite number >= 0, got {self.velocity_weight}")
        if self.velocity_weight > 0 and self.rollout_steps < 2:
            raise ConfigError("TrainConfig.velocity_weight needs --rollout-steps >= 2 (on one step the velocity error "
                              "is the position error)")
        if not (self.bulk_weight >= 0 and math.isfinite(self.bulk_weight)):
            raise ConfigError(f"TrainConfig.bulk_weight must be a finite number >= 0, got {self.bulk_weight}")
        if not (self.wall_penalty >= 0 and math.isfinite(self.wall_penalty)):
            raise ConfigError(f"TrainConfig.wall_penalty must be a finite number >= 0, got {self.wall_penalty}")
        if self.lr_warmup < 0:
            raise ConfigError(f"TrainConfig.lr_warmup must be >= 0 optimiser steps, got {self.lr_warmup}")
        if self.own_rollouts < 0:
            raise ConfigError(f"TrainConfig.own_rollouts must be >= 0, got {self.own_rollouts}")
        if self.own_rollouts and not self.wall_penalty > 0:
            raise ConfigError("TrainConfig.own_rollouts trains the containment penalty on the model's own rollouts: "
                              "it needs --wall-penalty > 0")
        if self.average_last and not 2 <= self.average_last <= self.epochs:
            raise ConfigError(f"TrainConfig.average_last must be 0 (off) or between 2 and epochs ({self.epochs}), "
                              f"got {self.average_last}")
        if not isinstance(self.ema_decay, (int, float)) or not (self.ema_decay == 0.0 or 0.0 < self.ema_decay < 1.0):
            raise ConfigError(f"TrainConfig.ema_decay must be 0 (off) or a fraction 0 < d < 1, got {self.ema_decay!r}")
        if self.select_rollouts < 0:
            raise ConfigError(f"TrainConfig.select_rollouts must be >= 0, got {self.select_rollouts}")
        if self.sample_from < 0:
            raise ConfigError(f"TrainConfig.sample_from must be a frame index >= 0, got {self.sample_from}")
        if not 0.0 <= self.select_max_outside <= 1.0:
            raise ConfigError(f"TrainConfig.select_max_outside must be a fraction in [0, 1], got {self.select_max_outside}")
        if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):  # NaN or < 0 turned clipping off silently
            raise ConfigError(f"TrainConfig.grad_clip must be a finite number >= 0 (0: no clipping), got {self.grad_clip}")
        if not (self.lr > 0 and self.lr_final > 0):
            raise ConfigError(f"learning rates must be positive, got lr={self.lr}, lr_final={self.lr_final}")
        if self.train_only is not None and not all(p.strip() for p in self.train_only.split(",")):
            raise ConfigError(f"TrainConfig.train_only must be comma-separated parameter-name prefixes with no empty "
                              f"one (e.g. edge_encoder,convs.0.rel), got {self.train_only!r}")
        if not (math.isfinite(self.augment_rotate) and 0.0 <= self.augment_rotate <= 180.0):
            raise ConfigError(f"TrainConfig.augment_rotate must be a turn in degrees within [0, 180] (0: off), got "
                              f"{self.augment_rotate}")
        prefixes = [p.strip() for p in (self.train_only or "").split(",")]
        twice = next((p for k, p in enumerate(prefixes) if p in prefixes[:k]), None)
        if twice is not None:  # as benchmarks.config_flags.comma_items refuses --models in,in
            raise ConfigError(f"--train-only {self.train_only!r}: {twice} given twice; name each once",
                              settings=("train_only",))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else is checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return dev


def _flags(config: TrainConfig) -> dict[str, Any]:
    """The run's flags as stored and compared on resume; an option left off is not stored, so
    checkpoints written before it existed resume unchanged."""
    flags = dataclasses.asdict(config)
    if not flags["select_rollouts"]:
        del flags["select_rollouts"]
    if not (flags.get("select_rollouts") and flags["wall_projection"]):
        del flags["wall_projection"]  # only a projected rollout check stores it
    if not (flags.get("select_rollouts") and flags["select_max_outside"] < 1.0):
        del flags["select_max_outside"]  # only a containment-limited rollout check stores it
    if not flags["rebuild_edges"]:
        del flags["rebuild_edges"]
    if not flags["wall_penalty"]:
        del flags["wall_penalty"]
    if not flags["velocity_weight"]:
        del flags["velocity_weight"]
    if not flags["bulk_weight"]:
        del flags["bulk_weight"]
    if not flags["own_rollouts"]:
        del flags["own_rollouts"], flags["own_samples"]
    if not flags["lr_warmup"]:
        del flags["lr_warmup"]
    if not flags["average_last"]:
        del flags["average_last"]
    if not flags["sample_from"]:
        del flags["sample_from"]
    if not flags["keep_epochs"]:
        del flags["keep_epochs"]
    if not flags["ema_decay"]:
        del flags["ema_decay"]
    if flags["train_only"] is None:
        del flags["train_only"]
    if not flags["perceived_inputs"]:
        del flags["perceived_inputs"]
    if not flags["augment_rotate"]:
        del flags["augment_rotate"]
    return flags


def _inputs(trajs: list[Trajectory], perceived: bool) -> list[Trajectory]:
    """``trajs`` as the samples should see them: without ``meta["input_positions"]`` unless ``perceived``; with
    ``perceived``, a trajectory without them gets its true states as inputs (every sample of a batch then holds
    the same fields).

    Raises:
        ConfigError: ``perceived`` on non-empty ``trajs`` none of which holds input positions.
    """
    if perceived:
        if trajs and not any("input_positions" in t.meta for t in trajs):
            raise ConfigError("--perceived-inputs: no trajectory of --data holds input_positions (a pack built with "
                              "perceived states, physics.models.video_perceived.with_perceived_inputs)")
        return [t if "input_positions" in t.meta else dataclasses.replace(
            t, meta={**t.meta, "input_positions": t.positions}) for t in trajs]
    return [dataclasses.replace(t, meta={k: v for k, v in t.meta.items() if k != "input_positions"})
            if "input_positions" in t.meta else t for t in trajs]


def trainable_parameters(model: torch.nn.Module, train_only: str | None) -> list[torch.nn.Parameter]:
    """The parameters ``train_only`` (comma-separated name prefixes; None: all) leaves trainable; the others get
    ``requires_grad = False``, so no optimiser step moves them.

    Raises:
        ConfigError: a prefix that names no parameter (the message lists the model's top-level modules).
    """
    named = list(model.named_parameters())
    if train_only is None:
        return [p for _, p in named]
    prefixes = [p.strip() for p in train_only.split(",")]
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name, _ in named):
            tops = sorted({name.split(".")[0] for name, _ in named})
            raise ConfigError(f"--train-only: {prefix!r} names no parameter of {type(model).__name__} "
                              f"(parameter names start with {', '.join(tops)})")
    keep = []
    for name, p in named:
        p.requires_grad_(any(name.startswith(prefix) for prefix in prefixes))
        if p.requires_grad:
            keep.append(p)
    return keep


def _rollout_score(model: DynamicsModel, trajs: list[Trajectory], device: torch.device,
                   wall_projection: bool = False, raw_outside: bool = False) -> tuple[float, float]:
    """Mean full-rollout position MSE of ``model`` on ``trajs`` (projected when asked or when the model
    declares ``wall_projection``, as the bench rolls it out) and the mean fraction of moving particles
    outside the container at the last frame (:func:`outside_container`; 0 where a trajectory has no
    wall markers); ``(inf, 1.0)`` when a rollout turns NaN/inf.

    A projected rollout keeps every particle inside by construction, so its outside fraction cannot
    show a leaking model.  With ``raw_outside`` (what ``select_max_outside`` < 1 asks for) and a
    projected rollout, the outside fraction is measured instead on a second, unprojected rollout of
    the same trajectories (one more rollout per trajectory); the MSE stays the projected one's.
    An unprojected rollout that turns NaN/inf counts as all outside (1.0)."""
    projected = bool(wall_projection or model.config.wall_projection)
    try:
        res = rollout_errors(model, trajs, horizons=(), device=device, wall_projection=wall_projection or None)
    except StateError:
        return float("inf"), 1.0
    mse = res["mse_full"]
    if not math.isfinite(mse):
        return float("inf"), 1.0
    preds = res["predictions"]
    if raw_outside and projected:
        try:
            preds = rollout_errors(model, trajs, horizons=(), device=device, wall_projection=False)["predictions"]
        except StateError:
            return mse, 1.0
        if not all(np.isfinite(p).all() for p in preds):
            return mse, 1.0
    outside = [outside_container(t, p) for t, p in zip(trajs, preds, strict=True)]
    return mse, float(sum(f or 0.0 for f in outside) / len(trajs))


def _excess(outside: float, limit: float) -> float:
    """How far a rollout check's outside fraction lies past ``select_max_outside`` (0: within it)."""
    return max(0.0, outside - limit) if limit < 1.0 else 0.0


@torch.no_grad()
def _evaluate(model: DynamicsModel, loader: DataLoader, device: torch.device, rebuild_edges: bool = False) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        total += float(model.loss(batch, rebuild_edges=rebuild_edges)) * batch.num_graphs
        count += batch.num_graphs
    return total / max(count, 1)


def _load_init(model: DynamicsModel, path: str) -> None:
    """Copy the weights and normalisers of the model file ``path`` into ``model`` (same name and config)."""
    from physics.models.resolver import load_model

    start, _ = load_model(path)
    same = dataclasses.replace(start.config, noise_std=model.config.noise_std)  # training-only: may differ
    if start.name != model.name or config_to_dict(same) != config_to_dict(model.config):
        raise CheckpointError(
            f"--init {path} holds a {start.name!r} model with another config than the run's {model.name!r}; "
            "give the same --model and --set options it was trained with"
        )
    model.load_state_dict(start.state_dict())


def train(
    model: DynamicsModel,
    train_trajs: list[Trajectory],
    valid_trajs: list[Trajectory],
    out_dir: PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    rotate: Rotation | None = None,
) -> dict[str, Any]:
    """Train ``model`` one step ahead; returns a summary (final/best losses, wall time, files).

    Args:
        meta: Stored in both files; ``meta["command"]`` is the command that reproduces the run.
        rotate: How this world turns a training batch about its vertical axis (``rotate(batch, max_degrees,
            generator)``, a new batch; e.g. :func:`physics.models.video_propnet.augment.random_rotation`), which
            ``config.augment_rotate`` > 0 applies to every training batch (validation is never turned).

    Raises:
        CheckpointError: ``resume`` with a checkpoint of another model or config, or a
            damaged / wrongly structured one.
        ConfigError: ``resume`` with training flags other than the run's (named), or ``config.augment_rotate``
            without a ``rotate`` for this world.
    """
    if config.augment_rotate and rotate is None:
        raise ConfigError(f"--augment-rotate {config.augment_rotate:g}: this world's trainer declares no turn of its "
                          "states (the video PropNet's does: nesy train video-dynamics)")
    out = Path(out_dir)
    ensure_dir(out)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = init_distributed(resolve_device(config.device))
    world = world_info()
    builder = GraphBuilder(model.config.graph)
    k = config.rollout_steps
    first = config.sample_from
    if first:
        short = [i for i, t in enumerate([*train_trajs, *valid_trajs]) if t.num_steps - k <= max(first, builder.config.history)]
        if short:
            raise ConfigError(f"--sample-from {first}: trajectories {short[:5]} (training first, then validation) hold "
                              f"no frame >= {first} with {k} target step(s) after it")
    train_trajs, valid_trajs = _inputs(train_trajs, config.perceived_inputs), _inputs(valid_trajs, config.perceived_inputs)
    train_graphs = make_samples(train_trajs, builder, config.max_samples, seed=config.seed, horizon=k, first_step=first)
    valid_graphs = (make_samples(valid_trajs, builder, config.valid_samples, seed=config.seed + 1, horizon=k, first_step=first)
                    if valid_trajs else [])
    select = config.select_rollouts
    select_trajs = valid_trajs[:select]
    if select:
        if not select_trajs:
            raise ConfigError("--select-rollouts needs validation trajectories (a 'valid' split in --data); none given")
        need = model.config.graph.history + 2
        short = [i for i, t in enumerate(select_trajs) if t.num_steps < need]
        if short:
            raise ConfigError(f"--select-rollouts: validation trajectories {short} have fewer than {need} steps, "
                              "too few for a rollout")
    per_epoch = -(-len(train_graphs) // config.batch_size)
    own = None
    if config.own_rollouts:
        if world.size > 1:
            raise ConfigError("--own-rollouts runs in one process only (its rollouts are not shared between ranks)")
        own = OwnStates(train_trajs, builder, config.own_rollouts, config.own_samples, k, per_epoch, config.seed)
    if config.average_last and world.size > 1:
        raise ConfigError("--average-last runs in one process only (it reads the epochs' files back)")
    epochs_dir = out / "epochs"
    meta = {**(meta or {}), "world_size": world.size}
    if config.ema_decay:
        meta["ema_decay"] = config.ema_decay  # model.pt and epochs/ hold the moving average, not the raw weights
    # the moving average of the weights (ema_decay) and the optimiser step it has seen up to
    ema: dict[str, Any] = {"weights": None, "seen": 0}
    if select:
        meta["selected_by"] = f"full-rollout MSE on {len(select_trajs)} validation trajectories"
    ckpt_path = out / "checkpoint.pt"
    # best: the kept epoch's score (one-step validation loss, or full-rollout MSE with select_rollouts),
    # and with select_max_outside its rollouts' excess of fluid outside the container (ranked first)
    best: dict[str, Any] = {"loss": float("inf"), "valid": float("inf"), "epoch": None, "excess": float("inf")}
    limit = config.select_max_outside
    if select and limit < 1.0:
        meta["selected_by"] += f", epochs with at most {limit:g} of the moving particles outside the container first"
    info: dict[str, Any] = dict(meta)

    def payload() -> dict[str, Any]:
        return {
            "format": "nesy-dynamics-1",
            "model": model.name,
            "config": config_to_dict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": info,
        }

    def same_model(ckpt: dict[str, Any]) -> None:
        if ckpt.get("model") != model.name or ckpt.get("config") != config_to_dict(model.config):
            raise CheckpointError(
                f"{ckpt_path} was trained as {ckpt.get('model')!r} with another config; "
                "use a fresh --out folder or the same --model and settings"
            )

    opt = torch.optim.Adam(trainable_parameters(model, config.train_only), lr=config.lr)
    schedule: Schedule = ExponentialDecay(config.lr, config.lr_final, config.epochs)
    if config.lr_warmup:
        schedule = LinearWarmup(schedule, config.lr_warmup)
    loop = TrainLoop(
        model, opt, schedule, ckpt_path,
        flags=_flags(config), command=str(meta.get("command", "")), payload=payload,
        weights_key="state_dict", grad_clip=config.grad_clip,
        log=RunLog(out / "loss.jsonl", tensorboard=out / "tb"), may_change=RESUMABLE_CHANGES,
        extra_state=lambda: {"best": best["loss"], **({"best_valid": best["valid"], "best_epoch": best["epoch"]} if select else {}),
                             **({"best_excess": best["excess"]} if select and limit < 1.0 else {}),
                             **({"ema": ema["weights"], "ema_seen": ema["seen"]} if config.ema_decay else {})},
        load_extra=lambda e: (best.update(loss=float(e["best"]), valid=e.get("best_valid", best["valid"]),
                                          epoch=e.get("best_epoch", best["epoch"]), excess=e.get("best_excess", best["excess"])),
                              ema.update(weights=e.get("ema"), seen=int(e.get("ema_seen", 0)))),
        desc=model.name, progress=progress, loss_key="train_loss", distributed=True, world=world,
    )
    resumed = resume and loop.resume(check=same_model)
    if resumed:
        if loop.command:
            meta["command"] = loop.command  # the run's own command (a resume may differ in threads/device)
    elif config.init:
        _load_init(model, config.init)
    else:
        model.fit_normalizers(train_graphs)
    model.to(device)
    if config.ema_decay and ema["weights"] is None:
        ema.update(weights={k: v.detach().clone() for k, v in model.state_dict().items()}, seen=loop.step)
    elif config.ema_decay:
        ema["weights"] = {k: v.to(device) for k, v in ema["weights"].items()}
    valid_loader = DataLoader(valid_graphs, batch_size=config.batch_size * 4) if valid_graphs else None
    if select and config.init and not resumed:
        # the starting weights compete too: a continuation that breaks the rollouts keeps them
        score, outside = _rollout_score(model, select_trajs, device, config.wall_projection, raw_outside=limit < 1.0)
        valid_loss = _evaluate(model, valid_loader, device, config.rebuild_edges) if valid_loader else float("nan")
        best.update(loss=score, valid=valid_loss, epoch=0, excess=_excess(outside, limit))
        info.update({**meta, "epoch": 0, "valid_loss": valid_loss, "valid_rollout_mse": score,
                     "valid_rollout_outside": outside, "train_seconds": 0.0, "train_config": _flags(config)})
        if world.is_main:
            save_model(out / "model.pt", model, info)
        if progress and world.is_main:
            tqdm.write(f"{model.name} epoch 0 (--init weights): valid {valid_loss:.4g} rollout {score:.4g} "
                       f"outside {outside:.3f}")
    current: dict[str, torch.Generator] = {}

    def batches(epoch: int):
        # shuffling and noise come from a generator seeded by (seed, epoch) alone
        current["gen"] = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        if own is not None:
            own.start_epoch(epoch)
        if world.size == 1:
            for batch in DataLoader(train_graphs, batch_size=config.batch_size, shuffle=True, generator=current["gen"]):
                if config.augment_rotate:  # angles from the epoch's generator: a resume draws the same ones
                    batch = rotate(batch, config.augment_rotate, current["gen"])
                yield batch.to(device)
            return
        # the same global batches as one process (same sampler, same generator), this rank's share of each
        order = TorchLoader(range(len(train_graphs)), batch_size=config.batch_size, shuffle=True,
                            generator=current["gen"], collate_fn=list)
        for indices in order:
            if len(indices) >= world.size:
                batch = Batch.from_data_list([train_graphs[i] for i in rank_share(indices, world)])
                if config.augment_rotate:
                    batch = rotate(batch, config.augment_rotate, current["gen"])
                yield batch.to(device)

    @torch.no_grad()
    def ema_update() -> None:
        """Fold the weights of every optimiser step not yet seen into the moving average (one step at most:
        called before each batch and at each epoch's end)."""
        if loop.step > ema["seen"]:
            d = config.ema_decay
            for k, v in model.state_dict().items():
                if v.is_floating_point():
                    ema["weights"][k].mul_(d).add_(v.detach(), alpha=1.0 - d)
                else:
                    ema["weights"][k].copy_(v)
            ema["seen"] = loop.step

    def step(batch) -> dict[str, Any]:
        if config.ema_decay:
            ema_update()
        loss = model.loss(batch, generator=current["gen"], rebuild_edges=config.rebuild_edges,
                          wall_penalty=config.wall_penalty, velocity_weight=config.velocity_weight,
                          bulk_weight=config.bulk_weight)
        parts: dict[str, Any] = {"weight": batch.num_graphs}
        if own is not None:
            drifted = own.next_batch(model, device)
            penalty = loss.new_zeros(()) if drifted is None else model.loss(
                drifted, generator=own.generator, rebuild_edges=config.rebuild_edges,
                wall_penalty=config.wall_penalty, errors=False)
            loss = loss + penalty
            parts["own_penalty"] = penalty.detach()
        return {"train_loss": loss, **parts}

    def end_epoch(epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        if not config.ema_decay:
            return score_epoch(epoch, record)
        # the epoch is judged and kept as its moving average; training goes on from the raw weights
        ema_update()
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(ema["weights"])
        try:
            return score_epoch(epoch, record)
        finally:
            model.load_state_dict(raw)

    def score_epoch(epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        valid_loss = _evaluate(model, valid_loader, device, config.rebuild_edges) if valid_loader else record["train_loss"]
        info.clear()
        info.update({**meta, "epoch": epoch + 1, "valid_loss": valid_loss,
                     "train_seconds": round(loop.seconds, 2), "train_config": _flags(config)})
        result = {"valid_loss": valid_loss}
        score, excess = valid_loss, 0.0
        if select:
            score, outside = _rollout_score(model, select_trajs, device, config.wall_projection, raw_outside=limit < 1.0)
            result["valid_rollout_mse"] = info["valid_rollout_mse"] = score
            result["valid_rollout_outside"] = info["valid_rollout_outside"] = outside
            excess = _excess(outside, limit)
        better = (excess, score) < (best["excess"], best["loss"]) if select and limit < 1.0 else score < best["loss"]
        if better or (select and best["epoch"] is None):
            best.update(loss=score, valid=valid_loss, epoch=epoch + 1, excess=excess)
            if world.is_main:
                save_model(out / "model.pt", model, info)
        if progress and world.is_main:
            rollout = f" rollout {score:.4g} outside {result['valid_rollout_outside']:.3f}" if select else ""
            tqdm.write(f"{model.name} epoch {epoch + 1}: train {record['train_loss']:.4g} valid {valid_loss:.4g}{rollout} "
                       f"({loop.seconds:.0f} s)")
        if (config.average_last or config.keep_epochs) and world.is_main:
            save_model(epochs_dir / f"epoch_{epoch + 1}.pt", model, info)
        if config.average_last:
            if epoch + 1 == config.epochs:
                result.update(average_epochs(epoch + 1))
        return result

    def average_epochs(last: int) -> dict[str, Any]:
        """Score the mean of the last ``average_last`` epochs' weights as an epoch; keep it as
        ``model.pt`` when it ranks before the kept epoch; the model leaves with the last epoch's weights."""
        from physics.models.averaging import average_state_dicts
        from physics.models.resolver import load_model

        first = last - config.average_last + 1
        own_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        states = [load_model(epochs_dir / f"epoch_{e}.pt")[0].state_dict() for e in range(first, last + 1)]
        model.load_state_dict(average_state_dicts(states))
        valid_loss = _evaluate(model, valid_loader, device, config.rebuild_edges) if valid_loader else float("nan")
        result: dict[str, Any] = {"average_epochs": [first, last], "average_valid_loss": valid_loss}
        score, excess = valid_loss, 0.0
        if select:
            score, outside = _rollout_score(model, select_trajs, device, config.wall_projection, raw_outside=limit < 1.0)
            result.update(average_rollout_mse=score, average_rollout_outside=outside)
            excess = _excess(outside, limit)
        better = (excess, score) < (best["excess"], best["loss"]) if select and limit < 1.0 else score < best["loss"]
        result["average_kept"] = bool(better)
        if better:
            best.update(loss=score, valid=valid_loss, epoch=f"average {first}-{last}", excess=excess)
            kept = {**info, "valid_loss": valid_loss, "averaged_epochs": [first, last]}
            if select:
                kept.update(valid_rollout_mse=score, valid_rollout_outside=result["average_rollout_outside"])
            save_model(out / "model.pt", model, kept)
        if progress:
            rollout = f" rollout {score:.4g} outside {result['average_rollout_outside']:.3f}" if select else ""
            tqdm.write(f"{model.name} mean of epochs {first}-{last}: valid {valid_loss:.4g}{rollout}"
                       f"{' (kept)' if better else ''}")
        model.load_state_dict(own_weights)
        return result

    try:
        history = loop.fit(config.epochs, batches, step, end_round=end_epoch, steps_in=lambda _: per_epoch)
    finally:
        if loop.log is not None:
            loop.log.close()
    return {
        "model": model.name,
        "epochs": config.epochs,
        "history": history,
        "best_valid_loss": best["valid"] if select else best["loss"],
        **({"best_rollout_mse": best["loss"], "best_epoch": best["epoch"]} if select else {}),
        "train_seconds": loop.seconds,
        "train_samples": len(train_graphs),
        "command": loop.command,
        "files": {"checkpoint": str(ckpt_path), "model": str(out / "model.pt"), "loss": str(out / "loss.jsonl")},
    }
