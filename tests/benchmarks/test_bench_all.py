"""``nesy bench all``: the suite registry, skipped and failed suites, resuming, the report."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_all import BenchAllConfig, run_bench_all
from benchmarks.cli import main
from benchmarks.suites import SUITES, figure, register_suite, speed_row, table
from physics.errors import ConfigError

CALLS: list[str] = []


def _toy(ctx):
    import imageio.v2 as imageio
    import numpy as np

    CALLS.append(ctx.name)
    png = ctx.out / "toy.png"
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :, 0] = 200
    imageio.imwrite(png, image)
    n = ctx.params["n"]
    return {
        "tables": [table("toy squares", ["x", "x squared"], [[k, k * k] for k in range(n)], command=ctx.command,
                         seed=7, published=[["toy paper", "9"]], source="Toy et al. 2020")],
        "figures": [figure("a red toy image", png, ctx.out)],
        "speed": [speed_row("toy squaring", 123.0, "squares/s")],
        "metrics": {"n": n},
    }


def _broken(ctx):
    raise RuntimeError("the toy broke\nsecond line")


@pytest.fixture
def toys():
    register_suite("toy", _toy, quick={"n": 3}, full={"n": 5}, group="Toys", help="squares")
    register_suite("toy-missing", _toy, quick={"n": 1}, full={"n": 1}, group="Toys",
                   available=lambda: "needs the toy extra (pip install toy)")
    register_suite("toy-broken", _broken, quick={}, full={}, group="Toys")
    CALLS.clear()
    yield "toy,toy-missing,toy-broken"
    for name in ("toy", "toy-missing", "toy-broken"):
        SUITES.unregister(name)


def test_builtin_suites_cover_every_registered_model_world_and_task():
    from physics.control import TASKS
    from physics.worlds.dynamics.registry import WORLDS
    from reasoning.registry import QA_MODELS

    builtin = ({f"clevr-{m}" for m in QA_MODELS} | {f"dynamics-{w}" for w in WORLDS}
               | {f"control-{t}" for t in TASKS} | {"speed"})
    assert {"clevr-nsvqa", "clevr-nscl", "dynamics-cradle", "control-boxpush"} <= builtin <= set(SUITES.names())
    for name in builtin:
        suite = SUITES.get(name)
        reason = suite.unavailable_reason()
        assert reason is None, (name, reason)  # the shipped checkpoints make every suite runnable (all four particle worlds too)
        assert "seed" in suite.quick and "seed" in suite.full, name
    assert SUITES.get("clevrer-nsdr").unavailable_reason() is None


def test_toy_suite_appears_in_results_and_report_and_unavailable_ones_are_skipped(toys, tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "all", "--out", str(out), "--quick", "--suites", toys]) == 1  # one suite failed
    results = json.loads((out / "results.json").read_text())
    suites = results["suites"]
    assert list(suites) == ["toy", "toy-missing", "toy-broken"]
    assert suites["toy"]["status"] == "ok" and suites["toy"]["params"] == {"n": 3}
    assert suites["toy"]["result"]["metrics"] == {"n": 3}
    assert suites["toy-missing"] == suites["toy-missing"] | {"status": "skipped",
                                                           "reason": "needs the toy extra (pip install toy)"}
    assert suites["toy-broken"]["status"] == "failed"
    assert suites["toy-broken"]["error"] == "RuntimeError: the toy broke"
    assert "the toy broke" in (out / "suites" / "toy-broken" / "error.txt").read_text()
    assert results["machine"]["cores"] >= 1 and results["command"].startswith("nesy bench all --out")

    page = (out / "report.html").read_text()
    assert "toy squares" in page and "squaring" in page
    assert "skipped: needs the toy extra (pip install toy)" in page
    assert "failed: RuntimeError: the toy broke" in page
    assert "data:image/png;base64," in page and "src=\"suites/" not in page  # figures inlined
    assert "† toy paper" in page and "Toy et al. 2020: published, measured on different data" in page
    md = (out / "report.md").read_text()
    assert "| 2 | 4 |" in md and "![a red toy image](suites/toy/toy.png)" in md
    assert "skipped: needs the toy extra" in md and "| toy squaring | 123.0 | squares/s | toy |" in md


def test_a_rerun_keeps_finished_suites_and_runs_failed_ones_again(toys, tmp_path):
    config = BenchAllConfig(out=str(tmp_path / "b"), quick=True, suites=toys)
    run_bench_all(config, say=lambda line: None)
    assert CALLS == ["toy"]
    results = run_bench_all(config, say=lambda line: None)
    assert CALLS == ["toy"]  # kept, not run again
    assert results["suites"]["toy"]["kept"] is True
    assert results["suites"]["toy-broken"]["status"] == "failed"  # failed ones are tried again
    run_bench_all(BenchAllConfig(out=str(tmp_path / "b"), quick=False, suites="toy"), say=lambda line: None)
    assert CALLS == ["toy", "toy"]  # other settings: run again
    assert json.loads((tmp_path / "b" / "results.json").read_text())["suites"]["toy"]["params"] == {"n": 5}
    (tmp_path / "b" / "suites" / "toy" / "result.json").write_text("{damaged")
    run_bench_all(BenchAllConfig(out=str(tmp_path / "b"), quick=False, suites="toy"), say=lambda line: None)
    assert CALLS == ["toy", "toy", "toy"]  # a damaged record: run again


def test_unknown_suite_names_are_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(ConfigError, match="did you mean 'speed'"):
        run_bench_all(BenchAllConfig(out=str(tmp_path), suites="sped"))
    assert main(["bench", "all", "--out", str(tmp_path), "--suites", "nope"]) == 2
    assert "unknown benchmark suite 'nope'" in capsys.readouterr().err


def test_list_shows_every_suite(capsys):
    assert main(["bench", "all", "--list"]) == 0
    printed = capsys.readouterr().out
    for name in ("clevr-nsvqa", "dynamics-cradle", "control-boxpush", "speed"):
        assert name in printed


def test_tiny_quick_run_of_the_real_clevr_suite_writes_tables_with_published_rows(tiny_bench):
    out, results = tiny_bench
    record = results["suites"]["tiny-clevr-nsvqa"]
    assert record["status"] == "ok", record
    metrics = record["result"]["metrics"]
    assert metrics["questions"] == 4 and metrics["scenes"] == 2
    assert 0.0 <= metrics["accuracy"]["overall"] <= 1.0
    first = record["result"]["tables"][0]
    assert first["published"][0][0] == "NS-VQA paper" and "--seed 5151" in first["command"]
    assert first["seed"] == 5151
    assert any(row[2] == "images/s" and row[1] > 0 for row in record["result"]["speed"])
    page = (out / "report.html").read_text()
    assert "NS-VQA paper" in page and "accuracy per question type" in page
    assert (out / "data" / "clevr_test_seed5151_n2_q2" / "CLEVR_test_questions.json").is_file()


def test_exclusive_suites_run_alone_after_the_others(tmp_path):
    register_suite("toy-alone", _toy, quick={"n": 1}, full={"n": 1}, exclusive=True)
    register_suite("toy-shared", _toy, quick={"n": 2}, full={"n": 2})
    CALLS.clear()
    lines: list[str] = []
    try:
        results = run_bench_all(BenchAllConfig(out=str(tmp_path / "b"), quick=True, suites="toy-alone,toy-shared"),
                                say=lines.append)
    finally:
        SUITES.unregister("toy-alone")
        SUITES.unregister("toy-shared")
    assert CALLS == ["toy-shared", "toy-alone"]
    assert list(results["suites"]) == ["toy-alone", "toy-shared"]  # the report keeps registration order
    assert any("then alone: toy-alone" in line for line in lines)


def test_the_clevrer_suite_swaps_each_part_and_ground_truth_answers_everything(tmp_path):
    from benchmarks.suites import SuiteContext
    from benchmarks.suites.clevrer import PARTS, run_clevrer

    out = tmp_path / "suite"
    out.mkdir()
    result = run_clevrer(SuiteContext("clevrer-nsdr", {"n": 1, "frames": 24, "seed": 3}, out, tmp_path / "data"))
    runs = result["metrics"]["results"]
    assert len(runs) == len(PARTS) and "perception=model,dynamics=propnet,parser=model" in runs
    truth = runs["perception=gt,dynamics=gt,parser=gt"]
    assert truth["counts"]["descriptive"] > 0
    assert all(truth["accuracy"][m] == 1.0 for m, n in truth["counts"].items() if n)  # generator and executor agree
    first = result["tables"][0]
    assert len(first["rows"]) == len(PARTS) and first["published"][0][0].startswith("NS-DR")
    assert result["speed"][0][2] == "videos/min"


def test_each_perception_model_is_a_suite_with_its_checks_in_the_table(tmp_path):
    from benchmarks.perception_bench import perception_bench_names
    from benchmarks.suites import SuiteContext
    from benchmarks.suites.perception import run_perception

    assert {f"perception-{n}" for n in perception_bench_names()} <= set(SUITES.names())
    out = tmp_path / "suite"
    out.mkdir()
    result = run_perception(SuiteContext("perception-warped", {"model": "warped", "seed": 1}, out, tmp_path / "data"))
    rows = result["tables"][0]["rows"]
    assert rows and rows[0][0] == "warped" and rows[0][5] in ("pass", "FAIL")
    assert "--quick" in result["tables"][0]["command"] and result["metrics"]["checks"]
