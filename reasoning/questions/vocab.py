"""The question generator's words: attribute parameter types and the synonyms table.

Function signatures and type vocabularies (which colours exist, which
relations) live in the function catalogue, :class:`reasoning.dsl.Catalogue`;
this module holds what only question *text* and template *filters* need:

- :data:`ATTRIBUTE_TYPES`: the parameter types a composite filter node
  (``filter_count[<Z>, <C>, <M>, <S>]``) ranges over, and the scene attribute
  each one filters;
- :func:`load_synonyms`: the ``{word: [phrasing, ...]}`` table that turns
  ``"cube"`` into "cube" or "block" in a question (CLEVR's ``synonyms.json``
  layout; the project ships its own, :data:`DEFAULT_SYNONYMS`).

Reference: Johnson et al., "CLEVR: A Diagnostic Dataset for Compositional
Language and Elementary Visual Reasoning", CVPR 2017.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from physics.errors import DataError
from physics.io import PathLike, read_json
from reasoning.errors import TemplateError

__all__ = ["ATTRIBUTE_TYPES", "DEFAULT_SYNONYMS", "load_synonyms"]

DEFAULT_SYNONYMS = Path(__file__).with_name("synonyms.json")

# Parameter type -> scene attribute it filters or queries, in the order CLEVR's
# composite filter nodes list their side inputs (size, color, material, shape).
ATTRIBUTE_TYPES: Mapping[str, str] = MappingProxyType(
    {"Size": "size", "Color": "color", "Material": "material", "Shape": "shape"}
)


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
