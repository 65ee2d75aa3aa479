"""Online adaptation: the fitted gain recovers a model's known under-prediction and corrects the plans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physics.control import (
    BoxPushEnv,
    BoxPushTaskConfig,
    PlannerConfig,
    SimulatorModel,
    make_planner,
    make_planning_model,
)
from physics.control.adapt import OnlineCorrection
from physics.control.episode import make_correction, problem_for, run_episode
from physics.control.model import PlanningModel
from physics.errors import ConfigError

N, ACTUATED = 3, 2
VELOCITY = np.array([[0.002, -0.001, 0.0], [0.0, 0.003, 0.0], [0.004, 0.0, 0.0]])  # per world step; node 2 actuated


class ScaledMotion(PlanningModel):
    """Every node really moves by ``velocity`` per step; this model predicts ``ratio`` of it for the passive ones."""

    def __init__(self, ratio: float, velocity: np.ndarray = VELOCITY, actuated: int = ACTUATED) -> None:
        super().__init__()
        self.ratio, self.actuated = ratio, actuated
        self.velocity = torch.as_tensor(velocity, dtype=torch.float32)

    def predict(self, history: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b, t = actions.shape[:2]
        v = self.velocity.clone()
        passive = torch.ones(v.shape[0], dtype=torch.bool)
        passive[self.actuated] = False
        v[passive] *= self.ratio
        steps = torch.arange(1, t + 1, dtype=history.dtype)[:, None, None]
        return (history[-1] + steps * v).expand(b, t, *v.shape)


def _observe(correction: OnlineCorrection, control_steps: int, repeat: int = 4) -> None:
    start = np.zeros((N, 3))
    correction.start(start)
    for c in range(control_steps):
        k = np.arange(c * repeat + 1, (c + 1) * repeat + 1)[:, None, None]
        correction.record(start + k * VELOCITY, np.zeros((repeat, N, 3)))
        correction.update()


@pytest.mark.parametrize("mode", ["gain", "lead"])
def test_fitted_gain_recovers_a_model_that_predicts_half_the_motion(mode):
    c = OnlineCorrection(ScaledMotion(0.5), ACTUATED, lead_steps=8, mode=mode, window=5, prior=1e-12)
    _observe(c, control_steps=4)
    np.testing.assert_allclose(c.gains, 2.0, rtol=1e-6)


def test_gain_stays_one_for_an_exact_model_and_is_clipped_for_a_far_worse_one():
    exact = OnlineCorrection(ScaledMotion(1.0), ACTUATED, lead_steps=8, mode="lead", prior=1e-12)
    _observe(exact, control_steps=3)
    np.testing.assert_allclose(exact.gains, 1.0, rtol=1e-6)
    poor = OnlineCorrection(ScaledMotion(0.1), ACTUATED, lead_steps=8, mode="gain", prior=1e-12, max_gain=3.0)
    _observe(poor, control_steps=3)
    np.testing.assert_allclose(poor.gains, 3.0)


def test_prior_keeps_the_gain_near_one_before_anything_moved():
    c = OnlineCorrection(ScaledMotion(0.5), ACTUATED, lead_steps=8, mode="lead", prior=1.0)
    _observe(c, control_steps=1)
    assert np.all(np.abs(c.gains - 1.0) < 1e-3)
    fresh = OnlineCorrection(ScaledMotion(0.5), ACTUATED, lead_steps=8)
    fresh.start(np.zeros((N, 3)))
    np.testing.assert_array_equal(fresh.update(), np.ones(8))  # nothing recorded yet


def test_apply_scales_passive_planar_displacements_keeps_the_actuated_node_and_passes_gradients():
    c = OnlineCorrection(ScaledMotion(0.5), ACTUATED, lead_steps=4, mode="lead")
    c.gains = np.array([1.0, 1.5, 2.0, 2.5])
    current = torch.zeros(N, 3)
    actions = torch.ones(2, 4, N, 3, requires_grad=True)
    pred = actions * 0.01
    out = c.apply(current, pred)
    torch.testing.assert_close(out[:, :, ACTUATED], pred[:, :, ACTUATED])
    torch.testing.assert_close(out[..., 2], pred[..., 2])
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.01, 0.015, 0.02, 0.025]))
    out.sum().backward()
    assert actions.grad is not None and float(actions.grad[0, 3, 0, 0]) == pytest.approx(0.025)
    with pytest.raises(ConfigError, match="fitted for at most 4"):
        c.apply(current, torch.zeros(1, 5, N, 3))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="adapt must be one of"):
        PlannerConfig(adapt="always")
    with pytest.raises(ConfigError, match="adapt_prior"):
        PlannerConfig(adapt_prior=0.0)
    for gain in (0.5, float("nan")):
        with pytest.raises(ConfigError, match="adapt_max_gain"):
            PlannerConfig(adapt_max_gain=gain)
    with pytest.raises(ConfigError, match="mode must be one of"):
        OnlineCorrection(ScaledMotion(1.0), ACTUATED, lead_steps=4, mode="none")
    c = OnlineCorrection(ScaledMotion(1.0), ACTUATED, lead_steps=4)
    c.start(np.zeros((N, 3)))
    with pytest.raises(ConfigError, match="record"):
        c.record(np.zeros((4, N + 1, 3)), np.zeros((4, N + 1, 3)))


@pytest.fixture(scope="module")
def env():
    e = BoxPushEnv(BoxPushTaskConfig(max_steps=3))
    yield e
    e.close()


def test_adaptive_episode_end_to_end_with_the_learned_model_and_never_on_the_simulator(env):
    cfg = PlannerConfig(horizon=2, samples=6, iterations=1, elites=2, adapt="lead")
    propnet = make_planning_model("propnet", "boxes")
    result = run_episode(env, propnet, make_planner("cem", cfg), seed=11)
    assert result.steps == 3 and len(result.adapt_gains) == 2 * env.config.repeat
    assert all(1 / 3 <= g <= 3 for g in result.adapt_gains)
    assert "adapt_gains_final" in result.to_dict()
    assert make_correction(env, SimulatorModel(), make_planner("cem", cfg)) is None
    assert make_correction(env, propnet, make_planner("random", cfg)) is None
    assert make_correction(env, propnet, make_planner("cem", PlannerConfig())) is None


def test_problem_cost_uses_the_corrected_prediction(env):
    env.reset(seed=11)
    velocity = np.zeros((env.world.num_nodes, 3))
    velocity[env.target, 0] = 0.001  # the target box slides along x; the model sees half of it
    half, exact = ScaledMotion(0.5, velocity, env.actuated_node), ScaledMotion(1.0, velocity, env.actuated_node)
    for m in (half, exact):
        m.bind(env)
    c = OnlineCorrection(half, env.actuated_node, lead_steps=8, mode="gain")
    c.gains = np.full(8, 2.0)
    actions = torch.zeros(1, 2, 2)
    history = torch.as_tensor(env.history(1), dtype=torch.float32)
    corrected = problem_for(env, half, 2, c).cost(actions)
    torch.testing.assert_close(corrected, env.cost(exact.predict(history, env.node_actions(actions))))
    assert not torch.allclose(corrected, problem_for(env, half, 2).cost(actions))
