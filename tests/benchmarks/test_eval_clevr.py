"""``nesy eval clevr``: accuracy per NS-VQA question type, model parts plugged in, clear errors."""

from __future__ import annotations

import json

import pytest

from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr
from physics.errors import ConfigError, DataError
from reasoning.dsl import from_clevr
from reasoning.nsvqa import NSVQA
from reasoning.questions import QUESTION_TYPES


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    build_clevr(ClevrDataConfig(n=3, out=str(out), seed=5, split="test", questions_per_scene=8), progress=False)
    return out


def test_ground_truth_parts_answer_every_question(split, tmp_path):
    out = tmp_path / "r.json"
    res = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt", out=str(out)), progress=False)
    assert res["accuracy"]["overall"] == 1.0
    assert set(QUESTION_TYPES) <= set(res["accuracy"])
    assert sum(res["counts"].values()) == res["questions"] > 0
    assert json.loads(out.read_text())["accuracy"] == res["accuracy"]


def test_min_depth_keeps_only_deep_programs_and_results_break_down_by_depth_and_scene_size(split):
    qs = json.loads((split / "CLEVR_test_questions.json").read_text())["questions"]
    scenes = json.loads((split / "CLEVR_test_scenes.json").read_text())["scenes"]
    depths = [from_clevr(q["program"]).depth() for q in qs]
    cut = sorted(depths)[len(depths) // 2]
    every = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt"), progress=False)
    assert {int(k): v["questions"] for k, v in every["per_depth"].items()} == {
        d: depths.count(d) for d in set(depths)}
    sizes = {s["image_index"]: len(s["objects"]) for s in scenes}
    assert sum(v["questions"] for v in every["per_objects"].values()) == len(qs)
    assert {int(k) for k in every["per_objects"]} == {sizes[q["image_index"]] for q in qs}
    deep = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt", min_depth=cut), progress=False)
    assert deep["questions"] == sum(d >= cut for d in depths) < len(qs)
    assert min(int(k) for k in deep["per_depth"]) >= cut
    assert deep["accuracy"]["overall"] == 1.0
    limited = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt", min_depth=cut, limit=2),
                             progress=False)
    assert limited["questions"] == 2 and min(int(k) for k in limited["per_depth"]) >= cut  # the filter comes first
    with pytest.raises(DataError, match="or more calls deep"):
        evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt", min_depth=max(depths) + 1),
                       progress=False)
    with pytest.raises(ConfigError, match="min_depth"):
        ClevrEvalConfig(data=str(split), min_depth=-1)


class _OracleParser:
    """Parses by looking the question up: checks the plumbing of parser='model'."""

    def __init__(self, questions, broken=()):
        self.table = {q["question"]: from_clevr(q["program"]) for q in questions}
        self.broken = set(broken)

    def parse(self, texts):
        return [None if t in self.broken else self.table[t] for t in texts]


def test_parser_scores_count_exact_programs_and_failed_parses(split):
    qs = json.loads((split / "CLEVR_test_questions.json").read_text())["questions"]
    model = NSVQA(parser=_OracleParser(qs, broken=[qs[0]["question"]]))
    res = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="model"), model=model, progress=False)
    n = len(qs)
    assert res["parser"]["invalid"] == pytest.approx(1 / n)
    assert res["parser"]["program_exact"] == pytest.approx((n - 1) / n)
    assert res["accuracy"]["overall"] == pytest.approx((n - 1) / n)
    # the one wrong answer is counted against its own scene, and the interval spans the mean
    per_scene = {i: (n_q, right) for i, n_q, right in res["per_scene"]}
    assert sum(n_q for n_q, _ in per_scene.values()) == n and len(per_scene) == res["scenes"]
    assert per_scene[qs[0]["image_index"]][1] == per_scene[qs[0]["image_index"]][0] - 1
    lo, hi = res["accuracy_interval"]
    assert lo < res["accuracy"]["overall"] <= hi <= 1.0


class _PickyParser(_OracleParser):
    """Raises on one question (as a parser without an unknown-word id does) and reports unknown words."""

    def __init__(self, questions, failing, unknown):
        super().__init__(questions)
        self.failing, self.unknown = failing, unknown

    def parse(self, texts):
        if self.failing in texts:
            raise DataError(f"question {texts.index(self.failing)}: unknown word 'zorb' at position 0")
        return super().parse(texts)

    def unknown_words(self, texts):
        return [("zorb",) if t in self.unknown else () for t in texts]


def test_a_question_that_cannot_be_parsed_is_counted_wrong_and_reported_not_fatal(split):
    qs = json.loads((split / "CLEVR_test_questions.json").read_text())["questions"]
    failing = qs[3]["question"]
    model = NSVQA(parser=_PickyParser(qs, failing, unknown={failing, qs[5]["question"]}))
    res = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="model"), model=model, progress=False)
    n = len(qs)
    p = res["parser"]
    assert p["parse_errors"] == 1 and p["unparsed"] == 1 and p["unknown_word_questions"] == 2
    assert p["unknown_words"] == {"zorb": 2}
    assert p["errors"] == ["question 3: unknown word 'zorb' at position 0"]
    assert res["accuracy"]["overall"] == pytest.approx((n - 1) / n)  # the rest of the file is answered
    family = f"{qs[3]['template_filename']}:{qs[3]['question_family_index']}"
    assert res["per_family"][family]["accuracy"] < 1.0
    assert sum(f["questions"] for f in res["per_family"].values()) == n


def test_scene_bootstrap_interval_resamples_whole_scenes():
    import numpy as np

    from benchmarks.eval_clevr import scene_bootstrap_interval

    assert scene_bootstrap_interval(np.array([10, 10]), np.array([10, 10])) == [1.0, 1.0]
    # two scenes, one all right and one all wrong: resampled means can only be 0, 1/2 or 1
    lo, hi = scene_bootstrap_interval(np.array([10, 10]), np.array([10, 0]), level=0.5)
    assert {lo, hi} <= {0.0, 0.5, 1.0} and lo <= 0.5 <= hi
    # 100 scenes of 10 questions, 2 scenes wrong throughout: the interval is wider than for
    # 1,000 independent questions with the same 2% errors
    q, c = np.full(100, 10), np.full(100, 10)
    c[:2] = 0
    lo, hi = scene_bootstrap_interval(q, c)
    assert lo < 0.97 and hi == 1.0


def test_a_resample_without_questions_of_a_type_leaves_the_interval_alone():
    import numpy as np

    from benchmarks.eval_clevr import scene_bootstrap_interval

    # one video of two holds all (8) explanatory options, every one answered right: a quarter of the
    # resamples draw the other video twice and have no accuracy; they read as 0% before, so the
    # interval was 0-100% for a type answered 100% right (nesy eval clevrer on the README's 2 videos)
    assert scene_bootstrap_interval(np.array([0, 8]), np.array([0, 8])) == [1.0, 1.0]
    lo, hi = scene_bootstrap_interval(np.array([0, 0, 4, 4]), np.array([0, 0, 4, 2]))
    assert 0.5 <= lo <= hi <= 1.0


def test_perception_from_a_model_is_scored_against_the_ground_truth(split):
    from perception import load_scenes

    truth = {s.image_filename: s for s in load_scenes(split / "CLEVR_test_scenes.json")}
    calls = []

    def oracle_derenderer(rgb, *, image_index, image_filename):
        calls.append(rgb.shape)
        assert truth[image_filename].image_index == image_index
        return truth[sorted(truth)[len(calls) - 1]]

    res = evaluate_clevr(
        ClevrEvalConfig(data=str(split), perception="model", parser="gt"),
        model=NSVQA(derenderer=oracle_derenderer),
        progress=False,
    )
    assert len(calls) == 3 and calls[0][2] == 3
    assert res["perception"]["detection_recall"] == 1.0
    assert res["accuracy"]["overall"] == 1.0


def test_bad_inputs_are_named(split, tmp_path):
    with pytest.raises(ConfigError, match="perception"):
        ClevrEvalConfig(data=str(split), perception="oracle")
    with pytest.raises(DataError, match="no CLEVR split 'val'"):
        evaluate_clevr(ClevrEvalConfig(data=str(split), split="val", perception="gt", parser="gt"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "CLEVR_test_scenes.json").write_text((split / "CLEVR_test_scenes.json").read_text())
    (broken / "CLEVR_test_questions.json").write_text('{"questions": [{"question": "x"}]}')
    with pytest.raises(DataError, match="no question could be read .* question 0 lacks 'program'"):
        evaluate_clevr(ClevrEvalConfig(data=str(broken), perception="gt", parser="gt"))


def test_one_malformed_question_is_reported_and_skipped_not_fatal(split, tmp_path, capsys):
    # a question that was an integer, or had a list as image_index, ended the run in a TypeError traceback
    from benchmarks.cli import main

    good = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt"), progress=False)
    raw = json.loads((split / "CLEVR_test_questions.json").read_text())
    n = len(raw["questions"])
    raw["questions"][1] = 5
    raw["questions"][2]["image_index"] = [0]
    raw["questions"][3]["image_index"] = 999
    raw["questions"][4]["program"] = [{"function": "teleport", "inputs": []}]
    raw["questions"][5].pop("answer")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "CLEVR_test_scenes.json").write_text((split / "CLEVR_test_scenes.json").read_text())
    (broken / "CLEVR_test_questions.json").write_text(json.dumps(raw))
    res = evaluate_clevr(ClevrEvalConfig(data=str(broken), perception="gt", parser="gt"), progress=False)
    assert res["questions"] == n - 5 and res["skipped"]["count"] == 5
    first = res["skipped"]["first"]
    assert "question 1: expected a JSON object, got int" in first[0]
    assert "question 2: image_index must be an integer, got [0]" in first[1]
    assert "question 3 asks about image 999" in first[2] and "question 4" in first[3] and "question 5 lacks 'answer'" in first[4]
    assert res["accuracy"]["overall"] == good["accuracy"]["overall"] == 1.0
    assert "skipped" not in good
    assert main(["eval", "clevr", "--data", str(broken), "--perception", "gt", "--parser", "gt"]) == 0
    err = capsys.readouterr().err
    assert "skipped 5 malformed question(s)" in err and "Traceback" not in err


def test_a_repeated_question_a_non_string_answer_and_a_repeated_scene_are_named_not_counted(split, tmp_path):
    """A question given twice was counted twice, an answer of NaN counted wrong (and 7 for "7" too), all without a
    word; a scene given twice kept the last one (``nesy execute`` refused it)."""
    good = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt"), progress=False)
    raw = json.loads((split / "CLEVR_test_questions.json").read_text())
    n = len(raw["questions"])
    raw["questions"].insert(2, dict(raw["questions"][0]))
    raw["questions"][3]["answer"] = float("nan")
    for q in raw["questions"][4:]:  # the given answer as a count, a boolean or in capitals: CLEVR's answer all the same
        q["answer"] = int(q["answer"]) if q["answer"].isdigit() else {"yes": True, "no": False}.get(
            q["answer"], f" {q['answer'].upper()}")
    raw["questions"][5]["question_index"] = "x"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "CLEVR_test_scenes.json").write_text((split / "CLEVR_test_scenes.json").read_text())
    (broken / "CLEVR_test_questions.json").write_text(json.dumps(raw))
    res = evaluate_clevr(ClevrEvalConfig(data=str(broken), perception="gt", parser="gt"), progress=False)
    first = res["skipped"]["first"]
    assert res["questions"] == n - 2 and res["skipped"]["count"] == 3, first
    index = raw["questions"][0]["question_index"]
    assert first[0].endswith(f"question 2: question_index {index} given twice (first by question 0); not counted again")
    assert first[1].endswith("question 3: 'answer' must be a string, a count or true/false, got nan")
    assert first[2].endswith("question 5: question_index must be an integer, got 'x'")
    assert {type(q["answer"]) for q in raw["questions"][4:]} == {int, bool, str}
    assert res["accuracy"]["overall"] == good["accuracy"]["overall"] == 1.0
    scenes = json.loads((split / "CLEVR_test_scenes.json").read_text())
    scenes["scenes"].append(scenes["scenes"][0])
    (broken / "CLEVR_test_scenes.json").write_text(json.dumps(scenes))
    with pytest.raises(DataError, match=f"scenes {len(scenes['scenes']) - 1} and an earlier one share image_index"):
        evaluate_clevr(ClevrEvalConfig(data=str(broken), perception="gt", parser="gt"), progress=False)


def test_an_unreadable_image_is_reported_and_its_questions_count_as_wrong(split, tmp_path, capsys):
    # one corrupt PNG costs only its own questions, never the whole evaluation from pixels
    import shutil

    from PIL import Image

    from benchmarks.cli import main

    good = evaluate_clevr(ClevrEvalConfig(data=str(split), split="test", perception="model"), progress=False)
    bad = tmp_path / "bad"
    shutil.copytree(split, bad)
    raw = json.loads((bad / "CLEVR_test_questions.json").read_text())
    scenes = json.loads((bad / "CLEVR_test_scenes.json").read_text())["scenes"]
    spoiled = scenes[0]["image_filename"]
    (bad / "images" / spoiled).write_bytes(b"\x89PNG truncated")
    res = evaluate_clevr(ClevrEvalConfig(data=str(bad), split="test", perception="model"), progress=False)
    assert res["unreadable_images"]["count"] == 1 and spoiled in res["unreadable_images"]["first"][0]
    assert res["questions"] == good["questions"] == len(raw["questions"])
    on_spoiled = [k for k, q in enumerate(raw["questions"]) if q["image_index"] == scenes[0]["image_index"]]
    right_before = {row[0]: row[2] for row in good["per_scene"]}
    right_after = {row[0]: row[2] for row in res["per_scene"]}
    assert on_spoiled and right_after[scenes[0]["image_index"]] == 0  # its questions answered None: wrong
    assert {i: r for i, r in right_after.items() if i != scenes[0]["image_index"]} == {
        i: r for i, r in right_before.items() if i != scenes[0]["image_index"]}  # the rest as before
    assert main(["eval", "clevr", "--data", str(bad), "--split", "test"]) == 0
    err = capsys.readouterr().err
    assert "1 image(s) could not be read" in err and spoiled in err and "Traceback" not in err
    # an image too small for a scene is reported the same way (the derenderer refuses it)
    Image.new("RGB", (4, 4)).save(bad / "images" / spoiled)
    res = evaluate_clevr(ClevrEvalConfig(data=str(bad), split="test", perception="model"), progress=False)
    assert res["unreadable_images"]["count"] == 1 and "is 4x4 pixels" in res["unreadable_images"]["first"][0]


def test_min_depth_keeps_the_right_questions_when_some_are_skipped(split, tmp_path):
    # skipped questions shift the kept list against the file positions min_depth reads them by
    from reasoning.dsl import from_clevr

    raw = json.loads((split / "CLEVR_test_questions.json").read_text())
    depths = [from_clevr(q["program"]).depth() for q in raw["questions"]]
    cut = sorted(depths)[len(depths) // 2] + 1
    deep = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt", min_depth=cut), progress=False)
    shallow = [k for k, d in enumerate(depths) if d < cut]
    assert 0 < deep["questions"] < len(depths) and shallow[0] < max(k for k, d in enumerate(depths) if d >= cut)
    raw["questions"][shallow[0]] = 5  # a shallow question malformed: the deep ones are the same as before
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "CLEVR_test_scenes.json").write_text((split / "CLEVR_test_scenes.json").read_text())
    (broken / "CLEVR_test_questions.json").write_text(json.dumps(raw))
    res = evaluate_clevr(ClevrEvalConfig(data=str(broken), perception="gt", parser="gt", min_depth=cut), progress=False)
    assert res["skipped"]["count"] == 1
    assert res["questions"] == deep["questions"] and res["accuracy"] == deep["accuracy"]


def test_threads_are_set_for_the_run_and_checked(split):
    import torch

    before = torch.get_num_threads()
    try:
        res = evaluate_clevr(ClevrEvalConfig(data=str(split), perception="gt", parser="gt", threads=1), progress=False)
        assert torch.get_num_threads() == 1 and res["config"]["threads"] == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads"):
        ClevrEvalConfig(data=str(split), threads=0)
