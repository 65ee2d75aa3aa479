"""``nesy bench compare``: is model A's rollout error lower than B's, beyond the noise?

Example (PropNet against the IN, two training seeds each, on one held-out split)::

    nesy bench dynamics --world rope --data heldout/rope --checkpoints runs/seed0 --out s0.json
    nesy bench dynamics --world rope --data heldout/rope --checkpoints runs/seed1 --out s1.json
    nesy bench compare --a s0.json:propnet s1.json:propnet --b s0.json:in s1.json:in --out cmp.json

Each ``RESULT:MODEL`` names one model's entry in a ``nesy bench dynamics``
result; the runs given for A (or B) are averaged per episode.  The printed
summary and the JSON written to ``--out`` (:func:`benchmarks.paired.paired_ratio`)
hold the ratio of A's to B's mean full-rollout MSE, its bootstrap interval over
episodes, and in how many episodes A was lower.  All results must come from the same data and split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.config_flags import AddItems, count, number, refuse_repeats
from benchmarks.paired import paired_ratio
from benchmarks.table import print_table
from physics.errors import ConfigError, DataError
from physics.io import atomic_write_json, check_writable

__all__ = ["register", "run"]


def _load_run(spec: str, cache: dict[Path, dict[str, Any]]) -> tuple[list[float], tuple[Any, ...]]:
    """Per-episode errors of ``RESULT:MODEL`` and the (data, split, trajectories) they cover."""
    path_text, sep, model = spec.rpartition(":")
    if not sep or not path_text or not model:
        raise ConfigError(f"{spec!r}: expected RESULT.json:MODEL, e.g. heldout.json:propnet")
    path = Path(path_text)
    if path not in cache:
        try:
            cache[path] = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: result file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a readable JSON result ({exc})") from None
    result = cache[path]
    models = result.get("models") if isinstance(result, dict) else None
    if not isinstance(models, dict):
        raise DataError(f"{path}: no 'models' entry; expected a `nesy bench dynamics` result")
    if model not in models:
        raise DataError(f"{path}: no model {model!r} (it holds {', '.join(sorted(models)) or 'none'})")
    errors = models[model].get("mse_per_trajectory")
    if not isinstance(errors, list):
        raise DataError(f"{path}: model {model!r} has no 'mse_per_trajectory' (rerun `nesy bench dynamics`)")
    return errors, (result.get("data"), result.get("split"), result.get("trajectories"))


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.level < 1.0:
        raise ConfigError(f"--level must be an interval coverage in (0, 1), got {args.level}")
    for side in ("a", "b"):  # a run given twice would weigh twice in its side's per-episode mean
        refuse_repeats(getattr(args, side), f"--{side}")
    if args.out:
        check_writable(args.out)  # not after the resampling
    cache: dict[Path, dict[str, Any]] = {}
    runs = {side: [_load_run(spec, cache) for spec in getattr(args, side)] for side in ("a", "b")}
    sources = {src for side in runs.values() for _, src in side}
    if len(sources) > 1:
        raise DataError(f"the results cover different episodes {sorted(map(str, sources))}; "
                        "compare runs benched on the same --data and --split")
    result = paired_ratio([e for e, _ in runs["a"]], [e for e, _ in runs["b"]],
                          n_boot=args.boot, level=args.level, seed=args.seed)
    data, split, _ = sources.pop()
    result = {"a": args.a, "b": args.b, "data": data, "split": split, **result}
    if args.out:
        atomic_write_json(args.out, result, indent=1)
    print_summary(result, args.out)
    return 0


def print_summary(result: dict[str, Any], out: str | None) -> None:
    """A and B's mean errors, the ratio with its interval, and the episodes where A is lower."""
    low, high = result["interval"]
    print_table(
        [["A", " ".join(result["a"]), result["runs_a"], f"{result['a_mean']:.2e}"],
         ["B", " ".join(result["b"]), result["runs_b"], f"{result['b_mean']:.2e}"]],
        ["", "runs", "n", "mean MSE"],
        title=f"{result['episodes']} episodes of {result['data']}, split {result['split']}",
    )
    print(f"A / B = {result['ratio']:.3g}x, {100 * result['level']:.0f}% interval {low:.3g}-{high:.3g}; "
          f"A lower in {result['lower_in']} of {result['episodes']} episodes")
    print(f"full result -> {out}" if out else "(--out FILE writes the full result as JSON)")


def register(groups) -> None:
    parser = groups.sub(
        "bench",
        "compare",
        help="paired comparison of two models' rollout errors (ratio and bootstrap interval)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--a", nargs="+", action=AddItems, required=True, metavar="RESULT:MODEL",
                        help="model A: one or more runs (e.g. training seeds), averaged per episode")
    parser.add_argument("--b", nargs="+", action=AddItems, required=True, metavar="RESULT:MODEL", help="model B, the same way")
    parser.add_argument("--boot", type=count(min=1), default=5000, help="bootstrap resamples of the episodes (default: 5000)")
    parser.add_argument("--level", type=number, default=0.9, help="interval coverage (default: 0.9)")
    parser.add_argument("--seed", type=count(min=0), default=0, help="seed of the resampling (default: 0)")
    parser.add_argument("--out", default=None, help="also write the result JSON here")
    parser.set_defaults(func=run)
