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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from physics.config_types import check_field_types
from physics.errors import ConfigError
from reasoning.dsl import Program
from reasoning.errors import ProgramError
from reasoning.executor.soft import SOFT_OPS, soft_execute
from reasoning.nscl.data import QASet
from reasoning.nscl.model import ConceptLearner
from reasoning.parser import ParserConfig, ParserData, ParserExample, QuestionParser
from reasoning.parser.train import GRAD_CLIP, build_parser

__all__ = ["JointConfig", "fresh_parser", "joint_step", "train_joint", "evaluate_joint", "answer_kind"]


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
    """Soft outputs of ``programs``; those the executor refuses are dropped (their positions returned)."""
    try:
        return soft_execute(programs, scenes, rows), list(range(len(programs)))
    except ProgramError:
        keep = []
        for k, (p, r) in enumerate(zip(programs, rows, strict=True)):
            try:
                soft_execute([p], scenes, [r])
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


def joint_step(
    model: ConceptLearner,
    parser: QuestionParser,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    data: QASet,
    questions: list[int],
    baseline: float | None,
    config: JointConfig,
) -> dict[str, Any]:
    """One joint update on ``questions``: REINFORCE for the parser, answer NLL for the concepts.

    Returns:
        ``reward`` (fraction answered right), ``valid`` (fraction of runnable programs),
        ``matched`` (fraction whose answer kind matched), ``baseline`` (updated) and ``loss``.
    """
    model.train()
    parser.train()
    dec, log_probs, rewards, n_valid, matched = _sampled(model, parser, data, questions, "sample")
    mean = float(rewards.mean())
    base = mean if baseline is None else baseline
    parser_loss = -((rewards - base) * dec.log_prob).mean() - config.entropy_weight * dec.entropy.mean()
    concept_loss = -torch.stack(log_probs).mean() if log_probs else torch.zeros(())
    for opt in optimizers:
        opt.zero_grad()
    (parser_loss + concept_loss).backward()  # the two losses share no parameter
    torch.nn.utils.clip_grad_norm_(parser.parameters(), GRAD_CLIP)
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    for opt in optimizers:
        opt.step()
    return {"reward": mean, "valid": n_valid / len(questions), "matched": matched / len(questions),
            "baseline": config.baseline_decay * base + (1 - config.baseline_decay) * mean,
            "loss": float(concept_loss.detach())}


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


def train_joint(
    data: QASet, config: JointConfig, *, valid: QASet | None = None, every: int = 50, log=print,
) -> tuple[ConceptLearner, QuestionParser, list[dict[str, Any]]]:
    """Train a fresh concept learner and a fresh parser together from ``data`` read with ``programs="none"``.

    Returns:
        The two models and the history (per ``every`` steps: the mean training figures, and
        :func:`evaluate_joint` on ``valid`` if given).

    Raises:
        ConfigError: ``data`` (or ``valid``) carries programs: this variant learns from answers only.
    """
    for name, d in (("training", data), ("validation", valid)):
        if d is not None and (d.program_source != "none" or d.programs):
            raise ConfigError(f"joint: the {name} data carries programs ({d.program_source}); read it with "
                              "load_split(..., programs='none')")
    torch.manual_seed(config.seed)
    model = ConceptLearner()
    parser = fresh_parser(data.texts, config.seed)  # a dev question's unseen word reads as UNK
    optimizers = (torch.optim.Adam(model.parameters(), lr=config.learning_rate),
                  torch.optim.Adam(parser.parameters(), lr=config.parser_learning_rate))
    g = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    baseline, history, window = None, [], []
    t0 = time.process_time()
    for step in range(config.steps):
        if len(order) < config.batch_size:
            order += torch.randperm(len(data), generator=g).tolist()
        batch, order = order[: config.batch_size], order[config.batch_size :]
        stats = joint_step(model, parser, optimizers, data, batch, baseline, config)
        baseline = stats["baseline"]
        window.append(stats)
        if (step + 1) % every == 0 or step + 1 == config.steps:
            record = {"step": step + 1, "cpu_s": round(time.process_time() - t0, 1)}
            record.update({k: round(sum(w[k] for w in window) / len(window), 4)
                           for k in ("reward", "valid", "matched", "loss")})
            if valid is not None:
                record.update({f"valid_{k}": v for k, v in evaluate_joint(model, parser, valid).items()})
            history.append(record)
            log(record)
            window = []
    return model, parser, history
