"""Short human summaries for the terminal: one aligned text table.

Commands that evaluate write their full JSON result to ``--out`` and print only
a few rows here, so that a terminal shows what matters and a script reads the
file::

    >>> print(format_table([["count", 120, 0.9917]], ["type", "questions", "accuracy"]))
    type   questions  accuracy
    -----  ---------  --------
    count        120    0.9917
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["cell", "format_table", "print_table", "percent", "scalar_rows"]


def percent(value: float | None, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage (``0.99354 -> '99.35%'``); ``-`` for ``None``."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def cell(value: Any) -> str:
    """One value as table text: 4 significant digits for floats, thousands kept readable."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}" if abs(value) < 1e-3 else f"{value:,.0f}"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(stripped)
    except ValueError:
        return text == "-"
    return True


def format_table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, title: str | None = None) -> str:
    """Rows as aligned columns (numbers right-aligned, text left), with an optional header and title.

    Args:
        rows: One sequence of cells per row; cells go through :func:`cell`
            unless they are already strings.
        header: Column names, underlined with dashes.
        title: A line printed above the table.
    """
    text_rows = [[v if isinstance(v, str) else cell(v) for v in row] for row in rows]
    all_rows = ([list(header)] if header else []) + text_rows
    if not all_rows:
        return title or ""
    ncol = max(len(r) for r in all_rows)
    all_rows = [r + [""] * (ncol - len(r)) for r in all_rows]
    widths = [max(len(r[c]) for r in all_rows) for c in range(ncol)]
    numeric = [all(_numeric(r[c]) or not r[c] for r in text_rows) and c > 0 for c in range(ncol)]

    def line(r: list[str]) -> str:
        parts = [r[c].rjust(widths[c]) if numeric[c] else r[c].ljust(widths[c]) for c in range(ncol)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    if header:
        out += [line(all_rows[0]), line(["-" * w for w in widths])]
        all_rows = all_rows[1:]
    out += [line(r) for r in all_rows]
    return "\n".join(out)


def print_table(
    rows: Iterable[Sequence[Any]],
    header: Sequence[str] | None = None,
    title: str | None = None,
    file: TextIO | None = None,
) -> None:
    """Print :func:`format_table` (to stdout by default)."""
    print(format_table(rows, header, title), file=file or sys.stdout)


def scalar_rows(
    result: Mapping[str, Any], skip: Iterable[str] = (), prefix: str = "", levels: int = 2
) -> list[list[Any]]:
    """``[name, value]`` rows of a result's numbers and short strings, up to ``levels`` of nesting.

    Nested mappings of scalars become ``outer.inner`` rows; lists, deeper
    structures and the keys in ``skip`` (at any level) are left to the JSON file.
    """
    skipped = set(skip)
    rows: list[list[Any]] = []
    for key, value in result.items():
        if key in skipped:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if levels > 0:
                rows += scalar_rows(value, skipped, prefix=f"{name}.", levels=levels - 1)
        elif isinstance(value, (int, float, bool)) or value is None or (isinstance(value, str) and len(value) <= 60):
            rows.append([name, value])
    return rows
