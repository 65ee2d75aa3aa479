"""CLEVR question answering, one suite per registered QA model (``clevr-nsvqa``, ``clevr-nscl``, ...).

Each suite builds a fresh CLEVR-style test split (``nesy data clevr``, seed
:data:`SEED`, never used for training or tuning), answers every question from
pixels with the model's shipped perceiver and the shipped parser (``nesy eval
clevr --perception model --parser model``), and reports accuracy per question
type in NS-VQA's table layout, with the paper's figures (CLEVR v1.0, not our
data) below ours, and a bar chart of accuracy per type.  The perceiver's images
per second go to the speed table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.suites import (
    SuiteContext,
    data_lock,
    figure,
    register_suite,
    save_png,
    speed_row,
    table,
)

__all__ = ["run_clevr", "PUBLISHED", "SEED"]

SEED = 5151  # held-out test split of bench all; never used for training or choosing settings
TYPES = ("count", "exist", "compare_number", "compare_attribute", "query_attribute")

# Published accuracy (%) per question type, in TYPES order, then overall; measured on the official CLEVR.
PUBLISHED: dict[str, tuple[str, tuple[float, ...]]] = {
    "nsvqa": ("NS-VQA paper (Yi et al., NeurIPS 2018, Table 1; official CLEVR v1.0 test)",
              (99.7, 99.9, 99.9, 99.8, 99.8, 99.8)),
    "nscl": ("NS-CL paper (Mao et al., ICLR 2019, Table 4; official CLEVR v1.0 val)",
             (98.2, 98.8, 99.0, 99.1, 99.3, 98.9)),
}


def _available(model: str):
    def check() -> str | None:
        from perception.registry import PERCEIVERS
        from reasoning.registry import QA_MODELS

        perceiver = PERCEIVERS.get(QA_MODELS.get(model).default_perceiver)
        shipped = perceiver.default_checkpoint
        if shipped is None or not Path(shipped).is_file():
            return f"perceiver {perceiver.name!r} of QA model {model!r} ships no checkpoint"
        return None

    return check


def _accuracy_plot(result: dict[str, Any], model: str, published: tuple[float, ...] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [t.replace("_", "\n") for t in TYPES] + ["overall"]
    ours = [100 * result["accuracy"][t] for t in TYPES] + [100 * result["accuracy"]["overall"]]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.4, 3.0), dpi=90)
    width = 0.4 if published else 0.6
    ax.bar(x - (width / 2 if published else 0), ours, width, label=f"{model}, this run")
    if published:
        ax.bar(x + width / 2, published, width, color="#bbbbbb", label="paper (official CLEVR, other data)")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("accuracy (%)")
    low = max(0.0, min(ours + list(published or [])) - 5)
    ax.set_ylim(low, 100 + 0.4 * (100 - low))  # head room for the legend above the bars
    ax.set_yticks([t for t in ax.get_yticks() if low <= t <= 100])
    ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    ax.set_title(f"{model}: accuracy per question type", fontsize=9)
    save_png(fig, path)


def run_clevr(ctx: SuiteContext) -> dict[str, Any]:
    """Build the split (shared by every QA model's suite), evaluate the model on it, lay out the table."""
    from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
    from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr

    p = ctx.params
    model = p["model"]
    data = ctx.data / f"clevr_test_seed{p['seed']}_n{p['n']}_q{p['questions_per_scene']}"
    data_cmd = (f"nesy data clevr --n {p['n']} --seed {p['seed']} --split test "
                f"--questions-per-scene {p['questions_per_scene']} --out {data}")
    with data_lock(data):
        build_clevr(ClevrDataConfig(n=p["n"], out=str(data), seed=p["seed"], split="test",
                                    questions_per_scene=p["questions_per_scene"]), progress=False)
    t0 = time.perf_counter()
    result = evaluate_clevr(ClevrEvalConfig(data=str(data), split="test", model=model, threads=ctx.threads),
                            progress=False)
    seconds = time.perf_counter() - t0
    acc = result["accuracy"]
    counts = result["counts"]
    low, high = result["accuracy_interval"]
    header = ["model", "questions", *(t.replace("_", " ") for t in TYPES), "overall"]
    ours = [f"{model} (this run, from pixels)", result["questions"],
            *(f"{100 * acc[t]:.1f}" for t in TYPES), f"{100 * acc['overall']:.2f}"]
    published_rows = []
    source = ""
    if model in PUBLISHED:
        source, numbers = PUBLISHED[model]
        published_rows = [[source.split(" (")[0], "", *(f"{v:.1f}" for v in numbers)]]
    tables = [table(
        f"CLEVR question answering, {model}: accuracy (%) per question type",
        header, [ours], published=published_rows, source=source,
        command=f"{data_cmd}; nesy eval clevr --data {data} --split test --model {model} "
        "--perception model --parser model",
        seed=p["seed"],
        note=f"{result['scenes']} scenes; questions per type: "
        + ", ".join(f"{t.replace('_', ' ')} {counts[t]}" for t in TYPES)
        + f"; overall 90% interval {100 * low:.2f}-{100 * high:.2f}% (resampling scenes)",
    )]
    if "perception" in result:
        m = result["perception"]
        attrs = m["attribute_accuracy"]
        all_attrs = attrs.get("all") if isinstance(attrs, dict) else attrs
        tables.append(table(
            f"CLEVR perception, {model}'s perceiver: objects found and read",
            ["detection precision", "detection recall", "all four attributes right", "3D position error"],
            [[f"{100 * m['detection_precision']:.2f}%", f"{100 * m['detection_recall']:.2f}%",
              "-" if all_attrs is None else f"{100 * all_attrs:.2f}%",
              "-" if m.get("position_error") is None else f"{m['position_error']:.3f}"]],
            command=f"nesy eval clevr --data {data} --split test --model {model}", seed=p["seed"],
        ))
    plot = ctx.out / f"clevr_{model}_accuracy.png"
    _accuracy_plot(result, model, PUBLISHED.get(model, (None, None))[1], plot)
    # images per second of perception alone, on the split's first images
    speed = []
    perceive_s = _time_perception(model, data, p.get("speed_images", 3), ctx.threads)
    if perceive_s is not None:
        speed.append(speed_row(f"perception ({model}'s perceiver), one image at a time", perceive_s,
                               "images/s", f"{ctx.threads} torch thread(s), 480x320"))
    return {
        "tables": tables,
        "figures": [figure(f"{model}: accuracy per question type", plot, ctx.out)],
        "speed": speed,
        "metrics": {"model": model, "accuracy": acc, "counts": counts, "accuracy_interval": [low, high],
                    "questions": result["questions"], "scenes": result["scenes"],
                    "perception": result.get("perception"), "parser": {
                        k: v for k, v in (result.get("parser") or {}).items() if not isinstance(v, (dict, list))},
                    "seconds": round(seconds, 2), "data": data_cmd},
    }


def _time_perception(model: str, data: Path, images: int, threads: int) -> float | None:
    """Images per second of the model's perceiver on the first ``images`` images (after one warm-up)."""
    import torch

    from perception.image_io import load_image
    from reasoning.registry import QA_MODELS, QAParts, load_qa_model

    files = sorted((data / "images").glob("*.png"))[: images + 1]
    if len(files) < 2:
        return None
    torch.set_num_threads(threads)
    qa = load_qa_model(model, QAParts(perceiver=QA_MODELS.get(model).default_perceiver, parser=False))
    rgbs = [load_image(f) for f in files]
    qa.perceive(rgbs[0])
    t0 = time.perf_counter()
    for rgb in rgbs[1:]:
        qa.perceive(rgb)
    return (len(rgbs) - 1) / (time.perf_counter() - t0)


def _register() -> None:
    from reasoning.registry import QA_MODELS

    for name in QA_MODELS.names():
        register_suite(
            f"clevr-{name}", run_clevr,
            quick={"model": name, "n": 8, "questions_per_scene": 5, "seed": SEED, "speed_images": 3},
            full={"model": name, "n": 150, "questions_per_scene": 10, "seed": SEED, "speed_images": 20},
            available=_available(name), group="CLEVR question answering",
            help=f"CLEVR QA accuracy per question type of {name}, from pixels",
        )


_register()
