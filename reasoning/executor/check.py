"""Static checking of a program against an executor's operation table.

The executors run an unchecked fast path and call :func:`check_call` only when
something went wrong, so that a malformed program always fails with one precise
:class:`~reasoning.errors.ProgramError` naming the node (post-order index and
function), what it got and what is allowed.  The checking itself is the
catalogue's (:func:`reasoning.dsl.typecheck.check_nodes`, which
:meth:`reasoning.dsl.Catalogue.check` runs too); this module reads it the way
the executors do: signatures from the operation table, vocabularies from the
catalogue, and a composite's trailing slots may be left out ("no constraint").
"""

from __future__ import annotations

from collections.abc import Mapping

from reasoning.dsl.program import Call
from reasoning.dsl.typecheck import check_nodes, post_order
from reasoning.executor.ops import CATALOGUE, OpSpec

__all__ = ["check_call", "side_vocabulary", "post_order"]

_VOCABULARIES: Mapping[str, tuple[str, ...]] = {
    t: CATALOGUE.values(t) for t in CATALOGUE.vocabulary_types()
}


def side_vocabulary(type_name: str) -> tuple[str, ...] | None:
    """The words a side input of ``type_name`` may take (the catalogue's vocabulary).

    ``None`` for a type outside the catalogue's (an operation registered with its
    own side-input type): any non-empty word is accepted and the operation decides.
    """
    return _VOCABULARIES.get(type_name)


def check_call(root: Call, ops: Mapping[str, OpSpec]) -> str:
    """Check every node of ``root`` and return the root's output type.

    Raises:
        ProgramError: ``"node 3 (filter_color): side input 0 'pink' is not a Color;
            allowed: [...]"`` and the like (unknown function, wrong number of
            inputs or side inputs, input of the wrong type, word not in the
            vocabulary, empty side input where a word is required).
    """
    return check_nodes(post_order(root), ops, _VOCABULARIES.get, missing_slots=True)
