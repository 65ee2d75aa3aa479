"""Training the question parser: supervised pretraining, then REINFORCE.

NS-VQA (Yi et al., arXiv 1810.02338, Sec. 3.2): the parser is first trained
with teacher forcing on a small set of (question, program) pairs, then fine-tuned
with REINFORCE (Williams, 1992) on (question, answer) pairs: a program is
sampled for each question, executed on the question's (ground-truth) scene, and
rewarded 1 if it gives the right answer, else 0.  The advantage is the reward
minus a moving-average baseline; an entropy bonus keeps exploring.

Rewards are computed with the executor's batched mode
(:func:`reasoning.executor.execute_batch`).  Both stages run on the shared
:class:`~physics.training.TrainLoop`: a checkpoint every ``checkpoint_every``
steps (a round), JSON lines in ``OUT.jsonl`` (TensorBoard events in ``OUT_tb/``
when ``tensorboard`` is installed), and a resume that is bit-identical
to an uninterrupted run (the batch order and sampling noise of every step are
derived from ``(seed, stage, step)``; the loop restores the optimiser, the RNG
states and the reward baseline).  A resume must use the run's flags: only
``threads`` and ``device`` may change, and ``reinforce_steps`` may grow (REINFORCE runs at a
constant rate, so more steps continue the same run).

``config.device`` (default ``cpu``: a small model decoded token by token; ``auto``,
``cuda``, ``cuda:N``) is where it trains; checkpoints hold CPU tensors and load anywhere.
Under ``torchrun --nproc_per_node N`` (:mod:`physics.training.distributed`: gloo
on the CPU, nccl with ``cuda``, one GPU per process) every process draws the same global batch of
``batch_size`` questions and trains on its share, :func:`rank_share`, in both
stages; the supervised shares are weighted by their target tokens and the
REINFORCE shares by their questions, so DistributedDataParallel's average is the
whole batch's gradient, and the REINFORCE mean reward and baseline are the whole
batch's (all-reduced), the same on every rank.  Dropout and sampling noise are
drawn per rank (rank 0 keeps the single-process seeds), so an N-process run is not
bit-identical to a 1-process one; a resume needs the same N.  Rank 0 writes the
files; ``world_size`` is in the metadata.  A 1-process run is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from physics.errors import ConfigError, DataError
from physics.io import PathLike, ensure_dir, read_json
from physics.training import Constant, RunLog, TrainLoop
from physics.training.distributed import (
    WorldInfo,
    init_distributed,
    rank_share,
    sum_over_ranks,
    world_info,
)
from reasoning.dsl import Program
from reasoning.executor import SceneTable, execute_batch
from reasoning.parser.anonymize import (
    MAX_PHRASES,
    MAX_SLOTS,
    build_lexicon,
    build_nouns,
    phrase_tokens,
    slot_tokens,
)
from reasoning.parser.catalogues import parser_catalogue
from reasoning.parser.checkpoint import load_checkpoint, parser_from_checkpoint, parser_payload
from reasoning.parser.config import ParserConfig
from reasoning.parser.data import (
    OFFICIAL_PREFIX,
    ParserData,
    ParserExample,
    program_token_signatures,
    select_supervised,
)
from reasoning.parser.model import QuestionParser, pad_batch
from reasoning.parser.vocab import ProgramVocabulary, Vocabulary, tokenize

__all__ = [
    "train_parser",
    "evaluate_parser",
    "build_parser",
    "reinforce_step",
    "supervised_step",
    "supervised_loss",
    "reinforce_loss",
    "RESUMABLE_CHANGES",
]

_STAGE_SEED = {"supervised": 1, "reinforce": 2}
GRAD_CLIP = 5.0  # gradient-norm clip of both stages
RESUMABLE_CHANGES = ("threads", "device")  # a resume may change these flags; reinforce_steps may grow


def build_parser(config: ParserConfig, data: ParserData, synonyms: Mapping[str, Sequence[str]] | None = None) -> QuestionParser:
    """A fresh parser whose vocabularies cover ``data`` and the DSL catalogue.

    Args:
        config: Model settings (``config.anonymize`` turns value slots on).
        data: Training questions (their words, and ``data.extra_words``, form the vocabulary;
            ``data.synonyms`` join ``synonyms``).
        synonyms: Value -> phrases for the slot lexicon; default the question
            generator's synonyms file.
    """
    if synonyms is None:
        from reasoning.questions import DEFAULT_SYNONYMS

        synonyms = read_json(DEFAULT_SYNONYMS, "synonyms file")
    merged = {k: list(v) for k, v in synonyms.items()}
    for k, phrases in data.synonyms.items():  # the named template sets' synonyms join the project's
        merged.setdefault(k, [])
        merged[k] += [p for p in phrases if p not in merged[k]]
    synonyms = merged
    catalogue = parser_catalogue(data.catalogue)
    lexicon = build_lexicon(synonyms, catalogue) if config.anonymize else {}
    nouns = build_nouns(synonyms) if config.anonymize and config.phrases else frozenset()
    words = set(data.extra_words)
    for e in data.examples:
        words.update(tokenize(e.question))
    # value words reach the model as slots, except where they ask ("how big"): every word stays known
    words.update(f"<{t}{k}>" for t in {v[0] for v in lexicon.values()} for k in range(1, MAX_SLOTS + 1))
    if nouns:
        words.update(f"<obj{k}>" for k in range(1, MAX_PHRASES + 1))
    signatures = program_token_signatures(catalogue)
    for e in data.examples:
        for t in e.tokens:
            if t not in signatures:
                raise DataError(f"program token {t!r} of question {e.question!r} is not a catalogue token")
    if lexicon:
        signatures.update(slot_tokens(signatures, catalogue))
    if nouns:
        signatures.update(phrase_tokens(signatures))
    torch.manual_seed(config.seed)
    return QuestionParser(Vocabulary.build(words), ProgramVocabulary.build(signatures), config, lexicon, nouns,
                          data.catalogue)


def _step_seed(config: ParserConfig, stage: str, step: int) -> int:
    return (config.seed * 1_000_003 + _STAGE_SEED[stage] * 100_003 + step) % (2**63)


def supervised_loss(parser: QuestionParser, batch: Sequence[ParserExample]) -> torch.Tensor:
    """Mean token NLL of the ground-truth programs of ``batch`` (teacher forcing).

    In training mode, plain words are read as UNK with probability ``config.word_dropout``.
    """
    dropout = parser.config.word_dropout if parser.training else 0.0
    words, lengths, slots = parser.encode_questions([e.question for e in batch], word_dropout=dropout)
    targets, _ = pad_batch([parser.target_ids(e.tokens, sl) for e, sl in zip(batch, slots, strict=False)])
    targets = targets.to(words.device)
    kinds = [e.kind for e in batch]
    logp = parser(words, lengths, targets, parser.slot_mask(slots, kinds), parser.kind_roots(kinds))
    return -logp.sum() / (targets != 0).sum()


def _optimizer_step(parser: QuestionParser, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parser.parameters(), GRAD_CLIP)
    optimizer.step()


def supervised_step(parser: QuestionParser, optimizer: torch.optim.Optimizer, batch: Sequence[ParserExample]) -> float:
    """One teacher-forced step on (question, program) pairs; returns the mean token NLL."""
    loss = supervised_loss(parser, batch)
    _optimizer_step(parser, optimizer, loss)
    return float(loss.detach())


class _Rewarder:
    """Reward 1/0 for sampled token sequences, caching token -> Program conversions."""

    def __init__(self, parser: QuestionParser, data: ParserData) -> None:
        self.parser = parser
        self.cache: dict[tuple[str, ...], Program | None] = {}
        self.scene_keys = sorted(data.scenes)
        self.scene_list = [data.scenes[k] for k in self.scene_keys]
        self.scene_pos = {k: i for i, k in enumerate(self.scene_keys)}
        self.table = SceneTable(self.scene_list)  # tensorised once, reused by every batch

    def program(self, tokens: tuple[str, ...] | None) -> Program | None:
        if tokens is None:
            return None
        if tokens not in self.cache:
            self.cache[tokens] = self.parser.to_program(tokens)
        return self.cache[tokens]

    def answers(self, token_lists: Sequence[tuple[str, ...] | None], image_indices: Sequence[int]) -> list[str | None]:
        programs = [self.program(t) for t in token_lists]
        valid = [i for i, p in enumerate(programs) if p is not None]
        out: list[str | None] = [None] * len(programs)
        if valid:
            got = execute_batch(
                [programs[i] for i in valid],
                self.table,
                [self.scene_pos[image_indices[i]] for i in valid],
                scene_list=self.scene_list,
            )
            for i, a in zip(valid, got, strict=False):
                out[i] = a
        return out


RewardFn = Callable[[list[tuple[str, ...] | None], Sequence[ParserExample]], list[float]]


def reinforce_loss(
    parser: QuestionParser,
    batch: Sequence[ParserExample],
    reward_fn: RewardFn,
    baseline: float | None,
    config: ParserConfig,
    world: WorldInfo | None = None,
) -> tuple[torch.Tensor, float, float]:
    """The REINFORCE loss of one sampled batch; returns (loss, mean reward, updated baseline).

    Loss = -mean((r - b) * log p(program | question)) - w_H * mean(entropy), with
    b the moving-average reward (the batch mean on the first step, ``baseline=None``).
    Under torchrun (``world.size > 1``) ``batch`` is this rank's share of the global
    batch and the mean reward (hence the baseline) is the whole global batch's,
    summed over the ranks, so that every rank keeps the baseline one process would.
    """
    words, lengths, slots = parser.encode_questions([e.question for e in batch])
    dec = parser.decode(words, lengths, mode="sample", allowed=parser.slot_mask(slots))
    token_lists = [parser.restore(row.tolist(), sl) for row, sl in zip(dec.tokens, slots, strict=False)]
    rewards = torch.tensor(reward_fn(token_lists, batch), dtype=torch.float, device=dec.log_prob.device)
    if world is not None and world.size > 1:
        total = sum_over_ranks(torch.tensor([float(rewards.sum()), float(len(rewards))], dtype=torch.float,
                                            device=next(parser.parameters()).device))
        mean = float(total[0] / total[1])
    else:
        mean = float(rewards.mean())
    if baseline is None:
        baseline = mean
    advantage = rewards - baseline
    loss = -(advantage * dec.log_prob).mean() - config.entropy_weight * dec.entropy.mean()
    return loss, mean, config.baseline_decay * baseline + (1 - config.baseline_decay) * mean


def reinforce_step(
    parser: QuestionParser,
    optimizer: torch.optim.Optimizer,
    batch: Sequence[ParserExample],
    reward_fn: RewardFn,
    baseline: float | None,
    config: ParserConfig,
) -> tuple[float, float]:
    """One REINFORCE step (:func:`reinforce_loss`).  Returns (mean reward of the batch, updated baseline)."""
    loss, mean, baseline = reinforce_loss(parser, batch, reward_fn, baseline, config)
    _optimizer_step(parser, optimizer, loss)
    return mean, baseline


@torch.no_grad()
def evaluate_parser(parser: QuestionParser, data: ParserData, *, beam_size: int = 1) -> dict[str, Any]:
    """Accuracy of ``parser`` on ``data``.

    Returns:
        ``questions``; ``program_exact`` (decoded tokens == ground-truth tokens,
        over questions with programs); ``answer_accuracy`` (executing the parsed
        program on the ground-truth scene gives the ground-truth answer, over
        questions with answers and scenes); ``valid`` (well-typed decodes);
        ``per_template`` answer accuracy; ``per_set``: the same three figures
        for the project's templates (``own``) and a named CLEVR set (``official``).
    """
    qs = [e.question for e in data.examples]
    decoded = parser.parse_tokens(qs, beam_size=beam_size)
    rewarder = _Rewarder(parser, data)
    with_prog = [i for i, e in enumerate(data.examples) if e.tokens]
    exact = sum(decoded[i] == data.examples[i].tokens for i in with_prog)
    with_ans = [i for i, e in enumerate(data.examples) if e.answer is not None and e.image_index in data.scenes]
    answers = rewarder.answers([decoded[i] for i in with_ans], [data.examples[i].image_index for i in with_ans])
    right = [a == data.examples[i].answer for i, a in zip(with_ans, answers, strict=False)]
    per_template: dict[str, list[int]] = {}
    # [exact, with program, right, with answer] per template set (official keys start with OFFICIAL_PREFIX)
    per_set: dict[str, list[int]] = {}
    for i in with_prog:
        row = per_set.setdefault(_template_set(data.examples[i].template), [0, 0, 0, 0])
        row[0] += decoded[i] == data.examples[i].tokens
        row[1] += 1
    for i, ok in zip(with_ans, right, strict=False):
        per_template.setdefault(data.examples[i].template, [0, 0])
        per_template[data.examples[i].template][0] += int(ok)
        per_template[data.examples[i].template][1] += 1
        row = per_set.setdefault(_template_set(data.examples[i].template), [0, 0, 0, 0])
        row[2] += int(ok)
        row[3] += 1
    return {
        "questions": len(qs),
        "program_exact": exact / len(with_prog) if with_prog else None,
        "answer_accuracy": sum(right) / len(with_ans) if with_ans else None,
        "valid": sum(rewarder.program(t) is not None for t in decoded) / max(len(qs), 1),
        "per_set": {k: {"questions": max(v[1], v[3]), "program_exact": v[0] / v[1] if v[1] else None,
                        "answer_accuracy": v[2] / v[3] if v[3] else None} for k, v in sorted(per_set.items())},
        "per_template": {k: v[0] / v[1] for k, v in sorted(per_template.items())},
    }


def _rank_seed(seed: int, world: WorldInfo) -> int:
    """The seed of a step's dropout and sampling on this rank (rank 0, and a single process, keep ``seed``)."""
    return seed if world.rank == 0 else (seed * 6_364_136_223_846_793_005 + world.rank) % (2**63)


def _target_tokens(parser: QuestionParser, batch: Sequence[ParserExample]) -> int:
    """Number of decoder target tokens of ``batch`` (what :func:`supervised_loss` averages over); draws no noise."""
    _, _, slots = parser.encode_questions([e.question for e in batch])
    return sum(len(parser.target_ids(e.tokens, sl)) for e, sl in zip(batch, slots, strict=True))


def _check_shares(config: ParserConfig, supervised: int, size: int) -> None:
    """Under torchrun every global batch must give each of the ``size`` processes at least one question."""
    last = supervised - (math.ceil(supervised / config.batch_size) - 1) * config.batch_size
    if min(config.batch_size, last) < size:
        raise ConfigError(
            f"{size} processes need at least {size} questions in every batch, but --batch-size {config.batch_size} "
            f"over {supervised} supervised programs leaves a batch of {min(config.batch_size, last)}; "
            "change --batch-size or --programs, or use fewer processes"
        )


def _template_set(template: str) -> str:
    return "official" if template.startswith(OFFICIAL_PREFIX) else "own"


def train_parser(
    config: ParserConfig,
    data: ParserData,
    *,
    out: PathLike | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a parser: supervised on ``config.programs`` pairs, then REINFORCE.

    Args:
        config: Model and training settings.
        data: Questions with programs (for the supervised stage, picked evenly
            over templates by :func:`select_supervised`), answers and scenes (for
            REINFORCE: the first ``config.reinforce_questions`` examples not used
            for supervision; their programs are never read).
        out: Checkpoint path.  If it exists the run resumes from it (bit-identical
            to an uninterrupted run); one JSON line per checkpoint goes to ``out``
            with suffix ``.jsonl``.
        meta: Extra metadata stored in the checkpoint (``command``, data seed).
        progress: Show tqdm progress bars.

    Returns:
        Metrics: final supervised loss (mean over the last round), mean REINFORCE
        reward of the last round, wall time per stage (seconds, this run only),
        steps; ``parser`` is the trained model.

    Raises:
        CheckpointError: ``out`` is damaged or not a resumable parser checkpoint.
        ConfigError: ``out`` was trained with other flags (named), or REINFORCE lacks data.
    """
    torch.set_num_threads(config.threads)
    from physics.models.training import resolve_device

    device = init_distributed(resolve_device(config.device))  # under torchrun: join the process group
    world = world_info()
    out_path = Path(out) if out is not None else None
    if out_path is not None and world.is_main:
        ensure_dir(out_path.parent, "checkpoint folder")
    supervised = select_supervised(data.examples, config.programs)
    chosen = {id(e) for e in supervised}
    rl_pool = [e for e in data.examples if id(e) not in chosen and e.answer is not None and e.image_index in data.scenes]
    rl_pool = rl_pool[: config.reinforce_questions]
    if config.reinforce_questions and config.reinforce_steps and not rl_pool:
        raise ConfigError("REINFORCE needs (question, answer) pairs with scenes; the data has none (or set --reinforce-questions 0)")
    meta = {**(meta or {}), "seed": config.seed, "source": dict(data.source), "supervised_programs": len(supervised), "reinforce_questions": len(rl_pool)}
    if world.size > 1:
        _check_shares(config, len(supervised), world.size)
    meta["world_size"] = world.size

    stage, file_stage = "supervised", None
    if out_path is not None and out_path.exists():
        ckpt = load_checkpoint(out_path)
        parser = parser_from_checkpoint(ckpt, where=str(out_path))
        extra = ckpt.get("train_state", {}).get("extra", {}) if isinstance(ckpt.get("train_state"), dict) else {}
        stage = file_stage = extra.get("stage", "supervised") if isinstance(extra, dict) else "supervised"
        meta = {**dict(ckpt.get("meta", {})), **meta}
    else:
        parser = build_parser(config, data)
    log = None
    if out_path is not None and world.is_main:  # TensorBoard events (when installed) beside the checkpoint, in OUT_tb/
        log = RunLog(out_path.with_suffix(".jsonl"), rewrite=False, tensorboard=out_path.with_name(out_path.stem + "_tb"))
    metrics: dict[str, Any] = {"supervised_seconds": 0.0, "reinforce_seconds": 0.0}
    per_epoch = math.ceil(len(supervised) / config.batch_size)
    sup_steps = config.epochs * per_epoch
    rl_steps = config.reinforce_steps if rl_pool and config.reinforce_questions else 0
    previous = dict(meta.get("metrics", {}))
    state: dict[str, Any] = {"stage": stage, "baseline": None}
    every = config.checkpoint_every

    def payload() -> dict[str, Any]:
        totals = {f"total_{k}": previous.get(f"total_{k}", 0.0) + metrics[k] for k in ("supervised_seconds", "reinforce_seconds")}
        this_run = {k: v for k, v in metrics.items() if k not in ("supervised_seconds", "reinforce_seconds")}
        return parser_payload(parser, {**meta, "metrics": {**previous, **this_run, **totals}})

    def make_loop(name: str, rate: float, history: list[dict[str, Any]]) -> TrainLoop:
        loop = TrainLoop(
            parser, torch.optim.Adam(parser.parameters(), lr=rate), Constant(rate), out_path,
            flags=dataclasses.asdict(config), command=str(meta.get("command", "")), payload=payload,
            grad_clip=GRAD_CLIP, log=log, tags={"stage": name}, unit="step", may_change=RESUMABLE_CHANGES,
            may_grow=("reinforce_steps",), extra_state=lambda: dict(state),
            load_extra=lambda e: state.update(baseline=e.get("baseline")), desc=f"parser: {name}", progress=progress,
            distributed=True, world=world,
        )
        loop.history = list(history)
        if name == file_stage and loop.resume():  # the stage the file stopped in continues from it
            parser.config = config  # only threads, device / a larger reinforce_steps differ (checked by resume)
            meta["command"] = loop.command
        return loop

    def blocks(loop: TrainLoop, total: int):
        """Rounds of ``every`` steps; each yields its global step numbers (from where the run stands)."""
        return math.ceil(total / every), lambda r: range(loop.step, min((r + 1) * every, total))

    parser.to(device)
    parser.train()
    history: list[dict[str, Any]] = []
    if state["stage"] == "supervised":
        loop = make_loop("supervised", config.learning_rate, history)

        def sup_step(step: int) -> dict[str, Any]:
            epoch, k = divmod(step, per_epoch)
            g = torch.Generator().manual_seed(_step_seed(config, "supervised", epoch))
            order = torch.randperm(len(supervised), generator=g).tolist()
            batch = [supervised[i] for i in order[k * config.batch_size : (k + 1) * config.batch_size]]
            torch.manual_seed(_rank_seed(_step_seed(config, "supervised", step), world))
            if world.size == 1:
                return {"loss": supervised_loss(parser, batch)}
            # the loss is a mean over target tokens: each share weighs its part of the global batch's tokens
            share = rank_share(batch, world)
            return {"loss": supervised_loss(parser, share), "weight": _target_tokens(parser, share) / _target_tokens(parser, batch)}

        t0 = time.perf_counter()
        rounds, batches = blocks(loop, sup_steps)
        history = loop.fit(rounds, batches, sup_step)
        metrics["supervised_seconds"] = time.perf_counter() - t0
        if history and history[-1]["stage"] == "supervised":
            metrics["supervised_loss"] = history[-1]["loss"]
        state["stage"] = "reinforce"
        make_loop("reinforce", config.reinforce_learning_rate, history).save()

    if state["stage"] == "reinforce" and rl_steps:
        loop = make_loop("reinforce", config.reinforce_learning_rate, history)
        rewarder = _Rewarder(parser, data)

        def reward_fn(tokens: list[tuple[str, ...] | None], batch: Sequence[ParserExample]) -> list[float]:
            got = rewarder.answers(tokens, [e.image_index for e in batch])
            return [float(a is not None and a == e.answer) for a, e in zip(got, batch, strict=False)]

        def rl_step(step: int) -> dict[str, Any]:
            g = torch.Generator().manual_seed(_step_seed(config, "reinforce", step))
            idx = torch.randint(len(rl_pool), (config.batch_size,), generator=g).tolist()
            torch.manual_seed(_rank_seed(_step_seed(config, "reinforce", step) + 7, world))
            if world.size == 1:
                loss, reward, state["baseline"] = reinforce_loss(parser, [rl_pool[i] for i in idx], reward_fn,
                                                                 state["baseline"], config)
                return {"loss": loss, "reward": reward}
            # this rank's share; the reward (and baseline) is the global batch's mean, the same on every rank
            share = rank_share(idx, world)
            loss, reward, state["baseline"] = reinforce_loss(parser, [rl_pool[i] for i in share], reward_fn,
                                                             state["baseline"], config, world)
            return {"loss": loss, "reward": reward, "weight": len(share) / len(idx)}

        t0 = time.perf_counter()
        rounds, batches = blocks(loop, rl_steps)
        history = loop.fit(rounds, batches, rl_step, end_round=lambda r, rec: {"baseline": state["baseline"]})
        metrics["reinforce_seconds"] = time.perf_counter() - t0
        if history and history[-1]["stage"] == "reinforce":
            metrics["reinforce_reward"] = history[-1]["reward"]
        loop.save()
    if log is not None:
        log.close()
    metrics["supervised_steps"] = sup_steps
    metrics["reinforce_steps"] = rl_steps
    parser.eval()
    metrics["parser"] = parser
    return metrics
