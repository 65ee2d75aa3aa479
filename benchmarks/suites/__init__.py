"""Benchmark suites for ``nesy bench all``: one registry, one registration per suite.

A suite measures one thing on data it generates itself from documented seeds
(CLEVR QA for one model, one dynamics world, one control task, the speed runs)
and returns a JSON-serialisable result in a shape the report reads without
knowing the suite::

    {"tables":  [table(...), ...],          # laid out as the papers do, ours beside the published
     "figures": [figure(...), ...],         # PNG/GIF/SVG files inside the suite's folder
     "speed":   [[what, rate, unit, note], ...],   # rows of the report's speed table
     "metrics": {...}}                      # headline numbers for scripts

Adding a suite is one function and one call::

    from benchmarks.suites import register_suite, table

    def run_toy(ctx):
        return {"tables": [table("toy", ["x"], [[ctx.params["n"]]], command=ctx.command, seed=0)]}

    register_suite("toy", run_toy, quick={"n": 1}, full={"n": 100}, group="Toys",
                   available=lambda: None, help="a toy")

``available`` returns ``None`` when the suite can run here, else the reason it
cannot (an optional extra missing, no shipped checkpoint); such a suite is
listed in the results and the report as skipped with that reason.  The
built-in suites register themselves in the modules of :data:`BUILTIN_MODULES`,
imported the first time :data:`SUITES` is read; suites registered from anywhere
else (a user's file, a test, another package) join the same table.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physics.errors import ConfigError
from physics.io import ensure_dir
from physics.registry import Registry

__all__ = [
    "Suite",
    "SuiteContext",
    "SUITES",
    "BUILTIN_MODULES",
    "register_suite",
    "table",
    "figure",
    "speed_row",
    "data_lock",
    "save_png",
]

BUILTIN_MODULES = (
    "benchmarks.suites.clevr",
    "benchmarks.suites.clevrer",
    "benchmarks.suites.perception",
    "benchmarks.suites.dynamics",
    "benchmarks.suites.control",
    "benchmarks.suites.speed",
)


@dataclass(frozen=True)
class SuiteContext:
    """What a suite's run function gets.

    Attributes:
        name: The suite's registered name.
        params: Its quick or full settings (a copy of :attr:`Suite.quick` or :attr:`Suite.full`).
        out: The suite's own folder (figures go here; it exists).
        data: A folder shared by all suites for generated data sets (build under a
            name that encodes the seed and size, inside :func:`data_lock`).
        quick: Whether this is a ``--quick`` run.
        threads: torch CPU threads the suite may use.
        command: The ``nesy bench all`` command line of this run (tables name it).
    """

    name: str
    params: Mapping[str, Any]
    out: Path
    data: Path
    quick: bool = True
    threads: int = 1
    command: str = "nesy bench all"


@dataclass(frozen=True)
class Suite:
    """One registered benchmark suite (see the module docstring)."""

    name: str
    run: Callable[[SuiteContext], dict[str, Any]]
    quick: Mapping[str, Any]
    full: Mapping[str, Any]
    available: Callable[[], str | None] = field(default=lambda: None)
    group: str = "Other"
    help: str = ""
    exclusive: bool = False

    def params(self, quick: bool) -> dict[str, Any]:
        """The settings of a quick or a full run."""
        return dict(self.quick if quick else self.full)

    def unavailable_reason(self) -> str | None:
        """``None`` when the suite can run here, else why not (an error in the check is a reason too)."""
        try:
            reason = self.available()
        except Exception as exc:  # the check itself failed: the suite cannot run, say why
            return f"availability check failed: {type(exc).__name__}: {exc}"
        return None if reason is None else str(reason)


SUITES: Registry[Suite] = Registry("benchmark suite", modules=BUILTIN_MODULES)


def register_suite(
    name: str,
    run: Callable[[SuiteContext], dict[str, Any]],
    *,
    quick: Mapping[str, Any],
    full: Mapping[str, Any],
    available: Callable[[], str | None] | None = None,
    group: str = "Other",
    help: str = "",
    exclusive: bool = False,
    replace: bool = False,
) -> Suite:
    """Register a suite for ``nesy bench all``.

    Args:
        name: The suite's name (``--suites NAME``); a word without spaces.
        run: ``SuiteContext -> result dict`` (tables, figures, speed rows, metrics).
        quick: Settings of a ``--quick`` run (small, minutes for all suites together).
        full: Settings of a full run.
        available: ``() -> None`` when it can run here, else the reason it cannot.
        group: The report section it is shown in ("CLEVR question answering", ...).
        help: One line for listings.
        exclusive: Run alone, after the suites that share the workers (a speed suite:
            its timings should not compete with other suites for the cores).
        replace: Overwrite a suite of the same name.

    Returns:
        The :class:`Suite`.

    Raises:
        ConfigError: a taken name, or settings that are not mappings.
    """
    if not isinstance(quick, Mapping) or not isinstance(full, Mapping):
        raise ConfigError(f"suite {name!r}: quick and full settings must be mappings (dicts)")
    suite = Suite(name, run, dict(quick), dict(full), available or (lambda: None), group, help, exclusive)
    SUITES.register(name, suite, help=help, replace=replace)
    return suite


def table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    command: str,
    seed: int | str | None,
    published: Sequence[Sequence[Any]] = (),
    source: str = "",
    note: str = "",
) -> dict[str, Any]:
    """A report table: our rows, then published rows (measured on other data) below them.

    Args:
        title: Caption.
        header: Column names.
        rows: Our measured rows (cells: numbers or text).
        command: The command that made the rows.
        seed: The seed(s) of the data they were measured on.
        published: Rows of figures from the papers, same columns; the report marks
            them as measured on different data.
        source: Where the published rows come from (paper, table, data set).
        note: One more line under the table.
    """
    return {
        "title": title,
        "header": [str(h) for h in header],
        "rows": [list(r) for r in rows],
        "published": [list(r) for r in published],
        "source": source,
        "command": command,
        "seed": seed,
        "note": note,
    }


def figure(title: str, path: Path | str, out: Path) -> dict[str, str]:
    """A report figure: a file inside the suite's folder ``out`` (stored relative to it)."""
    return {"title": title, "path": str(Path(path).relative_to(out))}


def speed_row(what: str, rate: float, unit: str, note: str = "") -> list[Any]:
    """One row of the report's speed table (``rate`` in ``unit``, e.g. ``questions/s``)."""
    return [what, float(rate), unit, note]


@contextlib.contextmanager
def data_lock(folder: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (a data set being built) while the block runs.

    Suites running in parallel workers share generated data sets: the first one
    builds it, the others wait and then find it complete (the builders resume).
    """
    folder = Path(folder)
    ensure_dir(folder.parent, "data folder")
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_png(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as a PNG file atomically, then close it."""
    import io

    import matplotlib.pyplot as plt

    from physics.io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
