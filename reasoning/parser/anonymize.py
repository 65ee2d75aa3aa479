"""Value anonymisation: attribute words become numbered slots, and back.

With only a few hundred training programs, a seq2seq parser sees most
(attribute value, program position) pairs rarely or never, and most of its
errors are about *which filters* a question needs.  Anonymising the values
(Dong & Lapata, "Language to Logical Form with Neural Attention", ACL 2016,
Sec. 3.4) lets it learn the program *structure* from every example:

    "Is the big ball left of the red cube?"
    -> "is the <size1> <shape1> <relation1> of the <color1> <shape2> ?"
    program tokens filter_color[red] -> filter_color[<color1>], relate[left] -> relate[<relation1>]

Slot k of a type is the k-th *distinct* value of that type in the question
(so a value mentioned twice has one slot).  After decoding, slots are replaced
by their values; a slot the question does not have makes the decode invalid.
Program values that no question word names keep their plain token.

The lexicon (word -> (type, value)) comes from the catalogue vocabularies and the
question generator's synonyms, plural shape words included; it is stored in the
parser checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

from reasoning.dsl import Catalogue

__all__ = ["build_lexicon", "anonymize_words", "anonymize_program", "restore_program", "slot_tokens", "MAX_SLOTS"]

T = TypeVar("T")
MAX_SLOTS = 6  # distinct values of one type in a question; CLEVR questions use at most 4
_VALUE_TOKEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^,\]]+)\]$")


def build_lexicon(
    synonyms: Mapping[str, Sequence[str]] | None = None, catalogue: Catalogue | None = None
) -> dict[str, tuple[str, str]]:
    """Word -> (type, value) for every single word naming a side-input value.

    Args:
        synonyms: Value -> phrases (CLEVR ``synonyms.json`` format).  Multi-word
            phrases ("to the left of") contribute no word of their own; the
            value word ("left") inside them is what gets anonymised.
        catalogue: Vocabulary types and values (default: CLEVR).
    """
    catalogue = catalogue or Catalogue.default()
    synonyms = synonyms or {}
    out: dict[str, tuple[str, str]] = {}
    for type_name in catalogue.vocabulary_types():
        tag = type_name.lower()
        for value in catalogue.values(type_name):
            words = {value} | {p for p in synonyms.get(value, ()) if " " not in p}
            for w in words:
                out[w] = (tag, value)
                if tag == "shape":
                    out[w + "s"] = (tag, value)  # plural shape words: "balls", "cubes"
    return out


def anonymize_words(
    words: Sequence[str], lexicon: Mapping[str, tuple[str, str]]
) -> tuple[list[str], dict[str, str]]:
    """Replace value words by slots.

    Returns:
        The words with slots (same length and positions) and ``{slot: value}``.
    """
    slots: dict[str, str] = {}
    by_value: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    out = []
    for w in words:
        hit = lexicon.get(w)
        if hit is None:
            out.append(w)
            continue
        slot = by_value.get(hit)
        if slot is None:
            counts[hit[0]] = counts.get(hit[0], 0) + 1
            slot = f"<{hit[0]}{counts[hit[0]]}>"
            by_value[hit] = slot
            slots[slot] = hit[1]
        out.append(slot)
    return out, slots


def anonymize_program(tokens: Sequence[str], slots: Mapping[str, str]) -> list[str]:
    """Program tokens with values replaced by the question's slots where it names them.

    (CLEVR's value vocabularies are disjoint, so a value identifies its slot.)
    """
    slot_of = {value: slot for slot, value in slots.items()}
    out = []
    for t in tokens:
        m = _VALUE_TOKEN.match(t)
        if m is not None and m.group(2) in slot_of:
            t = f"{m.group(1)}[{slot_of[m.group(2)]}]"
        out.append(t)
    return out


def restore_program(tokens: Sequence[str], slots: Mapping[str, str]) -> list[str] | None:
    """Replace slots by their values; ``None`` if a slot is not in the question."""
    out = []
    for t in tokens:
        m = _VALUE_TOKEN.match(t)
        if m is not None and m.group(2).startswith("<"):
            value = slots.get(m.group(2))
            if value is None:
                return None
            t = f"{m.group(1)}[{value}]"
        out.append(t)
    return out


def slot_tokens(signatures: Mapping[str, T], catalogue: Catalogue | None = None) -> dict[str, T]:
    """Slot versions of the value tokens in ``signatures`` (``filter_color[<color1>]`` ...), same signature."""
    catalogue = catalogue or Catalogue.default()
    out: dict[str, T] = {}
    for t, signature in signatures.items():
        m = _VALUE_TOKEN.match(t)
        if m is None:
            continue
        types = catalogue.types_of_value(m.group(2))
        for type_name in types:
            for k in range(1, MAX_SLOTS + 1):
                out[f"{m.group(1)}[<{type_name.lower()}{k}>]"] = signature
    return out
