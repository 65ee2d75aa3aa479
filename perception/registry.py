"""Perception models: the :class:`Perceiver` interface and its registry.

A perceiver turns pixels into the object-centric structures the reasoning layer
reads: one RGB image into a :class:`~perception.scene_graph.SceneGraph` (the
NS-VQA derenderer), or, for the video models to come, frames into tracks.  Its
class says which (:attr:`Perceiver.inputs`, :attr:`Perceiver.outputs`), so a
benchmark can refuse a perceiver that does not fit it.

Adding a perception model is one module: a :class:`Perceiver` subclass with a
``name``, :meth:`Perceiver.__call__` and :meth:`Perceiver.from_checkpoint`, and
one ``register_perceiver(Cls)`` call after it.  The built-in modules are
imported the first time :data:`PERCEIVERS` is read, so ``import perception``
loads no network code.  ``nesy eval clevr --perceiver NAME [--checkpoint PATH]``
and ``nesy answer --image ... --perceiver NAME`` read their choices from here.

>>> from perception.registry import load_perceiver      # doctest: +SKIP
>>> derenderer = load_perceiver("derender")              # doctest: +SKIP
>>> scene = derenderer(rgb)                              # doctest: +SKIP
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from perception.scene_graph import SceneGraph
from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike
from physics.registry import Registry

__all__ = ["Perceiver", "PERCEIVERS", "register_perceiver", "load_perceiver", "INPUTS", "OUTPUTS"]

INPUTS = ("image", "frames")  # one RGB image uint8 [H, W, 3]; a clip uint8 [T, H, W, 3]
OUTPUTS = ("scene_graph", "tracks")  # a SceneGraph; per-frame object states (VideoScene)


class Perceiver(ABC):
    """Pixels in, scene structure out: the interface every perception model implements.

    Subclasses set ``name`` (the registry name), ``inputs`` / ``outputs`` when they
    differ from image -> scene graph, and ``default_checkpoint`` when a trained
    checkpoint ships inside the package.

    Attributes:
        name: Registry name (``nesy eval clevr --perceiver NAME``).
        inputs: ``"image"`` (uint8 ``[H, W, 3]``) or ``"frames"`` (uint8 ``[T, H, W, 3]``).
        outputs: ``"scene_graph"`` (:class:`SceneGraph`) or ``"tracks"`` (a VideoScene).
        default_checkpoint: The shipped checkpoint (None: none ships; load one by path).
        metadata: How the loaded weights were trained (command, seed, metrics).
    """

    name: ClassVar[str] = "perceiver"
    inputs: ClassVar[str] = "image"
    outputs: ClassVar[str] = "scene_graph"
    default_checkpoint: ClassVar[Path | None] = None
    metadata: dict[str, Any]

    @abstractmethod
    def __call__(self, rgb: Any, *, image_index: int | None = None, image_filename: str | None = None) -> SceneGraph:
        """Perceive one input; ``image_index`` / ``image_filename`` are recorded in the scene."""

    @classmethod
    @abstractmethod
    def from_checkpoint(cls, path: PathLike) -> Perceiver:
        """Load trained weights from ``path`` (raises CheckpointError when they do not fit)."""

    @classmethod
    def load_default(cls) -> Perceiver:
        """The shipped checkpoint (:attr:`default_checkpoint`).

        Raises:
            CheckpointError: this perceiver ships none (pass a checkpoint path instead).
        """
        if cls.default_checkpoint is None:
            raise CheckpointError(f"perceiver {cls.name!r} ships no checkpoint; give one by path (--checkpoint PATH)")
        return cls.from_checkpoint(cls.default_checkpoint)


PERCEIVERS: Registry[type[Perceiver]] = Registry(
    "perceiver", modules=("perception.derender.derenderer", "perception.confidence.selective")
)


def register_perceiver(cls: type[Perceiver], *, help: str | None = None) -> type[Perceiver]:
    """Register perceiver class ``cls`` under ``cls.name`` (call it once, after the class).

    Args:
        cls: A :class:`Perceiver` subclass with its own ``name``.
        help: One line for ``--help`` (default: the first line of the class docstring).

    Returns:
        ``cls``, so the call can also decorate the class.

    Raises:
        ConfigError: not a Perceiver, no name of its own, unknown inputs/outputs, or a taken name.
    """
    if isinstance(cls, type) and (getattr(cls, "inputs", None) not in INPUTS or getattr(cls, "outputs", None) not in OUTPUTS):
        raise ConfigError(
            f"perceiver {getattr(cls, 'name', cls)!r}: inputs must be one of {INPUTS} and outputs one of {OUTPUTS}, "
            f"got {getattr(cls, 'inputs', None)!r} -> {getattr(cls, 'outputs', None)!r}"
        )
    return PERCEIVERS.register_class(cls, Perceiver, help=help)


def load_perceiver(name: str, checkpoint: PathLike | None = None) -> Perceiver:
    """Perceiver ``name`` with the weights in ``checkpoint`` (None: its shipped checkpoint).

    Raises:
        ConfigError: unknown name (names the closest and the choices).
        CheckpointError: missing or unfitting checkpoint, or none shipped and none given.
    """
    cls = PERCEIVERS.get(name)
    return cls.load_default() if checkpoint is None else cls.from_checkpoint(checkpoint)
