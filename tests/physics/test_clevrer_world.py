"""CLEVRER-style videos: seeded determinism, counterfactuals, the official rules, a hand-checked collision."""

from __future__ import annotations

import json

import pytest

from physics.errors import ConfigError
from physics.worlds.clevrer_annotation import Collision, FrameStates, ObjectState
from physics.worlds.clevrer_events import Event, derive_events
from physics.worlds.clevrer_truth import simulate_video
from physics.worlds.clevrer_world import (
    ClevrerConfig,
    ClevrerWorld,
    InitialState,
    Simulation,
    VideoObject,
    future_collision_seen,
)

TINY = ClevrerConfig(width=96, height=64, frames=8, future_frames=4)


@pytest.fixture(scope="module")
def world():
    w = ClevrerWorld(TINY)
    yield w
    w.close()


def _video_json(world, seed):
    ann, truth = simulate_video(world, (seed, 0, 1), 1, "video_00001.mp4")
    return json.dumps(ann.to_json()), json.dumps(truth.to_json())


def test_same_seed_gives_the_same_annotation_and_truth_in_a_fresh_or_reused_world(world):
    first = _video_json(world, 5)
    _video_json(world, 6)  # something else in between
    assert _video_json(world, 5) == first
    with ClevrerWorld(TINY) as fresh:
        assert _video_json(fresh, 5) == first
    assert _video_json(world, 6) != first


def test_counterfactual_removes_one_object_deterministically_and_keeps_the_other_ids(world):
    start = world.sample((2, 0, 0))
    removed = start.objects[0].object_id
    cf1 = world.simulate(start.without(removed))
    world.simulate(start)  # the full video in between must not leak into the counterfactual
    cf2 = world.simulate(start.without(removed))
    assert cf1 == cf2
    ids = {o.object_id for o in cf1.trajectory[0].objects}
    assert ids == {o.object_id for o in start.objects} - {removed}
    _, truth = simulate_video(world, (2, 0, 0), 0, "video_00000.mp4")
    assert truth.counterfactual(removed).trajectory == cf1.trajectory
    assert [c.removed_object_id for c in truth.counterfactuals] == [o.object_id for o in start.objects]
    with pytest.raises(ConfigError, match="no object 99"):
        start.without(99)


def test_sampled_videos_follow_clevrer_rules(world):
    for seed in range(6):
        start = world.sample((seed,))
        kinds = [(o.shape, o.color, o.material) for o in start.objects]
        assert len(set(kinds)) == len(kinds), "no two identical objects in a video"
        assert TINY.min_objects <= len(kinds) <= TINY.max_objects
        sim = world.simulate(start, frames=1)
        inside = {o.object_id: o.inside_camera_view for o in sim.trajectory[0].objects}
        entering = [o for o in start.objects if not inside[o.object_id]]
        assert entering, "some objects slide in from outside the view"
        assert all(o.velocity != (0.0, 0.0) for o in entering)
        assert any(inside.values())


def test_two_cubes_sliding_head_on_collide_once_where_and_when_a_hand_calculation_says():
    # cubes of half side 0.35 / sqrt(2) = 0.2475 at x = -/+1.5 move at 5 units/s towards each other;
    # friction decelerates each at mu * g = 4.905: the 2.505 gap closes when 4.905 t^2 - 10 t + 2.505 = 0,
    # t = 0.292 s, between frames 7 (0.28 s) and 8 (0.32 s) at 25 fps; they meet at x = 0.
    start = InitialState((
        VideoObject(0, "red", "rubber", "cube", (-1.5, 0.0), 0.0, (5.0, 0.0), 0),
        VideoObject(1, "blue", "metal", "cube", (1.5, 0.0), 0.0, (-5.0, 0.0), 0),
    ))
    with ClevrerWorld(ClevrerConfig(width=96, height=64, frames=40, future_frames=0)) as w:
        sim = w.simulate(start)
    assert len(sim.collisions) == 1
    hit = sim.collisions[0]
    assert hit.object_ids == (0, 1)
    assert hit.frame_id == 8
    assert abs(hit.location[0]) < 0.05 and abs(hit.location[1]) < 0.05
    events = derive_events(sim.trajectory, sim.collisions)
    assert [(e.kind, e.frame, e.objects) for e in events] == [
        ("start", 0, ()), ("collision", 8, (0, 1)), ("end", 39, ())
    ]
    # after the bounce they separate and stop
    last = sim.trajectory[-1].by_id()
    assert last[0].location[0] < -0.2 and last[1].location[0] > 0.2
    assert max(abs(v) for o in last.values() for v in o.velocity) < 1e-2


def _frame(f, inside):
    zero = (0.0, 0.0, 0.0)
    return FrameStates(f, tuple(ObjectState(k, zero, zero, zero, zero, v) for k, v in inside.items()))


def test_in_and_out_events_follow_the_documented_rule():
    # object 0 enters at 2 and leaves for good at 5; 1 stays in view; 2 leaves at 1, comes back at 3, stays
    seen = [
        {0: False, 1: True, 2: True},
        {0: False, 1: True, 2: False},
        {0: True, 1: True, 2: False},
        {0: True, 1: True, 2: True},
        {0: True, 1: True, 2: True},
        {0: False, 1: True, 2: True},
        {0: False, 1: True, 2: True},
    ]
    events = derive_events([_frame(f, s) for f, s in enumerate(seen)], [Collision((1, 0), 3, (0.0, 0.0, 0.0))], end_frame=4)
    assert events == [
        Event(0, "start"), Event(2, "in", (0,)), Event(3, "in", (2,)), Event(3, "collision", (0, 1)),
        Event(4, "end"), Event(5, "out", (0,)),
    ]


def test_docstring_example_runs():
    import doctest

    import physics.worlds.clevrer_world as module

    assert doctest.testmod(module).failed == 0


def test_reset_and_step_walk_through_the_same_video_that_simulate_records(world):
    sim = world.simulate(world.sample(3))
    assert world.reset(3) == sim.trajectory[0] and world.frame == 0
    states = [world.step() for _ in range(len(sim.trajectory) - 1)]
    assert tuple(states) == sim.trajectory[1:]
    assert world.collisions == sim.collisions


def test_stepping_before_a_video_is_built_is_refused():
    from physics.errors import StateError

    with ClevrerWorld(TINY) as fresh, pytest.raises(StateError, match="reset"):
        fresh.step()


def test_draw_keeps_the_sample_without_a_share_and_redraws_to_the_asked_future_with_one():
    """``future_share`` 1 / 0 asks every video for a future collision between objects seen / for none."""
    size = {"width": 96, "height": 64}  # full 128 + 50 frames: the future must be long enough to hold collisions
    plain = ClevrerWorld(ClevrerConfig(**size))
    wanting = ClevrerWorld(ClevrerConfig(**size, future_share=1.0))
    refusing = ClevrerWorld(ClevrerConfig(**size, future_share=0.0))
    try:
        assert plain.draw((4,)) == (plain.sample((4,)), (4,))
        assert not future_collision_seen(plain.simulate(plain.sample((4,))), 128)  # so the share must redraw
        start, seed = wanting.draw((4,))
        assert seed == (4, 2) and start == plain.sample(seed)  # the kept seed reproduces the video
        assert future_collision_seen(plain.simulate(start), 128)
        assert wanting.draw((4,)) == (start, seed)  # a pure function of the seed
        assert refusing.draw((4,)) == (plain.sample((4,)), (4,))  # the first draw already answers as asked
        start0, seed0 = refusing.draw((0,))
        assert future_collision_seen(plain.simulate(plain.sample((0,))), 128)
        assert seed0 == (0, 1) and not future_collision_seen(plain.simulate(start0), 128)
    finally:
        for w in (plain, wanting, refusing):
            w.close()
    with pytest.raises(ConfigError, match="future_share"):
        ClevrerConfig(future_share=1.5)
    with pytest.raises(ConfigError, match="max_draws"):
        ClevrerConfig(max_draws=0)


def test_future_collision_seen_needs_both_objects_in_view_before_the_cut():
    def frame(f, inside):
        return FrameStates(f, tuple(ObjectState(i, (0.0, 0.0, 0.2), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                                                ok) for i, ok in enumerate(inside)))

    trajectory = (frame(0, (True, True, False)), frame(1, (True, False, False)), frame(2, (True, True, True)))
    late = Collision((0, 1), 2, (0.0, 0.0, 0.2))
    unseen = Collision((0, 2), 2, (0.0, 0.0, 0.2))  # object 2 comes into view only after the cut
    early = Collision((0, 1), 1, (0.0, 0.0, 0.2))
    assert future_collision_seen(Simulation(trajectory, (late,)), 2)
    assert not future_collision_seen(Simulation(trajectory, (unseen, early)), 2)


def test_the_draws_cheap_future_check_answers_as_the_full_simulation():
    """``draw`` asks ``_future_collision_seen`` (no states read back, stops at the first answering collision)."""
    frames = 48
    with ClevrerWorld(ClevrerConfig(width=96, height=64, frames=frames, future_frames=32)) as world:
        answers = []
        for seed in range(8):
            start = world.sample((seed,))
            sim = world.simulate(start)
            answers.append(future_collision_seen(sim, frames))
            assert world._future_collision_seen(start) == answers[-1], seed
        assert world.simulate(start) == sim  # a stopped check leaves nothing behind for the next run
        assert 2 <= sum(answers) <= 6  # both answers were checked
