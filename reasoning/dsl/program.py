"""The Program AST: a typed tree of function applications.

A program is a tree of :class:`Call` nodes.  Each node applies a catalogue
function (``filter_color``) to child programs (``args``) and literal side inputs
(``values``, e.g. ``("red",)``)::

    count(filter_color(scene(), red))
    == Program(Call("count", (Call("filter_color", (Call("scene"),), ("red",)),)))

Nodes are frozen and hashable, so programs can key dictionaries (the batched
executor groups questions by structure) and be shared safely.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Call", "Program"]


@dataclass(frozen=True, slots=True)
class Call:
    """One function application.

    Attributes:
        function: Catalogue function name, e.g. ``"relate"``.
        args: Child calls whose outputs are this function's inputs, in order.
        values: Side inputs (vocabulary words or numbers as strings), in order.
    """

    function: str
    args: tuple[Call, ...] = ()
    values: tuple[str, ...] = ()

    def walk(self) -> Iterator[Call]:
        """Nodes in post-order (children before parents, left to right)."""
        for a in self.args:
            yield from a.walk()
        yield self

    def structure(self) -> tuple:
        """The shape of the tree without side inputs (for grouping programs)."""
        return (self.function, tuple(a.structure() for a in self.args))


@dataclass(frozen=True, slots=True)
class Program:
    """A whole program: the root call plus convenience views.

    Converters to and from text and the CLEVR / NS-VQA token formats live in
    :mod:`reasoning.dsl` (``parse_program``, ``to_text``, ``from_clevr``, ...).
    """

    root: Call

    def nodes(self) -> list[Call]:
        """All nodes in post-order; the root is last (CLEVR node-list order)."""
        return list(self.root.walk())

    def __len__(self) -> int:
        return sum(1 for _ in self.root.walk())

    def __str__(self) -> str:
        from reasoning.dsl.text import to_text

        return to_text(self)
