"""``nesy bench perception``: train and check the perception models against their ablations.

Examples::

    nesy bench perception --list
    nesy bench perception --model tsm --seed 0 --out tsm.json
    nesy bench perception --all --quick --out perception.json
    nesy bench perception --model gan-dissection --set scenes=one_object --set balanced=true

Each model trains from ``--seed`` on data the framework makes, is evaluated on
held-out data beside its ablation (the same network without the model's idea,
trained on the same data and steps), and reports its checks; ``--all`` runs
every registered model and prints one table.  The JSON holds, per model, the
figures, the thresholds and a boolean ``passed``.  ``--set NAME=VALUE`` changes
one of the model's registered options (``--list`` names them; the entry's
defaults otherwise); a name, type or value it does not take is refused before
anything trains.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from benchmarks.config_flags import count
from benchmarks.perception_bench import perception_benches, results_table, run_perception_bench
from benchmarks.table import format_table
from perception.benchmark import bench_options
from physics.errors import ConfigError
from physics.io import atomic_write_json, check_writable
from physics.settings import parse_settings

__all__ = ["register", "run"]


def _option_names(bench) -> str:
    return ", ".join(f.name for f in dataclasses.fields(bench.options)) if bench.options else "-"


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.set and not args.model:  # with --list it was ignored without a word
        raise ConfigError("--set changes one model's options: give it with --model NAME, not "
                          + ("--list" if args.list else "--all"))
    if args.list:
        rows = [[b.name, b.paper, b.check, b.ablation, _option_names(b)] for b in perception_benches()]
        print(format_table(rows, ["model", "paper", "check", "ablation", "options (--set)"]))
        return 0
    settings = parse_settings(args.set, keys="an option of the model (see --list)")  # text: typed by the option
    if settings:
        perception_benches()  # every entry registered, then the options checked before anything trains
        bench_options(args.model, settings)
    if args.out:
        check_writable(args.out)  # not after the first model is trained
    names = [b.name for b in perception_benches()] if args.all else [args.model]
    results = []
    for name in names:
        results.append(run_perception_bench(name, quick=args.quick, seed=args.seed, options=settings))
        if args.out:  # written after every model, so a long --all keeps what it finished
            payload = results[0] if not args.all else {"seed": args.seed, "quick": args.quick, "results": results}
            atomic_write_json(args.out, payload, indent=1)
    print(results_table(results))
    print(f"full result -> {args.out}" if args.out else "(--out FILE writes the full result as JSON)")
    return 0 if all(r["passed"] for r in results) else 1


def register(groups) -> None:
    parser = groups.sub(
        "bench",
        "perception",
        help="train perception models from a seed and check each against its ablation",
        description="Train a perception model and its ablation from --seed on framework-generated data, "
        "evaluate its check on held-out data and print it; JSON with --out. Exit status 1 when a check fails.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="list the registered models and their checks")
    what.add_argument("--model", metavar="NAME", help="the model to train and check (see --list)")
    what.add_argument("--all", action="store_true", help="every registered model, one table")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (seconds; for tests)")
    parser.add_argument("--seed", type=count(min=0), default=0, help="seed of the data and the training (default 0)")
    parser.add_argument("--out", metavar="FILE", help="write the JSON result here")
    parser.add_argument("--threads", type=count(min=1), default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="change one of the model's options from the entry's default (repeatable; --list names "
                        "each model's options), e.g. --set scenes=one_object")
    parser.set_defaults(func=run)
