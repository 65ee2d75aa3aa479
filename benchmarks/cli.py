"""The ``nesy`` command line.

Commands live one per module in :mod:`benchmarks.commands`; each module has a
``register(groups)`` function that adds its parser with ``groups.command(...)``
(a top-level command such as ``nesy demo``) or ``groups.sub("bench", ...)``
(a member of a group such as ``nesy bench speed``), and sets ``func`` to the
function that runs it.  Adding a command is one module and one line in
``COMMAND_MODULES``.

Every error a user can cause is a :class:`~physics.errors.NesyError`; the CLI
prints it as one line naming what and where, and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from physics.errors import NesyError

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

# module names under benchmarks.commands, in help order
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "data_dynamics",
    "data_clevr",
    "questions",
    "train_derender",
    "train_dynamics",
    "train_parser",
    "bench_dynamics",
    "execute",
    "answer",
    "bench_speed",
    "eval_clevr",
)

GROUP_HELP = {
    "data": "generate data sets in the official formats",
    "train": "train a model (checkpoints resume)",
    "bench": "speed and accuracy benchmarks (JSON results)",
    "eval": "evaluate a model on a data set",
}


class Groups:
    """Hands out parsers for top-level commands and for members of groups."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:
        self._sub = subparsers
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def command(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._sub.add_parser(name, **kwargs)

    def sub(self, group: str, name: str, **kwargs) -> argparse.ArgumentParser:
        if group not in self._groups:
            gp = self._sub.add_parser(group, help=GROUP_HELP.get(group, ""))
            self._groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="COMMAND", required=True)
        return self._groups[group].add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nesy",
        description="nesy-physics: neuro-symbolic scene reasoning and learned physics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = Groups(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(f"benchmarks.commands.{name}").register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NesyError as exc:
        print(f"nesy {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is saved and the command resumes where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
