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

Object phrases go one step further.  A CLEVR object description is a run of
attribute words closed by a noun ("the small red shiny ball", "big things"),
and its program is always the same chain of filters, one per attribute word
(``filter_shape[sphere] filter_material[metal] filter_color[red]
filter_size[small]``: the words in reverse, innermost filter last).  So a
phrase with at least one value word becomes one slot ``<objK>`` on both sides:

    "How many large cylinders are left of the big matte ball?"
    -> "how many <obj1> are <relation1> of the <obj2> ?"
    count filter_shape[cylinder] filter_size[large] relate[left] unique filter_shape[sphere] ...
    -> count <obj1> relate[<relation1>] unique <obj2> scene

A bare noun ("the thing", "other objects") is a phrase too, with no filters:
its slot marks, in the program, the place where its filters would stand (the
set it describes: before ``scene``, ``relate``, ``same_*``, ``intersect`` or
``union``), so that every object the question mentions looks the same to the
parser.  The slot is dropped again when the program is restored.

A value word right after "how" asks a question instead of naming a value
("How big is the cube?" is ``query_size``, not a large thing): it stays a
plain word (:data:`QUESTION_WORDS`).

The parser then only learns how phrases and relations nest, which a few
programs per template show; the filters of a phrase are read off its words.
A filter chain whose tokens differ from every phrase's chain keeps its value
slots, so nothing the phrase rule misses is lost.

The same rules serve CLEVRER (``catalogue=Catalogue.clevrer()``): its object
phrases are the same attribute filters over ``objects`` (the set head there),
its other ``filter_*`` operations (``filter_moving``, ``filter_collision``)
are not part of a phrase, and its programs name one object twice ("the
object that collides with the blue object" finds the blue object's collision,
then asks for the partner of the blue object): with ``reuse_phrases`` a chain
equal to an already used phrase's takes that phrase's slot again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

from reasoning.dsl import Catalogue

__all__ = [
    "build_lexicon",
    "build_nouns",
    "anonymize_words",
    "anonymize_phrases",
    "anonymize_program",
    "restore_program",
    "slot_tokens",
    "phrase_tokens",
    "token_slot",
    "MAX_SLOTS",
    "MAX_PHRASES",
    "PHRASE_ATTRIBUTES",
    "QUESTION_WORDS",
]

T = TypeVar("T")
MAX_SLOTS = 6  # distinct values of one type in a question; CLEVR questions use at most 4
MAX_PHRASES = 8  # object phrases in a question; CLEVR questions have at most 5
PHRASE_ATTRIBUTES = ("size", "color", "material")  # value types that modify a noun, in no fixed order
PHRASE_HEAD = "shape"  # value type that names the noun itself
_VALUE_TOKEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^,\]]+)\]$")
_PHRASE_SLOT = re.compile(r"^<obj(\d+)>$")
QUESTION_WORDS = frozenset({"how"})  # a value word after one of these is part of the question ("how big"), not a value
_SET_HEADS = ("scene", "relate", "same_", "intersect", "union", "objects")  # tokens whose object set a phrase can filter
# the filters an object phrase is made of (``filter_color[red]``); CLEVRER's filter_moving & co. are not
_PHRASE_FILTERS = tuple(f"filter_{t}[" for t in (*PHRASE_ATTRIBUTES, PHRASE_HEAD))


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


def build_nouns(synonyms: Mapping[str, Sequence[str]] | None = None, generic: str = "thing") -> frozenset[str]:
    """Generic object nouns that close a phrase ("thing", "objects"), from the synonyms of ``generic``.

    Shape words close a phrase too; they come from the lexicon.
    """
    words = {generic, *(p for p in (synonyms or {}).get(generic, ()) if " " not in p)}
    return frozenset(words | {w + "s" for w in words})


def _value(words: Sequence[str], k: int, lexicon: Mapping[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The (type, value) word ``k`` names, or None: a value word right after "how" asks ("How big is ...")."""
    if k > 0 and words[k - 1] in QUESTION_WORDS:
        return None
    return lexicon.get(words[k])


def anonymize_phrases(
    words: Sequence[str], lexicon: Mapping[str, tuple[str, str]], nouns: frozenset[str] | set[str]
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Collapse each object phrase that names a value into one slot ``<objK>``.

    A phrase is a maximal run of :data:`PHRASE_ATTRIBUTES` words with the shape
    word or generic noun that follows it, if any; a bare generic noun is a
    phrase with no filters.

    Returns:
        The words with phrases collapsed, and ``{"<objK>": filter tokens}``
        (prefix order: the phrase's words reversed).
    """
    out: list[str] = []
    phrases: dict[str, tuple[str, ...]] = {}
    run: list[tuple[str, str]] = []  # attribute (type, value) pairs waiting for their noun
    run_words: list[str] = []

    def close(values: list[tuple[str, str]]) -> None:
        slot = f"<obj{len(phrases) + 1}>"
        phrases[slot] = tuple(f"filter_{t}[{v}]" for t, v in reversed(values))
        out.append(slot)
        run.clear()
        run_words.clear()

    for k, w in enumerate(words):
        hit = _value(words, k, lexicon)
        if hit is not None and hit[0] in PHRASE_ATTRIBUTES:
            run.append(hit)
            run_words.append(w)
            continue
        head = [hit] if hit is not None and hit[0] == PHRASE_HEAD else []
        if len(phrases) < MAX_PHRASES and (head or w in nouns):
            close([*run, *head])
            continue
        # a run of attribute words with no noun ("how many are matte?") filters a set too
        if run and len(phrases) < MAX_PHRASES:
            close(run)
        out.extend(run_words)
        run.clear()
        run_words.clear()
        out.append(w)
    if run and len(phrases) < MAX_PHRASES:
        close(run)
    out.extend(run_words)
    return out, phrases


def anonymize_words(
    words: Sequence[str], lexicon: Mapping[str, tuple[str, str]], *, per_occurrence: bool = False
) -> tuple[list[str], dict[str, str]]:
    """Replace value words by slots.

    Args:
        per_occurrence: Number every occurrence (``left ... left`` -> ``<relation1>
            ... <relation2>``) instead of every distinct value, so that a repeated
            value does not shift the numbers of the slots after it.

    Returns:
        The words with slots (same length and positions) and ``{slot: value}``.
    """
    slots: dict[str, str] = {}
    by_value: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    out = []
    for k, w in enumerate(words):
        hit = _value(words, k, lexicon)
        if hit is None:
            out.append(w)
            continue
        slot = None if per_occurrence else by_value.get(hit)
        if slot is None:
            counts[hit[0]] = counts.get(hit[0], 0) + 1
            slot = f"<{hit[0]}{counts[hit[0]]}>"
            by_value[hit] = slot
            slots[slot] = hit[1]
        out.append(slot)
    return out, slots


def anonymize_program(
    tokens: Sequence[str],
    slots: Mapping[str, str],
    phrases: Mapping[str, Sequence[str]] | None = None,
    words: Sequence[str] | None = None,
    *,
    catalogue: Catalogue | None = None,
    reuse_phrases: bool = False,
) -> list[str]:
    """Program tokens with values replaced by the question's slots where it names them.

    Each maximal run of ``filter_*`` tokens equal to a phrase's chain becomes that
    phrase's slot (the first unused phrase with that chain, in question order);
    bare-noun phrases go, in order, to the unfiltered object sets, when there are
    as many of those as bare nouns; the remaining values become value slots.
    (CLEVR's value vocabularies are disjoint, so a value identifies its slots.)
    Where several slots hold the value (``per_occurrence`` numbering), the one
    whose next phrase in ``words`` (the anonymised question) is the token's next
    phrase in the program is taken: "left of the <obj2>" is ``relate[..] unique <obj2>``.

    Args:
        catalogue: Arities of the program's functions (default: CLEVR).
        reuse_phrases: A chain equal to an already used phrase's chain takes that
            phrase's slot again (CLEVRER names an object twice), instead of keeping its values.
    """
    if phrases:
        tokens = _collapse_chains(tokens, phrases, catalogue, reuse_phrases)
    candidates: dict[str, list[str]] = {}
    for slot, value in slots.items():
        candidates.setdefault(value, []).append(slot)
    next_phrase: dict[str, str | None] = {}
    if words is not None:
        for pos, w in enumerate(words):
            if w in slots:
                next_phrase[w] = next((x for x in words[pos + 1 :] if _PHRASE_SLOT.match(x)), None)
    chosen: dict[int, str] = {}
    wanted = [(i, m) for i, t in enumerate(tokens) if (m := _VALUE_TOKEN.match(t)) and m.group(2) in candidates]
    for i, m in wanted:  # first the tokens whose next phrase names their slot
        anchor = next((x for x in tokens[i + 1 :] if _PHRASE_SLOT.match(x)), None)
        slot = next((c for c in candidates[m.group(2)] if anchor is not None and next_phrase.get(c) == anchor), None)
        if slot is not None and slot not in chosen.values():
            chosen[i] = slot
    for i, m in wanted:  # then the rest, in order, to the slots left over
        if i not in chosen:
            options = candidates[m.group(2)]
            chosen[i] = next((c for c in options if c not in chosen.values()), options[0])
    out = list(tokens)
    for i, m in wanted:
        out[i] = f"{m.group(1)}[{chosen[i]}]"
    return out


def _parents(tokens: Sequence[str], catalogue: Catalogue | None = None) -> list[int]:
    """Index of each prefix token's parent (-1 for the root), from the catalogue's arities (default: CLEVR)."""
    catalogue = catalogue or Catalogue.default()
    parents, open_args = [], []  # open_args: [parent index, inputs still to come]
    for i, t in enumerate(tokens):
        parents.append(open_args[-1][0] if open_args else -1)
        if open_args:
            open_args[-1][1] -= 1
            if open_args[-1][1] == 0:
                open_args.pop()
        arity = catalogue.signature(t.split("[", 1)[0]).arity
        if arity:
            open_args.append([i, arity])
    return parents


def _collapse_chains(
    tokens: Sequence[str], phrases: Mapping[str, Sequence[str]], catalogue: Catalogue | None = None, reuse: bool = False
) -> list[str]:
    unused = {k: v for k, v in phrases.items() if v}
    used: dict[str, Sequence[str]] = {}
    bare = [k for k, v in phrases.items() if not v]
    parents = _parents(tokens, catalogue)
    sites = [
        i for i, t in enumerate(tokens)
        if t.startswith(_SET_HEADS)
        and (parents[i] < 0 or not tokens[parents[i]].startswith((*_PHRASE_FILTERS, "intersect")))
    ]
    while len(sites) > len(bare) and any(tokens[i] == "union" for i in sites):
        sites.remove(next(i for i in sites if tokens[i] == "union"))  # "the number of A and B": no noun for A or B
    if len(sites) != len(bare):
        sites, bare = [], []
    bare_at = dict(zip(sites, bare, strict=True))
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if not tokens[i].startswith(_PHRASE_FILTERS):
            if i in bare_at:
                out.append(bare_at[i])
            out.append(tokens[i])
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j].startswith(_PHRASE_FILTERS):
            j += 1
        chain = tuple(tokens[i:j])
        slot = next((k for k, v in unused.items() if tuple(v) == chain), None)
        if slot is None and reuse:
            slot = next((k for k, v in used.items() if tuple(v) == chain), None)
        if slot is None:
            out.extend(chain)
        else:
            out.append(slot)
            used[slot] = unused.pop(slot, None) or used[slot]
        i = j
    return out


def restore_program(
    tokens: Sequence[str], slots: Mapping[str, str], phrases: Mapping[str, Sequence[str]] | None = None
) -> list[str] | None:
    """Replace slots by their values and phrases by their filters; ``None`` if a slot is not in the question."""
    out: list[str] = []
    for t in tokens:
        if _PHRASE_SLOT.match(t):
            chain = (phrases or {}).get(t)
            if chain is None:
                return None
            out.extend(chain)
            continue
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


def phrase_tokens(signatures: Mapping[str, T]) -> dict[str, T]:
    """Phrase slots ``<obj1>`` ... ``<objN>`` with the signature of an attribute filter (objects -> objects)."""
    filters = [sig for t, sig in signatures.items() if t.startswith(_PHRASE_FILTERS)]
    if not filters:
        return {}
    return {f"<obj{k}>": filters[0] for k in range(1, MAX_PHRASES + 1)}


def token_slot(token: str) -> str | None:
    """The slot a program token names (``filter_color[<color1>]`` -> ``<color1>``, ``<obj2>`` -> itself), or None."""
    if _PHRASE_SLOT.match(token):
        return token
    m = _VALUE_TOKEN.match(token)
    if m is not None and m.group(2).startswith("<"):
        return m.group(2)
    return None
