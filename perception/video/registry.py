"""Video perceivers: frames of a video in, its CLEVRER annotation out; and their registry.

A video perceiver reads one video's frame folder (``frames_<split>/video_<k>/``
as ``nesy data clevrer`` writes it) and returns a
:class:`~physics.worlds.clevrer_annotation.VideoAnnotation` in the official
format, so that everything downstream (events, dynamics, the executor) reads
perceived and true videos alike.  ``--perception NAME`` choices come from
:data:`VIDEO_PERCEIVERS`:

* ``gt``: the video's own annotation file (ground-truth perception);
* ``model``: the derenderer on every frame, tracking, finite differences and
  the collision rule (:mod:`perception.video.perceiver`).

Adding one is a :class:`VideoPerceiver` subclass with a ``name``,
:meth:`VideoPerceiver.__call__` and :meth:`VideoPerceiver.load`, and one
``register_video_perceiver(Cls)`` call.  Its :attr:`VideoPerceiver.reads` says which
of a video's files it reads (the frames, by default); :func:`reasoning.nsdr.perception_for`
hands it that path and :func:`reasoning.nsdr.check_split_folder` asks for that folder.

>>> from perception.video import perceive_video                      # doctest: +SKIP
>>> ann = perceive_video("data/clevrer/frames_val/video_00000")       # doctest: +SKIP
>>> [p.shape for p in ann.object_property]                            # doctest: +SKIP
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from physics.errors import ConfigError
from physics.io import PathLike
from physics.registry import Registry
from physics.worlds.clevrer_annotation import VideoAnnotation

__all__ = ["VideoPerceiver", "VIDEO_INPUTS", "VIDEO_PERCEIVERS", "register_video_perceiver", "load_video_perceiver", "perceive_video"]


# what a perceiver may read of a video -> what that is, as an error line says it
VIDEO_INPUTS: Mapping[str, str] = MappingProxyType({
    "frames": "the rendered frames (built with --no-render?)",  # frames_<split>/video_<k>/, PNGs
    "annotation": "the annotation files",  # annotation_<split>/annotation_<k>.json
})


class VideoPerceiver(ABC):
    """A video's frames -> its annotation (``object_property``, ``motion_trajectory``, ``collision``).

    Attributes:
        name: Registry name (``--perception NAME``).
        reads: Which of a video's files :meth:`__call__` is given, one of :data:`VIDEO_INPUTS`:
            ``"frames"`` (its folder of PNG frames) or ``"annotation"`` (its annotation file).
    """

    name: ClassVar[str] = "video-perceiver"
    reads: ClassVar[str] = "frames"

    @abstractmethod
    def __call__(self, frames_dir: PathLike) -> VideoAnnotation:
        """Perceive the video whose PNG frames (``0000.png``, ...) are in ``frames_dir``.

        A perceiver whose :attr:`reads` is ``"annotation"`` is given the video's annotation file instead.
        """

    @classmethod
    @abstractmethod
    def load(cls, checkpoint: PathLike | None = None) -> VideoPerceiver:
        """The perceiver with the weights in ``checkpoint`` (None: the shipped ones, if it has any)."""


VIDEO_PERCEIVERS: Registry[type[VideoPerceiver]] = Registry("video perceiver", modules=("perception.video.perceiver",))


def register_video_perceiver(cls: type[VideoPerceiver], *, help: str | None = None) -> type[VideoPerceiver]:
    """Register video perceiver class ``cls`` under ``cls.name`` (once, after the class).

    Raises:
        ConfigError: not a VideoPerceiver, no name of its own, a taken name, or a
            :attr:`~VideoPerceiver.reads` outside :data:`VIDEO_INPUTS`.
    """
    reads = getattr(cls, "reads", None)
    if isinstance(cls, type) and reads not in VIDEO_INPUTS:
        raise ConfigError(f"video perceiver {getattr(cls, 'name', cls)!r}: reads must be one of "
                          f"{', '.join(VIDEO_INPUTS)}, got {reads!r}")
    return VIDEO_PERCEIVERS.register_class(cls, VideoPerceiver, help=help)


def load_video_perceiver(name: str, checkpoint: PathLike | None = None) -> VideoPerceiver:
    """Video perceiver ``name`` with the weights in ``checkpoint`` (None: the shipped ones).

    Raises:
        ConfigError: unknown name (names the choices).
        CheckpointError: a checkpoint that does not fit.
    """
    return VIDEO_PERCEIVERS.get(name).load(checkpoint)


def perceive_video(frames_dir: PathLike, perceiver: str = "model") -> VideoAnnotation:
    """The annotation of the video in ``frames_dir`` by registered perceiver ``perceiver``."""
    return load_video_perceiver(perceiver)(frames_dir)
