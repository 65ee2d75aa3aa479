"""Training data of the question parser: (question, program, answer, scene) records.

NS-VQA trains its parser in two stages (Yi et al., arXiv 1810.02338, Sec. 3.2):
a few hundred (question, program) pairs for supervised pretraining, then many
(question, answer) pairs whose programs are never shown, for REINFORCE.  A
:class:`ParserData` holds both kinds of record together with the scenes the
answers refer to; :func:`select_supervised` picks the pretraining pairs evenly
over templates (270 = 3 per template for 90 templates).

Sources: a folder written by ``nesy data clevr`` / ``nesy data questions``
(:func:`load_parser_data`), or synthetic scenes with template questions
(:func:`generate_parser_data`, no pixels needed).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception.scene_graph import SceneGraph, load_scenes, scenes_by_index
from physics.errors import DataError, NesyError
from physics.io import read_json
from reasoning.dsl import Catalogue, from_clevr, to_prefix_tokens
from reasoning.parser.vocab import template_words

__all__ = [
    "ParserExample",
    "ParserData",
    "examples_from_questions",
    "load_parser_data",
    "generate_parser_data",
    "official_template_set",
    "OFFICIAL_PREFIX",
    "select_supervised",
    "program_token_signatures",
]


@dataclass(frozen=True)
class ParserExample:
    """One question with its ground truth.

    Attributes:
        question: The question text.
        tokens: Prefix program tokens of the ground-truth program (empty if unknown).
        answer: Ground-truth answer (``None`` if unknown).
        image_index: Index of the scene the question is about.
        template: ``template_filename:question_family_index`` (or ``""``), used to
            spread the supervised pairs evenly over templates.
        kind: What the text is (:data:`~reasoning.parser.catalogues.KINDS`): a
            question, or for CLEVRER a multiple-choice question or one of its options.
    """

    question: str
    tokens: tuple[str, ...] = ()
    answer: str | None = None
    image_index: int = -1
    template: str = ""
    kind: str = "question"


@dataclass(frozen=True)
class ParserData:
    """Questions and the scenes their answers refer to.

    Attributes:
        examples: The records, in file order.
        scenes: ``image_index`` -> scene (may be empty when no answer is checked).
        extra_words: Words to put in the question vocabulary beyond the examples'
            (e.g. :func:`~reasoning.parser.vocab.template_words`).
        source: How the data was made, stored in checkpoint metadata.
        synonyms: Value -> phrases of the template sets beyond the project's own
            (their single words join the slot lexicon); empty: the project's only.
        catalogue: Whose programs the examples hold (:data:`~reasoning.parser.catalogues.CATALOGUES`).
    """

    examples: tuple[ParserExample, ...]
    scenes: Mapping[int, SceneGraph] = field(default_factory=dict)
    extra_words: frozenset[str] = frozenset()
    source: Mapping[str, Any] = field(default_factory=dict)
    synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    catalogue: str = "clevr"

    def split(self, first: int) -> tuple[ParserData, ParserData]:
        """The first ``first`` examples and the rest, sharing scenes, words and synonyms."""
        a = dataclasses.replace(self, examples=self.examples[:first])
        b = dataclasses.replace(self, examples=self.examples[first:])
        return a, b


OFFICIAL_PREFIX = "official/"  # template keys of questions from a named CLEVR template set


def examples_from_questions(
    questions: Sequence[Mapping[str, Any]], where: str = "questions", template_prefix: str = ""
) -> list[ParserExample]:
    """Records from official CLEVR question dicts (``question``, ``program``, ``answer``, ``image_index``).

    Programs are kept in tree form: a DAG node list (the official generator's
    ``single_or`` programs read a node twice) gives the prefix tokens of its
    tree expansion, which the executor answers identically (every function is
    pure).  ``template_prefix`` starts every template key (to tell apart two
    template sets whose files share names).

    Raises:
        DataError / ProgramError: a question lacks ``question`` or has a bad
            program (names the question index).
    """
    out = []
    for i, q in enumerate(questions):
        if not isinstance(q, Mapping) or not isinstance(q.get("question"), str):
            raise DataError(f"{where}: question {i} has no 'question' text")
        tokens: tuple[str, ...] = ()
        if q.get("program"):
            tokens = tuple(to_prefix_tokens(from_clevr(q["program"], where=f"{where}: question {i} program")))
        answer = q.get("answer")
        image_index = q.get("image_index", -1)
        if not isinstance(image_index, int):
            raise DataError(f"{where}: question {i} has a non-integer image_index {image_index!r}")
        template = f"{template_prefix}{q.get('template_filename', '')}:{q.get('question_family_index', '')}"
        out.append(ParserExample(q["question"], tokens, None if answer is None else str(answer), image_index, template))
    return out


def _find(folder: Path, kind: str) -> Path:
    files = sorted(p for p in folder.glob("*.json") if kind in p.name)
    if not files:
        raise DataError(f"no CLEVR {kind} JSON file (a *.json with '{kind}' in its name) in {folder}")
    if len(files) > 1:
        raise DataError(f"several {kind} files in {folder}: {[p.name for p in files]}; keep one per folder")
    return files[0]


def load_parser_data(folder: str | Path) -> ParserData:
    """Read a folder holding one CLEVR questions JSON and (optionally) one scenes JSON.

    The questions file is the one whose name contains ``questions``; the scenes
    file the one containing ``scenes`` (without it, REINFORCE and answer
    accuracy are unavailable).

    Raises:
        DataError: the folder, a file or a record is missing or malformed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"parser data folder not found: {folder}")
    qpath = _find(folder, "questions")
    data = read_json(qpath, "CLEVR questions file")
    if not isinstance(data, Mapping) or not isinstance(data.get("questions"), list):
        raise DataError(f"{qpath}: expected an object with a 'questions' list")
    examples = examples_from_questions(data["questions"], where=qpath.name)
    scenes: dict[int, SceneGraph] = {}
    if any(folder.glob("*scenes*.json")):
        path = _find(folder, "scenes")
        scenes = scenes_by_index(load_scenes(path), path)
    return ParserData(tuple(examples), scenes, frozenset(), {"data": str(folder)})


def official_template_set(folder: str | Path) -> tuple[Path, dict[str, list[str]]]:
    """The templates folder and synonyms of a CLEVR release folder (``DIR/templates``, ``DIR/synonyms.json``).

    The folder is read where it is (the CLEVR templates are BSD-licensed,
    facebookresearch/clevr-dataset-gen; the project never copies them).

    Raises:
        DataError: the folder, its ``templates`` folder or its ``synonyms.json`` is missing or malformed.
    """
    folder = Path(folder)
    templates, synonyms = folder / "templates", folder / "synonyms.json"
    if not templates.is_dir():
        raise DataError(f"official templates: no 'templates' folder in {folder} (expected a CLEVR release folder "
                        "holding templates/ and synonyms.json)")
    if not synonyms.is_file():
        raise DataError(f"official templates: no synonyms.json in {folder}")
    table = read_json(synonyms, "synonyms file")
    if not isinstance(table, Mapping) or not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in table.values()
    ):
        raise DataError(f"{synonyms}: expected an object mapping words to lists of phrases")
    return templates, {str(k): list(v) for k, v in table.items()}


def generate_parser_data(
    scenes: int,
    per_scene: int,
    seed: int,
    *,
    templates: str | Path | None = None,
    official: str | Path | None = None,
    progress: bool = False,
) -> ParserData:
    """Synthetic scenes (no pixels) with template questions from the project's generator.

    Args:
        scenes: Number of scenes (``perception.synthetic.sample_scene_graphs(scenes, seed)``).
        per_scene: Templates instantiated per scene (per template set).
        seed: Seed of both the scenes and the questions.
        templates: Template folder (CLEVR layout); default the project's own set.
        official: A CLEVR release folder (:func:`official_template_set`): questions
            from its templates and synonyms over the same scenes join those of
            ``templates``, scene by scene (so that any prefix of the examples
            holds both languages); their template keys start with :data:`OFFICIAL_PREFIX`.
        progress: Show a progress bar.

    Returns:
        Data whose ``extra_words`` are every word the templates can emit.
    """
    from perception.synthetic import sample_scene_graphs
    from reasoning.questions import DEFAULT_SYNONYMS, DEFAULT_TEMPLATES, QuestionGenerator

    folder = Path(templates) if templates is not None else DEFAULT_TEMPLATES
    official_set = official_template_set(official) if official is not None else None  # fail before generating
    graphs = sample_scene_graphs(scenes, seed=seed)
    questions = QuestionGenerator(templates=folder).generate(graphs, per_scene, seed, progress=progress)
    examples = examples_from_questions(questions, where=f"generated questions (seed {seed})")
    synonyms = read_json(DEFAULT_SYNONYMS, "synonyms file")
    words = template_words(folder, synonyms)
    source: dict[str, Any] = {"scenes": scenes, "per_scene": per_scene, "seed": seed,
                              "templates": "default" if templates is None else str(folder)}
    extra_synonyms: dict[str, list[str]] = {}
    if official is not None and official_set is not None:
        off_templates, extra_synonyms = official_set
        off = QuestionGenerator(templates=off_templates, synonyms=extra_synonyms).generate(
            graphs, per_scene, seed, progress=progress)
        off_examples = examples_from_questions(off, where=f"official-template questions (seed {seed})",
                                               template_prefix=OFFICIAL_PREFIX)
        order = {g.image_index: k for k, g in enumerate(graphs)}
        tagged = [(order.get(e.image_index, -1), 0, e) for e in examples]
        tagged += [(order.get(e.image_index, -1), 1, e) for e in off_examples]
        examples = [e for *_, e in sorted(tagged, key=lambda t: t[:2])]  # stable: file order within a scene
        words |= template_words(off_templates, extra_synonyms)
        source["official"] = str(Path(official))
    return ParserData(
        tuple(examples),
        {g.image_index: g for g in graphs},
        frozenset(words),
        {"generated": source},
        extra_synonyms,
    )


def select_supervised(examples: Sequence[ParserExample], n: int) -> list[ParserExample]:
    """``n`` examples with programs, spread evenly over templates.

    Takes one example of every template in turn (templates in order of first
    appearance, examples in file order), so ``n = 3 * templates`` gives three
    programs per template, as in NS-VQA's 270-program setting.

    Raises:
        DataError: fewer than ``n`` examples carry a program.
    """
    by_template: dict[str, list[ParserExample]] = defaultdict(list)
    for e in examples:
        if e.tokens:
            by_template[e.template].append(e)
    total = sum(len(v) for v in by_template.values())
    if total < n:
        raise DataError(f"{n} supervised programs requested but only {total} questions carry a program")
    out: list[ParserExample] = []
    rnd = 0
    while len(out) < n:
        for group in by_template.values():
            if rnd < len(group) and len(out) < n:
                out.append(group[rnd])
        rnd += 1
    return out


def program_token_signatures(catalogue: Catalogue | None = None) -> dict[str, tuple[tuple[str, ...], str, bool]]:
    """Every prefix token an instantiated CLEVR program can contain, with its signature.

    Returns:
        ``{token: (input types, output type, terminal)}``.  Template-only
        composite functions are left out (instantiated questions are expanded
        into primitive functions); a function with one side input gives one
        token per vocabulary value (``filter_color[red]``, ...).
    """
    from reasoning.dsl import Call, Program

    catalogue = catalogue or Catalogue.default()
    out: dict[str, tuple[tuple[str, ...], str, bool]] = {}
    for name in catalogue.names:
        spec = catalogue.signature(name)
        if spec.template_only or len(spec.side_inputs) > 1:
            continue
        choices = [()] if not spec.side_inputs else [(v,) for v in catalogue.values(spec.side_inputs[0])]
        for values in choices:
            # the DSL owns the token spelling: render a one-node program with leaf children
            node = Call(name, tuple(Call("scene") for _ in range(spec.arity)), values)
            try:
                token = to_prefix_tokens(Program(node))[0]
            except NesyError:
                continue
            out[token] = (tuple(spec.inputs), spec.output, spec.terminal)
    return out
