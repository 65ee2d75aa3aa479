"""``nesy data clevrer-questions`` and ``nesy eval clevrer`` end to end on one simulated video.

Ground truth everywhere must answer every question of every type.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import cli
from benchmarks.config_flags import config_from_args
from benchmarks.eval_clevrer import METRICS, ClevrerEvalConfig
from perception.video.annotate import perception_config
from physics.errors import ConfigError
from physics.worlds.clevrer_annotation import read_annotation, write_annotation
from physics.worlds.clevrer_truth import simulate_video, write_truth
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld
from reasoning.nsdr import dynamics_for, rollout_settings_for


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clevrer")
    world = ClevrerWorld(ClevrerConfig(width=96, height=64, frames=48, future_frames=24))
    annotation, truth = simulate_video(world, (5, 2), 0, "video_00000.gif")  # 1 observed, 3 future collisions
    write_annotation(out / "annotation_val" / "annotation_00000.json", annotation)
    write_truth(out / "truth_val" / "truth_00000.json", truth)
    assert cli.main(["data", "clevrer-questions", "--data", str(out), "--split", "val", "--quiet"]) == 0
    return out


def test_questions_are_written_in_the_official_file_and_resume_to_the_same_bytes(folder, capsys):
    first = (folder / "validation.json").read_bytes()
    entries = json.loads(first)
    assert [e["scene_index"] for e in entries] == [0]
    capsys.readouterr()
    assert cli.main(["data", "clevrer-questions", "--data", str(folder), "--split", "val", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed"] == 1 and summary["generated"] == 0
    assert (folder / "validation.json").read_bytes() == first
    assert cli.main(["data", "clevrer-questions", "--data", str(folder), "--split", "val", "--seed", "3"]) == 2


def test_data_clevrer_questions_says_on_the_terminal_which_video_it_skipped(folder, tmp_path, capsys):
    # a damaged annotation was listed only in the JSON summary's "skipped"
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    shutil.rmtree(damaged / "questions_val")
    (damaged / "validation.json").unlink()
    (damaged / "annotation_val" / "annotation_00000.json").write_text("{")
    capsys.readouterr()
    assert cli.main(["data", "clevrer-questions", "--data", str(damaged), "--split", "val", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["skipped"]) == 1
    assert captured.err.startswith("skipped video: annotation_00000.json: CLEVRER annotation ")

def test_predictive_options_are_recorded_only_apart_from_choices_so_older_question_folders_resume(folder, tmp_path):
    """Questions made before ``--predictive-choices`` (4 options, no key) resume with ``--predictive-choices 4``."""
    record = json.loads((folder / "questions_val.build.json").read_text())
    assert record["predictive_choices"] == 2 and record["choices"] == 4
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    shutil.rmtree(old / "questions_val")
    del record["predictive_choices"]
    (old / "questions_val.build.json").write_text(json.dumps(record))
    assert cli.main(["data", "clevrer-questions", "--data", str(old), "--split", "val", "--quiet"]) == 2
    assert cli.main(["data", "clevrer-questions", "--data", str(old), "--split", "val", "--quiet",
                     "--predictive-choices", "4"]) == 0
    assert json.loads((old / "questions_val.build.json").read_text()) == record


def test_ground_truth_everywhere_answers_every_question(folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--perception", "gt",
                     "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "descriptive" in printed and "counterf. per ques." in printed
    result = json.loads(out.read_text())
    assert set(METRICS) <= set(result["accuracy"])
    counted = [m for m in METRICS if result["counts"][m]]
    assert "descriptive" in counted and "counterfactual_per_option" in counted
    assert all(result["accuracy"][m] == 1.0 and result["interval"][m] == [1.0, 1.0] for m in counted)
    assert result["invalid"] == 0 and result["errors"] == []
    assert result["wrong"] == {t: [] for t in ("descriptive", "explanatory", "predictive", "counterfactual")}


def test_every_question_answered_wrong_is_listed_by_type_with_its_video_and_id(folder, tmp_path):
    """A descriptive answer and one option of a multiple-choice question made false: exactly those two listed."""
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    entries = json.loads((changed / "validation.json").read_text())
    questions = entries[0]["questions"]
    desc = next(q for q in questions if q["question_type"] == "descriptive")
    desc["answer"] = "no such answer"
    mc = next(q for q in questions if q["question_type"] == "counterfactual")
    mc["choices"][0]["answer"] = "wrong" if mc["choices"][0]["answer"] == "correct" else "correct"
    (changed / "validation.json").write_text(json.dumps(entries))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--perception", "gt",
                     "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    index = entries[0]["scene_index"]
    assert result["wrong"] == {"descriptive": [[index, desc["question_id"]]], "explanatory": [], "predictive": [],
                               "counterfactual": [[index, mc["question_id"]]]}
    assert result["counts"]["descriptive"] - round(result["accuracy"]["descriptive"] * result["counts"]["descriptive"]) == 1


def test_a_video_without_its_truth_is_reported_and_counted_wrong(folder, tmp_path):
    broken = tmp_path / "broken"
    for sub in ("annotation_val", "truth_val"):
        (broken / sub).mkdir(parents=True)
        for f in (folder / sub).iterdir():
            (broken / sub / f.name).write_bytes(f.read_bytes())
    (broken / "validation.json").write_bytes((folder / "validation.json").read_bytes())
    (broken / "truth_val" / "truth_00000.json").write_text("{not json")
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(broken), "--split", "val", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] and "video 0" in result["errors"][0]
    assert result["accuracy"]["descriptive"] == 0.0
    assert len(result["wrong"]["descriptive"]) == result["counts"]["descriptive"]  # every question of the video listed
    assert len(result["wrong"]["counterfactual"]) == result["counts"]["counterfactual_per_question"]


@pytest.mark.parametrize("perception, gone, message", [
    ("gt", "annotation_val", "CLEVRER annotation folder not found: {root}/annotation_val (--perception gt reads the "
                             "annotation files)"),
    ("model", "frames_val", "CLEVRER frames folder not found: {root}/frames_val (--perception model reads the rendered "
                            "frames (built with --no-render?))"),
])
def test_a_split_without_the_folder_its_perceiver_reads_is_refused_before_any_video(folder, tmp_path, capsys,
                                                                                     perception, gone, message):
    # the missing annotation folder was every video "could not be read", counted wrong: 0.00%, exit 0
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    shutil.rmtree(changed / gone, ignore_errors=True)
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--perception", perception,
                     "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(message.format(root=changed)), err
    assert not out.exists()


def test_a_perceiver_that_reads_annotation_files_is_given_them_and_needs_no_frames_folder(folder, tmp_path):
    """The perceiver's ``reads`` alone decides the folder checked and the path it is given (the fixture has no frames)."""
    from perception.video import VIDEO_PERCEIVERS, VideoPerceiver, register_video_perceiver

    given: list[Path] = []

    class AnnotationReader(VideoPerceiver):
        name = "test-annotation-reader"
        reads = "annotation"

        @classmethod
        def load(cls, checkpoint=None):
            return cls()

        def __call__(self, frames_dir):
            given.append(Path(frames_dir))
            return read_annotation(frames_dir)

    register_video_perceiver(AnnotationReader)
    try:
        out = tmp_path / "r.json"
        assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--perception", AnnotationReader.name,
                         "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
        result = json.loads(out.read_text())
        assert result["errors"] == [] and result["accuracy"]["descriptive"] == 1.0
        assert given == [folder / "annotation_val" / "annotation_00000.json"]
    finally:
        VIDEO_PERCEIVERS.unregister(AnnotationReader.name)

    class Unknown(AnnotationReader):
        name = "test-unknown-input"
        reads = "pixels"

    with pytest.raises(ConfigError, match="'test-unknown-input': reads must be one of frames, annotation, got 'pixels'"):
        register_video_perceiver(Unknown)
    assert Unknown.name not in VIDEO_PERCEIVERS


def test_a_repeated_question_id_a_non_number_id_and_a_non_string_answer_are_named(folder, tmp_path):
    """A question given twice in one video was counted twice; a NaN question_id left a result that could not be
    written once it was wrong; a descriptive answer that is a list was counted wrong; all three without a word."""
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    entries = json.loads((changed / "validation.json").read_text())
    questions = entries[0]["questions"]
    descriptive = [k for k, q in enumerate(questions) if q["question_type"] == "descriptive"]
    first, other = descriptive[0], descriptive[1]
    questions.append(dict(questions[first]))
    questions[other]["answer"] = ["red"]
    questions[descriptive[2]]["question_id"] = float("nan")
    (changed / "validation.json").write_text(json.dumps(entries))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--perception", "gt",
                     "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["counts"]["descriptive"] == len(descriptive) - 1
    assert result["accuracy"]["descriptive"] == (len(descriptive) - 2) / (len(descriptive) - 1)
    assert result["errors"] == [
        f"video 0, question at position {descriptive[2]}: 'question_id' must be a whole number, got nan; skipped",
        f"video 0, question at position {len(questions) - 1}: question_id {questions[first]['question_id']} given "
        f"twice (first at position {first}); skipped, not counted again",
        f"video 0, question {questions[other]['question_id']}: 'answer' must be a string, a count or true/false, "
        "got ['red']"]
    assert result["wrong"]["descriptive"] == [[0, questions[other]["question_id"]]]


def test_damaged_entries_of_the_questions_file_are_reported_and_the_rest_answered(folder, tmp_path):
    """A question that is not an object is reported and left out (a traceback before); a video entry without a
    questions list (silently empty before) or that is not an object (a Python message before) is named."""
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    entries = json.loads((changed / "validation.json").read_text())
    good = len(entries[0]["questions"])
    entries[0]["questions"].insert(1, 5)
    entries += [{"scene_index": 0}, 7]
    (changed / "validation.json").write_text(json.dumps(entries))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--perception", "gt",
                     "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == ["video 0, question at position 1: expected an object, got int; skipped",
                                "video 1: 'questions' must be a list of questions, got none",
                                "video 2: expected an object with 'scene_index' and 'questions', got int"]
    counted = [m for m in METRICS if result["counts"][m]]
    assert all(result["accuracy"][m] == 1.0 for m in counted)  # the good questions are all answered, and right
    assert result["counts"]["descriptive"] + sum(result["counts"][f"{t}_per_question"] for t in
                                                 ("explanatory", "predictive", "counterfactual")) == good


def test_a_video_entry_given_twice_is_counted_once_and_a_bad_scene_index_is_named(folder, tmp_path):
    # the repeated entry's questions were counted twice without a word; 'abc' gave int()'s own message and
    # -1 looked for annotation_-0001.json
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    entries = json.loads((changed / "validation.json").read_text())
    once = len(entries[0]["questions"])
    out = tmp_path / "r.json"

    def run(listed):
        (changed / "validation.json").write_text(json.dumps(listed))
        assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--out", str(out), "--quiet"]) == 0
        return json.loads(out.read_text())

    result = run([*entries, dict(entries[0]), {**entries[0], "scene_index": "abc"}])
    assert result["errors"][:3] == [
        "video 1: scene_index 0 given twice (first by video 0); skipped, its questions not counted again",
        "video 2: 'scene_index' must be a video index (a whole number >= 0), got 'abc'",
        "video 2, question 0: its video could not be read"]
    counted = result["counts"]["descriptive"] + sum(result["counts"][f"{t}_per_question"]
                                                    for t in ("explanatory", "predictive", "counterfactual"))
    assert counted == 2 * once  # video 0 once, and the unreadable entry's questions counted wrong
    assert run([*entries, {**entries[0], "scene_index": -1}])["errors"][0] == (
        "video 1: 'scene_index' must be a video index (a whole number >= 0), got -1")
    # its digits as text name the same video
    assert run([*entries, {**entries[0], "scene_index": "0"}])["errors"][0].startswith("video 1: scene_index 0 given twice")


def test_an_option_whose_answer_is_no_label_is_named_not_scored_wrong_in_silence(folder, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    entries = json.loads((changed / "validation.json").read_text())
    mc = next(q for q in entries[0]["questions"] if q["question_type"] == "counterfactual")
    mc["choices"][1]["answer"] = "maybe"
    (changed / "validation.json").write_text(json.dumps(entries))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--perception", "gt",
                     "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == [f"video 0, question {mc['question_id']}: choice 1: 'answer' must be one of "
                                "['correct', 'wrong'], got 'maybe'"]
    assert result["wrong"]["counterfactual"] == [[entries[0]["scene_index"], mc["question_id"]]]


def test_an_unknown_program_function_is_named_with_its_token_question_and_video(folder, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    entries = json.loads((changed / "validation.json").read_text())
    q = next(q for q in entries[0]["questions"] if q["question_type"] == "descriptive")
    q["program"][1] = "audit4"
    (changed / "validation.json").write_text(json.dumps(entries))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(changed), "--split", "val", "--perception", "gt",
                     "--dynamics", "gt", "--parser", "gt", "--out", str(out), "--quiet"]) == 0
    errors = json.loads(out.read_text())["errors"]
    assert len(errors) == 1
    assert errors[0].startswith(f"video 0, question {q['question_id']}: program: unknown function 'audit4' at token 1; ")


def test_an_unknown_part_names_the_registered_choices(folder, capsys):
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--dynamics", "propnett"]) == 2
    assert "video dynamics" in capsys.readouterr().err


@pytest.mark.slow
def test_rollout_flags_reach_the_learned_dynamics(folder, tmp_path):
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--dynamics", "propnet",
                     "--future-ensemble", "3", "--future-votes", "2", "--future-shift", "0.01", "--future-tolerance",
                     "0.02", "--future-approach", "0.3", "--future-fit", "6", "--unknown-yaw-reach", "0.315", "--yaw-discs", "cubes", "--yaw-input", "zeros", "--threads", "1",
                     "--out", str(out),
                     "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["future_ensemble"] == 3 and result["config"]["future_approach"] == 0.3
    assert result["config"]["future_fit"] == 6 and result["config"]["unknown_yaw_reach"] == 0.315
    assert result["config"]["yaw_discs"] == "cubes" and result["config"]["yaw_input"] == "zeros"
    assert result["errors"] == [] and result["counts"]["predictive_per_option"] > 0


def test_rollout_flag_choices_are_the_rollout_configs_own_lists():
    """A flag's choices are read from the RolloutConfig's list, not written again (two were copies)."""
    import dataclasses

    from physics.models import video_propnet as vp

    own = {"carry_scope": vp.CARRY_SCOPES, "lookahead_scope": vp.CARRY_SCOPES, "near_miss_scope": vp.CARRY_SCOPES,
           "yaw_discs": vp.YAW_DISCS, "yaw_input": vp.YAW_INPUTS, "free_slide": vp.FREE_SLIDES,
           "heading_hold": vp.HEADING_HOLDS}
    chosen = {f.metadata["setting"]: f.metadata["choices"] for f in dataclasses.fields(ClevrerEvalConfig)
              if "setting" in f.metadata and "choices" in f.metadata}
    assert chosen.keys() == own.keys()
    assert all(chosen[k] is own[k] for k in own), [k for k in own if chosen[k] is not own[k]]


def test_the_question_types_are_one_list_read_by_the_generator_the_parser_and_the_evaluation():
    """The multiple-choice types were written in three modules and the four types in four places."""
    import dataclasses

    import benchmarks.eval_clevrer as ec
    import reasoning.parser.video as video_parser
    import reasoning.questions.clevrer as questions

    assert questions.MC_TYPES == questions.QUESTION_TYPES[1:] and "descriptive" not in questions.MC_TYPES
    assert ec.MC_TYPES is video_parser.MC_TYPES is questions.MC_TYPES
    types = next(f for f in dataclasses.fields(ClevrerEvalConfig) if f.name == "types")
    assert types.default is types.metadata["choices"] is questions.QUESTION_TYPES


def test_yaw_input_flag_maps_to_the_rollout_setting_and_refuses_other_values(capsys):
    assert ClevrerEvalConfig(data="x", yaw_input="zeros").rollout_settings() == {"yaw_input": "zeros"}
    with pytest.raises(SystemExit):
        cli.main(["eval", "clevrer", "--data", "x", "--yaw-input", "fitted"])
    assert "yaw-input" in capsys.readouterr().err


def test_yaw_discs_flag_maps_to_the_rollout_setting_and_refuses_other_values(capsys):
    cfg = ClevrerEvalConfig(data="x", yaw_discs="cubes")
    assert cfg.rollout_settings() == {"yaw_discs": "cubes"}
    assert ClevrerEvalConfig(data="x").rollout_settings() == {}
    with pytest.raises(SystemExit):
        cli.main(["eval", "clevrer", "--data", "x", "--yaw-discs", "all"])
    assert "yaw-discs" in capsys.readouterr().err


def test_counterfactual_velocity_fit_flag_maps_to_the_rollout_setting_and_is_a_pixel_default_only():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--counterfactual-velocity-fit", "12"])
    assert args.counterfactual_velocity_fit == 12
    assert ClevrerEvalConfig(data="x", counterfactual_velocity_fit=12).rollout_settings() == {
        "counterfactual_velocity_fit": 12}
    assert "counterfactual_velocity_fit" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert rollout_settings_for("model", "propnet")["counterfactual_velocity_fit"] == 12  # a pixel default
    assert "counterfactual_velocity_fit" not in rollout_settings_for("gt", "propnet")  # true annotations: off
    with pytest.raises(ConfigError, match="counterfactual_velocity_fit"):
        dynamics_for("propnet", None, {"counterfactual_velocity_fit": 3})


def test_counterfactual_reach_flag_maps_to_the_rollout_setting_is_off_unless_given_and_a_bad_value_is_refused():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--counterfactual-reach", "0.05"])
    assert args.counterfactual_reach == 0.05
    assert ClevrerEvalConfig(data="x", counterfactual_reach=0.05).rollout_settings() == {"counterfactual_reach": 0.05}
    assert "counterfactual_reach" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "counterfactual_reach" not in rollout_settings_for("model", "propnet")  # not a default
    assert "counterfactual_reach" not in (rollout_settings_for("gt", "propnet") or {})
    dynamics_for("propnet", None, {"counterfactual_reach": 0.05})  # accepted
    with pytest.raises(ConfigError, match="counterfactual_reach"):
        dynamics_for("propnet", None, {"counterfactual_reach": -0.1})


def test_counterfactual_fit_residual_flag_maps_to_the_rollout_setting_and_is_off_unless_given():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--counterfactual-fit-residual", "0.04"])
    assert args.counterfactual_fit_residual == 0.04
    assert ClevrerEvalConfig(data="x", counterfactual_fit_residual=0.04).rollout_settings() == {
        "counterfactual_fit_residual": 0.04}
    assert "counterfactual_fit_residual" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "counterfactual_fit_residual" not in rollout_settings_for("model", "propnet")  # not a default
    settings = rollout_settings_for("model", "propnet", {"counterfactual_fit_residual": 0.04})
    assert settings["counterfactual_fit_residual"] == 0.04 and settings["counterfactual_velocity_fit"] == 12
    dynamics_for("propnet", None, settings)  # accepted with the pixel default's fit
    with pytest.raises(ConfigError, match="counterfactual_fit_residual"):
        dynamics_for("propnet", None, {"counterfactual_fit_residual": -1.0, "counterfactual_velocity_fit": 12})


def test_spin_input_flag_reaches_the_rollout_config_and_is_off_unless_given(folder, tmp_path, monkeypatch):
    assert ClevrerEvalConfig(data="x", spin_input=True).rollout_settings() == {"spin_input": True}
    assert "spin_input" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert ClevrerEvalConfig(data="x", future_velocity_fit=12).rollout_settings() == {"start_velocity_fit": 12}
    assert "start_velocity_fit" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert ClevrerEvalConfig(data="x", late_collision_start=2).rollout_settings() == {"late_collision_start": 2}
    assert "late_collision_start" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--late-collision-start", "2"]).late_collision_start == 2
    import physics.models.video_propnet as vp
    seen = []
    load = vp.PropNetVideoDynamics.load.__func__

    def spy(cls, *args, **kwargs):
        provider = load(cls, *args, **kwargs)
        seen.append(provider.config.spin_input)
        return provider

    monkeypatch.setattr(vp.PropNetVideoDynamics, "load", classmethod(spy))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--dynamics", "propnet",
                     "--types", "counterfactual", "--spin-input", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["config"]["spin_input"] is True and seen and all(seen)
    seen.clear()
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--dynamics", "propnet",
                     "--types", "counterfactual", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    assert seen and not any(seen)


@pytest.mark.parametrize("flag,setting", [("future_edge", "edge_frames"), ("contact_carry", "contact_carry"),
                                          ("lookahead", "lookahead")])
def test_frame_count_flags_map_to_their_rollout_settings_and_a_bad_value_is_refused_by_name(flag, setting):
    assert ClevrerEvalConfig(data="x", **{flag: 2}).rollout_settings() == {setting: 2}
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--" + flag.replace("_", "-"), "3"])
    assert getattr(args, flag) == 3
    with pytest.raises(ConfigError, match=setting):
        dynamics_for("propnet", None, {setting: -1})


def test_carry_scope_flag_maps_to_the_rollout_setting_and_refuses_other_values(capsys):
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--contact-carry", "3", "--carry-scope", "future"])
    assert args.carry_scope == "future"
    assert ClevrerEvalConfig(data="x", contact_carry=3, carry_scope="future").rollout_settings() == {
        "contact_carry": 3, "carry_scope": "future"}
    with pytest.raises(SystemExit):
        cli.main(["eval", "clevrer", "--data", "x", "--carry-scope", "counterfactual"])
    assert "carry-scope" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="carry_scope"):
        dynamics_for("propnet", None, {"carry_scope": "past"})


def test_lookahead_scope_flag_maps_to_the_rollout_setting_and_refuses_other_values(capsys):
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--lookahead", "3", "--lookahead-scope", "future"])
    assert (args.lookahead, args.lookahead_scope) == (3, "future")
    assert ClevrerEvalConfig(data="x", lookahead=3, lookahead_scope="future").rollout_settings() == {
        "lookahead": 3, "lookahead_scope": "future"}
    with pytest.raises(SystemExit):
        cli.main(["eval", "clevrer", "--data", "x", "--lookahead-scope", "past"])
    assert "lookahead-scope" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="lookahead_scope"):
        dynamics_for("propnet", None, {"lookahead_scope": "past"})


def test_near_miss_flags_map_to_the_rollout_settings_and_bad_values_are_refused_by_name(capsys):
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--near-miss", "-1.5", "-20", "2", "0", "0.5",
                                          "--near-miss-scope", "future"])
    cfg = config_from_args(ClevrerEvalConfig, args)
    assert cfg.rollout_settings() == {"near_miss": (-1.5, -20.0, 2.0, 0.0, 0.5), "near_miss_scope": "future"}
    assert "near_miss" not in ClevrerEvalConfig(data="x").rollout_settings()
    with pytest.raises(ConfigError, match="near_miss"):
        dynamics_for("propnet", None, {"near_miss": (1.0, 2.0)})
    with pytest.raises(SystemExit):
        cli.main(["eval", "clevrer", "--data", "x", "--near-miss-scope", "past"])
    assert "near-miss-scope" in capsys.readouterr().err


def test_a_pixel_perceiver_gets_edge_frames_2_and_the_future_carry_unless_given_and_true_annotations_none(folder, monkeypatch):
    import benchmarks.eval_clevrer as ec
    from physics.models.video_propnet import PropNetVideoDynamics

    seen = []
    real_future = PropNetVideoDynamics.future

    def future(self, annotation, frames):  # records the rollout settings each future is asked with
        seen.append((self.config.edge_frames, self.config.contact_carry, self.config.carry_scope,
                     self.config.start_velocity_fit))
        return real_future(self, annotation, frames)

    monkeypatch.setattr(PropNetVideoDynamics, "future", future)
    # the pixel perceiver stood in by the annotation reader: the settings follow the perceiver's name
    monkeypatch.setattr(ec, "perception_for", lambda *a, **k: lambda video: read_annotation(video.annotation))
    monkeypatch.setattr(ec, "check_split_folder", lambda *a: None)  # the stand-in reads no frames folder

    def run(**kw):
        cfg = ClevrerEvalConfig(data=str(folder), split="val", dynamics="propnet", types=("predictive",), threads=1, **kw)
        return ec.evaluate_clevrer(cfg, progress=False)

    pixels = {"edge_frames": 2, "contact_carry": 3, "carry_scope": "future", "start_velocity_fit": 12,
              "counterfactual_velocity_fit": 12, "future_reach": 0.15}
    assert run(perception="model")["rollout_settings"] == pixels and seen[-1] == (2, 3, "future", 12)
    assert run(perception="model", future_edge=0, contact_carry=0, future_velocity_fit=0)["rollout_settings"] == {
        **pixels, "edge_frames": 0, "contact_carry": 0, "start_velocity_fit": 0} and seen[-1] == (0, 0, "future", 0)
    assert run(perception="gt")["rollout_settings"] == {} and seen[-1] == (0, 0, "all", 0)
    assert rollout_settings_for("model", "gt") == {}  # the world's re-simulation takes no rollout settings


def test_types_answers_only_the_question_types_named(folder, tmp_path):
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--types", "predictive", "counterfactual",
                     "--out", str(out), "--quiet"]) == 0
    counts = json.loads(out.read_text())["counts"]
    assert counts["predictive_per_question"] > 0 and counts["counterfactual_per_question"] > 0
    assert counts["descriptive"] == 0 and counts["explanatory_per_question"] == 0
    with pytest.raises(SystemExit):  # argparse names the choices
        cli.main(["eval", "clevrer", "--data", str(folder), "--types", "predictiv"])


def test_rollout_flags_are_refused_where_they_mean_nothing(folder, capsys):
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--dynamics", "gt",
                     "--future-ensemble", "3", "--quiet"]) == 2
    assert "no rollout settings" in capsys.readouterr().err
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--dynamics", "propnet",
                     "--future-ensemble", "2", "--future-votes", "3", "--quiet"]) == 2
    assert "votes" in capsys.readouterr().err


def test_checkpoints_are_read_before_the_first_video_and_refused_where_nothing_reads_them(folder, tmp_path, capsys):
    """A corrupt --dynamics-checkpoint with true annotations failed every video and the run ended at 0% (exit 0);
    a checkpoint given with a gt part was ignored."""
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--perception", "gt", "--dynamics",
                     "propnet", "--dynamics-checkpoint", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"dynamics checkpoint {bad} is corrupt" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    for part in ("perception", "dynamics", "parser"):
        assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--perception", "gt", "--dynamics",
                         "gt", "--parser", "gt", f"--{part}-checkpoint", str(bad), "--quiet"]) == 2
        assert f"--{part}-checkpoint is read by a learned --{part}, not --{part} gt" in capsys.readouterr().err


def test_a_thread_count_below_one_is_refused_by_name(folder, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused as argparse parses it
        cli.main(["eval", "clevrer", "--data", str(folder), "--threads", "0"])
    assert exit_info.value.code == 2 and "argument --threads: must be an integer >= 1, got '0'" in capsys.readouterr().err


def test_answer_about_a_video_reads_the_checkpoint_it_is_given(folder, tmp_path, capsys):
    # --checkpoint was never read with --video: a corrupt file (or one given with --dynamics gt) passed without
    # a word, even though a descriptive question needs no rollout
    from physics.models.video_propnet import SHIPPED_CHECKPOINT

    annotation = str(folder / "annotation_val" / "annotation_00000.json")
    program = ["--program", "objects count"]
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(range(256)) * 8)
    assert cli.main(["answer", "--video", annotation, "--dynamics", "propnet", "--checkpoint", str(corrupt), *program]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(corrupt) in err and "corrupt" in err
    assert cli.main(["answer", "--video", annotation, "--checkpoint", str(corrupt), *program]) == 2
    assert "--dynamics gt re-plays the world and reads none" in capsys.readouterr().err
    assert cli.main(["answer", "--video", annotation, "--perceiver", "derender-blender", *program]) == 2
    assert "--perceiver reads an --image" in capsys.readouterr().err
    assert cli.main(["answer", "--video", annotation, "--dynamics", "propnet", "--checkpoint", str(SHIPPED_CHECKPOINT),
                     *program]) == 0
    assert "answer: " in capsys.readouterr().out


def test_answer_prints_program_trace_and_answer_for_a_video(folder, capsys):
    annotation = folder / "annotation_val" / "annotation_00000.json"
    assert cli.main(["answer", "--video", str(annotation), "--program", "events objects filter_collision count"]) == 0
    printed = capsys.readouterr().out
    collisions = len(json.loads(annotation.read_text())["collision"])  # every observed collision, once
    assert collisions >= 1
    assert "count(filter_collision(events(), objects()))" in printed and f"answer: {collisions}" in printed
    assert "filter_collision" in printed.splitlines()[-2]  # the trace table's rows
    q = next(q for q in json.loads((folder / "validation.json").read_text())[0]["questions"] if "choices" in q)
    assert cli.main(["answer", "--video", str(folder), "--index", "0", "--question", q["question"],
                     "--choice", "0", "--video-parser", "gt", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == {"correct": "yes", "wrong": "no"}[q["choices"][0]["answer"]]
    assert out["tokens"] == q["choices"][0]["program"] + q["program"]
    assert cli.main(["answer", "--video", str(folder), "--index", "0", "--question", "Why?",
                     "--video-parser", "gt"]) == 2
    assert "reads stored questions only" in capsys.readouterr().err


def test_truth_dynamics_speaks_a_perceivers_ids(folder):
    """--perception model --dynamics gt: the truth is renumbered through the objects' attributes."""
    from dataclasses import replace

    from physics.worlds.clevrer_annotation import read_annotation
    from physics.worlds.clevrer_truth import read_truth
    from reasoning.nsdr import VideoFiles, dynamics_for

    files = VideoFiles.in_folder(folder, "val", 0)
    true = read_annotation(files.annotation)
    ids = [p.object_id for p in true.object_property]
    perm = dict(zip(ids, [*ids[1:], ids[0]], strict=True))  # the perceiver numbered the objects otherwise
    perceived = replace(true, object_property=tuple(replace(p, object_id=perm[p.object_id])
                                                    for p in true.object_property))
    provider = dynamics_for("gt")(files, perceived)
    truth = read_truth(files.truth)
    cf = provider.counterfactual(perceived, perm[ids[0]])
    assert cf.removed_object_id == perm[ids[0]]
    assert [sorted(c.object_ids) for c in cf.collisions] == [
        sorted(perm[i] for i in c.object_ids) for c in truth.counterfactual(ids[0]).collisions]
    states, _ = provider.future(perceived, 5)
    assert {o.object_id for o in states[0].objects} == {perm[o.object_id] for o in truth.future_trajectory[0].objects}
    assert dynamics_for("gt")(files, true).counterfactual(true, ids[0]) == truth.counterfactual(ids[0])  # same ids: as is


def test_perception_settings_and_cache_are_refused_by_name_where_wrong(folder, capsys):
    base = ["eval", "clevrer", "--data", str(folder), "--split", "val", "--quiet"]
    for settings, said in ((["bogus=1"], "KEY=VALUE"), (["cube_settle=nan"], "finite"), (["cube_settle=-2"], "cube_settle"),
                           (["track_height=x"], "not a number")):
        assert cli.main([*base, "--perception", "model", "--perception-set", *settings]) == 2
        assert said in capsys.readouterr().err
    assert cli.main([*base, "--perception-set", "cube_settle=0"]) == 2  # --perception gt (the default)
    assert "not --perception gt" in capsys.readouterr().err
    assert cli.main([*base, "--perception-cache", "somewhere"]) == 2
    assert "not --perception gt" in capsys.readouterr().err


def test_coast_ride_is_a_perception_setting_off_by_default_and_refused_by_name(folder, capsys):
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--perception", "model",
                                          "--perception-set", "coast_ride=1"])
    assert perception_config(args.perception_set).coast_ride == 1
    assert perception_config(()).coast_ride == 0  # off by default
    base = ["eval", "clevrer", "--data", str(folder), "--split", "val", "--quiet", "--perception", "model"]
    for settings, said in ((["coast_ride=2"], "coast_ride must be 0"),
                           (["coast_ride=1", "coast_stop=0"], "coast_ride 1 needs coast_stop 1")):
        assert cli.main([*base, "--perception-set", *settings]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err


def test_perception_set_given_twice_adds_its_settings_not_replaces_them():
    """``--perception-set a=1 --perception-set b=2`` ran with b=2 alone, a=1 dropped without a word (argparse's store)."""
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--perception", "model",
                                          "--perception-set", "cube_settle=0", "--perception-set", "rest_votes=2", "border=3"])
    assert args.perception_set == ["cube_settle=0", "rest_votes=2", "border=3"]
    assert cli.build_parser().parse_args(["eval", "clevrer", "--data", "x"]).perception_set == ()  # the field's default, as given


@pytest.mark.parametrize(("settings", "says"), [
    (["cube_settle=0", "cube_settle=1"], "--perception-set 'cube_settle=1': cube_settle given twice; give each "
                                         "setting once"),  # the later one won without a word
    (["cube_settle"], "--perception-set 'cube_settle': not KEY=VALUE; expected KEY=VALUE with KEY one of "),
    (["bogus=1"], "--perception-set 'bogus=1': unknown key 'bogus'; expected KEY=VALUE with KEY one of "),
    (["track_height=x"], "--perception-set 'track_height=x': 'x' is not a number"),
])
def test_a_bad_perception_setting_names_the_flag_and_the_item(folder, capsys, settings, says):
    base = ["eval", "clevrer", "--data", str(folder), "--split", "val", "--quiet", "--perception", "model"]
    assert cli.main([*base, "--perception-set", *settings]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert cli.main([*base, *(w for s in settings for w in ("--perception-set", s))]) == 2  # one flag per setting
    assert says in capsys.readouterr().err


def test_missing_collision_defaults_to_out_of_view_and_a_bad_one_is_refused_by_name():
    from benchmarks.eval_clevrer import ClevrerEvalConfig
    from physics.errors import ConfigError

    assert ClevrerEvalConfig(data="d").missing_collision == "out_of_view"
    assert ClevrerEvalConfig(data="d", missing_collision="none").missing_collision == "none"
    with pytest.raises(ConfigError, match="missing_collision"):
        ClevrerEvalConfig(data="d", missing_collision="always")


def test_repeated_collision_defaults_to_first_and_a_bad_one_is_refused_by_name():
    from benchmarks.eval_clevrer import ClevrerEvalConfig
    from physics.errors import ConfigError

    assert ClevrerEvalConfig(data="d").repeated_collision == "first"
    assert ClevrerEvalConfig(data="d", repeated_collision="none").repeated_collision == "none"
    with pytest.raises(ConfigError, match="repeated_collision"):
        ClevrerEvalConfig(data="d", repeated_collision="last")


def test_unique_fallback_defaults_to_most_seen_and_a_bad_one_is_refused_by_name():
    from benchmarks.eval_clevrer import ClevrerEvalConfig
    from physics.errors import ConfigError

    assert ClevrerEvalConfig(data="d").unique_fallback == "most_seen"
    assert ClevrerEvalConfig(data="d", unique_fallback="none").unique_fallback == "none"
    with pytest.raises(ConfigError, match="unique_fallback"):
        ClevrerEvalConfig(data="d", unique_fallback="first")


def test_a_missing_split_names_the_splits_the_folder_holds(tmp_path, capsys):
    (tmp_path / "annotation_val").mkdir()  # what `nesy data clevrer --split val` makes; the commands default otherwise
    assert cli.main(["data", "clevrer-questions", "--data", str(tmp_path)]) == 2  # --split train by default
    assert f"annotation_train ({tmp_path} holds split val: --split val)" in capsys.readouterr().err
    assert cli.main(["eval", "clevrer", "--data", str(tmp_path), "--split", "test"]) == 2
    assert f"test.json ({tmp_path} holds split val: --split val)" in capsys.readouterr().err
    assert cli.main(["eval", "clevrer", "--data", str(tmp_path)]) == 2  # the split is there, its questions are not
    assert f"(make them: nesy data clevrer-questions --data {tmp_path} --split val)" in capsys.readouterr().err


def test_predictive_pick_reaches_predictive_questions_only_is_off_by_default_and_refuses_bad_values(folder, tmp_path,
                                                                                                      monkeypatch):
    assert ClevrerEvalConfig(data="x").predictive_pick == "none"  # the official executor's judging
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--predictive-pick", "none"])
    assert args.predictive_pick == "none"  # the official executor's per-option judging
    assert cli.build_parser().parse_args(["eval", "clevrer", "--data", "x"]).predictive_pick == "none"
    with pytest.raises(ConfigError, match="predictive_pick must be one of none, closest"):
        ClevrerEvalConfig(data="x", predictive_pick="nearest")
    import benchmarks.eval_clevrer as ev
    seen = []
    judge = ev.judge_choices

    def spy(choices, question, scene, pick="none"):
        seen.append((tuple(question), pick))
        return judge(choices, question, scene, pick)

    monkeypatch.setattr(ev, "judge_choices", spy)
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--perception", "gt", "--dynamics", "gt",
                     "--parser", "gt", "--predictive-pick", "closest", "--out", str(out), "--quiet"]) == 0
    picks = {pick for question, pick in seen if question[0] == "unseen_events"}
    others = {pick for question, pick in seen if question[0] != "unseen_events"}
    assert picks == {"closest"} and others == {"none"}  # explanatory and counterfactual options judged alone
    result = json.loads(out.read_text())
    assert result["config"]["predictive_pick"] == "closest"
    assert all(result["accuracy"][m] == 1.0 for m in METRICS if result["counts"][m])  # right answers stay right


def test_future_edge_tolerance_flag_maps_to_the_rollout_setting_is_off_by_default_and_a_bad_value_is_refused_by_name():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--future-edge-tolerance", "0.01"])
    assert args.future_edge_tolerance == 0.01
    assert ClevrerEvalConfig(data="x", future_edge_tolerance=0.01).rollout_settings() == {"edge_tolerance": 0.01}
    assert "edge_tolerance" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "edge_tolerance" not in rollout_settings_for("model", "propnet")  # not a pixel default
    with pytest.raises(ConfigError, match="edge_tolerance"):
        dynamics_for("propnet", None, {"edge_tolerance": -0.01})


def test_future_reach_flag_maps_to_the_rollout_setting_is_a_pixel_default_and_a_bad_value_is_refused_by_name():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--future-reach", "0.15"])
    assert args.future_reach == 0.15
    assert ClevrerEvalConfig(data="x", future_reach=0.15).rollout_settings() == {"future_reach": 0.15}
    assert "future_reach" not in ClevrerEvalConfig(data="x").rollout_settings()
    # a pixel default (docs/results/clevrer.md, nsdr11); true annotations keep it off
    assert rollout_settings_for("model", "propnet")["future_reach"] == 0.15
    assert "future_reach" not in (rollout_settings_for("gt", "propnet") or {})
    assert ClevrerEvalConfig(data="x", future_reach=0.0).rollout_settings() == {"future_reach": 0.0}  # turns it off
    with pytest.raises(ConfigError, match="future_reach"):
        dynamics_for("propnet", None, {"future_reach": -0.1})


def test_free_slide_flags_map_to_the_rollout_settings_are_off_by_default_and_bad_values_are_refused_by_name():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--free-slide", "spheres",
                                          "--free-slide-clearance", "0.3"])
    assert (args.free_slide, args.free_slide_clearance) == ("spheres", 0.3)
    assert ClevrerEvalConfig(data="x", free_slide="all").rollout_settings() == {"free_slide": "all"}
    assert "free_slide" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "free_slide" not in rollout_settings_for("model", "propnet")  # an option, not a pixel default
    with pytest.raises(SystemExit):  # argparse refuses a mode it does not know
        cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--free-slide", "cubes"])
    with pytest.raises(ConfigError, match="free_slide"):
        dynamics_for("propnet", None, {"free_slide": "cubes"})
    with pytest.raises(ConfigError, match="free_slide_clearance"):
        dynamics_for("propnet", None, {"free_slide_clearance": 0.0})


def test_late_collision_restitution_flag_maps_to_the_rollout_setting_is_off_by_default_and_is_refused_alone(
        tmp_path, capsys):
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--late-collision-start", "5",
                                          "--late-collision-restitution", "0.18"])
    assert (args.late_collision_start, args.late_collision_restitution) == (5, 0.18)
    assert ClevrerEvalConfig(data="x", late_collision_restitution=0.18).rollout_settings() == {
        "late_collision_restitution": 0.18}
    assert "late_collision_restitution" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "late_collision_restitution" not in rollout_settings_for("model", "propnet")  # an option, not a pixel default
    dynamics_for("propnet", None, {**rollout_settings_for("model", "propnet"), "late_collision_start": 5,
                                   "late_collision_restitution": 0.18})  # accepted beside the pixel default
    with pytest.raises(ConfigError, match="late_collision_restitution must be"):
        dynamics_for("propnet", None, {"start_velocity_fit": 12, "late_collision_start": 5,
                                       "late_collision_restitution": 1.5})
    # given without --late-collision-start it would change nothing: one line naming the flag, before any video
    rc = cli.main(["bench", "video-dynamics", "--data", str(tmp_path / "missing"), "--dynamics", "propnet",
                   "--late-collision-restitution", "0.18", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "error: --late-collision-restitution 0.18: " in err[0] and "late_collision_start" in err[0], err


def test_a_refused_rollout_setting_names_the_flag_that_gave_it(tmp_path, capsys):
    # the error names the flag the user typed, not the rollout config's field (edge_tolerance)
    from benchmarks.eval_clevrer import RolloutFlags

    rc = cli.main(["bench", "video-dynamics", "--data", str(tmp_path / "missing"), "--dynamics", "propnet",
                   "--future-edge-tolerance", "-1", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--future-edge-tolerance -1.0: RolloutConfig: edge_tolerance must be" in err[0], err
    flags = RolloutFlags(future_edge_tolerance=-1.0, counterfactual_reach=0.1)
    named = flags.name_flag(ConfigError("RolloutConfig: edge_tolerance must be None or a number >= 0, got -1.0",
                                        settings=("edge_tolerance",)))
    assert str(named).startswith("--future-edge-tolerance -1.0: RolloutConfig: edge_tolerance")
    for kept in (ConfigError("--dynamics gt takes no rollout settings, got ['edge_tolerance']"),  # names its flag
                 ConfigError("a checkpoint is damaged")):  # names no setting
        assert flags.name_flag(kept) is kept


def test_future_rest_hold_flag_maps_to_the_rollout_setting_is_off_by_default_and_a_bad_value_is_refused_by_name():
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--future-rest-hold", "0.15"])
    assert args.future_rest_hold == 0.15
    assert ClevrerEvalConfig(data="x", future_rest_hold=0.15).rollout_settings() == {"rest_hold": 0.15}
    assert "rest_hold" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "rest_hold" not in rollout_settings_for("model", "propnet")  # an option, not a pixel default
    with pytest.raises(ConfigError, match="rest_hold"):
        dynamics_for("propnet", None, {"rest_hold": -0.1})


def _bad_rollout_value(f):
    """A value RolloutConfig refuses for RolloutFlags field ``f``, by its annotation."""
    if "choices" in f.metadata:
        return "bogus"
    return {"int | None": -1, "float | None": -1.0, "bool | None": "yes"}.get(str(f.type), (1.0,))  # near_miss: 1 of 5


def test_every_refused_rollout_flag_is_named_from_the_errors_settings_not_its_text():
    # name_flag reads the fields the error carries (its settings), never a regex over the message
    from dataclasses import fields

    from benchmarks.eval_clevrer import RolloutFlags

    for f in fields(RolloutFlags):
        value = _bad_rollout_value(f)
        with pytest.raises(ConfigError) as caught:
            dynamics_for("propnet", None, {f.metadata["setting"]: value})
        assert f.metadata["setting"] in caught.value.settings, (f.name, str(caught.value))
        named = RolloutFlags(**{f.name: value}).name_flag(caught.value)
        assert str(named).startswith(f"--{f.name.replace('_', '-')} "), (f.name, str(named))
        assert named.settings == caught.value.settings
    flags = RolloutFlags(future_edge_tolerance=-1.0, near_miss=(1.0, 2.0))
    by_field = ConfigError("the future rule's touching distance must be >= 0", settings=("edge_tolerance",))
    assert str(flags.name_flag(by_field)) == "--future-edge-tolerance -1.0: the future rule's touching distance must be >= 0"
    in_text_only = ConfigError("RolloutConfig: edge_tolerance must be >= 0")  # the text is never read
    assert flags.name_flag(in_text_only) is in_text_only
    both = ConfigError("two settings", settings=("edge_tolerance", "near_miss"))  # two given flags: which one?
    assert flags.name_flag(both) is both
    assert str(RolloutFlags(near_miss=(1.0, 2.0)).name_flag(both)).startswith("--near-miss 1.0 2.0: two settings")


def test_a_config_errors_settings_survive_pickling_as_a_worker_sends_them():
    import pickle

    err = pickle.loads(pickle.dumps(ConfigError("RolloutConfig: bad", settings=("edge_tolerance",))))
    assert isinstance(err, ConfigError) and str(err) == "RolloutConfig: bad" and err.settings == ("edge_tolerance",)
    assert ConfigError("no fields").settings == ()


def test_a_free_slide_clearance_without_the_free_slide_is_refused_by_its_flag(tmp_path, capsys):
    # --free-slide-clearance 0.3 alone (or with --free-slide off) would run with the value never read
    from benchmarks.eval_clevrer import RolloutFlags

    for extra in ([], ["--free-slide", "off"]):
        rc = cli.main(["bench", "video-dynamics", "--data", str(tmp_path / "missing"), "--dynamics", "propnet",
                       "--free-slide-clearance", "0.3", *extra, "--out", str(tmp_path / "r.json")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert "--free-slide-clearance 0.3: read only by the free slide of future rollouts, which is off" in err[0]
    rc = cli.main(["bench", "video-dynamics", "--data", str(tmp_path / "missing"), "--dynamics", "propnet",
                   "--free-slide-clearance", "0.3", "--free-slide", "spheres", "--out", str(tmp_path / "r.json")])
    assert rc == 2 and "free-slide-clearance" not in capsys.readouterr().err  # read: past the check, to the data
    flags = RolloutFlags(free_slide_clearance=0.3)
    flags.check_read({"free_slide": "all", "free_slide_clearance": 0.3})
    with pytest.raises(ConfigError, match="^--free-slide-clearance 0.3: read only"):
        flags.check_read({"free_slide_clearance": 0.3})  # the provider's default: off
    RolloutFlags().check_read({})  # nothing given, nothing refused


def test_future_edge_unrecorded_flag_maps_to_the_rollout_setting_and_is_off_by_default():
    # --future-edge-unrecorded, an option (not a pixel default)
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--future-edge-unrecorded"])
    assert args.future_edge_unrecorded is True
    assert ClevrerEvalConfig(data="x", future_edge_unrecorded=True).rollout_settings() == {"edge_unrecorded": True}
    assert "edge_unrecorded" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "edge_unrecorded" not in rollout_settings_for("model", "propnet")
    with pytest.raises(ConfigError, match="edge_unrecorded"):
        dynamics_for("propnet", None, {"edge_unrecorded": "yes"})


def test_turn_average_flag_maps_to_the_rollout_setting_is_off_by_default_and_one_turn_is_refused():
    # --turn-average K, an option (not a pixel default)
    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--turn-average", "4"])
    assert args.turn_average == 4
    assert ClevrerEvalConfig(data="x", turn_average=4).rollout_settings() == {"turn_average": 4}
    assert "turn_average" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "turn_average" not in rollout_settings_for("model", "propnet")
    with pytest.raises(ConfigError, match="turn_average must be 0"):
        dynamics_for("propnet", None, {"turn_average": 1})


def test_future_heading_hold_flags_map_to_the_rollout_settings_are_off_by_default_and_a_lone_clearance_is_refused():
    # --future-heading-hold {off,spheres,all} and its clearance, an option (not a pixel default)
    from benchmarks.eval_clevrer import RolloutFlags

    args = cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--future-heading-hold", "spheres",
                                          "--future-heading-hold-clearance", "0.3"])
    assert (args.future_heading_hold, args.future_heading_hold_clearance) == ("spheres", 0.3)
    assert ClevrerEvalConfig(data="x", future_heading_hold="all").rollout_settings() == {"heading_hold": "all"}
    assert "heading_hold" not in ClevrerEvalConfig(data="x").rollout_settings()
    assert "heading_hold" not in rollout_settings_for("model", "propnet")
    with pytest.raises(SystemExit):  # argparse refuses a mode it does not know
        cli.build_parser().parse_args(["eval", "clevrer", "--data", "x", "--future-heading-hold", "cubes"])
    with pytest.raises(ConfigError, match="heading_hold_clearance"):
        dynamics_for("propnet", None, {"heading_hold_clearance": -0.1})
    with pytest.raises(ConfigError, match="^--future-heading-hold-clearance 0.3: read only by the heading hold"):
        RolloutFlags(future_heading_hold_clearance=0.3).check_read({"heading_hold_clearance": 0.3})
    RolloutFlags(future_heading_hold_clearance=0.3).check_read({"heading_hold": "spheres", "heading_hold_clearance": 0.3})
