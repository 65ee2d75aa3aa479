"""The perception models, one suite each (``perception-<name>``): each check beside its ablation.

Each suite calls :func:`benchmarks.perception_bench.run_perception_bench` (the
function behind ``nesy bench perception --model NAME``), which trains the model
and its ablation from seed :data:`SEED` on data the framework generates and
scores both on held-out data; the table is the command's: one row per check,
ours beside the ablation, the threshold and pass or fail.
"""

from __future__ import annotations

from typing import Any

from benchmarks.suites import SuiteContext, register_suite, table

__all__ = ["run_perception", "SEED"]

SEED = 5757  # bench all's seed for the perception models (the results page quotes seed 0)


def run_perception(ctx: SuiteContext) -> dict[str, Any]:
    """Train and check one perception model and its ablation."""
    import torch

    from benchmarks.perception_bench import TABLE_HEADER, run_perception_bench

    torch.set_num_threads(ctx.threads)
    p = ctx.params
    result = run_perception_bench(p["model"], quick=ctx.quick, seed=p["seed"])
    rows = [[result["model"], c["name"], c["ours"], c["ablation"], c["threshold"], "pass" if c["passed"] else "FAIL",
             result["train_minutes"]] for c in result["checks"]]
    return {
        "tables": [table(f"Perception model {result['model']}: its checks beside its ablation", list(TABLE_HEADER), rows,
                         command=f"nesy bench perception --model {p['model']} --seed {p['seed']}"
                         + (" --quick" if ctx.quick else ""), seed=p["seed"],
                         note="quick configuration: a few training steps, so the figures only show the pipeline runs"
                         if ctx.quick else "")],
        "metrics": result,
    }


def _register() -> None:
    from benchmarks.perception_bench import perception_bench_names

    for name in perception_bench_names():
        register_suite(f"perception-{name}", run_perception, quick={"model": name, "seed": SEED},
                       full={"model": name, "seed": SEED}, group="Perception models",
                       help=f"the {name} perception model against its ablation (nesy bench perception)")


_register()
