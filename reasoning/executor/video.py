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

from physics.worlds.clevrer_events import Event
from reasoning.dsl.clevrer_format import join_choice
from reasoning.dsl.program import Call, Program
from reasoning.dsl.typecheck import check_nodes, post_order
from reasoning.errors import ExecutionError
from reasoning.executor.ops import InvalidExecution
from reasoning.executor.result import ExecutionResult, TraceStep
from reasoning.executor.video_ops import VIDEO_CATALOGUE, VIDEO_OPS
from reasoning.executor.video_scene import VideoScene, describe_event

__all__ = ["execute_video", "judge_choice", "render_video_value", "CHOICE_ANSWERS"]

_ANSWER_TYPES = frozenset(
    VIDEO_CATALOGUE.signature(n).output for n in VIDEO_CATALOGUE.names if VIDEO_CATALOGUE.signature(n).terminal
)
CHOICE_ANSWERS = {"yes": "correct", "no": "wrong"}  # the judged program's answer -> the option's label


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
    nodes = post_order(root)
    out_type = check_nodes(nodes, VIDEO_OPS, _vocabulary)
    outs: dict[int, object] = {}
    steps: list[TraceStep] = []
    for index, call in enumerate(nodes):
        spec = VIDEO_OPS[call.function]
        try:
            value = spec.fn(scene, *[outs[id(a)] for a in call.args], *call.values)
        except InvalidExecution as exc:
            return ExecutionResult(None, False, f"node {index} ({call.function}): {exc}", steps)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ExecutionError(
                f"{scene.name}: node {index} ({call.function}) failed: {type(exc).__name__}: {exc}"
            ) from None
        outs[id(call)] = value
        if trace:
            steps.append(TraceStep(index, call, _type_of(value, spec.output), render_video_value(value)))  # type: ignore[arg-type]
    value = outs[id(root)]
    if out_type not in _ANSWER_TYPES or isinstance(value, (tuple, Event)) or value is None:
        reason = f"node {len(nodes) - 1} ({root.function}): the program ends in {out_type}, not an answer"
        return ExecutionResult(None, False, reason, steps)
    return ExecutionResult(str(render_video_value(value)), True, None, steps)


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
