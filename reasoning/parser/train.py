"""Training the question parser: supervised pretraining, then REINFORCE.

NS-VQA (Yi et al., arXiv 1810.02338, Sec. 3.2): the parser is first trained
with teacher forcing on a small set of (question, program) pairs, then fine-tuned
with REINFORCE (Williams, 1992) on (question, answer) pairs: a program is
sampled for each question, executed on the question's (ground-truth) scene, and
rewarded 1 if it gives the right answer, else 0.  The advantage is the reward
minus a moving-average baseline; an entropy bonus keeps exploring.

Rewards are computed with the executor's batched mode
(:func:`reasoning.executor.execute_batch`).  Checkpoints are written atomically
every ``checkpoint_every`` steps and the run resumes from them; the batch order
and sampling noise of every step are derived from ``(seed, stage, step)``, so a
resumed run follows the same path as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from physics.errors import ConfigError, DataError
from physics.io import PathLike, read_json
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
from reasoning.parser.checkpoint import load_checkpoint, save_parser
from reasoning.parser.config import ParserConfig
from reasoning.parser.data import (
    ParserData,
    ParserExample,
    program_token_signatures,
    select_supervised,
)
from reasoning.parser.model import QuestionParser, pad_batch
from reasoning.parser.vocab import ProgramVocabulary, Vocabulary, tokenize

__all__ = ["train_parser", "evaluate_parser", "build_parser", "reinforce_step", "supervised_step"]

_STAGE_SEED = {"supervised": 1, "reinforce": 2}


def build_parser(config: ParserConfig, data: ParserData, synonyms: Mapping[str, Sequence[str]] | None = None) -> QuestionParser:
    """A fresh parser whose vocabularies cover ``data`` and the DSL catalogue.

    Args:
        config: Model settings (``config.anonymize`` turns value slots on).
        data: Training questions (their words, and ``data.extra_words``, form the vocabulary).
        synonyms: Value -> phrases for the slot lexicon; default the question
            generator's synonyms file.
    """
    if synonyms is None:
        from reasoning.questions import DEFAULT_SYNONYMS

        synonyms = read_json(DEFAULT_SYNONYMS, "synonyms file")
    lexicon = build_lexicon(synonyms) if config.anonymize else {}
    nouns = build_nouns(synonyms) if config.anonymize and config.phrases else frozenset()
    words = set(data.extra_words)
    for e in data.examples:
        words.update(tokenize(e.question))
    words = {w for w in words if w not in lexicon}  # value words only ever reach the model as slots
    words.update(f"<{t}{k}>" for t in {v[0] for v in lexicon.values()} for k in range(1, MAX_SLOTS + 1))
    if nouns:
        words.update(f"<obj{k}>" for k in range(1, MAX_PHRASES + 1))
    signatures = program_token_signatures()
    for e in data.examples:
        for t in e.tokens:
            if t not in signatures:
                raise DataError(f"program token {t!r} of question {e.question!r} is not a catalogue token")
    if lexicon:
        signatures.update(slot_tokens(signatures))
    if nouns:
        signatures.update(phrase_tokens(signatures))
    torch.manual_seed(config.seed)
    return QuestionParser(Vocabulary.build(words), ProgramVocabulary.build(signatures), config, lexicon, nouns)


def _step_seed(config: ParserConfig, stage: str, step: int) -> int:
    return (config.seed * 1_000_003 + _STAGE_SEED[stage] * 100_003 + step) % (2**63)


def supervised_step(parser: QuestionParser, optimizer: torch.optim.Optimizer, batch: Sequence[ParserExample]) -> float:
    """One teacher-forced step on (question, program) pairs; returns the mean token NLL."""
    words, lengths, slots = parser.encode_questions([e.question for e in batch])
    targets, _ = pad_batch([parser.target_ids(e.tokens, sl) for e, sl in zip(batch, slots, strict=False)])
    logp = parser(words, lengths, targets, parser.slot_mask(slots))
    loss = -logp.sum() / (targets != 0).sum()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parser.parameters(), 5.0)
    optimizer.step()
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


def reinforce_step(
    parser: QuestionParser,
    optimizer: torch.optim.Optimizer,
    batch: Sequence[ParserExample],
    reward_fn: Callable[[list[tuple[str, ...] | None], Sequence[ParserExample]], list[float]],
    baseline: float | None,
    config: ParserConfig,
) -> tuple[float, float]:
    """One REINFORCE step.  Returns (mean reward of the batch, updated baseline).

    Loss = -mean((r - b) * log p(program | question)) - w_H * mean(entropy), with
    b the moving-average reward (the batch mean on the first step, ``baseline=None``).
    """
    words, lengths, slots = parser.encode_questions([e.question for e in batch])
    dec = parser.decode(words, lengths, mode="sample", allowed=parser.slot_mask(slots))
    token_lists = [parser.restore(row.tolist(), sl) for row, sl in zip(dec.tokens, slots, strict=False)]
    rewards = torch.tensor(reward_fn(token_lists, batch), dtype=torch.float)
    mean = float(rewards.mean())
    if baseline is None:
        baseline = mean
    advantage = rewards - baseline
    loss = -(advantage * dec.log_prob).mean() - config.entropy_weight * dec.entropy.mean()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parser.parameters(), 5.0)
    optimizer.step()
    return mean, config.baseline_decay * baseline + (1 - config.baseline_decay) * mean


@torch.no_grad()
def evaluate_parser(parser: QuestionParser, data: ParserData, *, beam_size: int = 1) -> dict[str, Any]:
    """Accuracy of ``parser`` on ``data``.

    Returns:
        ``questions``; ``program_exact`` (decoded tokens == ground-truth tokens,
        over questions with programs); ``answer_accuracy`` (executing the parsed
        program on the ground-truth scene gives the ground-truth answer, over
        questions with answers and scenes); ``valid`` (well-typed decodes);
        ``per_template`` answer accuracy.
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
    for i, ok in zip(with_ans, right, strict=False):
        per_template.setdefault(data.examples[i].template, [0, 0])
        per_template[data.examples[i].template][0] += int(ok)
        per_template[data.examples[i].template][1] += 1
    return {
        "questions": len(qs),
        "program_exact": exact / len(with_prog) if with_prog else None,
        "answer_accuracy": sum(right) / len(with_ans) if with_ans else None,
        "valid": sum(rewarder.program(t) is not None for t in decoded) / max(len(qs), 1),
        "per_template": {k: v[0] / v[1] for k, v in sorted(per_template.items())},
    }


def _log(path: Path | None, record: dict[str, Any]) -> None:
    if path is not None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


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
        out: Checkpoint path.  If it exists the run resumes from it; metrics are
            appended to ``out`` with suffix ``.jsonl``.
        meta: Extra metadata stored in the checkpoint (command line, data seed).
        progress: Show tqdm progress bars.

    Returns:
        Metrics: final supervised loss, final mean REINFORCE reward, wall time per
        stage (seconds, this run only), steps; ``parser`` is the trained model.
    """
    torch.set_num_threads(config.threads)
    out_path = Path(out) if out is not None else None
    log_path = out_path.with_suffix(".jsonl") if out_path is not None else None
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    supervised = select_supervised(data.examples, config.programs)
    chosen = {id(e) for e in supervised}
    rl_pool = [e for e in data.examples if id(e) not in chosen and e.answer is not None and e.image_index in data.scenes]
    rl_pool = rl_pool[: config.reinforce_questions]
    if config.reinforce_questions and config.reinforce_steps and not rl_pool:
        raise ConfigError("REINFORCE needs (question, answer) pairs with scenes; the data has none (or set --reinforce-questions 0)")
    meta = {**(meta or {}), "seed": config.seed, "source": dict(data.source), "supervised_programs": len(supervised), "reinforce_questions": len(rl_pool)}

    stage, step, opt_state = "supervised", 0, None
    baseline: float | None = None
    if out_path is not None and out_path.exists():
        ckpt = load_checkpoint(out_path)
        from reasoning.parser.checkpoint import parser_from_checkpoint

        parser = parser_from_checkpoint(ckpt, where=str(out_path))
        shape = ("embedding_dim", "hidden_dim", "anonymize", "phrases", "max_program_length")
        if any(getattr(parser.config, k) != getattr(config, k) for k in shape):
            raise ConfigError(
                f"{out_path} holds a parser with {[f'{k}={getattr(parser.config, k)}' for k in shape]}; "
                "resume with the same model settings or choose another --out"
            )
        parser.config = config  # training settings may change on resume (e.g. more REINFORCE steps)
        state = ckpt.get("train_state") or {"stage": "done", "step": 0}
        stage, step = state["stage"], int(state["step"])
        baseline, opt_state = state.get("baseline"), state.get("optimizer")
        meta = {**dict(ckpt.get("meta", {})), **meta}
    else:
        parser = build_parser(config, data)
    parser.train()
    metrics: dict[str, Any] = {"supervised_seconds": 0.0, "reinforce_seconds": 0.0}
    per_epoch = math.ceil(len(supervised) / config.batch_size)
    sup_steps = config.epochs * per_epoch
    rl_steps = config.reinforce_steps if rl_pool and config.reinforce_questions else 0

    previous = dict(meta.get("metrics", {}))

    def save(stage_now: str, step_now: int, optimizer_state: dict | None) -> None:
        """Checkpoint with the training state, so the run resumes (or gets more REINFORCE steps)."""
        if out_path is None:
            return
        ts = {"stage": stage_now, "step": step_now, "baseline": baseline, "optimizer": optimizer_state}
        totals = {f"total_{k}": previous.get(f"total_{k}", 0.0) + metrics[k] for k in ("supervised_seconds", "reinforce_seconds")}
        this_run = {k: v for k, v in metrics.items() if k not in ("supervised_seconds", "reinforce_seconds")}
        save_parser(out_path, parser, meta={**meta, "metrics": {**previous, **this_run, **totals}}, train_state=ts)

    if stage == "supervised":
        optimizer = torch.optim.Adam(parser.parameters(), lr=config.learning_rate)
        if opt_state:
            optimizer.load_state_dict(opt_state)
        t0 = time.perf_counter()
        bar = tqdm(total=sup_steps, initial=step, desc="parser: supervised", disable=not progress)
        loss = float("nan")
        while step < sup_steps:
            epoch, k = divmod(step, per_epoch)
            g = torch.Generator().manual_seed(_step_seed(config, "supervised", epoch))
            order = torch.randperm(len(supervised), generator=g).tolist()
            batch = [supervised[i] for i in order[k * config.batch_size : (k + 1) * config.batch_size]]
            torch.manual_seed(_step_seed(config, "supervised", step))
            loss = supervised_step(parser, optimizer, batch)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if step % config.checkpoint_every == 0 or step == sup_steps:
                metrics["supervised_loss"] = loss
                _log(log_path, {"stage": "supervised", "step": step, "loss": loss})
                metrics["supervised_seconds"] = time.perf_counter() - t0
                save("supervised", step, optimizer.state_dict())
        bar.close()
        metrics["supervised_loss"] = loss
        metrics["supervised_seconds"] = time.perf_counter() - t0
        stage, step, opt_state = "reinforce", 0, None
        save(stage, step, None)

    if stage == "reinforce" and rl_steps:
        optimizer = torch.optim.Adam(parser.parameters(), lr=config.reinforce_learning_rate)
        if opt_state:
            optimizer.load_state_dict(opt_state)
        rewarder = _Rewarder(parser, data)

        def reward_fn(tokens: list[tuple[str, ...] | None], batch: Sequence[ParserExample]) -> list[float]:
            got = rewarder.answers(tokens, [e.image_index for e in batch])
            return [float(a is not None and a == e.answer) for a, e in zip(got, batch, strict=False)]

        t0 = time.perf_counter()
        bar = tqdm(total=rl_steps, initial=step, desc="parser: REINFORCE", disable=not progress)
        recent: list[float] = []
        while step < rl_steps:
            g = torch.Generator().manual_seed(_step_seed(config, "reinforce", step))
            idx = torch.randint(len(rl_pool), (config.batch_size,), generator=g).tolist()
            torch.manual_seed(_step_seed(config, "reinforce", step) + 7)
            reward, baseline = reinforce_step(parser, optimizer, [rl_pool[i] for i in idx], reward_fn, baseline, config)
            recent = (recent + [reward])[-50:]
            step += 1
            bar.update(1)
            bar.set_postfix(reward=f"{sum(recent) / len(recent):.3f}")
            if step % config.checkpoint_every == 0 or step == rl_steps:
                metrics["reinforce_reward"] = sum(recent) / len(recent)
                _log(log_path, {"stage": "reinforce", "step": step, "reward": metrics["reinforce_reward"], "baseline": baseline})
                metrics["reinforce_seconds"] = time.perf_counter() - t0
                save("reinforce", step, optimizer.state_dict())
        bar.close()
        if recent:
            metrics["reinforce_reward"] = sum(recent) / len(recent)
        metrics["reinforce_seconds"] = time.perf_counter() - t0
        opt_state = optimizer.state_dict()
    metrics["supervised_steps"] = sup_steps
    metrics["reinforce_steps"] = rl_steps
    parser.eval()
    save(stage, step, opt_state)
    metrics["parser"] = parser
    return metrics
