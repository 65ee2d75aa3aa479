"""CLEVRER's operations against a hand-made video whose every event is known.

The video (10 observed frames, 5 future ones)::

    0 red metal cube          in view, at rest until hit by 1 at frame 3, then moving
    1 blue rubber sphere      outside, enters at frame 2 moving, hits 0 at frame 3
    2 green rubber cylinder   in view and at rest throughout; 0 touches it at frame 6
    3 yellow metal sphere     moving to the camera's right from frame 0, leaves at frame 8

    observed: start@0, in(1)@2, collision(0,1)@3, collision(0,2)@6, out(3)@8, end@9
    future:   collision(1,2)@12
    without 0: collision(1,2)@5; without 1: nothing; without 2: collision(0,1)@3;
    without 3: collision(0,1)@3, collision(0,2)@6
"""

from __future__ import annotations

import pytest

from physics.errors import ConfigError
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)
from physics.worlds.clevrer_events import Event
from physics.worlds.clevrer_truth import Counterfactual
from reasoning.dsl import Catalogue, parse_program, to_text
from reasoning.dsl.clevrer_format import from_clevrer_tokens, join_choice, to_clevrer_tokens
from reasoning.dsl.function_table import check_coverage, implemented
from reasoning.errors import ProgramError
from reasoning.executor.video import (
    choice_objects,
    execute_video,
    judge_choice,
    judge_choices,
    one_correct,
)
from reasoning.executor.video_ops import VIDEO_OPS
from reasoning.executor.video_scene import VideoScene

OBSERVED, FUTURE = 10, 5
RIGHT = (0.686, 0.728)  # the default camera's "right" on the floor


def _state(obj: int, frame: int) -> ObjectState | None:
    rest, fast = (0.0, 0.0, 0.0), (1.0, 0.0, 0.0)
    if obj == 0:
        velocity, inside = (rest if frame < 3 else fast), True
    elif obj == 1:
        velocity, inside = fast, frame >= 2
    elif obj == 2:
        velocity, inside = rest, True
    else:
        velocity, inside = (RIGHT[0], RIGHT[1], 0.0), frame < 8
    return ObjectState(obj, (float(obj), 0.0, 0.2), (0.0, 0.0, 0.0), velocity, (0.0, 0.0, 0.0), inside)


def _frames(first: int, last: int, without: int | None = None) -> tuple[FrameStates, ...]:
    return tuple(FrameStates(f, tuple(_state(o, f) for o in range(4) if o != without)) for f in range(first, last))


def _collision(a: int, b: int, frame: int) -> Collision:
    return Collision((a, b), frame, (0.0, 0.0, 0.2))


ANNOTATION = VideoAnnotation(
    scene_index=7,
    video_filename="video_00007.gif",
    object_property=(
        ObjectProperty(0, "red", "metal", "cube"),
        ObjectProperty(1, "blue", "rubber", "sphere"),
        ObjectProperty(2, "green", "rubber", "cylinder"),
        ObjectProperty(3, "yellow", "metal", "sphere"),
    ),
    motion_trajectory=_frames(0, OBSERVED),
    collision=(_collision(0, 1, 3), _collision(0, 2, 6)),
)
COUNTERFACTUAL_COLLISIONS = {0: [(1, 2, 5)], 1: [], 2: [(0, 1, 3)], 3: [(0, 1, 3), (0, 2, 6)]}


class HandMadeDynamics:
    """The future and counterfactuals written above (what a VideoDynamics answers)."""

    asked: list[int]

    def __init__(self) -> None:
        self.asked = []

    def future(self, annotation, frames):
        return _frames(OBSERVED, OBSERVED + min(frames, FUTURE)), (_collision(1, 2, 12),)

    def counterfactual(self, annotation, removed_object_id):
        self.asked.append(removed_object_id)
        cols = tuple(_collision(a, b, f) for a, b, f in COUNTERFACTUAL_COLLISIONS[removed_object_id])
        events = tuple(Event(c.frame_id, "collision", c.object_ids) for c in cols)
        return Counterfactual(removed_object_id, _frames(0, OBSERVED + FUTURE, removed_object_id), cols, events)


@pytest.fixture
def scene() -> VideoScene:
    return VideoScene(ANNOTATION, HandMadeDynamics())


def run(text: str, scene: VideoScene) -> str | None:
    return execute_video(parse_program(text), scene).answer


def ev(text: str, scene: VideoScene) -> list:
    """The rendered output of the program's root (events as kind(objects)@frame)."""
    return execute_video(parse_program(text), scene).trace[-1].output


RED = "unique(filter_color(objects(), red))"
BLUE = "unique(filter_color(objects(), blue))"
GREEN = "unique(filter_color(objects(), green))"
YELLOW = "unique(filter_color(objects(), yellow))"
HIT = f"unique(filter_collision(filter_collision(events(), {RED}), {GREEN}))"  # collision(0, 2)@6


# ---------------------------------------------------------------------- catalogue and table
def test_every_clevrer_operation_has_an_implementation_and_a_signature():
    official = ("objects events unique count exist negate belong_to filter_color filter_material filter_shape "
                "filter_resting filter_moving filter_stationary filter_start filter_end filter_in filter_out "
                "filter_collision filter_order filter_before filter_after query_color query_material query_shape "
                "query_direction query_frame query_object query_collision_partner filter_ancestor unseen_events "
                "all_events counterfact_events filter_counterfact").split()
    cat = Catalogue.clevrer()
    assert set(official) <= set(cat.names)
    assert implemented("CLEVRER-v1.0") == {"video symbolic": frozenset(cat.names)}
    check_coverage(cat)
    assert "video symbolic" not in implemented()  # CLEVR's modes are checked against CLEVR's catalogue
    assert all(VIDEO_OPS[n].inputs == cat.signature(n).inputs for n in cat.names)


def test_a_union_typed_input_accepts_each_alternative_and_refuses_others():
    cat = Catalogue.clevrer()
    assert cat.check(parse_program("count(objects())")) == "Integer"
    assert cat.check(parse_program("count(events())")) == "Integer"
    with pytest.raises(ProgramError, match="input 0 must be ObjectSet|EventSet"):
        cat.check(parse_program("count(null())"))
    with pytest.raises(ProgramError, match="not a Color"):
        cat.check(parse_program("filter_color(objects(), pink)"))


# ---------------------------------------------------------------------- sets and entries
def test_objects_events_count_exist_unique(scene):
    assert ev("objects()", scene) == [0, 1, 2, 3]
    assert ev("events()", scene) == ["start@0", "in(1)@2", "collision(0, 1)@3", "collision(0, 2)@6", "out(3)@8", "end@9"]
    assert run("count(events())", scene) == "6"
    assert run("count(filter_material(objects(), metal))", scene) == "2"
    assert run("exist(filter_shape(objects(), cylinder))", scene) == "yes"
    assert run("exist(filter_shape(filter_color(objects(), red), sphere))", scene) == "no"
    assert run(f"query_shape({BLUE})", scene) == "sphere"
    invalid = execute_video(parse_program("query_color(unique(filter_shape(objects(), sphere)))"), scene)
    assert not invalid.valid and "exactly 1" in invalid.reason


def test_unique_fallback_most_seen_takes_the_object_in_view_longest():
    from dataclasses import replace

    from physics.errors import ConfigError

    strict, lenient = VideoScene(ANNOTATION, HandMadeDynamics()), VideoScene(ANNOTATION, HandMadeDynamics(),
                                                                              unique_fallback="most_seen")
    metal = "query_color(unique(filter_material(objects(), metal)))"  # red cube 10 frames, yellow sphere 8
    assert run(metal, strict) is None
    assert lenient.seen_frames == {0: 10, 1: 8, 2: 10, 3: 8}
    assert run(metal, lenient) == "red"
    assert run("query_color(unique(filter_shape(objects(), sphere)))", lenient) == "blue"  # a tie: the lower id
    assert run(f"query_shape({BLUE})", lenient) == "sphere"  # one object: unchanged
    for empty_or_events in ("query_color(unique(filter_color(objects(), gray)))",
                            "query_frame(unique(filter_collision(events(), " + RED + ")))"):
        result = execute_video(parse_program(empty_or_events), lenient)
        assert not result.valid and "exactly 1" in result.reason
    with pytest.raises(ConfigError, match="unique_fallback"):
        replace(lenient, unique_fallback="first")


def test_missing_collision_out_of_view_presumes_a_named_pair_collision_where_neither_is_seen():
    from dataclasses import replace

    from physics.errors import ConfigError

    # the blue sphere (1) leaves at frame 6, the yellow one (3) at 8: neither is in view at frames 8 and 9
    frames = tuple(replace(fr, objects=tuple(replace(o, inside_camera_view=2 <= fr.frame_id < 6) if o.object_id == 1
                                             else o for o in fr.objects)) for fr in ANNOTATION.motion_trajectory)
    video = replace(ANNOTATION, motion_trajectory=frames)
    strict = VideoScene(video, HandMadeDynamics())
    lenient = VideoScene(video, HandMadeDynamics(), missing_collision="out_of_view")
    pair = f"unique(filter_collision(filter_collision(events(), {BLUE}), {YELLOW}))"
    assert not execute_video(parse_program(pair), strict).valid  # the official executor: no answer
    assert ev(pair, lenient) == "collision(1, 3)@9"  # the last frame at which neither is in view
    assert ev(f"filter_ancestor(events(), {pair})", lenient) == ["in(1)@2", "collision(0, 1)@3", "out(1)@6",
                                                                 "out(3)@8"]
    assert run(f"belong_to({pair}, events())", lenient) == "no"  # not an observed event
    assert ev(HIT, lenient) == "collision(0, 2)@6"  # a collision the video has: unchanged
    assert ev(f"filter_ancestor(events(), {HIT})", lenient) == ["in(1)@2", "collision(0, 1)@3"]
    for still_none in (f"unique(filter_collision(filter_collision(events(), {RED}), {YELLOW}))",  # 0 always seen
                       f"unique(filter_collision(events(), {YELLOW}))",  # one object named
                       f"unique(filter_collision(filter_collision(unseen_events(), {BLUE}), {YELLOW}))",
                       f"unique(filter_collision(filter_collision(filter_after(events(), {HIT}), {BLUE}), {YELLOW}))"):
        result = execute_video(parse_program(still_none), lenient)
        assert not result.valid and "exactly 1" in result.reason, still_none
    assert run(f"count(filter_collision(filter_collision(events(), {BLUE}), {YELLOW}))", lenient) == "0"
    assert run(f"exist(filter_collision(filter_collision(events(), {BLUE}), {YELLOW}))", lenient) == "no"
    with pytest.raises(ConfigError, match="missing_collision"):
        replace(lenient, missing_collision="always")


def test_repeated_collision_first_takes_the_earliest_of_a_named_pairs_several_collisions():
    from dataclasses import replace

    from physics.errors import ConfigError

    # one touch of the red cube (0) and the blue sphere (1) read twice: at 3 (true) and again at 5
    video = replace(ANNOTATION, collision=(_collision(0, 1, 3), _collision(0, 1, 5), _collision(0, 2, 6)))
    strict = VideoScene(video, HandMadeDynamics())
    first = VideoScene(video, HandMadeDynamics(), repeated_collision="first")
    pair = f"unique(filter_collision(filter_collision(events(), {RED}), {BLUE}))"
    result = execute_video(parse_program(pair), strict)
    assert not result.valid and "exactly 1" in result.reason  # the official executor: no answer
    assert ev(pair, first) == "collision(0, 1)@3"
    swapped = f"unique(filter_collision(filter_collision(events(), {BLUE}), {RED}))"
    assert ev(swapped, first) == "collision(0, 1)@3"  # the order the pair is named in does not matter
    assert ev(f"filter_ancestor(events(), {pair})", first) == ["in(1)@2"]
    assert ev(HIT, first) == "collision(0, 2)@6"  # a pair collided once: unchanged
    for still_none in (f"unique(filter_collision(events(), {RED}))",  # one object named: 3 collisions
                       f"unique(filter_collision(events(), {BLUE}))",  # one object named: its 2 collisions
                       f"unique(filter_collision(filter_collision(filter_before(events(), {HIT}), {RED}), {BLUE}))"):
        result = execute_video(parse_program(still_none), first)
        assert not result.valid and "exactly 1" in result.reason, still_none
    assert run(f"count(filter_collision(filter_collision(events(), {RED}), {BLUE}))", first) == "2"
    with pytest.raises(ConfigError, match="repeated_collision"):
        replace(first, repeated_collision="last")


def test_negate_and_belong_to_objects_and_events(scene):
    assert run("negate(exist(objects()))", scene) == "no"
    assert run(f"belong_to({HIT}, events())", scene) == "yes"
    assert run(f"belong_to({YELLOW}, filter_collision(events(), objects()))", scene) == "no"  # 3 never collides
    assert run(f"belong_to({GREEN}, filter_collision(events(), objects()))", scene) == "yes"
    assert run(f"belong_to({YELLOW}, events())", scene) == "yes"  # its out event


# ---------------------------------------------------------------------- object filters
def test_moving_stationary_and_resting_over_the_video_and_at_a_frame(scene):
    start = "query_frame(filter_start(events()))"
    end = "query_frame(filter_end(events()))"
    assert ev("filter_moving(objects(), null())", scene) == [0, 1, 3]
    assert ev("filter_stationary(objects(), null())", scene) == [2]
    assert ev("filter_resting(objects(), null())", scene) == [2]
    assert ev(f"filter_moving(objects(), {start})", scene) == [3]  # 1 is not in view yet
    assert ev(f"filter_stationary(objects(), {start})", scene) == [0, 2]
    assert ev(f"filter_moving(objects(), {end})", scene) == [0, 1]  # 3 has left


# ---------------------------------------------------------------------- event filters
def test_start_end_in_out_collision(scene):
    assert ev("filter_start(events())", scene) == "start@0"
    assert ev("filter_end(events())", scene) == "end@9"
    assert ev(f"filter_in(events(), {BLUE})", scene) == ["in(1)@2"]
    assert ev("filter_in(events(), filter_shape(objects(), sphere))", scene) == ["in(1)@2"]
    assert ev("filter_out(events(), objects())", scene) == ["out(3)@8"]
    assert ev(f"filter_collision(events(), {RED})", scene) == ["collision(0, 1)@3", "collision(0, 2)@6"]
    bad = execute_video(parse_program("filter_start(filter_collision(events(), objects()))"), scene)
    assert not bad.valid


def test_order_before_after(scene):
    collisions = "filter_collision(events(), objects())"
    assert ev(f"filter_order({collisions}, first)", scene) == "collision(0, 1)@3"
    assert ev(f"filter_order({collisions}, second)", scene) == "collision(0, 2)@6"
    assert ev(f"filter_order({collisions}, last)", scene) == "collision(0, 2)@6"
    assert not execute_video(parse_program("filter_order(filter_out(events(), objects()), second)"), scene).valid
    assert ev(f"filter_before(events(), {HIT})", scene) == ["start@0", "in(1)@2", "collision(0, 1)@3"]
    assert ev(f"filter_after(events(), {HIT})", scene) == ["out(3)@8", "end@9"]


# ---------------------------------------------------------------------- queries
def test_queries_of_objects_events_and_partners(scene):
    assert run("query_color(query_object(unique(filter_in(events(), objects()))))", scene) == "blue"
    assert run(f"query_material({YELLOW})", scene) == "metal"
    assert ev(f"query_frame({HIT})", scene) == 6
    assert run(f"query_shape(query_collision_partner({HIT}, {RED}))", scene) == "cylinder"
    assert run(f"query_color(query_collision_partner({HIT}, {GREEN}))", scene) == "red"
    assert not execute_video(parse_program(f"query_collision_partner({HIT}, {BLUE})"), scene).valid
    assert not execute_video(parse_program(f"query_object({HIT})"), scene).valid


def test_query_direction_in_the_image(scene):
    start = "query_frame(filter_start(events()))"
    assert run(f"query_direction({YELLOW}, {start})", scene) == "right"
    stopped = execute_video(parse_program(f"query_direction({GREEN}, {start})"), scene)
    assert not stopped.valid and "no clear direction" in stopped.reason
    assert not execute_video(parse_program(f"query_direction({YELLOW}, null())"), scene).valid


# ---------------------------------------------------------------------- causal, predictive, counterfactual
def test_filter_ancestor_follows_each_objects_previous_event(scene):
    assert ev(f"filter_ancestor(events(), {HIT})", scene) == ["in(1)@2", "collision(0, 1)@3"]
    first = "filter_order(filter_collision(events(), objects()), first)"
    assert ev(f"filter_ancestor(events(), {first})", scene) == ["in(1)@2"]


def test_unseen_and_all_events(scene):
    assert ev("unseen_events()", scene) == ["collision(1, 2)@12"]
    assert ev("all_events()", scene) == [f"collision({a}, {b})" for a, b in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))]
    pair = f"unique(filter_collision(filter_collision(all_events(), {BLUE}), {GREEN}))"
    assert run(f"belong_to({pair}, unseen_events())", scene) == "yes"


def test_counterfactual_events_are_asked_once_per_object(scene):
    assert ev(f"counterfact_events({RED})", scene) == ["collision(1, 2)@5"]
    assert ev(f"counterfact_events({BLUE})", scene) == []
    assert ev(f"filter_counterfact(filter_collision(events(), objects()), {YELLOW})", scene) == [
        "collision(0, 1)@3", "collision(0, 2)@6"]
    assert ev(f"filter_counterfact(filter_collision(events(), objects()), {GREEN})", scene) == ["collision(0, 1)@3"]
    assert ev(f"counterfact_events({RED})", scene) == ["collision(1, 2)@5"]
    assert scene.dynamics.asked == [0, 1, 3, 2]  # each counterfactual simulated once


# ---------------------------------------------------------------------- tokens and options
def test_postfix_tokens_round_trip_and_match_the_official_layout():
    tokens = ["objects", "events", "objects", "red", "filter_color", "unique", "filter_in", "unique",
              "query_frame", "filter_moving", "count"]
    program = from_clevrer_tokens(tokens)
    assert to_text(program) == ("count(filter_moving(objects(), query_frame(unique(filter_in(events(), "
                                "unique(filter_color(objects(), red)))))))")
    assert to_clevrer_tokens(program) == tokens
    assert to_clevrer_tokens(parse_program(to_text(program))) == tokens
    assert to_text(from_clevrer_tokens(["<START>", "objects", "count", "<END>", "<NULL>"])) == "count(objects())"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["objects", "filter_color"], "takes 2 argument"),
        (["red", "objects", "filter_color"], "must be a program"),
        (["objects", "objects", "filter_color"], "must be a literal"),
        (["objects", "objects"], "leave 2 value"),
    ],
)
def test_malformed_tokens_name_the_token(tokens, message):
    with pytest.raises(ProgramError, match=message):
        from_clevrer_tokens(tokens)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["objects", "teleport", "unique"], "unknown function 'teleport' at token 1; known functions are objects, "),
        (["objects", "red", "filter_colr", "count"], "unknown function 'filter_colr' at token 2; did you mean 'filter_color'"),
        (["objects", "count", "audit4"], "unknown function 'audit4' at token 2; "),
    ],
)
def test_an_unknown_function_is_named_with_its_token_not_as_an_odd_literal(tokens, message):
    """A token outside the catalogue and its vocabularies, where a program is needed or left over, is an
    unknown function (it was "argument 0 must be a program, got the literal 'teleport'")."""
    with pytest.raises(ProgramError) as caught:
        from_clevrer_tokens(tokens)
    assert str(caught.value).startswith(f"program: {message}")


def test_a_known_word_where_a_program_is_needed_is_still_called_a_literal():
    with pytest.raises(ProgramError, match=r"token 2 \('unique'\): argument 0 must be a program .*got the literal 'red'"):
        from_clevrer_tokens(["objects", "red", "unique"])


def test_an_unknown_function_in_an_option_is_placed_in_the_choice_or_the_question():
    with pytest.raises(ProgramError, match="^choice: unknown function 'audit4' at token 1 of the choice; "):
        join_choice(["objects", "audit4"], ["objects", "count"])
    with pytest.raises(ProgramError, match="^choice: unknown function 'audit4' at token 0 of the question; "):
        join_choice(["objects"], ["audit4", "count"])


def test_an_option_is_judged_by_its_program_then_the_questions(scene):
    question = ["unseen_events", "belong_to"]

    def pair(a: str, b: str) -> list[str]:
        return ["all_events", "objects", a, "filter_color", "unique", "filter_collision",
                "objects", b, "filter_color", "unique", "filter_collision", "unique"]

    assert judge_choice(pair("blue", "green"), question, scene)[0] == "correct"
    assert judge_choice(pair("red", "green"), question, scene)[0] == "wrong"
    cf = ["objects", "red", "filter_color", "unique", "counterfact_events", "belong_to", "negate"]
    assert judge_choice(pair("blue", "green"), cf, scene)[0] == "wrong"  # it happens without the cube
    verdict, result = judge_choice(["objects", "unique"], question, scene)  # four objects: no answer
    assert verdict is None and not result.valid
    assert to_text(join_choice(pair("blue", "green"), question)).startswith("belong_to(unique(")


# ---------------------------------------------------------------------- options judged together (predictive_pick)
def _pair_tokens(a: str, b: str) -> list[str]:
    return ["all_events", "objects", a, "filter_color", "unique", "filter_collision",
            "objects", b, "filter_color", "unique", "filter_collision", "unique"]


class MovedFuture(HandMadeDynamics):
    """The hand-made video whose future puts the yellow sphere (3) at x = 1.5, over the green cylinder (2)."""

    def future(self, annotation, frames):
        moved = tuple(FrameStates(fr.frame_id, tuple(
            ObjectState(3, (1.5, 0.0, 0.2), o.orientation, o.velocity, o.angular_velocity, o.inside_camera_view)
            if o.object_id == 3 else o for o in fr.objects)) for fr in _frames(OBSERVED, OBSERVED + min(frames, FUTURE)))
        return moved, (_collision(1, 2, 12),)


def test_future_closest_is_a_pairs_smallest_footprint_gap_over_the_future_frames_only(scene):
    # objects k sit at (k, 0): discs of 0.35, the red cube of unknown yaw (zeros) a disc of 0.315
    assert scene.future_closest(1, 2) == pytest.approx(1.0 - 0.70)
    assert scene.future_closest(0, 1) == pytest.approx(1.0 - 0.665)
    assert scene.future_closest(0, 3) == pytest.approx(3.0 - 0.665)
    assert scene.future_closest(2, 9) is None  # no such object in the future
    moved = VideoScene(ANNOTATION, MovedFuture())
    assert moved.future_closest(2, 3) == pytest.approx(0.5 - 0.70)  # overlapping there; 1 apart while observed


def test_one_correct_keeps_one_correct_and_one_wrong_and_otherwise_takes_the_closest_pair():
    assert one_correct(["correct", "wrong"], [5.0, -1.0]) == ["correct", "wrong"]  # the verdicts decide
    assert one_correct(["wrong", "wrong"], [0.4, 0.1]) == ["wrong", "correct"]
    assert one_correct(["correct", "correct"], [-0.01, -0.2]) == ["wrong", "correct"]
    assert one_correct(["wrong", "wrong"], [None, 2.0]) == ["wrong", "correct"]  # a pair not in the future is farthest
    assert one_correct([None, "wrong"], [None, None]) == ["correct", "wrong"]  # no answer: the other's opposite
    assert one_correct(["correct", None], [0.1, 0.0]) == ["correct", "wrong"]
    assert one_correct(["wrong", "wrong"], [None, None]) == ["wrong", "wrong"]  # nothing to rank: unchanged
    assert one_correct([None, None], [None, None]) == [None, None]
    with pytest.raises(ConfigError, match="two options"):
        one_correct(["wrong", "wrong", "wrong"], [0.0, 0.1, 0.2])


def test_judge_choices_closest_reads_two_options_as_one_correct_where_the_verdicts_do_not(scene):
    question = ["unseen_events", "belong_to"]
    assert choice_objects(_pair_tokens("blue", "green"), scene) == (1, 2)
    assert choice_objects(["objects", "unique"], scene) is None  # four objects: no event
    neither = [_pair_tokens("red", "green"), _pair_tokens("green", "yellow")]  # no future collision of either
    assert judge_choices(neither, question, scene) == ["wrong", "wrong"]  # each alone: the official executor
    assert judge_choices(neither, question, scene, "closest") == ["wrong", "correct"]  # (2, 3) 0.3 apart, (0, 2) 1.335
    told = [_pair_tokens("red", "green"), _pair_tokens("blue", "green")]
    assert judge_choices(told, question, scene, "closest") == ["wrong", "correct"]  # the verdicts already tell
    three = [*neither, _pair_tokens("red", "yellow")]
    assert judge_choices(three, question, scene, "closest") == ["wrong", "wrong", "wrong"]  # two options only
    with pytest.raises(ConfigError, match="pick must be one of none, closest"):
        judge_choices(neither, question, scene, "nearest")
