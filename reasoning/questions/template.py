"""Question templates in the CLEVR template JSON format, loaded and validated.

A template file is a JSON list; each template is::

    {"text": ["How many <Z> <C> <M> <S>s are there?", ...],      # phrasings
     "nodes": [{"type": "scene", "inputs": []},
               {"type": "filter_count", "inputs": [0],
                "side_inputs": ["<Z>", "<C>", "<M>", "<S>"]}],    # program skeleton
     "params": [{"type": "Size", "name": "<Z>"}, ...],           # placeholders
     "constraints": [{"type": "NULL", "params": ["<S>"]}]}       # NULL / OUT_NEQ / NEQ

Constraint meanings (as in CLEVR's generator):

- ``NULL [p]``: parameter ``p`` must stay empty (no filter on that attribute);
- ``OUT_NEQ [i, j]``: template nodes ``i`` and ``j`` must give different outputs
  (for counting/existence nodes: must select different object sets, see
  :func:`reasoning.questions.search.instantiate`);
- ``NEQ [p, q]``: parameters ``p`` and ``q`` must take different values (two
  empty values count as equal).

Every problem is reported as a :class:`~reasoning.errors.TemplateError` naming
the file, the template index and the field.

Reference: Johnson et al., CLEVR, CVPR 2017 (template format and families).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from physics.errors import DataError
from physics.io import PathLike, read_json
from reasoning.dsl import Catalogue
from reasoning.errors import TemplateError
from reasoning.questions.vocab import ATTRIBUTE_TYPES

__all__ = [
    "TemplateNode",
    "Param",
    "Constraint",
    "Template",
    "load_templates",
    "parse_template",
    "DEFAULT_TEMPLATES",
    "CONSTRAINT_TYPES",
]

DEFAULT_TEMPLATES = Path(__file__).with_name("templates")
CONSTRAINT_TYPES = ("NULL", "OUT_NEQ", "NEQ")
_PARAM_NAME = re.compile(r"^<[A-Z]+[0-9]*>$")
_PLACEHOLDER = re.compile(r"<[A-Za-z]+[0-9]*>")


@dataclass(frozen=True)
class TemplateNode:
    """One node of a template program.

    Attributes:
        type: Catalogue function, possibly a composite (``relate_filter_count``).
        inputs: Indices of earlier template nodes feeding this one.
        side_inputs: Parameter names (``"<R>"``, ``"<Z2>"``) for the side inputs.
    """

    type: str
    inputs: tuple[int, ...] = ()
    side_inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    """A placeholder: ``name`` like ``"<C2>"`` and its ``type`` like ``"Color"``."""

    name: str
    type: str


@dataclass(frozen=True)
class Constraint:
    """``type`` in NULL / OUT_NEQ / NEQ; ``params`` are parameter names or node indices."""

    type: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class Template:
    """A validated question template.

    Attributes:
        text: Phrasings with ``<P>`` placeholders and optional ``[...]`` segments.
        nodes: Program skeleton in CLEVR node-list order (inputs point backwards).
        params: Declared placeholders.
        constraints: Constraints on parameters and node outputs.
        filename: File it came from (``"zero_hop.json"``); its stem is the family.
        index: Position in that file (CLEVR's ``question_family_index``).
    """

    text: tuple[str, ...]
    nodes: tuple[TemplateNode, ...]
    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...]
    filename: str = "<memory>"
    index: int = 0

    @property
    def family(self) -> str:
        """The family name: the file name without ``.json`` (``"one_hop"``)."""
        return Path(self.filename).stem

    @property
    def key(self) -> tuple[str, int]:
        """``(filename, index)``: identifies the template across a run."""
        return (self.filename, self.index)

    @cached_property
    def param_types(self) -> dict[str, str]:
        """Parameter name -> type."""
        return {p.name: p.type for p in self.params}

    @cached_property
    def has_relate(self) -> bool:
        """True when the skeleton has a raw ``relate`` node (CLEVR then checks degeneracy)."""
        return any(n.type == "relate" for n in self.nodes)

    def to_json(self) -> dict[str, Any]:
        """The template as a dict in the CLEVR template format."""
        nodes = []
        for n in self.nodes:
            d: dict[str, Any] = {"type": n.type, "inputs": list(n.inputs)}
            if n.side_inputs:
                d["side_inputs"] = list(n.side_inputs)
            nodes.append(d)
        return {
            "text": list(self.text),
            "nodes": nodes,
            "params": [{"type": p.type, "name": p.name} for p in self.params],
            "constraints": [{"type": c.type, "params": list(c.params)} for c in self.constraints],
        }


def load_templates(
    path: PathLike | None = None, catalogue: Catalogue | None = None
) -> list[Template]:
    """Load and validate templates.

    Args:
        path: A folder of ``*.json`` template files (official layout, files in
            name order), one template file, or ``None`` for the project's own set.
        catalogue: Function catalogue to check against (CLEVR-v1.0 by default).

    Returns:
        Templates in file-name order, then file order.

    Raises:
        TemplateError: missing folder, no template files, unreadable JSON, or an
            invalid template (naming file, template index and field).
    """
    catalogue = catalogue or Catalogue.default()
    path = DEFAULT_TEMPLATES if path is None else Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise TemplateError(f"no template files (*.json) in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise TemplateError(
            f"templates not found: {path} (expected a folder of *.json files or one file)"
        )
    out: list[Template] = []
    for f in files:
        try:
            data = read_json(f, "template file")
        except DataError as exc:
            raise TemplateError(str(exc)) from None
        if not isinstance(data, list):
            raise TemplateError(
                f"{f.name}: expected a JSON list of templates, got {type(data).__name__}"
            )
        out.extend(
            parse_template(t, catalogue, filename=f.name, index=k) for k, t in enumerate(data)
        )
    return out


def parse_template(
    data: Any, catalogue: Catalogue, *, filename: str = "<memory>", index: int = 0
) -> Template:
    """Validate one template dict and build a :class:`Template`.

    Raises:
        TemplateError: naming ``filename``, ``index`` and the faulty field.
    """
    where = f"{filename}: template {index}"
    if not isinstance(data, Mapping):
        raise TemplateError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("text", "nodes", "params"):
        if key not in data:
            raise TemplateError(f"{where}: missing field '{key}'")

    params = _parse_params(data["params"], catalogue, where)
    ptypes = {p.name: p.type for p in params}
    text = _parse_text(data["text"], ptypes, where)
    nodes = _parse_nodes(data["nodes"], ptypes, catalogue, where)
    constraints = _parse_constraints(data.get("constraints", []), ptypes, len(nodes), where)
    return Template(text, nodes, params, constraints, filename, index)


# ---------------------------------------------------------------------- parts
def _parse_params(raw: Any, catalogue: Catalogue, where: str) -> tuple[Param, ...]:
    if not isinstance(raw, list):
        raise TemplateError(f"{where}: 'params' must be a list")
    out, seen = [], set()
    enumerated = [t for t in catalogue.vocabulary_types() if catalogue.values(t)]
    for k, p in enumerate(raw):
        pw = f"{where}: params[{k}]"
        if (
            not isinstance(p, Mapping)
            or not isinstance(p.get("name"), str)
            or not isinstance(p.get("type"), str)
        ):
            raise TemplateError(f"{pw}: expected an object with string 'name' and 'type'")
        if not _PARAM_NAME.match(p["name"]):
            raise TemplateError(f"{pw}: name {p['name']!r} must look like <C> or <C2>")
        if p["name"] in seen:
            raise TemplateError(f"{pw}: parameter {p['name']} is declared twice")
        if p["type"] not in enumerated:
            raise TemplateError(
                f"{pw}: type {p['type']!r} is not allowed; allowed: {', '.join(enumerated)}"
            )
        seen.add(p["name"])
        out.append(Param(p["name"], p["type"]))
    return tuple(out)


def _parse_text(raw: Any, ptypes: Mapping[str, str], where: str) -> tuple[str, ...]:
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(t, str) and t.strip() for t in raw)
    ):
        raise TemplateError(f"{where}: 'text' must be a non-empty list of non-empty strings")
    for k, t in enumerate(raw):
        for ph in _PLACEHOLDER.findall(t):
            if ph not in ptypes:
                raise TemplateError(
                    f"{where}: text[{k}] uses {ph}, which is not a declared parameter"
                )
        if t.count("[") != t.count("]"):
            raise TemplateError(f"{where}: text[{k}] has unbalanced [optional] brackets")
    return tuple(raw)


def _parse_nodes(
    raw: Any, ptypes: Mapping[str, str], catalogue: Catalogue, where: str
) -> tuple[TemplateNode, ...]:
    if not isinstance(raw, list) or not raw:
        raise TemplateError(f"{where}: 'nodes' must be a non-empty list")
    out = []
    for k, n in enumerate(raw):
        nw = f"{where}: nodes[{k}]"
        if not isinstance(n, Mapping):
            raise TemplateError(f"{nw}: expected an object with 'type' and 'inputs'")
        ftype = n.get("type", n.get("function"))
        if not isinstance(ftype, str) or ftype not in catalogue:
            raise TemplateError(
                f"{nw}: unknown function {ftype!r}; allowed: {', '.join(catalogue.names)}"
            )
        spec = catalogue.signature(ftype)
        inputs = n.get("inputs", [])
        if not isinstance(inputs, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < k for i in inputs
        ):
            raise TemplateError(
                f"{nw} ({ftype}): 'inputs' must list indices of earlier nodes (0..{k - 1})"
            )
        if len(inputs) != len(spec.inputs):
            raise TemplateError(
                f"{nw} ({ftype}): takes {len(spec.inputs)} input(s), got {len(inputs)}"
            )
        side = n.get("side_inputs", [])
        if not isinstance(side, list) or not all(isinstance(s, str) for s in side):
            raise TemplateError(f"{nw} ({ftype}): 'side_inputs' must be a list of parameter names")
        if len(side) != len(spec.side_inputs):
            raise TemplateError(
                f"{nw} ({ftype}): takes {len(spec.side_inputs)} side input(s) "
                f"({', '.join(spec.side_inputs) or 'none'}), got {len(side)}"
            )
        for s in side:
            if s not in ptypes:
                raise TemplateError(f"{nw} ({ftype}): side input {s} is not a declared parameter")
        _check_side_types(ftype, spec.side_inputs, side, ptypes, nw)
        out.append(TemplateNode(ftype, tuple(inputs), tuple(side)))
    return tuple(out)


def _check_side_types(
    ftype: str, expected: Sequence[str], side: Sequence[str], ptypes: Mapping[str, str], nw: str
) -> None:
    got = [ptypes[s] for s in side]
    if ftype.startswith("relate_filter") or ftype in (
        "filter",
        "filter_unique",
        "filter_count",
        "filter_exist",
    ):
        # composite filters: a Relation first (relate_* only), then one parameter per attribute
        filters = got
        if ftype.startswith("relate"):
            if got[0] != "Relation":
                raise TemplateError(
                    f"{nw} ({ftype}): first side input must be a Relation, got {got[0]}"
                )
            filters = got[1:]
        if sorted(filters) != sorted(ATTRIBUTE_TYPES):
            raise TemplateError(
                f"{nw} ({ftype}): filter side inputs must be one each of "
                f"{', '.join(ATTRIBUTE_TYPES)}; got {', '.join(filters)}"
            )
    elif list(got) != list(expected):
        raise TemplateError(
            f"{nw} ({ftype}): side inputs must have types {list(expected)}, got {got}"
        )


def _parse_constraints(
    raw: Any, ptypes: Mapping[str, str], n_nodes: int, where: str
) -> tuple[Constraint, ...]:
    if not isinstance(raw, list):
        raise TemplateError(f"{where}: 'constraints' must be a list")
    out = []
    for k, c in enumerate(raw):
        cw = f"{where}: constraints[{k}]"
        if not isinstance(c, Mapping) or c.get("type") not in CONSTRAINT_TYPES:
            got = c.get("type") if isinstance(c, Mapping) else c
            raise TemplateError(
                f"{cw}: type {got!r} is not allowed; allowed: {', '.join(CONSTRAINT_TYPES)}"
            )
        ctype, params = c["type"], c.get("params")
        want = 1 if ctype == "NULL" else 2
        if not isinstance(params, list) or len(params) != want:
            raise TemplateError(f"{cw} ({ctype}): 'params' must list {want} item(s)")
        if ctype == "OUT_NEQ":
            if not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_nodes for i in params
            ):
                raise TemplateError(
                    f"{cw} (OUT_NEQ): 'params' must be node indices in 0..{n_nodes - 1}"
                )
        else:
            for p in params:
                if p not in ptypes:
                    raise TemplateError(f"{cw} ({ctype}): {p!r} is not a declared parameter")
        out.append(Constraint(ctype, tuple(params)))
    return tuple(out)
