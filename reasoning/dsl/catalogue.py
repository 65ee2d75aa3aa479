"""The function catalogue: names, input/output types and side-input vocabularies.

A :class:`Catalogue` is read from a file in the format of the CLEVR question
generator's ``metadata.json`` (Johnson et al., "CLEVR: A Diagnostic Dataset for
Compositional Language and Elementary Visual Reasoning", CVPR 2017)::

    {"dataset": "CLEVR-v1.0",
     "types": {"ObjectSet": null, "Color": ["gray", "red", ...], ...},
     "functions": [{"name": "filter_color", "inputs": ["ObjectSet"],
                    "side_inputs": ["Color"], "output": "ObjectSet",
                    "terminal": false}, ...]}

A type whose vocabulary is ``null`` is a value computed by programs (objects,
sets, integers, booleans); a type with a list is a vocabulary of side inputs.
The project ships its own catalogue, ``clevr_functions.json`` beside this module,
covering every CLEVR v1.0 function including the template-only composite nodes
(``filter_unique``, ``relate_filter_count``, ...).

The catalogue knows each function's arity, which is what makes the NS-VQA token
formats decodable (:mod:`reasoning.dsl.formats`), and it type-checks programs
(:meth:`Catalogue.check`). It is the one place a signature is written: every
executor mode attaches its implementations to these entries by name
(:mod:`reasoning.dsl.function_table`), and :meth:`Catalogue.extend` or an
extended ``metadata.json`` adds operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from physics.errors import DataError
from physics.io import read_json
from reasoning.dsl.program import Call, Program
from reasoning.dsl.typecheck import (
    NEVER_EMPTY,
    alternatives,
    check_nodes,
    is_placeholder,
    post_order,
    unknown_function,
)
from reasoning.errors import ProgramError

__all__ = ["Catalogue", "FunctionSpec", "DEFAULT_CATALOGUE_PATH", "CLEVRER_CATALOGUE_PATH", "is_placeholder", "alternatives"]

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("clevr_functions.json")
CLEVRER_CATALOGUE_PATH = Path(__file__).with_name("clevrer_functions.json")


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """The signature of one catalogue function.

    Attributes:
        name: Function name, e.g. ``"relate_filter_count"``.
        inputs: Types of the child programs, in order (its arity is ``len(inputs)``).
        side_inputs: Vocabulary types of the literal side inputs, in order.
        output: Type of the result.
        terminal: Whether the result is an answer (not fed to object functions).
        template_only: Composite node of the question templates, expanded into
            primitive nodes in instantiated CLEVR questions.
    """

    name: str
    inputs: tuple[str, ...]
    side_inputs: tuple[str, ...]
    output: str
    terminal: bool = False
    template_only: bool = False

    @property
    def arity(self) -> int:
        """Number of child programs."""
        return len(self.inputs)

    def may_be_empty(self, k: int) -> bool:
        """Whether side input ``k`` may be left empty (an unmentioned attribute of a composite node)."""
        return self.template_only and self.side_inputs[k] not in NEVER_EMPTY

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in a ``metadata.json`` ``functions`` list."""
        d: dict[str, Any] = {"name": self.name, "inputs": list(self.inputs)}
        if self.side_inputs:
            d["side_inputs"] = list(self.side_inputs)
        d["output"] = self.output
        d["terminal"] = self.terminal
        if self.template_only:
            d["template_only"] = True
        return d


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where} must be a list of strings, got {value!r}")
    return tuple(value)


class Catalogue:
    """A typed function catalogue in the CLEVR ``metadata.json`` format.

    Args:
        types: Type name -> vocabulary (tuple of words) or ``None`` for computed types.
        functions: The function signatures; names must be unique and all types known.
        dataset: The ``dataset`` tag of the file, e.g. ``"CLEVR-v1.0"``.

    >>> cat = Catalogue.default()
    >>> cat.arity("equal_integer"), cat.values("Size")
    (2, ('small', 'large'))
    >>> from reasoning.dsl import parse_program
    >>> cat.check(parse_program("count(filter_color(scene(), red))"))
    'Integer'
    """

    def __init__(
        self,
        types: Mapping[str, tuple[str, ...] | None],
        functions: list[FunctionSpec] | tuple[FunctionSpec, ...],
        dataset: str = "",
    ) -> None:
        self.dataset = dataset
        self._types: dict[str, tuple[str, ...] | None] = {
            k: (tuple(v) if v is not None else None) for k, v in types.items()
        }
        self._functions: dict[str, FunctionSpec] = {}
        for spec in functions:
            if spec.name in self._functions:
                raise DataError(f"catalogue function {spec.name!r} is defined twice")
            for t in (a for u in (*spec.inputs, spec.output) for a in alternatives(u)):
                if t not in self._types:
                    raise DataError(
                        f"catalogue function {spec.name!r} uses unknown type {t!r}; "
                        f"types are {sorted(self._types)}"
                    )
            for t in spec.side_inputs:
                if self._types.get(t, None) is None:
                    raise DataError(
                        f"catalogue function {spec.name!r} has side input type {t!r}, which is "
                        f"not a vocabulary type; vocabulary types are {self.vocabulary_types()}"
                    )
            self._functions[spec.name] = spec
        # word -> the vocabulary types containing it (a word may be in several)
        self._word_types: dict[str, tuple[str, ...]] = {}
        for t, vocab in self._types.items():
            for w in vocab or ():
                self._word_types[w] = (*self._word_types.get(w, ()), t)

    # ------------------------------------------------------------------ loading
    @classmethod
    def default(cls) -> Catalogue:
        """The project's CLEVR v1.0 catalogue (``clevr_functions.json``), loaded once."""
        return _default_catalogue()

    @classmethod
    def clevrer(cls) -> Catalogue:
        """CLEVRER's catalogue (``clevrer_functions.json``), loaded once.

        The operations of CLEVRER's official executor (Yi, Gan et al., ICLR 2020)
        over videos: objects, events, their filters and queries, and the causal,
        predictive and counterfactual ones. Its names overlap CLEVR's
        (``unique``, ``count``, ``filter_color``) with other value types, so it
        is a catalogue of its own, not an extension of :meth:`default`.
        """
        return _clevrer_catalogue()

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        """Read a catalogue file in the CLEVR ``metadata.json`` format.

        Raises:
            DataError: The file is missing, not JSON, or a field is malformed
                (the message names the file and the field).
        """
        data = read_json(path, what="function catalogue")
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "catalogue") -> Catalogue:
        """Build a catalogue from the parsed ``metadata.json`` structure.

        Raises:
            DataError: A field is missing or has the wrong type (names ``where`` and the field).
        """
        if not isinstance(data, dict):
            raise DataError(f"{where}: top level must be an object, got {type(data).__name__}")
        dataset = data.get("dataset", "")
        if not isinstance(dataset, str):
            raise DataError(f"{where}: field 'dataset' must be a string, got {dataset!r}")
        raw_types = data.get("types")
        if not isinstance(raw_types, dict):
            raise DataError(
                f"{where}: field 'types' must be an object of type -> vocabulary list or null"
            )
        types: dict[str, tuple[str, ...] | None] = {}
        for name, vocab in raw_types.items():
            types[name] = None if vocab is None else _str_list(vocab, f"{where}: types.{name}")
        raw_functions = data.get("functions")
        if not isinstance(raw_functions, list):
            raise DataError(f"{where}: field 'functions' must be a list of function objects")
        specs = []
        seen: dict[str, int] = {}
        for i, f in enumerate(raw_functions):
            at = f"{where}: functions[{i}]"
            if not isinstance(f, dict):
                raise DataError(f"{at} must be an object, got {type(f).__name__}")
            name = f.get("name")
            if not isinstance(name, str) or not name:
                raise DataError(f"{at}.name must be a non-empty string, got {name!r}")
            at = f"{where}: functions[{i}] ({name})"
            if "inputs" not in f or "output" not in f:
                raise DataError(f"{at} needs fields 'inputs' and 'output'")
            output = f["output"]
            if not isinstance(output, str):
                raise DataError(f"{at}.output must be a type name, got {output!r}")
            inputs = _str_list(f["inputs"], f"{at}.inputs")
            side_inputs = _str_list(f.get("side_inputs", []), f"{at}.side_inputs")
            for field, used in (("inputs", inputs), ("output", (output,))):
                for t in (a for u in used for a in alternatives(u)):
                    if t not in types:
                        raise DataError(
                            f"{at}.{field} uses unknown type {t!r}; types are {list(types)}"
                        )
            for t in side_inputs:
                if types.get(t) is None:
                    vocab_types = [k for k, v in types.items() if v is not None]
                    raise DataError(
                        f"{at}.side_inputs has {t!r}, which is not a vocabulary type; "
                        f"vocabulary types are {vocab_types}"
                    )
            if name in seen:
                raise DataError(f"{at}.name {name!r} is already defined by functions[{seen[name]}]")
            seen[name] = i
            for flag in ("terminal", "template_only"):
                if not isinstance(f.get(flag, False), bool):
                    raise DataError(f"{at}.{flag} must be true or false, got {f[flag]!r}")
            specs.append(
                FunctionSpec(
                    name=name,
                    inputs=inputs,
                    side_inputs=side_inputs,
                    output=output,
                    terminal=f.get("terminal", False),
                    template_only=f.get("template_only", False),
                )
            )
        return cls(types, specs, dataset)

    def to_dict(self) -> dict[str, Any]:
        """The catalogue in the ``metadata.json`` format (inverse of :meth:`from_dict`)."""
        return {
            "dataset": self.dataset,
            "types": {k: (list(v) if v is not None else None) for k, v in self._types.items()},
            "functions": [s.to_dict() for s in self._functions.values()],
        }

    def extend(
        self,
        functions: Iterable[FunctionSpec | Mapping[str, Any]],
        types: Mapping[str, Sequence[str] | None] | None = None,
        *,
        where: str = "catalogue extension",
    ) -> Catalogue:
        """A new catalogue with these functions (and types) added; this one is unchanged.

        The same as loading a ``metadata.json`` whose lists hold the extra entries:
        how a dataset's own operations (CLEVRER's, say) join CLEVR's. Each
        executor mode then attaches an implementation to the new names (see
        :mod:`reasoning.dsl.function_table`).

        Args:
            functions: New entries, as :class:`FunctionSpec` or ``metadata.json`` objects.
            types: New types (vocabulary list, or ``None`` for a computed type).
            where: Names the extension in error messages.

        Raises:
            DataError: A name is already defined, or an entry is malformed.

        >>> cat = Catalogue.default().extend(
        ...     [{"name": "count_pairs", "inputs": ["ObjectSet"], "output": "Integer"}])
        >>> cat.arity("count_pairs"), "count_pairs" in Catalogue.default()
        (1, False)
        """
        data = self.to_dict()
        for name, vocab in (types or {}).items():
            if name in data["types"]:
                raise DataError(f"{where}: type {name!r} is already defined")
            data["types"][name] = None if vocab is None else list(vocab)
        data["functions"] += [
            f.to_dict() if isinstance(f, FunctionSpec) else dict(f) for f in functions
        ]
        return Catalogue.from_dict(data, where=where)

    # ------------------------------------------------------------------ lookups
    @property
    def names(self) -> tuple[str, ...]:
        """All function names, in file order."""
        return tuple(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"Catalogue(dataset={self.dataset!r}, {len(self)} functions)"

    def signature(self, name: str) -> FunctionSpec:
        """The signature of ``name``.

        Raises:
            ProgramError: Unknown function (the message lists close matches).
        """
        spec = self._functions.get(name)
        if spec is None:
            raise ProgramError(unknown_function(name, self.names))
        return spec

    def arity(self, name: str) -> int:
        """Number of child programs ``name`` takes (raises ProgramError if unknown)."""
        return self.signature(name).arity

    def types(self) -> tuple[str, ...]:
        """All type names, in file order."""
        return tuple(self._types)

    def vocabulary_types(self) -> list[str]:
        """The types that have a vocabulary (side-input types)."""
        return [t for t, v in self._types.items() if v is not None]

    def values(self, type_name: str) -> tuple[str, ...]:
        """The vocabulary of a side-input type, e.g. ``values("Color")``.

        Raises:
            ProgramError: Unknown type, or a computed type without vocabulary.
        """
        if type_name not in self._types:
            raise ProgramError(f"unknown type {type_name!r}; types are {list(self._types)}")
        vocab = self._types[type_name]
        if vocab is None:
            raise ProgramError(
                f"type {type_name!r} is computed by programs and has no vocabulary; "
                f"vocabulary types are {self.vocabulary_types()}"
            )
        return vocab

    def types_of_value(self, word: str) -> tuple[str, ...]:
        """The vocabulary types containing ``word`` (empty if none), e.g. ``("Color",)``."""
        return self._word_types.get(word, ())

    # ------------------------------------------------------------------ checking
    def check(
        self,
        program: Program | Call,
        *,
        allow_placeholders: bool = False,
        allow_composites: bool = True,
    ) -> str:
        """Type-check a program and return the output type of its root.

        Every node must name a catalogue function, have as many children as the
        function has inputs, children whose output types equal the input types,
        and exactly one side input per side-input type, each a word of that
        type's vocabulary. Composite template nodes (``filter_count`` ...) may
        leave attribute slots empty (``""``, written ``_`` in text); their
        relation slot must be filled. Template parameters such as ``<C>`` are
        accepted only with ``allow_placeholders=True``.

        The CLEVR question generator expands every composite node into
        ``relate``/``filter_<attribute>`` nodes followed by ``unique``/``count``/
        ``exist``, and drops the filters of attributes the question leaves
        unmentioned (it records them as ``""`` only for the question text), so
        instantiated CLEVR programs contain no composites and no empty values;
        ``allow_composites=False`` enforces exactly that.

        The checking is :func:`reasoning.dsl.typecheck.check_nodes`, which the
        executors' :func:`~reasoning.executor.check.check_call` runs too, so both
        word their errors alike.

        Args:
            program: The program (or a bare root call) to check.
            allow_placeholders: Accept ``<X>``-style template parameters as side inputs.
            allow_composites: Accept template-only composite nodes.

        Returns:
            The output type of the root, e.g. ``"Integer"``.

        Raises:
            ProgramError: Naming the node (post-order index and function) and
                what was expected.
        """
        root = program.root if isinstance(program, Program) else program
        if not isinstance(root, Call):
            raise ProgramError(f"can only check a Program or a Call, got {type(root).__name__}")
        return check_nodes(
            post_order(root),
            self._functions,
            self._types.get,
            allow_placeholders=allow_placeholders,
            allow_composites=allow_composites,
        )


@lru_cache(maxsize=1)
def _default_catalogue() -> Catalogue:
    return Catalogue.load(DEFAULT_CATALOGUE_PATH)


@lru_cache(maxsize=1)
def _clevrer_catalogue() -> Catalogue:
    return Catalogue.load(CLEVRER_CATALOGUE_PATH)
