"""The NS-VQA parser on CLEVRER questions: one model for each question and each option.

The question parser of :mod:`reasoning.parser` (attention seq2seq, phrase and
value slots, type-constrained decoding) trained on CLEVRER's catalogue
(:mod:`reasoning.parser.catalogues`).  Programs are CLEVRER's postfix tokens on
the outside and the parser's prefix tokens inside (side inputs fused,
``filter_color[red]``):

* a descriptive question: its program, rooted at a terminal operation;
* a multiple-choice question: its program with the option's value written as
  :data:`~reasoning.parser.catalogues.CHOICE` (the first leaf of the postfix
  form, which the option's tokens fill when the option is judged);
* an option ("The red cube collides with the sphere"), parsed on its own:
  its program, rooted at an ``Object|Event``.  Each option is judged as the
  official executor does (:func:`reasoning.executor.video.judge_choice`: the
  option's tokens, then the question's).

:class:`VideoQuestionParser` wraps a trained parser: ``parse(record)`` reads an
official question record (``question``, and ``choices`` for a multiple-choice
one) and returns a :class:`~reasoning.nsdr.ParsedQuestion`; :func:`video_parser`
is the ``model`` entry of :data:`~reasoning.nsdr.VIDEO_PARSERS`, so ``nesy eval clevrer --parser
model`` uses it (the shipped checkpoint :data:`DEFAULT_VIDEO_CHECKPOINT`, or
``--parser-checkpoint``).  ``nesy train video-parser`` trains one on the
questions ``nesy data clevrer-questions`` wrote.

>>> to_parser_tokens(["objects", "red", "filter_color", "count"], "question")
('count', 'filter_color[red]', 'objects')
>>> from_parser_tokens(("belong_to", "choice", "unseen_events"), "multiple_choice")
('unseen_events', 'belong_to')
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from physics.errors import DataError, NesyError
from physics.io import PathLike, read_json
from reasoning.dsl import from_prefix_tokens, to_prefix_tokens
from reasoning.dsl.clevrer_format import from_clevrer_tokens, to_clevrer_tokens
from reasoning.nsdr import ParsedQuestion
from reasoning.parser.catalogues import CHOICE, CHOICE_ROOT, parser_catalogue
from reasoning.parser.checkpoint import load_parser
from reasoning.parser.data import ParserData, ParserExample
from reasoning.parser.model import QuestionParser
from reasoning.questions.clevrer import MC_TYPES, question_path

__all__ = [
    "DEFAULT_VIDEO_CHECKPOINT",
    "VideoQuestionParser",
    "to_parser_tokens",
    "from_parser_tokens",
    "video_examples",
    "load_video_parser_data",
    "evaluate_video_parser",
    "video_parser",
]

DEFAULT_VIDEO_CHECKPOINT = Path(__file__).parent / "checkpoints" / "video_parser.pt"


def to_parser_tokens(tokens: Sequence[str], kind: str, *, where: str = "program") -> tuple[str, ...]:
    """The parser's prefix tokens of CLEVRER postfix ``tokens`` (a ``kind`` of text, see the module doc).

    Raises:
        ProgramError: the tokens are not a program of their kind (names the token).
    """
    cat = parser_catalogue("clevrer")
    program = from_clevrer_tokens([CHOICE, *tokens] if kind == "multiple_choice" else list(tokens), cat, where=where)
    cat.check(program)
    return tuple(to_prefix_tokens(program))


def from_parser_tokens(tokens: Sequence[str] | None, kind: str) -> tuple[str, ...] | None:
    """CLEVRER postfix tokens of the parser's prefix ``tokens``; None if they are no program of their ``kind``.

    A multiple-choice question's program must hold :data:`CHOICE` exactly once,
    as the first leaf of its postfix form (where the option's value goes); an
    option's must return an object or an event; a question's none of those.
    """
    if tokens is None:
        return None
    cat = parser_catalogue("clevrer")
    try:
        program = from_prefix_tokens(list(tokens), cat)
        out = cat.check(program)
    except NesyError:
        return None
    postfix = to_clevrer_tokens(program)
    holes = postfix.count(CHOICE)
    if kind == "multiple_choice":
        return tuple(postfix[1:]) if holes == 1 and postfix[0] == CHOICE else None
    if holes:
        return None
    if kind == "choice" and not set(out.split("|")) <= set(CHOICE_ROOT.split("|")):
        return None
    return tuple(postfix)


def _tokens(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DataError(f"{where}: 'program' must be a list of tokens, got {value!r}")
    return value


def video_examples(entries: Sequence[Mapping[str, Any]], where: str = "questions") -> list[ParserExample]:
    """Parser records of an official CLEVRER question file: every question, and every option on its own.

    Each record's ``template`` is its question type (with the descriptive
    subtype, and ``/choice`` for options), so supervised pairs spread over them.

    Raises:
        DataError / ProgramError: a malformed entry or program (names the video and question).
    """
    out: list[ParserExample] = []
    for v, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("questions"), list):
            raise DataError(f"{where}: video entry {v} has no 'questions' list")
        video = entry.get("scene_index", v)
        for k, q in enumerate(entry["questions"]):
            if not isinstance(q, Mapping):
                raise DataError(f"{where}: video {video}, question at position {k}: expected an object, "
                                f"got {type(q).__name__}")
            at = f"{where}: video {video}, question {q.get('question_id', '?')}"
            if not isinstance(q.get("question"), str):
                raise DataError(f"{at}: no 'question' text")
            qtype = str(q.get("question_type", "descriptive"))
            kind = "multiple_choice" if qtype in MC_TYPES else "question"
            template = qtype if kind != "question" else f"descriptive_{q.get('question_subtype', 'other')}"
            program = to_parser_tokens(_tokens(q.get("program"), at), kind, where=at)
            answer = q.get("answer")
            out.append(ParserExample(q["question"], program, None if answer is None else str(answer), int(video),
                                     template, kind))
            for c_index, c in enumerate(q.get("choices") or []):
                cat = f"{at}, option {c_index}"
                if not isinstance(c, Mapping) or not isinstance(c.get("choice"), str):
                    raise DataError(f"{cat}: no 'choice' text")
                out.append(ParserExample(c["choice"], to_parser_tokens(_tokens(c.get("program"), cat), "choice",
                                                                       where=cat),
                                         c.get("answer"), int(video), f"{qtype}/choice", "choice"))
    return out


def _read_entries(folder: PathLike, split: str) -> list[dict[str, Any]]:
    path = question_path(folder, split)
    entries = read_json(path, "CLEVRER questions file")
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a list of videos with their questions, got {type(entries).__name__}")
    return entries


def load_video_parser_data(folder: PathLike, split: str = "train", *, unique: bool = True) -> ParserData:
    """Parser data from the questions ``nesy data clevrer-questions`` wrote for ``split`` of ``folder``.

    Args:
        folder: The data folder.
        split: The split (its official question file: ``train.json``, ``validation.json``...).
        unique: Keep one record per distinct (text, kind): template questions
            repeat, and repeats would only weigh some texts more.

    Raises:
        DataError: the question file is missing or malformed.
    """
    examples = video_examples(_read_entries(folder, split), where=str(question_path(folder, split)))
    if unique:
        seen: set[tuple[str, str]] = set()
        kept = []
        for e in examples:
            key = (e.question.strip().lower(), e.kind)
            if key not in seen:
                seen.add(key)
                kept.append(e)
        examples = kept
    return ParserData(tuple(examples), source={"data": str(folder), "split": split}, catalogue="clevrer")


class VideoQuestionParser:
    """A trained CLEVRER parser behind :data:`~reasoning.nsdr.VIDEO_PARSERS`' ``parse(record)``.

    Args:
        parser: A :class:`QuestionParser` of the ``clevrer`` catalogue.
        beam_size: 1 for greedy decoding, more for beam search.

    Raises:
        DataError: the parser writes another catalogue's programs.
    """

    def __init__(self, parser: QuestionParser, beam_size: int = 1) -> None:
        if parser.catalogue_name != "clevrer":
            raise DataError(f"a video question parser must write clevrer programs; this one writes "
                            f"{parser.catalogue_name} programs (train one with nesy train video-parser)")
        self.parser = parser
        self.beam_size = beam_size

    def unknown_words(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """The words of each text that the parser never saw (read as the unknown-word token)."""
        return self.parser.unknown_words(list(texts))

    def parse_texts(self, texts: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, ...] | None]:
        """CLEVRER postfix tokens of each text (None where the decode is no program of its kind)."""
        decoded = self.parser.parse_tokens(list(texts), beam_size=self.beam_size, kinds=list(kinds))
        return [from_parser_tokens(t, k) for t, k in zip(decoded, kinds, strict=True)]

    def parse_text(self, question: str, options: Sequence[str] = ()) -> ParsedQuestion:
        """The programs of a question and, when it has ``options``, of each option.

        Raises:
            DataError: a text the parser could not turn into a program of its kind
                (names it), or an empty text.
        """
        kinds = ["multiple_choice" if options else "question", *(["choice"] * len(options))]
        texts = [question, *options]
        parsed = self.parse_texts(texts, kinds)
        for text, kind, tokens in zip(texts, kinds, parsed, strict=True):
            if tokens is None:
                what = "option" if kind == "choice" else "question"
                raise DataError(f"the parser found no valid program for the {what} {text!r}")
        return ParsedQuestion(parsed[0], tuple(parsed[1:]))  # type: ignore[arg-type]

    def __call__(self, record: Mapping[str, Any]) -> ParsedQuestion:
        """Parse an official question record (``question`` and, if multiple-choice, ``choices``).

        Raises:
            DataError: a record without its texts, or a text without a valid program (names the question).
        """
        result = self.parse_many([record])[0]
        if isinstance(result, DataError):
            raise result
        return result

    def parse_many(self, records: Sequence[Mapping[str, Any]]) -> list[ParsedQuestion | DataError]:
        """Parse many records in one batch (``nesy eval clevrer`` parses a video's questions so).

        Returns:
            Per record its :class:`~reasoning.nsdr.ParsedQuestion`, or the
            :class:`~physics.errors.DataError` saying why it has none (one bad
            record does not stop the others).
        """
        texts: list[str] = []
        kinds: list[str] = []
        spans: list[tuple[int, int] | DataError] = []
        for record in records:
            where = f"question {record.get('question_id', '?')}"
            if not isinstance(record.get("question"), str):
                spans.append(DataError(f"{where}: no 'question' text"))
                continue
            choices = record.get("choices") or []
            bad = next((k for k, c in enumerate(choices)
                        if not isinstance(c, Mapping) or not isinstance(c.get("choice"), str)), None)
            if bad is not None:
                spans.append(DataError(f"{where}, option {bad}: no 'choice' text"))
                continue
            spans.append((len(texts), len(texts) + 1 + len(choices)))
            texts += [record["question"], *(c["choice"] for c in choices)]
            kinds += ["multiple_choice" if choices else "question", *(["choice"] * len(choices))]
        parsed = self.parse_texts(texts, kinds) if texts else []
        out: list[ParsedQuestion | DataError] = []
        for record, span in zip(records, spans, strict=True):
            if isinstance(span, DataError):
                out.append(span)
                continue
            got = parsed[span[0]:span[1]]
            missing = next((k for k, t in enumerate(got) if t is None), None)
            if missing is not None:
                what = "question" if missing == 0 else f"option {missing - 1}"
                out.append(DataError(f"question {record.get('question_id', '?')}: the parser found no valid program "
                                     f"for the {what} {texts[span[0] + missing]!r}"))
                continue
            out.append(ParsedQuestion(got[0], tuple(got[1:])))  # type: ignore[arg-type]
        return out


def evaluate_video_parser(parser: VideoQuestionParser, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Program exact match of ``parser`` on official question entries, per question type.

    Returns:
        ``questions``; ``program_exact`` (a question counts when its program and
        every option's program equal the stored tokens); ``option_exact`` (options
        alone); ``per_type`` (question exact match per type, descriptive per
        subtype); ``invalid`` (texts without a valid program).
    """
    texts, kinds, truth, owner = [], [], [], []
    keys: list[str] = []
    for entry in entries:
        for q in entry.get("questions", []):
            qtype = q.get("question_type", "descriptive")
            key = qtype if qtype in MC_TYPES else f"descriptive_{q.get('question_subtype', 'other')}"
            keys.append(key)
            n = len(keys) - 1
            texts.append(q["question"])
            kinds.append("multiple_choice" if qtype in MC_TYPES else "question")
            truth.append(tuple(q["program"]))
            owner.append(n)
            for c in q.get("choices") or []:
                texts.append(c["choice"])
                kinds.append("choice")
                truth.append(tuple(c["program"]))
                owner.append(n)
    parsed = parser.parse_texts(texts, kinds) if texts else []
    right = [True] * len(keys)
    options = Counter()
    for got, want, kind, n in zip(parsed, truth, kinds, owner, strict=True):
        right[n] &= got == want
        if kind == "choice":
            options["total"] += 1
            options["right"] += got == want
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, ok in zip(keys, right, strict=True):
        per[key][0] += ok
        per[key][1] += 1
    return {
        "questions": len(keys),
        "program_exact": sum(right) / len(keys) if keys else None,
        "option_exact": options["right"] / options["total"] if options["total"] else None,
        "per_type": {k: {"program_exact": r / t, "questions": t} for k, (r, t) in sorted(per.items())},
        "invalid": sum(p is None for p in parsed),
    }


def video_parser(checkpoint: PathLike | None = None) -> VideoQuestionParser:
    """The parser of ``checkpoint`` (default: the shipped :data:`DEFAULT_VIDEO_CHECKPOINT`), greedy.

    Raises:
        CheckpointError: the file is missing, damaged or not a parser checkpoint.
        DataError: it is a CLEVR parser.
    """
    return VideoQuestionParser(load_parser(checkpoint if checkpoint is not None else DEFAULT_VIDEO_CHECKPOINT))
