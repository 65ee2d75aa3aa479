"""``nesy control`` end to end: JSON result, terminal table, GIF, resume and user errors."""

from __future__ import annotations

import json

from benchmarks.cli import main

TINY = ["--horizon", "2", "--samples", "4", "--iterations", "1", "--elites", "2", "--max-steps", "2", "--quiet"]


def test_control_writes_json_table_and_gif_and_resumes(tmp_path, capsys):
    out = tmp_path / "r" / "box.json"
    argv = ["control", "--task", "boxpush", "--model", "propnet", "--planner", "cem", "--episodes", "2",
            "--seed", "5", "--out", str(out), *TINY]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["complete"] and result["episodes"] == 2 and len(result["per_episode"]) == 2
    assert result["gym_id"] == "nesy/BoxPush-v0"
    lo, hi = result["success_interval_90"]
    assert 0 <= lo <= result["success_rate"] <= hi <= 1
    assert result["plan_seconds_per_step_mean"] > 0 and result["control_steps"] == 4
    assert result["plan_cpu_seconds_per_step_mean"] > 0  # CPU time: what planning costs whatever the load
    assert result["settings"]["planner_config"]["samples"] == 4
    assert out.with_suffix(".gif").stat().st_size > 0
    table = capsys.readouterr().out
    assert "success (90% CI)" in table and "boxpush" in table
    # resuming a complete run plans nothing again and keeps the same episodes
    assert main([*argv, "--resume", "--no-gif"]) == 0
    assert json.loads(out.read_text())["per_episode"] == result["per_episode"]


def test_resume_from_a_file_that_is_no_control_result_is_one_line(tmp_path, capsys):
    # a JSON list as --out was an AttributeError traceback; an episode record lacking a field a KeyError one
    out = tmp_path / "r.json"
    argv = ["control", "--task", "rope", "--model", "gt", "--planner", "random", "--episodes", "1", "--out", str(out),
            "--no-gif", "--resume", *TINY]
    out.write_text("[1, 2]")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--resume: {out} is not a nesy control result" in err[0]
    assert out.read_text() == "[1, 2]"  # left as it was
    assert main(argv[:-len(TINY) - 1] + TINY) == 0  # a fresh run writes the result ...
    result = json.loads(out.read_text())
    del result["per_episode"][0]["steps"]  # ... which a resume reads back, and a damaged one is named
    out.write_text(json.dumps(result))
    assert main(argv) == 2
    assert "episode 0 lacks steps" in capsys.readouterr().err


def test_resume_names_an_episode_record_of_the_wrong_type_in_one_line(tmp_path, capsys):
    """``"steps": "2"`` was a TypeError traceback; ``"steps": 10**12`` asked for a list of 10**12 plan times."""
    out = tmp_path / "r.json"
    argv = ["control", "--task", "rope", "--model", "gt", "--planner", "random", "--episodes", "1", "--out", str(out),
            "--no-gif", *TINY]
    assert main(argv) == 0
    good = json.loads(out.read_text())
    capsys.readouterr()
    for key, bad, says in (("steps", "2", "steps must be an integer in [0, 2], got '2'"),
                           ("steps", 10**12, "steps must be an integer in [0, 2], got 1000000000000"),
                           ("steps", True, "steps must be an integer in [0, 2], got True"),
                           ("success", "yes", "success must be true or false, got 'yes'"),
                           ("final_distance", "0.1", "final_distance must be a number, got '0.1'"),
                           ("plan_cpu_seconds_mean", "x", "plan_cpu_seconds_mean must be a number or null, got 'x'"),
                           ("seed", -1, "seed must be an integer >= 0, got -1")):
        damaged = json.loads(json.dumps(good))
        damaged["per_episode"][0][key] = bad
        out.write_text(json.dumps(damaged))
        assert main([*argv, "--resume"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(f"--resume: {out}: episode 0: {says}; give another --out or delete it"), err
        assert json.loads(out.read_text()) == damaged  # left as it was
    out.write_text(json.dumps(good))
    assert main([*argv, "--resume"]) == 0 and json.loads(out.read_text())["per_episode"] == good["per_episode"]


def test_control_random_baseline_needs_no_model(tmp_path):
    out = tmp_path / "rand.json"
    assert main(["control", "--task", "rope", "--model", "gt", "--planner", "random", "--episodes", "1",
                 "--out", str(out), "--no-gif", *TINY]) == 0
    assert json.loads(out.read_text())["planner"] == "random"


def test_control_rejects_gradients_through_the_simulator_in_one_line(tmp_path, capsys):
    rc = main(["control", "--task", "boxpush", "--model", "gt", "--planner", "grad", "--episodes", "1",
               "--out", str(tmp_path / "x.json"), "--no-gif", *TINY])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not differentiable" in err[0]


def test_control_unknown_task_names_the_choices(tmp_path, capsys):
    rc = main(["control", "--task", "boxes", "--model", "propnet", "--out", str(tmp_path / "x.json")])
    assert rc == 2
    assert "boxpush" in capsys.readouterr().err


def test_episode_gif_draws_plans_of_any_length_in_2d_and_3d(tmp_path):
    import numpy as np

    from benchmarks.commands.control import episode_gif
    from physics.control import EpisodeResult

    for d in (2, 3):  # 12 planned steps made the last alpha 1.0000000000000002, which matplotlib refused
        r = EpisodeResult(0, False, 0.1, 0.1, 1, [0.1], frames=[np.zeros((8, 8, 3), np.uint8)] * 2,
                          imagined=[np.zeros((12, 3, d))])
        episode_gif(r, tmp_path / f"g{d}.gif")
        assert (tmp_path / f"g{d}.gif").stat().st_size > 0


def test_resume_with_other_settings_is_refused_naming_each_and_keeps_the_file(tmp_path, capsys):
    """A resume with other flags started over and overwrote the file's episodes without a word."""
    out = tmp_path / "r.json"
    argv = ["control", "--task", "rope", "--model", "gt", "--planner", "random", "--episodes", "1", "--seed", "3",
            "--out", str(out), "--no-gif", *TINY]
    assert main(argv) == 0
    before = out.read_text()
    capsys.readouterr()
    assert main([*argv, "--episodes", "2", "--seed", "4", "--horizon", "3", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"--resume: {out} holds a run with other settings (seed: 3 in the file, 4 now; " in err[0]
    assert "planner_config.horizon: 2 in the file, 3 now)" in err[0]
    assert out.read_text() == before  # its episode kept
    assert main([*argv, "--episodes", "2", "--resume"]) == 0  # more episodes of the same run: resumed
    episodes = json.loads(out.read_text())["per_episode"]
    assert len(episodes) == 2 and episodes[0] == json.loads(before)["per_episode"][0]


def test_an_option_the_run_would_not_read_is_refused_naming_both(tmp_path, capsys):
    # --planner random --checkpoint FILE ran the baseline and recorded FILE as if it had been used
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"")
    base = ["control", "--task", "boxpush", "--episodes", "1", "--no-gif", "--out", str(tmp_path / "r.json"), *TINY]
    for extra, words in (
        (["--model", "gt", "--planner", "random", "--checkpoint", str(ckpt)], ("--checkpoint", "--planner random")),
        (["--model", "propnet", "--planner", "random", "--checkpoint", str(ckpt)], ("--checkpoint", "--planner random")),
        (["--model", "gt", "--planner", "cem", "--checkpoint", str(ckpt)], ("--checkpoint", "--model gt")),
        (["--model", "gt", "--planner", "cem", "--focus", "0.3"], ("--focus 0.3", "--model gt")),
        (["--model", "propnet", "--planner", "random", "--focus", "0.3"], ("--focus 0.3", "--planner random")),
        (["--model", "gt", "--planner", "random", "--record-split", "valid"], ("--record-split valid", "--record")),
        # a learned model named for the random baseline would be recorded as if it had planned
        (["--model", "propnet", "--planner", "random"], ("--model propnet", "--planner random", "--model gt")),
    ):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(w in err[0] for w in words), (extra, err)
    assert not (tmp_path / "r.json").exists()
