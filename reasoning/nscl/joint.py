"""NS-CL with no program annotation: the question parser learnt jointly by REINFORCE from answers.

A parser starts from random weights (:func:`fresh_parser`; its vocabularies come from
the training questions' text and the DSL catalogue, never from a program).  Each step
(:func:`joint_step`) samples one program per question from the parser, runs the valid
ones with the quasi-symbolic executor on the concept learner's current scores, and

* rewards each sample 1 when its most likely answer is the given answer, else 0 (an
  ill-formed program, one the soft executor cannot run, or one whose answer is of
  another kind than the given answer gets 0); the parser takes a REINFORCE step with
  a moving-average baseline and an entropy bonus;
* trains the concept learner on the answers' negative log-likelihood under the
  sampled programs whose answer kind matches the given answer.

The answers are the only supervision: :class:`~reasoning.nscl.data.QASet` read with
``programs="none"`` holds no program.

:func:`train_joint` runs the steps on the shared :class:`~physics.training.TrainLoop`
(both models in one :class:`JointModel`, one :class:`JointAdam` with a parameter group
each): with an output path every round writes one checkpoint holding both models, the
optimiser state and the reward baseline, and a rerun resumes it bit for bit.
``nesy train nscl --programs none`` is :func:`train_nscl_none`, rounds of one epoch.
:func:`~reasoning.nscl.train.load_nscl` of such a file loads its concept learner;
:func:`load_joint` loads both models.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physics.config_types import check_field_types
from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike, torch_load
from physics.training import Constant, RunLog, Schedule, TrainLoop, WarmupCosine, seed_everything
from reasoning.dsl import Program
from reasoning.errors import ProgramError
from reasoning.executor.soft import SOFT_OPS, check_soft, soft_execute
from reasoning.nscl.data import QASet
from reasoning.nscl.model import ConceptConfig, ConceptLearner
from reasoning.parser import ParserConfig, ParserData, ParserExample, QuestionParser
from reasoning.parser.checkpoint import parser_from_checkpoint, parser_payload
from reasoning.parser.train import GRAD_CLIP, build_parser

__all__ = ["JointConfig", "JointModel", "JointAdam", "fresh_parser", "joint_loss", "joint_step", "train_joint",
           "train_nscl_none", "evaluate_joint", "load_joint", "answer_kind", "NONE_UNSUPPORTED"]

# flags of NSCLTrainConfig that --programs none does not implement: each must keep its default
NONE_UNSUPPORTED = ("curriculum", "flip", "init", "whole_images", "group_weights", "colour_jitter", "scale_jitter",
                    "context_size", "part_lr", "device")


@dataclass(frozen=True)
class JointConfig:
    """Settings of the joint parser and concept training."""

    steps: int = field(default=200, metadata={"min": 1, "help": "optimiser steps of both models"})
    batch_size: int = field(default=64, metadata={"min": 1, "help": "questions per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam step size of the concept learner"})
    parser_learning_rate: float = field(default=1e-3, metadata={"help": "Adam step size of the parser"})
    baseline_decay: float = field(default=0.9, metadata={"help": "moving-average reward baseline decay"})
    entropy_weight: float = field(default=0.005, metadata={"help": "entropy bonus weight of the parser's loss"})
    seed: int = field(default=0, metadata={"help": "weights, batch order and sampling"})

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.steps < 1 or self.batch_size < 1 or not self.learning_rate > 0 or not self.parser_learning_rate > 0:
            raise ConfigError(f"joint: steps, batch size and learning rates must be positive, got {self.steps}, "
                              f"{self.batch_size}, {self.learning_rate}, {self.parser_learning_rate}")
        if not 0 <= self.baseline_decay < 1 or self.entropy_weight < 0:
            raise ConfigError(f"joint: baseline decay in [0, 1) and entropy weight >= 0, got {self.baseline_decay}, "
                              f"{self.entropy_weight}")


def fresh_parser(texts: list[str], seed: int = 0) -> QuestionParser:
    """A parser with random weights whose question vocabulary is ``texts``' words (no program is read)."""
    return build_parser(ParserConfig(seed=seed), ParserData(tuple(ParserExample(t) for t in texts)))


def answer_kind(answer: str, vocabulary: dict[str, tuple[str, ...]]) -> str:
    """``"bool"``, ``"count"`` or the concept group whose word ``answer`` is (``""``: none)."""
    if answer in ("yes", "no"):
        return "bool"
    if answer.isdigit():
        return "count"
    return next((group for group, words in vocabulary.items() if answer in words), "")


def _runnable(parser: QuestionParser, tokens: tuple[str, ...] | None) -> Program | None:
    program = parser.to_program(tokens)
    if program is None or any(call.function not in SOFT_OPS for call in program.nodes()):
        return None
    return program


def _execute(programs: list[Program], scenes, rows: list[int]):
    """Soft outputs of the ``programs`` the executor takes, and their positions; each is checked, then run once.

    A program :func:`~reasoning.executor.soft.check_soft` refuses (malformed, a word outside
    the learner's vocabulary) is dropped before anything runs.
    """
    keep = []
    for k, (program, row) in enumerate(zip(programs, rows, strict=True)):
        try:
            check_soft(program, scenes, row, k)
            keep.append(k)
        except ProgramError:
            pass
    if not keep:
        return None, []
    return soft_execute([programs[k] for k in keep], scenes, [rows[k] for k in keep]), keep


def _sampled(model: ConceptLearner, parser: QuestionParser, data: QASet, questions: list[int], mode: str):
    """Decode one program per question, run the runnable ones: (decoded, log p of answers, rewards, valid, right)."""
    images = sorted({data.image[q] for q in questions})
    row = {img: k for k, img in enumerate(images)}
    words, lengths, slots = parser.encode_questions([data.texts[q] for q in questions])
    dec = parser.decode(words, lengths, mode=mode, allowed=parser.slot_mask(slots))
    programs = [_runnable(parser, parser.restore(r.tolist(), sl)) for r, sl in zip(dec.tokens, slots, strict=True)]
    valid = [k for k, p in enumerate(programs) if p is not None]
    rewards = torch.zeros(len(questions))
    log_probs: list[torch.Tensor] = []
    crops, boxes = data.objects(images)
    scenes = model(crops, boxes)
    out, keep = _execute([programs[k] for k in valid], scenes, [row[data.image[questions[k]]] for k in valid])
    valid = [valid[k] for k in keep]
    matched: list[int] = []  # positions in ``valid`` whose answer is of the given answer's kind
    if out is not None:
        targets = list(out.answers)
        for j, k in enumerate(valid):
            answer, got = data.answers[questions[k]], out.answers[j]
            rewards[k] = float(got == answer)
            if answer_kind(answer, model.vocabulary) == answer_kind(got, model.vocabulary):
                targets[j] = answer
                matched.append(j)
        if matched:
            log_probs = list(out.log_prob(targets)[matched])
    return dec, log_probs, rewards, len(valid), len(matched)


class JointModel(torch.nn.Module):
    """The concept learner and the parser as one module (``concepts.*`` and ``parser.*`` weights)."""

    def __init__(self, concepts: ConceptLearner, parser: QuestionParser) -> None:
        super().__init__()
        self.concepts, self.parser = concepts, parser


class JointAdam(torch.optim.Adam):
    """Adam over parameter groups that each clip their gradient norm to ``GRAD_CLIP`` first.

    A group's ``lr_factor`` (default 1) multiplies the rate the loop sets, so that one
    schedule drives the concept learner's group and the parser's at their ratio of rates.
    """

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        rates = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            torch.nn.utils.clip_grad_norm_(group["params"], GRAD_CLIP)
            group["lr"] = group["lr"] * group.get("lr_factor", 1.0)
        try:
            return super().step(closure)
        finally:
            for group, rate in zip(self.param_groups, rates, strict=True):
                group["lr"] = rate


def _optimizer(model: ConceptLearner, parser: QuestionParser, config: JointConfig) -> JointAdam:
    return JointAdam([{"params": list(model.parameters()), "lr_factor": 1.0},
                      {"params": list(parser.parameters()),
                       "lr_factor": config.parser_learning_rate / config.learning_rate}],
                     lr=config.learning_rate)


def joint_loss(
    model: ConceptLearner,
    parser: QuestionParser,
    data: QASet,
    questions: list[int],
    baseline: float | None,
    config: JointConfig,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The summed loss of one joint update on ``questions`` (REINFORCE for the parser, answer NLL for the concepts).

    Returns:
        The loss (the two terms share no parameter) and ``reward`` (fraction answered right),
        ``valid`` (fraction of runnable programs), ``matched`` (fraction whose answer kind
        matched), ``baseline`` (updated) and ``concept_loss``.
    """
    model.train()
    parser.train()
    dec, log_probs, rewards, n_valid, matched = _sampled(model, parser, data, questions, "sample")
    mean = float(rewards.mean())
    base = mean if baseline is None else baseline
    parser_loss = -((rewards - base) * dec.log_prob).mean() - config.entropy_weight * dec.entropy.mean()
    concept_loss = -torch.stack(log_probs).mean() if log_probs else torch.zeros(())
    return parser_loss + concept_loss, {
        "reward": mean, "valid": n_valid / len(questions), "matched": matched / len(questions),
        "baseline": config.baseline_decay * base + (1 - config.baseline_decay) * mean,
        "concept_loss": float(concept_loss.detach())}


def joint_step(
    model: ConceptLearner,
    parser: QuestionParser,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    data: QASet,
    questions: list[int],
    baseline: float | None,
    config: JointConfig,
) -> dict[str, Any]:
    """One joint update on ``questions`` with one optimiser per model (:func:`joint_loss`'s figures, ``loss`` the concepts')."""
    loss, stats = joint_loss(model, parser, data, questions, baseline, config)
    for opt in optimizers:
        opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parser.parameters(), GRAD_CLIP)
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    for opt in optimizers:
        opt.step()
    stats["loss"] = stats.pop("concept_loss")
    return stats


@torch.no_grad()
def evaluate_joint(model: ConceptLearner, parser: QuestionParser, data: QASet, *, batch_size: int = 256) -> dict[str, Any]:
    """Greedy parses of ``data``'s questions run softly: answer accuracy and fraction of runnable programs."""
    model.eval()
    right = valid = 0
    for s in range(0, len(data), batch_size):
        qs = list(range(s, min(len(data), s + batch_size)))
        _, _, rewards, n_valid, _ = _sampled(model, parser, data, qs, "greedy")
        right += int(rewards.sum())
        valid += n_valid
    return {"questions": len(data), "accuracy": right / max(1, len(data)), "valid": valid / max(1, len(data))}


def _batch_of(config: JointConfig, n: int, step: int) -> list[int]:
    """The questions of global step ``step``: epochs of random order from ``(seed, epoch)``, a short last batch."""
    per_epoch = math.ceil(n / config.batch_size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)).tolist()
    return order[k * config.batch_size : (k + 1) * config.batch_size]


def train_joint(
    data: QASet,
    config: JointConfig,
    *,
    valid: QASet | None = None,
    every: int = 50,
    log: Callable[[dict[str, Any]], None] | None = print,
    out: PathLike | None = None,
    command: str = "",
    model_config: ConceptConfig | None = None,
    schedule: Schedule | None = None,
    flags: dict[str, Any] | None = None,
    may_change: tuple[str, ...] = (),
    meta: dict[str, Any] | None = None,
    progress: bool = False,
) -> tuple[ConceptLearner, QuestionParser, list[dict[str, Any]]]:
    """Train a fresh concept learner and a fresh parser together from ``data`` read with ``programs="none"``.

    Rounds of ``every`` steps run on :class:`~physics.training.TrainLoop`; with ``out`` each
    round writes the checkpoint (both models, optimiser, generators, reward baseline) and
    ``OUT.jsonl``, and a checkpoint already at ``out`` is resumed (its ``flags``, default
    ``config``'s and ``every``, must match but ``may_change``).

    Returns:
        The two models and the history (per round: ``epoch``, passes over ``data`` so far, the mean
        training figures, ``train_accuracy`` the sampled programs' reward, and :func:`evaluate_joint` on ``valid`` as ``valid_*``).

    Raises:
        ConfigError: ``data`` (or ``valid``) carries programs: this variant learns from answers only.
    """
    for name, d in (("training", data), ("validation", valid)):
        if d is not None and (d.program_source != "none" or d.programs):
            raise ConfigError(f"joint: the {name} data carries programs ({d.program_source}); read it with "
                              "load_split(..., programs='none')")
    if every < 1:
        raise ConfigError(f"joint: give rounds of at least 1 step, got {every}")
    seed_everything(config.seed)
    model = ConceptLearner(model_config or ConceptConfig())
    parser = fresh_parser(data.texts, config.seed)  # a dev question's unseen word reads as UNK
    joint = JointModel(model, parser)
    state: dict[str, Any] = {"baseline": None}
    info = {**(meta or {}), "trained_on": "images, instance masks, questions and answers (no program, no attribute "
            "label)", "programs": "none", "command": command}

    def payload() -> dict[str, Any]:
        from reasoning.nscl.train import _payload

        out_ = _payload(model, {**info, "history": loop.history, "seconds": round(loop.seconds, 1)})
        out_["model"] = {k: v.detach().cpu().clone() for k, v in joint.state_dict().items()}
        out_["parser"] = {k: v for k, v in parser_payload(parser).items() if k != "model"}
        return out_

    path = Path(out) if out is not None else None
    loop = TrainLoop(
        joint, _optimizer(model, parser, config), schedule or Constant(config.learning_rate), path,
        flags=flags if flags is not None else {**dataclasses.asdict(config), "every": every}, command=command,
        payload=payload, log=RunLog(path.with_suffix(".jsonl")) if path is not None else None, unit="step",
        may_change=may_change, extra_state=lambda: dict(state), load_extra=state.update, desc="nscl-joint",
        progress=progress,
    )
    loop.resume()

    def batches(r: int) -> list[list[int]]:
        return [_batch_of(config, len(data), s) for s in range(r * every, min(config.steps, (r + 1) * every))]

    def step(questions: list[int]) -> dict[str, Any]:
        loss, stats = joint_loss(model, parser, data, questions, state["baseline"], config)
        state["baseline"] = stats.pop("baseline")
        return {"loss": loss, "train_accuracy": stats.pop("reward"), **stats}

    def end_round(r: int, record: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {"epoch": round(loop.step / math.ceil(len(data) / config.batch_size), 2)}
        if valid is not None:
            extra.update({f"valid_{k}": v for k, v in evaluate_joint(model, parser, valid).items()})
        if log is not None:
            log({**record, **extra})
        return extra

    loop.fit(math.ceil(config.steps / every), batches, step, end_round=end_round, steps_in=lambda r: len(batches(r)))
    model.eval()
    parser.eval()
    return model, parser, loop.history


def train_nscl_none(
    data: QASet, config, out: PathLike, *, valid: QASet | None = None, model_config: ConceptConfig | None = None,
    command: str = "", progress: bool = True,
) -> tuple[ConceptLearner, dict[str, Any]]:
    """``nesy train nscl --programs none``: :func:`train_joint` for ``config.epochs`` epochs, one round each.

    ``config`` is a :class:`~reasoning.nscl.train.NSCLTrainConfig`; both models step at its
    learning rate (and ``schedule``), the architecture flags shape the concept learner, and the
    checkpoint at ``out`` holds both models (resumed when it exists; only ``threads`` may change).

    (``NSCLTrainConfig`` refuses, with ``programs="none"``, a flag of :data:`NONE_UNSUPPORTED`
    away from its default.)
    """
    torch.set_num_threads(config.threads)
    per_epoch = math.ceil(len(data) / config.batch_size)
    joint = JointConfig(steps=config.epochs * per_epoch, batch_size=config.batch_size,
                        learning_rate=config.learning_rate, parser_learning_rate=config.learning_rate, seed=config.seed)
    schedule: Schedule = Constant(config.learning_rate)
    if config.schedule == "cosine":
        schedule = WarmupCosine(config.learning_rate, joint.steps)
    arch = dataclasses.replace(model_config or ConceptConfig(), crop_size=config.crop_size, residual=config.residual,
                               test_flip=config.test_flip, detail_size=config.detail_size, max_pool=config.max_pool,
                               mask_crop=config.mask_crop, mask_dilate=config.mask_dilate, spatial=config.spatial,
                               others_mask=config.others_mask)
    meta = {"train_questions": len(data), "train_images": len(data.crops), "skipped_questions": len(data.skipped),
            "world_size": 1}
    model, _, history = train_joint(
        data, joint, valid=valid, every=per_epoch, log=None, out=out, command=command, model_config=arch,
        schedule=schedule, flags=dataclasses.asdict(config), may_change=("threads", "device"), meta=meta,
        progress=progress)
    return model, {**meta, "programs": "none", "command": command, "history": history,
                   "seconds": round(history[-1]["seconds"] if history else 0.0, 1)}


def load_joint(path: PathLike) -> tuple[ConceptLearner, QuestionParser, dict[str, Any]]:
    """The concept learner, the parser and the metadata of a ``--programs none`` checkpoint (``weights_only``).

    Raises:
        CheckpointError: damaged, or not a ``--programs none`` file (no parser in it), or weights that do not fit.
    """
    from reasoning.nscl.train import load_nscl

    where = str(path)
    ckpt = torch_load(path, "NS-CL checkpoint")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("parser"), dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{where}: not a 'nesy train nscl --programs none' file (it holds no parser)")
    model, meta = load_nscl(path)
    weights = {k.removeprefix("parser."): v for k, v in ckpt["model"].items() if k.startswith("parser.")}
    parser = parser_from_checkpoint({**ckpt["parser"], "model": weights}, where)
    return model, parser, meta
