"""CLEVRER question answering with NS-DR (``clevrer-nsdr``): the paper's table, each part swapped for the truth.

The suite renders a fresh held-out split of CLEVRER-style videos (``nesy data
clevrer``, seed :data:`SEED`, never used for training or tuning), writes its
questions (``nesy data clevrer-questions``) and answers them with NS-DR
(``nesy eval clevrer``) five times: every part from ground truth (the generator
and executor must agree), then the learned video perceiver, the learned
dynamics and the learned parser each alone, then all three together, so a
reader sees where the errors come from.  The published rows (CLEVRER's own
videos, not ours) sit below.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.suites import SuiteContext, data_lock, register_suite, speed_row, table

__all__ = ["run_clevrer", "SEED", "PUBLISHED"]

SEED = 5656  # held-out videos of bench all; never used for training or choosing settings

# Per-question accuracy (%) published on CLEVRER's validation set: descriptive, explanatory,
# predictive, counterfactual (explanatory and the rest per question).
PUBLISHED = (
    ("NS-DR (Yi, Gan et al., ICLR 2020)", (88.1, 79.6, 68.7, 42.2)),
    ("DCL (Chen et al., ICLR 2021)", (90.7, 82.8, 82.0, 46.5)),
    ("VRDP (Ding et al., NeurIPS 2021)", (93.4, 91.9, 94.8, 89.2)),
)
PARTS = (("gt", "gt", "gt"), ("model", "gt", "gt"), ("gt", "propnet", "gt"), ("gt", "gt", "model"),
         ("model", "propnet", "model"))


def run_clevrer(ctx: SuiteContext) -> dict[str, Any]:
    """Build the videos and questions, evaluate NS-DR with each mix of parts, lay out the paper's table."""
    from benchmarks.datasets.clevrer_builder import FUTURE_SHARE, ClevrerDataConfig, build_clevrer
    from benchmarks.datasets.clevrer_questions import (
        ClevrerQuestionsDataConfig,
        build_clevrer_questions,
    )
    from benchmarks.eval_clevrer import METRICS, ClevrerEvalConfig, evaluate_clevrer

    p = ctx.params
    # the share in the name: a cache built by the sampler before --future-share keeps its own folder
    data = ctx.data / f"clevrer_test_seed{p['seed']}_n{p['n']}_f{p['frames']}_future{FUTURE_SHARE:g}"
    data_cmd = f"nesy data clevrer --n {p['n']} --seed {p['seed']} --split test --frames {p['frames']} --out {data}"
    with data_lock(data):
        t0 = time.perf_counter()
        build_clevrer(ClevrerDataConfig(n=p["n"], out=str(data), seed=p["seed"], split="test",
                                        frames=p["frames"]), progress=False)
        build_seconds = time.perf_counter() - t0
        build_clevrer_questions(ClevrerQuestionsDataConfig(data=str(data), split="test"), progress=False)
    rows, results = [], {}
    for perception, dynamics, parser in PARTS:
        t0 = time.perf_counter()
        result = evaluate_clevrer(ClevrerEvalConfig(data=str(data), split="test", perception=perception,
                                                    dynamics=dynamics, parser=parser), progress=False)
        key = f"perception={perception},dynamics={dynamics},parser={parser}"
        results[key] = {"accuracy": result["accuracy"], "counts": result["counts"], "interval": result["interval"],
                        "invalid": result["invalid"], "errors": result["errors"],
                        "seconds": round(time.perf_counter() - t0, 2)}
        acc, counts = result["accuracy"], result["counts"]
        rows.append([f"perception {perception}, dynamics {dynamics}, parser {parser}",
                     *(f"{100 * acc[m]:.1f}" if counts[m] else "-" for m in METRICS)])
    counts = results["perception=gt,dynamics=gt,parser=gt"]["counts"]
    header = ["NS-DR parts", "descriptive", "explanatory per option", "explanatory per question",
              "predictive per option", "predictive per question", "counterfactual per option",
              "counterfactual per question"]
    published = [[name, f"{d:.1f}", "", f"{e:.1f}", "", f"{pr:.1f}", "", f"{c:.1f}"] for name, (d, e, pr, c) in PUBLISHED]
    tables = [table(
        "CLEVRER question answering (NS-DR): accuracy (%) per question type, each part swapped for the truth",
        header, rows, published=published, source="the papers, on CLEVRER's own validation videos",
        command=f"{data_cmd}; nesy data clevrer-questions --data {data} --split test; nesy eval clevrer --data {data} "
        "--split test --perception P --dynamics D --parser R",
        seed=p["seed"],
        note=f"{p['n']} videos; counted: " + ", ".join(f"{m.replace('_', ' ')} {counts[m]}" for m in METRICS),
    )]
    return {
        "tables": tables,
        "speed": [speed_row("CLEVRER-style videos generated (480x320, with truth and counterfactuals)",
                            p["n"] / max(build_seconds, 1e-9) * 60, "videos/min", "one process")],
        "metrics": {"results": results, "videos": p["n"], "data": data_cmd},
    }


register_suite(
    "clevrer-nsdr", run_clevrer,
    quick={"n": 3, "frames": 128, "seed": SEED},
    full={"n": 40, "frames": 128, "seed": SEED},
    group="CLEVRER question answering",
    help="NS-DR per CLEVRER question type: ground truth, each learned part alone, all learned",
)
