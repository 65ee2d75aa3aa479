"""The executor's sound operations and the sound-question templates, on a hand-made sounding video.

The video (the one of test_video_ops: 10 observed frames), with sound::

    0 red metal cube          silent
    1 blue rubber sphere      a flute, sounding in frames 2-5
    2 green rubber cylinder   a cello, sounding in frames 7-9
    3 yellow metal sphere     silent

    collisions: (0, 1)@3 (metal takes part: ring), (0, 2)@6 (ring)
"""

from __future__ import annotations

import numpy as np
import pytest

from perception.audio.localise import SoundingEstimate
from physics.errors import ConfigError, DataError
from physics.worlds.clevrer_annotation import Collision, ObjectProperty
from reasoning.dsl import parse_program, to_text
from reasoning.dsl.clevrer_format import from_clevrer_tokens, to_clevrer_tokens
from reasoning.executor.video import execute_video
from reasoning.executor.video_scene import VideoScene
from reasoning.nsdr import VIDEO_PARSERS
from reasoning.parser.sound_questions import SOUND_QUESTION_FORMS, parse_sound_question
from tests.reasoning.test_video_ops import ANNOTATION, OBSERVED, HandMadeDynamics


def _estimate() -> SoundingEstimate:
    sounding = np.zeros((OBSERVED, 4), dtype=bool)
    sounding[2:6, 1] = True
    sounding[7:10, 2] = True
    return SoundingEstimate(sounding, (None, "flute", "cello", None), "hand")


@pytest.fixture
def scene() -> VideoScene:
    return VideoScene(ANNOTATION, HandMadeDynamics(), sound=_estimate())


def run(text: str, scene: VideoScene) -> str | None:
    return execute_video(parse_program(text), scene).answer


def ask(question: str, scene: VideoScene) -> str | None:
    return execute_video(parse_sound_question(question), scene).answer


def test_filter_sounding_at_a_frame_and_over_the_video(scene):
    assert run("describe_objects(filter_sounding(objects(), null()))", scene) == "blue rubber sphere and green rubber cylinder"
    at = "query_frame(filter_order(filter_collision(events(), objects()), {}))"  # frames 3 and 6
    assert run(f"count(filter_sounding(objects(), {at.format('first')}))", scene) == "1"
    assert run(f"describe_objects(filter_sounding(objects(), {at.format('second')}))", scene) == "nothing"
    assert run("exist(filter_sounding(filter_color(objects(), red), null()))", scene) == "no"


def test_filter_sounding_after_an_event(scene):
    first = "filter_order(filter_collision(events(), filter_shape(objects(), cube)), first)"  # (0,1)@3
    assert run(f"describe_objects(filter_sounding_after(objects(), {first}))", scene) == \
        "blue rubber sphere and green rubber cylinder"
    second = "filter_order(filter_collision(events(), filter_shape(objects(), cube)), second)"  # (0,2)@6
    assert run(f"describe_objects(filter_sounding_after(objects(), {second}))", scene) == "green rubber cylinder"


def test_query_sound_of_objects_and_collisions(scene):
    assert run("query_sound(unique(filter_color(objects(), blue)))", scene) == "flute"
    assert run("query_sound(unique(filter_color(objects(), red)))", scene) == "silent"
    assert run("query_sound(filter_order(filter_collision(events(), objects()), first))", scene) == "ring"
    assert all(e.sound == "ring" for e in scene.events if e.kind == "collision")
    assert execute_video(parse_program("query_sound(filter_start(events()))"), scene).valid is False


def test_a_rubber_only_collision_thuds():
    ann = ANNOTATION.__class__(**{**ANNOTATION.__dict__, "object_property": (
        ObjectProperty(0, "red", "rubber", "cube"), *ANNOTATION.object_property[1:]),
        "collision": (Collision((0, 1), 3, (0.0, 0.0, 0.2)),)})
    scene = VideoScene(ann, HandMadeDynamics(), sound=_estimate())
    assert run("query_sound(filter_order(filter_collision(events(), objects()), first))", scene) == "thud"


def test_a_silent_video_has_no_sound_answer():
    silent = VideoScene(ANNOTATION, HandMadeDynamics())
    result = execute_video(parse_program("describe_objects(filter_sounding(objects(), null()))"), silent)
    assert not result.valid and "has no sound" in result.reason
    assert all(e.sound is None for e in silent.events)
    with pytest.raises(DataError, match="covers 3 frames"):
        VideoScene(ANNOTATION, HandMadeDynamics(), sound=SoundingEstimate(np.zeros((3, 4), bool), (None,) * 4))


def test_the_question_templates_give_the_programs_of_their_forms(scene):
    assert ask("Which object is making the sound?", scene) == "blue rubber sphere and green rubber cylinder"
    assert ask("what sound does the blue sphere make", scene) == "flute"
    assert ask("What does the second collision sound like?", scene) == "ring"
    assert ask("Is the green cylinder making a sound?", scene) == "yes"
    assert ask("How many objects are making a sound?", scene) == "2"
    assert ask("What sounds after the cube collides?", scene) == "blue rubber sphere and green rubber cylinder"
    assert len(SOUND_QUESTION_FORMS) == 6
    with pytest.raises(ConfigError, match="no sound-question form"):
        parse_sound_question("What colour is the cube?")


def test_the_templates_parser_is_registered_and_writes_clevrer_tokens():
    parsed = VIDEO_PARSERS.get("templates")(None)({"question": "Which object made the sound?"})
    program = from_clevrer_tokens(list(parsed.program))
    assert to_text(program) == "describe_objects(filter_sounding(objects(), null()))"
    assert tuple(to_clevrer_tokens(program)) == parsed.program
    with pytest.raises(ConfigError, match="no options"):
        VIDEO_PARSERS.get("templates")(None)({"question": "x", "choices": [{"choice": "y"}]})
