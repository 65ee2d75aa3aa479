"""The parser's data-efficiency plot: held-out accuracy vs supervised programs.

NS-VQA (Yi et al., arXiv 1810.02338, Fig. 4 / Table 2) shows that a few hundred
(question, program) pairs plus REINFORCE on (question, answer) pairs are
enough; this plot is our measurement of the same curve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from physics.io import PathLike, atomic_write_bytes, ensure_dir

__all__ = ["plot_data_efficiency"]


def plot_data_efficiency(rows: Sequence[Mapping[str, Any]], path: PathLike, *, title: str | None = None) -> None:
    """Plot accuracy against the number of supervised programs and write a PNG atomically.

    Args:
        rows: One dict per trained parser with ``programs`` (int), ``reinforce``
            (bool), ``answer_accuracy`` and ``program_exact`` (fractions of the
            held-out questions).
        path: PNG file to write.
        title: Figure title (default mentions the held-out question count).
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    styles = {False: ("supervised only", "tab:blue"), True: ("+ REINFORCE", "tab:red")}
    for rl, (label, color) in styles.items():
        pts = sorted((r["programs"], r["answer_accuracy"], r["program_exact"]) for r in rows if bool(r["reinforce"]) == rl)
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax.plot(xs, [100 * p[1] for p in pts], "o-", color=color, label=f"{label}: executed answer correct")
        ax.plot(xs, [100 * p[2] for p in pts], "s--", color=color, alpha=0.6, label=f"{label}: exact program")
    ax.set_xscale("log")
    xs_all = sorted({r["programs"] for r in rows})
    ax.set_xticks(xs_all)
    ax.set_xticklabels([str(x) for x in xs_all])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # log-axis minor labels would overprint ours
    ax.set_xlabel("supervised (question, program) pairs")
    ax.set_ylabel("held-out accuracy (%)")
    n = rows[0].get("held_out_questions") if rows else None
    ax.set_title(title or f"NS-VQA question parser, {n} held-out questions")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    ensure_dir(Path(path).parent, "figure folder")
    atomic_write_bytes(path, buf.getvalue())
