"""The ``nesy`` command line.

Commands live one per module in :mod:`benchmarks.commands`; each module has a
``register(groups)`` function that fills its parser, got from
``groups.command(...)`` (a top-level command such as ``nesy demo``) or
``groups.sub("bench", ...)`` (a member of a group such as ``nesy bench speed``),
and sets ``func`` to the function that runs it.  Adding a command is one module
and one line in :data:`COMMANDS`.

Every error a user can cause is a :class:`~physics.errors.NesyError`; the CLI
prints it as one line naming what and where, and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from physics.errors import NesyError

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

# (command path, module under benchmarks.commands, one-line help), in help order.
# Only the module of the command being run is imported: the heavy libraries
# (torch, torch_geometric, pybullet) load for the commands that need them, and
# `nesy --help` stays instant.
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("demo",), "demo", "the framework end to end on fresh data, as one HTML page (demo_out/index.html)"),
    (("answer",), "answer", "answer a program or question on a scene, image, video or sounding clip, with the trace"),
    (("execute",), "execute", "answer a CLEVR questions file on a CLEVR scenes file (symbolic executor)"),
    (("data", "clevr"), "data_clevr", "CLEVR-style renders with instance masks, scene JSON and template questions"),
    (("data", "clevrer"), "data_clevrer", "CLEVRER-style collision videos with masks, annotations and counterfactual truth"),
    (("data", "audiovisual"), "data_audiovisual", "audio-visual clips: frames, masks, per-source WAVs, mixture and truth"),
    (("data", "clevrer-questions"), "data_clevrer_questions", "CLEVRER questions of the four types (official JSON) for a folder of videos"),
    (("data", "questions"), "questions", "template questions (official CLEVR questions JSON) for a scenes file"),
    (("data", "stats"), "data_stats", "objects per scene and program size and depth of a CLEVR-format split"),
    (("data", "video-trajectories"), "data_video_trajectories", "a CLEVRER split's object states in one compact .npz (training data)"),
    (("data", "dynamics"), "data_dynamics", "rollouts of a dynamics world as trajectory .npz files"),
    (("train", "derender"), "train_derender", "NS-VQA derenderer: object proposals and attribute network"),
    (("train", "outline"), "train_outline", "outline shape reader of derender-blender-outline (proposal-mask silhouettes)"),
    (("train", "parser"), "train_parser", "train the NS-VQA question parser"),
    (("train", "parser-curve"), "train_parser", "parser accuracy vs number of supervised programs (plot)"),
    (("train", "video-parser"), "train_video_parser", "train the NS-VQA question parser on CLEVRER questions"),
    (("train", "nscl"), "train_nscl", "NS-CL: visual concepts from questions and answers alone"),
    (("train", "dynamics"), "train_dynamics", "train a learned simulator on a dynamics data set"),
    (("train", "video-dynamics"), "train_video_dynamics", "learned PropNet over CLEVRER object states"),
    (("eval", "clevr"), "eval_clevr", "QA model accuracy per question type, parser and perception scores"),
    (("eval", "clevrer"), "eval_clevrer", "NS-DR accuracy per CLEVRER question type (per option and per question)"),
    (("bench", "speed"), "bench_speed", "speed suites (executor, clevr-data, clevrer-data) as JSON"),
    (("bench", "dynamics"), "bench_dynamics", "rollout error and speed of learned simulators against the simulator"),
    (("bench", "all"), "bench_all", "every registered benchmark suite; results.json, report.html and report.md"),
    (("bench", "video-perception"), "bench_video_perception", "CLEVRER video perception from pixels scored against the truth"),
    (("bench", "video-dynamics"), "bench_video_dynamics", "future and counterfactual collisions of video dynamics providers"),
    (("bench", "perception"), "bench_perception", "train perception models and check each against its ablation"),
    (("bench", "compare"), "bench_compare", "paired comparison of two models' rollout errors (bootstrap interval)"),
    (("control",), "control", "model-predictive control on a Gymnasium task (learned or true model)"),
)

# module names, in help order (each registers its own parser(s))
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for _, module, _ in COMMANDS))

GROUP_HELP = {
    "data": "generate data sets in the official formats",
    "train": "train a model (checkpoints resume)",
    "bench": "speed and accuracy benchmarks (JSON results)",
    "eval": "evaluate a model on a data set",
}


class Groups:
    """Hands out the parsers of top-level commands and of members of groups.

    Every command in :data:`COMMANDS` gets a parser up front (with its one-line
    help); a module's ``register`` receives the same parser back from
    :meth:`command` / :meth:`sub` and adds its flags, description and ``func``.
    """

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:
        self._sub = subparsers
        self._groups: dict[str, argparse._SubParsersAction] = {}
        self._parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def declare(self, path: tuple[str, ...], help: str) -> None:
        if len(path) == 1:
            self._parsers[path] = self._sub.add_parser(path[0], help=help)
            return
        group, name = path
        if group not in self._groups:
            gp = self._sub.add_parser(group, help=GROUP_HELP.get(group, ""))
            self._groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="COMMAND", required=True)
        self._parsers[path] = self._groups[group].add_parser(name, help=help)

    def _get(self, path: tuple[str, ...], kwargs: dict) -> argparse.ArgumentParser:
        if path not in self._parsers:
            self.declare(path, kwargs.get("help", ""))
        parser = self._parsers[path]
        if kwargs.get("description"):
            parser.description = kwargs["description"]
        return parser

    def command(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._get((name,), kwargs)

    def sub(self, group: str, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._get((group, name), kwargs)


def _selected_modules(argv: Sequence[str]) -> list[str]:
    """Modules of the command that ``argv`` names (none for ``nesy --help``)."""
    words = [w for w in argv if not w.startswith("-")][:2]
    for path, module, _ in COMMANDS:
        if tuple(words[: len(path)]) == path:
            return [module]
    return []


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``nesy`` parser; with ``argv``, only the named command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="nesy",
        description="nesy-physics: neuro-symbolic scene reasoning and learned physics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = Groups(sub)
    for path, module, help_text in COMMANDS:
        if module in COMMAND_MODULES:
            groups.declare(path, help_text)
    modules = COMMAND_MODULES if argv is None else [m for m in _selected_modules(argv) if m in COMMAND_MODULES]
    for name in modules:
        importlib.import_module(f"benchmarks.commands.{name}").register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return status
    except BrokenPipeError:
        return _stdout_closed()
    except NesyError as exc:  # named as argparse names its own errors: `nesy bench speed`, not `nesy bench`
        command = " ".join(w for w in (args.command, getattr(args, f"{args.command}_command", None)) if w)
        print(f"nesy {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is saved and the command resumes where it stopped", file=sys.stderr)
        return 130


def _stdout_closed() -> int:
    """The reader of our output went away (``nesy ... | head -1``): stop quietly.

    As Python's documentation on SIGPIPE recommends: point stdout at devnull so
    that the interpreter's final flush cannot fail again, and exit with 1.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout has no file descriptor (replaced in-process)
        pass
    return 1


if __name__ == "__main__":
    sys.exit(main())
