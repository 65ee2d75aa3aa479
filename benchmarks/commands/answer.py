"""``nesy answer``: answer one program on one scene and show the execution trace.

Examples::

    nesy answer --scene CLEVR_val_scenes.json --index 3 --program "count(filter_color(scene(), red))"
    nesy answer --image CLEVR_val_000003.png --question "How many red cubes are there?"
    nesy answer --image CLEVR_val_000003.png --perceiver derender --checkpoint runs/derender/derender.pt \
        --question "How many red cubes are there?"

The second form is NS-VQA from pixels: a registered perceiver (``--perceiver``,
the shipped derenderer by default, or its weights from ``--checkpoint``) turns
the image into a scene graph (printed), the shipped parser turns the question
into a program (printed), and the executor answers with its trace.

``--video`` answers a CLEVRER program on a video instead (:mod:`benchmarks.answer_video`),
or on an audio-visual clip (a folder from ``nesy data audiovisual``), where questions
may ask about sound::

    nesy answer --video data/av/clip_00003 --question "Which object is making the sound?"

prints the answer and a table of every node (post-order index, function, input
nodes, side inputs, output: sets as object index lists).  ``--json`` prints the
:class:`~reasoning.executor.ExecutionResult` as JSON instead.

The command is built from two sources, each an argument group, so that other
ways of getting a scene (``--image``, derendering) or a program (``--question``,
a neural parser) are additions to :func:`scene_from_args` /
:func:`program_from_args`, not a rewrite.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.config_flags import count, registry_argument
from perception.audio.localise import SOUNDING_LOCALISERS
from perception.registry import PERCEIVERS
from perception.scene_graph import SceneGraph, load_scenes
from physics.errors import ConfigError, DataError
from reasoning.dsl import Program, parse_program, to_text
from reasoning.errors import ProgramError
from reasoning.executor import ExecutionResult, execute
from reasoning.nsdr import VIDEO_DYNAMICS, VIDEO_PARSERS

__all__ = ["register", "run", "scene_from_args", "program_from_args", "format_trace", "format_scene"]

DEFAULT_PERCEIVER = "derender"  # NS-VQA's perception


def scene_from_args(args: argparse.Namespace) -> SceneGraph:
    """The scene from ``--image`` (perceived) or ``--scene`` (and ``--index``)."""
    if args.image is not None:
        if args.scene is not None:
            raise ConfigError("give either --scene or --image, not both")
        from perception.image_io import load_image
        from perception.registry import load_perceiver

        perceiver = load_perceiver(args.perceiver, args.checkpoint)  # first: a misspelt name is the error to show
        return perceiver(load_image(args.image), image_filename=Path(args.image).name)  # too small: refused there
    if args.perceiver != DEFAULT_PERCEIVER or args.checkpoint is not None:
        raise ConfigError("--perceiver and --checkpoint read an --image; a --scene is used as it is")
    if args.scene is None:
        raise ConfigError("give a scene: --scene FILE.json, --image IMAGE.png or --video (a CLEVRER annotation, "
                          "video folder or audio-visual clip)")
    bad: list[str] = []  # with --index, a malformed scene other than the one asked for is skipped
    scenes = load_scenes(args.scene, skipped=None if args.index is None else bad)
    name = Path(args.scene).name
    if args.index is None:
        if len(scenes) != 1:
            raise ConfigError(f"{name} holds {len(scenes)} scenes; choose one with --index")
        return scenes[0]
    matches = [k for k, scene in enumerate(scenes) if scene.image_index == args.index]
    if len(matches) > 1:  # which one the program ran on would be the file's order, not the user's choice
        raise DataError(f"{name}: scenes {matches[0]} and {matches[1]} share image_index {args.index}; "
                        "--index cannot tell them apart")
    if matches:
        return scenes[matches[0]]
    if not bad and all(s.image_index is None for s in scenes) and 0 <= args.index < len(scenes):
        return scenes[args.index]  # by position: only while no skipped scene shifts the positions
    known = [s.image_index if s.image_index is not None else k for k, s in enumerate(scenes)]
    skipped = f"; {len(bad)} malformed scene(s) skipped, first: {bad[0]}" if bad else ""
    raise DataError(f"{name}: no scene with image_index {args.index}; the file holds {_span(known)}{skipped}")


def _span(values: list[int]) -> str:
    if not values:
        return "no scenes"
    return f"image indices {min(values)}..{max(values)} ({len(values)} scenes)"


def program_from_args(args: argparse.Namespace) -> Program:
    """The program from ``--program`` (text form) or ``--question`` (parsed by the shipped parser)."""
    if args.question is not None:
        if args.program is not None:
            raise ConfigError("give either --program or --question, not both")
        from reasoning.parser import load_default_parser

        parser = load_default_parser()
        (program,) = parser.parse([args.question])
        # a stand-in parser (the CLI tests use a minimal one) may not know its vocabulary: no note then
        unknown = parser.unknown_words([args.question])[0] if hasattr(parser, "unknown_words") else ()
        if unknown:  # read as the unknown-word token: the program may ignore the word ('plaid things' -> all things)
            words = ", ".join(repr(w) for w in dict.fromkeys(unknown))
            print(f"nesy answer: note: the parser never saw {words} in --question; check the program it chose",
                  file=sys.stderr)
        if program is None:
            raise ProgramError(f"the parser found no well-typed program for --question {args.question!r}")
        return program
    if args.program is None:
        raise ConfigError('give a program: --program "count(scene())" or --question "How many ...?"')
    return parse_program(args.program, where="--program")


def format_scene(scene: SceneGraph) -> str:
    """The scene's objects as an aligned text table."""
    rows = [("#", "size", "color", "material", "shape", "x", "y", "z")]
    for k, o in enumerate(scene.objects):
        rows.append((str(k), o.size, o.color, o.material, o.shape, *(f"{c:+.2f}" for c in o.position)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def format_trace(result: ExecutionResult) -> str:
    """The trace as an aligned text table (index, function, inputs, values, output)."""
    rows = [("#", "function", "inputs", "values", "type", "output")]
    stack: list[int] = []  # post-order: a node's inputs are the last len(args) finished nodes
    for step in result.trace:
        n = len(step.call.args)
        inputs = stack[len(stack) - n :] if n else []
        del stack[len(stack) - n :]
        stack.append(step.index)
        rows.append(
            (
                str(step.index),
                step.call.function,
                ",".join(map(str, inputs)),
                ",".join(v if v else "_" for v in step.call.values),
                step.type,
                json.dumps(step.output) if isinstance(step.output, list) else str(step.output),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def run(args: argparse.Namespace) -> int:
    if args.video is not None:  # a CLEVRER video (benchmarks.answer_video)
        if args.scene is not None or args.image is not None:
            raise ConfigError("give one of --scene, --image or --video")
        if args.perceiver != DEFAULT_PERCEIVER:  # was ignored without a word
            raise ConfigError("--perceiver reads an --image; a --video's objects come from its annotation")
        from benchmarks.answer_video import run_video

        return run_video(args)
    if (args.choice is not None or args.option is not None or args.dynamics != "gt" or args.video_parser_checkpoint
            or args.video_parser is not None or args.localiser != "gt" or args.localiser_checkpoint):
        raise ConfigError("--choice, --option, --dynamics, --video-parser(-checkpoint) and --localiser(-checkpoint) "
                          "go with --video")
    scene = scene_from_args(args)
    program = program_from_args(args)
    result = execute(program, scene, trace=True)
    if args.json:
        out = result.to_json()
        if args.image is not None:
            out["scene"] = scene.to_clevr()
        if args.question is not None:
            out["program"] = to_text(program)
        print(json.dumps(out, indent=1))
        return 0
    if args.image is not None:
        print(f"scene graph ({len(scene)} objects, perceived by {args.perceiver} from {args.image}):")
        print(format_scene(scene))
    if args.question is not None:
        print(f"program: {to_text(program)}")
    if result.valid:
        print(f"answer: {result.answer}")
    else:
        print(f"answer: none (invalid: {result.reason})")
    print(format_trace(result))
    return 0


def register(groups) -> None:
    parser = groups.command(
        "answer",
        help="answer a program or question on a scene, image, video or sounding clip, with the trace",
        description="Run a program (--program, or a --question parsed into one) with the symbolic executor on a "
        "scene (--scene, or --image through a perceiver) or a video (--video: a CLEVRER annotation or video "
        "folder, or a sounding clip); print the answer and a table of every node's output.",
    )
    scene_group = parser.add_argument_group("scene")
    scene_group.add_argument("--scene", help="CLEVR scenes JSON (a scenes file or one scene)")
    scene_group.add_argument("--index", type=count(min=0), help="image_index of the scene in the --scene file, or the video in a --video folder")
    scene_group.add_argument("--image", help="an image to turn into a scene graph with --perceiver")
    registry_argument(scene_group, "--perceiver", registry=PERCEIVERS, default=DEFAULT_PERCEIVER,
                      help=f"perception model for --image (default: {DEFAULT_PERCEIVER})")
    scene_group.add_argument("--checkpoint", help="the perceiver's checkpoint file for --image, or the learned "
                             "--dynamics model's for --video (default: the shipped one)")
    video_group = parser.add_argument_group("video (CLEVRER or an audio-visual clip; see benchmarks.answer_video)")
    video_group.add_argument("--video", help="a CLEVRER annotation file, a folder from nesy data clevrer with --index, "
                             "or an audio-visual clip folder (nesy data audiovisual; its output folder with --index)")
    registry_argument(video_group, "--dynamics", registry=VIDEO_DYNAMICS, default="gt",
                      help="futures and counterfactuals of --video from (default: gt)")
    video_group.add_argument("--choice", type=count(min=0), help="option K of a multiple-choice --question about --video "
                             "(the question stored for the video)")
    video_group.add_argument("--option", help="an option's text, judged for a multiple-choice --question about --video")
    registry_argument(video_group, "--video-parser", registry=VIDEO_PARSERS, default=None,
                      help="parses --question about --video (default: model; on a clip, templates for questions "
                      "about sound, else model)")
    video_group.add_argument("--video-parser-checkpoint", help="the video parser's checkpoint (default: its shipped one)")
    registry_argument(video_group, "--localiser", registry=SOUNDING_LOCALISERS, default="gt",
                      help="which objects sound in an audio-visual clip, for questions about sound (default: gt)")
    video_group.add_argument("--localiser-checkpoint", help="the localiser's checkpoint (default: its shipped one)")
    program_group = parser.add_argument_group("program")
    program_group.add_argument("--program", help='program text, e.g. "count(filter_color(scene(), red))" '
                               "(with --video also CLEVRER postfix tokens)")
    program_group.add_argument("--question", help="a question to parse into a program (the shipped NS-VQA parser; with --video, --video-parser)")
    parser.add_argument("--json", action="store_true", help="print the result (answer, trace) as JSON")
    parser.set_defaults(func=run)
