"""Paired comparison of two models' per-episode errors, with a bootstrap interval.

Open-loop rollout error varies by orders of magnitude between episodes and,
for the same settings, up to 2x between training seeds, so "A's mean error is
lower than B's" on a few episodes says little.  :func:`paired_ratio` compares
two models on the *same* episodes: each model may be several runs (training
seeds), averaged per episode; the statistic is the ratio of the mean errors,
with a percentile interval from resampling episodes (the pairs stay together).

    >>> r = paired_ratio([[1.0, 2.0, 3.0]], [[2.0, 4.0, 6.0]], n_boot=200)
    >>> r["ratio"], r["lower_in"], r["interval"]
    (0.5, 3, [0.5, 0.5])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from physics.errors import DataError

__all__ = ["paired_ratio"]


def _runs(name: str, runs: Sequence[Sequence[float]]) -> np.ndarray:
    if len(runs) == 0:
        raise DataError(f"{name}: no runs to compare")
    lengths = {len(r) for r in runs}
    if len(lengths) != 1:
        raise DataError(f"{name}: runs cover different numbers of episodes {sorted(lengths)}; they must share one data set")
    arr = np.asarray(runs, dtype=np.float64)
    if arr.shape[1] == 0:
        raise DataError(f"{name}: runs hold no episodes")
    if not np.isfinite(arr).all():
        run, ep = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{name}: run {run} has a non-finite error at episode {ep} ({arr[run, ep]})")
    if (arr < 0).any():  # an error is a mean squared distance: a negative one is a damaged result
        run, ep = np.argwhere(arr < 0)[0]
        raise DataError(f"{name}: run {run} has a negative error at episode {ep} ({arr[run, ep]}); errors are >= 0")
    return arr


def paired_ratio(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    *,
    n_boot: int = 5000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """Ratio of A's to B's mean per-episode error, paired by episode.

    Args:
        a, b: per-episode errors, one row per run (e.g. training seed) and one
            column per episode; every row of ``a`` and ``b`` covers the same
            episodes in the same order.  Runs of one model are averaged per episode.
        n_boot: bootstrap resamples of the episodes (one whose B errors are all zero has no
            ratio and is left out of the interval).
        level: coverage of the percentile interval (0.9: 5th to 95th percentile).
        seed: seed of the resampling.

    Returns:
        ``{"a_mean", "b_mean", "ratio", "interval": [lo, hi], "level",
        "lower_in" (episodes where A's error is lower), "episodes", "runs_a",
        "runs_b", "bootstrap"}``.

    Raises:
        DataError: empty or ragged runs, different episode counts, non-finite or
            negative errors, or B's mean error not positive.
    """
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise DataError(f"paired_ratio needs n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    ea, eb = _runs("A", a).mean(0), _runs("B", b).mean(0)
    if len(ea) != len(eb):
        raise DataError(f"A covers {len(ea)} episodes and B {len(eb)}; a paired comparison needs the same episodes")
    if not eb.mean() > 0:
        raise DataError(f"B's mean error is {eb.mean()}; the ratio needs it positive")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ea), size=(n_boot, len(ea)))
    num, den = ea[idx].mean(1), eb[idx].mean(1)
    # A resample of episodes whose B is all zero has no ratio (an accuracy over videos none of which
    # asks a question of the type); it is left out, not read as 0 (which put 0% in the interval of a
    # type answered 100% right when a few videos hold all its questions).
    boot = num[den > 0] / den[den > 0] if (den > 0).any() else np.array([ea.mean() / eb.mean()])
    tail = (1.0 - level) / 2.0
    return {
        "a_mean": float(ea.mean()),
        "b_mean": float(eb.mean()),
        "ratio": float(ea.mean() / eb.mean()),
        "interval": [float(np.quantile(boot, tail)), float(np.quantile(boot, 1.0 - tail))],
        "level": level,
        "lower_in": int((ea < eb).sum()),
        "episodes": len(ea),
        "runs_a": len(a),
        "runs_b": len(b),
        "bootstrap": n_boot,
    }
