"""Programs -> canonical structure keys and parameter codes, for the batched executor.

A program is encoded in pre-order as a tuple of tokens (its canonical
structure) and a list of integers (its parameters), e.g.::

    query_color(unique(filter_size(filter_color(scene(), red), large)))
    -> key    ("Value", "Q", "U", "F4", "S")
       params [color_index, code(red), code(large), ANY, ANY]

Canonicalisation (the CLEVR generator's composite template nodes, run backwards)
keeps the number of distinct keys small so that groups are large:

* a chain of ``filter_*`` / ``filter`` nodes becomes one ``F<k>`` node with ``k``
  word codes (``k`` a multiple of 4, unused slots :data:`ANY`);
* ``query_*`` and ``same_*`` take the attribute index as a parameter
  (tokens ``Q`` and ``SM``); every ``equal_*`` of values and ``equal_object`` is
  ``EQ``; ``equal_integer`` / ``less_than`` / ``greater_than`` are ``CMP`` with the
  operator (0, 1, 2) as parameter;
* composite template nodes expand into their parts (``filter_count`` -> ``C`` ``F4``).

Like the fast single-question evaluator, each operation has one specialised
encoder closure that finds its children's encoders in a dict holding only the
operations of the right output type, so one lookup type-checks and dispatches.
Anything unusual makes :func:`encode` run :func:`~reasoning.executor.check.check_call`,
which raises the precise :class:`~reasoning.errors.ProgramError`.
"""

from __future__ import annotations

from collections.abc import Callable

from physics.worlds.clevr_properties import RELATIONS
from reasoning.dsl.function_table import register_mode
from reasoning.dsl.program import Call
from reasoning.executor.check import check_call
from reasoning.executor.ops import (
    _VERSION,
    BOOL,
    BUILTIN_FNS,
    INTEGER,
    OPS,
    SLOTS,
    VALUE_TYPES,
    table_version,
)
from reasoning.executor.scene_table import ANY, ATTRS, WORD_CODE

__all__ = ["encode", "register_encoder", "ARITY", "N_PARAMS", "ROOT_KINDS"]

Encoder = Callable[[Call, list, list], None]  # (call, key tokens, params) -> appends

ROOT_KINDS = {BOOL: "Bool", INTEGER: "Integer", **{t: "Value" for t in VALUE_TYPES}}
ARITY = {
    "S": 0,
    "U": 1,
    "C": 1,
    "E": 1,
    "OR": 2,
    "AND": 2,
    "R": 1,
    "EQ": 2,
    "Q": 1,
    "SM": 1,
    "CMP": 2,
}
N_PARAMS = {"R": 1, "Q": 1, "SM": 1, "CMP": 1}  # F<k> nodes take k

_ATTR_INDEX = {a: k for k, a in enumerate(ATTRS)}
_REL = {r: k for k, r in enumerate(RELATIONS)}
_SLOTS = SLOTS  # composite side-input order (after Relation), from the catalogue
_CODES = {a: {v: code for (a2, v), code in WORD_CODE.items() if a2 == a} for a in ATTRS}
_F_TOKENS = {k: f"F{k}" for k in range(4, 257, 4)}


class _Malformed(Exception):
    """Internal: a node does not fit its signature (check_call names the fault)."""


class _NotVectorised(Exception):
    """Internal: an operation without a batched form; the single executor answers."""


# ---------------------------------------------------------------------- filter chains
def _codes_filter_attr(attr: str) -> Callable[[Call, list], None]:
    codes_of = _CODES[attr]

    def add(call: Call, codes: list) -> None:
        (v,) = call.values
        codes.append(codes_of[v])

    return add


def _add_slot_codes(values: tuple[str, ...], codes: list) -> None:
    if len(values) > 4:
        raise _Malformed
    for attr, v in zip(_SLOTS, values, strict=False):
        if v:
            codes.append(_CODES[attr][v])


def _codes_filter(call: Call, codes: list) -> None:
    _add_slot_codes(call.values, codes)


_CHAIN: dict[str, Callable[[Call, list], None]] = {
    "filter": _codes_filter,
    **{f"filter_{a}": _codes_filter_attr(a) for a in ATTRS},
}


def _emit_f(codes: list, key: list, params: list) -> None:
    if codes:
        width = -(-len(codes) // 4) * 4
        key.append(_F_TOKENS[width])
        params.extend(codes)
        if width > len(codes):
            params.extend([ANY] * (width - len(codes)))


def _chain(call: Call, codes: list, key: list, params: list, sets: dict[str, Encoder]) -> None:
    """Collect the filter chain starting at ``call``, emit one F node, encode its base."""
    f = call.function
    add = _CHAIN.get(f)
    while add is not None:
        add(call, codes)
        (call,) = call.args
        f = call.function
        add = _CHAIN.get(f)
    _emit_f(codes, key, params)
    sets[f](call, key, params)


# ---------------------------------------------------------------------- node encoders
def _b_scene(name: str, kids: list[dict]) -> Encoder:
    def enc(call: Call, key: list, params: list) -> None:
        if call.args or call.values:
            raise _Malformed
        key.append("S")

    return enc


def _b_filter(name: str, kids: list[dict]) -> Encoder:
    (sets,) = kids

    def enc(call: Call, key: list, params: list) -> None:
        _chain(call, [], key, params, sets)

    return enc


def _b_filter_then(token: str) -> Callable[[str, list[dict]], Encoder]:
    def build(name: str, kids: list[dict]) -> Encoder:
        (sets,) = kids

        def enc(call: Call, key: list, params: list) -> None:
            key.append(token)
            codes: list = []
            _add_slot_codes(call.values, codes)
            (a,) = call.args
            _chain(a, codes, key, params, sets)

        return enc

    return build


def _b_relate_filter(token: str | None) -> Callable[[str, list[dict]], Encoder]:
    def build(name: str, kids: list[dict]) -> Encoder:
        (objects,) = kids

        def enc(call: Call, key: list, params: list) -> None:
            if token:
                key.append(token)
            values = call.values
            codes: list = []
            _add_slot_codes(values[1:], codes)
            _emit_f(codes, key, params)
            key.append("R")
            params.append(_REL[values[0]])
            (a,) = call.args
            objects[a.function](a, key, params)

        return enc

    return build


def _b_unary(token: str, param: int | None = None) -> Callable[[str, list[dict]], Encoder]:
    def build(name: str, kids: list[dict]) -> Encoder:
        (k0,) = kids
        if param is None:

            def enc(call: Call, key: list, params: list) -> None:
                (a,) = call.args
                if call.values:
                    raise _Malformed
                key.append(token)
                k0[a.function](a, key, params)

        else:

            def enc(call: Call, key: list, params: list) -> None:
                (a,) = call.args
                if call.values:
                    raise _Malformed
                key.append(token)
                params.append(param)
                k0[a.function](a, key, params)

        return enc

    return build


def _b_relate(name: str, kids: list[dict]) -> Encoder:
    (k0,) = kids

    def enc(call: Call, key: list, params: list) -> None:
        (a,) = call.args
        (r,) = call.values
        key.append("R")
        params.append(_REL[r])
        k0[a.function](a, key, params)

    return enc


def _b_binary(token: str, param: int | None = None) -> Callable[[str, list[dict]], Encoder]:
    def build(name: str, kids: list[dict]) -> Encoder:
        k0, k1 = kids

        def enc(call: Call, key: list, params: list) -> None:
            a, b = call.args
            if call.values:
                raise _Malformed
            key.append(token)
            if param is not None:
                params.append(param)
            k0[a.function](a, key, params)
            k1[b.function](b, key, params)

        return enc

    return build


_BUILDERS: dict[str, Callable[[str, list[dict]], Encoder]] = {
    "scene": _b_scene,
    "unique": _b_unary("U"),
    "count": _b_unary("C"),
    "exist": _b_unary("E"),
    "relate": _b_relate,
    "union": _b_binary("OR"),
    "intersect": _b_binary("AND"),
    "equal_object": _b_binary("EQ"),
    "equal_integer": _b_binary("CMP", 0),
    "less_than": _b_binary("CMP", 1),
    "greater_than": _b_binary("CMP", 2),
    "filter": _b_filter,
    **{f"filter_{a}": _b_filter for a in ATTRS},
    **{f"query_{a}": _b_unary("Q", _ATTR_INDEX[a]) for a in ATTRS},
    **{f"same_{a}": _b_unary("SM", _ATTR_INDEX[a]) for a in ATTRS},
    **{f"equal_{a}": _b_binary("EQ") for a in ATTRS},
    "filter_unique": _b_filter_then("U"),
    "filter_count": _b_filter_then("C"),
    "filter_exist": _b_filter_then("E"),
    "relate_filter": _b_relate_filter(None),
    "relate_filter_unique": _b_relate_filter("U"),
    "relate_filter_count": _b_relate_filter("C"),
    "relate_filter_exist": _b_relate_filter("E"),
}


# The "batched" mode of the function table (reasoning.dsl.function_table): an operation
# without an encoder here is answered by the single executor, and the table test says so.
register_mode("batched", lambda: _BUILDERS.keys())
# operation -> the function its encoder stands for (an operation given another one falls back)
_ENCODES: dict[str, Callable[..., object]] = dict(BUILTIN_FNS)


def register_encoder(
    name: str, builder: Callable[[str, list[dict]], Encoder], fn: Callable[..., object]
) -> None:
    """Vectorise operation ``name`` (whose implementation is ``fn``) in batched mode.

    ``builder(name, kids)`` returns the encoder: given a node, it appends canonical
    tokens (:data:`ARITY`) to ``key`` and their codes to ``params``, then encodes
    each child with ``kids[k][child.function]``; the plan must then answer as ``fn``.
    """
    _BUILDERS[name] = builder
    _ENCODES[name] = fn
    _VERSION[0] += 1  # every executor rebuilds its tables


def _not_vectorised(call: Call, key: list, params: list) -> None:
    raise _NotVectorised


def _build() -> dict[str, Encoder]:
    """One encoder per operation of :data:`OPS` (built-in semantics only; others fall back)."""
    by_output: dict[str, dict[str, Encoder]] = {}
    for spec in OPS.values():
        for t in (*spec.inputs, spec.output):
            by_output.setdefault(t, {})
    encoders: dict[str, Encoder] = {}
    for name, spec in OPS.items():
        builder = _BUILDERS.get(name) if spec.fn is _ENCODES.get(name) else None
        kids = [by_output[t] for t in spec.inputs]
        encoders[name] = builder(name, kids) if builder is not None else _not_vectorised
        by_output[spec.output][name] = encoders[name]
    return encoders


_ENCODERS = _build()
_BUILT_FOR = [table_version()]
_FAILURES = (_Malformed, _NotVectorised, KeyError, ValueError, IndexError, TypeError)


def encode(root: Call) -> tuple[tuple, list[int]] | None:
    """The canonical structure key and parameter codes of one program.

    Returns:
        ``(key, params)``, or ``None`` when the program is well formed but cannot
        be vectorised (an operation registered without a batched form).

    Raises:
        ProgramError: the program is malformed (names the node, as the single executor does).
    """
    if _BUILT_FOR[0] != _VERSION[0]:  # an operation was registered: rebuild the encoders
        _ENCODERS.clear()
        _ENCODERS.update(_build())
        _BUILT_FOR[0] = _VERSION[0]
    spec = OPS.get(root.function)
    key: list = [ROOT_KINDS.get(spec.output, "None") if spec is not None else "None"]
    params: list[int] = []
    try:
        _ENCODERS[root.function](root, key, params)
    except _FAILURES:
        check_call(root, OPS)  # raises the precise ProgramError
        return None
    return tuple(key), params
