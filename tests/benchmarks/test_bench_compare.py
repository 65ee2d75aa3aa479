"""``nesy bench compare`` and :func:`benchmarks.paired.paired_ratio`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.cli import main
from benchmarks.paired import paired_ratio
from physics.errors import DataError


def test_ratio_interval_and_count_on_known_errors():
    rng = np.random.default_rng(3)
    b = rng.lognormal(-6.0, 1.0, size=200)  # heavy-tailed, like rollout errors
    r = paired_ratio([0.5 * b], [b], n_boot=500)
    assert r["ratio"] == pytest.approx(0.5) and r["interval"] == pytest.approx([0.5, 0.5])
    assert r["lower_in"] == 200 and r["episodes"] == 200
    # same model twice with independent noise: the interval must cover 1
    noisy = [b * rng.lognormal(0.0, 0.3, size=200), b * rng.lognormal(0.0, 0.3, size=200)]
    r = paired_ratio([noisy[0]], [noisy[1]], n_boot=2000)
    assert r["interval"][0] < 1.0 < r["interval"][1]
    # runs of one model are averaged per episode before the ratio
    r = paired_ratio([[1.0, 3.0], [3.0, 5.0]], [[4.0, 4.0]], n_boot=10)
    assert r["a_mean"] == pytest.approx(3.0) and r["ratio"] == pytest.approx(0.75) and r["runs_a"] == 2
    assert r["lower_in"] == 1  # episode 0: 2 < 4; episode 1: 4 == 4 is not lower


def test_paired_ratio_rejects_unpaired_or_bad_errors():
    with pytest.raises(DataError, match="same episodes"):
        paired_ratio([[1.0, 2.0]], [[1.0, 2.0, 3.0]])
    with pytest.raises(DataError, match="different numbers of episodes"):
        paired_ratio([[1.0, 2.0], [1.0]], [[1.0, 2.0]])
    with pytest.raises(DataError, match="run 0 has a non-finite error at episode 1"):
        paired_ratio([[1.0, float("nan")]], [[1.0, 2.0]])
    with pytest.raises(DataError, match="no runs"):
        paired_ratio([], [[1.0]])


def _result(path, errors_by_model, data="d", split="test"):
    models = {m: {"mse_full": float(np.mean(e)), "mse_per_trajectory": list(e)} for m, e in errors_by_model.items()}
    path.write_text(json.dumps({"world": "rope", "data": data, "split": split,
                                "trajectories": len(next(iter(errors_by_model.values()))), "models": models}))
    return path


def test_compare_command_pairs_seeds_and_writes_json(tmp_path, capsys):
    s0 = _result(tmp_path / "s0.json", {"propnet": [1.0, 2.0, 3.0, 4.0], "in": [2.0, 4.0, 6.0, 8.0]})
    s1 = _result(tmp_path / "s1.json", {"propnet": [3.0, 2.0, 1.0, 4.0], "in": [2.0, 4.0, 6.0, 8.0]})
    out = tmp_path / "cmp.json"
    rc = main(["bench", "compare", "--a", f"{s0}:propnet", f"{s1}:propnet", "--b", f"{s0}:in", f"{s1}:in",
               "--boot", "300", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    printed = capsys.readouterr().out  # a short summary; the JSON goes to --out
    assert "A / B = 0.5x" in printed and "A lower in 3 of 4 episodes" in printed and "{" not in printed
    assert res["ratio"] == pytest.approx(2.5 / 5.0) and res["runs_a"] == 2 and res["episodes"] == 4
    assert res["lower_in"] == 3 and res["split"] == "test"  # episode 0 ties (2 against 2)


def test_compare_command_errors_name_the_file_and_model(tmp_path, capsys):
    s0 = _result(tmp_path / "s0.json", {"propnet": [1.0, 2.0], "in": [2.0, 4.0]})
    other = _result(tmp_path / "other.json", {"in": [2.0, 4.0]}, split="valid")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = [
        ([f"{s0}:gns"], [f"{s0}:in"], "no model 'gns' (it holds in, propnet)"),
        ([f"{s0}:propnet"], [f"{other}:in"], "different episodes"),
        ([f"{bad}:propnet"], [f"{s0}:in"], "bad.json: not a readable JSON result"),
        ([f"{tmp_path / 'none.json'}:in"], [f"{s0}:in"], "none.json: result file not found"),
        (["propnet"], [f"{s0}:in"], "expected RESULT.json:MODEL"),
    ]
    for a, b, message in cases:
        rc = main(["bench", "compare", "--a", *a, "--b", *b])
        err = capsys.readouterr().err
        assert rc == 2 and message in err, err


def test_a_negative_error_a_run_given_twice_and_a_level_outside_0_1_are_refused(tmp_path, capsys):
    # a negative per-episode error was compared as it was, a run given twice weighed twice, and --level 1.5
    # was named as "paired_ratio needs ..."
    with pytest.raises(DataError, match=r"B: run 0 has a negative error at episode 1 \(-2.0\); errors are >= 0"):
        paired_ratio([[1.0, 2.0]], [[1.0, -2.0]])
    s0 = _result(tmp_path / "s0.json", {"propnet": [1.0, 2.0], "in": [2.0, 4.0]})
    neg = _result(tmp_path / "neg.json", {"propnet": [1.0, -2.0], "in": [2.0, 4.0]})
    cases = [
        (["--a", f"{neg}:propnet", "--b", f"{s0}:in"], "A: run 0 has a negative error at episode 1"),
        (["--a", f"{s0}:propnet", f"{s0}:propnet", "--b", f"{s0}:in"],
         f"--a '{s0}:propnet {s0}:propnet': {s0}:propnet given twice; name each once"),
        (["--a", f"{s0}:propnet", "--b", f"{s0}:in", "--b", f"{s0}:in"], f"--b '{s0}:in {s0}:in': {s0}:in given twice"),
        (["--a", f"{s0}:propnet", "--b", f"{s0}:in", "--level", "1.5"], "--level must be an interval coverage in (0, 1), got 1.5"),
    ]
    for argv, message in cases:
        assert main(["bench", "compare", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
