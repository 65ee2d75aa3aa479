"""The function catalogue and vocabulary that question templates are checked against.

A template names functions (``filter_count``, ``relate``, ...) and typed
parameters (``<C>`` of type ``Color``).  :class:`Metadata` says which functions
exist, how many inputs and side inputs each takes, what each returns, and which
values every parameter type ranges over.  It reads the official CLEVR
``metadata.json`` layout (``{"dataset", "types", "functions": [{"name",
"inputs", "side_inputs", "output"}]}``) and has a built-in default with the
same facts, taken from :mod:`physics.worlds.clevr_properties`.

Reference: Johnson et al., "CLEVR: A Diagnostic Dataset for Compositional
Language and Elementary Visual Reasoning", CVPR 2017 (the function catalogue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from physics.errors import DataError
from physics.io import PathLike, read_json
from physics.worlds.clevr_properties import COLORS, MATERIALS, RELATIONS, SHAPES, SIZES
from reasoning.errors import TemplateError

__all__ = ["FunctionSpec", "Metadata", "load_synonyms", "DEFAULT_SYNONYMS", "ATTRIBUTE_TYPES"]

DEFAULT_SYNONYMS = Path(__file__).with_name("synonyms.json")

# Parameter type -> scene attribute it filters or queries, in the order CLEVR's
# composite filter nodes list their side inputs (size, color, material, shape).
ATTRIBUTE_TYPES: Mapping[str, str] = MappingProxyType(
    {"Size": "size", "Color": "color", "Material": "material", "Shape": "shape"}
)

# The object-level answer range CLEVR balances integer answers over (0..10).
MAX_COUNT_ANSWER = 10


@dataclass(frozen=True)
class FunctionSpec:
    """Signature of one catalogue function.

    Attributes:
        name: Function name, e.g. ``"relate_filter_count"``.
        inputs: Types of the node inputs, e.g. ``("Object",)``.
        side_inputs: Types of the literal side inputs, e.g. ``("Relation", "Size", ...)``.
        output: Output type, e.g. ``"Integer"``.
        template_only: True for the composite nodes that templates use and the
            generator expands into basic functions (``filter_count`` ...).
    """

    name: str
    inputs: tuple[str, ...]
    side_inputs: tuple[str, ...]
    output: str
    template_only: bool = False


_ATTR4 = ("Size", "Color", "Material", "Shape")
_BUILTIN_FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("scene", (), (), "ObjectSet"),
    FunctionSpec("filter_color", ("ObjectSet",), ("Color",), "ObjectSet"),
    FunctionSpec("filter_shape", ("ObjectSet",), ("Shape",), "ObjectSet"),
    FunctionSpec("filter_size", ("ObjectSet",), ("Size",), "ObjectSet"),
    FunctionSpec("filter_material", ("ObjectSet",), ("Material",), "ObjectSet"),
    FunctionSpec("unique", ("ObjectSet",), (), "Object"),
    FunctionSpec("relate", ("Object",), ("Relation",), "ObjectSet"),
    FunctionSpec("union", ("ObjectSet", "ObjectSet"), (), "ObjectSet"),
    FunctionSpec("intersect", ("ObjectSet", "ObjectSet"), (), "ObjectSet"),
    FunctionSpec("count", ("ObjectSet",), (), "Integer"),
    FunctionSpec("exist", ("ObjectSet",), (), "Bool"),
    FunctionSpec("query_shape", ("Object",), (), "Shape"),
    FunctionSpec("query_color", ("Object",), (), "Color"),
    FunctionSpec("query_size", ("Object",), (), "Size"),
    FunctionSpec("query_material", ("Object",), (), "Material"),
    FunctionSpec("equal_color", ("Color", "Color"), (), "Bool"),
    FunctionSpec("equal_shape", ("Shape", "Shape"), (), "Bool"),
    FunctionSpec("equal_size", ("Size", "Size"), (), "Bool"),
    FunctionSpec("equal_material", ("Material", "Material"), (), "Bool"),
    FunctionSpec("equal_integer", ("Integer", "Integer"), (), "Bool"),
    FunctionSpec("less_than", ("Integer", "Integer"), (), "Bool"),
    FunctionSpec("greater_than", ("Integer", "Integer"), (), "Bool"),
    FunctionSpec("equal_object", ("Object", "Object"), (), "Bool"),
    FunctionSpec("same_size", ("Object",), (), "ObjectSet"),
    FunctionSpec("same_color", ("Object",), (), "ObjectSet"),
    FunctionSpec("same_material", ("Object",), (), "ObjectSet"),
    FunctionSpec("same_shape", ("Object",), (), "ObjectSet"),
    FunctionSpec("filter", ("ObjectSet",), _ATTR4, "ObjectSet", True),
    FunctionSpec("filter_unique", ("ObjectSet",), _ATTR4, "Object", True),
    FunctionSpec("filter_count", ("ObjectSet",), _ATTR4, "Integer", True),
    FunctionSpec("filter_exist", ("ObjectSet",), _ATTR4, "Bool", True),
    FunctionSpec("relate_filter", ("Object",), ("Relation", *_ATTR4), "ObjectSet", True),
    FunctionSpec("relate_filter_unique", ("Object",), ("Relation", *_ATTR4), "Object", True),
    FunctionSpec("relate_filter_count", ("Object",), ("Relation", *_ATTR4), "Integer", True),
    FunctionSpec("relate_filter_exist", ("Object",), ("Relation", *_ATTR4), "Bool", True),
)


@dataclass(frozen=True)
class Metadata:
    """Types (with their values) and function signatures.

    Attributes:
        dataset: Name of the data set the catalogue describes (``"CLEVR-v1.0"``).
        types: Type name -> allowed values, or ``None`` for structural types
            (``Object``, ``ObjectSet``, ``Integer``, ``Bool``).
        functions: Function name -> :class:`FunctionSpec`.
    """

    dataset: str
    types: Mapping[str, tuple[str, ...] | None]
    functions: Mapping[str, FunctionSpec]

    @classmethod
    def default(cls) -> Metadata:
        """The CLEVR-v1.0 catalogue, vocabulary from :mod:`physics.worlds.clevr_properties`."""
        types = {
            "Object": None,
            "ObjectSet": None,
            "Integer": None,
            "Bool": None,
            "Shape": SHAPES,
            "Color": COLORS,
            "Relation": RELATIONS,
            "Size": SIZES,
            "Material": MATERIALS,
        }
        return cls(
            "CLEVR-v1.0",
            MappingProxyType(types),
            MappingProxyType({f.name: f for f in _BUILTIN_FUNCTIONS}),
        )

    @classmethod
    def load(cls, path: PathLike) -> Metadata:
        """Read an official-layout ``metadata.json``.

        Raises:
            TemplateError: the file is unreadable or a field is missing or mistyped
                (naming the file and the field).
        """
        name = Path(path).name
        try:
            data = read_json(path, "metadata file")
        except DataError as exc:
            raise TemplateError(str(exc)) from None
        return cls.from_dict(data, where=name)

    @classmethod
    def from_dict(cls, data: Any, where: str = "metadata") -> Metadata:
        """Build from the parsed ``metadata.json`` dict (see :meth:`load`)."""
        if not isinstance(data, Mapping):
            raise TemplateError(f"{where}: expected a JSON object with 'types' and 'functions'")
        for key in ("types", "functions"):
            if key not in data:
                raise TemplateError(f"{where}: missing field '{key}'")
        raw_types = data["types"]
        if not isinstance(raw_types, Mapping):
            raise TemplateError(
                f"{where}: 'types' must be an object of type name -> values or null"
            )
        types: dict[str, tuple[str, ...] | None] = {}
        for tname, values in raw_types.items():
            if values is None:
                types[tname] = None
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                types[tname] = tuple(values)
            else:
                raise TemplateError(f"{where}: types.{tname} must be null or a list of strings")
        funcs: dict[str, FunctionSpec] = {}
        raw_funcs = data["functions"]
        if not isinstance(raw_funcs, list):
            raise TemplateError(f"{where}: 'functions' must be a list")
        for k, f in enumerate(raw_funcs):
            fw = f"{where}: functions[{k}]"
            if not isinstance(f, Mapping) or not isinstance(f.get("name"), str):
                raise TemplateError(f"{fw}: expected an object with a string 'name'")
            spec_types = []
            for field in ("inputs", "side_inputs"):
                vals = f.get(field, [])
                if not isinstance(vals, list) or any(v not in types for v in vals):
                    raise TemplateError(
                        f"{fw} ({f['name']}): '{field}' must list declared types ({', '.join(types)})"
                    )
                spec_types.append(tuple(vals))
            out = f.get("output")
            if out not in types:
                raise TemplateError(f"{fw} ({f['name']}): 'output' {out!r} is not a declared type")
            funcs[f["name"]] = FunctionSpec(
                f["name"], spec_types[0], spec_types[1], out, bool(f.get("template_only", False))
            )
        return cls(str(data.get("dataset", "")), MappingProxyType(types), MappingProxyType(funcs))

    def values(self, type_name: str) -> tuple[str, ...]:
        """The values of an enumerated type (``"Color"`` -> the eight colours)."""
        vals = self.types.get(type_name)
        if vals is None:
            raise TemplateError(
                f"type {type_name!r} has no value list in the metadata ({self.dataset})"
            )
        return vals

    def answer_domain(self, function: str) -> tuple[Any, ...]:
        """Every answer a program ending in ``function`` can give, for answer balancing.

        Bool -> ``(True, False)``; Integer -> ``0..10`` (as CLEVR balances counts);
        enumerated types -> their values.
        """
        out = self.functions[function].output
        if out == "Bool":
            return (True, False)
        if out == "Integer":
            return tuple(range(MAX_COUNT_ANSWER + 1))
        vals = self.types.get(out)
        return tuple(vals) if vals else ()


def load_synonyms(path: PathLike | None = None) -> dict[str, tuple[str, ...]]:
    """Read a synonyms file: ``{word: [phrasing, ...]}`` (the project's own by default).

    Raises:
        TemplateError: unreadable file, or an entry that is not a non-empty list of strings.
    """
    path = DEFAULT_SYNONYMS if path is None else Path(path)
    try:
        data = read_json(path, "synonyms file")
    except DataError as exc:
        raise TemplateError(str(exc)) from None
    if not isinstance(data, Mapping):
        raise TemplateError(f"{Path(path).name}: expected an object of word -> list of phrasings")
    out = {}
    for word, options in data.items():
        if (
            not isinstance(options, list)
            or not options
            or not all(isinstance(o, str) for o in options)
        ):
            raise TemplateError(
                f"{Path(path).name}: synonyms of {word!r} must be a non-empty list of strings"
            )
        out[word] = tuple(options)
    return out
