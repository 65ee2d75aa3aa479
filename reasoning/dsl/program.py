"""The Program AST: a typed tree of function applications.

A program is a tree of :class:`Call` nodes.  Each node applies a catalogue
function (``filter_color``) to child programs (``args``) and literal side inputs
(``values``, e.g. ``("red",)``)::

    count(filter_color(scene(), red))
    == Program(Call("count", (Call("filter_color", (Call("scene"),), ("red",)),)))

Nodes are frozen and hashable, so programs can key dictionaries (the batched
executor groups questions by structure) and be shared safely.

Programs written by the official CLEVR question generator are DAGs in node-list
form: a node may be read by several later nodes, and some nodes are read by
none.  Such a program keeps its node list in :attr:`Program.graph`; shared nodes
are then one :class:`Call` object referenced by each reader, so the tree under
:attr:`Program.root` is the DAG's expansion.  Executors run ``graph`` in list
order, each node once, as the official engine does.
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

    Attributes:
        root: The root call (for a DAG, its tree expansion: shared nodes are the
            same :class:`Call` object under each reader).
        graph: ``None`` for a tree.  For a CLEVR node list that is not a tree
            (a node read twice, or a node nobody reads), the node list as read:
            ``(call, input indices)`` per node in list order, the last being
            ``root``.  :func:`~reasoning.dsl.to_clevr` writes it back unchanged.
    """

    root: Call
    graph: tuple[tuple[Call, tuple[int, ...]], ...] | None = None

    def nodes(self) -> list[Call]:
        """All nodes in CLEVR node-list order, the root last (post-order for a tree)."""
        if self.graph is not None:
            return [call for call, _ in self.graph]
        return list(self.root.walk())

    def depth(self) -> int:
        """Calls on the longest path from the root down to a leaf (for CLEVR, the answer back to ``scene``).

        The number of steps that must run one after another; a DAG's depth is its
        tree expansion's (a shared node is counted once per path, as any node).
        """
        memo: dict[int, int] = {}
        for call in self.root.walk():  # post-order: children first
            memo[id(call)] = 1 + max((memo[id(a)] for a in call.args), default=0)
        return memo[id(self.root)]

    def __len__(self) -> int:
        if self.graph is not None:
            return len(self.graph)
        return sum(1 for _ in self.root.walk())

    def __str__(self) -> str:
        from reasoning.dsl.text import to_text

        return to_text(self)
