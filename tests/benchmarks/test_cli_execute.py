"""``nesy execute``, ``nesy answer`` and ``nesy bench speed --suite executor`` end to end."""

from __future__ import annotations

import json

import pytest

from benchmarks.cli import main
from benchmarks.speed import SUITES
from perception.scene_graph import save_scenes
from perception.synthetic import sample_scene_graphs
from reasoning.dsl import to_clevr
from reasoning.executor import execute, random_programs


@pytest.fixture()
def files(tmp_path):
    """A scenes file of 6 scenes and a questions file of 60 questions (answers given, one wrong)."""
    scenes = sample_scene_graphs(6, seed=2)
    save_scenes(tmp_path / "scenes.json", scenes)
    programs = random_programs(60, seed=4, scenes=scenes)
    questions = []
    for k, p in enumerate(programs):
        image = k % 6
        truth = execute(p, scenes[image], trace=False).answer
        questions.append(
            {
                "question_index": k,
                "image_index": image,
                "program": to_clevr(p),
                "answer": truth or "none",
            }
        )
    questions[0]["answer"] = "certainly not an answer"  # question 0 is scored wrong whatever it is
    (tmp_path / "questions.json").write_text(json.dumps({"info": {}, "questions": questions}))
    return tmp_path, scenes, programs, questions


def test_execute_writes_answers_and_accuracy_in_both_modes(files, capsys):
    tmp, scenes, programs, questions = files
    outputs = {}
    for mode in ("--batched", "--no-batched"):
        out = tmp / f"answers{mode}.json"
        code = main(
            [
                "execute",
                "--scenes",
                str(tmp / "scenes.json"),
                "--questions",
                str(tmp / "questions.json"),
                "--out",
                str(out),
                mode,
                "--quiet",
            ]
        )
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        outputs[mode] = json.loads(out.read_text())
        truth = [execute(p, scenes[k % 6], trace=False).answer for k, p in enumerate(programs)]
        invalid = sum(a is None for a in truth)
        assert summary["questions"] == 60 and summary["invalid"] == invalid
        # invalid executions (null) never match a given answer; question 0 is wrong on purpose
        right = sum(a is not None for a in truth[1:])
        assert summary["accuracy"] == pytest.approx(right / 60)
    assert outputs["--batched"] == outputs["--no-batched"]
    first = outputs["--batched"][:3]
    assert [a["question_index"] for a in first] == [0, 1, 2]
    assert first[1]["answer"] == execute(programs[1], scenes[1], trace=False).answer


def _execute(tmp, questions, capsys):
    (tmp / "q.json").write_text(json.dumps({"questions": questions}))
    code = main(
        [
            "execute",
            "--scenes",
            str(tmp / "scenes.json"),
            "--questions",
            str(tmp / "q.json"),
            "--out",
            str(tmp / "a.json"),
            "--quiet",
        ]
    )
    return code, capsys.readouterr().err


def test_execute_names_the_question_with_a_missing_scene(files, capsys):
    tmp, _, _, questions = files
    questions[3]["image_index"] = 99
    code, err = _execute(tmp, questions, capsys)
    assert code == 2
    assert "question 3: image_index 99 is not in scenes.json (image indices 0..5)" in err
    assert not (tmp / "a.json").exists()


def test_execute_names_question_and_node_of_an_unknown_function(files, capsys):
    tmp, _, _, questions = files
    questions[5]["program"][0]["function"] = "scenery"
    code, err = _execute(tmp, questions, capsys)
    assert code == 2 and "question 5: node 0 (scenery): unknown function 'scenery'" in err


def test_execute_names_question_of_a_malformed_program(files, capsys):
    tmp, _, _, questions = files
    questions[7]["program"] = [{"function": "scene", "inputs": [3]}]
    code, err = _execute(tmp, questions, capsys)
    assert code == 2 and "question 7" in err and "node 0" in err
    del questions[7]["program"]
    code, err = _execute(tmp, questions, capsys)
    assert code == 2 and "question 7: missing field 'program'" in err


def test_execute_reports_unreadable_json_with_its_position(files, capsys):
    tmp, *_ = files
    (tmp / "q.json").write_text('{"questions": [')
    code = main(
        [
            "execute",
            "--scenes",
            str(tmp / "scenes.json"),
            "--questions",
            str(tmp / "q.json"),
            "--out",
            str(tmp / "a.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not valid JSON" in err and "line 1" in err


def test_answer_prints_the_answer_and_a_trace_table(files, capsys):
    tmp, scenes, *_ = files
    code = main(
        [
            "answer",
            "--scene",
            str(tmp / "scenes.json"),
            "--index",
            "2",
            "--program",
            "count(filter_color(scene(), red))",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    expected = sum(o.color == "red" for o in scenes[2].objects)
    assert code == 0 and out[0] == f"answer: {expected}"
    assert out[1].split() == ["#", "function", "inputs", "values", "type", "output"]
    assert out[2].split()[:2] == ["0", "scene"]
    assert out[3].split()[:4] == ["1", "filter_color", "0", "red"]
    assert out[4].split() == ["2", "count", "1", "Integer", str(expected)]


def test_answer_json_and_invalid_reason(files, capsys):
    tmp, scenes, *_ = files
    code = main(
        [
            "answer",
            "--scene",
            str(tmp / "scenes.json"),
            "--index",
            "0",
            "--json",
            "--program",
            "query_color(unique(scene()))",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["valid"] is False and result["answer"] is None
    assert (
        f"got a set of {len(scenes[0])}" in result["reason"]
        and "node 1 (unique)" in result["reason"]
    )


def test_answer_errors_name_what_is_wrong(files, capsys):
    tmp, *_ = files
    code = main(
        [
            "answer",
            "--scene",
            str(tmp / "scenes.json"),
            "--index",
            "17",
            "--program",
            "count(scene())",
        ]
    )
    assert code == 2 and "no scene with image_index 17" in capsys.readouterr().err
    code = main(["answer", "--scene", str(tmp / "scenes.json"), "--program", "count(scene())"])
    assert code == 2 and "holds 6 scenes; choose one with --index" in capsys.readouterr().err
    code = main(
        [
            "answer",
            "--scene",
            str(tmp / "scenes.json"),
            "--index",
            "1",
            "--program",
            "count(scene(),",
        ]
    )
    assert code == 2 and "--program" in capsys.readouterr().err


def test_bench_speed_executor_suite_reports_measured_rates(tmp_path, capsys):
    out = tmp_path / "speed.json"
    code = main(
        [
            "bench",
            "speed",
            "--suite",
            "executor",
            "--questions",
            "300",
            "--scenes",
            "20",
            "--shapes",
            "6",
            "--repeats",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out  # a short table; the JSON goes to --out
    saved = json.loads(out.read_text())
    assert code == 0 and "questions_per_second.single_trace_off" in printed and "machine" not in printed
    rates = saved["questions_per_second"]
    assert set(rates) >= {"single_trace_off", "single_trace_on", "plain_baseline", "batched"}
    assert all(v > 0 for v in rates.values())
    assert saved["disagreements_with_single"] == {
        "single_trace_on": 0,
        "plain_baseline": 0,
        "batched": 0,
    }
    assert saved["questions"] == 300 and saved["machine"]["cpu_count"] >= 1
    assert saved["structures_after_canonicalisation"] <= 6


def test_bench_speed_unknown_suite_lists_the_suites(capsys):
    assert "executor" in SUITES
    code = main(["bench", "speed", "--suite", "nope", "--questions", "10"])
    assert code == 2 and "unknown speed suite 'nope'; suites: " in capsys.readouterr().err
