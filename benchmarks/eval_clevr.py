"""``nesy eval clevr``: QA model accuracy on a CLEVR-format split, in NS-VQA's table.

Reads a split written by ``nesy data clevr`` (or the official CLEVR release
layout), answers every question with a registered QA model
(:data:`reasoning.registry.QA_MODELS`, NS-VQA by default) built from the chosen
perception (any registered perceiver, shipped or from ``checkpoint``) and parser
(shipped or from ``parser_checkpoint``), and reports (JSON keys, all fractions
in [0, 1]):

* ``accuracy.overall`` and ``accuracy.<type>`` for the NS-VQA table's question
  types ``count``, ``exist``, ``compare_number``, ``compare_attribute``,
  ``query_attribute`` (with ``counts.<type>`` the number of questions);
* ``parser.program_exact`` (parsed program == ground-truth program),
  ``parser.program_answer`` (parsed program run on the ground-truth scene gives
  the ground-truth answer), ``parser.invalid`` (no well-typed program),
  ``parser.unknown_word_questions`` / ``parser.unknown_words`` (questions
  holding words the parser never saw, and the most frequent such words),
  ``parser.unparsed`` (questions left without a program, counted wrong) and
  ``parser.parse_errors`` / ``parser.errors`` (questions whose parse raised, and
  the first messages; the rest of the file is still answered); present when
  ``parser="model"``;
* ``per_family``: ``{"template_filename:question_family_index": {questions,
  accuracy}}`` for the questions that name their template;
* ``per_depth`` and ``per_objects``: ``{"N": {questions, accuracy}}`` by the
  ground-truth program's depth (:meth:`reasoning.dsl.Program.depth`) and by the
  number of objects in the question's true scene (generalisation to deeper
  programs and fuller scenes; ``min_depth`` keeps only the questions at least
  that deep, a held-out selection of programs deeper than training's);
* ``perception.detection_precision``, ``perception.detection_recall``,
  ``perception.attribute_accuracy`` (all attributes of a matched object right),
  ``perception.attribute_accuracy_<attr>``, ``perception.attribute_accuracy_by_shape``
  (the same scores by the objects' true shape: CoGenT condition B's cubes and
  cylinders against its spheres), ``perception.position_error``
  (mean 3D distance, scene units); present when ``perception="model"``;
* ``accuracy_interval``: a 90% interval of ``accuracy.overall`` from resampling
  scenes with their questions (one misread object spoils every question about
  its scene, so questions are not independent draws);
* ``per_scene``: ``[image_index, questions, correct]`` for every scene, so that
  several splits can be pooled by a script;
* ``questions``, ``scenes``, ``seconds``, the config, and under ``parts`` the
  trained parts used (perceiver name, checkpoint paths; None: shipped or unused).

Perception, the per-image part, fans out through :func:`physics.fanout.make_fanout`
(``backend``, ``workers``, ``address``): each worker loads the perceiver once and
runs ``threads`` (default 1) torch threads; images come back in order, so every
figure is the same whatever the backend and worker count (``seconds`` aside) at the same
``threads``.  What a model needs beyond the scene graph to answer a scene it perceived
(NS-CL's concept scores, :meth:`~reasoning.registry.QAModel.perception_state`) comes back
with the scene and is handed to the model that answers
(:meth:`~reasoning.registry.QAModel.adopt_perception`). The
questions are parsed by the same fan-out, in chunks of :data:`PARSE_BATCH` spread
among the images.  With the process backend this process is one of the N workers:
it starts the other N - 1 first (they load the model while it reads the split and
loads its own), then runs jobs beside them while it collects their results.  With
Ray the workers are Ray's and this process only collects.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.paired import paired_ratio
from perception.datasets.clevr import find_layout
from perception.image_io import load_image
from perception.registry import PERCEIVERS
from perception.scene_graph import SceneGraph, load_scenes, scenes_by_index
from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError, NesyError
from physics.fanout import BACKENDS, Fanout, keep_freed_memory, make_fanout
from physics.io import atomic_write_json, read_json
from reasoning.dsl import Program, from_clevr
from reasoning.dsl.typecheck import unknown_function
from reasoning.executor import OPS
from reasoning.executor.result import given_answer
from reasoning.questions import QUESTION_TYPES, question_type
from reasoning.registry import QA_MODELS, QAModel, QAParts, load_qa_model

__all__ = ["ClevrEvalConfig", "evaluate_clevr", "scene_bootstrap_interval"]

SOURCES = ("gt", "model")
MAX_ERRORS = 5  # parse-error messages kept in the result


@dataclass(frozen=True)
class ClevrEvalConfig:
    """What to evaluate and on which split."""

    data: str = field(metadata={"help": "folder of a CLEVR-format split (nesy data clevr or the official layout)"})
    split: str = field(default="test", metadata={"help": "split name in the file names"})
    model: str = field(default="nsvqa", metadata={"help": "QA model to evaluate", "registry": QA_MODELS})
    perception: str = field(default="model", metadata={"help": "scene graphs from", "choices": SOURCES})
    perceiver: str | None = field(
        default=None,
        metadata={"help": "perception model, with perception=model (default: the QA model's own)", "registry": PERCEIVERS},
    )
    checkpoint: str | None = field(
        default=None, metadata={"help": "the perceiver's checkpoint file (default: its shipped one)"}
    )
    parser: str = field(default="model", metadata={"help": "programs from", "choices": SOURCES})
    parser_checkpoint: str | None = field(
        default=None, metadata={"help": "the question parser's checkpoint file (default: the shipped one)"}
    )
    limit: int | None = field(default=None, metadata={"min": 1, "help": "evaluate at most this many questions"})
    min_depth: int = field(
        default=0,
        metadata={"help": "answer only the questions whose ground-truth program is at least this deep (calls on the "
                  "longest path from the answer to scene); 0: all. Applied before --limit"},
    )
    out: str | None = field(default=None, metadata={"help": "write the JSON result here"})
    threads: int | None = field(
        default=None,
        metadata={"min": 1, "help": "torch CPU threads (default: torch's choice; 1 on a machine shared with training jobs, "
                  "where more threads than free cores slow the derenderer down several times)"},
    )
    backend: str = field(default="process", metadata={"help": "fan-out backend of perception",
                                                      "choices": sorted(BACKENDS)})
    workers: int = field(default=1, metadata={"min": 1, "help": "parallel perception workers (each loads the perceiver)"})
    address: str | None = field(
        default=None, metadata={"help": "Ray cluster to join with --backend ray (default: a local instance); "
                                "DATA must be a path every node shares"}
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.min_depth < 0:
            raise ConfigError(f"min_depth must be >= 0, got {self.min_depth}")
        if self.limit is not None and self.limit < 1:  # a negative limit would slice questions off the end
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        for name in ("perception", "parser"):
            if getattr(self, name) not in SOURCES:
                raise ConfigError(f"{name} must be one of {SOURCES}, got {getattr(self, name)!r}")
        QA_MODELS.get(self.model)  # unknown: ConfigError naming the closest models and the choices
        if self.perception == "gt" and (self.perceiver is not None or self.checkpoint is not None):
            raise ConfigError("perceiver and checkpoint choose the perception model; they need perception='model'")
        if self.perceiver is not None:
            cls = PERCEIVERS.get(self.perceiver)
            if (cls.inputs, cls.outputs) != ("image", "scene_graph"):
                raise ConfigError(
                    f"perceiver {self.perceiver!r} maps {cls.inputs} to {cls.outputs}; CLEVR needs image -> scene_graph"
                )
        if self.parser == "gt" and self.parser_checkpoint is not None:
            raise ConfigError("parser_checkpoint chooses the parser's weights; it needs parser='model'")

    def parts(self) -> QAParts:
        """The trained parts this evaluation loads (perceiver by name, checkpoints by path)."""
        perceiver = None
        if self.perception == "model":
            perceiver = self.perceiver or QA_MODELS.get(self.model).default_perceiver
        return QAParts(
            perceiver=perceiver,
            perceiver_checkpoint=self.checkpoint,
            parser=self.parser == "model",
            parser_checkpoint=self.parser_checkpoint,
        )


MAX_SKIPPED_SHOWN = 5  # messages of skipped questions kept in the result (the count is exact)


def _check_question(q: Any, file: str, k: int, scenes: dict[int, SceneGraph], seen: dict[int, int]) -> Program:
    """Question ``k`` of ``file``'s program; a NesyError naming the question if it cannot be evaluated.

    ``seen`` maps each ``question_index`` read so far to its question's position; a question
    whose index an earlier one had is refused (it would be counted twice), and ``seen`` gets ``k``'s.
    """
    if not isinstance(q, dict):
        raise DataError(f"{file}: question {k}: expected a JSON object, got {type(q).__name__}")
    for key in ("question", "program", "answer", "image_index"):
        if key not in q:
            raise DataError(f"{file}: question {k} lacks '{key}'")
    image = q["image_index"]
    if isinstance(image, bool) or not isinstance(image, int):
        raise DataError(f"{file}: question {k}: image_index must be an integer, got {image!r}")
    if image not in scenes:
        raise DataError(f"{file}: question {k} asks about image {image}, not in the scenes file")
    given_answer(q["answer"], f"{file}: question {k}")  # NaN would be read as 'nan', which no answer equals
    index = q.get("question_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise DataError(f"{file}: question {k}: question_index must be an integer, got {index!r}")
    program = from_clevr(q["program"], where=f"{file}: question {k}")
    for n, call in enumerate(program.nodes()):  # names only: the executors judge everything else as before
        if call.function not in OPS:
            raise DataError(f"{file}: question {k}: node {n}: {unknown_function(call.function, sorted(OPS))}")
    if index is not None:
        if index in seen:
            raise DataError(f"{file}: question {k}: question_index {index} given twice (first by question "
                            f"{seen[index]}); not counted again")
        seen[index] = k
    return program


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else 0.0


def scene_bootstrap_interval(
    questions: np.ndarray, correct: np.ndarray, *, n_boot: int = 5000, level: float = 0.9, seed: int = 0
) -> list[float]:
    """Percentile interval of overall accuracy, resampling scenes with their questions.

    Accuracy is the ratio of correct answers to questions summed over the
    resampled scenes, which is :func:`~benchmarks.paired.paired_ratio` with the
    scenes as episodes.

    Args:
        questions, correct: per-scene counts, int [S] each.

    >>> scene_bootstrap_interval(np.array([2, 2]), np.array([2, 2]))
    [1.0, 1.0]
    """
    if len(questions) == 0 or np.sum(questions) == 0:
        return [0.0, 0.0]
    return paired_ratio([correct], [questions], n_boot=n_boot, level=level, seed=seed)["interval"]


_WORKER_MODELS: dict[tuple[str, QAParts], QAModel] = {}  # one model per worker process, loaded once
PARSE_BATCH = 256  # questions per parser call, and per fan-out job

# A job of the evaluation's fan-out: ("perceive", (image_index, file name, path)) or
# ("parse", (first question's position, question texts)).
Job = tuple[str, tuple]


Perceived = tuple[SceneGraph, Any]  # a scene and what the model needs beyond it to answer it (None: nothing)


def _perceive(model: QAModel, job: tuple[int, str, str]) -> Perceived | str:
    """The perceived scene of one image with its perception state, or the message of an image that cannot be
    read (reported, not fatal).

    The state (:meth:`~reasoning.registry.QAModel.perception_state`, NS-CL's concept scores) travels with the
    scene from a worker process; the collecting process hands it to its own model.
    """
    index, name, path = job
    try:
        scene = model.perceive(load_image(path), image_index=index, image_filename=name)
    except DataError as err:  # missing, corrupt or too small: the caller reports it and answers its questions None
        return str(err)
    return scene, model.perception_state(scene)


def _run_job(model: QAModel, job: Job) -> object:
    """One job's result: a perceived scene (see :func:`_perceive`), or a parsed chunk (see :func:`_parse_chunk`)."""
    kind, arg = job
    return _perceive(model, arg) if kind == "perceive" else _parse_chunk(model, *arg)


WorkerSpec = tuple[str, QAParts, int]  # QA model name, its parts, torch threads


def _worker_setup(spec: WorkerSpec) -> QAModel:
    """A worker's model, loaded on first use (and its torch threads and memory reuse set)."""
    name, parts, threads = spec
    if (name, parts) not in _WORKER_MODELS:
        torch.set_num_threads(threads)
        keep_freed_memory()
        _WORKER_MODELS[(name, parts)] = load_qa_model(name, parts)
    return _WORKER_MODELS[(name, parts)]


def _worker_job(args: tuple[WorkerSpec, Job]) -> object:
    """Worker entry point: one job (the worker's model is loaded on its first job, or ahead)."""
    spec, job = args
    return _run_job(_worker_setup(spec), job)


def _jobs(images: list[tuple[int, str, str]], texts: list[str] | None) -> list[Job]:
    """Perception jobs, one per image, with the parse chunks spread evenly among them.

    Spreading the chunks (each costs several images' perception) keeps every
    worker busy to the end; the jobs are the same whatever the worker count.
    """
    chunks = [] if texts is None else list(range(0, len(texts), PARSE_BATCH))
    out: list[Job] = []
    c = 0
    for k, image in enumerate(images):
        while c < len(chunks) and c * len(images) <= k * len(chunks):
            out.append(("parse", (chunks[c], texts[chunks[c] : chunks[c] + PARSE_BATCH])))  # type: ignore[index]
            c += 1
        out.append(("perceive", image))
    out.extend(("parse", (s, texts[s : s + PARSE_BATCH])) for s in chunks[c:])  # type: ignore[index]
    return out


ParsedChunk = tuple[list[Program | None], int, list[str], list[tuple[str, ...]]]


def _parse_chunk(model: QAModel, start: int, texts: list[str]) -> ParsedChunk:
    """Parse questions ``start, start + 1, ...``; one that cannot be parsed is ``None``, never fatal.

    Returns:
        (programs, questions whose parse raised, their messages, the unknown
        words of each question -- empty when the parser cannot tell).
    """
    errors: list[str] = []
    failed = 0
    try:
        programs = list(model.parse(texts))
    except NesyError:
        programs = []
        for k, text in enumerate(texts):  # find the questions that fail, keep the rest
            try:
                programs.extend(model.parse([text]))
            except NesyError as exc:
                programs.append(None)
                failed += 1
                if len(errors) < MAX_ERRORS:
                    errors.append(f"question {start + k}: {str(exc).removeprefix('question 0: ')}")
    parser = getattr(model, "parser", None)
    unknown = list(parser.unknown_words(texts)) if hasattr(parser, "unknown_words") else []
    return programs, failed, errors, unknown


def _parse_report(chunks: Iterable[ParsedChunk]) -> tuple[list[Program | None], dict[str, Any]]:
    """The programs of parsed chunks (in question order) and the parser report.

    The report: ``unknown_word_questions`` (questions holding a word the parser
    never saw, read as its unknown-word token), ``unknown_words`` (the 20 most
    frequent, with counts), ``unparsed`` (questions with no program: a parse
    error or no well-typed decode), ``parse_errors`` (questions whose parse
    raised) and ``errors`` (the first :data:`MAX_ERRORS` messages).
    """
    programs: list[Program | None] = []
    errors: list[str] = []
    failed = with_unknown = 0
    words: Counter[str] = Counter()
    for got, bad, messages, unknown in chunks:
        programs.extend(got)
        failed += bad
        errors.extend(messages)
        for u in unknown:
            with_unknown += bool(u)
            words.update(u)
    return programs, {
        "unknown_word_questions": with_unknown,
        "unknown_words": dict(words.most_common(20)),
        "unparsed": sum(p is None for p in programs),
        "parse_errors": failed,
        "errors": errors[:MAX_ERRORS],
    }


def evaluate_clevr(config: ClevrEvalConfig, *, model: QAModel | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the evaluation and return (and write, if ``config.out``) the result dict.

    ``model`` replaces the one ``config`` names (already built parts, e.g. in tests).
    The process that runs perception jobs keeps the memory it frees for reuse
    (:func:`physics.fanout.keep_freed_memory`), for the rest of its life.
    """
    t0 = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    threads = torch.get_num_threads()
    fan: Fanout | None = None
    spec: WorkerSpec = (config.model, config.parts(), config.threads or 1)
    if model is None and config.backend == "process" and config.workers > 1:  # a given model stays here
        # this process is one of the workers; the others start now and load their
        # model while this one reads the split and loads its own
        fan = make_fanout("process", config.workers, config.address, caller_works=True)  # an address: ConfigError
        fan.start(_worker_setup, spec)
    try:
        return _evaluate(config, t0, model, fan, spec, progress)
    finally:
        if fan is not None:
            fan.close()
        _WORKER_MODELS.pop(spec[:2], None)  # this process's own, lent to its share of the jobs
        torch.set_num_threads(threads)


def _evaluate(
    config: ClevrEvalConfig, t0: float, model: QAModel | None, fan: Fanout | None, spec: WorkerSpec, progress: bool
) -> dict[str, Any]:
    layout = find_layout(config.data, config.split)
    if layout.scenes is None or layout.questions is None:
        raise DataError(f"{config.data}: split {config.split!r} needs both a scenes and a questions file")
    gt_scenes = scenes_by_index(load_scenes(layout.scenes), layout.scenes)
    raw = read_json(layout.questions, "CLEVR questions file")
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list):
        raise DataError(f"{layout.questions}: expected an object with a 'questions' list")
    questions, gt_programs, skipped = [], [], []  # the kept questions and their programs, read once
    seen: dict[int, int] = {}
    for k, q in enumerate(raw["questions"]):
        try:
            program = _check_question(q, layout.questions.name, k, gt_scenes, seen)
        except NesyError as err:  # one malformed question is reported and skipped, not fatal to the rest
            skipped.append(str(err))
            continue
        questions.append({**q, "answer": given_answer(q["answer"], "")})  # compared with the normalised answers
        gt_programs.append(program)
    if skipped and not questions:
        raise DataError(f"{layout.questions}: no question could be read ({len(skipped)} skipped; first: {skipped[0]})")
    if config.min_depth:
        deep = [(q, p) for q, p in zip(questions, gt_programs, strict=True) if p.depth() >= config.min_depth]
        if not deep:
            raise DataError(f"{layout.questions}: no question's program is {config.min_depth} or more calls deep")
        questions, gt_programs = [q for q, _ in deep], [p for _, p in deep]
    if config.limit:
        questions, gt_programs = questions[: config.limit], gt_programs[: config.limit]
    image_ids = sorted({q["image_index"] for q in questions})
    result: dict[str, Any] = {"config": asdict(config), "parts": asdict(config.parts()),
                              "questions": len(questions), "scenes": len(image_ids)}
    if skipped:
        result["skipped"] = {"count": len(skipped), "first": skipped[:MAX_SKIPPED_SHOWN]}

    # --- perception and parsing: one fan-out of per-image and per-chunk jobs
    texts = [q["question"] for q in questions] if config.parser == "model" else None
    images: list[tuple[int, str, str]] = []
    if config.perception == "model":
        for i in image_ids:
            name = gt_scenes[i].image_filename or f"CLEVR_{config.split}_{i:06d}.png"
            images.append((i, name, str(layout.images / name)))
    jobs = _jobs(images, texts)
    desc = "+".join(n for n, on in (("perceive", images), ("parse", texts)) if on)
    if fan is None and model is None and config.backend == "ray":  # after reading: bad data fails before Ray starts
        fan = make_fanout("ray", config.workers, config.address)
    if fan is None:  # one worker, the serial backend, or a given model: all here
        if model is None:
            model = load_qa_model(config.model, config.parts())
        if jobs:
            keep_freed_memory()
        done: Iterable[object] = (_run_job(model, job) for job in jobs)
    else:  # the workers get their first jobs now; this process loads its model meanwhile
        done = fan.imap(_worker_job, [(spec, job) for job in jobs])
        if config.backend == "process":  # this process runs its share of the jobs as the workers do
            model = _worker_setup(spec)
        else:  # Ray's workers run them all
            model = load_qa_model(config.model, config.parts())
    perceived: dict[int, SceneGraph] = {}
    unreadable: dict[int, str] = {}  # image index -> why it could not be read
    chunks: list[ParsedChunk] = []
    bar = tqdm(done, total=len(jobs), desc=desc, unit="job", disable=not progress or not jobs)
    for (kind, arg), got in zip(jobs, bar, strict=True):
        if kind == "perceive":
            if isinstance(got, str):  # an unreadable image: nothing perceived, its questions unanswered
                unreadable[arg[0]] = got
                got = (SceneGraph(objects=(), image_index=arg[0], image_filename=arg[1]), None)
            scene, state = got  # type: ignore[misc]
            if state is not None:  # perceived in a worker process, or here: the answering model takes it
                model.adopt_perception(scene, state)
            perceived[arg[0]] = scene
        else:
            chunks.append(got)  # type: ignore[arg-type]
    if unreadable:
        result["unreadable_images"] = {"count": len(unreadable),
                                       "first": [unreadable[i] for i in sorted(unreadable)[:MAX_SKIPPED_SHOWN]]}
    if config.perception == "model":
        from perception.derender import perception_metrics

        scenes = perceived
        metrics = perception_metrics([scenes[i] for i in image_ids], [gt_scenes[i] for i in image_ids])
        result["perception"] = metrics
    else:
        scenes = gt_scenes

    if config.parser == "model":
        programs, report = _parse_report(chunks)
        scene_list = [gt_scenes[i] for i in image_ids]
        pos = {i: k for k, i in enumerate(image_ids)}
        on_gt = model.answer_programs(programs, scene_list, [pos[q["image_index"]] for q in questions])
        # a DAG node list (official single_or) and its parsed tree are the same program when their trees are
        exact = sum(p is not None and p.root == g.root for p, g in zip(programs, gt_programs, strict=True))
        result["parser"] = {
            "program_exact": _ratio(exact, len(questions)),
            "program_answer": _ratio(sum(a == q["answer"] for a, q in zip(on_gt, questions, strict=True)), len(questions)),
            "invalid": _ratio(sum(p is None for p in programs), len(questions)),
            **report,
        }
    else:
        programs = list(gt_programs)

    # --- reasoning (a question about an unreadable image answers None: counted, and wrong)
    programs = [None if q["image_index"] in unreadable else p for p, q in zip(programs, questions, strict=True)]
    scene_list = [scenes[i] for i in image_ids]
    pos = {i: k for k, i in enumerate(image_ids)}
    answers = model.answer_programs(programs, scene_list, [pos[q["image_index"]] for q in questions])
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for a, q, g in zip(answers, questions, gt_programs, strict=True):
        t = question_type(g)
        total[t] += 1
        right[t] += a == q["answer"]
    accuracy = {"overall": _ratio(sum(right.values()), len(questions))}
    accuracy.update({t: _ratio(right[t], total[t]) for t in QUESTION_TYPES})
    result["accuracy"] = accuracy
    per_scene = {i: [i, 0, 0] for i in image_ids}
    for a, q in zip(answers, questions, strict=True):
        per_scene[q["image_index"]][1] += 1
        per_scene[q["image_index"]][2] += int(a == q["answer"])
    counts = np.array([row[1:] for row in per_scene.values()]).reshape(-1, 2)
    result["accuracy_interval"] = scene_bootstrap_interval(counts[:, 0], counts[:, 1])
    result["per_scene"] = list(per_scene.values())
    result["counts"] = {t: total[t] for t in QUESTION_TYPES}
    family: dict[str, list[int]] = {}
    for a, q in zip(answers, questions, strict=True):
        if "question_family_index" in q:
            row = family.setdefault(f"{q.get('template_filename', '')}:{q['question_family_index']}", [0, 0])
            row[0] += 1
            row[1] += int(a == q["answer"])
    result["per_family"] = {k: {"questions": n, "accuracy": _ratio(c, n)} for k, (n, c) in sorted(family.items())}
    by_depth: dict[int, list[int]] = {}
    by_objects: dict[int, list[int]] = {}
    for a, q, g in zip(answers, questions, gt_programs, strict=True):
        for table, key in ((by_depth, g.depth()), (by_objects, len(gt_scenes[q["image_index"]].objects))):
            row = table.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += int(a == q["answer"])
    for name, table in (("per_depth", by_depth), ("per_objects", by_objects)):
        result[name] = {str(k): {"questions": n, "accuracy": _ratio(c, n)} for k, (n, c) in sorted(table.items())}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    if config.out:
        atomic_write_json(config.out, result, indent=1)
    return result
