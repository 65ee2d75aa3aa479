"""CLEVRER's postfix program tokens: ``["objects", "red", "filter_color", "count"]``.

The official CLEVRER release (Yi, Gan et al., ICLR 2020) writes a program as a
token list read left to right on a stack: a token naming an operation pops that
operation's arguments and pushes its result; any other token (a colour,
``first``) is pushed as a literal argument. Unlike the NS-VQA tokens of
:mod:`reasoning.dsl.formats` (``filter_color[red]``), side inputs are tokens of
their own, placed before the operation that takes them. In every CLEVRER
operation the literal arguments come after the computed ones, which is the
order of a :class:`~reasoning.dsl.program.Call`'s ``args`` then ``values``, so
``to_clevrer_tokens(from_clevrer_tokens(t)) == t``.

The literal ``null`` ("no particular frame", the frame argument of
``filter_moving`` and friends) is the catalogue's zero-input function ``null``:
the same token, and a frame computed by ``query_frame`` can stand in its place.

A multiple-choice option is judged by running the choice's tokens followed by
the question's (:func:`join_choice`): the question's program then reads the
choice's value as the first input of its innermost operation.

>>> from reasoning.dsl import to_text
>>> p = from_clevrer_tokens(["objects", "red", "filter_color", "null", "filter_moving", "count"])
>>> to_text(p)
'count(filter_moving(filter_color(objects(), red), null()))'
>>> to_clevrer_tokens(p)
['objects', 'red', 'filter_color', 'null', 'filter_moving', 'count']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reasoning.dsl.catalogue import Catalogue
from reasoning.dsl.program import Call, Program
from reasoning.dsl.text import MAX_DEPTH
from reasoning.dsl.typecheck import unknown_function
from reasoning.errors import ProgramError

__all__ = ["from_clevrer_tokens", "to_clevrer_tokens", "join_choice", "CONTROL_TOKENS"]

# Tokens of the official executor's sequences that are not program content:
# <START> is skipped, <END> and <NULL> (padding) stop the program.
CONTROL_TOKENS = ("<START>", "<END>", "<NULL>")


def from_clevrer_tokens(
    tokens: Sequence[str], catalogue: Catalogue | None = None, *, where: str = "program"
) -> Program:
    """Decode CLEVRER postfix tokens with the arities of ``catalogue`` (default: CLEVRER's).

    Raises:
        ProgramError: naming the token index when an operation lacks arguments,
            a literal sits where a computed input is needed (or the reverse), or
            the tokens leave more than one value; a token that is neither a
            function nor a word of the catalogue's vocabularies, found where a
            program is needed or left over, is named as an unknown function.
    """
    return _decode(tokens, catalogue, where, lambda pos: f"token {pos}")


def _decode(
    tokens: Sequence[str], catalogue: Catalogue | None, where: str, locate: Callable[[int], str]
) -> Program:
    """:func:`from_clevrer_tokens`, with ``locate(k)`` naming token ``k`` in its messages."""
    cat = catalogue if catalogue is not None else Catalogue.clevrer()

    def unknown(literal: str, pos: int) -> ProgramError:  # a literal in a program's place that is no word either
        return ProgramError(f"{where}: {unknown_function(literal, cat.names, at=locate(pos))}")
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise ProgramError(f"{where}: CLEVRER program tokens must be a list of strings, got {tokens!r}")
    stack: list[tuple[Call, int] | str] = []  # (call, depth) or a literal
    literal_at: dict[int, int] = {}  # stack depth of a literal -> its token index
    for pos, token in enumerate(tokens):
        if token == "<START>":
            continue
        if token in CONTROL_TOKENS:
            break
        at = f"{where}: {locate(pos)} ({token!r})"
        if token not in cat:
            literal_at[len(stack)] = pos
            stack.append(token)
            continue
        spec = cat.signature(token)
        n_in, n_side = len(spec.inputs), len(spec.side_inputs)
        if len(stack) < n_in + n_side:
            raise ProgramError(f"{at}: {token} takes {n_in + n_side} argument(s), only {len(stack)} on the stack")
        first = len(stack) - n_in - n_side
        taken = stack[first:]
        del stack[first:]
        children, literals = taken[:n_in], taken[n_in:]
        for k, child in enumerate(children):
            if isinstance(child, str):
                if not cat.types_of_value(child):
                    raise unknown(child, literal_at[first + k])
                raise ProgramError(f"{at}: argument {k} must be a program ({spec.inputs[k]}), got the literal {child!r}")
        for k, literal in enumerate(literals):
            if not isinstance(literal, str):
                raise ProgramError(
                    f"{at}: argument {n_in + k} must be a literal {spec.side_inputs[k]}, got the program {literal[0].function}"
                )
        depth = 1 + max((d for _, d in children), default=0)  # type: ignore[misc]
        if depth > MAX_DEPTH:
            raise ProgramError(f"{at}: program is nested deeper than {MAX_DEPTH} calls")
        stack.append((Call(token, tuple(c for c, _ in children), tuple(literals)), depth))  # type: ignore[misc]
    for depth, item in enumerate(stack):
        if isinstance(item, str) and not cat.types_of_value(item):
            raise unknown(item, literal_at[depth])
    if len(stack) != 1 or isinstance(stack[0], str):
        shown = [s if isinstance(s, str) else s[0].function for s in stack]
        raise ProgramError(f"{where}: the tokens leave {len(stack)} value(s) {shown} on the stack, not one program")
    return Program(stack[0][0])


def to_clevrer_tokens(program: Program | Call) -> list[str]:
    """CLEVRER postfix tokens: each node's children, then its side inputs, then its name."""
    root = program.root if isinstance(program, Program) else program
    out: list[str] = []
    for call in root.walk():
        out.extend(call.values)
        out.append(call.function)
    return out


def join_choice(choice: Sequence[str], question: Sequence[str], *, where: str = "choice") -> Program:
    """The program that judges a multiple-choice option: the choice's tokens, then the question's.

    Its answer is ``yes`` when the option is correct (as the official executor judges it).
    """
    n = len(choice)
    return _decode([*choice, *question], None, where,
                   lambda pos: f"token {pos} of the choice" if pos < n else f"token {pos - n} of the question")
