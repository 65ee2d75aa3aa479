"""CLEVRER questions on simulated videos: official format, programs that round-trip, balance, determinism.

Two short videos (48 observed + 24 future frames, simulated, not rendered) from
a seed no figure was tuned on.
"""

from __future__ import annotations

import doctest
import importlib
import json
from collections import Counter
from dataclasses import replace

import pytest

from physics.errors import ConfigError, DataError
from physics.video_dynamics import GroundTruthDynamics
from physics.worlds.clevrer_annotation import VideoAnnotation
from physics.worlds.clevrer_truth import VideoTruth, simulate_video
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld
from reasoning.dsl import Catalogue, parse_program, to_text
from reasoning.dsl.clevrer_format import from_clevrer_tokens, to_clevrer_tokens
from reasoning.executor.video import execute_video, judge_choice
from reasoning.executor.video_scene import VideoScene
from reasoning.questions.clevrer import (
    ClevrerQuestionConfig,
    generate_video_questions,
    question_file_name,
)

CONFIG = ClevrerConfig(width=96, height=64, frames=48, future_frames=24)
SEED = 5
DEFAULTS = ClevrerQuestionConfig()


@pytest.fixture(scope="module")
def videos() -> list[tuple[VideoAnnotation, VideoTruth]]:
    world = ClevrerWorld(CONFIG)
    return [simulate_video(world, (SEED, k), k, f"video_{k:05d}.gif") for k in (0, 2)]  # 1: no collision


def _questions(videos, seed: int = 0, config: ClevrerQuestionConfig = DEFAULTS) -> list[dict]:
    return [generate_video_questions(a, VideoScene(a, GroundTruthDynamics(t)), config, seed) for a, t in videos]


def test_entries_have_the_official_keys_and_types(videos):
    entries = _questions(videos)
    types = Counter()
    for entry, (annotation, _) in zip(entries, videos, strict=True):
        assert list(entry) == ["scene_index", "video_filename", "questions"]
        assert entry["scene_index"] == annotation.scene_index
        assert [q["question_id"] for q in entry["questions"]] == list(range(len(entry["questions"])))
        for q in entry["questions"]:
            types[q["question_type"]] += 1
            if q["question_type"] == "descriptive":
                assert set(q) == {"question_id", "question", "question_type", "question_subtype", "program", "answer"}
            else:
                assert set(q) == {"question_id", "question", "question_type", "program", "choices"}
                labels = [c["answer"] for c in q["choices"]]
                assert "correct" in labels and "wrong" in labels  # every option set mixes both
                assert [c["choice_id"] for c in q["choices"]] == list(range(len(labels)))
    assert types["descriptive"] > 0 and types["counterfactual"] > 0
    assert question_file_name("val") == "validation.json" and question_file_name("train") == "train.json"


def test_every_program_round_trips_through_json_tokens_and_text(videos):
    cat = Catalogue.clevrer()
    for entry in json.loads(json.dumps(_questions(videos))):
        for q in entry["questions"]:
            programs = [q["program"]] if "answer" in q else [c["program"] + q["program"] for c in q["choices"]]
            for tokens in programs:
                program = from_clevrer_tokens(tokens)
                assert to_clevrer_tokens(program) == tokens
                assert to_clevrer_tokens(parse_program(to_text(program))) == tokens
                assert cat.check(program) in ("Integer", "Bool", "Color", "Material", "Shape")


def test_answers_agree_with_the_executor_on_the_truth(videos):
    for entry, (annotation, truth) in zip(_questions(videos), videos, strict=True):
        scene = VideoScene(annotation, GroundTruthDynamics(truth))  # a fresh scene: nothing cached from generation
        for q in entry["questions"]:
            if "answer" in q:
                assert execute_video(from_clevrer_tokens(q["program"]), scene).answer == q["answer"], q["question"]
            else:
                for c in q["choices"]:
                    assert judge_choice(c["program"], q["program"], scene)[0] == c["answer"], (q["question"], c)


def test_exist_answers_alternate_and_other_answers_do_not_repeat_within_a_video(videos):
    for entry in _questions(videos, config=ClevrerQuestionConfig(descriptive=10)):
        descriptive = [q for q in entry["questions"] if q["question_type"] == "descriptive"]
        exist = [q["answer"] for q in descriptive if q["question_subtype"] == "exist"]
        assert abs(exist.count("yes") - exist.count("no")) <= 1
        for subtype in ("count", "query_color", "query_material", "query_shape"):
            answers = [q["answer"] for q in descriptive if q["question_subtype"] == subtype]
            assert len(answers) == len(set(answers))


def test_questions_are_a_function_of_the_video_and_seed(videos):
    assert json.dumps(_questions(videos)) == json.dumps(_questions(videos))
    assert json.dumps(_questions(videos, seed=1)) != json.dumps(_questions(videos))


def test_counterfactual_truth_is_the_same_when_simulated_again(videos):
    truth = videos[0][1]
    world = ClevrerWorld(CONFIG)
    for cf in truth.counterfactuals[:2]:
        again = world.simulate(truth.initial_state.without(cf.removed_object_id))
        assert again.collisions == cf.collisions
        assert again.trajectory == cf.trajectory


@pytest.mark.parametrize("name", ["reasoning.questions.clevrer", "reasoning.nsdr"])
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_a_video_with_two_alike_objects_is_refused(videos):
    annotation, truth = videos[0]
    twin = replace(annotation.object_property[1], color=annotation.object_property[0].color,
                   material=annotation.object_property[0].material, shape=annotation.object_property[0].shape)
    alike = replace(annotation, object_property=(annotation.object_property[0], twin, *annotation.object_property[2:]))
    with pytest.raises(DataError, match="looks like another object"):
        generate_video_questions(alike, VideoScene(alike, GroundTruthDynamics(truth)), DEFAULTS)


def test_an_object_never_in_view_is_never_named(videos):
    """Collisions with an object outside the frame happen; questions only name what a viewer saw."""
    from dataclasses import replace

    annotation, truth = videos[0]
    hidden = annotation.collision[0].object_ids[0]  # an object that collides, now never in view
    frames = tuple(replace(f, objects=tuple(replace(o, inside_camera_view=False) if o.object_id == hidden else o
                                            for o in f.objects)) for f in annotation.motion_trajectory)
    unseen = replace(annotation, motion_trajectory=frames)
    entry = generate_video_questions(unseen, VideoScene(unseen, GroundTruthDynamics(truth)),
                                     ClevrerQuestionConfig(descriptive=30, explanatory=4, counterfactual=4), 0)
    assert entry["questions"]
    colour = next(p.color for p in annotation.object_property if p.object_id == hidden)
    assert all(colour not in q["question"] + "".join(c["choice"] for c in q.get("choices", []))
               for q in entry["questions"] if not q.get("answer") == colour)


def test_predictive_questions_have_two_options_one_right_by_default_and_as_many_as_asked_otherwise(videos):
    """CLEVRER's predictive questions have two options; ``predictive_choices`` sets it apart from ``choices``."""
    def options(config):
        return [[c["answer"] for c in q["choices"]] for e in _questions(videos, config=config)
                for q in e["questions"] if q["question_type"] == "predictive"]

    two = options(DEFAULTS)
    assert two and all(sorted(o) == ["correct", "wrong"] for o in two)
    four = options(ClevrerQuestionConfig(predictive_choices=4))
    assert len(four) == len(two) and max(len(o) for o in four) > 2
    assert DEFAULTS.choices_of("predictive") == 2 and DEFAULTS.choices_of("counterfactual") == DEFAULTS.choices
    with pytest.raises(ConfigError, match="predictive_choices"):
        ClevrerQuestionConfig(predictive_choices=1)
