"""The operation table of the symbolic CLEVR executor: one small function per op.

Every CLEVR v1.0 function (Johnson et al., CVPR 2017, ``metadata.json``) and the
template-only composite nodes are registered here by name with their signature::

    register("filter_color", (OBJECT_SET,), ("Color",), OBJECT_SET, _filter("color"))

Adding an operation is one function and one ``register`` line.  An operation
function takes the :class:`~reasoning.executor.bound_scene.BoundScene` first,
then its input values, then its side inputs (words)::

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

from reasoning.executor.bound_scene import BoundScene

__all__ = [
    "OpSpec",
    "OPS",
    "register",
    "InvalidExecution",
    "OBJECT_SET",
    "OBJECT",
    "INTEGER",
    "BOOL",
    "VALUE_TYPES",
    "ANSWER_TYPES",
    "BUILTIN_FNS",
    "table_version",
]

OBJECT_SET = "ObjectSet"
OBJECT = "Object"
INTEGER = "Integer"
BOOL = "Bool"
# side-input / value type -> the SceneGraph attribute it names (Relation has none)
VALUE_TYPES: Mapping[str, str] = MappingProxyType(
    {"Shape": "shape", "Color": "color", "Size": "size", "Material": "material"}
)
ANSWER_TYPES = frozenset({INTEGER, BOOL, *VALUE_TYPES})  # types a finished program may return
FILTER_SIDE = ("Size", "Color", "Material", "Shape")  # CLEVR templates' order for filter nodes


class InvalidExecution(Exception):
    """Raised inside an op when CLEVR semantics make the execution invalid.

    Not a user error: the executor turns it into ``ExecutionResult(valid=False)``.
    """


@dataclass(frozen=True)
class OpSpec:
    """One registered operation.

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


OPS: dict[str, OpSpec] = {}


def register(
    name: str,
    inputs: tuple[str, ...],
    side_inputs: tuple[str, ...],
    output: str,
    fn: Callable[..., object],
    *,
    optional_side: bool = False,
) -> OpSpec:
    """Add an operation to :data:`OPS` (replacing one of the same name).

    The default executor and the batched executor see the change at their next
    call; an operation without a vectorised form (any new one, or a built-in
    replaced by another function) is answered one question at a time in batched mode.
    """
    spec = OpSpec(name, tuple(inputs), tuple(side_inputs), output, fn, optional_side)
    OPS[name] = spec
    _VERSION[0] += 1
    return spec


def table_version() -> int:
    """A counter bumped by every :func:`register` (executors rebuild their tables when it moves)."""
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
    for attr, value in zip(("size", "color", "material", "shape"), values, strict=False):
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


# ---------------------------------------------------------------- the catalogue
SET, OBJ, INT, BOOL_ = OBJECT_SET, OBJECT, INTEGER, BOOL  # short names for the signature table
_RF = ("Relation", *FILTER_SIDE)

register("scene", (), (), SET, _scene)
for _type, _attr in VALUE_TYPES.items():
    register(f"filter_{_attr}", (SET,), (_type,), SET, _filter(_attr))
    register(f"query_{_attr}", (OBJ,), (), _type, _query(_attr))
    register(f"equal_{_attr}", (_type, _type), (), BOOL_, _equal)
    register(f"same_{_attr}", (OBJ,), (), SET, _same(_attr))
register("unique", (SET,), (), OBJ, _unique)
register("relate", (OBJ,), ("Relation",), SET, _relate)
register("union", (SET, SET), (), SET, _union)
register("intersect", (SET, SET), (), SET, _intersect)
register("count", (SET,), (), INT, _count)
register("exist", (SET,), (), BOOL_, _exist)
register("equal_integer", (INT, INT), (), BOOL_, _equal)
register("less_than", (INT, INT), (), BOOL_, _less_than)
register("greater_than", (INT, INT), (), BOOL_, _greater_than)
register("equal_object", (OBJ, OBJ), (), BOOL_, _equal)
register("filter", (SET,), FILTER_SIDE, SET, _filter_composite, optional_side=True)
register("filter_unique", (SET,), FILTER_SIDE, OBJ, _filter_unique, optional_side=True)
register("filter_count", (SET,), FILTER_SIDE, INT, _filter_count, optional_side=True)
register("filter_exist", (SET,), FILTER_SIDE, BOOL_, _filter_exist, optional_side=True)
register("relate_filter", (OBJ,), _RF, SET, _relate_filter, optional_side=True)
register("relate_filter_unique", (OBJ,), _RF, OBJ, _relate_filter_unique, optional_side=True)
register("relate_filter_count", (OBJ,), _RF, INT, _relate_filter_count, optional_side=True)
register("relate_filter_exist", (OBJ,), _RF, BOOL_, _relate_filter_exist, optional_side=True)
del _type, _attr

# The built-in functions, for the executors' inlined (fused / vectorised) forms: those
# are used only while an operation still has its built-in function.
BUILTIN_FNS: Mapping[str, Callable[..., object]] = MappingProxyType(
    {n: s.fn for n, s in OPS.items()}
)
