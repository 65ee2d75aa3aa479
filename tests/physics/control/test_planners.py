"""Planners: each runs a short closed-loop episode; sampling and gradients lower a known cost."""

from __future__ import annotations

import pytest
import torch

from physics.control import (
    PLANNERS,
    BoxPushEnv,
    BoxPushTaskConfig,
    PlannerConfig,
    Problem,
    SimulatorModel,
    make_planner,
    make_planning_model,
    run_episode,
    summarize,
    wilson_interval,
)
from physics.errors import ConfigError

TINY = PlannerConfig(horizon=2, samples=6, iterations=2, grad_steps=2, elites=2, starts=2)


@pytest.fixture(scope="module")
def env():
    e = BoxPushEnv(BoxPushTaskConfig(max_steps=2))
    yield e
    e.close()


@pytest.fixture(scope="module")
def propnet():
    return make_planning_model("propnet", "boxes")


@pytest.mark.parametrize("name", ["grad", "cem", "mppi", "hybrid", "random"])
def test_short_episode_end_to_end_with_each_planner(env, propnet, name):
    result = run_episode(env, propnet, make_planner(name, TINY), seed=11)
    assert result.steps == 2 and len(result.plan_seconds) == 2
    assert result.final_distance >= 0 and result.start_distance > 0
    again = run_episode(env, propnet, make_planner(name, TINY), seed=11)
    assert again.final_distance == pytest.approx(result.final_distance)  # seeded


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_sampling_planners_run_on_the_simulator(env, name):
    result = run_episode(env, SimulatorModel(), make_planner(name, TINY), seed=3)
    assert result.steps == 2


def test_gradient_planners_refuse_the_simulator(env):
    with pytest.raises(ConfigError, match="not differentiable"):
        run_episode(env, SimulatorModel(), make_planner("grad", TINY), seed=3)


def _quadratic(target: torch.Tensor, differentiable: bool = True) -> Problem:
    return Problem(horizon=3, action_dim=2, cost=lambda a: ((a - target) ** 2).sum((1, 2)), differentiable=differentiable)


@pytest.mark.parametrize("name", ["grad", "cem", "mppi", "hybrid"])
def test_planners_approach_the_minimum_of_a_known_cost(name):
    target = torch.tensor([[0.5, -0.3]] * 3)
    problem = _quadratic(target)
    planner = make_planner(name, PlannerConfig(horizon=3, samples=64, iterations=5, grad_steps=30, lr=0.05), seed=0)
    first = planner.plan(problem)
    assert float(((first - target) ** 2).sum()) < 0.2 * float((target**2).sum())


def test_warm_start_is_the_previous_plan_shifted():
    planner = make_planner("grad", PlannerConfig(horizon=3))
    planner.previous = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    shifted = planner.warm_start(_quadratic(torch.zeros(3, 2)))
    torch.testing.assert_close(shifted, torch.tensor([[0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]]))


def test_planner_registry_lists_the_four_planners_and_the_baseline():
    assert {"grad", "cem", "mppi", "hybrid", "random"} <= set(PLANNERS.names())


def test_wilson_interval_and_summary():
    lo, hi = wilson_interval(8, 10)
    assert 0.5 < lo < 0.8 < hi < 0.95
    assert wilson_interval(0, 10)[0] == 0.0
    env = BoxPushEnv(BoxPushTaskConfig(max_steps=1))
    rs = [run_episode(env, None, make_planner("random", TINY), seed=s) for s in range(3)]
    env.close()
    s = summarize(rs)
    assert s["episodes"] == 3 and s["control_steps"] == 3 and 0 <= s["success_rate"] <= 1


def test_a_planner_that_keeps_elites_refuses_more_elites_than_samples():
    # cem clamped elites to samples without a word: every sample an elite, no selection left
    for name in ("cem", "hybrid"):
        with pytest.raises(ConfigError, match=rf"planner '{name}' keeps the best elites .* elites \(8\) must not "
                                              r"exceed samples \(4\)"):
            make_planner(name, PlannerConfig(samples=4, elites=8))
        make_planner(name, PlannerConfig(samples=4, elites=4))  # all of them is the most it keeps
    for name in ("mppi", "grad", "random"):  # they keep no elites
        make_planner(name, PlannerConfig(samples=2, elites=4))
