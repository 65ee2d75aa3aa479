"""Question tokeniser and the two vocabularies of the NS-VQA parser.

The parser reads question *words* and writes program *tokens* (prefix order,
side inputs fused into the token, ``filter_color[red]``; Yi et al., NS-VQA,
arXiv 1810.02338, Sec. 3.2).  This module owns both alphabets:

* :func:`tokenize` lower-cases a question and splits off punctuation.
* :class:`Vocabulary` maps question words to ids.  A word the parser never saw
  becomes the :data:`UNK` id, which training teaches the model to read past
  (word dropout, :attr:`~reasoning.parser.ParserConfig.word_dropout`); the
  words it stood for are listed by :meth:`Vocabulary.unknown`, so that callers
  can report them.  A vocabulary without :data:`UNK` (checkpoints written
  before it existed) raises :class:`~physics.errors.DataError` naming the word.
* :func:`template_words` lists every word a CLEVR-format template set can emit
  (template texts with placeholders expanded by every attribute value and its
  synonyms, plural forms included), so that questions from the same templates
  never contain unknown words.
* :class:`ProgramVocabulary` maps program tokens to ids and knows each token's
  signature (input and output types), which makes prefix decoding unambiguous
  and lets the decoder emit only well-typed trees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from physics.errors import DataError
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS

__all__ = [
    "PAD",
    "BOS",
    "UNK",
    "tokenize",
    "Vocabulary",
    "ProgramVocabulary",
    "template_words",
]

PAD = "<pad>"  # id 0 in both vocabularies: padding, ignored by losses and attention
BOS = "<bos>"  # id 1 in the program vocabulary: the decoder's first input
UNK = "<unk>"  # id 1 in the question vocabulary: a word the parser never saw

_SPLIT = re.compile(r"([?;,.!:])")
# placeholder -> attribute type, as in the CLEVR template format (<Z2> is a second size, ...)
_PLACEHOLDER = re.compile(r"<([zcmsr])\d*>", re.IGNORECASE)  # tokenize() lower-cases
_PLACEHOLDER_TYPE = {"z": "size", "c": "color", "m": "material", "s": "shape", "r": "relation"}
# words a CLEVR generator writes for an empty shape placeholder
_EMPTY_SHAPE_WORDS = ("thing", "object")


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and punctuation marks.

    >>> tokenize("How many red cubes are there?")
    ['how', 'many', 'red', 'cubes', 'are', 'there', '?']
    """
    return _SPLIT.sub(r" \1 ", text.lower()).split()


@dataclass(frozen=True)
class Vocabulary:
    """Question words <-> ids.  Id 0 is :data:`PAD`, id 1 :data:`UNK`; the order is fixed at build time.

    Attributes:
        words: All words, ``words[0] == PAD``.
    """

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.words or self.words[0] != PAD:
            raise DataError(f"a vocabulary must start with {PAD!r}, got {self.words[:1]!r}")
        if len(set(self.words)) != len(self.words):
            raise DataError("a vocabulary must not repeat words")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def build(cls, words: Iterable[str]) -> Vocabulary:
        """A vocabulary of ``words`` and :data:`UNK` (sorted, so the same set always gives the same ids)."""
        return cls((PAD, UNK, *sorted(set(words) - {PAD, UNK})))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index  # type: ignore[attr-defined]

    @property
    def unk_id(self) -> int | None:
        """Id of :data:`UNK`, or None for a vocabulary without one (unknown words are errors)."""
        return self._index.get(UNK)  # type: ignore[attr-defined]

    def unknown(self, words: Sequence[str]) -> list[str]:
        """The words of ``words`` that are not in the vocabulary, in order (slot words are known)."""
        index = self._index  # type: ignore[attr-defined]
        return [w for w in words if w not in index]

    def encode(self, question: str, where: str = "question", words: Sequence[str] | None = None) -> list[int]:
        """Word ids of ``question``.

        Args:
            question: The question text (for messages, and tokenised if ``words`` is None).
            where: Label for messages ("question 3").
            words: The words to encode, if already tokenised (and anonymised).

        Unknown words get the :data:`UNK` id.

        Raises:
            DataError: the question is empty, or a word is not in a vocabulary
                without :data:`UNK` (names the word, its position and the question).
        """
        index = self._index  # type: ignore[attr-defined]
        unk = self.unk_id
        ids = []
        for pos, word in enumerate(tokenize(question) if words is None else words):
            i = index.get(word, unk)
            if i is None:
                raise DataError(
                    f"{where}: unknown word {word!r} at position {pos} in {question!r}; "
                    f"the parser knows {len(self.words) - 1} words (those of its training "
                    "questions and question templates)"
                )
            ids.append(i)
        if not ids:
            raise DataError(f"{where}: the question is empty")
        return ids


@dataclass(frozen=True)
class ProgramVocabulary:
    """Program tokens <-> ids, with every token's signature.

    Id 0 is :data:`PAD` and id 1 is :data:`BOS`; neither can be emitted.  A
    token's signature (input types, output type, whether it may be the root)
    comes from the DSL catalogue; the decoder uses it to emit only well-typed
    prefix programs (:class:`reasoning.parser.grammar.TypeGrammar`).

    Attributes:
        tokens: All tokens, ``tokens[:2] == (PAD, BOS)``.
        inputs: Input types of each token (``()`` for PAD and BOS).
        outputs: Output type of each token (``""`` for PAD and BOS).
        terminal: Whether the token may be the root of a question program.
    """

    tokens: tuple[str, ...]
    inputs: tuple[tuple[str, ...], ...]
    outputs: tuple[str, ...]
    terminal: tuple[bool, ...]

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, BOS):
            raise DataError(f"a program vocabulary must start with {PAD!r}, {BOS!r}")
        if not len(self.tokens) == len(self.inputs) == len(self.outputs) == len(self.terminal):
            raise DataError("program vocabulary: one signature per token is required")
        if len(set(self.tokens)) != len(self.tokens):
            raise DataError("program vocabulary: tokens must not repeat")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def build(cls, signatures: Mapping[str, tuple[Sequence[str], str, bool]]) -> ProgramVocabulary:
        """From ``{token: (input types, output type, terminal)}`` (tokens sorted for reproducible ids)."""
        names = sorted(signatures)
        return cls(
            (PAD, BOS, *names),
            ((), (), *(tuple(signatures[t][0]) for t in names)),
            ("", "", *(signatures[t][1] for t in names)),
            (False, False, *(bool(signatures[t][2]) for t in names)),
        )

    @property
    def arities(self) -> tuple[int, ...]:
        """Number of child programs of each token (-1 for PAD and BOS)."""
        return (-1, -1, *(len(i) for i in self.inputs[2:]))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index  # type: ignore[attr-defined]

    def encode(self, tokens: Sequence[str], where: str = "program") -> list[int]:
        """Ids of prefix ``tokens``; DataError names an unknown token and its position."""
        index = self._index  # type: ignore[attr-defined]
        out = []
        for pos, tok in enumerate(tokens):
            i = index.get(tok)
            if i is None or i < 2:
                raise DataError(
                    f"{where}: program token {tok!r} at position {pos} is not in the parser's "
                    f"program vocabulary ({len(self.tokens) - 2} tokens)"
                )
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (stops at the first PAD)."""
        out = []
        for i in ids:
            if i == 0:
                break
            out.append(self.tokens[i])
        return out


def _attribute_words(kind: str, synonyms: Mapping[str, Sequence[str]]) -> set[str]:
    values = RELATIONS if kind == "relation" else ATTRIBUTES[kind]
    words: set[str] = set()
    for v in values:
        for phrase in synonyms.get(v, [v]):
            words.update(tokenize(phrase))
    if kind == "shape":
        for w in _EMPTY_SHAPE_WORDS:
            for phrase in synonyms.get(w, [w]):
                words.update(tokenize(phrase))
    return words


def template_words(
    templates_dir: str | Path, synonyms: Mapping[str, Sequence[str]] | None = None
) -> set[str]:
    """Every word that questions generated from a template folder can contain.

    Reads each ``*.json`` template file (CLEVR template format: a list of
    templates with ``text`` lists), expands each placeholder (``<C2>``, ``<S>s``)
    by every value of its type and that value's synonyms (``sphere`` -> ``ball``,
    ``balls``; an empty shape -> ``thing``/``object``), and keeps the literal
    words.  Optional ``[...]`` segments are read as plain words.

    Args:
        templates_dir: Folder of template JSON files.
        synonyms: Value -> phrases (CLEVR ``synonyms.json`` format); default none.

    Raises:
        DataError: the folder holds no template file, or a file is malformed.
    """
    synonyms = dict(synonyms or {})
    folder = Path(templates_dir)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"no template JSON files in {folder}")
    words: set[str] = set()
    expanded = {t: _attribute_words(t, synonyms) for t in _PLACEHOLDER_TYPE.values()}
    for f in files:
        try:
            templates = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read template file {f}: {exc}") from None
        if not isinstance(templates, list):
            raise DataError(f"{f}: expected a list of templates")
        for k, t in enumerate(templates):
            texts = t.get("text") if isinstance(t, dict) else None
            if not isinstance(texts, list):
                raise DataError(f"{f}: template {k} has no 'text' list")
            for text in texts:
                for token in tokenize(text.replace("[", " ").replace("]", " ")):
                    m = _PLACEHOLDER.search(token)
                    if m is None:
                        words.add(token)
                        continue
                    prefix, suffix = token[: m.start()], token[m.end() :]
                    for w in expanded[_PLACEHOLDER_TYPE[m.group(1).lower()]]:
                        words.add(prefix + w + suffix)
                        words.add(w)
                    if prefix:
                        words.add(prefix)
                    if suffix:
                        words.add(suffix)
    return words
