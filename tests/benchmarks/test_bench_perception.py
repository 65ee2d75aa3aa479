"""``nesy bench perception``: lists the registered models, runs one or all, writes JSON, fails loudly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from benchmarks.cli import main
from benchmarks.perception_bench import perception_bench_names, results_table, run_perception_bench
from perception.benchmark import (
    PERCEPTION_BENCHES,
    BenchOutcome,
    Check,
    bench_options,
    register_perception_bench,
)
from physics.errors import ConfigError

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


@dataclass(frozen=True)
class _ToyOptions:
    scale: float = 1.0
    mode: str = field(default="plain", metadata={"choices": ("plain", "loud")})
    repeat: int = 1
    flip: bool = False


@pytest.fixture
def toy_options_bench():
    """A benchmark with registered options, from this file alone: its figure is seed * scale (negated by flip)."""

    @register_perception_bench("toy-options", paper="none", check="figure >= 1", ablation="none", options=_ToyOptions)
    def toy(quick: bool, seed: int, scale: float = 1.0, mode: str = "plain", repeat: int = 1,
            flip: bool = False) -> BenchOutcome:
        figure = seed * scale * (-1 if flip else 1)
        return BenchOutcome((Check("figure", "seed x scale", figure, None, ">= 1", figure >= 1),),
                            {"mode": mode, "repeat": repeat})

    yield "toy-options"
    PERCEPTION_BENCHES.unregister("toy-options")


def test_set_changes_a_registered_option_typed_from_its_text_and_the_json_records_every_option(toy_options_bench, tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", "perception", "--model", toy_options_bench, "--seed", "1", "--set", "scale=0.5",
                 "--set", "mode=loud", "--set", "flip=false", "--out", str(out)]) == 1  # 1 x 0.5 < 1: fails
    result = json.loads(out.read_text())
    assert result["checks"][0]["ours"] == 0.5 and result["figures"] == {"mode": "loud", "repeat": 1}
    assert result["options"] == {"scale": 0.5, "mode": "loud", "repeat": 1, "flip": False}
    assert main(["bench", "perception", "--model", toy_options_bench, "--seed", "3", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["options"] == {"scale": 1.0, "mode": "plain", "repeat": 1, "flip": False}
    assert bench_options(toy_options_bench, {"repeat": 3, "scale": 2}) == {"scale": 2.0, "mode": "plain", "repeat": 3,
                                                                          "flip": False}  # typed values pass too


def test_an_entry_without_settings_runs_with_its_options_defaults_not_its_functions(tmp_path):
    """The options dataclass defines the entry (as gan-dissection's and vatt's do): with no --set,
    its defaults reach the function even where the function's own keyword defaults differ."""

    @dataclass(frozen=True)
    class _Entry:
        scale: float = 2.0

    @register_perception_bench("toy-entry", paper="none", check="figure >= 1", ablation="none", options=_Entry)
    def toy(quick: bool, seed: int, scale: float = 1.0) -> BenchOutcome:
        return BenchOutcome((Check("figure", "seed x scale", seed * scale, None, ">= 1", seed * scale >= 1),), {})

    try:
        out = tmp_path / "r.json"
        assert main(["bench", "perception", "--model", "toy-entry", "--seed", "3", "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["checks"][0]["ours"] == 6.0 and result["options"] == {"scale": 2.0}
    finally:
        PERCEPTION_BENCHES.unregister("toy-entry")


@pytest.mark.parametrize(("setting", "says"), [
    ("colour=red", "has no option 'colour'; its options: scale, mode, repeat, flip"),
    ("mode=quiet", "option 'mode' must be one of plain, loud, got 'quiet'"),
    ("repeat=2.5", "option 'repeat' must be an integer, got '2.5'"),
    ("scale=nan", "option 'scale' must be a finite number, got 'nan'"),
    ("flip=maybe", "option 'flip' must be true or false, got 'maybe'"),
    ("scale", "--set 'scale': not KEY=VALUE; expected KEY=VALUE with KEY an option of the model (see --list)"),
    ("=2", "--set '=2': not KEY=VALUE"),
])
def test_a_refused_option_is_a_one_line_error_naming_it_before_anything_runs(toy_options_bench, setting, says, capsys,
                                                                              tmp_path):
    out = tmp_path / "never.json"
    assert main(["bench", "perception", "--model", toy_options_bench, "--set", setting, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_an_option_given_twice_is_refused_naming_it(toy_options_bench, capsys):
    assert main(["bench", "perception", "--model", toy_options_bench, "--set", "scale=2", "--set", "scale=3"]) == 2
    assert capsys.readouterr().err.strip().endswith("--set 'scale=3': scale given twice; give each setting once")


def test_options_for_a_model_without_any_or_with_all_are_refused(toy_bench, capsys):
    assert main(["bench", "perception", "--model", toy_bench, "--set", "scale=2"]) == 2
    assert "'toy-bench' takes no options, got scale" in capsys.readouterr().err
    assert main(["bench", "perception", "--all", "--quick", "--set", "scale=2"]) == 2
    assert "give it with --model NAME, not --all" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="options must be a dataclass"):
        register_perception_bench("toy-bad", paper="", check="", ablation="", options=dict)


def test_every_built_in_model_is_listed(capsys):
    assert set(BUILT_IN) <= set(perception_bench_names())
    assert main(["bench", "perception", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BUILT_IN) and "arXiv 1811.08383" in out
    assert ("codec, scenes, layer, ranking, balanced, ema, harmless, causal_samples, cache_ablations, gan_steps, "
            "snapshots, entry_snapshots") in out  # gan-dissection's options (--set)


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


def test_options_with_list_are_refused_not_ignored(capsys):
    """``--list --set ema=0.5`` printed the list and dropped the setting without a word."""
    assert main(["bench", "perception", "--list", "--set", "ema=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("give it with --model NAME, not --list"), err
