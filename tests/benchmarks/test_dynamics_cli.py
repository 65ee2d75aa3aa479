"""``nesy train dynamics`` and ``nesy bench dynamics`` end to end on a tiny cradle data set."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.cli import main
from physics.io import atomic_torch_save, torch_load


@pytest.fixture(scope="module")
def cradle_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cradle")
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        rc = main(["data", "dynamics", "--world", "cradle", "--n", str(n), "--steps", "24",
                   "--out", str(root), "--split", split, "--quiet"])
        assert rc == 0
    return root


def _train(data, out, model, epochs, *extra):
    return main(["train", "dynamics", "--world", "cradle", "--model", model, "--data", str(data),
                 "--out", str(out), "--epochs", str(epochs), "--max-samples", "24", "--valid-samples", "8",
                 "--set", "hidden=8", "--quiet", "--device", "cpu", *extra])


def test_train_resume_and_bench_write_results(cradle_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert _train(cradle_data, runs / "cradle_in", "in", 2) == 0
    assert _train(cradle_data, runs / "cradle_in", "in", 2, "--resume", "--threads", "2") == 0
    lines = (runs / "cradle_in" / "loss.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]  # resumed a finished run: nothing trained again
    ckpt = torch_load(runs / "cradle_in" / "checkpoint.pt")
    assert ckpt["train_state"]["round"] == 2 and "optimizer" in ckpt["train_state"]
    assert ckpt["meta"]["command"] == ckpt["train_state"]["command"] and ckpt["meta"]["seed"] == 0
    assert "--resume" not in ckpt["meta"]["command"] and "--epochs 2" in ckpt["meta"]["command"]
    capsys.readouterr()
    # changed training flags on resume are refused, each named (the decay rate depends on --epochs)
    assert _train(cradle_data, runs / "cradle_in", "in", 2, "--resume", "--seed", "7", "--lr", "0.5") == 2
    err = capsys.readouterr().err
    assert "--lr 0.001 (now 0.5)" in err and "--seed 0 (now 7)" in err and len(err.strip().splitlines()) == 1
    assert _train(cradle_data, runs / "cradle_in", "in", 3, "--resume") == 2
    assert "--epochs 2 (now 3)" in capsys.readouterr().err
    # a copy of model.pt, or a list, where the training checkpoint should be: one line, no traceback
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copyfile(runs / "cradle_in" / "model.pt", wrong / "checkpoint.pt")
    assert _train(cradle_data, wrong, "in", 2, "--resume") == 2
    assert "no 'train_state'" in capsys.readouterr().err
    atomic_torch_save(wrong / "checkpoint.pt", [1, 2])
    assert _train(cradle_data, wrong, "in", 2, "--resume") == 2
    assert "holds a list" in capsys.readouterr().err
    assert _train(cradle_data, runs / "cradle_propnet", "propnet", 1, "--export", str(tmp_path / "p.pt")) == 0
    assert (tmp_path / "p.pt").is_file()
    capsys.readouterr()

    out = tmp_path / "res" / "cradle.json"
    rc = main(["bench", "dynamics", "--world", "cradle", "--data", str(cradle_data), "--out", str(out),
               "--models", "in,propnet", "--checkpoints", str(runs), "--horizons", "1,5"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["models"]) == {"in", "propnet"}
    for r in res["models"].values():
        assert set(r["mse_at"]) == {"1", "5"} and r["mse_full"] >= 0 and r["steps_per_s"] > 0
        assert len(r["mse_curve"]) == 24 - 3  # history 2: predictions start at step 3
        assert len(r["mse_per_trajectory"]) == 1 and r["mse_per_trajectory"][0] == pytest.approx(r["mse_full"])
    assert res["ground_truth"]["steps_per_s"] > 0
    floor = res["ground_truth"]["replay"]  # the simulator re-run from the recording: a floor under every model
    assert len(floor["mse_per_trajectory"]) == 1 and floor["mse_full"] < min(r["mse_full"] for r in res["models"].values())
    assert out.with_suffix(".png").stat().st_size > 1000 and out.with_suffix(".gif").stat().st_size > 1000
    # the wall projection is each model's own (declared by none of these: off) unless forced, and recorded;
    # the cradle has no wall markers, so forcing it on changes nothing
    capsys.readouterr()
    walled = tmp_path / "res" / "cradle_walls.json"
    assert main(["bench", "dynamics", "--world", "cradle", "--data", str(cradle_data), "--out", str(walled),
                 "--models", "in", "--checkpoints", str(runs), "--horizons", "1,5", "--skip-replay", "--no-gif",
                 "--wall-projection"]) == 0
    res_walled = json.loads(walled.read_text())
    assert res["wall_projection"] is None and res_walled["wall_projection"] is True
    assert res["models"]["in"]["wall_projection"] is False and res_walled["models"]["in"]["wall_projection"] is True
    assert res_walled["models"]["in"]["mse_per_trajectory"] == res["models"]["in"]["mse_per_trajectory"]
    assert "wall projection on" in capsys.readouterr().out

    capsys.readouterr()
    rc = main(["bench", "compare", "--a", f"{out}:propnet", "--b", f"{out}:in", "--boot", "50",
               "--out", str(tmp_path / "cmp.json")])
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert rc == 0 and cmp["episodes"] == 1
    assert cmp["ratio"] == pytest.approx(res["models"]["propnet"]["mse_full"] / res["models"]["in"]["mse_full"])


def test_clear_errors_for_bad_input(cradle_data, tmp_path, capsys):
    rc = main(["bench", "dynamics", "--world", "cradle", "--data", str(cradle_data), "--out", str(tmp_path / "r.json"),
               "--models", "in,gnn", "--checkpoints", str(tmp_path)])
    assert rc == 2 and "unknown dynamics model 'gnn' (did you mean 'gns'?); choose one of in, propnet" in capsys.readouterr().err
    rc = main(["bench", "dynamics", "--world", "cradle", "--data", str(cradle_data), "--out", str(tmp_path / "r.json"),
               "--models", "dpinet", "--checkpoints", str(tmp_path)])
    assert rc == 2 and "no checkpoint for model 'dpinet'" in capsys.readouterr().err
    rc = _train(cradle_data, tmp_path / "x", "in", 1, "--set", "graph.radius=-1")
    assert rc == 2 and "radius must be positive" in capsys.readouterr().err
    rc = _train(tmp_path / "nowhere", tmp_path / "x", "in", 1)
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = _train(cradle_data, tmp_path / "x", "in", 1, "--set", "noise_std=NaN")  # a model setting, not a world's
    err = capsys.readouterr().err
    assert rc == 2 and "--set 'noise_std=NaN': NaN is not allowed; settings are finite numbers" in err and "world" not in err


def test_train_refuses_data_of_another_world_before_any_model_is_built(cradle_data, tmp_path, capsys):
    # a boxes model trained on cradle trajectories without a word (the graph sizes happened to fit)
    rc = main(["train", "dynamics", "--world", "boxes", "--model", "in", "--data", str(cradle_data),
               "--out", str(tmp_path / "x"), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"--data {cradle_data} holds 'cradle' trajectories (its train/index.json), not --world boxes's" in err
    assert not (tmp_path / "x").exists()

def test_bench_refuses_a_horizon_past_the_trajectories_and_notes_one_past_a_models_rollout(cradle_data, tmp_path,
                                                                                          capsys):
    # mse_at left such a horizon out without a word (an empty table column, an empty mse_at)
    argv = ["bench", "dynamics", "--world", "cradle", "--data", str(cradle_data), "--split", "test", "--models", "in",
            "--no-gif", "--skip-replay", "--quiet", "--out", str(tmp_path / "r.json")]
    assert main([*argv, "--horizons", "1,100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--horizons 1,100: the shortest trajectory of "
                        f"{cradle_data} (test) has 23 steps to predict; each horizon must be <= 23"), err
    assert not (tmp_path / "r.json").exists()
    assert main([*argv, "--horizons", "1,23"]) == 0  # past the IN's rollout after its history: written, and said
    err = capsys.readouterr().err
    assert "note: model in's rollouts predict" in err and "horizon(s) 23 left out of its mse_at" in err
    assert list(json.loads((tmp_path / "r.json").read_text())["models"]["in"]["mse_at"]) == ["1"]

def test_train_refuses_a_damaged_validation_split_and_a_data_folder_given_twice(cradle_data, tmp_path, capsys):
    # a damaged valid/index.json was taken as "no validation split" and the run trained without one; a folder
    # given twice weighed its trajectories twice
    data = tmp_path / "cradle"
    shutil.copytree(cradle_data, data)
    (data / "valid" / "index.json").write_text("{")
    rc = _train(data, tmp_path / "x", "in", 1)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "valid/index.json is not valid JSON" in err, err
    rc = _train(cradle_data, tmp_path / "y", "in", 1, "--data", str(cradle_data))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"{cradle_data.resolve()} given twice; name each once" in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    shutil.rmtree(data / "valid")
    assert _train(data, tmp_path / "z", "in", 1) == 0  # no validation split at all: trains without one

@pytest.mark.parametrize(("setting", "says"), [
    (["hidden"], "--set 'hidden': not KEY=VALUE; expected KEY=VALUE with KEY a model config field"),
    (["hidden=4", "hidden=8"], "--set 'hidden=8': hidden given twice; give each setting once"),
])
def test_a_bad_model_setting_is_refused_before_any_data_is_read(tmp_path, capsys, setting, says):
    """The data were read first, so a missing folder hid the --set error (and a good one read every split first)."""
    argv = ["train", "dynamics", "--world", "cradle", "--model", "in", "--data", str(tmp_path / "nowhere"),
            "--out", str(tmp_path / "x"), "--quiet"]
    for item in setting:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(says), err


def test_bench_finds_the_only_split_of_a_folder(tmp_path, capsys):
    root = tmp_path / "cradle"
    assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "24", "--out", str(root),
                 "--quiet"]) == 0  # no --split: train
    capsys.readouterr()
    out = tmp_path / "r.json"
    rc = main(["bench", "dynamics", "--world", "cradle", "--data", str(root), "--out", str(out),
               "--models", "in", "--no-gif", "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0 and json.loads(out.read_text())["split"] == "train"
    assert "simulator replay" in printed and "{" not in printed  # a table, the JSON in --out


def test_bench_names_the_splits_when_it_cannot_choose(tmp_path, capsys):
    for split in ("train", "valid"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "index.json").write_text("{}")
    rc = main(["bench", "dynamics", "--world", "cradle", "--data", str(tmp_path), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "holds splits train, valid" in err and len(err.strip().splitlines()) == 1


def test_bench_without_models_takes_every_model_with_a_checkpoint_for_the_world(tmp_path, capsys):
    from benchmarks.dynamics_eval import shipped_models

    root = tmp_path / "cradle"
    assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "12", "--out", str(root),
                 "--quiet"]) == 0
    out = tmp_path / "r.json"
    assert main(["bench", "dynamics", "--world", "cradle", "--data", str(root), "--out", str(out),
                 "--no-gif", "--quiet"]) == 0
    assert sorted(json.loads(out.read_text())["models"]) == sorted(shipped_models("cradle")) == ["dpinet", "in", "propnet"]
    assert main(["bench", "dynamics", "--world", "cradle", "--data", str(root), "--out", str(out),
                 "--checkpoints", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "--checkpoints: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["bench", "dynamics", "--world", "cradle", "--data", str(root), "--out", str(out),
                 "--checkpoints", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "no model has a checkpoint for world 'cradle'" in capsys.readouterr().err


@pytest.mark.parametrize("models", [["--models", "in"], []])
def test_bench_names_a_checkpoint_file_given_where_a_folder_is_expected(models, tmp_path, capsys):
    # it said "no checkpoint for model 'in' ... under FILE", as if the file were an empty folder
    from benchmarks.dynamics_eval import find_checkpoint

    ckpt = find_checkpoint("cradle", "in")
    rc = main(["bench", "dynamics", "--world", "cradle", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r.json"),
               *models, "--checkpoints", str(ckpt)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"{ckpt} is a file: put it in a folder as WORLD_MODEL.pt" in err and "--checkpoints names a folder" in err


def test_bench_reports_and_skips_a_corrupt_trajectory_and_training_stops_at_it(tmp_path, capsys):
    root = tmp_path / "cradle"
    assert main(["data", "dynamics", "--world", "cradle", "--n", "3", "--steps", "12", "--out", str(root),
                 "--split", "test", "--quiet"]) == 0
    out = tmp_path / "r.json"
    bench = ["bench", "dynamics", "--world", "cradle", "--data", str(root), "--out", str(out), "--models", "in",
             "--no-gif", "--skip-replay", "--quiet"]
    assert main(bench) == 0
    clean = json.loads(out.read_text())
    assert "skipped_trajectories" not in clean and clean["trajectories"] == 3
    bad = root / "test" / "traj_00001.npz"
    bad.write_bytes(bytes(range(256)) * 4)
    capsys.readouterr()
    assert main(bench) == 0  # it stopped the whole benchmark with a one-line error
    err = capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["trajectories"] == 2 and len(result["skipped_trajectories"]) == 1
    assert f"skipped trajectory: trajectory file {bad} is corrupt" in err
    assert str(bad) in result["skipped_trajectories"][0]
    for k in (0, 2):
        (root / "test" / f"traj_{k:05d}.npz").write_bytes(b"garbage")
    assert main(bench) == 2  # nothing left to bench
    assert "no readable trajectory" in capsys.readouterr().err
    (root / "test").rename(root / "train")  # training data: stops, naming the file
    assert main(["train", "dynamics", "--world", "cradle", "--model", "in", "--data", str(root), "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "traj_00000.npz is corrupt" in err


def test_train_pools_data_folders_and_fine_tunes_from_init(cradle_data, tmp_path, capsys):
    more = tmp_path / "more"
    assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "24", "--seed", "9",
                 "--out", str(more), "--split", "train", "--quiet"]) == 0
    capsys.readouterr()
    assert _train(cradle_data, tmp_path / "a", "in", 1) == 0
    first = json.loads(capsys.readouterr().out)
    start = tmp_path / "a" / "model.pt"
    assert _train(cradle_data, tmp_path / "b", "in", 1, "--data", str(more), "--init", str(start)) == 0
    summary = json.loads(capsys.readouterr().out)
    ckpt = torch_load(tmp_path / "b" / "model.pt")
    assert ckpt["meta"]["data"] == [str(cradle_data), str(more)] and ckpt["meta"]["train_trajectories"] == 3
    assert f"--data {cradle_data} --data {more}" in summary["command"] and f"--init {start}" in summary["command"]
    assert summary["best_valid_loss"] < first["best_valid_loss"]  # went on from the first run's weights
    assert _train(cradle_data, tmp_path / "c", "propnet", 1, "--init", str(start)) == 2  # another model: refused
    assert "another config" in capsys.readouterr().err
