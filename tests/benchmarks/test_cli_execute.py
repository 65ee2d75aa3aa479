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
from tests.conftest import SINGLE_OR


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


def _execute(tmp, questions, capsys, *flags):
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
            *flags,
        ]
    )
    return code, capsys.readouterr()


@pytest.mark.parametrize("mode", ["--batched", "--no-batched"])
def test_bad_questions_get_their_own_errors_and_the_others_their_answers(files, capsys, mode):
    tmp, scenes, programs, questions = files
    questions[3]["image_index"] = 99
    questions[5]["program"][0]["function"] = "scenery"
    questions[7]["program"] = [{"function": "scene", "inputs": [3]}]
    del questions[9]["program"]
    questions[11] = "not a question"
    code, captured = _execute(tmp, questions, capsys, mode)
    assert code == 1
    records = json.loads((tmp / "a.json").read_text())
    assert len(records) == 60
    errors = {k: r["error"] for k, r in enumerate(records) if "error" in r}
    assert sorted(errors) == [3, 5, 7, 9, 11]
    assert "question 3: image_index 99 is not in scenes.json (image indices 0..5)" in errors[3]
    assert "question 5: node 0 (scenery): unknown function 'scenery'" in errors[5]
    assert "question 7" in errors[7] and "node 0" in errors[7]
    assert "question 9: missing field 'program'" in errors[9]
    assert "question 11 must be a JSON object" in errors[11]
    assert all(records[k]["answer"] is None for k in errors)
    truth = [execute(p, scenes[k % 6], trace=False).answer for k, p in enumerate(programs)]
    for k, r in enumerate(records):
        if k not in errors:
            assert r == {"question_index": k, "answer": truth[k]}
    summary = json.loads(captured.out)
    answered = sum(truth[k] is not None for k in range(60) if k not in errors)
    assert summary["errors"] == 5 and summary["answered"] == answered
    assert summary["invalid"] == 55 - answered
    # question 0's given answer is wrong on purpose; invalid ones were given "none"
    wrong = 1 + sum(truth[k] is None for k in range(1, 60) if k not in errors)
    assert summary["wrong"] == wrong
    lines = captured.err.strip().splitlines()
    assert sum(line.startswith("error: ") for line in lines) == 5
    assert lines[-1] == (
        f"answered {answered}, invalid {55 - answered}, wrong {wrong}, errors 5 of 60 questions"
    )


def test_a_given_answer_that_is_no_string_count_or_boolean_is_the_questions_error_not_a_wrong_answer(files, capsys):
    """A NaN answer was read as the word 'nan' and counted wrong without a word."""
    tmp, scenes, programs, questions = files
    truth = execute(programs[1], scenes[1], trace=False).answer
    questions[0]["answer"] = float("nan")
    questions[1]["answer"] = int(truth) if truth.isdigit() else truth == "yes" if truth in ("yes", "no") else truth
    questions[2]["answer"] = ["red"]
    code, captured = _execute(tmp, questions, capsys)
    records = json.loads((tmp / "a.json").read_text())
    assert records[0]["error"] == "q.json: question 0: 'answer' must be a string, a count or true/false, got nan"
    assert records[2]["error"] == "q.json: question 2: 'answer' must be a string, a count or true/false, got ['red']"
    assert "error" not in records[1] and records[1]["answer"] == truth  # a count or a boolean is CLEVR's answer too
    assert json.loads(captured.out)["errors"] == 2


def test_a_repeated_question_index_is_answered_once_and_the_repeat_named(files, capsys):
    """A question given twice was answered (and scored) twice."""
    tmp, _, _, questions = files
    questions[7] = dict(questions[3])
    code, captured = _execute(tmp, questions, capsys)
    records = json.loads((tmp / "a.json").read_text())
    assert len(records) == 60 and "error" not in records[3] and records[3]["answer"] is not None
    assert records[7]["error"] == ("q.json: question 3: question_index 3 given twice (first by question 3 of the file, "
                                   "position 7 now); answered once")
    assert json.loads(captured.out)["errors"] == 1


def test_strict_makes_the_first_bad_question_fatal(files, capsys):
    tmp, _, _, questions = files
    questions[3]["image_index"] = 99
    questions[5]["program"][0]["function"] = "scenery"
    code, captured = _execute(tmp, questions, capsys, "--strict")
    assert code == 2
    assert "question 3: image_index 99 is not in scenes.json (image indices 0..5)" in captured.err
    assert "scenery" not in captured.err
    assert not (tmp / "a.json").exists()


def test_a_file_of_generated_dag_programs_is_answered(files, capsys):
    tmp, scenes, programs, questions = files
    questions[4]["program"] = SINGLE_OR
    questions[4]["answer"] = None
    code, captured = _execute(tmp, questions, capsys)
    assert code == 0 and json.loads(captured.out)["errors"] == 0
    cubes = sum(o.shape == "cube" for o in scenes[4].objects)
    assert json.loads((tmp / "a.json").read_text())[4]["answer"] == str(cubes)


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


def test_answer_skips_a_malformed_scene_other_than_the_one_asked_for(files, tmp_path, capsys):
    # one bad scene of a scenes file stops `answer --index K` only when K is that scene
    tmp, *_ = files
    raw = json.loads((tmp / "scenes.json").read_text())
    asked, spoiled = raw["scenes"][1]["image_index"], raw["scenes"][3]["image_index"]
    raw["scenes"][3]["objects"][0]["color"] = "plaid"
    path = tmp_path / "scenes.json"
    path.write_text(json.dumps(raw))
    argv = ["answer", "--scene", str(path), "--program", "count(scene())", "--json", "--index"]
    assert main([*argv, str(asked)]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == str(len(raw["scenes"][1]["objects"]))
    assert main([*argv, str(spoiled)]) == 2  # the malformed one itself: named, with why it was skipped
    err = capsys.readouterr().err
    assert f"no scene with image_index {spoiled}" in err and "1 malformed scene(s) skipped" in err and "plaid" in err


def test_answer_refuses_an_index_two_scenes_of_the_file_share(files, tmp_path, capsys):
    # the first of the two was answered without a word: which scene ran was the file's order
    tmp, *_ = files
    raw = json.loads((tmp / "scenes.json").read_text())
    raw["scenes"][4]["image_index"] = raw["scenes"][1]["image_index"]
    path = tmp_path / "scenes.json"
    path.write_text(json.dumps(raw))
    argv = ["answer", "--scene", str(path), "--program", "count(scene())", "--index"]
    assert main([*argv, str(raw["scenes"][1]["image_index"])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"scenes 1 and 4 share image_index {raw['scenes'][1]['image_index']}; --index cannot tell" in err
    assert main([*argv, str(raw["scenes"][0]["image_index"])]) == 0  # another index of the file is answered

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
    assert code == 0 and "machine" not in printed
    e2e = saved["end_to_end"]
    assert e2e["questions"] == 300 and e2e["questions_per_scene"] == 10 and e2e["scenes"] == 30
    assert 0 < e2e["dag_fraction"] < 1
    assert set(e2e["speedup_vs_plain"]) == {
        "single",
        "batched",
        "single_warm",
        "batched_warm",
        "single_decoded",
    }
    assert all(v > 0 for m in e2e["speedup_vs_plain"].values() for v in m.values())
    assert set(e2e["disagreements_with_plain"].values()) == {0}
    # whether the C module answered, and what it left to Python, per mode
    path = e2e["compiled_path"]
    assert set(path["runs"]) == {"single", "batched", "single_warm", "batched_warm"}
    if path["available"] and path["enabled"]:
        assert all(r["compiled"] and r["fallback"] == 0 for r in path["runs"].values())
        assert "compiled path: used (single: 0 left to Python" in printed
    else:
        assert "compiled path: not used" in printed
    table = printed.splitlines()
    single = next(line for line in table if line.startswith("single "))
    assert single.split()[2] == f"{e2e['speedup_vs_plain']['single']['wall']:.2f}"
    row = {line.split()[0]: k for k, line in enumerate(table) if line.strip()}
    assert row["mode"] + 1 == row["plain"] and row["compiled"] > row["single_decoded"]  # the note below the rows
    assert single.split()[4] == "2x"
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


def test_one_malformed_scene_is_skipped_and_only_its_questions_fail(files, capsys):
    # one bad scene in the scenes file fails its own questions, never the whole run
    tmp, _, _, questions = files
    raw = json.loads((tmp / "scenes.json").read_text())
    raw["scenes"][2]["objects"][0]["color"] = "plaid"
    (tmp / "scenes.json").write_text(json.dumps(raw))
    code, captured = _execute(tmp, questions, capsys)
    assert code == 1
    summary = json.loads(captured.out)
    assert summary["skipped_scenes"] == 1 and summary["errors"] == 10  # the 10 questions on image 2
    assert "skipped scene: scenes.json: scene 2 (image_index 2), object 0: unknown color 'plaid'" in captured.err
    records = json.loads((tmp / "a.json").read_text())
    assert all(("error" in r) == (q["image_index"] == 2) for r, q in zip(records, questions, strict=True))
    (tmp / "a.json").unlink()
    code, captured = _execute(tmp, questions, capsys, "--strict")
    assert code == 2 and "unknown color 'plaid'" in captured.err and not (tmp / "a.json").exists()
