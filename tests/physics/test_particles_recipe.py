"""The fluidfall recipe's pipeline (``docs/results/particles_recipe.sh``) and its decisions (``particles_recipe.py``).

The decisions are checked on made-up run logs and bench results; the script by a dry run
whose printed ``nesy`` commands must parse with the real command line, so a renamed flag
breaks here rather than an hour into a run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "results" / "particles_recipe.sh"
_spec = importlib.util.spec_from_file_location("particles_recipe", ROOT / "docs" / "results" / "particles_recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)


def _run_dir(tmp_path: Path, checks: list[tuple[float, float]], files: bool = True) -> Path:
    """A round-1 run with one logged (MSE, outside) check per epoch and its epochs/epoch_N.pt files."""
    run = tmp_path / "r1" / "fluidfall_dpinet"
    (run / "epochs").mkdir(parents=True)
    lines = [json.dumps({"epoch": k, "train_loss": 1.0, "valid_rollout_mse": mse, "valid_rollout_outside": out})
             for k, (mse, out) in enumerate(checks, 1)]
    (run / "loss.jsonl").write_text("\n".join(lines) + "\n")
    for k in range(1, len(checks) + 1):
        if files:
            (run / "epochs" / f"epoch_{k}.pt").write_bytes(b"")
    return run


def test_the_start_is_the_contained_epoch_of_lowest_check_mse_not_the_lowest_mse(tmp_path):
    run = _run_dir(tmp_path, [(0.05, 0.30), (0.02, 0.15), (0.07, 0.08), (0.06, 0.10), (0.09, 0.0)])
    assert recipe.choose_start(run, 5, 0.1) == run / "epochs" / "epoch_4.pt"  # 0.10 is within, 0.02 is not


def test_no_contained_epoch_means_no_start_and_exit_3(tmp_path, capsys):
    run = _run_dir(tmp_path, [(0.05, 0.30), (0.02, 0.15), (0.07, 0.11), (0.06, 0.5), (0.09, 0.9)])
    assert recipe.choose_start(run, 5, 0.1) is None
    assert recipe.main(["start", str(run), "--epochs", "5", "--limit", "0.1"]) == 3
    assert "no start" in capsys.readouterr().out


def test_the_fallback_start_is_the_epoch_least_past_the_limit_then_of_lowest_mse(tmp_path, capsys):
    run = _run_dir(tmp_path, [(0.05, 0.30), (0.02, 0.15), (0.07, 0.13), (0.06, 0.13), (0.09, 0.9)])
    assert recipe.choose_start(run, 5, 0.1, fallback=True) == run / "epochs" / "epoch_4.pt"
    assert recipe.main(["start", str(run), "--epochs", "5", "--limit", "0.1", "--fallback"]) == 0
    assert capsys.readouterr().out.strip().endswith("epoch_4.pt")
    contained = _run_dir(tmp_path / "b", [(0.01, 0.15), (0.09, 0.1)])
    assert recipe.choose_start(contained, 2, 0.1, fallback=True) == contained / "epochs" / "epoch_2.pt"


def test_an_unfinished_or_malformed_run_is_refused_with_one_line_naming_the_file(tmp_path, capsys):
    run = _run_dir(tmp_path, [(0.05, 0.0), (0.02, 0.0)])
    assert recipe.main(["start", str(run), "--epochs", "5", "--limit", "0.1"]) == 2
    assert "2 of 5 epochs logged" in capsys.readouterr().err
    (run / "loss.jsonl").write_text('{"epoch": 1, "valid_rollout_mse": NaN, "valid_rollout_outside": 0.0}\n{oops\n')
    assert recipe.main(["epochs", str(run)]) == 2
    err = capsys.readouterr().err
    assert "loss.jsonl:2: not a JSON line" in err and "Traceback" not in err
    (run / "loss.jsonl").write_text('{"epoch": 1, "valid_rollout_mse": NaN, "valid_rollout_outside": 0.0}\n')
    assert recipe.main(["start", str(run), "--epochs", "1", "--limit", "0.1"]) == 2
    assert "valid_rollout_mse: expected a number, got nan" in capsys.readouterr().err


def test_a_chosen_epoch_without_its_file_is_refused(tmp_path):
    run = _run_dir(tmp_path, [(0.05, 0.0)], files=False)
    with pytest.raises(recipe.RecipeError, match="--keep-epochs"):
        recipe.choose_start(run, 1, 0.1)


def test_epochs_counts_a_resumed_epoch_once_and_skips_epoch_0(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert recipe.epoch_records(run) == []
    (run / "loss.jsonl").write_text("".join(json.dumps({"epoch": k}) + "\n" for k in (0, 1, 2, 2, 3)))
    assert [r["epoch"] for r in recipe.epoch_records(run)] == [1, 2, 3]


def _bench(path: Path, outside: float, projected: bool = False) -> Path:
    path.write_text(json.dumps({"models": {"dpinet": {"left_container": outside, "wall_projection": projected}}}))
    return path


def _compare(path: Path, ratio: float, high: float) -> Path:
    path.write_text(json.dumps({"ratio": ratio, "interval": [ratio * 0.9, high], "lower_in": 7, "episodes": 10}))
    return path


@pytest.mark.parametrize(("ratio", "outside", "passed"), [(0.8, 0.05, True), (1.0, 0.05, False), (0.8, 0.21, False),
                                                          (0.8, 0.2, True)])
def test_the_dev_gate_needs_a_ratio_below_one_and_at_most_20_percent_outside_raw(tmp_path, ratio, outside, passed):
    gate = recipe.seed_gate(_compare(tmp_path / "c.json", ratio, ratio * 1.1), _bench(tmp_path / "r.json", outside))
    assert gate["pass"] is passed


def test_the_raw_check_refuses_a_projected_bench(tmp_path):
    with pytest.raises(recipe.RecipeError, match="--no-wall-projection"):
        recipe.raw_outside(_bench(tmp_path / "r.json", 0.0, projected=True))


def test_heldout_rule_a_asks_the_pooled_upper_end_below_one(tmp_path):
    compares = [_compare(tmp_path / f"c{k}.json", 0.8, 0.95) for k in range(3)]
    raws = [_bench(tmp_path / f"r{k}.json", 0.05) for k in range(3)]
    assert recipe.heldout_verdict(compares, _compare(tmp_path / "p.json", 0.8, 0.97), raws)["a_to_c"] is True
    verdict = recipe.heldout_verdict(compares, _compare(tmp_path / "p.json", 0.9, 1.01), raws)
    assert (verdict["a"], verdict["b"], verdict["a_to_c"]) == (False, True, False)


def _dry(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRY": "1", "P": str(tmp_path / "p"), "PY": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_dry_run_prints_commands_the_real_command_line_takes(tmp_path):
    parser = build_parser()
    printed = []
    for args in (["inputs"], ["seed", "5"], ["heldout", "5", "6", "7"]):
        done = _dry(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        printed += [shlex.split(line[2:])[1:] for line in done.stdout.splitlines() if line.startswith("+ nesy ")]
    assert len(printed) == 4 + 5 + 2 + 3 * 3 + 1  # inputs, one seed's pipeline, the held-out read
    for argv in printed:
        parser.parse_args(argv)  # exits (SystemExit) on an unknown flag or a malformed value
    train = [argv for argv in printed if argv[:2] == ["train", "dynamics"]]
    assert "--keep-epochs" in train[0] and "--init" in train[1] and "wall_projection=true" in train[1]


def test_the_fallback_start_rule_writes_its_runs_and_gate_beside_the_default_ones(tmp_path):
    env = {**os.environ, "DRY": "1", "P": str(tmp_path / "p"), "PY": sys.executable, "START_RULE": "fallback"}
    done = subprocess.run(["bash", str(SCRIPT), "seed", "5"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--fallback" in done.stdout and "runs/ft5L/fluidfall_dpinet" in done.stdout and "gate_s5L.json" in done.stdout
    assert "runs/r1s5/fluidfall_dpinet" in done.stdout  # the same round 1
    env["START_RULE"] = "best"
    done = subprocess.run(["bash", str(SCRIPT), "seed", "5"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "START_RULE must be contained or fallback, got best" in done.stderr


def test_the_script_refuses_a_held_out_read_without_three_passed_gates(tmp_path):
    env = {**os.environ, "P": str(tmp_path / "p"), "PY": sys.executable, "NESY": "false"}
    done = subprocess.run(["bash", str(SCRIPT), "heldout", "5", "6", "7"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "no passed dev gate" in done.stderr
    assert not (tmp_path / "p" / "heldout" / "READ").exists()


@pytest.mark.parametrize("args, says", [
    (["seed", "abc"], "a seed must be a non-negative integer, got 'abc'"),
    (["heldout", "5", "6"], "usage:"),
    (["heldout", "5", "6", "x"], "got 'x'"),
    (["bogus"], "usage:"),
])
def test_the_script_refuses_bad_arguments_before_it_makes_anything(tmp_path, args, says):
    env = {**os.environ, "P": str(tmp_path / "p"), "PY": sys.executable, "NESY": "false"}
    done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr
    assert not (tmp_path / "p").exists()


def _train_lines(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:])[1:] for line in stdout.splitlines() if line.startswith("+ nesy train dynamics")]


def _set_values(argv: list[str], key: str) -> list[str]:
    return [argv[k + 1].split("=", 1)[1] for k, a in enumerate(argv[:-1]) if a == "--set" and argv[k + 1].startswith(key)]


def test_round_1_noise_is_an_input_that_tags_the_runs_and_leaves_the_fine_tune_at_1e_3(tmp_path):
    default = _train_lines(_dry(tmp_path, "seed", "8").stdout)
    assert [_set_values(a, "noise_std=") for a in default] == [["0.001"], ["0.001"]]
    assert "runs/r1s8/fluidfall_dpinet" in default[0][-1] and "runs/ft8/fluidfall_dpinet" in default[1][-1]
    env = {**os.environ, "DRY": "1", "P": str(tmp_path / "p"), "PY": sys.executable, "R1_NOISE": "0.002"}
    done = subprocess.run(["bash", str(SCRIPT), "seed", "8"], env=env, capture_output=True, text=True, timeout=60)
    noisy = _train_lines(done.stdout)
    assert [_set_values(a, "noise_std=") for a in noisy] == [["0.002"], ["0.001"]]
    assert noisy[0][-1].endswith("runs/r1s8n0.002/fluidfall_dpinet") and "decl/r1s8n0.002/" in noisy[1][-3]
    assert noisy[1][-1].endswith("runs/ft8n0.002/fluidfall_dpinet") and "gate_s8n0.002.json" in done.stdout
    held = subprocess.run(["bash", str(SCRIPT), "heldout", "8", "9", "10"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert "runs/ft10n0.002 " in held.stdout and "runs/ft10 " not in held.stdout
    env["R1_NOISE"] = "2e-3"
    done = subprocess.run(["bash", str(SCRIPT), "seed", "8"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "R1_NOISE must be a decimal in (0, 1) like 0.002, got '2e-3'" in done.stderr


def test_the_round1_stage_runs_round_1_alone(tmp_path):
    env = {**os.environ, "DRY": "1", "P": str(tmp_path / "p"), "PY": sys.executable, "R1_NOISE": "0.003"}
    done = subprocess.run(["bash", str(SCRIPT), "round1", "9"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (train,) = _train_lines(done.stdout)
    build_parser().parse_args(train)
    assert _set_values(train, "noise_std=") == ["0.003"] and train[-1].endswith("runs/r1s9n0.003/fluidfall_dpinet")
    assert "--init" not in train and "bench" not in done.stdout


def test_the_noise_is_the_one_with_more_contained_seeds_and_a_tie_goes_to_the_first(tmp_path):
    leaky, held = [(0.05, 0.3), (0.04, 0.2)], [(0.05, 0.3), (0.04, 0.05)]

    def runs(name: str, kinds: list[list[tuple[float, float]]]) -> list[Path]:
        return [_run_dir(tmp_path / f"{name}{k}", checks) for k, checks in enumerate(kinds)]

    two, three = runs("a", [held, leaky, leaky]), runs("b", [held, held, leaky])
    assert recipe.choose_noise([("0.002", two), ("0.003", three)], 2, 0.1) == {
        "contained": {"0.002": 1, "0.003": 2}, "seeds": 3, "chosen": "0.003"}
    tie = runs("c", [leaky, held, leaky])
    assert recipe.choose_noise([("0.002", two), ("0.003", tie)], 2, 0.1)["chosen"] == "0.002"
    assert recipe.choose_noise([("0.003", tie), ("0.002", two)], 2, 0.1)["chosen"] == "0.003"
    with pytest.raises(recipe.RecipeError, match="repeated"):
        recipe.choose_noise([("0.002", two), ("0.002", three)], 2, 0.1)
    with pytest.raises(recipe.RecipeError, match="same seeds"):
        recipe.choose_noise([("0.002", two), ("0.003", three[:2])], 2, 0.1)
    out = tmp_path / "noise.json"
    argv = ["noise", "--candidate", "0.002", *map(str, two), "--candidate", "0.003", *map(str, three), "--limit", "0.1",
            "--out", str(out)]
    assert recipe.main([*argv, "--epochs", "2"]) == 0 and json.loads(out.read_text())["chosen"] == "0.003"
    assert recipe.main([*argv, "--epochs", "3"]) == 2  # an unfinished run is refused


def test_the_noise_stage_passes_each_noise_its_tagged_runs(tmp_path):
    env = {**os.environ, "DRY": "1", "P": str(tmp_path / "p"), "PY": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), "noise", "0.002,0.003", "8", "9", "10"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout.strip().strip("<>"))[2:]
    assert argv[:5] == ["noise", "--candidate", "0.002", str(tmp_path / "p/runs/r1s8n0.002/fluidfall_dpinet"),
                        str(tmp_path / "p/runs/r1s9n0.002/fluidfall_dpinet")]
    assert argv[argv.index("--candidate", 2) + 1] == "0.003" and "noise_0.002_0.003_s8_9_10.json" in argv[-1]
    done = subprocess.run(["bash", str(SCRIPT), "noise", "0.002,3e-3", "8"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "got '3e-3'" in done.stderr
