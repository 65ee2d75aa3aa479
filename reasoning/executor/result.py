"""What an execution returns: the answer, validity, and a step-by-step trace.

Answers are normalised as in the official CLEVR v1.0 release: booleans are
``"yes"``/``"no"``, integers are decimal strings (``"3"``) and attribute values
are words (``"red"``).  Trace outputs are rendered for people: object sets as
sorted lists of object indices, objects as their index, values as words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from physics.errors import DataError
from reasoning.dsl.program import Call
from reasoning.executor.ops import BOOL, INTEGER, OBJECT, OBJECT_SET

__all__ = ["ExecutionResult", "TraceStep", "format_answer", "given_answer", "render_value"]


def format_answer(value: object, type_name: str) -> str:
    """An answer in CLEVR's normalised form (``True`` -> ``"yes"``, ``3`` -> ``"3"``)."""
    if type_name == BOOL:
        return "yes" if value else "no"
    return str(value)


def given_answer(value: object, where: str) -> str:
    """A questions file's answer in CLEVR's normalised form, as the executors' answers are compared with it.

    A word or digits (spaces and case dropped: ``" Yes"`` -> ``"yes"``), a count (``2`` -> ``"2"``) or a
    boolean (``True`` -> ``"yes"``).

    Raises:
        DataError: any other value (NaN, a list, null), led by ``where`` (when not empty): it would be
            read as a word (``"nan"``) no answer ever equals.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip().lower()
    raise DataError(f"{where}: " * bool(where) + f"'answer' must be a string, a count or true/false, got {value!r}")


def render_value(value: object, type_name: str) -> int | str | list[int]:
    """A node output for people: sets as sorted index lists, objects as index, values as words."""
    if type_name == OBJECT_SET:
        assert isinstance(value, int)
        return [i for i in range(value.bit_length()) if value >> i & 1]
    if type_name in (OBJECT, INTEGER):
        return int(value)  # type: ignore[call-overload]
    return format_answer(value, type_name)


class TraceStep(NamedTuple):
    """One executed node (an immutable record; a NamedTuple because traces are built per node).

    Attributes:
        index: Position of the node in its CLEVR node list (post-order for a
            tree; a DAG read from the official format keeps its own list).
        call: The node.
        type: Its output type (``"ObjectSet"``, ``"Integer"``, ``"Color"``, ...).
        output: The output rendered for people (see :func:`render_value`).
    """

    index: int
    call: Call
    type: str
    output: int | str | list[int]

    def to_json(self) -> dict:
        """A JSON-serialisable dict of this step."""
        return {
            "index": self.index,
            "function": self.call.function,
            "values": list(self.call.values),
            "type": self.type,
            "output": self.output,
        }


@dataclass(slots=True)
class ExecutionResult:
    """The outcome of running one program on one scene.

    A plain slotted record (not frozen: a frozen dataclass costs microseconds to
    build, which the one-question-at-a-time executor pays per question).

    Attributes:
        answer: The normalised answer, or ``None`` when the execution is invalid.
        valid: False when CLEVR semantics make the question invalid on this scene
            (``unique`` of a set that is not a single object) or the program does
            not end in an answer type.
        reason: Why the execution is invalid (names the node and the set size);
            ``None`` when valid.
        trace: The executed nodes in node-list order (empty when tracing is off;
            up to but not including the failing node when invalid).
    """

    answer: str | None
    valid: bool
    reason: str | None = None
    trace: list[TraceStep] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-serialisable dict of this result."""
        return {
            "answer": self.answer,
            "valid": self.valid,
            "reason": self.reason,
            "trace": [s.to_json() for s in self.trace],
        }
