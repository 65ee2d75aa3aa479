"""Composed question-answering models: the :class:`QAModel` interface and its registry.

A QA model composes perception (pixels -> scenes), a question parser
(question -> :class:`~reasoning.dsl.Program`) and an executor (program on scene
-> answer): NS-VQA today, NS-CL and NS-DR next.  Each registers itself in its own
module with one ``register_qa_model(Cls)`` call; ``nesy eval clevr --model NAME``
reads its choices from :data:`QA_MODELS` and builds the model with
:func:`load_qa_model` from :class:`QAParts`: any registered perceiver
(:mod:`perception.registry`), shipped or loaded from a checkpoint path, and the
parser's shipped checkpoint or one by path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from perception.scene_graph import SceneGraph
from physics.errors import ConfigError
from physics.registry import Registry
from reasoning.dsl import Program

__all__ = ["QAModel", "QAParts", "QA_MODELS", "register_qa_model", "load_qa_model"]


@dataclass(frozen=True)
class QAParts:
    """Which trained parts a QA model is built from.

    Attributes:
        perceiver: Registered perceiver name (:data:`perception.registry.PERCEIVERS`);
            ``None`` builds no perception (scenes are given, e.g. ground truth).
        perceiver_checkpoint: Its weights (None: the perceiver's shipped checkpoint).
        parser: Build the question parser (False: programs are given).
        parser_checkpoint: Its weights (None: the shipped parser).
    """

    perceiver: str | None = None
    perceiver_checkpoint: str | None = None
    parser: bool = True
    parser_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.perceiver is None and self.perceiver_checkpoint is not None:
            raise ConfigError("a perceiver checkpoint was given but no perceiver to load it into")
        if not self.parser and self.parser_checkpoint is not None:
            raise ConfigError("a parser checkpoint was given but the parser is not used (programs are given)")


class QAModel(ABC):
    """Perceive scenes, parse questions, execute programs: what a composed QA model offers.

    Attributes:
        name: Registry name (``nesy eval clevr --model NAME``).
        default_perceiver: The perceiver it uses unless told otherwise.
    """

    name: ClassVar[str] = "qa-model"
    default_perceiver: ClassVar[str] = "derender"

    @classmethod
    @abstractmethod
    def from_parts(cls, parts: QAParts) -> QAModel:
        """Build the model from trained parts (see :class:`QAParts`)."""

    @abstractmethod
    def perceive(self, rgb: Any, *, image_index: int | None = None, image_filename: str | None = None) -> SceneGraph:
        """One image -> its scene (ProgramError when the model has no perception)."""

    @abstractmethod
    def parse(self, questions: Sequence[str]) -> list[Program | None]:
        """Questions -> programs (None where no well-typed program came out)."""

    @abstractmethod
    def answer_programs(
        self, programs: Sequence[Program | None], scenes: Sequence[SceneGraph], scene_indices: Sequence[int]
    ) -> list[str | None]:
        """Answer ``programs[k]`` on ``scenes[scene_indices[k]]``; None programs answer None."""

    def perception_state(self, scene: SceneGraph) -> Any:
        """What answering ``scene`` needs beyond the scene graph, for a scene this model perceived (None: nothing).

        A fan-out sends it back with the scene from the worker process that perceived it, and the model that
        answers takes it with :meth:`adopt_perception` (NS-CL: the concept scores its soft executor reads).
        """
        return None

    def adopt_perception(self, scene: SceneGraph, state: Any) -> None:
        """Take ``state``, from :meth:`perception_state` of a copy of this model (here or in another process),
        as the perception behind ``scene`` (nothing to take by default)."""
        return None  # a hook with a default, not an abstract method: most models perceive nothing beyond the graph


QA_MODELS: Registry[type[QAModel]] = Registry("QA model", modules=("reasoning.nsvqa", "reasoning.nscl.perceiver"))


def register_qa_model(cls: type[QAModel], *, help: str | None = None) -> type[QAModel]:
    """Register QA model class ``cls`` under ``cls.name`` (call it once, after the class).

    Returns:
        ``cls``, so the call can also decorate the class.

    Raises:
        ConfigError: not a QAModel, no name of its own, or a taken name.
    """
    return QA_MODELS.register_class(cls, QAModel, help=help)


def load_qa_model(name: str, parts: QAParts) -> QAModel:
    """QA model ``name`` built from ``parts`` (ConfigError naming the choices for an unknown name)."""
    return QA_MODELS.get(name).from_parts(parts)
