"""A plain per-question interpreter of CLEVR semantics: the speed reference.

This is what a straightforward implementation of the CLEVR question engine
(Johnson et al., CVPR 2017) looks like: it walks a program's node list in order,
keeps object sets as Python lists of indices, filters by comparing each
object's attribute dict, and reads ``relationships[R][i]`` from the scene dict.
No binding, no bitsets, no caching.  The executor speed suite measures
:mod:`reasoning.executor` against it, so "faster than a plain interpreter" is a
measured figure; the suite also checks that both give the same answers.

Inputs are the official JSON forms: a CLEVR scene dict (``objects`` with
``color``/``shape``/``size``/``material``, ``relationships``) and a CLEVR node
list (``function``, ``inputs``, ``value_inputs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["plain_answer", "HANDLERS"]

_INVALID = object()
_OBJECT_ROOTS = frozenset({"unique", "filter_unique", "relate_filter_unique"})
_SLOTS = ("size", "color", "material", "shape")  # order of the composite nodes' side inputs


def _filter(objs: list[int], scene: dict, attr: str, value: str) -> list[int]:
    return [i for i in objs if scene["objects"][i][attr] == value]


def _filter_slots(objs: list[int], scene: dict, values: Sequence[str]) -> list[int]:
    for attr, value in zip(_SLOTS, values, strict=False):
        if value:
            objs = _filter(objs, scene, attr, value)
    return objs


def _unique(objs: list[int]) -> object:
    return objs[0] if len(objs) == 1 else _INVALID


def _same(scene: dict, obj: int, attr: str) -> list[int]:
    value = scene["objects"][obj][attr]
    return [j for j, o in enumerate(scene["objects"]) if j != obj and o[attr] == value]


def _relate_slots(scene: dict, obj: int, values: Sequence[str]) -> list[int]:
    return _filter_slots(list(scene["relationships"][values[0]][obj]), scene, values[1:])


Handler = Callable[[dict, list, list], object]
HANDLERS: dict[str, Handler] = {
    "scene": lambda s, x, v: list(range(len(s["objects"]))),
    "unique": lambda s, x, v: _unique(x[0]),
    "relate": lambda s, x, v: list(s["relationships"][v[0]][x[0]]),
    "union": lambda s, x, v: sorted(set(x[0]) | set(x[1])),
    "intersect": lambda s, x, v: sorted(set(x[0]) & set(x[1])),
    "count": lambda s, x, v: len(x[0]),
    "exist": lambda s, x, v: len(x[0]) > 0,
    "equal_integer": lambda s, x, v: x[0] == x[1],
    "less_than": lambda s, x, v: x[0] < x[1],
    "greater_than": lambda s, x, v: x[0] > x[1],
    "equal_object": lambda s, x, v: x[0] == x[1],
    "filter": lambda s, x, v: _filter_slots(x[0], s, v),
    "filter_unique": lambda s, x, v: _unique(_filter_slots(x[0], s, v)),
    "filter_count": lambda s, x, v: len(_filter_slots(x[0], s, v)),
    "filter_exist": lambda s, x, v: len(_filter_slots(x[0], s, v)) > 0,
    "relate_filter": lambda s, x, v: _relate_slots(s, x[0], v),
    "relate_filter_unique": lambda s, x, v: _unique(_relate_slots(s, x[0], v)),
    "relate_filter_count": lambda s, x, v: len(_relate_slots(s, x[0], v)),
    "relate_filter_exist": lambda s, x, v: len(_relate_slots(s, x[0], v)) > 0,
}
for _attr in _SLOTS:
    HANDLERS[f"filter_{_attr}"] = lambda s, x, v, a=_attr: _filter(x[0], s, a, v[0])
    HANDLERS[f"query_{_attr}"] = lambda s, x, v, a=_attr: s["objects"][x[0]][a]
    HANDLERS[f"equal_{_attr}"] = lambda s, x, v: x[0] == x[1]
    HANDLERS[f"same_{_attr}"] = lambda s, x, v, a=_attr: _same(s, x[0], a)
del _attr


def plain_answer(nodes: Sequence[dict], scene: dict) -> str | None:
    """Run a CLEVR node list on a CLEVR scene dict; the normalised answer or None if invalid."""
    outputs: list[object] = []
    for node in nodes:
        value = HANDLERS[node["function"]](
            scene, [outputs[j] for j in node["inputs"]], node["value_inputs"]
        )
        if value is _INVALID:
            return None
        outputs.append(value)
    answer = outputs[-1]
    if nodes[-1]["function"] in _OBJECT_ROOTS:
        return None  # a program that ends in an object has no answer
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    if isinstance(answer, list):
        return None  # a program that ends in an object set has no answer
    return str(answer)
