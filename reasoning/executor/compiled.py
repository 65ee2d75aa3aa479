"""The compiled path of node-list answering: the C module ``_cnodes``, fed from the operation table.

``reasoning/executor/_cnodes.c`` (built by ``pip install -e .`` when a C compiler
and the Python headers are present; optional, see ``setup.py``) reads CLEVR node
lists as ``json.loads`` gives them and runs them on scenes bound to compact
arrays (attribute codes and value bitsets per object, up to 64 objects), in
single mode one call per question and in batched mode one call for all.

It knows no CLEVR function name: it implements operation *kinds* (``_cnodes.KINDS``:
``filter``, ``query``, ``eq`` ...), and :func:`module` hands it, from
:data:`~reasoning.executor.ops.OPS` (signatures from the catalogue), which
function is which kind on which attribute (:data:`FORMS`), every signature, the
type-compatibility matrix (:func:`~reasoning.dsl.typecheck.compatible`), the
vocabularies and the answer strings.  Functions in :data:`FALLBACK` (the
template composites), operations registered later, and a built-in replaced by
another implementation are not handed over: a node list using one is answered
by the Python path, as is any node list or scene the C code finds irregular
(it returns :data:`SLOW` and never raises for bad input), so answers, invalid
executions and error messages are the Python path's.  The mode is declared in
the function table as ``compiled node lists``; ``tests/reasoning/test_compiled_nodes.py``
checks every catalogue function is in :data:`FORMS` or :data:`FALLBACK`.

Without the built module (no compiler at install time), or after
:func:`use_compiled` ``(False)``, :func:`module` returns ``None`` and
:func:`~reasoning.executor.node_lists.answer_node_lists` runs its pure-Python
path, with the same answers.
"""

from __future__ import annotations

import os
from types import ModuleType

from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.dsl.formats import MAX_EXPANDED
from reasoning.dsl.function_table import register_mode
from reasoning.dsl.text import MAX_DEPTH
from reasoning.dsl.typecheck import compatible
from reasoning.executor.check import side_vocabulary
from reasoning.executor.ops import (
    ANSWER_TYPES,
    BOOL,
    BUILTIN_FNS,
    INTEGER,
    OPS,
    VALUE_TYPES,
    table_version,
)

try:
    from reasoning.executor import _cnodes
except ImportError:  # built without a compiler: the pure-Python path answers
    _cnodes = None

__all__ = ["FORMS", "FALLBACK", "SLOW", "module", "available", "use_compiled", "status", "LAST_RUN"]

# function name -> (kind of the C module, attribute or None); the kinds are _cnodes.KINDS
FORMS: dict[str, tuple[str, str | None]] = {
    "scene": ("scene", None),
    "unique": ("unique", None),
    "relate": ("relate", None),
    "count": ("count", None),
    "exist": ("exist", None),
    "union": ("union", None),
    "intersect": ("intersect", None),
    "equal_integer": ("eq", None),
    "equal_object": ("eq", None),
    "less_than": ("lt", None),
    "greater_than": ("gt", None),
    **{f"filter_{a}": ("filter", a) for a in VALUE_TYPES.values()},
    **{f"query_{a}": ("query", a) for a in VALUE_TYPES.values()},
    **{f"same_{a}": ("same", a) for a in VALUE_TYPES.values()},
    **{f"equal_{a}": ("eq", None) for a in VALUE_TYPES.values()},
}
# catalogue functions the C path leaves to Python on purpose: the template composites (optional
# side-input slots); the official generator writes them expanded into the functions above
FALLBACK = frozenset(
    {
        "filter",
        "filter_unique",
        "filter_count",
        "filter_exist",
        "relate_filter",
        "relate_filter_unique",
        "relate_filter_count",
        "relate_filter_exist",
    }
)


class _Slow:
    """The C module's answer for a question it leaves to the Python path."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SLOW"


SLOW = _Slow()
_ATTRS = tuple(ATTRIBUTES)
_A_NONE, _A_BOOL, _A_INTEGER, _A_WORD = range(4)  # the C module's answer kinds
_NUMERALS = tuple(map(str, range(65)))  # a count of at most 64 objects -> its answer
_STATE: dict[str, object] = {
    "version": None,
    "enabled": os.environ.get("NESY_NO_COMPILED", "") in ("", "0"),
}
# what the last answer_node_lists call did: {"compiled": bool, "questions": n, "fallback": m}
LAST_RUN: dict[str, object] = {}


def available() -> bool:
    """Whether the C module was built and imports."""
    return _cnodes is not None


def use_compiled(flag: bool) -> bool:
    """Turn the compiled path on or off (tests, comparisons); returns the previous setting.

    ``NESY_NO_COMPILED=1`` in the environment turns it off at import.
    """
    before = bool(_STATE["enabled"])
    _STATE["enabled"] = bool(flag)
    return before


def status() -> dict[str, object]:
    """For reports: whether the module is built, enabled, and where it was loaded from."""
    return {
        "available": available(),
        "enabled": bool(_STATE["enabled"]),
        "module": None if _cnodes is None else os.path.basename(_cnodes.__file__ or ""),
    }


def _handed_over(name: str) -> bool:
    """Whether OPS[name] is the built-in implementation of a form the C module has."""
    spec = OPS.get(name)
    if spec is None or name not in FORMS or spec.fn is not BUILTIN_FNS.get(name):
        return False
    return (
        not spec.optional_side
        and len(spec.inputs) <= _cnodes.MAX_ARITY  # type: ignore[union-attr]
        and len(spec.side_inputs) <= 1
    )


def _spec() -> dict[str, object]:
    """The configuration of the C module, read from the operation table now."""
    names = sorted(n for n in OPS if _handed_over(n))
    relate_sides = {OPS[n].side_inputs[0] for n in names if FORMS[n][0] == "relate"}
    types = sorted(
        {t for n in names for t in (*OPS[n].inputs, *OPS[n].side_inputs, OPS[n].output)}
    )
    code = {t: k for k, t in enumerate(types)}

    def words(t: str) -> dict[str, int] | None:
        vocab = set(side_vocabulary(t) or ())
        if t in VALUE_TYPES:
            values = ATTRIBUTES[VALUE_TYPES[t]]
            return {w: k for k, w in enumerate(values) if w in vocab}
        if t in relate_sides:
            return {r: k for k, r in enumerate(RELATIONS) if r in vocab}
        return None

    side_words = tuple(words(t) for t in types)
    ops, codes = [], {}
    for name in names:
        spec = OPS[name]
        side = code[spec.side_inputs[0]] if spec.side_inputs else -1
        if side >= 0 and side_words[side] is None:
            continue  # a side-input type without a vocabulary here: Python answers
        kind, attr = FORMS[name]
        codes[name] = len(ops)
        ops.append(
            (
                _cnodes.KINDS.index(kind),  # type: ignore[union-attr]
                -1 if attr is None else _ATTRS.index(attr),
                tuple(code[t] for t in spec.inputs),
                code[spec.output],
                side,
            )
        )

    def answer(t: str) -> int:
        if t not in ANSWER_TYPES:
            return _A_NONE
        return {BOOL: _A_BOOL, INTEGER: _A_INTEGER}.get(t, _A_WORD if t in VALUE_TYPES else _A_NONE)

    return {
        "ntypes": len(types),
        "ops": ops,
        "codes": codes,
        "compat": bytes(compatible(a, b) for a in types for b in types),
        "answer": tuple(map(answer, types)),
        "type_attr": tuple(
            _ATTRS.index(VALUE_TYPES[t]) if t in VALUE_TYPES else -1 for t in types
        ),
        "side_words": side_words,
        "attr_names": _ATTRS,
        "attr_codes": tuple({v: k for k, v in enumerate(ATTRIBUTES[a])} for a in _ATTRS),
        "attr_words": tuple(tuple(ATTRIBUTES[a]) for a in _ATTRS),
        "relations": tuple(RELATIONS),
        "numerals": _NUMERALS,
        "yes": "yes",
        "no": "no",
        "slow": SLOW,
        "max_depth": MAX_DEPTH,
        "max_expanded": MAX_EXPANDED,
    }


def handed_over() -> frozenset[str]:
    """The functions the C module runs now (empty without it)."""
    m = module()
    return frozenset() if m is None else frozenset(_STATE["codes"])  # type: ignore[arg-type]


def module() -> ModuleType | None:
    """The configured C module, or ``None`` (not built, or turned off).

    Configured again whenever the operation table changed since (an operation
    attached or registered), so a replaced built-in is never run in C.
    """
    if _cnodes is None or not _STATE["enabled"]:
        return None
    version = table_version()
    if _STATE["version"] != version:
        spec = _spec()
        _cnodes.configure(spec)
        _STATE["codes"] = spec["codes"]
        _STATE["version"] = version
    return _cnodes


# every catalogue function: run in C (FORMS) or left to Python (FALLBACK); operations
# registered later are left to Python too
register_mode("compiled node lists", lambda: {*FORMS, *FALLBACK, *OPS})
