"""The operation table of the symbolic CLEVR executor: one small function per op.

Signatures are not written here: the catalogue (:class:`~reasoning.dsl.Catalogue`,
``reasoning/dsl/clevr_functions.json``) holds every function's inputs, side
inputs and output, and this module attaches one implementation to each
catalogue entry by name::

    attach("count", lambda bs, objs: objs.bit_count())

Adding an operation is one catalogue entry and one :func:`attach` per executor
mode (see :mod:`reasoning.dsl.function_table`; this table is the ``symbolic``
mode, which the traced executor runs and the fast evaluator falls back to).
An operation function takes the :class:`~reasoning.executor.bound_scene.BoundScene`
first, then its input values, then its side inputs (words)::

    ObjectSet  int bitset over object indices     Object   int object index
    Integer    int                                 Bool     bool
    Shape/Color/Size/Material   str (vocabulary word)

Semantics are those of CLEVR's question engine: ``unique`` on a set whose size
is not 1 makes the execution invalid (:class:`InvalidExecution`), ``relate``
reads ``relationships[R][i]``, ``same_*`` excludes the object itself, and the
composite nodes (``filter_unique``, ``relate_filter_count``, ...) are the chains
they stand for, with an empty or missing side input meaning "no constraint".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from physics.worlds.clevr_properties import ATTRIBUTES
from reasoning.dsl.catalogue import Catalogue
from reasoning.dsl.function_table import register_mode
from reasoning.errors import ProgramError
from reasoning.executor.bound_scene import BoundScene

__all__ = [
    "OpSpec",
    "OPS",
    "CATALOGUE",
    "attach",
    "detach",
    "op_spec",
    "register",
    "InvalidExecution",
    "OBJECT_SET",
    "OBJECT",
    "INTEGER",
    "BOOL",
    "VALUE_TYPES",
    "ANSWER_TYPES",
    "SLOTS",
    "BUILTIN_FNS",
    "table_version",
    "implementation_table",
]

CATALOGUE = Catalogue.default()  # the signatures of every built-in operation

OBJECT_SET = "ObjectSet"
OBJECT = "Object"
INTEGER = "Integer"
BOOL = "Bool"
# side-input / value type -> the SceneGraph attribute it names (Relation has none)
VALUE_TYPES: Mapping[str, str] = MappingProxyType(
    {t: t.lower() for t in CATALOGUE.vocabulary_types() if t.lower() in ATTRIBUTES}
)
# types a finished program may return: the outputs of the catalogue's terminal functions
ANSWER_TYPES = frozenset(
    CATALOGUE.signature(n).output for n in CATALOGUE.names if CATALOGUE.signature(n).terminal
)
# attributes of the composite nodes' filter slots, in the catalogue's side-input order
SLOTS: tuple[str, ...] = tuple(VALUE_TYPES[t] for t in CATALOGUE.signature("filter").side_inputs)


class InvalidExecution(Exception):
    """Raised inside an op when CLEVR semantics make the execution invalid.

    Not a user error: the executor turns it into ``ExecutionResult(valid=False)``.
    """


@dataclass(frozen=True)
class OpSpec:
    """One operation: a catalogue signature with its implementation.

    Attributes:
        name: Function name as in CLEVR programs (``"filter_color"``).
        inputs: Types of the child programs, in order.
        side_inputs: Types of the literal side inputs, in order.
        output: Type of the result.
        fn: ``fn(bound_scene, *inputs, *side_inputs) -> output``.
        optional_side: Side inputs may be missing or ``""`` (template composites).
    """

    name: str
    inputs: tuple[str, ...]
    side_inputs: tuple[str, ...]
    output: str
    fn: Callable[..., object]
    optional_side: bool = False

    @property
    def template_only(self) -> bool:
        """The catalogue's name for :attr:`optional_side` (what the type-checker reads)."""
        return self.optional_side


OPS: dict[str, OpSpec] = {}


def op_spec(name: str, fn: Callable[..., object], catalogue: Catalogue | None = None) -> OpSpec:
    """``fn`` attached to the catalogue entry ``name``: an :class:`OpSpec` with its signature.

    Args:
        name: A function of ``catalogue``.
        fn: Its implementation (see the module docstring for the calling convention).
        catalogue: Where the signature comes from; default :data:`CATALOGUE`.

    Raises:
        ProgramError: ``name`` is not in the catalogue (the message lists close matches).
    """
    sig = (catalogue or CATALOGUE).signature(name)
    return OpSpec(name, sig.inputs, sig.side_inputs, sig.output, fn, sig.template_only)


def attach(name: str, fn: Callable[..., object], catalogue: Catalogue | None = None) -> OpSpec:
    """Put ``fn`` in :data:`OPS` as the implementation of catalogue function ``name``.

    The default executor and the batched executor see the change at their next
    call; an operation without a vectorised form (any new one, or a built-in
    replaced by another function) is answered one question at a time in batched mode.

    Raises:
        ProgramError: ``name`` is not in the catalogue.
    """
    return _put(op_spec(name, fn, catalogue))


def register(
    name: str,
    inputs: tuple[str, ...],
    side_inputs: tuple[str, ...],
    output: str,
    fn: Callable[..., object],
    *,
    optional_side: bool = False,
) -> OpSpec:
    """Add an operation with a signature written out here (replacing one of the same name).

    For quick experiments outside the catalogue: an operation that stays belongs
    in the catalogue and is added with :func:`attach`, and the function-table test
    reports one that is not. A catalogue function keeps its catalogue signature.

    Raises:
        ProgramError: ``name`` is a catalogue function and the signature differs from its entry.
    """
    spec = OpSpec(name, tuple(inputs), tuple(side_inputs), output, fn, optional_side)
    if name in CATALOGUE:
        known = op_spec(name, fn)
        if known != spec:
            raise ProgramError(
                f"register: {name} is a catalogue function with signature {known.inputs} "
                f"{known.side_inputs} -> {known.output}; use attach({name!r}, fn)"
            )
    return _put(spec)


def detach(name: str) -> OpSpec | None:
    """Remove operation ``name`` from :data:`OPS` (the executors see it gone at their next call).

    Returns:
        The removed operation, or ``None`` if there was none.
    """
    spec = OPS.pop(name, None)
    _VERSION[0] += 1
    return spec


def _put(spec: OpSpec) -> OpSpec:
    OPS[spec.name] = spec
    _VERSION[0] += 1
    return spec


def table_version() -> int:
    """A counter bumped by every :func:`attach` / :func:`register` (executors rebuild their tables when it moves)."""
    return _VERSION[0]


_VERSION = [0]


# ---------------------------------------------------------------- primitive ops
def _scene(bs: BoundScene) -> int:
    return bs.all


def _filter(attr: str) -> Callable[[BoundScene, int, str], int]:
    def filter_attr(bs: BoundScene, objs: int, value: str) -> int:
        return objs & bs.bits[attr][value]

    return filter_attr


def _unique(bs: BoundScene, objs: int) -> int:
    if objs & (objs - 1) or not objs:  # not exactly one bit set
        raise InvalidExecution(f"unique needs exactly 1 object, got a set of {objs.bit_count()}")
    return objs.bit_length() - 1


def _relate(bs: BoundScene, obj: int, relation: str) -> int:
    return bs.rel[relation][obj]


def _union(bs: BoundScene, a: int, b: int) -> int:
    return a | b


def _intersect(bs: BoundScene, a: int, b: int) -> int:
    return a & b


def _count(bs: BoundScene, objs: int) -> int:
    return objs.bit_count()


def _exist(bs: BoundScene, objs: int) -> bool:
    return objs != 0


def _query(attr: str) -> Callable[[BoundScene, int], str]:
    def query_attr(bs: BoundScene, obj: int) -> str:
        return bs.values[attr][obj]

    return query_attr


def _equal(bs: BoundScene, a: object, b: object) -> bool:
    return a == b


def _less_than(bs: BoundScene, a: int, b: int) -> bool:
    return a < b


def _greater_than(bs: BoundScene, a: int, b: int) -> bool:
    return a > b


def _same(attr: str) -> Callable[[BoundScene, int], int]:
    def same_attr(bs: BoundScene, obj: int) -> int:
        return bs.same[attr][obj]

    return same_attr


# ---------------------------------------------------------------- template composites
def _constrain(bs: BoundScene, objs: int, values: tuple[str, ...]) -> int:
    """AND the bitsets of the non-empty [Size, Color, Material, Shape] side inputs."""
    bits = bs.bits
    for attr, value in zip(SLOTS, values, strict=False):
        if value:
            objs &= bits[attr][value]
    return objs


def _filter_composite(bs: BoundScene, objs: int, *values: str) -> int:
    return _constrain(bs, objs, values)


def _filter_unique(bs: BoundScene, objs: int, *values: str) -> int:
    return _unique(bs, _constrain(bs, objs, values))


def _filter_count(bs: BoundScene, objs: int, *values: str) -> int:
    return _constrain(bs, objs, values).bit_count()


def _filter_exist(bs: BoundScene, objs: int, *values: str) -> bool:
    return _constrain(bs, objs, values) != 0


def _relate_filter(bs: BoundScene, obj: int, relation: str = "", *values: str) -> int:
    if not relation:
        raise KeyError("relation")  # a relate_* node needs its relation; reported as a ProgramError
    return _constrain(bs, bs.rel[relation][obj], values)


def _relate_filter_unique(bs: BoundScene, obj: int, *values: str) -> int:
    return _unique(bs, _relate_filter(bs, obj, *values))


def _relate_filter_count(bs: BoundScene, obj: int, *values: str) -> int:
    return _relate_filter(bs, obj, *values).bit_count()


def _relate_filter_exist(bs: BoundScene, obj: int, *values: str) -> bool:
    return _relate_filter(bs, obj, *values) != 0


# ---------------------------------------------------------------- the implementations
# In this order (the order of OPS, from which the program sampler draws: another order
# would change the benchmark's programs). A name the catalogue lacks fails here.
def implementation_table(
    *,
    filter_attr: Callable[[str], Callable],
    query_attr: Callable[[str], Callable],
    equal_attr: Callable,
    same_attr: Callable[[str], Callable],
    **others: Callable,
) -> dict[str, Callable]:
    """One executor mode's implementations by catalogue name, the attribute families written once.

    Args:
        filter_attr, query_attr, same_attr: Attribute -> its ``filter_*`` / ``query_*`` /
            ``same_*`` operation.
        equal_attr: The ``equal_*`` operation of every attribute.
        others: The other operations by name (``scene`` first: the symbolic table's order
            is the program sampler's, see below).
    """
    table: dict[str, Callable] = {"scene": others.pop("scene")}
    for attr in VALUE_TYPES.values():
        table[f"filter_{attr}"] = filter_attr(attr)
        table[f"query_{attr}"] = query_attr(attr)
        table[f"equal_{attr}"] = equal_attr
        table[f"same_{attr}"] = same_attr(attr)
    table.update(others)
    return table


_IMPLEMENTATIONS = implementation_table(
    filter_attr=_filter,
    query_attr=_query,
    equal_attr=_equal,
    same_attr=_same,
    scene=_scene,
    unique=_unique,
    relate=_relate,
    union=_union,
    intersect=_intersect,
    count=_count,
    exist=_exist,
    equal_integer=_equal,
    less_than=_less_than,
    greater_than=_greater_than,
    equal_object=_equal,
    filter=_filter_composite,
    filter_unique=_filter_unique,
    filter_count=_filter_count,
    filter_exist=_filter_exist,
    relate_filter=_relate_filter,
    relate_filter_unique=_relate_filter_unique,
    relate_filter_count=_relate_filter_count,
    relate_filter_exist=_relate_filter_exist,
)
for _name, _fn in _IMPLEMENTATIONS.items():
    attach(_name, _fn)
del _name, _fn

# The built-in functions, for the executors' inlined (fused / vectorised) forms: those
# are used only while an operation still has its built-in function.
BUILTIN_FNS: Mapping[str, Callable[..., object]] = MappingProxyType(
    {n: s.fn for n, s in OPS.items()}
)

register_mode("symbolic", lambda: OPS.keys())
