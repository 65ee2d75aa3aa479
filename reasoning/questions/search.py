"""Instantiate one template on one scene: a depth-first search over parameter values.

The search follows the idea of CLEVR's ``instantiate_templates_dfs``: add the
template's nodes one at a time; at each node enumerate the parameter values
that make sense *for this scene* (for composite filter nodes, the filter keys
computed from the objects actually present), evaluate the partial program,
and drop the branch as soon as it is invalid or breaks a constraint.  A full
program becomes a question when it passes answer balancing and, for templates
with a raw ``relate`` node, the degeneracy test.

Parameter choices for composite nodes (as in CLEVR):

- ``filter_unique``: only keys that leave exactly one object;
- ``filter``: every key present in the scene except the empty one, plus as
  many absent keys (matching nothing) as there are singleton keys;
- ``filter_count``: every key present (empty key included), plus absent keys
  as many as singleton keys, so zero counts are asked too;
- ``filter_exist``: every key present plus as many absent keys, so "yes" and
  "no" are equally reachable;
- ``relate_filter*``: each (relation, key) pair; ``_unique`` needs a singleton,
  ``_count``/``_exist`` allow an empty result.  A pair whose relation adds
  nothing (every object matching the key is already on that side) is
  *trivial*; trivial pairs are kept for only ``trivial_relate_fraction`` of
  the options.

Composite nodes are expanded into basic CLEVR functions in the output program:
``relate_filter_count[R, Z, C, M, S]`` -> ``relate(R)``, then one
``filter_<attr>`` per non-empty value in side-input order, then ``count``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from reasoning.dsl import Catalogue
from reasoning.dsl.function_table import register_mode
from reasoning.questions.balance import AnswerBalancer
from reasoning.questions.config import GeneratorConfig
from reasoning.questions.engine import ATTRS, FUNCTIONS, INVALID, FilterKey, SceneIndex, run_nodes
from reasoning.questions.template import Template
from reasoning.questions.vocab import ATTRIBUTE_TYPES

__all__ = ["Instance", "instantiate", "is_degenerate", "COMPOSITE_FUNCTIONS", "program_bounds"]

# the catalogue's template-only composite nodes, which the search expands (see _SUFFIX)
COMPOSITE_FUNCTIONS = frozenset(
    n for n in Catalogue.default().names if Catalogue.default().signature(n).template_only
)
_NULL_KEY: FilterKey = (None, None, None, None)
_ATTR_POS = {t: ATTRS.index(a) for t, a in ATTRIBUTE_TYPES.items()}


@dataclass(frozen=True)
class Instance:
    """One instantiated template.

    Attributes:
        program: Basic CLEVR node list (``inputs``, ``function``, ``value_inputs``).
        values: Parameter name -> chosen value, ``None`` where left empty.
        answer: Raw answer (``bool``, ``int`` or attribute ``str``).
        template: The template instantiated.
    """

    program: tuple[dict[str, Any], ...]
    values: Mapping[str, str | None]
    answer: Any
    template: Template


class _State(NamedTuple):
    """A partial instantiation (a NamedTuple: states are created by the hundred thousand)."""

    next: int  # template node to add next
    outputs: tuple[Any, ...]  # per template node so far
    values: dict[str, str | None]
    program: tuple[dict[str, Any], ...]
    where: tuple[int, ...]  # template node -> index of its last expanded node
    selected: tuple[Any, ...]  # per template node, what OUT_NEQ compares (see _satisfies)


def _node(function: str, inputs: list[int], values: Sequence[str] = ()) -> dict[str, Any]:
    return {"inputs": inputs, "function": function, "value_inputs": list(values)}


def instantiate(
    template: Template,
    ix: SceneIndex,
    rng: np.random.Generator,
    *,
    catalogue: Catalogue,
    config: GeneratorConfig | None = None,
    balancer: AnswerBalancer | None = None,
    max_instances: int = 1,
) -> list[Instance]:
    """Up to ``max_instances`` questions from ``template`` on the indexed scene.

    Args:
        template: A validated template.
        ix: The scene's bitsets (:class:`SceneIndex`).
        rng: Source of every random choice (deterministic for a seed).
        catalogue: Function catalogue giving each parameter type's values.
        config: Search and rejection settings.
        balancer: Answer counts of this template; ``None`` disables balancing.
        max_instances: Stop after this many accepted questions.

    Returns:
        Accepted instances (possibly none: the scene may not fit the template).
    """
    config = config or GeneratorConfig()
    checks = _checks_by_node(template)
    nulls = _null_positions(template)
    n_nodes = len(template.nodes)
    # Stack entries are (parent state, choice) pairs, materialised only when
    # popped: most options are never visited, so building them eagerly would
    # dominate the cost.
    stack: list[tuple[_State | None, Any]] = [(None, None)]
    found: list[Instance] = []
    budget = config.max_search_states
    while stack and budget > 0:
        budget -= 1
        parent, choice = stack.pop()
        if parent is None:
            st: _State | None = _State(0, (), {}, (), (), ())
        else:
            st = _materialise(template, parent, choice, ix)
            if st is None or not _satisfies(checks[parent.next], st):
                continue
        if st.next == n_nodes:
            answer = st.outputs[-1]
            if balancer is not None and not balancer.accepts(answer):
                continue
            if (
                config.reject_degenerate
                and template.has_relate
                and is_degenerate(st.program, ix, answer)
            ):
                continue
            if balancer is not None:
                balancer.add(answer)
            found.append(Instance(st.program, st.values, answer, template))
            if len(found) >= max_instances:
                break
            continue
        choices = _choices(template, st, ix, rng, catalogue, config, nulls[st.next])
        stack.extend((st, c) for c in choices)
    return found


def is_degenerate(program: Sequence[Mapping[str, Any]], ix: SceneIndex, answer: Any) -> bool:
    """CLEVR's degeneracy test: some ``relate`` step does not matter.

    Each ``relate`` node in turn is replaced by ``scene`` (so its input subtree
    is cut off and the step yields every object); if the program still gives
    the same answer, the relation added nothing and the question is degenerate.
    """
    for k, n in enumerate(program):
        if n["function"] != "relate":
            continue
        cut = list(program)
        cut[k] = _node("scene", [])
        outs = run_nodes(ix, cut)
        if len(outs) == len(cut) and outs[-1] == answer and type(outs[-1]) is type(answer):
            return True
    return False


# ---------------------------------------------------------------------- expansion
def _choices(
    template: Template,
    st: _State,
    ix: SceneIndex,
    rng: np.random.Generator,
    catalogue: Catalogue,
    config: GeneratorConfig,
    nulls: tuple[int, ...],
) -> list[Any]:
    """The choices for node ``st.next``, shuffled (the last is tried first).

    ``nulls`` are the filter-key positions NULL constraints force empty at this node.
    """
    node = template.nodes[st.next]
    if node.type in COMPOSITE_FUNCTIONS:
        arg = st.outputs[node.inputs[0]]
        if node.type.startswith("relate"):
            options: list[Any] = _relate_filter_options(
                node.type, arg, ix, rng, catalogue, config.trivial_relate_fraction, nulls
            )
        else:
            options = _filter_options(node.type, arg, ix, rng, catalogue, nulls)
    elif node.side_inputs:
        options = list(catalogue.values(template.param_types[node.side_inputs[0]]))
    else:
        return [None]
    return [options[j] for j in rng.permutation(len(options))]


def _materialise(template: Template, st: _State, choice: Any, ix: SceneIndex) -> _State | None:
    """The state after adding node ``st.next`` with ``choice``; ``None`` if invalid."""
    k = st.next
    node = template.nodes[k]
    base = len(st.program)
    if node.type not in COMPOSITE_FUNCTIONS:
        args = [st.outputs[i] for i in node.inputs]
        inputs = [st.where[i] for i in node.inputs]
        fn = FUNCTIONS[node.type]  # inputs of a live state are never INVALID
        if choice is None:
            out = fn(ix, args, ())
            values, new = st.values, _node(node.type, inputs)
        else:
            out = fn(ix, args, (choice,))
            values, new = (
                {**st.values, node.side_inputs[0]: choice},
                _node(node.type, inputs, (choice,)),
            )
        if out is INVALID:
            return None
        return _State(
            k + 1,
            (*st.outputs, out),
            values,
            (*st.program, new),
            (*st.where, base),
            (*st.selected, out),
        )

    rel, key, result = choice
    ptypes = template.param_types
    program = list(st.program)
    values = dict(st.values)
    cur = st.where[node.inputs[0]]
    filter_params = node.side_inputs
    if rel is not None:
        program.append(_node("relate", [cur], (rel,)))
        values[node.side_inputs[0]] = rel
        cur = len(program) - 1
        filter_params = node.side_inputs[1:]
    for name in filter_params:
        ptype = ptypes[name]
        v = key[_ATTR_POS[ptype]]
        values[name] = v
        if v is not None:
            program.append(_node(f"filter_{ATTRIBUTE_TYPES[ptype]}", [cur], (v,)))
            cur = len(program) - 1
    suffix = _SUFFIX[node.type]
    selected: Any = result if suffix in ("count", "exist") else None
    if suffix is None:
        out: Any = result
    else:
        program.append(_node(suffix, [cur]))
        cur = len(program) - 1
        if suffix == "unique":
            out = result.bit_length() - 1
        elif suffix == "count":
            out = result.bit_count()
        else:
            out = result != 0
    if selected is None:
        selected = out
    return _State(
        k + 1,
        (*st.outputs, out),
        values,
        tuple(program),
        (*st.where, cur),
        (*st.selected, selected),
    )


# The question engine's implementation of each composite node: the basic node that
# ends its expansion (after relate / filter_<attribute>), None for a bare filter.
_SUFFIX = {
    "filter": None,
    "relate_filter": None,
    "filter_unique": "unique",
    "relate_filter_unique": "unique",
    "filter_count": "count",
    "relate_filter_count": "count",
    "filter_exist": "exist",
    "relate_filter_exist": "exist",
}


# The question engine mode of the function table: basic functions in engine.FUNCTIONS,
# composites expanded here.
register_mode("question engine", lambda: (*FUNCTIONS, *_SUFFIX))


def program_bounds(template: Template) -> tuple[int, int]:
    """The largest (depth, node count) a program instantiated from ``template`` can have.

    Every composite node is counted at its fullest expansion (``relate``, one
    ``filter_<attribute>`` per filter parameter, then its ending node), as if no
    parameter were left empty; depth is as :meth:`reasoning.dsl.Program.depth`
    counts it.  A question set whose programs are deeper than every bound of a
    template set is deeper than anything that set can generate.
    """
    depth: list[int] = []
    size = 0
    for node in template.nodes:
        if node.type in COMPOSITE_FUNCTIONS:
            # relate_filter*: the relation's side input is its relate node, each other one a filter
            span = len(node.side_inputs) + int(_SUFFIX[node.type] is not None)
        else:
            span = 1
        size += span
        depth.append(span + max((depth[i] for i in node.inputs), default=0))
    return depth[-1], size


def _prune(options: list[Any], nulls: tuple[int, ...]) -> list[Any]:
    """Drop options that set a filter-key position a NULL constraint keeps empty."""
    if not nulls:
        return options
    return [o for o in options if all(o[1][p] is None for p in nulls)]


def _filter_options(
    ftype: str,
    in_mask: int,
    ix: SceneIndex,
    rng: np.random.Generator,
    catalogue: Catalogue,
    nulls: tuple[int, ...] = (),
) -> list[tuple[None, FilterKey, int]]:
    # The keys present in the scene depend only on (ftype, in_mask): memoised per scene.
    hit = ix.cache.get(("f", ftype, in_mask, nulls))
    if hit is None:
        base = ix.cache.get(("f", ftype, in_mask))
        if base is None:
            opts = {key: m & in_mask for key, m in ix.filters.items()}
            if ftype == "filter_unique":
                opts = {key: m for key, m in opts.items() if m and not m & (m - 1)}
                n_add = 0
            else:
                if ftype == "filter":
                    opts.pop(_NULL_KEY, None)
                if ftype == "filter_exist":
                    n_add = len(opts)
                else:  # filter, filter_count: as many absent keys as singleton keys
                    n_add = sum(1 for m in opts.values() if m and not m & (m - 1))
            base = ([(None, key, m) for key, m in opts.items()], n_add)
            ix.cache[("f", ftype, in_mask)] = base
        hit = (_prune(base[0], nulls), base[1])
        ix.cache[("f", ftype, in_mask, nulls)] = hit
    present, n_add = hit
    absent = _absent_keys(ix, catalogue) if n_add else []
    if not absent:
        return present
    chosen = sorted(rng.choice(len(absent), size=min(n_add, len(absent)), replace=False))
    return present + _prune([(None, absent[j], 0) for j in chosen], nulls)


def _relate_filter_options(
    ftype: str,
    obj: int,
    ix: SceneIndex,
    rng: np.random.Generator,
    catalogue: Catalogue,
    trivial_frac: float,
    nulls: tuple[int, ...] = (),
) -> list[tuple[str, FilterKey, int]]:
    base = ix.cache.get(("r", ftype, obj))
    if base is None:
        unique = ftype == "relate_filter_unique"
        include_zero = ftype in ("relate_filter_count", "relate_filter_exist")
        options: list[tuple[str, FilterKey, int]] = []
        trivial: list[tuple[str, FilterKey, int]] = []
        for rel in catalogue.values("Relation"):
            rows = ix.rel.get(rel)
            if rows is None:
                continue
            related = rows[obj]
            for key, m in ix.filters.items():
                inter = related & m
                if unique and (inter == 0 or inter & (inter - 1)):
                    continue
                if inter == 0 and not include_zero:
                    continue
                (trivial if inter == m else options).append((rel, key, inter))
        base = (options, trivial)
        ix.cache[("r", ftype, obj)] = base
    options, trivial = base
    pruned = ix.cache.get(("r", ftype, obj, nulls))
    if pruned is None:
        pruned = ix.cache[("r", ftype, obj, nulls)] = _prune(options, nulls)
    n_trivial = int(round(len(options) * trivial_frac / (1.0 - trivial_frac)))
    if not (trivial and n_trivial):
        return pruned
    keep = sorted(rng.permutation(len(trivial))[:n_trivial])
    return pruned + _prune([trivial[j] for j in keep], nulls)


def _absent_keys(ix: SceneIndex, catalogue: Catalogue) -> list[FilterKey]:
    """Filter keys that match no object of the scene (cached per scene and vocabulary)."""
    return _absent_keys_cached(ix, tuple(catalogue.values(t) for t in ATTRIBUTE_TYPES))


def _absent_keys_cached(ix: SceneIndex, vocab: tuple[tuple[str, ...], ...]) -> list[FilterKey]:
    cached = ix._absent
    if cached is not None and cached[0] == vocab:
        return cached[1]
    keys: list[FilterKey] = [()]  # type: ignore[list-item]
    for values in vocab:
        keys = [(*k, v) for k in keys for v in (*values, None)]  # type: ignore[misc]
    absent = [k for k in keys if k not in ix.filters]
    ix._absent = (vocab, absent)
    return absent


# ---------------------------------------------------------------------- constraints
@lru_cache(maxsize=1024)
def _null_positions(template: Template) -> tuple[tuple[int, ...], ...]:
    """Per node, the filter-key positions that NULL constraints force empty there."""
    nulls = {c.params[0] for c in template.constraints if c.type == "NULL"}
    ptypes = template.param_types
    return tuple(
        tuple(
            _ATTR_POS[ptypes[n]] for n in node.side_inputs if n in nulls and ptypes[n] in _ATTR_POS
        )
        for node in template.nodes
    )


@lru_cache(maxsize=1024)
def _checks_by_node(template: Template) -> tuple[tuple[Any, ...], ...]:
    """For each template node, the constraints that become decidable once it is added."""
    setter: dict[str, int] = {}
    for k, n in enumerate(template.nodes):
        for name in n.side_inputs:
            setter.setdefault(name, k)
    at: list[list[Any]] = [[] for _ in template.nodes]
    for c in template.constraints:
        if c.type == "NULL":
            k = setter.get(c.params[0])
        elif c.type == "OUT_NEQ":
            k = max(c.params)
        else:  # NEQ
            ks = [setter.get(p) for p in c.params]
            k = None if None in ks else max(ks)  # type: ignore[type-var]
        if k is not None:
            at[k].append(c)
    return tuple(tuple(a) for a in at)


def _satisfies(checks: Sequence[Any], st: _State) -> bool:
    """Whether ``st`` keeps the constraints decided at its newest node.

    OUT_NEQ compares what the two nodes *select*: the object set for a
    ``filter_count``/``filter_exist`` (and ``relate_filter_*`` variants), the
    output otherwise.  Comparing the counts themselves would make
    "equal number of A and B?" (OUT_NEQ on its two counts) always "no"; the
    constraint is there to make the two descriptions pick different objects.
    """
    for c in checks:
        if c.type == "NULL":
            if st.values.get(c.params[0]) is not None:
                return False
        elif c.type == "OUT_NEQ":
            i, j = c.params
            if st.selected[i] == st.selected[j]:
                return False
        elif st.values.get(c.params[0]) == st.values.get(c.params[1]):  # NEQ
            return False
    return True
