"""``nesy answer --video``: one CLEVRER program on one video, with the execution trace.

Examples::

    nesy answer --video data/clevrer/annotation_val/annotation_00003.json \\
        --program "count(filter_moving(filter_material(objects(), metal), null()))"
    nesy answer --video data/clevrer --index 3 --program "objects metal filter_material null filter_moving count"
    nesy answer --video data/clevrer --index 3 --question "How many metal objects are moving?"
    nesy answer --video data/clevrer --index 3 --question "Which of the following will happen next?" \
        --option "The red cube collides with the sphere"
    nesy answer --video data/clevrer --index 3 --question "Which of the following will happen next?" --choice 1

``--video`` is an annotation file (its truth file is found beside it, in
``truth_<split>/``) or a folder ``nesy data clevrer`` wrote, with ``--index``.
Futures and counterfactuals come from ``--dynamics`` (a registered name; ``gt``
re-reads the simulated truth). The program is ``--program`` in our text form
or CLEVRER's postfix tokens (words separated by spaces or a JSON list), or
``--question`` parsed by ``--video-parser`` (a registered name: ``model``, the
default, is the trained NS-VQA parser, :mod:`reasoning.parser.video`, with
``--video-parser-checkpoint`` or the shipped one; ``gt`` looks the question up in
the split's question file for this video and runs its stored program). A
multiple-choice question is judged for one option, as the official executor
does (the option's program, then the question's): ``--option TEXT`` (parsed on
its own), or ``--choice K``, option K of the question stored for this video.

An audio-visual clip (a folder ``nesy data audiovisual`` wrote, ``clip_<k>``, or
its output folder with ``--index k``) is answered the same way, on the clip's
video and sound: a registered sounding-object localiser (``--localiser``, ``gt``
by default: the clip's truth) says which objects sound in which frames, and the
executor's sound operations read it. ``--question`` goes, unless ``--video-parser``
says otherwise, to the question templates for questions about sound
(:mod:`reasoning.parser.sound_questions`: the learned parser was never trained on
them) and, when no template matches, to the learned parser. A clip has no
futures or counterfactuals (``--dynamics`` does not apply)::

    nesy answer --video data/av/clip_00003 --question "Which object is making the sound?"
    nesy answer --video data/av --index 3 --question "What sounds after the cube collides?"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from physics.errors import ConfigError, DataError
from physics.io import read_json
from reasoning.dsl import Program, parse_program, to_text
from reasoning.dsl.clevrer_format import from_clevrer_tokens, join_choice, to_clevrer_tokens
from reasoning.executor.result import ExecutionResult
from reasoning.executor.video import CHOICE_ANSWERS, execute_video
from reasoning.executor.video_scene import VideoScene
from reasoning.nsdr import VIDEO_PARSERS, VideoFiles, dynamics_for
from reasoning.questions.clevrer import question_path

__all__ = ["video_files_from_args", "video_program_from_args", "run_video", "clip_folder_from_args", "run_clip"]


def video_files_from_args(args: argparse.Namespace) -> tuple[VideoFiles, Path, str]:
    """(the video's files, the data folder, the split) from ``--video`` and ``--index``."""
    path = Path(args.video)
    if path.is_file():
        stem, split_dir = path.stem, path.parent.name
        if not (stem.startswith("annotation_") and stem.removeprefix("annotation_").isdigit()
                and split_dir.startswith("annotation_")):
            raise ConfigError(f"--video {path}: expected annotation_<split>/annotation_<index>.json")
        index, split = int(stem.removeprefix("annotation_")), split_dir.removeprefix("annotation_")
        if args.index is not None and args.index != index:
            raise ConfigError(f"--index {args.index} disagrees with --video {path.name}")
        return VideoFiles.in_folder(path.parent.parent, split, index), path.parent.parent, split
    if not path.is_dir():
        raise DataError(f"--video {path}: no such annotation file or folder")
    if args.index is None:
        raise ConfigError(f"--video {path} is a folder; choose a video with --index")
    splits = sorted(p.name.removeprefix("annotation_") for p in path.glob("annotation_*") if p.is_dir())
    if len(splits) != 1:
        raise DataError(f"--video {path}: expected one annotation_<split> folder, found {splits or 'none'}; "
                        "give the annotation file instead")
    return VideoFiles.in_folder(path, splits[0], args.index), path, splits[0]


def _read_program(text: str, where: str) -> Program:
    """Our text form (``count(objects())``) or CLEVRER tokens (``objects count`` or a JSON list)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            tokens = json.loads(stripped)
        except ValueError as exc:
            raise ConfigError(f"{where}: not a JSON list of tokens ({exc})") from None
        return from_clevrer_tokens(tokens, where=where)
    if "(" in stripped:
        return parse_program(stripped, where=where)
    return from_clevrer_tokens(stripped.replace(",", " ").split(), where=where)


def _stored_question(folder: Path, split: str, index: int, text: str, why: str) -> dict[str, Any]:
    path = question_path(folder, split)
    if not path.is_file():
        raise DataError(f"{why} needs the split's questions ({path}; nesy data clevrer-questions writes it)")
    for entry in read_json(path, "CLEVRER questions file"):
        if entry.get("scene_index") == index:
            for q in entry.get("questions", []):
                if q.get("question", "").strip().lower() == text.strip().lower():
                    return q
    raise DataError(f"video {index} has no question {text!r} in {path.name}; {why} reads stored questions only "
                    "(--video-parser model parses any text)")


def _question_record(args: argparse.Namespace, folder: Path, split: str, index: int) -> tuple[dict[str, Any], str]:
    """The question record to parse (text, and the one option judged) and where the option came from."""
    gt = args.video_parser == "gt"
    if args.option is not None:
        if args.choice is not None:
            raise ConfigError("give either --option TEXT or --choice K, not both")
        if gt:
            raise ConfigError("--option TEXT needs a parser (--video-parser model); gt reads stored programs only")
        return {"question": args.question, "choices": [{"choice": args.option}]}, f"option {args.option!r}"
    if not gt and args.choice is None:
        return {"question": args.question}, ""
    why = "--video-parser gt" if gt else "--choice K"
    q = _stored_question(folder, split, index, args.question, why)
    if "choices" not in q:
        if args.choice is not None:
            raise ConfigError("--choice picks an option of a multiple-choice question; this one is descriptive")
        return q, ""
    if args.choice is None or not 0 <= args.choice < len(q["choices"]):
        options = "; ".join(f"{c['choice_id']}: {c['choice']}" for c in q["choices"])
        raise ConfigError(f"a multiple-choice question: choose an option with --choice or --option ({options})")
    choice = q["choices"][args.choice]
    return {**q, "choices": [choice]}, f"option {args.choice} ({choice['choice']}; true label {choice['answer']})"


def note_unknown_words(parse: Any, record: Mapping[str, Any]) -> None:
    """Say on stderr which words of a question (and its options) a learned parser never saw.

    Such a word is read as the unknown-word token, so the program may drop it without a word; the
    ``gt`` and ``templates`` parsers have no vocabulary and say nothing.
    """
    if not hasattr(parse, "unknown_words"):
        return
    texts = [record["question"], *(c["choice"] for c in record.get("choices") or [])]
    unknown = dict.fromkeys(w for words in parse.unknown_words(texts) for w in words)
    if unknown:
        print(f"nesy answer: note: the parser never saw {', '.join(map(repr, unknown))} in --question; check the "
              "program it chose", file=sys.stderr)


def video_program_from_args(args: argparse.Namespace, folder: Path, split: str, index: int) -> tuple[Program, str]:
    """(the program, where it came from) from ``--program`` or ``--question`` (and ``--choice``)."""
    if args.question is not None:
        if args.program is not None:
            raise ConfigError("give either --program or --question, not both")
        record, option = _question_record(args, folder, split, index)
        parse = VIDEO_PARSERS.get(args.video_parser)(args.video_parser_checkpoint)
        parsed = parse(record)
        note_unknown_words(parse, record)
        source = "stored with the question" if args.video_parser == "gt" else f"parsed by {args.video_parser}"
        if not parsed.choices:
            return from_clevrer_tokens(parsed.program, where="question program"), source
        return join_choice(parsed.choices[0], parsed.program, where="option program"), f"{option}, then the question; {source}"
    if args.choice is not None or args.option is not None:
        raise ConfigError("--choice and --option go with --question; with --program, write the option's program first")
    if args.program is None:
        raise ConfigError('give a program: --program "count(objects())" (or CLEVRER tokens) or --question')
    return _read_program(args.program, "--program"), "--program"


def run_video(args: argparse.Namespace) -> int:
    """``nesy answer --video``: print the program (text and tokens), the answer and the trace."""
    clip = clip_folder_from_args(args)
    if args.checkpoint is not None and (clip is not None or args.dynamics == "gt"):
        # it was read by nothing: a corrupt or wrong file passed without a word
        raise ConfigError("--checkpoint with --video is the learned --dynamics model's (e.g. --dynamics propnet); "
                          + ("an audio-visual clip has no dynamics" if clip is not None else
                             "--dynamics gt re-plays the world and reads none"))
    if clip is not None:
        return run_clip(args, clip)
    if args.localiser != "gt" or args.localiser_checkpoint:
        raise ConfigError("--localiser goes with an audio-visual clip (nesy data audiovisual); this is a CLEVRER video")
    args.video_parser = args.video_parser or "model"
    files, folder, split = video_files_from_args(args)
    from physics.worlds.clevrer_annotation import read_annotation

    annotation = read_annotation(files.annotation)
    # the provider is built (its checkpoint read) before the question is parsed: a corrupt --checkpoint is
    # named even for a descriptive question, which needs no rollout
    dynamics = dynamics_for(args.dynamics, args.checkpoint)(files, annotation)
    program, source = video_program_from_args(args, folder, split, files.index)
    result = execute_video(program, VideoScene(annotation, dynamics), trace=True)
    return _print(args, program, source, result, f"video {files.index} ({split}), dynamics {args.dynamics}")


def _print(args: argparse.Namespace, program: Program, source: str, result: ExecutionResult, header: str) -> int:
    from benchmarks.commands.answer import format_trace

    if args.json:
        print(json.dumps({"program": to_text(program), "tokens": to_clevrer_tokens(program), **result.to_json()},
                         indent=1))
        return 0
    print(f"{header}; program ({source}):")
    print(f"  {to_text(program)}")
    print(f"  tokens: {' '.join(to_clevrer_tokens(program))}")
    if result.valid:
        label = f" (option {CHOICE_ANSWERS[result.answer]})" if args.choice is not None and result.answer in CHOICE_ANSWERS else ""
        print(f"answer: {result.answer}{label}")
    else:
        print(f"answer: none ({result.reason})")
    print(format_trace(result))
    return 0


# ---------------------------------------------------------------------- audio-visual clips
def clip_folder_from_args(args: argparse.Namespace) -> Path | None:
    """The clip folder ``--video`` (and ``--index``) names, or None when it is a CLEVRER video."""
    path = Path(args.video)
    if (path / "clip.json").is_file():
        if args.index is not None:
            raise ConfigError(f"--video {path} is one clip; --index picks a clip of a data folder")
        return path
    if path.is_dir() and (path / "build.json").is_file() and any(path.glob("clip_*")):
        if args.index is None:
            raise ConfigError(f"--video {path} is a folder of audio-visual clips; choose one with --index")
        folder = path / f"clip_{args.index:05d}"
        if not (folder / "clip.json").is_file():
            raise DataError(f"--video {path} --index {args.index}: no finished clip {folder.name} there")
        return folder
    return None


class NoFutures:
    """The dynamics of an audio-visual clip: it records what was seen and heard, nothing beyond."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _refuse(self, what: str) -> None:
        raise ConfigError(f"the audio-visual clip {self.folder} has no {what}; ask about what it shows and sounds")

    def future(self, annotation: Any, frames: int) -> Any:
        self._refuse("future frames")

    def counterfactual(self, annotation: Any, removed_object_id: int) -> Any:
        self._refuse("counterfactual truth")


def _clip_program(args: argparse.Namespace) -> tuple[Program, str]:
    """(the program, where it came from) for a clip: ``--program``, or ``--question`` parsed."""
    if args.choice is not None or args.option is not None:
        raise ConfigError("--choice and --option judge CLEVRER's multiple-choice questions; a clip has none stored")
    if args.question is None:
        if args.program is None:
            raise ConfigError('give a program: --program "describe_objects(filter_sounding(objects(), null()))" '
                              "or --question")
        return _read_program(args.program, "--program"), "--program"
    if args.program is not None:
        raise ConfigError("give either --program or --question, not both")
    record = {"question": args.question}
    if args.video_parser is not None:
        parse = VIDEO_PARSERS.get(args.video_parser)(args.video_parser_checkpoint)
        parsed = parse(record)
        note_unknown_words(parse, record)
        return from_clevrer_tokens(parsed.program, where="question program"), f"parsed by {args.video_parser}"
    try:
        parsed = VIDEO_PARSERS.get("templates")(None)(record)
        return from_clevrer_tokens(parsed.program, where="question program"), "parsed by the sound templates"
    except ConfigError:
        parse = VIDEO_PARSERS.get("model")(args.video_parser_checkpoint)
        parsed = parse(record)
        note_unknown_words(parse, record)
        return (from_clevrer_tokens(parsed.program, where="question program"),
                "parsed by model (no sound template matched)")


def run_clip(args: argparse.Namespace, folder: Path) -> int:
    """``nesy answer --video CLIP``: a program on an audio-visual clip's video and sound."""
    from perception.audio.localise import localiser_for
    from physics.worlds.audiovisual import read_clip

    if args.dynamics != "gt":
        raise ConfigError("--dynamics does not apply to an audio-visual clip (it has no futures or counterfactuals)")
    clip = read_clip(folder)
    program, source = _clip_program(args)
    estimate = localiser_for(args.localiser, args.localiser_checkpoint)(clip)
    scene = VideoScene(clip.annotation(), NoFutures(folder), sound=estimate)
    result = execute_video(program, scene, trace=True)
    return _print(args, program, source, result, f"clip {folder} (seed {clip.seed}), localiser {args.localiser}")
