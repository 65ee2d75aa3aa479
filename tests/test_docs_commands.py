"""Every ``nesy`` command the README and the results pages show names a real subcommand and real flags.

The results pages hold the exact commands behind each figure, many with
placeholders (``$D``, ``VAL_SHARE``) and paths of the machine they ran on, so
they are not parsed as a whole (``tests/test_readme.py`` does that for the
README's own shell blocks, and runs them in its ``slow`` test).  What is checked
here, without running anything: in every ``bash`` block and every inline code
span that starts with ``nesy``, the command path (``nesy eval clevr``) exists
and each ``--flag`` is one that command takes.  A flag renamed or removed in the
code then fails here until the page that shows it is mended.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "results").glob("*.md"))]
SEPARATORS = set(";&|()")  # shell punctuation between two commands


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars="".join(sorted(SEPARATORS)))
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def _logical_lines(block: str) -> Iterator[tuple[str, list[str]]]:
    """A block's command lines as (first line, tokens); a quote left open runs on to the lines that close it."""
    lines = block.replace("\\\n", " ").splitlines()
    k = 0
    while k < len(lines):
        for end in range(k, len(lines)):
            try:
                tokens = _tokens("\n".join(lines[k:end + 1]))
                break
            except ValueError:  # an open quote
                continue
        else:  # never closed (prose with an apostrophe): read the line alone, quotes as spaces
            end, tokens = k, _tokens(re.sub("['\"]", " ", lines[k]))
        yield lines[k].strip(), tokens
        k = end + 1


def nesy_argvs(tokens: list[str]) -> Iterator[list[str]]:
    """The arguments after each ``nesy`` (or ``-m benchmarks.cli``) among a line's commands."""
    command: list[str] = []
    for token in [*tokens, ";"]:
        if token and set(token) <= SEPARATORS:
            for k, word in enumerate(command):
                if word == "nesy" or word.endswith("/nesy") or (word == "benchmarks.cli" and k > 0 and command[k - 1] == "-m"):
                    yield command[k + 1:]
                    break
            command = []
        else:
            command.append(token)


def shown_commands() -> list[tuple[str, str, list[str]]]:
    """(page, line, argv) of every ``nesy`` command in the pages' bash blocks and inline code."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
            for line, tokens in _logical_lines(block):
                found += [(page.name, line, argv) for argv in nesy_argvs(tokens)]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M).replace("\n", " ")
        for span in re.findall(r"`(nesy [a-z][^`]*)`", prose):
            words = shlex.split(re.sub(r"\\\||['\"]", " ", span))[1:]  # `--list\|--model` in a table cell
            if not any(w == "..." or w.endswith(":") for w in words[:3]):  # elided, or an error message quoted
                found.append((page.name, span, words))
    return found


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return None


def unknown_names(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """What in ``argv`` the command line does not know (a command or flags), or None."""
    path, words = [], list(argv)
    while (subs := _subcommands(parser)) is not None:
        if not words or words[0].startswith("-"):
            return None if path else "no command"
        if words[0] not in subs:
            return f"no command `nesy {' '.join([*path, words[0]])}`"
        path.append(words.pop(0))
        parser = subs[path[-1]]
    known = {option for action in parser._actions for option in action.option_strings}
    flags = [w.strip("[]").split("=", 1)[0] for w in words if w.strip("[]").startswith("--")]
    unknown = [flag for flag in flags if len(flag) > 2 and flag not in known]
    return f"`nesy {' '.join(path)}` has no {', '.join(unknown)}" if unknown else None


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def test_every_shown_command_names_a_real_subcommand_and_real_flags(parser):
    shown = shown_commands()
    assert len(shown) > 500  # the pages hold hundreds; far fewer means the extraction broke
    wrong = [f"{page}: {why}: {line[:120]}" for page, line, argv in shown
             if (why := unknown_names(parser, argv))]
    assert not wrong, "commands in the docs that the CLI does not take:\n" + "\n".join(wrong)


def test_the_check_catches_a_wrong_command_or_flag(parser):
    assert unknown_names(parser, ["eval", "clevr", "--data", "D", "--split", "val"]) is None
    assert unknown_names(parser, ["eval", "clevr", "--data=D", "--no-such-flag", "1"]) == \
        "`nesy eval clevr` has no --no-such-flag"
    assert unknown_names(parser, ["eval", "clevrr"]) == "no command `nesy eval clevrr`"
    assert unknown_names(parser, ["demo", "--questions", "4"]) is None


def test_commands_are_found_across_quotes_pipes_and_launchers():
    block = ("D=/tmp/x\n"
             "nohup nice -n 10 nesy data clevr --n 3 --out $D > log &\n"
             "torchrun --nproc_per_node 2 -m benchmarks.cli train dynamics --world cradle && echo ok\n"
             "python -c \"print('a\n"
             "b')\" | nesy answer --question \"What's that?\"  # a comment --not-a-flag\n")
    argvs = [argv for _, tokens in _logical_lines(block) for argv in nesy_argvs(tokens)]
    assert argvs == [["data", "clevr", "--n", "3", "--out", "$D", ">", "log"],
                     ["train", "dynamics", "--world", "cradle"],
                     ["answer", "--question", "What's that?"]]
