"""NS-VQA: derender the image, parse the question, execute the program.

Yi et al., "Neural-Symbolic VQA: Disentangling Reasoning from Vision and
Language Understanding", NeurIPS 2018 (arXiv 1810.02338).  The model is the
composition of three parts, each swappable:

* perception -- any registered :class:`~perception.registry.Perceiver`
  (image -> SceneGraph; the default is the derenderer,
  :class:`perception.derender.Derenderer`) or the ground-truth scene
  (``perception="gt"``);
* parsing -- :class:`reasoning.parser.QuestionParser` (question -> Program) or
  the ground-truth program (``parser="gt"``);
* reasoning -- the symbolic executor (:func:`reasoning.executor.execute` for one
  question with its trace, :func:`reasoning.executor.execute_batch` for many).

Registered as the QA model ``nsvqa`` (:mod:`reasoning.registry`).

>>> model = NSVQA.load_default()                         # doctest: +SKIP
>>> scene = model.perceive(rgb)                          # doctest: +SKIP
>>> model.answer(scene, "How many red cubes are there?").answer  # doctest: +SKIP
'1'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception.scene_graph import SceneGraph
from reasoning.dsl import Program, to_text
from reasoning.errors import ProgramError
from reasoning.executor import ExecutionResult, execute, execute_batch
from reasoning.registry import QAModel, QAParts, register_qa_model

__all__ = ["NSVQA", "NSVQAAnswer"]


@dataclass(frozen=True)
class NSVQAAnswer:
    """One answered question: the parsed program, its execution and the answer."""

    question: str
    program: Program | None
    result: ExecutionResult | None

    @property
    def answer(self) -> str | None:
        return None if self.result is None else self.result.answer

    @property
    def program_text(self) -> str:
        return "<no valid program>" if self.program is None else to_text(self.program)


class NSVQA(QAModel):
    """NS-VQA: a perceiver, a seq2seq question parser and the symbolic executor (Yi et al. 2018).

    Args:
        derenderer: A :class:`~perception.registry.Perceiver`, or any callable
            ``rgb uint8 [H, W, 3] -> SceneGraph`` (None: perception must be given
            as scene graphs).
        parser: Object with ``parse(questions) -> list[Program | None]`` (None:
            programs must be given).
    """

    name = "nsvqa"
    default_perceiver = "derender"

    def __init__(self, derenderer=None, parser=None) -> None:
        self.derenderer = derenderer
        self.parser = parser

    @classmethod
    def from_parts(cls, parts: QAParts) -> NSVQA:
        """Any registered perceiver and the question parser, shipped or from checkpoint paths."""
        derenderer = parser = None
        if parts.perceiver is not None:
            from perception.registry import load_perceiver

            derenderer = load_perceiver(parts.perceiver, parts.perceiver_checkpoint)
        if parts.parser:
            from reasoning.parser import load_default_parser, load_parser

            parser = (load_default_parser() if parts.parser_checkpoint is None
                      else load_parser(parts.parser_checkpoint, catalogue="clevr"))
        return cls(derenderer, parser)

    @classmethod
    def load_default(cls) -> NSVQA:
        """The shipped checkpoints (raises CheckpointError when one is missing)."""
        return cls.from_parts(QAParts(perceiver=cls.default_perceiver))

    def perceive(
        self, rgb: np.ndarray, *, image_index: int | None = None, image_filename: str | None = None
    ) -> SceneGraph:
        """Derender one image into a scene graph (``image_index``/``image_filename`` passed on when given)."""
        if self.derenderer is None:
            raise ProgramError("this NS-VQA model has no derenderer; pass scene graphs instead")
        meta = {k: v for k, v in (("image_index", image_index), ("image_filename", image_filename)) if v is not None}
        return self.derenderer(rgb, **meta)

    def parse(self, questions: Sequence[str]) -> list[Program | None]:
        """Parse questions into programs (None where no well-typed program came out)."""
        if self.parser is None:
            raise ProgramError("this NS-VQA model has no question parser; pass programs instead")
        return self.parser.parse(list(questions))

    def answer(self, scene: SceneGraph, question: str) -> NSVQAAnswer:
        """Answer one question about a scene, with the execution trace."""
        (program,) = self.parse([question])
        result = None if program is None else execute(program, scene, trace=True)
        return NSVQAAnswer(question, program, result)

    @staticmethod
    def answer_programs(
        programs: Sequence[Program | None], scenes: Sequence[SceneGraph], scene_indices: Sequence[int]
    ) -> list[str | None]:
        """Batched execution; ``None`` programs (failed parses) answer ``None``."""
        keep = [k for k, p in enumerate(programs) if p is not None]
        answers: list[str | None] = [None] * len(programs)
        if keep:
            got = execute_batch([programs[k] for k in keep], scenes, [scene_indices[k] for k in keep])
            for k, a in zip(keep, got, strict=True):
                answers[k] = a
        return answers


register_qa_model(NSVQA, help="NS-VQA: perceiver, seq2seq parser, symbolic executor (Yi et al. 2018)")
