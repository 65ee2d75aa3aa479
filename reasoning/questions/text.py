"""Question text: fill a template phrasing with the chosen parameter values.

Steps, following CLEVR's generator:

1. each ``<P>`` placeholder becomes its value; an empty Shape becomes
   ``"thing"`` and any other empty value disappears; every word with an entry
   in the synonyms table is replaced by one of its phrasings at random
   (``"left"`` -> ``"to the left of"``, ``"thing"`` -> ``"object"``);
2. each optional ``[...]`` segment is kept or dropped with probability 1/2;
3. the word "other"/"another" is dropped when the two object descriptions of
   a same-attribute question differ in an attribute both specify (the object
   is then obviously a different one: CLEVR's "other" heuristic);
4. whitespace is collapsed, spaces before punctuation removed, and (an
   addition of ours) "a" becomes "an" before a vowel.

Plurals need no rule: templates write ``<S>s`` and every shape word and
synonym (cube, ball, cylinder, thing, object, ...) takes a plain "s".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["render_text", "EMPTY_SHAPE"]

EMPTY_SHAPE = "thing"  # CLEVR's word for an unconstrained shape
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([?.,;:!])")
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")
_OTHER_PAIRS = (("<Z>", "<Z2>"), ("<C>", "<C2>"), ("<M>", "<M2>"), ("<S>", "<S2>"))


def render_text(
    text: str,
    values: Mapping[str, str | None],
    param_types: Mapping[str, str],
    synonyms: Mapping[str, Sequence[str]],
    rng: np.random.Generator,
    *,
    fix_articles: bool = True,
) -> str:
    """One question string.

    Args:
        text: A template phrasing with placeholders and ``[optional]`` parts.
        values: Parameter name -> value, ``None`` for an empty one.
        param_types: Parameter name -> type (``"Shape"`` decides the empty word).
        synonyms: Word -> alternative phrasings.
        rng: Random source for synonyms and optional segments.
        fix_articles: Write "an" before a vowel.

    >>> render_text("How many <C> <S>s are there?", {"<C>": None, "<S>": "cube"},
    ...             {"<C>": "Color", "<S>": "Shape"}, {}, np.random.default_rng(0))
    'How many cubes are there?'
    """
    for name, ptype in param_types.items():
        v = values.get(name)
        word = (EMPTY_SHAPE if ptype == "Shape" else "") if v is None else v
        options = synonyms.get(word)
        if options:
            word = options[int(rng.integers(len(options)))]
        text = text.replace(name, word)
    text = " ".join(text.split())
    text = _OPTIONAL.sub(lambda m: m.group(1) if rng.random() < 0.5 else "", text)
    text = " ".join(text.split())
    text = _other_heuristic(text, values)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    if fix_articles:
        text = _ARTICLE.sub(r"\1n ", text)
    return text[:1].upper() + text[1:]


def _other_heuristic(text: str, values: Mapping[str, str | None]) -> str:
    padded = f" {text} "
    if " other " not in padded and " another " not in padded:
        return text
    if set(values) != {n for pair in _OTHER_PAIRS for n in pair}:
        return text
    differ = any(
        values[a] is not None and values[b] is not None and values[a] != values[b]
        for a, b in _OTHER_PAIRS
    )
    if not differ:
        return text
    padded = padded.replace(" other ", " ").replace(" another ", " a ")
    return padded.strip()
