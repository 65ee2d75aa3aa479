"""The symbolic CLEVRER executor: one program on one video, with a trace.

Programs are :class:`~reasoning.dsl.Program` trees checked against CLEVRER's
catalogue and run with the ``video symbolic`` operation table
(:mod:`reasoning.executor.video_ops`) over a
:class:`~reasoning.executor.video_scene.VideoScene`. Official token lists are
read with :func:`~reasoning.dsl.clevrer_format.from_clevrer_tokens`; a
multiple-choice option is judged as the official executor judges it
(:func:`judge_choice`: the choice's tokens, then the question's; ``yes`` means
the option is correct).
"""

from __future__ import annotations

from collections.abc import Sequence

from physics.errors import ConfigError, NesyError
from physics.worlds.clevrer_events import Event
from reasoning.dsl.clevrer_format import from_clevrer_tokens, join_choice
from reasoning.dsl.program import Call, Program
from reasoning.dsl.typecheck import check_nodes, post_order
from reasoning.errors import ExecutionError
from reasoning.executor.ops import InvalidExecution
from reasoning.executor.result import ExecutionResult, TraceStep
from reasoning.executor.video_ops import VIDEO_CATALOGUE, VIDEO_OPS
from reasoning.executor.video_scene import VideoScene, describe_event

__all__ = ["execute_video", "judge_choice", "judge_choices", "choice_objects", "one_correct", "render_video_value",
           "CHOICE_ANSWERS", "CHOICE_PICKS"]

_ANSWER_TYPES = frozenset(
    VIDEO_CATALOGUE.signature(n).output for n in VIDEO_CATALOGUE.names if VIDEO_CATALOGUE.signature(n).terminal
)
CHOICE_ANSWERS = {"yes": "correct", "no": "wrong"}  # the judged program's answer -> the option's label
# How the options of a two-option collision question are judged (judge_choices): "none" each alone (the
# official executor, the default everywhere); "closest" as one correct and one wrong option (how nesy data clevrer
# builds predictive questions; not checked for the official release), the pair the future rollout brings closest
# taken as the correct one where the verdicts do not tell.
CHOICE_PICKS = ("none", "closest")


def render_video_value(value: object) -> int | str | list:
    """A node output for people: events as ``collision(0, 2)@57``, sets as lists, ``null`` for no frame."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Event):
        return describe_event(value)
    if isinstance(value, tuple):
        return [render_video_value(v) for v in value]  # type: ignore[misc]
    if isinstance(value, int):
        return value
    return str(value)


def execute_video(program: Program | Call, scene: VideoScene, *, trace: bool = True) -> ExecutionResult:
    """Run a CLEVRER program on a video.

    Args:
        program: The program (or its root call), checked against CLEVRER's catalogue.
        scene: The video.
        trace: Record every node's output.

    Returns:
        The answer (``yes``/``no``, a number, a word) or, where the official
        executor answers ``'error'``, an invalid result naming the node and why.

    Raises:
        ProgramError: the program does not fit the catalogue (names the node).
        ExecutionError: an operation failed for another reason (a malformed video).
    """
    root = program.root if isinstance(program, Program) else program
    value, out_type, steps, reason = _evaluate(root, scene, trace)
    if reason is not None:
        return ExecutionResult(None, False, reason, steps)
    if out_type not in _ANSWER_TYPES or isinstance(value, (tuple, Event)) or value is None:
        reason = f"node {len(post_order(root)) - 1} ({root.function}): the program ends in {out_type}, not an answer"
        return ExecutionResult(None, False, reason, steps)
    return ExecutionResult(str(render_video_value(value)), True, None, steps)


def _evaluate(root: Call, scene: VideoScene, trace: bool) -> tuple[object, str, list[TraceStep], str | None]:
    """Run the nodes under ``root``: (its value, its declared type, the trace, why it has no value or None)."""
    nodes = post_order(root)
    out_type = check_nodes(nodes, VIDEO_OPS, _vocabulary)
    outs: dict[int, object] = {}
    steps: list[TraceStep] = []
    for index, call in enumerate(nodes):
        spec = VIDEO_OPS[call.function]
        try:
            value = spec.fn(scene, *[outs[id(a)] for a in call.args], *call.values)
        except InvalidExecution as exc:
            return None, out_type, steps, f"node {index} ({call.function}): {exc}"
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ExecutionError(
                f"{scene.name}: node {index} ({call.function}) failed: {type(exc).__name__}: {exc}"
            ) from None
        outs[id(call)] = value
        if trace:
            steps.append(TraceStep(index, call, _type_of(value, spec.output), render_video_value(value)))  # type: ignore[arg-type]
    return outs[id(root)], out_type, steps, None


def _type_of(value: object, declared: str) -> str:
    """The alternative of a union type (``Object|Event``) that ``value`` is, for the trace."""
    if "|" not in declared:
        return declared
    if isinstance(value, Event):
        return "Event"
    if isinstance(value, tuple):
        return "EventSet" if value and isinstance(value[0], Event) else "ObjectSet"
    return "Object"


def _vocabulary(type_name: str) -> tuple[str, ...] | None:
    """The words a side input of ``type_name`` may take (None: a computed type)."""
    return VIDEO_CATALOGUE.values(type_name) if type_name in VIDEO_CATALOGUE.vocabulary_types() else None


def judge_choice(
    choice: Sequence[str], question: Sequence[str], scene: VideoScene, *, trace: bool = False
) -> tuple[str | None, ExecutionResult]:
    """Judge one multiple-choice option as the official executor does.

    Args:
        choice: The option's program tokens.
        question: The question's program tokens.
        scene: The video.

    Returns:
        (``"correct"``, ``"wrong"`` or ``None`` when the program has no yes/no answer,
        the execution result).
    """
    result = execute_video(join_choice(choice, question), scene, trace=trace)
    return CHOICE_ANSWERS.get(result.answer or ""), result


def choice_objects(choice: Sequence[str], scene: VideoScene) -> tuple[int, ...] | None:
    """The objects of the event a multiple-choice option names (its program alone ends in an event).

    None where the option's program names no event in ``scene`` (an object not found, a
    program that is no event).
    """
    try:
        program = from_clevrer_tokens(list(choice), where="option program")
        value, _, _, reason = _evaluate(program.root, scene, trace=False)
    except NesyError:
        return None
    return value.objects if reason is None and isinstance(value, Event) else None


def one_correct(verdicts: Sequence[str | None], closest: Sequence[float | None]) -> list[str | None]:
    """Two options' verdicts read as one correct and one wrong option (``judge_choices``' ``"closest"``).

    Verdicts that already say one ``correct`` and one ``wrong`` stay.  An option without a
    verdict (None) next to one with a verdict takes the other label.  Otherwise (both
    ``wrong``, both ``correct``, or neither answered) the option with the smaller
    ``closest`` (its pair's closest approach in the future rollout, None: not there) is
    ``correct`` and the other ``wrong``; with no closeness for either, the verdicts stay.

    >>> one_correct(["wrong", "wrong"], [0.4, 0.1]), one_correct([None, "wrong"], [None, 0.0])
    (['wrong', 'correct'], ['correct', 'wrong'])
    >>> one_correct(["correct", "wrong"], [0.9, -0.1])
    ['correct', 'wrong']
    """
    if len(verdicts) != 2 or len(closest) != 2:
        raise ConfigError(f"one_correct reads two options, got {len(verdicts)} verdicts and {len(closest)} closenesses")
    v = list(verdicts)
    if sorted(v, key=str) == ["correct", "wrong"]:
        return v
    flip = {"correct": "wrong", "wrong": "correct"}
    if (v[0] is None) != (v[1] is None):
        k = 0 if v[0] is None else 1
        v[k] = flip[v[1 - k]]
        return v
    if closest[0] is None and closest[1] is None:
        return v
    far = float("inf")
    k = 0 if (closest[0] if closest[0] is not None else far) <= (closest[1] if closest[1] is not None else far) else 1
    return ["correct" if i == k else "wrong" for i in range(2)]


def judge_choices(choices: Sequence[Sequence[str]], question: Sequence[str], scene: VideoScene,
                  pick: str = "none") -> list[str | None]:
    """Judge every option of a multiple-choice question (:func:`judge_choice`), then by ``pick``.

    Args:
        choices: The options' program tokens.
        question: The question's program tokens.
        scene: The video.
        pick: ``"none"``: each option alone, as the official executor.  ``"closest"``: a
            question of two options that name collisions is read as one correct and one wrong
            option (how ``nesy data clevrer`` builds predictive questions; a format prior, not the
            official executor's judging): where the
            verdicts do not say so, :func:`one_correct` decides by each pair's closest approach in
            the future rollout (:meth:`VideoScene.future_closest`).  Other questions are judged
            as with ``"none"``.

    Returns:
        Each option's verdict (``"correct"``, ``"wrong"`` or None).

    Raises:
        ConfigError: ``pick`` not one of :data:`CHOICE_PICKS`.
    """
    if pick not in CHOICE_PICKS:
        raise ConfigError(f"pick must be one of {', '.join(CHOICE_PICKS)}, got {pick!r}")
    verdicts = [judge_choice(c, question, scene)[0] for c in choices]
    if pick == "none" or len(choices) != 2 or sorted(verdicts, key=str) == ["correct", "wrong"]:
        return verdicts
    pairs = [choice_objects(c, scene) for c in choices]
    if any(p is not None and len(p) != 2 for p in pairs):
        return verdicts  # an option that names no collision
    closest = [None if p is None else scene.future_closest(*p) for p in pairs]
    return one_correct(verdicts, closest)
