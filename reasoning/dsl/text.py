"""The readable text form of programs: ``count(filter_color(scene(), red))``.

The grammar is data, in ``program.lark`` beside this module (the approach of
lark's ``examples/advanced/create_ast.py``): an LALR(1) parser, built once and
cached, turns text straight into the frozen :class:`~reasoning.dsl.program.Call`
AST through an inline :class:`lark.Transformer` whose methods are named after
the grammar's rules. Every lark error becomes a one-line
:class:`~reasoning.errors.ProgramError` naming the line, the column, what the
parser expected there, and the text around that place.

Canonical text writes child calls first, then side inputs, separated by ``", "``;
an empty side input is ``_`` and a side input that is not a bare word, integer
or template parameter is a JSON string. ``to_text(parse_program(t)) == t`` for
canonical ``t`` and ``parse_program(to_text(p)) == p`` for every program ``p``
whose function names are words.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import NamedTuple

from lark import Lark, Token, Transformer
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from reasoning.dsl.program import Call, Program
from reasoning.errors import ProgramError

__all__ = [
    "MAX_DEPTH",
    "parse_program",
    "to_text",
    "format_value",
    "format_token",
    "parse_token",
]

# Deepest program accepted by the parsers. Calls are nested frozen dataclasses,
# so equality, hashing and ``Call.walk`` recurse once per level; CLEVR and
# CLEVRER programs are at most about 30 levels deep, and 200 keeps every
# recursive operation far below Python's default recursion limit (1000).
MAX_DEPTH = 200

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BARE_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_]*|-?[0-9]+|<[A-Za-z][A-Za-z0-9_]*>")
_SIMPLE_TOKEN = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\[([A-Za-z0-9_<>,\-]+)\]")

# How terminals of program.lark read in error messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "PLACEHOLDER": "a template parameter like <C>",
    "EMPTY": "'_'",
    "STRING": "a quoted string",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "LSQB": "'['",
    "RSQB": "']'",
    "$END": "the end of the text",
}


class _Node(NamedTuple):
    """A call under construction with the depth of its subtree (1 for a leaf)."""

    call: Call
    depth: int


class _Builder(Transformer):
    """Turns parse-tree nodes into :class:`Call` objects, one method per grammar rule.

    Used inline by the LALR parser (callbacks fire as rules are reduced), so no
    intermediate tree is built and nothing recurses on deep input.
    """

    # --- programs
    def start(self, children: list) -> Program:
        return Program(children[0].call)

    def _make(self, name: Token, args: list[_Node], values: list[str]) -> _Node:
        depth = 1 + max((a.depth for a in args), default=0)
        if depth > MAX_DEPTH:
            raise ProgramError(
                f"line {name.line}, column {name.column}: program is nested more than "
                f"{MAX_DEPTH} calls deep at {str(name)!r}; at most {MAX_DEPTH} levels are allowed"
            )
        return _Node(Call(str(name), tuple(a.call for a in args), tuple(values)), depth)

    def call_empty(self, children: list) -> _Node:
        return self._make(children[0], [], [])

    def call_args(self, children: list) -> _Node:
        return self._make(children[0], children[1], [])

    def call_values(self, children: list) -> _Node:
        return self._make(children[0], [], children[1])

    def call_args_values(self, children: list) -> _Node:
        return self._make(children[0], children[1], children[2])

    def calls(self, children: list) -> list[_Node]:
        if len(children) == 1:
            return [children[0]]
        children[0].append(children[1])
        return children[0]

    def values(self, children: list) -> list[str]:
        if len(children) == 1:
            return [children[0]]
        children[0].append(children[1])
        return children[0]

    # --- side inputs
    def word(self, children: list) -> str:
        return str(children[0])

    integer = word
    placeholder = word

    def empty(self, children: list) -> str:
        return ""

    def string(self, children: list) -> str:
        tok = children[0]
        try:
            value = json.loads(str(tok))
        except ValueError as exc:
            raise ProgramError(
                f"line {tok.line}, column {tok.column}: bad string {str(tok)!r}: {exc}; "
                f'strings use JSON escapes (\\", \\\\, \\n, \\u followed by 4 hex digits)'
            ) from None
        return value

    # --- NS-VQA tokens
    def token_bare(self, children: list) -> tuple[str, tuple[str, ...]]:
        return str(children[0]), ()

    def token_values(self, children: list) -> tuple[str, tuple[str, ...]]:
        return str(children[0]), tuple(children[1])


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser for ``program.lark``, built on first use and cached."""
    return Lark.open(
        "program.lark",
        rel_to=__file__,
        parser="lalr",
        start=["start", "token"],
        transformer=_Builder(),
        propagate_positions=False,
    )


def _describe_expected(names: set[str] | frozenset[str] | None) -> str:
    words = sorted({_TERMINAL_WORDS.get(n, n) for n in names or ()})
    if not words:
        return "nothing more"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(exc: LarkError, text: str, where: str) -> ProgramError:
    """Turn any lark exception into a ProgramError naming line, column and expectation."""
    if isinstance(exc, UnexpectedEOF):
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        what = "the text ends too early"
        expected = _describe_expected(set(exc.expected))
    elif isinstance(exc, UnexpectedCharacters):
        line, column = exc.line, exc.column
        what = f"unexpected character {exc.char!r}"
        expected = _describe_expected(exc.allowed)
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
            what = "the text ends too early" if text.strip() else "the text is empty"
        else:
            line, column = exc.line, exc.column
            what = f"unexpected {str(tok)!r}"
        # ``accepts`` runs the pending reductions first, so it is exact where
        # ``expected`` (the raw LALR state) may list too much.
        accepts = getattr(exc, "accepts", None) or exc.expected
        expected = _describe_expected(accepts)
        if tok.type == "LPAR" and "RPAR" in accepts:  # a call after a side input
            expected += " (side inputs such as `red` come after all child calls)"
    elif isinstance(exc, UnexpectedInput):  # any other positioned lark error
        line, column = getattr(exc, "line", "?"), getattr(exc, "column", "?")
        what, expected = str(exc).strip().splitlines()[0], "valid program text"
    else:
        return ProgramError(f"{where}: cannot parse program text: {' '.join(str(exc).split())}")
    return ProgramError(f"{where}, line {line}, column {column}: {what}; expected {expected}{_near(text, line, column)}")


EXCERPT = 12  # characters of the program shown on each side of a syntax error


def _near(text: str, line: object, column: object) -> str:
    """`` (at ...)``: the text around a position, on one line, with ``^`` marking the position."""
    if not isinstance(line, int) or not isinstance(column, int) or line < 1:
        return ""
    lines = text.splitlines() or [""]
    if line > len(lines):
        return ""
    row = lines[line - 1]
    k = min(max(column - 1, 0), len(row))
    before, after = row[max(0, k - EXCERPT) : k], row[k : k + EXCERPT]
    if not (before + after).strip():
        return ""
    lead = "..." if k > EXCERPT else ""
    tail = "..." if k + EXCERPT < len(row) else ""
    return f" (at {lead}{before}^{after}{tail})"


def parse_program(text: str, *, where: str = "program") -> Program:
    """Parse the text form of a program.

    Args:
        text: E.g. ``"count(filter_color(scene(), red))"``; whitespace and
            newlines are free.
        where: How to name the source in error messages (a file name, a
            question id).

    Returns:
        The program. Its functions are not checked against a catalogue here;
        use :meth:`Catalogue.check`.

    Raises:
        ProgramError: Bad syntax (the message names line, column and what was
            expected) or nesting deeper than :data:`MAX_DEPTH`.

    >>> parse_program("count(filter_color(scene(), red))").root.function
    'count'
    """
    if not isinstance(text, str):
        raise ProgramError(f"{where}: program text must be a string, got {type(text).__name__}")
    try:
        return _parser().parse(text, start="start")
    except ProgramError as exc:
        raise ProgramError(f"{where}, {exc}") from None
    except LarkError as exc:
        raise _syntax_error(exc, text, where) from None


def format_value(value: str) -> str:
    """A side input as written in text and tokens: bare, ``_`` if empty, else a JSON string."""
    if value == "":
        return "_"
    if _BARE_VALUE.fullmatch(value):
        return value
    return json.dumps(value)


def _check_name(call: Call, index: int | str) -> None:
    if not isinstance(call.function, str) or not _NAME.fullmatch(call.function):
        raise ProgramError(
            f"node {index}: function name {call.function!r} cannot be written as text; "
            "names start with a letter and hold letters, digits and '_'"
        )
    for v in call.values:
        if not isinstance(v, str):
            raise ProgramError(
                f"node {index} ({call.function}): side input {v!r} must be a string, "
                f"got {type(v).__name__}"
            )


def format_token(call: Call) -> str:
    """One node as an NS-VQA token: ``filter_color[red]``, ``filter[large,_,_,cube]``, ``scene``."""
    _check_name(call, call.function)
    if not call.values:
        return call.function
    return f"{call.function}[{','.join(format_value(v) for v in call.values)}]"


def parse_token(token: str, *, where: str = "token") -> tuple[str, tuple[str, ...]]:
    """Split an NS-VQA token into its function name and side inputs.

    Raises:
        ProgramError: The token is not ``name`` or ``name[v1,v2,...]``.
    """
    if not isinstance(token, str):
        raise ProgramError(f"{where}: a token must be a string, got {type(token).__name__}")
    # Fast path for the common plain tokens; anything unusual goes to the grammar.
    if _NAME.fullmatch(token):
        return token, ()
    m = _SIMPLE_TOKEN.fullmatch(token)
    if m:
        pieces = m.group(2).split(",")
        if all(p == "_" or _BARE_VALUE.fullmatch(p) for p in pieces):
            return m.group(1), tuple("" if p == "_" else p for p in pieces)
    try:
        return _parser().parse(token, start="token")
    except ProgramError as exc:
        raise ProgramError(f"{where}, {exc}") from None
    except LarkError as exc:
        raise _syntax_error(exc, token, where) from None


def to_text(program: Program | Call) -> str:
    """The canonical text of a program.

    Args:
        program: A program or a bare root call.

    Returns:
        E.g. ``"equal_integer(count(scene()), count(filter_color(scene(), red)))"``.

    Raises:
        ProgramError: A function name is not a word, or a side input is not a string.
    """
    root = program.root if isinstance(program, Program) else program
    parts: list[str] = []
    index = 0

    def emit(call: Call) -> None:
        nonlocal index
        parts.append(call.function)
        parts.append("(")
        for i, a in enumerate(call.args):
            if i:
                parts.append(", ")
            emit(a)
        _check_name(call, index)
        index += 1
        for i, v in enumerate(call.values):
            if i or call.args:
                parts.append(", ")
            parts.append(format_value(v))
        parts.append(")")

    emit(root)
    return "".join(parts)
