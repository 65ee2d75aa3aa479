"""Training NS-CL from questions and answers alone, with a curriculum.

Each step takes a batch of questions, runs their images' objects through the
:class:`~reasoning.nscl.model.ConceptLearner`, executes the programs softly
(:func:`~reasoning.executor.soft.soft_execute`) and minimises the negative
log-likelihood of the given answers.  The curriculum of the paper grows the
questions a stage admits: first short programs about scenes with few objects,
then longer programs and fuller scenes, then everything (``curriculum``: per
stage the largest program, in nodes, and the largest scene; 0 is no limit; the
epochs are split evenly between the stages).

The shared :class:`~physics.training.TrainLoop` runs it: a checkpoint after
every epoch, JSON-line logs beside it, and a bit-identical resume (each
epoch's order comes from ``(seed, epoch)``).

Under ``torchrun --nproc_per_node N`` (:mod:`physics.training.distributed`) every
process draws the same global batches and trains on its share of each: whole
images with ``whole_images`` (an image's questions stay on one process), else
questions; rank 0 alone writes the files, ``world_size`` is recorded in the
metadata and a resume needs the same N.  The CNN's batch normalisation then
takes its statistics over the whole global batch
(:class:`~physics.training.distributed.GlobalBatchNorm2d`, for CPU and GPU alike), so that a step is the single-process step on that batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physics.config_types import check_field_types
from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from physics.models.averaging import average_state_dicts
from physics.training import Constant, RunLog, Schedule, TrainLoop, WarmupCosine, seed_everything
from physics.training.distributed import (
    WorldInfo,
    global_batch_norm,
    init_distributed,
    rank_share,
    world_info,
)
from physics.worlds.clevr_properties import ATTRIBUTES
from reasoning.dsl import Program
from reasoning.executor.soft import soft_execute
from reasoning.nscl.data import PROGRAM_SOURCES, QASet
from reasoning.nscl.joint import NONE_UNSUPPORTED
from reasoning.nscl.model import ConceptConfig, ConceptLearner, context_shape, recolour, rescale

__all__ = ["NSCLTrainConfig", "PartScaledAdam", "average_nscl", "question_weight", "train_nscl", "evaluate_nscl", "save_nscl", "load_nscl", "stage_of", "training_legs"]

RESUMABLE_CHANGES = ("threads", "device")  # resources only: they do not change what is computed
SCHEDULES = ("constant", "cosine")
def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _flag_list(names: Sequence[str]) -> str:
    return ", ".join(_flag(n) for n in names[:-1]) + f" and {_flag(names[-1])}"


PARTS = ("detail", "context", "max", "spatial", "others")  # --part-lr: parts of the model that --init can grow


@dataclass(frozen=True)
class NSCLTrainConfig:
    """Flags of ``nesy train nscl``."""

    epochs: int = field(default=12, metadata={"min": 1, "help": "passes over the admitted questions"})
    batch_size: int = field(default=64, metadata={"min": 1, "help": "questions per optimiser step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam step size"})
    curriculum: str = field(
        default="8:6,12:8,0:0",
        metadata={"help": "stages MAX_NODES:MAX_OBJECTS (0: any), the epochs split evenly between them"},
    )
    schedule: str = field(
        default="constant", metadata={"help": "learning rate: constant, or cosine (warm-up, then decay to a twentieth)"}
    )
    flip: bool = field(default=False, metadata={"help": "mirror half of the training crops (attributes do not change)"})
    init: str = field(
        default="",
        metadata={"help": "start from this NS-CL model's weights (fine-tuning; a new run; its crop size may differ)"},
    )
    whole_images: bool = field(
        default=False,
        metadata={"help": "batches of whole images: all admitted questions of an image in one batch, about "
                          "batch-size questions each (the CNN reads a crop once for its ~10 questions)"},
    )
    group_weights: str = field(
        default="",
        metadata={"help": "GROUP:W,... : questions whose program names a concept group (a filter, query, same or "
                          "equal on it, or one of its words) weigh W in the loss (the heaviest group counts)"},
    )
    colour_jitter: str = field(
        default="",
        metadata={"help": "GROUP,... : concept groups (shape, material, size) whose maps read, in training, a "
                          "copy of each crop with randomised colours (hue rotated, saturation and brightness "
                          "scaled), so that they cannot lean on colour; the colour map reads the original"},
    )
    scale_jitter: float = field(
        default=0.0,
        metadata={"help": "S in [0, 0.5): every training crop re-framed as if cut with its box scaled by a factor "
                          "from U(1 - S, 1 + S) (reasoning.nscl.model.rescale; the model's box input unchanged), so "
                          "that the concepts cannot lean on exactly where the object's edges fall in its crop"},
    )
    crop_size: int = field(default=32, metadata={"min": 1, "help": "side of the object crops in pixels that the CNN reads (the model's input unless "
                                                    "--detail-size)"})
    residual: int = field(
        default=0,
        metadata={"help": "residual blocks after each of the CNN's three stages (a deeper object encoder); an "
                          "--init model with fewer starts the new blocks as the identity"},
    )
    test_flip: bool = field(
        default=False,
        metadata={"help": "the model, in evaluation, averages each object's concept logits over its crop and the "
                          "crop mirrored left to right (recorded in the model; training steps are unchanged)"},
    )
    detail_size: int = field(
        default=0,
        metadata={"help": "0: none; N > crop-size: cut the crops at N pixels; the CNN reads them resized to crop-size "
                          "and a second CNN of its shape (the detail CNN) at N, both feeding the object MLP. An --init "
                          "model without one starts it as a copy of its CNN, read by zero weights (so the run starts "
                          "as that model)"},
    )
    context_size: int = field(
        default=0,
        metadata={"help": "0: none; C >= 16: a small CNN (the context CNN) reads the whole image resized to C x 3C/2 "
                          "pixels and its pooled feature joins every object's in the object MLP (the light's "
                          "direction, which shading depends on); with --flip an image's crops and the image are "
                          "mirrored together. An --init model without one reads it by zero weights (so the run "
                          "starts as that model)"},
    )
    max_pool: bool = field(
        default=False,
        metadata={"help": "also max-pool the last feature map of the detail CNN (of the CNN without one) beside its "
                          "average pool, for small bright spots (a metal highlight is a few pixels of a face). An "
                          "--init model without it reads the new feature by zero weights (so the run starts as that "
                          "model)"},
    )
    spatial: int = field(
        default=0,
        metadata={"help": "0: none; K > 0: the last feature map of the detail CNN (of the CNN without one) keeps its "
                          "layout: reduced to K channels by a 1x1 convolution and flattened, every position's K numbers "
                          "join the object MLP (where on the object a highlight or an edge lies is not averaged "
                          "away). An --init model without it reads the branch by zero weights (so the run starts as "
                          "that model)"},
    )
    mask_crop: bool = field(
        default=False,
        metadata={"help": "every CNN reads each crop with the RGB outside its object's (proposal) mask replaced by "
                          "the crop's mean colour there: the neighbours a crop's box takes in are hidden. Recorded "
                          "in the model; an --init model without it may start the run"},
    )
    mask_dilate: int = field(
        default=0,
        metadata={"help": "with --mask-crop: grow the mask that hides by this many crop pixels (of the crop side the "
                          "model reads, --detail-size if set) first, so the rim of an object that its proposal mask "
                          "missed stays visible (recorded in the model)"},
    )
    others_mask: bool = field(
        default=False,
        metadata={"help": "every crop carries a fifth channel, the union of the other objects' masks cut with its "
                          "box (which pixels belong to a neighbour: an object partly hidden behind another), read by "
                          "the crop CNNs. An --init model without it reads the channel by zero weights (so the run "
                          "starts as that model)"},
    )
    part_lr: str = field(
        default="",
        metadata={"help": "PART:F,... : the learning rate of a part of the model times F (parts: detail, the detail "
                          "CNN and the object MLP's columns that read it; context, the same for the context CNN; max, the columns that read the max-pooled feature; spatial, the spatial branch's 1x1 convolution and its columns; others, the first convolutions' weights on "
                          "the others' mask channel), so "
                          "that a part grown through zero columns by --init moves as fast as it needs to"},
    )
    programs: str = field(
        default="gt",
        metadata={"choices": PROGRAM_SOURCES,
                  "help": "each question's program: gt, the questions file's (ground truth), or parser, the shipped "
                          "question parser's from the question's text (the file's programs are then never read; a "
                          "question it cannot parse is skipped and counted), or none, no program at all: a parser "
                          "from random weights is learnt by REINFORCE from the answers beside the concepts "
                          "(reasoning.nscl.joint; one checkpoint holds both models; "
                          f"{_flag_list(NONE_UNSUPPORTED)} must keep their defaults)"},
    )
    seed: int = field(default=0, metadata={"help": "weights, batch order and flips"})
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads (may change on resume)"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:N or auto (cuda when present; may change on resume)"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0 or self.crop_size < 8:
            raise ConfigError(
                f"epochs, batch size and learning rate must be positive and the crop size at least 8, got "
                f"{self.epochs}, {self.batch_size}, {self.learning_rate}, {self.crop_size}"
            )
        if not 0.0 <= self.scale_jitter < 0.5:
            raise ConfigError(f"scale jitter: give a spread in [0, 0.5), got {self.scale_jitter}")
        if self.residual < 0:
            raise ConfigError(f"residual: give a number of blocks >= 0, got {self.residual}")
        if self.detail_size and self.detail_size <= self.crop_size or self.detail_size < 0:
            raise ConfigError(
                f"detail size: give 0 (none) or a crop side larger than the crop size {self.crop_size}, "
                f"got {self.detail_size}"
            )
        if self.mask_dilate < 0 or self.mask_dilate and not self.mask_crop:
            raise ConfigError(f"mask dilate: give a number of crop pixels >= 0, with --mask-crop, got {self.mask_dilate}"
                              f"{'' if self.mask_crop else ' without --mask-crop'}")
        if self.spatial < 0:
            raise ConfigError(f"spatial: give a number of channels >= 0, got {self.spatial}")
        if self.context_size and self.context_size < 16 or self.context_size < 0:
            raise ConfigError(f"context size: give 0 (none) or an image height of at least 16 pixels, got {self.context_size}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: choose one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.programs not in PROGRAM_SOURCES:
            raise ConfigError(f"programs: choose one of {', '.join(PROGRAM_SOURCES)}, got {self.programs!r}")
        if self.programs == "none":
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            bad = [_flag(k) for k in NONE_UNSUPPORTED if getattr(self, k) != defaults[k]]
            if bad:
                raise ConfigError(f"programs none (answers only) does not take {', '.join(bad)}: leave "
                                  f"{'it' if len(bad) == 1 else 'them'} at the default")
        self.stages  # noqa: B018 -- validates the curriculum
        self.weights  # noqa: B018 -- validates the group weights
        self.jitter_groups  # noqa: B018 -- validates the colour-jittered groups
        self.part_scales  # noqa: B018 -- validates the per-part learning rates

    @property
    def jitter_groups(self) -> tuple[str, ...]:
        """``colour_jitter`` as a tuple of concept groups (never colour itself)."""
        groups = tuple(g.strip() for g in self.colour_jitter.split(",") if g.strip())
        allowed = [a for a in ATTRIBUTES if a != "color"]
        bad = [g for g in groups if g not in allowed]
        if bad or len(set(groups)) != len(groups) or (self.colour_jitter.strip() and not groups):
            raise ConfigError(
                f"colour jitter: give groups among {', '.join(allowed)}, each once, got {self.colour_jitter!r}"
            )
        return groups

    @property
    def part_scales(self) -> dict[str, float]:
        """``part_lr`` as {part: learning-rate factor}."""
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in self.part_lr.split(","))):
            name, _, f = part.partition(":")
            try:
                factor = float(f)
            except ValueError:
                factor = -1.0
            if name.strip() not in PARTS or not 0 < factor < float("inf") or name.strip() in out:
                raise ConfigError(
                    f"part lr: give PART:F with PART one of {', '.join(PARTS)} (each once) and F > 0, got {part!r}"
                )
            out[name.strip()] = factor
        if self.part_lr.strip() and not out:
            raise ConfigError(f"part lr: give PART:F,... with PART one of {', '.join(PARTS)}, got {self.part_lr!r}")
        return out

    @property
    def weights(self) -> dict[str, float]:
        """``group_weights`` as {concept group: loss weight}."""
        out: dict[str, float] = {}
        for part in filter(None, self.group_weights.split(",")):
            name, _, w = part.partition(":")
            try:
                weight = float(w)
            except ValueError:
                weight = -1.0
            if name.strip() not in ATTRIBUTES or not weight > 0 or name.strip() in out:  # shape:2,shape:3 kept 3
                raise ConfigError(
                    f"group weights: give GROUP:W with GROUP one of {', '.join(ATTRIBUTES)} (each once) and W > 0, "
                    f"got {part!r}"
                )
            out[name.strip()] = weight
        return out

    @property
    def stages(self) -> tuple[tuple[int, int], ...]:
        """The curriculum as (max program nodes, max objects) per stage (0: any)."""
        try:
            stages = tuple(tuple(int(x) for x in part.split(":")) for part in self.curriculum.split(","))
        except ValueError:
            stages = ()
        if not stages or any(len(s) != 2 or min(s) < 0 for s in stages):
            raise ConfigError(f"curriculum: give stages 'NODES:OBJECTS,...' of integers >= 0, got {self.curriculum!r}")
        return stages  # type: ignore[return-value]


def stage_of(config: NSCLTrainConfig, epoch: int) -> tuple[int, int]:
    """The curriculum stage (max program nodes, max objects; 0: any) of ``epoch``."""
    stages = config.stages
    return stages[min(len(stages) - 1, epoch * len(stages) // config.epochs)]


def _admitted(data: QASet, limits: tuple[int, int]) -> list[int]:
    nodes, objects = limits
    return [
        q
        for q in range(len(data))
        if (not nodes or len(data.programs[q]) <= nodes) and (not objects or len(data.boxes[data.image[q]]) <= objects)
    ]


def _image_batches(data: QASet, admitted: list[int], size: int, g: torch.Generator) -> list[list[int]]:
    """Admitted questions grouped by image, images in random order, cut after ``size`` or more questions."""
    by_image: dict[int, list[int]] = {}
    for q in admitted:
        by_image.setdefault(data.image[q], []).append(q)
    images = list(by_image)
    out: list[list[int]] = [[]]
    for i in torch.randperm(len(images), generator=g).tolist():
        if len(out[-1]) >= size:
            out.append([])
        out[-1].extend(by_image[images[i]])
    return [b for b in out if b]


def _share(data: QASet, questions: list[int], world: WorldInfo, whole_images: bool) -> list[int]:
    """This rank's share of a global batch: whole images (an image's questions stay together) or questions.

    Empty when the batch has fewer images (or questions) than processes: every rank skips it.
    """
    if world.size == 1:
        return questions
    if not whole_images:
        return rank_share(questions, world) if len(questions) >= world.size else []
    groups: dict[int, list[int]] = {}
    for q in questions:
        groups.setdefault(data.image[q], []).append(q)
    if len(groups) < world.size:
        return []
    return [q for group in rank_share(list(groups.values()), world) for q in group]


def question_weight(program: Program, weights: dict[str, float], vocabulary=ATTRIBUTES) -> float:
    """The loss weight of a question: the largest of its program's concept groups' weights (1 if none)."""
    out = 1.0
    for call in program.nodes():
        for group, w in weights.items():
            if call.function.endswith("_" + group) or any(v in vocabulary[group] for v in call.values):
                out = max(out, w)
    return out


def _batch_loss(
    model: ConceptLearner,
    data: QASet,
    questions: Sequence[int],
    flip: torch.Generator | None = None,
    weights: dict[str, float] | None = None,
    total: list[float] | None = None,
    jitter: torch.Generator | None = None,
    jitter_groups: Sequence[str] = (),
    scale: tuple[torch.Generator, float] | None = None,
) -> tuple[torch.Tensor, int]:
    images = sorted({data.image[q] for q in questions})
    row = {img: k for k, img in enumerate(images)}
    crops, boxes = data.objects(images)
    whole = data.context_images(images) if model.context_cnn is not None else None
    if model.context_cnn is not None and whole is None:
        raise ConfigError(f"the model reads whole images (context size {model.config.context_size}), but the data "
                          "was read without them (load_split(..., context_size=...))")
    if flip is not None and whole is not None:  # mirror an image's crops and the image together, probability 1/2
        turn = (torch.rand(len(crops), generator=flip) < 0.5).tolist()
        crops = [c.flip(-1) if t else c for c, t in zip(crops, turn, strict=True)]
        whole = [x.flip(-1) if t else x for x, t in zip(whole, turn, strict=True)]
    elif flip is not None:  # mirror each object's crop with probability 1/2; colour, shape, material, size stay
        crops = [
            torch.where(torch.rand(len(c), 1, 1, 1, generator=flip) < 0.5, c.flip(-1), c) for c in crops
        ]
    if scale is not None:  # (generator, spread): every crop re-framed (rescale)
        crops = [rescale(c, scale[1], scale[0]) for c in crops]
    recoloured = [recolour(c, jitter) for c in crops] if jitter is not None and jitter_groups else None
    device = next(model.parameters()).device
    if device.type != "cpu":
        crops, boxes = [c.to(device) for c in crops], [b.to(device) for b in boxes]
        recoloured = [c.to(device) for c in recoloured] if recoloured is not None else None
        whole = [x.to(device) for x in whole] if whole is not None else None
    scenes = model(crops, boxes, recoloured, jitter_groups, whole)
    out = soft_execute([data.programs[q] for q in questions], scenes, [row[data.image[q]] for q in questions])
    right = sum(a == data.answers[q] for a, q in zip(out.answers, questions, strict=True))
    log_prob = out.log_prob([data.answers[q] for q in questions])
    if not weights:
        return -log_prob.mean(), right
    w = torch.tensor([question_weight(data.programs[q], weights, model.vocabulary) for q in questions])
    if total is not None:  # the share's weight, for the loop to weigh it against the other processes' shares
        total.append(float(w.sum()))
    return -(w.to(log_prob.device) * log_prob).sum() / w.sum().to(log_prob.device), right


@torch.no_grad()
def evaluate_nscl(model: ConceptLearner, data: QASet, *, batch_size: int = 256) -> dict[str, Any]:
    """Answer accuracy of the soft executor's most likely answers on ``data``."""
    model.eval()
    right, order = 0, list(range(len(data)))
    for k in range(0, len(order), batch_size):
        right += _batch_loss(model, data, order[k : k + batch_size])[1]
    return {"questions": len(data), "accuracy": right / max(1, len(data))}


def train_nscl(
    data: QASet,
    config: NSCLTrainConfig,
    out: PathLike,
    *,
    valid: QASet | None = None,
    model_config: ConceptConfig | None = None,
    command: str = "",
    progress: bool = True,
) -> tuple[ConceptLearner, dict[str, Any]]:
    """Train (or resume) NS-CL on ``data``; checkpoint at ``out`` after every epoch.

    ``config.crop_size``, ``config.residual``, ``config.test_flip``, ``config.detail_size`` and ``config.context_size`` override
    ``model_config``'s, and ``data`` must be cut at the model's input size (``detail_size`` if set, else
    ``crop_size``).  An ``--init`` model may come from another crop size (the CNN
    pools adaptively, so its weights fit any crop side), have fewer residual blocks per
    stage (the new ones start as the identity: the deeper model starts as the ``--init`` one)
    and lack the detail CNN (it starts as a copy of the CNN, read through zero weights) or the
    context CNN (read through zero weights).

    Returns:
        The model and its metadata (history, seconds, what it was trained on).

    Raises:
        ConfigError: the data's crops are not at the input size, or the ``--init`` model's
            architecture (other than its crop size and fewer residual blocks) or concepts differ
            from this run's.
    """
    if data.program_source != config.programs:
        raise ConfigError(f"programs {config.programs}, but the training data's programs come from "
                          f"{data.program_source} (load_split(..., programs=...) must match)")
    if config.programs == "none":  # a parser learnt beside the concepts, on the same loop
        from reasoning.nscl.joint import train_nscl_none

        return train_nscl_none(data, config, out, valid=valid, model_config=model_config, command=command,
                               progress=progress)
    wanted = config.detail_size or config.crop_size
    side = next((int(c.shape[-1]) for c in data.crops if len(c)), wanted)
    if side != wanted:
        raise ConfigError(f"crop size {wanted}, but the training data is cut at {side} pixels")
    channels = next((int(c.shape[1]) for c in data.crops if len(c)), 5 if config.others_mask else 4)
    if channels != (5 if config.others_mask else 4):
        raise ConfigError(f"others mask {config.others_mask}, but the training data's crops have {channels} channels "
                          "(load_split(..., others_mask=...) must match)")
    if config.context_size:
        have = tuple(data.contexts[0].shape[-2:]) if data.contexts else None
        if have != context_shape(config.context_size):
            raise ConfigError(f"context size {config.context_size}, but the training data's whole images are "
                              f"{'not read' if have is None else f'{have[0]} pixels high'}")
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    from physics.models.training import resolve_device

    device = init_distributed(resolve_device(config.device))
    world = world_info()
    model = ConceptLearner(
        dataclasses.replace(model_config or ConceptConfig(), crop_size=config.crop_size, residual=config.residual,
                            test_flip=config.test_flip, detail_size=config.detail_size,
                            context_size=config.context_size, max_pool=config.max_pool, mask_crop=config.mask_crop,
                            mask_dilate=config.mask_dilate, spatial=config.spatial, others_mask=config.others_mask)
    )
    if config.init:  # a resumed checkpoint at ``out`` still wins over these weights
        start, _ = load_nscl(config.init)
        _load_init(model, start, config.init)
    out = Path(out)
    meta: dict[str, Any] = {
        "command": command,
        "trained_on": "images, instance masks, questions and answers (no attribute label)",
        "train_questions": len(data),
        "train_images": len(data.crops),
        "programs": config.programs,
        "skipped_questions": len(data.skipped),
        "world_size": world.size,
    }

    def payload() -> dict[str, Any]:
        return _payload(model, {**meta, "history": loop.history, "seconds": round(loop.seconds, 1)})

    def global_batches(epoch: int) -> list[tuple[int, list[int]]]:
        admitted = _admitted(data, stage_of(config, epoch))
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        base = (config.seed * 1_000_003 + epoch) * 100_003  # each batch carries its own flip seed,
        if config.whole_images:  # so a resumed run mirrors the same crops
            return [(base + k, qs) for k, qs in enumerate(_image_batches(data, admitted, config.batch_size, g))]
        order = [admitted[i] for i in torch.randperm(len(admitted), generator=g).tolist()]
        return [(base + k, order[k : k + config.batch_size]) for k in range(0, len(order), config.batch_size)]

    schedule: Schedule = Constant(config.learning_rate)
    if config.schedule == "cosine":
        schedule = WarmupCosine(config.learning_rate, sum(len(global_batches(e)) for e in range(config.epochs)))

    def batches(epoch: int) -> list[tuple[int, list[int]]]:
        """The epoch's global batches (the same on every process), each cut to this rank's share."""
        if world.size == 1:
            return global_batches(epoch)
        shares = [(seed, _share(data, qs, world, config.whole_images)) for seed, qs in global_batches(epoch)]
        return [(seed, qs) for seed, qs in shares if qs]

    model.to(device)
    if world.size > 1:
        global_batch_norm(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    if config.part_scales:
        try:
            scaled = [(p, cols, f) for part, f in config.part_scales.items() for p, cols in model.part_parameters(part)]
        except ValueError as exc:
            raise ConfigError(f"part lr {config.part_lr!r}: {exc}") from None
        optimizer = PartScaledAdam(model.parameters(), scaled, lr=config.learning_rate)
    loop = TrainLoop(
        model, optimizer, schedule, out, flags=dataclasses.asdict(config), command=command,
        payload=payload, grad_clip=5.0, log=RunLog(out.with_suffix(".jsonl")), may_change=RESUMABLE_CHANGES,
        desc="nscl", progress=progress, distributed=True, world=world,
    )
    loop.resume()

    def step(batch: tuple[int, list[int]]) -> dict[str, Any]:
        flip_seed, questions = batch
        flip = torch.Generator().manual_seed(flip_seed) if config.flip else None
        # the colours drawn from the batch's own seed too (another stream), so that a resume redraws them
        jitter = torch.Generator().manual_seed(flip_seed + 7_777_777) if config.jitter_groups else None
        scale = (torch.Generator().manual_seed(flip_seed + 3_333_333), config.scale_jitter) if config.scale_jitter else None
        total: list[float] = []
        loss, right = _batch_loss(model, data, questions, flip, config.weights, total, jitter, config.jitter_groups,
                                  scale)
        # under torchrun a group-weighted share weighs its questions' weights, so that the processes'
        # average is the whole batch's gradient; one process logs per question as before
        weight = total[0] if world.size > 1 and total else len(questions)
        return {"loss": loss, "train_accuracy": right / len(questions), "weight": weight}

    def end_round(epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        nodes, objects = stage_of(config, epoch)
        extra: dict[str, Any] = {"stage_max_nodes": nodes, "stage_max_objects": objects}
        if valid is not None and len(valid):
            extra["valid_accuracy"] = evaluate_nscl(model, valid)["accuracy"]
        return extra

    t0 = time.perf_counter()
    loop.fit(config.epochs, batches, step, end_round=end_round, steps_in=lambda e: len(batches(e)))
    meta.update(history=loop.history, seconds=round(loop.seconds, 1), wall_seconds=round(time.perf_counter() - t0, 1))
    return model, meta


class PartScaledAdam(torch.optim.Adam):
    """Adam whose step on some parameters (or some of their columns) is ``factor`` times as long.

    Adam's step does not depend on the gradient's scale, so a part's learning rate cannot be
    raised through its gradient; and one parameter group per part cannot take a column range
    of a shared weight.  After Adam's step the change of each scaled slice is multiplied by its
    factor: for Adam without weight decay that is the step at ``factor`` times the rate (the
    moments, and so a resume, are unchanged).

    Args:
        params: All parameters, as for Adam.
        scaled: (parameter, column slice or None for all of it, factor) triples.
    """

    def __init__(self, params, scaled: Sequence[tuple[torch.nn.Parameter, slice | None, float]], **kwargs) -> None:
        super().__init__(params, **kwargs)
        if any(group["weight_decay"] for group in self.param_groups):
            raise ConfigError("PartScaledAdam: scaled steps need Adam without weight decay")
        self.scaled = list(scaled)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        before = [(p[:, cols] if cols is not None else p).clone() for p, cols, _ in self.scaled]
        loss = super().step(closure)
        for (p, cols, factor), old in zip(self.scaled, before, strict=True):
            view = p[:, cols] if cols is not None else p
            view.copy_(old + factor * (view - old))
        return loss


def _load_init(model: ConceptLearner, start: ConceptLearner, where: str) -> None:
    """``start``'s weights into ``model``; what ``start`` lacks starts so that ``model`` computes what it does.

    Residual blocks ``start`` lacks keep their identity start.  A detail CNN that ``start``
    lacks becomes a copy of its CNN (features that already tell objects apart, at the finer
    scale), read by zero columns of the object MLP's first layer: the grown model's logits are
    ``start``'s on the same crops resized, and the gradient teaches those columns first.  A context
    CNN that ``start`` lacks keeps its random start, read by zero columns too, and so do a max-pooled
    branch (``max_pool``) and a spatial branch (``spatial``, its 1 x 1 reduction random); each part ``start`` has keeps its columns, moved to where this model reads that
    part (:meth:`ConceptLearner.feature_columns`), so parts can be grown in any order.  An others' mask
    channel (``others_mask``) that ``start`` lacks is read by zero weights of the first convolutions.
    """
    same = dataclasses.replace(start.config, crop_size=model.config.crop_size, residual=model.config.residual,
                               test_flip=model.config.test_flip, detail_size=model.config.detail_size,
                               context_size=model.config.context_size, max_pool=model.config.max_pool,
                               mask_crop=model.config.mask_crop, mask_dilate=model.config.mask_dilate,
                               spatial=model.config.spatial if not start.config.spatial else start.config.spatial,
                               others_mask=model.config.others_mask)
    grows_detail = model.detail_cnn is not None and start.detail_cnn is None
    grows_context = model.context_cnn is not None and start.context_cnn is None
    grows_max = model.config.max_pool and not start.config.max_pool
    grows_spatial = model.spatial_map is not None and start.spatial_map is None
    if (same != model.config or start.config.residual > model.config.residual or start.vocabulary != model.vocabulary
            or (start.detail_cnn is not None and model.detail_cnn is None)
            or (start.context_cnn is not None and model.context_cnn is None)
            or (start.config.max_pool and not model.config.max_pool)
            or (start.config.others_mask and not model.config.others_mask)
            or (start.spatial_map is not None and start.config.input_size != model.config.input_size)):
        raise ConfigError(
            f"--init {where}: its architecture or concepts differ from this run's (it may differ only in crop "
            f"size, have fewer residual blocks: it has {start.config.residual}, this run {model.config.residual}, "
            f"and lack the detail CNN: its detail size {start.config.detail_size}, this run's {model.config.detail_size}, "
            f"or the context CNN: its context size {start.config.context_size}, this run's {model.config.context_size}, "
            f"or the max-pooled branch: its max pool {start.config.max_pool}, this run's {model.config.max_pool}, "
            f"or the spatial branch: its spatial {start.config.spatial} (at {start.config.input_size} px), this "
            f"run's {model.config.spatial} (at {model.config.input_size} px), or the others' mask channel: its "
            f"others mask {start.config.others_mask}, this run's {model.config.others_mask})"
        )
    if start.config.max_pool and grows_detail:
        raise ConfigError(f"--init {where}: its max-pooled branch reads the crop CNN's map; with a detail CNN it would "
                          "read the detail CNN's: grow the detail CNN from a model without the branch, then add it")
    if start.spatial_map is not None and grows_detail:
        raise ConfigError(f"--init {where}: its spatial branch reads the crop CNN's map; with a detail CNN it would "
                          "read the detail CNN's: grow the detail CNN from a model without the branch, then add it")
    if start.context_cnn is not None and start.config.context_size != model.config.context_size:
        raise ConfigError(f"--init {where}: its context CNN reads {start.config.context_size}-pixel images, this run "
                          f"{model.config.context_size}")
    state = start.state_dict()
    if grows_detail:
        state.update({f"detail_cnn.{k}": v.clone() for k, v in start.cnn.state_dict().items()})
    if grows_context:
        state.update({f"context_cnn.{k}": v.detach().clone() for k, v in model.context_cnn.state_dict().items()})
    if grows_spatial:
        state.update({f"spatial_map.{k}": v.detach().clone() for k, v in model.spatial_map.state_dict().items()})
    if model.config.others_mask and not start.config.others_mask:  # the new input channel read by zero weights
        for cnn in ("cnn", "detail_cnn"):
            key = f"{cnn}.0.0.weight"
            if key in state:
                state[key] = torch.cat([state[key], torch.zeros_like(state[key][:, :1])], dim=1)
    if grows_detail or grows_context or grows_max or grows_spatial:  # each part's columns where this model reads it
        first = torch.zeros_like(model.object_mlp[0].weight)
        old, new = start.feature_columns(), model.feature_columns()
        for part, columns in old.items():
            first[:, new[part]] = state["object_mlp.0.weight"][:, columns]
        state["object_mlp.0.weight"] = first
    missing, unexpected = model.load_state_dict(state, strict=False)
    new_blocks = {f"{cnn}.{k}.{3 + b}." for cnn in ("cnn", "detail_cnn", "context_cnn") for k in range(3)
                  for b in range(start.config.residual, model.config.residual)}
    if unexpected or any(not any(key.startswith(p) for p in new_blocks) for key in missing):
        raise ConfigError(f"--init {where}: weights that do not fit this model ({sorted(unexpected + missing)[:4]})")


def _payload(model: ConceptLearner, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": dataclasses.asdict(model.config),
        "vocabulary": {a: list(ws) for a, ws in model.vocabulary.items()},
        "relations": list(model.relation_names),
        "metadata": meta,
    }


def save_nscl(path: PathLike, model: ConceptLearner, meta: dict[str, Any]) -> None:
    """Write a finished model file (no training state), atomically with its weights digest."""
    atomic_torch_save(path, _payload(model, meta))


def average_nscl(paths: Sequence[PathLike], weights: Sequence[float] | None = None) -> tuple[ConceptLearner, dict[str, Any]]:
    """The weighted mean of the weights of NS-CL models of one architecture (a "model soup").

    Every float tensor (batch-norm statistics included) is averaged; integer ones (batch-norm
    step counts) come from the first model.  Meant for a fine-tune and the model it started
    from (WiSE-FT, Wortsman et al. 2022), which lie in one basin.  The metadata is the first
    model's, with ``averaged_from`` (paths, weights and each model's command).

    Raises:
        ConfigError: fewer than two models, weights that are not positive or do not match the
            paths, or models of different architectures or concepts.
    """
    if len(paths) < 2:
        raise ConfigError(f"average: give two or more NS-CL models, got {len(paths)}")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or not all(0 < w < float("inf") for w in weights):
        raise ConfigError(f"average: give one positive weight per model, got {list(weights)} for {len(paths)} models")
    models = [load_nscl(p) for p in paths]
    first, meta = models[0]
    for p, (m, _) in zip(paths[1:], models[1:], strict=True):
        if m.config != first.config or m.vocabulary != first.vocabulary or m.relation_names != first.relation_names:
            raise ConfigError(f"average: {p} has another architecture or other concepts than {paths[0]}")
    out = ConceptLearner(first.config, first.vocabulary, first.relation_names)
    out.load_state_dict(average_state_dicts([m.state_dict() for m, _ in models], weights, non_floating="first"))
    sources = [{"path": str(p), "weight": w, "command": m.get("command", "")}
               for p, w, (_, m) in zip(paths, weights, models, strict=True)]
    return out.eval(), {**meta, "averaged_from": sources}


def training_legs(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The training commands a model file was made by, oldest first, from its stored metadata.

    A model file is often the end of a chain: each round's metadata holds the round before
    it under ``previous_round``.  This walks that chain, so what a checkpoint cost to make (the
    issue's "training within 60 minutes") is read from the file instead of from memory.

    Returns:
        One dict per leg: ``command``, ``seconds`` (loop time, ``None`` where the round did not
        record it), ``images``, ``epochs`` (``None`` without a history) and ``averaged`` (the leg
        ended in a weight mean, :func:`average_nscl`).

    Raises:
        CheckpointError: a round that is not a dict, a ``history`` that is not a list, or a chain
            that comes back to a round it passed (one line naming the round, counted from the newest).

    >>> [leg["seconds"] for leg in training_legs({"seconds": 2.0, "previous_round": {"seconds": 1.0}})]
    [1.0, 2.0]
    """
    legs: list[dict[str, Any]] = []
    round_: Any = meta
    seen: set[int] = set()
    while round_:
        where = f"model metadata, round {len(legs) + 1} from the newest"
        if not isinstance(round_, dict):
            raise CheckpointError(f"{where}: must be a dict of metadata, got {type(round_).__name__}")
        if id(round_) in seen:  # a pickle may hold a dict inside itself: the walk would never end
            raise CheckpointError(f"{where}: previous_round leads back to a newer round (a cycle)")
        seen.add(id(round_))
        history = round_.get("history")
        if history is not None and not isinstance(history, list):
            raise CheckpointError(f"{where}: history must be a list of epochs, got {type(history).__name__}")
        legs.append({"command": round_.get("command", ""), "seconds": round_.get("seconds"),
                     "images": round_.get("train_images"), "epochs": len(history) if history else None,
                     "averaged": bool(round_.get("averaged_from"))})
        round_ = round_.get("previous_round")
    return legs[::-1]


def load_nscl(path: PathLike) -> tuple[ConceptLearner, dict[str, Any]]:
    """A model written by :func:`save_nscl` or a training checkpoint (``weights_only`` load).

    A ``--programs none`` checkpoint (:mod:`reasoning.nscl.joint`, concept learner and parser in
    one file) gives its concept learner; :func:`reasoning.nscl.joint.load_joint` gives both.

    Raises:
        CheckpointError: damaged, of another structure, or weights that do not fit.
    """
    where = str(path)
    ckpt = require_fields(torch_load(path, "NS-CL checkpoint"), where, "NS-CL checkpoint",
                          {"model": dict, "config": dict, "vocabulary": dict, "relations": list})
    weights = ckpt["model"]
    if isinstance(ckpt.get("parser"), dict):  # --programs none: the concept learner's weights are concepts.*
        weights = {k.removeprefix("concepts."): v for k, v in weights.items() if k.startswith("concepts.")}
    try:
        config = ConceptConfig(**ckpt["config"])
        model = ConceptLearner(config, {a: tuple(ws) for a, ws in ckpt["vocabulary"].items()}, ckpt["relations"])
        model.load_state_dict(weights)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{where}: not an NS-CL model that fits this code ({exc})") from None
    return model.eval(), dict(ckpt.get("metadata") or {})
