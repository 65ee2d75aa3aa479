"""Saving and loading question-parser checkpoints (weights-only, atomic).

A checkpoint is a plain dict of tensors, strings and numbers, so it loads with
``torch.load(..., weights_only=True)`` (:func:`physics.io.torch_load`):

``format``, ``config`` (the :class:`ParserConfig` fields), ``question_vocab``,
``program_tokens`` with their signatures (``program_inputs``, ``program_outputs``,
``program_terminal``), ``lexicon`` (value words anonymised
into slots), ``catalogue`` (whose programs it writes; absent: ``clevr``), ``nouns`` (generic nouns closing an object phrase; empty: no phrase slots), ``model`` (state dict), ``meta``
(command, seed, data source, metrics), ``weights_sha256`` (the digest of the
weights, checked on load: a damaged file is refused) and, while training,
``train_state`` (the :class:`~physics.training.TrainLoop` state: stage, step,
optimiser, RNG states, reward baseline, flags, command) so that runs resume.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from physics.errors import CheckpointError, NesyError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from reasoning.parser.config import ParserConfig
from reasoning.parser.model import QuestionParser
from reasoning.parser.vocab import ProgramVocabulary, Vocabulary

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_CHECKPOINT",
    "save_parser",
    "parser_payload",
    "load_parser",
    "load_checkpoint",
    "parser_from_checkpoint",
    "load_default_parser",
    "export_parser",
]

CHECKPOINT_FORMAT = "nesy-question-parser-1"
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "parser_default.pt"


def parser_payload(parser: QuestionParser, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint entries of ``parser`` (without training state)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(parser.config),
        "question_vocab": list(parser.question_vocab.words),
        "program_tokens": list(parser.program_vocab.tokens),
        "program_inputs": [list(i) for i in parser.program_vocab.inputs],
        "program_outputs": list(parser.program_vocab.outputs),
        "program_terminal": list(parser.program_vocab.terminal),
        "lexicon": {w: list(tv) for w, tv in sorted(parser.lexicon.items())},
        "nouns": sorted(parser.nouns),
        "catalogue": parser.catalogue_name,
        "model": {k: v.detach().cpu().clone() for k, v in parser.state_dict().items()},  # loads anywhere
        "meta": dict(meta or {}),
    }


def save_parser(
    path: PathLike,
    parser: QuestionParser,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write ``parser`` (and optionally its training state) to ``path`` atomically, with its weights digest."""
    obj = parser_payload(parser, meta)
    if train_state is not None:
        obj["train_state"] = train_state
    atomic_torch_save(path, obj)


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (weights-only load, digest checked).

    Raises:
        CheckpointError: missing, corrupt, damaged (weights not matching their digest),
            of another format, or of the wrong structure (each entry's type is checked).
    """
    obj = torch_load(path, "question-parser checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a question-parser checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    require_fields(obj, path, "question-parser checkpoint", {
        "config": dict, "question_vocab": list, "program_tokens": list, "program_inputs": list,
        "program_outputs": list, "program_terminal": list, "model": dict})
    for key, kind in (("lexicon", dict), ("nouns", list), ("meta", dict)):
        if key in obj and not isinstance(obj[key], kind):
            raise CheckpointError(f"{path} is not a question-parser checkpoint: its {key!r} entry is a "
                                  f"{type(obj[key]).__name__}, expected a {kind.__name__}")
    return obj


def parser_from_checkpoint(obj: dict[str, Any], where: str = "checkpoint") -> QuestionParser:
    """Build a :class:`QuestionParser` from a loaded checkpoint dict."""
    known = {f.name for f in fields(ParserConfig)}
    try:
        config = ParserConfig(**{k: v for k, v in obj["config"].items() if k in known})
        parser = QuestionParser(
            Vocabulary(tuple(obj["question_vocab"])),
            ProgramVocabulary(
                tuple(obj["program_tokens"]),
                tuple(tuple(i) for i in obj["program_inputs"]),
                tuple(obj["program_outputs"]),
                tuple(obj["program_terminal"]),
            ),
            config,
            {w: (tv[0], tv[1]) for w, tv in obj.get("lexicon", {}).items()},
            obj.get("nouns", ()),
            str(obj.get("catalogue", "clevr")),
        )
        parser.load_state_dict(obj["model"])
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError, NesyError) as exc:
        raise CheckpointError(f"{where} does not fit the question parser: {exc}") from None
    parser.eval()
    return parser


def load_parser(path: PathLike, catalogue: str | None = None) -> QuestionParser:
    """Load a trained parser (in eval mode) from ``path``.

    Args:
        path: The checkpoint.
        catalogue: The catalogue whose programs the caller runs (``"clevr"``, ``"clevrer"``);
            None: any.

    Raises:
        CheckpointError: the file is missing, corrupt, not weights-only, does not fit
            the model, or its parser writes another catalogue's programs.
    """
    parser = parser_from_checkpoint(load_checkpoint(path), where=str(path))
    if catalogue is not None and parser.catalogue_name != catalogue:
        raise CheckpointError(f"{path} writes {parser.catalogue_name} programs; a {catalogue} question parser is "
                              "needed here")
    return parser


def load_default_parser() -> QuestionParser:
    """The parser shipped with the package (reproduce it with ``nesy train parser``; see its ``meta``)."""
    return load_parser(DEFAULT_CHECKPOINT)


def export_parser(src: PathLike, dst: PathLike) -> None:
    """Copy a trained checkpoint without its training state (optimiser moments): the shippable file."""
    obj = load_checkpoint(src)
    obj.pop("train_state", None)
    atomic_torch_save(dst, obj)
