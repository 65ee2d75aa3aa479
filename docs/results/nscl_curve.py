"""NS-CL's data-efficiency curve drawn from ``nesy eval clevr`` results, for docs/results/nscl.md.

Run from the repository root::

    PYTHONPATH=$PWD python docs/results/nscl_curve.py OUT.png PERCENT=RESULT.json [PERCENT=RESULT.json ...]

Each argument pairs the share of the training images a model saw (in percent)
with the JSON that ``nesy eval clevr --out`` wrote for it; the figure shows the
overall accuracy with its 90% interval (resampled scenes, ``accuracy_interval``)
against that share on a log axis, with the issue's 96% (at 10%) and 98.5% (all
images) marked.  The table printed beside it holds every point's numbers and the
split each was measured on, so that a figure mixing splits says so.
"""

from __future__ import annotations

import sys

from benchmarks.dynamics_eval import save_figure
from physics.errors import DataError
from physics.io import read_json


def read_points(pairs: list[str]) -> list[tuple[float, dict]]:
    """``PERCENT=PATH`` arguments -> (percent, result) sorted by percent."""
    points = []
    for pair in pairs:
        share, sep, path = pair.partition("=")
        try:
            percent = float(share)
        except ValueError:
            percent = -1.0
        if not sep or not 0 < percent <= 100:
            raise DataError(f"{pair!r}: give PERCENT=RESULT.json with 0 < PERCENT <= 100")
        result = read_json(path, "nesy eval clevr result")
        if not isinstance(result, dict) or "accuracy" not in result or "accuracy_interval" not in result:
            raise DataError(f"{path}: not a `nesy eval clevr --out` result (no accuracy / accuracy_interval)")
        points.append((percent, result))
    return sorted(points, key=lambda p: p[0])


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = read_points(argv[1:])
    xs = [p for p, _ in points]
    acc = [100 * r["accuracy"]["overall"] for _, r in points]
    lo = [100 * r["accuracy_interval"][0] for _, r in points]
    hi = [100 * r["accuracy_interval"][1] for _, r in points]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.errorbar(xs, acc, yerr=[[a - b for a, b in zip(acc, lo, strict=True)], [b - a for a, b in zip(acc, hi, strict=True)]],
                marker="o", capsize=3, label="NS-CL from pixels (90% interval)")
    ax.plot([10], [96.0], marker="*", markersize=11, linestyle="none", color="tab:red", label="asked: 96% at 10%")
    ax.plot([100], [98.5], marker="*", markersize=11, linestyle="none", color="tab:green", label="asked: 98.5% at 100%")
    for x, a in zip(xs, acc, strict=True):
        ax.annotate(f"{a:.1f}", (x, a), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}%" for x in xs])
    ax.set_xlabel("share of the 9,500 training images")
    ax.set_ylabel("QA accuracy (%)")
    ax.set_title("NS-CL: accuracy against training data", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, argv[0])
    for (x, r), a in zip(points, acc, strict=True):
        cfg = r.get("config", {})
        print(f"{x:g}%\t{a:.2f}%\t[{100 * r['accuracy_interval'][0]:.2f}, {100 * r['accuracy_interval'][1]:.2f}]"
              f"\t{r['questions']} questions\t{cfg.get('data')}\t{cfg.get('checkpoint')}")
    print(f"-> {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
