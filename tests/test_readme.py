"""The README's examples run as written on a fresh clone.

The default run checks, without running anything heavy, that every ``nesy``
command in a shell block parses with the real command line (flags, choices),
that every Python block compiles, that the examples write only into folders git
ignores, and that ``.ci/run`` runs exactly the README's test command.  The
``slow`` test clones the repository into a temporary folder and runs every
shell block there (through ``python -m benchmarks.cli``, so the clone's code is
what runs), then every Python block, and checks that the clone's tracked files
are untouched.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 300  # a user's guide; results and history live in docs/results
OUTPUT_DIRS = ("data", "runs", "out", "demo_out")  # where the examples write; all ignored by git
OUTPUT_FLAGS = ("--out", "--export", "--figure", "--grid", "--gif")
SETUP = ("python3 -m venv", "source ")  # the install commands and venv activation: not run here


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def shell_commands(text: str) -> list[str]:
    """Every command line of the README's ``bash`` blocks, continuation lines joined."""
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def nesy_commands(text: str) -> list[list[str]]:
    """The ``nesy`` commands' arguments (after ``nesy``), comments dropped."""
    out = []
    for line in shell_commands(text):
        if line.startswith(SETUP):
            continue
        words = shlex.split(line, comments=True)
        assert words and words[0] == "nesy", f"README shell line is not a `nesy` command: {line}"
        out.append(words[1:])
    return out


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


def test_readme_is_a_short_users_guide(readme):
    assert len(readme.splitlines()) <= MAX_LINES
    assert "../shared" not in readme  # examples never read the developers' shared data


def test_ci_runs_exactly_the_readme_test_command(readme):
    setup = [line for line in shell_commands(readme) if line.startswith("python3 -m venv")]
    assert len(setup) == 2 and setup[0].endswith("nesy demo") and setup[1].endswith("-m pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup[1] in ci


def test_every_nesy_command_parses(readme):
    commands = nesy_commands(readme)
    assert len(commands) >= 8
    for argv in commands:
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: nesy {shlex.join(argv)}")
        assert callable(args.func)


def test_examples_write_only_into_ignored_folders(readme):
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert set(OUTPUT_DIRS) <= ignored
    for argv in nesy_commands(readme):
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag in OUTPUT_FLAGS:
                assert Path(value).parts[0] in OUTPUT_DIRS, f"nesy {shlex.join(argv)} writes outside {OUTPUT_DIRS}"


def test_python_blocks_compile(readme):
    blocks = _blocks(readme, "python")
    assert blocks
    for k, block in enumerate(blocks):
        compile(block, f"README python block {k}", "exec")


@pytest.mark.slow
def test_readme_runs_in_a_fresh_clone(readme, tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    text = (clone / "README.md").read_text()  # the committed README, as a new user gets it
    env = dict(os.environ, PYTHONPATH=str(clone), MPLBACKEND="Agg")
    for argv in nesy_commands(text):
        if argv[:1] == ["demo"] and "--out" not in argv:
            continue  # the install line's demo; the tour runs it with --out
        done = subprocess.run([sys.executable, "-m", "benchmarks.cli", *argv], cwd=clone, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"nesy {shlex.join(argv)} failed:\n{done.stderr[-2000:]}"
        assert "pybullet build time" not in done.stdout
    for k, block in enumerate(_blocks(text, "python")):
        done = subprocess.run([sys.executable, "-c", block], cwd=clone, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"README python block {k} failed:\n{done.stderr[-2000:]}"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", f"the examples changed or left unignored files:\n{status.stdout}"
