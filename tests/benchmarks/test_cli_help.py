"""``nesy COMMAND --help`` says what each flag does and what it is when left out, in words a user can act on.

Walks every command of the real parser (no command runs): each flag has words of its own, a flag with a
default states it once, no help page shows argparse's escapes (``%%``) or an empty ``(default: )``, and a
flag a help text names is one that command takes (a help shared by two commands named the other's flag).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from benchmarks.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(``nesy A B``, parser) of every command that takes flags (the leaves of the command tree)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(("nesy", *path)), parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*path, name))


def _flags(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            yield action


FLAG = r"(?<![\w-])--[a-z](?:[a-z0-9-]*[a-z0-9])?(?![\w*-])"  # a flag named in prose; a pattern (`--future-*`) is none


@pytest.fixture(scope="module")
def commands() -> list[tuple[str, argparse.ArgumentParser]]:
    return list(_commands(build_parser()))


def test_every_command_is_walked(commands):
    names = {name for name, _ in commands}
    assert {"nesy demo", "nesy eval clevrer", "nesy control", "nesy train dynamics"} <= names
    assert len(names) >= 28


def test_help_pages_show_no_argparse_escapes_or_empty_defaults(commands):
    wrong = []
    for name, parser in commands:
        page = parser.format_help()
        for bad in ("%%", "(default: )", "(default: ())", "(default: [])"):
            if bad in page:
                wrong.append(f"{name} --help shows {bad!r}")
    assert not wrong, "\n".join(wrong)


def test_every_flag_says_what_it_does_beyond_its_default(commands):
    bare = [f"{name} {a.option_strings[-1]}" for name, parser in commands for a in _flags(parser)
            if not re.sub(r"\(default: [^)]*\)", "", a.help or "").strip()]
    assert not bare, "flags without a help text:\n" + "\n".join(bare)


def test_a_flag_with_a_default_states_it_once(commands):
    unstated, twice = [], []
    for name, parser in commands:
        for a in _flags(parser):
            text = (a.help or "").lower()
            takes_value = a.nargs != 0 and not isinstance(a, argparse.BooleanOptionalAction)
            if takes_value and a.default not in (None, argparse.SUPPRESS) and "default" not in text:
                unstated.append(f"{name} {a.option_strings[-1]} (default {a.default!r})")
            if text.count("(default") > 1:
                twice.append(f"{name} {a.option_strings[-1]}: {a.help}")
    assert not unstated, "flags whose default the help does not give:\n" + "\n".join(unstated)
    assert not twice, "flags whose help gives the default twice:\n" + "\n".join(twice)


def test_a_flag_named_in_a_help_text_is_a_flag_of_that_command(commands):
    wrong = []
    for name, parser in commands:
        known = {option for action in parser._actions for option in action.option_strings}
        for text in [parser.description or "", *(a.help or "" for a in parser._actions)]:
            text = re.sub(r"\s+", " ", text)
            own = re.sub(r"nesy [a-z][a-z -]*?--[a-z][a-z0-9-]*", "", text)  # `nesy OTHER --flag` names another's
            named = re.findall(FLAG, own)
            wrong += [f"{name}: {flag} in {text[:100]!r}" for flag in named if flag not in known]
    assert not wrong, "help texts naming a flag their command does not take:\n" + "\n".join(wrong)


def test_the_command_lists_name_what_each_command_reads():
    from benchmarks.speed import SUITES

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    top, bench = (re.sub(r"\s+", " ", p.format_help()) for p in (parser, commands["bench"]))
    assert all(suite in bench for suite in SUITES)  # `nesy bench --help` listed two of the three speed suites
    assert "scene, image, video or sounding clip" in top  # `nesy --help`: answer named scenes and images only
