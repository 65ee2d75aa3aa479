"""Data the planner collects: recorded episodes are the world's true steps, in the dynamics data layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physics.control import BoxPushEnv, BoxPushTaskConfig, PlannerConfig, make_planner, run_episode
from physics.control.collect import SplitWriter
from physics.errors import ConfigError, DataError
from physics.graph.builder import GraphBuilder
from physics.models import preset
from physics.models.data import make_samples
from physics.worlds.dynamics import load_split, make_world

TINY = PlannerConfig(horizon=2, samples=6, iterations=1, elites=2)


@pytest.fixture(scope="module")
def env():
    e = BoxPushEnv(BoxPushTaskConfig(max_steps=3))
    yield e
    e.close()


def test_recorded_episode_replays_in_the_world_and_explores_deterministically(env):
    r = run_episode(env, None, make_planner("random", TINY), seed=5, explore=0.3, trajectory=True)
    t = r.trajectory
    assert t.num_steps == 1 + env.config.repeat * r.steps
    assert t.meta["policy"]["planner"] == "random" and t.meta["world"] == "boxes"
    assert not t.actions[-1].any() and np.abs(t.actions[:, env.actuated_node, :2]).max() <= env.action_scale
    world = make_world("boxes")
    world.reset(t.meta["seed"])
    for k in range(t.num_steps - 1):  # the stored actions drive the world through the stored states
        np.testing.assert_allclose(world.state(), t.positions[k], atol=1e-6)
        world.step(t.actions[k].astype(np.float64))
    world.close()
    again = run_episode(env, None, make_planner("random", TINY), seed=5, explore=0.3, trajectory=True).trajectory
    np.testing.assert_array_equal(again.actions, t.actions)
    calm = run_episode(env, None, make_planner("random", TINY), seed=5, trajectory=True).trajectory
    assert not np.array_equal(calm.actions, t.actions)
    with pytest.raises(ConfigError, match="explore"):
        run_episode(env, None, make_planner("random", TINY), seed=5, explore=-1.0)


def test_split_writer_makes_a_training_split_and_resumes(env, tmp_path):
    trajs = [run_episode(env, None, make_planner("random", TINY), seed=s, trajectory=True).trajectory for s in (1, 2)]
    source = {"task": "boxpush", "seed": 3, "planner": "random"}
    writer = SplitWriter(tmp_path, "train", 2, source)
    writer.add(trajs[0])
    with pytest.raises(DataError, match="incomplete"):
        load_split(tmp_path, "train")
    again = SplitWriter(tmp_path, "train", 2, source)  # a resumed run keeps what was written
    assert again.count == 1 and np.array_equal(again.trajectory(0).positions, trajs[0].positions)
    again.add(trajs[1])
    loaded = load_split(tmp_path, "train")
    assert [t.meta["seed"] for t in loaded] == [t.meta["seed"] for t in trajs]
    with pytest.raises(DataError, match="already holds"):
        again.add(trajs[0])
    with pytest.raises(ConfigError, match="another run"):
        SplitWriter(tmp_path, "train", 2, {**source, "seed": 4})
    again.truncate(1)
    assert SplitWriter(tmp_path, "train", 2, source).count == 1
    fewer = SplitWriter(tmp_path, "train", 1, source)  # a run resumed with fewer episodes: complete at once
    fewer.truncate(1)
    assert len(load_split(tmp_path, "train")) == 1
    cfg = preset("boxes", "propnet", node_attr_dim=5, edge_attr_dim=1)
    samples = make_samples(loaded, GraphBuilder(cfg.graph), 8, horizon=4)  # what `nesy train dynamics` builds
    assert len(samples) == 8 and samples[0].target_seq.shape[1] == 4


def test_control_command_records_and_resumes(tmp_path, capsys):
    from benchmarks.cli import main

    args = ["control", "--task", "boxpush", "--model", "gt", "--planner", "random", "--episodes", "2", "--seed", "3",
            "--max-steps", "2", "--explore", "0.2", "--record", str(tmp_path / "d"), "--out", str(tmp_path / "r.json"),
            "--no-gif", "--quiet"]
    assert main(args) == 0
    first = [t.positions for t in load_split(tmp_path / "d", "train")]
    assert len(first) == 2 and json.loads((tmp_path / "r.json").read_text())["settings"]["explore"] == 0.2
    assert main([*args, "--resume"]) == 0  # nothing left to run; the split stays as it was
    assert all(np.array_equal(a, t.positions) for a, t in zip(first, load_split(tmp_path / "d", "train"), strict=True))
    capsys.readouterr()


def test_control_command_takes_the_adaptation_and_side_term_flags(tmp_path, capsys):
    from benchmarks.cli import main

    out = tmp_path / "r.json"
    args = ["control", "--task", "boxpush", "--model", "propnet", "--planner", "cem", "--episodes", "1", "--seed", "3",
            "--max-steps", "2", "--horizon", "2", "--samples", "4", "--iterations", "1", "--adapt", "lead",
            "--side-weight", "1.5", "--approach", "straight", "--out", str(out), "--no-gif", "--quiet"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["planner_config"]["adapt"] == "lead"
    assert result["settings"]["task_config"]["side_weight"] == 1.5
    assert result["settings"]["task_config"]["approach_path"] == "straight"
    assert len(result["per_episode"][0]["adapt_gains_final"]) == 2 * 4  # horizon * repeat lead times
    capsys.readouterr()
    assert main(["control", "--task", "rope", "--model", "gt", "--planner", "random", "--episodes", "1",
                 "--side-weight", "1", "--out", str(tmp_path / "rope.json"), "--no-gif", "--quiet"]) == 2
    assert "--side-weight: task 'rope' has no side term" in capsys.readouterr().err
    assert main(["control", "--task", "rope", "--model", "gt", "--planner", "random", "--episodes", "1",
                 "--approach", "around", "--out", str(tmp_path / "rope.json"), "--no-gif", "--quiet"]) == 2
    assert "--approach: task 'rope' has no approach term" in capsys.readouterr().err
