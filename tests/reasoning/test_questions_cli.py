"""``nesy data questions``: scenes file in, official questions JSON out, executor check."""

from __future__ import annotations

import json

import pytest

from benchmarks.cli import main
from perception.scene_graph import save_scenes
from perception.synthetic import sample_scene_graphs


def test_data_questions_writes_official_json_and_the_executor_agrees(tmp_path, capsys):
    scenes_path, out = tmp_path / "scenes.json", tmp_path / "questions.json"
    save_scenes(scenes_path, sample_scene_graphs(6, seed=2))
    rc = main(
        [
            "data",
            "questions",
            "--scenes",
            str(scenes_path),
            "--out",
            str(out),
            "--per-scene",
            "4",
            "--check",
            "--quiet",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0
    data = json.loads(out.read_text())
    assert (
        set(data) == {"info", "questions"} and len(data["questions"]) == summary["questions"] == 24
    )
    assert {q["image_index"] for q in data["questions"]} == set(range(6))
    assert summary["executor_check"]["agreement_percent"] == 100.0
    assert sum(summary["question_types"].values()) == 24


def test_synthetic_questions_with_scenes_out_can_be_answered_from_the_written_scenes(tmp_path, capsys):
    from perception.scene_graph import load_scenes
    from reasoning.dsl import from_clevr
    from reasoning.executor import execute

    out, scenes_out = tmp_path / "q.json", tmp_path / "s.json"
    args = ["data", "questions", "--synthetic", "5", "--seed", "3", "--per-scene", "3", "--quiet"]
    assert main([*args, "--out", str(out), "--scenes-out", str(scenes_out)]) == 0
    capsys.readouterr()
    scenes = {s.image_index: s for s in load_scenes(scenes_out)}
    questions = json.loads(out.read_text())["questions"]
    assert len(scenes) == 5 and len(questions) == 15
    assert all(execute(from_clevr(q["program"]), scenes[q["image_index"]]).answer == q["answer"] for q in questions)


def test_data_questions_reports_bad_input_in_one_line(tmp_path, capsys):
    out = tmp_path / "q.json"
    assert (
        main(["data", "questions", "--synthetic", "2", "--scenes", "x.json", "--out", str(out)])
        == 2
    )
    assert "exactly one of --scenes" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "questions",
                "--synthetic",
                "2",
                "--templates",
                str(tmp_path / "none"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "templates not found" in err and len(err.strip().splitlines()) == 1
    assert (
        main(["data", "questions", "--synthetic", "2", "--balance-ratio", "0.5", "--out", str(out)])
        == 2
    )
    assert "balance_ratio must be >= 1.0" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "field", "message"),
    [("--balance-ratio", "balance_ratio", "balance_ratio must be >= 1.0, got nan"),
     ("--balance-median-factor", "balance_median_factor", "balance_median_factor must be > 0")],
)
def test_a_nan_balance_option_is_refused_not_read_as_no_rule(tmp_path, capsys, flag, field, message):
    # NaN fails every comparison, so `x < 1.0` let it through and the rule never rejected an answer;
    # the CLI refuses it as it parses the flag, the library config when it is built
    from physics.errors import ConfigError
    from reasoning.questions.config import GeneratorConfig

    out = tmp_path / "q.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "questions", "--synthetic", "2", flag, "nan", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {flag}: must be a number, got 'nan'" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig(**{field: float("nan")})


def test_data_questions_checks_both_outputs_and_the_scenes_indices_before_any_work(tmp_path, capsys):
    # the questions were written, then --scenes-out failed: half an output; and two scenes sharing an
    # image_index gave questions that could not say which scene they were about
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "q.json"
    cases = [
        (["--synthetic", "2", "--scenes-out", str(tmp_path / "a_file" / "s.json")], "a file is in the way"),
        (["--synthetic", "2", "--scenes-out", str(out)], "--scenes-out and --out name the same file"),
    ]
    scenes = sample_scene_graphs(3, seed=0)
    save_scenes(tmp_path / "dup.json", scenes)
    raw = json.loads((tmp_path / "dup.json").read_text())
    raw["scenes"][2]["image_index"] = raw["scenes"][0]["image_index"]
    (tmp_path / "dup.json").write_text(json.dumps(raw))
    cases.append((["--scenes", str(tmp_path / "dup.json")], "dup.json: scenes 2 and an earlier one share image_index 0"))
    save_scenes(tmp_path / "none.json", [])  # an empty questions file was written without a word
    cases.append((["--scenes", str(tmp_path / "none.json")], "none.json holds no scenes; there is nothing to ask about"))
    for extra, message in cases:
        assert main(["data", "questions", *extra, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists()
