"""QuestionGenerator: CLEVR-style questions, programs and answers for scene graphs.

For each scene the generator tries templates in order of how rarely they have
been used so far (ties in random order), instantiates each with
:func:`~reasoning.questions.search.instantiate`, and stops when ``n``
templates gave a question, as CLEVR's ``generate_questions.py`` does with
``templates_per_image``.  Template usage counts and per-template answer
counts persist across scenes (for balancing) and are reset every
``reset_counts_every`` scenes.

Output records are in the official CLEVR questions-JSON form::

    {"question": str, "program": [{"inputs", "function", "value_inputs"}, ...],
     "answer": str, "image_index": int, "image_filename": str, "image": str,
     "question_family_index": int, "template_filename": str, "split": str,
     "question_index": int}

Answers are strings as in the released CLEVR v1.0 files: ``"yes"``/``"no"``,
``"3"``, ``"cube"`` (written by :func:`reasoning.executor.format_answer` from
the template root's output type).  ``question_family_index`` is the template's
index in its file, as CLEVR's generator writes it.

>>> from perception.synthetic import sample_scene_graphs
>>> gen = QuestionGenerator()
>>> qs = gen.generate(sample_scene_graphs(2, seed=0), per_scene=3, seed=0)
>>> sorted(qs[0])[:3]
['answer', 'image', 'image_filename']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from perception.scene_graph import SceneGraph
from physics.io import PathLike, atomic_write_json
from reasoning.dsl import Catalogue
from reasoning.executor.result import format_answer
from reasoning.questions.balance import AnswerBalancer, answer_domain
from reasoning.questions.config import GeneratorConfig
from reasoning.questions.engine import SceneIndex
from reasoning.questions.search import Instance, instantiate
from reasoning.questions.template import Template, load_templates
from reasoning.questions.text import render_text
from reasoning.questions.vocab import load_synonyms

__all__ = ["QuestionGenerator", "save_questions", "QUESTION_KEYS"]

# Keys of one question record, in the order they are written.
QUESTION_KEYS = (
    "question",
    "program",
    "answer",
    "image_index",
    "image_filename",
    "image",
    "question_family_index",
    "template_filename",
    "split",
    "question_index",
)


class QuestionGenerator:
    """Generate questions from templates over scene graphs.

    Args:
        templates: ``None`` for the project's own set, a folder or file in the
            CLEVR template layout, or already-loaded :class:`Template` objects.
        synonyms: ``None`` for the project's own table, a JSON file, or a mapping.
        metadata: The function catalogue: ``None`` for CLEVR-v1.0, a
            ``metadata.json`` path, or a :class:`~reasoning.dsl.Catalogue`.
        config: Search, balancing and text settings (defaults: :class:`GeneratorConfig`).

    Raises:
        TemplateError: templates or synonyms that do not validate.
        DataError: a metadata file that is unreadable or malformed (naming the
            file and the field).
    """

    def __init__(
        self,
        templates: PathLike | Sequence[Template] | None = None,
        synonyms: PathLike | Mapping[str, Sequence[str]] | None = None,
        metadata: PathLike | Catalogue | None = None,
        config: GeneratorConfig | None = None,
    ) -> None:
        if metadata is None:
            catalogue = Catalogue.default()
        elif isinstance(metadata, Catalogue):
            catalogue = metadata
        else:
            catalogue = Catalogue.load(metadata)
        self.catalogue = catalogue
        if templates is None or isinstance(templates, (str, os.PathLike)):
            templates = load_templates(templates, catalogue)
        self.templates: tuple[Template, ...] = tuple(templates)
        if synonyms is None or isinstance(synonyms, (str, os.PathLike)):
            synonyms = load_synonyms(synonyms)
        self.synonyms: Mapping[str, Sequence[str]] = synonyms
        self.config = config or GeneratorConfig()
        # template -> output type of its root, which decides how the answer is written
        self._answer_types = {
            t.key: catalogue.signature(t.nodes[-1].type).output for t in self.templates
        }
        self._scenes_seen = 0
        self.reset_counts()

    # ------------------------------------------------------------------ counts
    def reset_counts(self) -> None:
        """Forget how often each template and answer has been used."""
        c = self.config
        self.template_counts: dict[tuple[str, int], int] = {t.key: 0 for t in self.templates}
        self.balancers: dict[tuple[str, int], AnswerBalancer] = {
            t.key: AnswerBalancer(
                answer_domain(self.catalogue, t.nodes[-1].type),
                c.balance_ratio,
                c.balance_median_factor,
                c.balance_median_floor,
            )
            for t in self.templates
        }

    # ------------------------------------------------------------------ generation
    def generate_for_scene(
        self, scene: SceneGraph, n: int, rng: np.random.Generator, *, image_index: int | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``n`` questions on ``scene``, each from a different template.

        Args:
            scene: The scene; its ``image_index``/``image_filename``/``split`` are
                copied into the records (file name ``CLEVR_<split>_<index>.png``
                when it has none).
            n: Templates to instantiate (CLEVR's ``templates_per_image``).
            rng: Random source; the generator's counts also change.
            image_index: Overrides ``scene.image_index`` (used when it is ``None``).

        Returns:
            Question records without ``question_index``.
        """
        c = self.config
        if (
            c.reset_counts_every
            and self._scenes_seen
            and self._scenes_seen % c.reset_counts_every == 0
        ):
            self.reset_counts()
        self._scenes_seen += 1
        ix = SceneIndex(scene)
        order = [self.templates[j] for j in rng.permutation(len(self.templates))]
        order.sort(key=lambda t: self.template_counts[t.key])  # stable: ties stay shuffled
        split = scene.split or c.split
        index = scene.image_index if scene.image_index is not None else (image_index or 0)
        filename = scene.image_filename or f"CLEVR_{split}_{index:06d}.png"
        out: list[dict[str, Any]] = []
        done = 0
        for t in order:
            if done >= n:
                break
            found = instantiate(
                t,
                ix,
                rng,
                catalogue=self.catalogue,
                config=c,
                balancer=self.balancers[t.key] if c.balance else None,
                max_instances=c.instances_per_template,
            )
            if not found:
                continue
            done += 1
            self.template_counts[t.key] += 1
            for inst in found:
                out.append(self._record(inst, rng, index, filename, split))
        return out

    def generate(
        self,
        scenes: Iterable[SceneGraph],
        per_scene: int = 10,
        seed: int = 0,
        *,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Questions for every scene, numbered; the same seed gives the same list.

        Counts are reset first, so the result does not depend on earlier calls.
        """
        self.reset_counts()
        self._scenes_seen = 0
        rng = np.random.default_rng(seed)
        scenes = list(scenes)
        questions: list[dict[str, Any]] = []
        for k, scene in enumerate(
            tqdm(scenes, desc="questions", unit="scene", disable=not progress)
        ):
            for q in self.generate_for_scene(scene, per_scene, rng, image_index=k):
                q["question_index"] = len(questions)
                questions.append(q)
        return questions

    def _record(
        self, inst: Instance, rng: np.random.Generator, index: int, filename: str, split: str
    ) -> dict[str, Any]:
        t = inst.template
        phrasing = t.text[int(rng.integers(len(t.text)))]
        text = render_text(
            phrasing,
            inst.values,
            t.param_types,
            self.synonyms,
            rng,
            fix_articles=self.config.fix_articles,
        )
        return {
            "question": text,
            "program": [
                dict(n, inputs=list(n["inputs"]), value_inputs=list(n["value_inputs"]))
                for n in inst.program
            ],
            "answer": format_answer(inst.answer, self._answer_types[t.key]),
            "image_index": index,
            "image_filename": filename,
            "image": os.path.splitext(os.path.basename(filename))[0],
            "question_family_index": t.index,
            "template_filename": t.filename,
            "split": split,
        }


def save_questions(
    path: PathLike, questions: Sequence[Mapping[str, Any]], info: Mapping[str, Any] | None = None
) -> None:
    """Write ``{"info": ..., "questions": [...]}`` atomically (same input -> same bytes)."""
    atomic_write_json(path, {"info": dict(info or {}), "questions": [dict(q) for q in questions]})
