"""NS-DR's three swappable parts: where a video's annotation, its dynamics and its programs come from.

NS-DR (Yi, Gan et al., "CLEVRER", ICLR 2020) answers a question about a video
by chaining video perception (an annotation in the official format), a dynamics
model (futures and counterfactuals), a question parser (programs) and the
symbolic executor (:mod:`reasoning.executor.video`). Each part is chosen by
name from a registry, so ``nesy eval clevrer --perception --dynamics --parser``
lists the registered choices and a new model joins with one registration in
its own module (added to the registry's ``modules``):

* :data:`VIDEO_PERCEPTION`: ``name -> factory(checkpoint) -> perceive(video) -> VideoAnnotation``
* :data:`VIDEO_DYNAMICS`: ``name -> factory(checkpoint) -> dynamics_for(video, annotation) -> VideoDynamics``
* :data:`VIDEO_PARSERS`: ``name -> factory(checkpoint) -> parse(question record) -> ParsedQuestion``

where ``video`` is a :class:`VideoFiles` (the paths ``nesy data clevrer`` writes)
and a question record is one entry of the official question JSON. The ``gt``
entries read the ground truth: the annotation file, the truth file
(:class:`~reasoning.executor.truth_dynamics.TruthDynamics`), and the programs
stored with the questions.

>>> "gt" in VIDEO_PARSERS and "gt" in VIDEO_DYNAMICS
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physics.errors import ConfigError, DataError
from physics.registry import Registry
from physics.worlds.clevrer_annotation import VideoAnnotation, read_annotation
from physics.worlds.clevrer_truth import read_truth
from reasoning.executor.truth_dynamics import TruthDynamics, VideoDynamics

__all__ = [
    "VideoFiles",
    "ParsedQuestion",
    "VIDEO_PERCEPTION",
    "VIDEO_DYNAMICS",
    "VIDEO_PARSERS",
    "Perceive",
    "DynamicsFor",
    "Parse",
]


@dataclass(frozen=True)
class VideoFiles:
    """Where one video's files are (``nesy data clevrer``'s layout; None: not there).

    Attributes:
        index: The video's index (``scene_index``).
        annotation: The official annotation file.
        truth: The truth file (events, future, counterfactuals).
        frames: The folder of its PNG frames.
        masks: The folder of its mask PNGs.
    """

    index: int
    annotation: Path
    truth: Path | None = None
    frames: Path | None = None
    masks: Path | None = None

    @classmethod
    def in_folder(cls, folder: str | Path, split: str, index: int) -> VideoFiles:
        """Video ``index`` of ``split`` in a folder written by ``nesy data clevrer``."""
        root = Path(folder)

        def there(path: Path) -> Path | None:
            return path if path.exists() else None

        return cls(
            index=index,
            annotation=root / f"annotation_{split}" / f"annotation_{index:05d}.json",
            truth=there(root / f"truth_{split}" / f"truth_{index:05d}.json"),
            frames=there(root / f"frames_{split}" / f"video_{index:05d}"),
            masks=there(root / f"masks_{split}" / f"video_{index:05d}"),
        )


@dataclass(frozen=True)
class ParsedQuestion:
    """A question's program tokens and, for a multiple-choice question, each option's (CLEVRER postfix)."""

    program: tuple[str, ...]
    choices: tuple[tuple[str, ...], ...] = ()


Perceive = Callable[[VideoFiles], VideoAnnotation]
DynamicsFor = Callable[[VideoFiles, VideoAnnotation], VideoDynamics]
Parse = Callable[[Mapping[str, Any]], ParsedQuestion]

VIDEO_PERCEPTION: Registry[Callable[[str | None], Perceive]] = Registry("video perception")
VIDEO_DYNAMICS: Registry[Callable[[str | None], DynamicsFor]] = Registry("video dynamics")
VIDEO_PARSERS: Registry[Callable[[str | None], Parse]] = Registry("video question parser")


def _no_checkpoint(name: str, checkpoint: str | None) -> None:
    if checkpoint is not None:
        raise ConfigError(f"the ground-truth {name} takes no checkpoint, got {checkpoint!r}")


def _gt_perception(checkpoint: str | None) -> Perceive:
    _no_checkpoint("perception", checkpoint)
    return lambda video: read_annotation(video.annotation)


def _gt_dynamics(checkpoint: str | None) -> DynamicsFor:
    _no_checkpoint("dynamics", checkpoint)

    def dynamics_for(video: VideoFiles, annotation: VideoAnnotation) -> VideoDynamics:
        if video.truth is None:
            raise DataError(f"video {video.index}: no truth file next to {video.annotation}; "
                            "--dynamics gt needs the truth_<split> folder nesy data clevrer writes")
        return TruthDynamics(read_truth(video.truth))

    return dynamics_for


def _tokens(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DataError(f"{where}: 'program' must be a list of tokens, got {value!r}")
    return tuple(value)


def _gt_parser(checkpoint: str | None) -> Parse:
    _no_checkpoint("parser", checkpoint)

    def parse(question: Mapping[str, Any]) -> ParsedQuestion:
        where = f"question {question.get('question_id', '?')}"
        choices = question.get("choices") or []
        return ParsedQuestion(
            _tokens(question.get("program"), where),
            tuple(_tokens(c.get("program"), f"{where}, choice {k}") for k, c in enumerate(choices)),
        )

    return parse


VIDEO_PERCEPTION.register("gt", _gt_perception, help="the annotation file (true objects, trajectories, collisions)")
VIDEO_DYNAMICS.register("gt", _gt_dynamics, help="the truth file: the world re-simulated (future, counterfactuals)")
VIDEO_PARSERS.register("gt", _gt_parser, help="the programs stored with the questions")


def _model_parser(checkpoint: str | None) -> Parse:
    # torch loads only when a model parser is asked for
    from reasoning.parser.video import video_parser

    return video_parser(checkpoint)


VIDEO_PARSERS.register("model", _model_parser,
                       help="the NS-VQA parser trained on CLEVRER questions (nesy train video-parser; "
                       "--parser-checkpoint, default the shipped one)")
