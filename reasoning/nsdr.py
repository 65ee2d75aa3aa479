"""NS-DR's three swappable parts: where a video's annotation, its dynamics and its programs come from.

NS-DR (Yi, Gan et al., "CLEVRER", ICLR 2020) answers a question about a video
by chaining video perception (an annotation in the official format), a dynamics
model (futures and counterfactuals), a question parser (programs) and the
symbolic executor (:mod:`reasoning.executor.video`). Each part is chosen by
name from a registry, so ``nesy eval clevrer --perception --dynamics --parser``
lists the registered choices and a new model joins with one registration in
its own module (added to the registry's ``modules``):

* :data:`VIDEO_PERCEPTION`: the video perceivers of :mod:`perception.video`
  (``gt``, ``model``); :func:`perception_for` makes ``perceive(video) -> VideoAnnotation``;
* :data:`VIDEO_DYNAMICS`: the providers of :mod:`physics.video_dynamics` (``gt``,
  ``propnet``); :func:`dynamics_for` makes ``provider(video, annotation) -> VideoDynamics``;
* :data:`VIDEO_PARSERS`: ``name -> factory(checkpoint) -> parse(question record) -> ParsedQuestion``

where ``video`` is a :class:`VideoFiles` (the paths ``nesy data clevrer`` writes)
and a question record is one entry of the official question JSON. The ``gt``
entries read the ground truth: the annotation file, the truth file
(:class:`~physics.video_dynamics.GroundTruthDynamics`), and the programs
stored with the questions.

>>> "gt" in VIDEO_PARSERS and "gt" in VIDEO_DYNAMICS
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perception.video import VIDEO_PERCEIVERS as VIDEO_PERCEPTION
from perception.video import load_video_perceiver
from perception.video.registry import VIDEO_INPUTS
from physics.errors import ConfigError, DataError
from physics.io import ensure_dir
from physics.registry import Registry
from physics.video_dynamics import VIDEO_DYNAMICS, GroundTruthDynamics, VideoDynamics
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    VideoAnnotation,
    read_annotation,
    split_hint,
)
from physics.worlds.clevrer_truth import Counterfactual, read_truth

__all__ = [
    "VideoFiles",
    "ParsedQuestion",
    "VIDEO_PERCEPTION",
    "VIDEO_DYNAMICS",
    "VIDEO_PARSERS",
    "Perceive",
    "DynamicsFor",
    "Parse",
    "PIXEL_ROLLOUT_SETTINGS",
    "SCENE_SETTINGS",
    "rollout_settings_for",
    "check_split_folder",
    "perceiver_reads",
]

# What NS-DR's executor does where ``unique`` meets an odd set (``VideoScene`` settings; the
# official executor's ``none`` everywhere is ``VideoScene``'s own default): the object in view
# longest among several, a named pair's collision the video lacks presumed out of view, the
# earliest of a pair's collisions perceived several times: the perceiver's misses each one answers
# (docs/results/clevrer.md, fifteenth session's noanswer, seventeenth session's nsdr2 and nsdr5).
# With true annotations none of them fires.
SCENE_SETTINGS: Mapping[str, str] = {
    "unique_fallback": "most_seen", "missing_collision": "out_of_view", "repeated_collision": "first",
}

# A learned dynamics provider's settings (by provider name) where the annotation comes from a pixel
# perceiver, unless given otherwise; each answered more questions by a committed rule on development and
# held-out pools (figures: docs/results/clevrer.md, the section named with each).  True annotations
# (perception ``gt``) date collisions as the world does and get none of them.
# ``edge_frames`` 2: a perceiver dates collisions a frame or two early, so one still in contact at the end of the
# video may be a future one (seventeenth session, nsdr).
# ``contact_carry`` 3 with ``carry_scope`` "future": a touch the future rollout itself makes is answered by momentum
# exchange for 3 frames, counterfactual rollouts untouched (seventeenth session, nsdr4).
# ``start_velocity_fit`` 12: the future rollout's start shaped by a parabola fitted since each moving
# object's last perceived collision (twenty-second session, nsdrv).
# ``counterfactual_velocity_fit`` 12: the same fit at each object's first predicted frame of a counterfactual
# (twenty-seventh session, nsdr8).
# ``future_reach`` 0.15: a pair the future rollout brings within 0.15 scene units counts as a collision, beside the
# plain contact rule (twenty-eighth session, nsdr11).
PIXEL_ROLLOUT_SETTINGS: Mapping[str, Mapping[str, Any]] = {
    "propnet": {"edge_frames": 2, "contact_carry": 3, "carry_scope": "future", "start_velocity_fit": 12,
                "counterfactual_velocity_fit": 12, "future_reach": 0.15}}


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

    def input(self, reads: str) -> Path | None:
        """The path of what a perceiver that reads ``reads`` (``"frames"`` or ``"annotation"``) is given."""
        return {"frames": self.frames, "annotation": self.annotation}[reads]


@dataclass(frozen=True)
class ParsedQuestion:
    """A question's program tokens and, for a multiple-choice question, each option's (CLEVRER postfix)."""

    program: tuple[str, ...]
    choices: tuple[tuple[str, ...], ...] = ()


Perceive = Callable[[VideoFiles], VideoAnnotation]
DynamicsFor = Callable[[VideoFiles, VideoAnnotation], VideoDynamics]
Parse = Callable[[Mapping[str, Any]], ParsedQuestion]

VIDEO_PARSERS: Registry[Callable[[str | None], Parse]] = Registry("video question parser")


def perception_for(name: str, checkpoint: str | None = None, settings: Sequence[str] = (),
                   cache: str | None = None) -> Perceive:
    """``video -> VideoAnnotation`` by video perceiver ``name`` of :data:`VIDEO_PERCEPTION`.

    The perceiver is given the video file its ``reads`` names (:func:`perceiver_reads`):
    ``gt`` its annotation file, any other its frames.  ``settings`` (``KEY=VALUE``,
    :func:`perception.video.annotate.perception_config`) and ``cache`` (a folder of
    per-frame detections) apply to the pixel perceiver ``model``.

    Raises:
        ConfigError: settings or a cache for a perceiver that takes none, or a bad setting.
    """
    reads = perceiver_reads(name)
    if name == "gt":
        _no_checkpoint("perception", checkpoint)
        if settings or cache:
            raise ConfigError("--perception gt reads annotation files: it takes no perception settings or cache")
    perceiver = load_video_perceiver(name, checkpoint)
    if settings or cache:
        # imported here: the pixel perceiver's modules read torch, which `nesy answer` etc. never need
        from perception.video.annotate import perception_config
        from perception.video.perceiver import PixelVideoPerceiver

        if not isinstance(perceiver, PixelVideoPerceiver):
            raise ConfigError(f"video perceiver {name!r} takes no perception settings or cache")
        perceiver.config = perception_config(settings, perceiver.config)
        perceiver.cache = None if cache is None else ensure_dir(cache, "perception cache folder")

    def perceive(video: VideoFiles) -> VideoAnnotation:
        path = video.input(reads)
        if path is None:
            raise DataError(f"video {video.index}: no {reads} next to {video.annotation}; --perception {name} "
                            f"reads {VIDEO_INPUTS[reads]}")
        return perceiver(path)

    return perceive


def perceiver_reads(name: str) -> str:
    """Which of a video's files video perceiver ``name`` reads: a key of :data:`VIDEO_INPUTS`.

    >>> perceiver_reads("gt"), perceiver_reads("model")
    ('annotation', 'frames')

    Raises:
        ConfigError: an unknown perceiver (naming the choices).
    """
    return VIDEO_PERCEPTION.get(name).reads


def check_split_folder(perception: str, folder: str | Path, split: str) -> None:
    """Refuse a split whose folder perceiver ``perception`` reads is not there, before any video.

    The folder is ``<reads>_<split>``, with ``reads`` the perceiver's (:func:`perceiver_reads`).
    A single missing video is counted wrong where it comes; a missing folder would count every one wrong.

    Raises:
        DataError: the folder is missing (one line naming it, and the splits the folder does hold).
    """
    reads = perceiver_reads(perception)
    path = Path(folder) / f"{reads}_{split}"
    if not path.is_dir():
        raise DataError(f"CLEVRER {reads} folder not found: {path} (--perception {perception} reads "
                        f"{VIDEO_INPUTS[reads]}){split_hint(folder, split)}")


def rollout_settings_for(perception: str, dynamics: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings for dynamics provider ``dynamics`` fed by perceiver ``perception``: ``given`` over the defaults.

    The defaults are :data:`PIXEL_ROLLOUT_SETTINGS` of the provider for any perceiver but
    ``gt`` (which reads the true annotation), else none.

    >>> rollout_settings_for("model", "propnet"), rollout_settings_for("gt", "propnet")
    ({'edge_frames': 2, 'contact_carry': 3, 'carry_scope': 'future', 'start_velocity_fit': 12, 'counterfactual_velocity_fit': 12, 'future_reach': 0.15}, {})
    >>> rollout_settings_for("model", "propnet", {"edge_frames": 0, "contact_carry": 0, "start_velocity_fit": 0})
    {'edge_frames': 0, 'contact_carry': 0, 'carry_scope': 'future', 'start_velocity_fit': 0, 'counterfactual_velocity_fit': 12, 'future_reach': 0.15}
    """
    base = dict(PIXEL_ROLLOUT_SETTINGS.get(dynamics, {})) if perception != "gt" else {}
    return {**base, **dict(given or {})}


def dynamics_for(name: str, checkpoint: str | None = None, settings: Mapping[str, Any] | None = None) -> DynamicsFor:
    """``(video, annotation) -> VideoDynamics`` by provider ``name`` of :data:`VIDEO_DYNAMICS`.

    ``settings``: the provider's own options by name (see
    :func:`~physics.video_dynamics.make_video_dynamics`), and ``checkpoint``, are checked
    here by building the provider once without a truth record (``gt`` refuses any), so a
    bad one stops the run before its first video, not at every video.

    The provider gets the video's truth record when there is one (``gt`` answers
    from it).  When the annotation is a perceived one, its object ids are the
    perceiver's, not the world's: a provider answering from the truth is then
    renumbered through the objects' attributes (CLEVRER never shows two alike),
    so that ``--perception model --dynamics gt`` isolates the perception errors.
    """
    builder = VIDEO_DYNAMICS.get(name)
    shared: list[VideoDynamics] = []  # a learned provider is loaded once and serves every video
    extra = (dict(settings),) if settings else ()
    if settings or checkpoint is not None:
        # settings a provider refuses, or a checkpoint it cannot read, fail here, once, not at every video
        builder(None, checkpoint, *extra)

    def provider(video: VideoFiles, annotation: VideoAnnotation) -> VideoDynamics:
        truth = read_truth(video.truth) if video.truth is not None else None
        if truth is None:
            if not shared:
                shared.append(builder(None, checkpoint, *extra))
            return shared[0]
        dynamics = builder(truth, checkpoint, *extra)
        if not isinstance(dynamics, GroundTruthDynamics):
            return dynamics  # a model predicts from the annotation it is given, in its ids
        true_annotation = read_annotation(video.annotation)
        ids = _id_map(true_annotation, annotation)
        return dynamics if ids is None else _Renumbered(dynamics, true_annotation, ids)

    return provider


def _id_map(true: VideoAnnotation, perceived: VideoAnnotation) -> dict[int, int] | None:
    """True object id -> perceived id by attributes; None when the ids already agree."""
    key = {(p.color, p.material, p.shape): p.object_id for p in perceived.object_property}
    mapping = {p.object_id: key.get((p.color, p.material, p.shape)) for p in true.object_property}
    if all(t == q for t, q in mapping.items()) and len(key) == len(mapping):
        return None
    unseen = iter(range(max([*key.values(), *mapping.keys(), -1]) + 1, 10**6))
    return {t: (q if q is not None else next(unseen)) for t, q in mapping.items()}


class _Renumbered:
    """A provider in the world's ids seen through a perceiver's ids (objects it missed get fresh ids)."""

    def __init__(self, inner: VideoDynamics, true_annotation: VideoAnnotation, ids: dict[int, int]) -> None:
        self.inner, self.true_annotation, self.ids = inner, true_annotation, ids
        self.back = {q: t for t, q in ids.items()}

    def _states(self, frames: tuple[FrameStates, ...]) -> tuple[FrameStates, ...]:
        return tuple(replace(f, objects=tuple(replace(o, object_id=self.ids[o.object_id]) for o in f.objects))
                     for f in frames)

    def _collisions(self, collisions: tuple[Collision, ...]) -> tuple[Collision, ...]:
        return tuple(replace(c, object_ids=tuple(sorted(self.ids[i] for i in c.object_ids))) for c in collisions)

    def future(self, annotation: VideoAnnotation, frames: int) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        states, collisions = self.inner.future(self.true_annotation, frames)
        return self._states(states), self._collisions(collisions)

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        if removed_object_id not in self.back:
            raise DataError(f"object {removed_object_id} of the perceived video matches no object of the world")
        cf = self.inner.counterfactual(self.true_annotation, self.back[removed_object_id])
        return Counterfactual(
            removed_object_id, self._states(cf.trajectory), self._collisions(cf.collisions),
            tuple(replace(e, objects=tuple(sorted(self.ids[i] for i in e.objects))) for e in cf.events),
        )


def _no_checkpoint(name: str, checkpoint: str | None) -> None:
    if checkpoint is not None:
        raise ConfigError(f"the ground-truth {name} takes no checkpoint, got {checkpoint!r}")


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


VIDEO_PARSERS.register("gt", _gt_parser, help="the programs stored with the questions")


def _model_parser(checkpoint: str | None) -> Parse:
    # torch loads only when a model parser is asked for
    from reasoning.parser.video import video_parser

    return video_parser(checkpoint)


def _template_parser(checkpoint: str | None) -> Parse:
    _no_checkpoint("parser", checkpoint)
    from reasoning.dsl.clevrer_format import to_clevrer_tokens
    from reasoning.parser.sound_questions import parse_sound_question

    def parse(question: Mapping[str, Any]) -> ParsedQuestion:
        if question.get("choices"):
            raise ConfigError("the templates parser reads questions about sound, which have no options")
        return ParsedQuestion(tuple(to_clevrer_tokens(parse_sound_question(str(question.get("question", ""))))))

    return parse


VIDEO_PARSERS.register("templates", _template_parser,
                       help="question templates for questions about sound (audio-visual clips; "
                       "reasoning.parser.sound_questions)")
VIDEO_PARSERS.register("model", _model_parser,
                       help="the NS-VQA parser trained on CLEVRER questions (nesy train video-parser; "
                       "the shipped checkpoint unless one is given)")
