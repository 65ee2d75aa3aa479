"""``nesy bench perception``: lists the registered models, runs one or all, writes JSON, fails loudly."""

from __future__ import annotations

import json

import pytest

from benchmarks.cli import main
from benchmarks.perception_bench import perception_bench_names, results_table, run_perception_bench
from perception.benchmark import PERCEPTION_BENCHES, BenchOutcome, Check, register_perception_bench

BUILT_IN = ("selective", "polyphase", "warped", "tsm", "ctcn", "pgcn", "dve", "autolink", "von", "joint-embedding", "intuitive-physics", "heightfield-extrapolation",
            "av-correspondence", "avol-net", "vatt", "sound-of-pixels",
            "sound-of-motions", "vae", "gan",
            "deep-image-prior", "score-manifold", "gan-dissection", "masked-conv-ae", "net2vec",
            "meaningful-perturbation", "promotion-suppression", "scaffold", "curveball", "curveball-digits", "curveball-attributes",
            "distillation",
            "defensive-quantization", "trap-and-replace", "residual-adapters", "once-for-all")


@pytest.fixture
def toy_bench():
    """A benchmark registered from this file alone: its figure is the seed."""

    @register_perception_bench("toy-bench", paper="none", check="seed >= 1", ablation="seed - 1")
    def toy(quick: bool, seed: int) -> BenchOutcome:
        return BenchOutcome((Check("seed", "the seed", float(seed), float(seed - 1), ">= 1", seed >= 1),),
                            {"quick": quick})

    yield "toy-bench"
    PERCEPTION_BENCHES.unregister("toy-bench")


def test_every_built_in_model_is_listed(capsys):
    assert set(BUILT_IN) <= set(perception_bench_names())
    assert main(["bench", "perception", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BUILT_IN) and "arXiv 1811.08383" in out


def test_a_registered_bench_runs_by_name_writes_json_and_sets_the_exit_status(toy_bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", "perception", "--model", toy_bench, "--seed", "2", "--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["passed"] is True and result["seed"] == 2 and result["figures"] == {"quick": True}
    assert result["checks"][0] == {"name": "seed", "metric": "the seed", "ours": 2.0, "ablation": 1.0,
                                   "threshold": ">= 1", "passed": True}
    assert "toy-bench" in capsys.readouterr().out
    assert main(["bench", "perception", "--model", toy_bench, "--seed", "0"]) == 1  # its check fails
    assert run_perception_bench(toy_bench, seed=0)["passed"] is False


def test_unknown_model_and_negative_seed_are_one_line_errors(capsys):
    assert main(["bench", "perception", "--model", "tsn"]) == 2
    assert "did you mean 'tsm'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # refused as argparse parses it
        main(["bench", "perception", "--model", "tsm", "--seed", "-1"])
    assert exit_info.value.code == 2 and "argument --seed: must be an integer >= 0" in capsys.readouterr().err


def test_the_table_has_one_row_per_check():
    result = {"model": "m", "train_minutes": 0.5, "checks": [
        {"name": "a", "ours": 1.0, "ablation": 0.5, "threshold": ">= 1", "passed": True},
        {"name": "b", "ours": 0.1, "ablation": None, "threshold": "< 1", "passed": False}]}
    lines = results_table([result]).splitlines()
    assert lines[0].split()[:3] == ["model", "check", "ours"] and len(lines) == 4
    assert "pass" in lines[2] and "FAIL" in lines[3]


@pytest.mark.slow
def test_all_quick_runs_every_model_and_writes_one_json(tmp_path):
    out = tmp_path / "all.json"
    main(["bench", "perception", "--all", "--quick", "--threads", "1", "--out", str(out)])
    results = json.loads(out.read_text())["results"]
    assert [r["model"] for r in results] == perception_bench_names()
    assert all(isinstance(r["passed"], bool) and r["checks"] for r in results)
