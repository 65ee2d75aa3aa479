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

from collections.abc import Sequence

from reasoning.dsl.catalogue import Catalogue
from reasoning.dsl.program import Call, Program
from reasoning.dsl.text import MAX_DEPTH
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
            the tokens leave more than one value.
    """
    cat = catalogue if catalogue is not None else Catalogue.clevrer()
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise ProgramError(f"{where}: CLEVRER program tokens must be a list of strings, got {tokens!r}")
    stack: list[tuple[Call, int] | str] = []  # (call, depth) or a literal
    for pos, token in enumerate(tokens):
        if token == "<START>":
            continue
        if token in CONTROL_TOKENS:
            break
        at = f"{where}: token {pos} ({token!r})"
        if token not in cat:
            stack.append(token)
            continue
        spec = cat.signature(token)
        n_in, n_side = len(spec.inputs), len(spec.side_inputs)
        if len(stack) < n_in + n_side:
            raise ProgramError(f"{at}: {token} takes {n_in + n_side} argument(s), only {len(stack)} on the stack")
        taken = stack[len(stack) - n_in - n_side:]
        del stack[len(stack) - n_in - n_side:]
        children, literals = taken[:n_in], taken[n_in:]
        for k, child in enumerate(children):
            if isinstance(child, str):
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
    return from_clevrer_tokens([*choice, *question], where=where)
