"""CLEVR node lists answered straight from parsed JSON, compiled once per program structure.

When the optional C module is built (:mod:`reasoning.executor.compiled`), both
modes first hand the node lists to it (single mode one call per question,
batched mode one call for all); the questions it leaves (an operation it does
not run, anything irregular) come here, to the Python path described below,
which is also the whole path without the module.

Reading a node list into a :class:`~reasoning.dsl.Program` (``from_clevr``) costs
more than running it, yet the questions of one CLEVR template share their
structure: the same functions in the same order, reading the same nodes.  So a
node list is looked up by the tuple of its functions, and each structure (those
functions and the ``inputs`` of every node) is compiled once into

* an evaluator: a Python function, generated as source (as :mod:`dataclasses`
  and :func:`collections.namedtuple` generate theirs), that takes the node list
  itself, checks that its ``inputs`` are the structure's, reads the side inputs
  and runs the nodes in list order -- each node once, nodes nobody reads
  included, as the official engine (``question_engine.answer_question``) does --
  returning the normalised answer;
* for batched mode, the canonical structure key of
  :func:`~reasoning.executor.encode.encode` and a generated function from the
  node list to the parameter codes.

Each mode compiles only what it runs, both spellings share a structure, and
the generated source names its per-structure constants (attributes, word
tables, inputs) instead of spelling them out, so structures that differ only
in which attribute a filter reads share one compiled text.

A structure is validated when it is first compiled: in single mode its
functions and wiring are checked against the operation signatures
(:func:`_fits_signatures`, the rules of ``from_clevr`` and the type check, words
aside: the evaluator checks those on every node list), in batched mode its first
node list goes through ``from_clevr`` and the executor's type check, and the
generated batched encoder must give what ``encode`` gives on it.  Words are checked by the table
lookups themselves (and, when a ``unique`` is invalid, against the vocabulary,
so that a bad word later in the list is still an error).  Any node list that
does not fit the fast path exactly (nodes in mixed spellings, a wrong number of
side inputs, an unknown word, an operation without a built-in form) is read by
``from_clevr`` and answered by the ordinary executors, so answers, invalid
reasons and error messages are theirs.  Three leniencies remain, all in node
lists no tool writes: an ``inputs`` index written as ``true`` or ``1.0`` is read
as ``1`` (as the official engine reads it), a node holding both spellings
is read in the first node's spelling instead of being refused when the two
differ, and a node without side inputs whose side-input field is a falsy
non-list (``""``, ``0``, ``false``, ``{}``) is read as having none (the official
engine and the plain interpreter ignore that field on such nodes; ``from_clevr``
refuses it, and so does batched mode on the first node list of a structure).

>>> from perception.synthetic import sample_scene_graph
>>> scene = sample_scene_graph(seed=0)
>>> nodes = [{"type": "scene", "inputs": []}, {"type": "count", "inputs": [0]}]
>>> answer_node_lists([nodes], [scene], [0], batched=False) == [str(len(scene))]
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from operator import attrgetter, itemgetter
from types import CodeType, ModuleType

import numpy as np

from perception.scene_graph import SceneGraph
from physics.errors import DataError, NesyError
from physics.worlds.clevr_properties import RELATIONS
from reasoning.dsl.formats import MAX_EXPANDED, from_clevr
from reasoning.dsl.function_table import register_mode
from reasoning.dsl.program import Program
from reasoning.dsl.text import MAX_DEPTH
from reasoning.dsl.typecheck import compatible
from reasoning.errors import ProgramError
from reasoning.executor import compiled
from reasoning.executor.batched import BatchPlan, _tree_like
from reasoning.executor.check import side_vocabulary
from reasoning.executor.encode import ROOT_KINDS, encode
from reasoning.executor.ops import (
    _VERSION,
    ANSWER_TYPES,
    BOOL,
    BUILTIN_FNS,
    INTEGER,
    OPS,
    VALUE_TYPES,
    InvalidExecution,
)
from reasoning.executor.scene_table import (
    ANY,
    ATTRS,
    WORD_CODE,
    RowBits,
    SceneTable,
    value_rows,
)
from reasoning.executor.symbolic import default_executor

__all__ = ["answer_node_lists", "clear_structure_cache"]

_FUNCTION, _TYPE, _INPUTS = itemgetter("function"), itemgetter("type"), itemgetter("inputs")
_OBJECTS, _RELATIONSHIPS = attrgetter("objects"), attrgetter("relationships")
_FAILURES = (InvalidExecution, KeyError, TypeError, ValueError, IndexError, AttributeError)


class _One(dict):
    """A set of exactly one object (bitset) -> that object's index; ``unique`` of any other
    set raises :class:`InvalidExecution` (one dict lookup per ``unique``)."""

    def __missing__(self, key: object) -> int:
        raise InvalidExecution


_ONE = _One({1 << i: i for i in range(64)})
_NUMERALS = tuple(map(str, range(65)))  # a count of a bitset of at most 64 objects -> its answer


# a relationship row (as a tuple of object indices) -> its bitset, computed on first use:
# ``relate`` runs about once per question, and OR-ing its row one index at a time cost several
# times this lookup.  A bad index (negative, 64 or more, not an integer) raises ``KeyError``
# and is not stored, so the slow path judges it.  Emptied at the start and end of every
# answer_node_lists call, so its size is bounded by the rows one call reads.
_ROW_BITS = RowBits()
_ATTR_OF = {f"filter_{a}": a for a in VALUE_TYPES.values()}
_ATTR_OF_NAME = {f"{op}_{a}": a for a in VALUE_TYPES.values() for op in ("filter", "query", "same")}


def _functions(nodes: object) -> tuple[tuple, str] | None:
    """The functions of a node list and its side-input key (by its spelling), else ``None``.

    The spelling is the first node's; a node list mixing them, or not a list of
    dicts, is left to ``from_clevr``.  (A node that holds both spellings is read
    in the first node's; ``from_clevr`` would refuse it if the two differ.)
    """
    if type(nodes) is not list or not nodes or type(nodes[0]) is not dict:
        return None
    try:
        if "function" in nodes[0]:
            functions, side = tuple(map(_FUNCTION, nodes)), "value_inputs"
        else:
            functions, side = tuple(map(_TYPE, nodes)), "side_inputs"
        hash(functions)  # a name that is not a string (a list) cannot key the cache
    except (KeyError, TypeError):
        return None
    return functions, side


class _OtherStructure(Exception):
    """Internal: a node list's inputs differ from the structure tried (same functions)."""


class _Structure:
    """What one structure compiles to (``None`` fields: that mode takes the slow path).

    Each generated function takes the node list itself: it unpacks the nodes,
    raises :class:`_OtherStructure` when their ``inputs`` are not this
    structure's, and reads the side inputs it needs.
    """

    __slots__ = ("run", "key", "params")

    def __init__(self, run: Callable | None, key: tuple | None, params: Callable | None):
        self.run = run  # (positions, node lists, scene indices, bindings, out, K) -> (other, slow)
        self.key = key  # canonical batched key
        self.params = params  # nodes -> parameter codes


# [batched][spelling]: functions -> structures (each mode compiles only what it runs)
# [batched]: functions -> structures (each mode compiles what it runs; both spellings share them)
_CACHES: tuple[dict[tuple, list[_Structure]], ...] = ({}, {})
_BUILT_FOR = [_VERSION[0]]


def clear_structure_cache() -> None:
    """Forget every compiled structure and text (for benchmarks that time compilation too)."""
    for cache in _CACHES:
        cache.clear()
    _CODE.clear()


def _structure(functions: tuple, key: str, nodes: list, where: str, batched: bool) -> _Structure:
    """Compile the structure of ``nodes`` for one mode and cache it (when no cached one fits).

    Raises:
        ProgramError: ``nodes`` is malformed (then nothing is cached).
    """
    if batched:
        program = _decode(nodes, where)
        inputs = [list(n["inputs"]) for n in nodes]  # from_clevr accepted them: present, integers
        reads = [0] * len(nodes)
        for ins in inputs:
            for j in ins:
                reads[j] += 1
        s = _Structure(None, *_compile_encoder(functions, inputs, key, reads, program, nodes))
    else:
        # The evaluator judges every node list's words and spelling itself (a bad one takes the
        # slow path, whose from_clevr names it), so only the structure needs checking here: read
        # from the signatures, without building a Program.  Anything it does not accept goes
        # through from_clevr and the type check, which raise the error (or accept it after all).
        try:
            inputs = [list(n["inputs"]) for n in nodes]
            ok = _fits_signatures(functions, inputs, nodes)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            _decode(nodes, where)
            inputs = [list(n["inputs"]) for n in nodes]
        s = _Structure(_compile_run(functions, inputs), None, None)
    _CACHES[batched].setdefault(functions, []).append(s)
    return s


def _fits_signatures(functions: tuple, inputs: list[list], nodes: list) -> bool:
    """Whether a structure passes ``from_clevr`` and the executor's type check, words aside.

    The same rules, read straight from the operation table: every node a dict
    naming a known operation, as many ``inputs`` as its signature has, each an
    ``int`` index of an earlier node whose output type fits, nesting at most
    ``MAX_DEPTH`` deep and (for DAGs) a tree expansion of at most ``MAX_EXPANDED``
    calls.  (The type check of a DAG covers the root's nodes and every unread
    node's, which together are all nodes, as here.)  ``False`` only means "not
    shown here": the caller then asks ``from_clevr`` and the type check.
    """
    outs: list[str] = []
    depths: list[int] = []
    sizes: list[int] = []
    for i, (name, ins, node) in enumerate(zip(functions, inputs, nodes, strict=True)):
        spec = OPS.get(name) if type(name) is str else None
        if spec is None or type(node) is not dict or len(ins) != len(spec.inputs):
            return False
        depth = size = 1
        for j, want in zip(ins, spec.inputs, strict=True):
            if type(j) is not int or not 0 <= j < i or not compatible(outs[j], want):
                return False
            depth = max(depth, depths[j] + 1)
            size += sizes[j]
        if depth > MAX_DEPTH or (size > MAX_EXPANDED and size > i + 1):
            return False
        outs.append(spec.output)
        depths.append(depth)
        sizes.append(size)
    return True


def _prologue(
    inputs: list,
    valued: set[int],
    env: dict[str, object],
    own: frozenset[int] = frozenset(),
) -> list[str]:
    """Source lines that unpack the nodes, check their inputs and read their side inputs.

    ``valued`` nodes take one word (bound to ``w<i>``); ``own`` nodes are
    operations that read their side inputs themselves; every other node must
    have none.
    """
    n = len(inputs)
    lines = [f"    {''.join(f'n{i}, ' for i in range(n))}= N"]
    env["I"] = [list(ins) for ins in inputs]  # every node's inputs, compared in one list
    checks = ", ".join(f"n{i}['inputs']" for i in range(n))
    lines += [f"    if [{checks}] != I:", "        raise _OtherStructure"]
    bare = [f"n{i}.get(K)" for i in range(n) if i not in valued and i not in own]
    if bare:
        lines += [f"    if {' or '.join(bare)}:", "        raise ValueError"]
    lines += [f"    w{i}, = n{i}[K]" for i in sorted(valued)]
    env["_OtherStructure"] = _OtherStructure
    return lines


def _builtin(name: str) -> bool:
    spec = OPS.get(name)
    return spec is not None and spec.fn is BUILTIN_FNS.get(name)


# ---------------------------------------------------------------------- the evaluator
_CODE: dict[str, CodeType] = {}  # generated source -> its compiled code


def _define(lines: list[str], env: dict[str, object]) -> None:
    """Run generated source (function definitions) in ``env``, compiling each text once.

    The source of a structure names its per-structure constants (attributes,
    vocabularies, code tables) instead of spelling them out, so structures that
    differ only in which attribute a filter reads share one compiled text.
    """
    text = "\n".join(lines)
    code = _CODE.get(text)
    if code is None:
        code = _CODE[text] = compile(text, "<node-list structure>", "exec")
    exec(code, env)  # noqa: S102 -- source built by this module from the operation table


_INLINE: dict[str, str] = {  # built-in operations as expressions of their inputs a, b
    # vb: the scene's value bitsets by word code (scene_table.value_rows), objs: its objects,
    # rels: its relationships; a word outside its vocabulary fails the C<i> lookup
    "scene": "vb[ANY]",
    "unique": "ONE[{a}]",  # a set of one object -> its index, else InvalidExecution
    "count": "{a}.bit_count()",
    "exist": "{a} != 0",
    # relate reads the scene's own rows: relationships[R][i]
    "relate": "RB[tuple(rels[{w}][{a}])]",
    "union": "{a} | {b}",
    "intersect": "{a} & {b}",
    "equal_integer": "{a} == {b}",
    "equal_object": "{a} == {b}",
    "less_than": "{a} < {b}",
    "greater_than": "{a} > {b}",
    **{f"filter_{a}": "{a} & vb[C{i}[{w}]]" for a in VALUE_TYPES.values()},
    **{f"query_{a}": "G{i}(objs[{a}])" for a in VALUE_TYPES.values()},
    **{f"same_{a}": "vb[C{i}[G{i}(objs[{a}])]] & ~(1 << {a})" for a in VALUE_TYPES.values()},
    **{f"equal_{a}": "{a} == {b}" for a in VALUE_TYPES.values()},
}


def _compile_run(functions: tuple, inputs: list) -> Callable | None:
    """Generate the evaluator of one structure.

    Returns:
        ``run(nodes, K, scene) -> answer`` (``None``: invalid on that scene;
        ``K``: the side-input key of the node list's spelling; ``scene``: the
        scene's value bitsets, objects and relationships, see :func:`_single`), or ``None`` when the root gives
        no answer or an operation has no inline form (the slow path answers
        those).  It raises :class:`_OtherStructure` when the ``inputs`` are not
        this structure's, and one of :data:`_FAILURES` when the fast path
        cannot judge the node list (a malformed node, a word outside its
        vocabulary, a scene the value table does not hold).
    """
    root = OPS[functions[-1]]
    if root.output not in ANSWER_TYPES or not all(
        _builtin(name) and name in _INLINE for name in functions
    ):
        return None
    env: dict[str, object] = {
        "ANY": ANY,
        "ONE": _ONE,
        "RB": _ROW_BITS,  # a bad index (negative, too large) fails: the slow path judges
    }
    valued: set[int] = set()
    words: list[tuple[int, frozenset]] = []  # (node, vocabulary) of the words
    n = len(functions)
    reads = [0] * n
    readers_once = [True] * n  # every reader's form names its input once
    for k, ins in enumerate(inputs):
        for j in ins:
            reads[j] += 1
            readers_once[j] &= _ONCE[functions[k]]
    exprs: list[str] = []  # each node's value as an expression of the others' (x<j> or inlined)
    body: list[str] = []
    for i, (name, ins) in enumerate(zip(functions, inputs, strict=True)):
        spec = OPS[name]
        if spec.side_inputs:
            valued.add(i)
            words.append((i, _vocabulary(spec.side_inputs[0])))
        attr = _ATTR_OF_NAME.get(name)
        if attr is not None:
            env[f"C{i}"] = _CODES[attr]
            env[f"G{i}"] = attrgetter(attr)
        template = _INLINE[name]
        args = [exprs[j] for j in ins]
        if name.startswith("filter_") and functions[ins[0]] == "scene":
            template = template.replace("{a} & ", "")  # the scene's objects hold every word's
        expr = template.format(
            a=args[0] if args else "", b=args[1] if len(args) > 1 else "", w=f"w{i}", i=i
        )
        # A node read once is written into its reader's expression (no variable), unless the
        # reader's form names its input twice (same_*); scene nodes are always written in
        # (they cannot fail), and an unread scene node is not evaluated at all.
        if i < n - 1 and (name == "scene" or (reads[i] == 1 and readers_once[i])):
            exprs.append(f"({expr})")
        else:
            exprs.append(f"x{i}")
            body.append(f"    x{i} = {expr}")
    last = f"x{n - 1}"
    if root.output == BOOL:
        ret = f"    return 'yes' if {last} else 'no'"
    elif root.output == INTEGER:
        ret = f"    return NUM[{last}]"  # a count of at most 64 objects
        env["NUM"] = _NUMERALS
    else:
        ret = f"    return {last}"
    used = "".join(body)
    head = [
        "def run(N, K, S):",
        *_prologue(inputs, valued, env),
        # the scene's parts this structure reads
        "    vb, objs, rels = S" if "rels[" in used else "    vb, objs, _ = S" if "objs[" in used
        else "    vb = S[0]",
    ]
    _define([*head, *body, ret], env)
    run = env["run"]
    # An invalid execution raises InvalidExecution out of the evaluator (no try statement in
    # each text: 8% of its compile time); the caller then checks these words (_known_words).
    run.words = words  # type: ignore[attr-defined]
    return run  # type: ignore[no-any-return]


@functools.cache
def _vocabulary(type_name: str) -> frozenset:
    """The words of a side-input type as a frozenset (built once per type)."""
    return frozenset(side_vocabulary(type_name) or ())


# forms that name each input once (a node read only by such forms is written into them)
_ONCE = {name: form.count("{a}") + form.count("{b}") <= 1 for name, form in _INLINE.items()}


# ---------------------------------------------------------------------- the batched encoder
_UNARY = {"unique": "U", "count": "C", "exist": "E"}
_BINARY = {"union": ("OR", None), "intersect": ("AND", None), "equal_object": ("EQ", None)}
_BINARY.update({"equal_integer": ("CMP", 0), "less_than": ("CMP", 1), "greater_than": ("CMP", 2)})
_BINARY.update({f"equal_{a}": ("EQ", None) for a in ATTRS})
_ATTR_PARAM = {f"query_{a}": ("Q", k) for k, a in enumerate(ATTRS)}
_ATTR_PARAM.update({f"same_{a}": ("SM", k) for k, a in enumerate(ATTRS)})
_CODES = {a: {v: code for (a2, v), code in WORD_CODE.items() if a2 == a} for a in ATTRS}
_REL = {r: k for k, r in enumerate(RELATIONS)}


class _NotCanonical(Exception):
    """Internal: a structure the generated batched encoder does not cover."""


def _compile_encoder(
    functions: tuple, inputs: list, side: str, reads: list[int], program: Program, sample: list
) -> tuple[tuple | None, Callable | None]:
    """The canonical key of one structure and ``params(nodes) -> codes``, or ``(None, None)``.

    Mirrors :func:`~reasoning.executor.encode.encode` (pre-order from the root,
    filter chains merged into ``F<k>`` nodes) on built-in operations, and is
    checked against it on the structure's first node list.
    """
    key: list[str] = [ROOT_KINDS.get(OPS[functions[-1]].output, "None")]
    params: list[str] = []
    valued: set[int] = set()
    env: dict[str, object] = {"ANY": ANY, "REL": _REL}

    def visit(i: int) -> None:
        name = functions[i]
        if not _builtin(name):
            raise _NotCanonical
        if name in _ATTR_OF:
            codes = []
            while functions[i] in _ATTR_OF and _builtin(functions[i]):
                valued.add(i)
                env[f"C{i}"] = _CODES[_ATTR_OF[functions[i]]]
                codes.append(f"C{i}[w{i}]")
                (i,) = inputs[i]
            width = -(-len(codes) // 4) * 4
            key.append(f"F{width}")
            params.extend(codes + ["ANY"] * (width - len(codes)))
            visit(i)
        elif name == "scene":
            key.append("S")
        elif name in _UNARY:
            key.append(_UNARY[name])
            visit(inputs[i][0])
        elif name == "relate":
            valued.add(i)
            key.append("R")
            params.append(f"REL[w{i}]")
            visit(inputs[i][0])
        elif name in _ATTR_PARAM:
            token, k = _ATTR_PARAM[name]
            key.append(token)
            env[f"K{i}"] = k
            params.append(f"K{i}")
            visit(inputs[i][0])
        elif name in _BINARY:
            token, op = _BINARY[name]
            key.append(token)
            if op is not None:
                params.append(str(op))
            visit(inputs[i][0])
            visit(inputs[i][1])
        else:
            raise _NotCanonical

    if program.graph is not None and not _tree_like(program.graph):
        return None, None
    try:
        visit(len(functions) - 1)
    except _NotCanonical:
        return None, None
    unread = {i for i, n in enumerate(reads[:-1]) if n == 0}
    if any(functions[i] != "scene" for i in unread):
        return None, None
    lines = ["def params(N, K):", *_prologue(inputs, valued, env)]
    lines.append(f"    return [{', '.join(params)}]")
    _define(lines, env)
    fn = env["params"]
    try:
        ok = encode(program.root) == (tuple(key), fn(sample, side))  # type: ignore[operator]
    except (_OtherStructure, *_FAILURES):  # e.g. inputs given as a tuple: the slow path reads it
        ok = False
    return (tuple(key), fn) if ok else (None, None)


# ---------------------------------------------------------------------- answering
def answer_node_lists(
    node_lists: Sequence[object],
    scenes: Sequence[SceneGraph],
    scene_indices: Sequence[int],
    *,
    batched: bool = True,
    names: Sequence[str] | None = None,
    errors: dict[int, NesyError] | None = None,
) -> list[str | None]:
    """Answer CLEVR node list ``k`` on ``scenes[scene_indices[k]]`` for every k.

    Args:
        node_lists: The programs as parsed JSON (CLEVR node lists, either
            spelling, DAGs included).
        scenes: The scenes; each is bound (or tensorised) once.
        scene_indices: Index into ``scenes`` per program.
        batched: Vectorised plans (see :mod:`reasoning.executor.batched`) or one
            question at a time; the answers are the same.
        names: How to name each program in error messages (default ``"program k"``).
        errors: When given, a malformed program's error is stored here under its
            position (its answer is ``None``) and the others are answered;
            otherwise the first error is raised.

    Returns:
        Normalised answers, ``None`` where the execution is invalid: exactly what
        ``execute(from_clevr(nodes), scene)`` answers.

    Raises:
        ProgramError: a malformed program (when ``errors`` is not given).
        DataError: ``scene_indices`` of the wrong length.
    """
    if len(scene_indices) != len(node_lists):
        raise DataError(
            f"answer_node_lists: {len(node_lists)} programs but {len(scene_indices)} scene indices"
        )
    c = compiled.module()
    if c is None or not batched:  # batched C checks every index itself (see _compiled)
        _check_indices(scene_indices, len(scenes), names)
    if _BUILT_FOR[0] != _VERSION[0]:  # an operation was registered: recompile
        clear_structure_cache()
        _BUILT_FOR[0] = _VERSION[0]

    def where(k: int) -> str:
        return _where_of(names, k)

    found: dict[int, NesyError] = {} if errors is None else errors

    def fail(k: int, exc: NesyError) -> None:
        found[k] = exc

    if c is not None:
        run = functools.partial(_compiled, c, batched, names)
    else:
        run = _batched if batched else _single
        compiled.LAST_RUN.update(compiled=False, questions=len(node_lists), fallback=len(node_lists))
    _ROW_BITS.clear()
    try:
        out = run(node_lists, scenes, scene_indices, where, fail)
    finally:
        _ROW_BITS.clear()
    if errors is None and found:
        raise found[min(found)]  # the first malformed program (questions are grouped, not in order)
    return out


def _check_indices(scene_indices: Sequence[int], n: int, names: Sequence[str] | None) -> None:
    """Raise :class:`DataError` naming the first scene index outside ``0..n-1``."""
    if len(scene_indices) and (min(scene_indices) < 0 or max(scene_indices) >= n):
        bad = next(k for k, i in enumerate(scene_indices) if not 0 <= i < n)
        raise DataError(
            f"{_where_of(names, bad)}: scene index {scene_indices[bad]} is out of range 0..{n - 1}"
        )


def _compiled(
    c: ModuleType,
    batched: bool,
    names: Sequence[str] | None,
    node_lists: Sequence[object],
    scenes: Sequence[SceneGraph],
    scene_indices: Sequence[int],
    where: Callable[[int], str],
    fail: Callable,
) -> list[str | None]:
    """The compiled path (:mod:`reasoning.executor.compiled`): the C module answers what it can.

    Single mode calls it once per question, batched mode once for all.  The
    questions it leaves (:data:`~reasoning.executor.compiled.SLOW`: an
    operation it does not run, anything irregular) are answered by this
    module's Python path for that mode, under their own positions and names.
    """
    bound = c.bind(scenes)
    if batched:
        out, slow = c.answer_all(node_lists, bound, scene_indices)
    else:
        one, SLOW = c.answer, compiled.SLOW
        out = [one(nodes, bound, i) for nodes, i in zip(node_lists, scene_indices, strict=True)]
        slow = [k for k, a in enumerate(out) if a is SLOW]
    compiled.LAST_RUN.update(compiled=True, questions=len(node_lists), fallback=len(slow))
    if slow:
        if batched:  # the C module leaves a question whose scene index is bad: name it
            _check_indices(scene_indices, len(scenes), names)
        rest = (_batched if batched else _single)(
            [node_lists[k] for k in slow],
            scenes,
            [scene_indices[k] for k in slow],
            lambda j: where(slow[j]),
            lambda j, exc: fail(slow[j], exc),
        )
        for k, a in zip(slow, rest, strict=True):
            out[k] = a
    return out


def _known_words(nodes: list, side: str, words: list[tuple[int, frozenset]]) -> bool:
    """After an evaluator's execution was invalid: whether every word of ``nodes`` is known.

    An unknown word makes the program malformed, not invalid on the scene (the
    slow path then names it), so the answer is ``None`` only when this holds.
    """
    return all(nodes[i][side][0] in vocab for i, vocab in words)


def _call(run: Callable, nodes: list, side: str, scene: tuple) -> str | None:
    """``run(nodes, side, scene)``, an invalid execution answered ``None`` (words checked)."""
    try:
        return run(nodes, side, scene)  # type: ignore[no-any-return]
    except InvalidExecution:
        if _known_words(nodes, side, run.words):  # type: ignore[attr-defined]
            return None
        raise ValueError from None


class _Slow(Exception):
    """Internal: the fast path cannot judge this node list; ``from_clevr`` and the executors will."""


def _single(
    node_lists: Sequence[object],
    scenes: Sequence[SceneGraph],
    scene_indices: Sequence[int],
    where: Callable[[int], str],
    fail: Callable,
) -> list[str | None]:
    """Single mode: each question in turn, by its structure's generated evaluator.

    Questions are taken in the order given (so a scene's questions, written
    together, find its tables in the processor's caches), each looked up by
    its tuple of functions.  The scenes are bound all at once: their value
    bitsets, as Python ints per scene (:func:`~reasoning.executor.scene_table.value_rows`,
    the rows of the batched :class:`SceneTable`, without a ``BoundScene`` per
    scene); ``relate`` reads the scene's own relationship rows.  A scene the
    table does not hold (more than 64 objects, a word outside the vocabulary)
    has no row, and its questions take the slow path.
    """
    out: list[str | None] = [None] * len(node_lists)
    rows = list(
        zip(value_rows(scenes), map(_OBJECTS, scenes), map(_RELATIONSHIPS, scenes), strict=True)
    )
    runs = {f: ss[0].run for f, ss in _CACHES[False].items()}  # the first structure of each
    slow: list[int] = []
    for k, (nodes, i) in enumerate(zip(node_lists, scene_indices, strict=True)):
        try:
            if "function" in nodes[0]:  # type: ignore[index]
                functions, side = tuple(map(_FUNCTION, nodes)), "value_inputs"  # type: ignore[call-overload]
            else:
                functions, side = tuple(map(_TYPE, nodes)), "side_inputs"  # type: ignore[call-overload]
            run = runs.get(functions)
            if run is None:
                raise _OtherStructure
            out[k] = run(nodes, side, rows[i])
        except InvalidExecution:  # the answer stays None, unless a word is unknown
            if not _known_words(nodes, side, run.words):  # type: ignore[arg-type]
                slow.append(k)
        except _OtherStructure:
            try:
                out[k] = _other_structure(functions, side, nodes, rows[i], where(k), runs)
            except ProgramError as exc:
                fail(k, exc)
            except (_Slow, *_FAILURES):
                slow.append(k)
        except _FAILURES:  # not a list of dicts, a missing key, a bad word ...
            slow.append(k)
    for k in slow:
        out[k] = _slow(node_lists[k], scenes[scene_indices[k]], where(k), k, fail)
    return out


def _other_structure(
    functions: tuple, side: str, nodes: list, scene: tuple, where: str, runs: dict
) -> str | None:
    """Answer a node list its functions' first structure does not fit: another, or a new one.

    Raises:
        ProgramError: the node list is malformed.
        _Slow: (or one of :data:`_FAILURES`) the slow path must judge it.
    """
    for s in _CACHES[False].get(functions, ()):
        if s.run is None:
            raise _Slow  # no answer type or no inline form: the slow path answers
        try:
            return _call(s.run, nodes, side, scene)
        except _OtherStructure:
            continue
    s = _structure(functions, side, nodes, where, False)
    runs.setdefault(functions, s.run)
    if s.run is None:
        raise _Slow
    try:
        return _call(s.run, nodes, side, scene)
    except _OtherStructure:  # its own structure did not take it (inputs as a tuple)
        raise _Slow from None


def _where_of(names: Sequence[str] | None, k: int) -> str:
    return names[k] if names is not None else f"program {k}"


def _decode(nodes: object, where: str) -> Program:
    program = from_clevr(nodes, where=where)  # type: ignore[arg-type]
    try:
        default_executor.check(program)
    except ProgramError as exc:
        raise ProgramError(f"{where}: {exc}") from None
    return program


def _slow(nodes: object, scene: SceneGraph, where: str, k: int, fail: Callable) -> str | None:
    """One question the ordinary way: ``from_clevr``, check, execute."""
    try:
        return default_executor.execute(_decode(nodes, where), scene, trace=False).answer
    except NesyError as exc:
        fail(k, exc)
        return None


def _encoded(nodes: object, where: str, first: dict) -> tuple[tuple, list[int]] | Program:
    """A node list's batched key and parameter codes, or its Program for the single executor.

    Tries every compiled structure of its functions, compiles a new one (adding
    it to ``first`` when its functions had none), and else reads the node list
    with ``from_clevr`` and :func:`~reasoning.executor.encode.encode`.

    Raises:
        NesyError: the node list is malformed.
    """
    found = _functions(nodes)
    if found is not None:
        functions, side = found
        for s in _CACHES[True].get(functions, ()):
            if s.params is None:
                break
            try:
                return s.key, s.params(nodes, side)  # type: ignore[return-value]
            except _OtherStructure:
                continue
            except _FAILURES:
                break
        else:
            s = _structure(functions, side, nodes, where, True)
            if s.params is not None:
                first.setdefault(functions, s)
                try:
                    return s.key, s.params(nodes, side)  # type: ignore[return-value]
                except _FAILURES:
                    pass
    program = _decode(nodes, where)
    if program.graph is not None and not _tree_like(program.graph):
        return program
    enc = encode(program.root)
    return program if enc is None else enc


def _batched(
    node_lists: Sequence[object],
    scenes: Sequence[SceneGraph],
    scene_indices: Sequence[int],
    where: Callable[[int], str],
    fail: Callable,
) -> list[str | None]:
    groups: dict[tuple, tuple[list[int], list[list[int]]]] = {}
    programs: dict[int, Program] = {}  # positions answered by the single executor
    failed: list[int] = []
    first = {f: ss[0] for f, ss in _CACHES[True].items() if ss[0].params is not None}
    for k, nodes in enumerate(node_lists):
        try:  # the common case: the first structure of these functions takes the node list
            if "function" in nodes[0]:  # type: ignore[index]
                s = first[tuple(map(_FUNCTION, nodes))]  # type: ignore[call-overload]
                row = s.params(nodes, "value_inputs")  # type: ignore[misc]
            else:
                s = first[tuple(map(_TYPE, nodes))]  # type: ignore[call-overload]
                row = s.params(nodes, "side_inputs")  # type: ignore[misc]
            key = s.key
        except (_OtherStructure, *_FAILURES):  # KeyError: not compiled yet
            try:
                got = _encoded(nodes, where(k), first)
            except NesyError as exc:
                fail(k, exc)
                failed.append(k)
                continue
            if isinstance(got, Program):
                programs[k] = got
                continue
            key, row = got
        g = groups.get(key)
        if g is None:
            groups[key] = ([k], [row])
        else:
            g[0].append(k)
            g[1].append(row)
    arrays = {
        key: (np.array(pos, dtype=np.int64), np.array(rows, dtype=np.int64).reshape(len(pos), -1))
        for key, (pos, rows) in groups.items()
    }
    fallback = sorted(programs)
    fallback_programs: list = [None] * len(node_lists)
    for k in fallback:
        fallback_programs[k] = programs[k]
    table = SceneTable(scenes)
    sidx = np.asarray(scene_indices, dtype=np.int64)
    if not table.fits.all():  # questions on scenes the table cannot hold: the single executor
        for pos, _ in arrays.values():
            for k in pos[~table.fits[sidx[pos]]].tolist():
                fallback_programs[k] = _decode(node_lists[k], where(k))  # read once already
    plan = BatchPlan(len(node_lists), arrays, fallback, fallback_programs)
    out = plan.run(table, sidx, scenes)
    for k in failed:
        out[k] = None
    return out


# Inline forms where the structure allows; every other operation (the fused
# ``filter``/``relate_filter`` family, registered experiments) runs through
# ``from_clevr`` and the ordinary executors, so the mode covers OPS as well.
register_mode("node lists", lambda: {*_INLINE, *OPS})
