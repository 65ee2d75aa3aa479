"""Model-predictive planners over normalised action sequences, and their registry.

Every planner sees a :class:`Problem`: the horizon ``T``, the action size ``A``
and ``cost(actions [B, T, A]) -> [B]``, which rolls the candidates out with the
planning model and scores them with the task's cost.  :meth:`Planner.plan`
returns the sequence ``[T, A]`` (actions in ``[-1, 1]``) whose first action is
executed; the rest, shifted by one step, warm-starts the next plan (MPC).

Planners (``register_planner`` adds one; ``nesy control --planner`` lists them):

``grad``    gradient shooting (PropNet, DPI-Net): Adam on the action sequence
            through the differentiable model, from the shifted previous plan
            and a few random starts; the best one wins.
``cem``     cross-entropy method: sample around a Gaussian, refit it to the elites.
``mppi``    model-predictive path integral: cost-weighted (softmax) average of
            perturbations of the previous plan.
``hybrid``  sample then refine (RoboCraft): score a sampled pool, refine the best
            ``k`` with Adam, keep the best.
``random``  uniform random actions, no model: the baseline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from physics.config_types import check_field_types
from physics.control.adapt import ADAPT_MODES
from physics.errors import ConfigError
from physics.registry import Registry

# Torch CPU threads for planning (`nesy control`'s default; `nesy demo` runs on one thread too): the candidates roll out on graphs of a
# few objects, too small for intra-op threads to pay, and on cores busy with other jobs torch's default threads
# spin (the demo's CEM episode: 10 s on an idle 2-core machine either way, 125 s at torch's default against 18 s
# on one thread beside two busy processes).
PLANNING_THREADS = 1

__all__ = [
    "Problem",
    "PlannerConfig",
    "Planner",
    "GradientPlanner",
    "CEMPlanner",
    "MPPIPlanner",
    "HybridPlanner",
    "RandomPlanner",
    "PLANNERS",
    "register_planner",
    "make_planner",
]


@dataclass(frozen=True)
class Problem:
    """One planning step: sequences ``[B, horizon, action_dim]`` -> costs ``[B]``.

    Attributes:
        horizon: Control steps planned ahead.
        action_dim: Size of one normalised action.
        cost: The rolled-out cost (differentiable when ``differentiable``).
        differentiable: Whether gradients flow from ``cost`` to the actions.
    """

    horizon: int
    action_dim: int
    cost: Callable[[Tensor], Tensor]
    differentiable: bool = True


@dataclass(frozen=True)
class PlannerConfig:
    """Budgets shared by the planners (each reads the ones it uses).

    Attributes:
        horizon: Control steps planned ahead.
        samples: Candidate sequences per sampling round (CEM, MPPI, the hybrid's pool).
        iterations: Sampling rounds (CEM, MPPI).
        grad_steps: Adam steps (grad, the hybrid's refinement).
        elites: CEM elites; the hybrid's ``k`` sequences refined.
        starts: Gradient shooting's parallel starts (the warm start plus random ones).
        lr: Adam's learning rate on normalised actions.
        std: Initial sampling std (CEM) and perturbation std (MPPI) of normalised actions.
        temperature: MPPI's softmax temperature, relative to the spread of the costs.
        adapt: Online adaptation of a learned planning model during the episode
            (:mod:`physics.control.adapt`): ``none``, ``gain`` (one gain on the
            predicted displacement of the passive nodes, fitted to what the world
            did) or ``lead`` (one gain per lead time of the horizon).
        adapt_window: Most recent windows (one per control step) the adaptation fits.
        adapt_prior: The adaptation's regulariser (m^2) towards a gain of 1.
        adapt_max_gain: The adapted gain stays within ``[1 / adapt_max_gain, adapt_max_gain]``.
    """

    horizon: int = field(default=5, metadata={"min": 1, "help": "control steps planned ahead"})
    samples: int = field(default=24, metadata={
        "min": 1, "help": "candidate action sequences per sampling round (cem, mppi, the hybrid's pool)"})
    iterations: int = field(default=2, metadata={"min": 1, "help": "sampling rounds per control step (cem, mppi)"})
    grad_steps: int = field(default=6, metadata={
        "min": 1, "help": "Adam steps per control step (grad, the hybrid's refinement)"})
    elites: int = field(default=4, metadata={
        "min": 1, "help": "sequences the Gaussian is refitted to (cem), or refined by Adam (hybrid)"})
    starts: int = field(default=4, metadata={
        "min": 1, "help": "parallel starts of gradient shooting (the warm start plus random ones; grad)"})
    lr: float = field(default=0.2, metadata={"help": "Adam's learning rate on actions normalised to [-1, 1] (grad, hybrid)"})
    std: float = field(default=0.6, metadata={
        "help": "initial sampling std (cem) or perturbation std (mppi), in normalised action units"})
    temperature: float = field(default=0.1, metadata={
        "help": "MPPI's softmax temperature, relative to the spread of the sampled costs (mppi)"})
    adapt: str = field(default="none", metadata={
        "help": "online adaptation of a learned model: none, gain (one gain on predicted box displacements, fitted "
        "during the episode) or lead (one gain per lead time)", "choices": ADAPT_MODES})
    adapt_window: int = field(default=10, metadata={"min": 1, "help": "control steps of recent windows the adaptation fits"})
    adapt_prior: float = field(default=2.5e-5, metadata={"help": "adaptation regulariser towards a gain of 1 (m^2)"})
    adapt_max_gain: float = field(default=3.0, metadata={"help": "the adapted gain stays in [1/G, G]"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.adapt not in ADAPT_MODES:
            raise ConfigError(f"PlannerConfig.adapt must be one of {ADAPT_MODES}, got {self.adapt!r}")
        if not self.adapt_max_gain >= 1:  # also refuses NaN
            raise ConfigError(f"PlannerConfig.adapt_max_gain must be >= 1, got {self.adapt_max_gain}")
        for key in ("horizon", "samples", "iterations", "grad_steps", "elites", "starts", "adapt_window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"PlannerConfig.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "std", "temperature", "adapt_prior"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"PlannerConfig.{key} must be positive, got {getattr(self, key)}")


class Planner(ABC):
    """Plans one action sequence per control step, warm-started from the last one.

    Args:
        config: Budgets (see :class:`PlannerConfig`).
        seed: Seed of the planner's random draws.
    """

    name = "planner"
    needs_gradients = False
    needs_model = True
    uses_elites = False  # keeps the best ``elites`` of each round's ``samples``

    def __init__(self, config: PlannerConfig | None = None, seed: int = 0) -> None:
        self.config = PlannerConfig() if config is None else config
        c = self.config
        if self.uses_elites and c.elites > c.samples:  # every sample would be an elite: no selection left
            raise ConfigError(f"planner {self.name!r} keeps the best elites of each round's samples: elites "
                              f"({c.elites}) must not exceed samples ({c.samples})", settings=("elites", "samples"))
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Forget the previous plan and reseed (call at the start of an episode)."""
        self.generator = torch.Generator().manual_seed(int(seed))
        self.previous: Tensor | None = None

    def warm_start(self, problem: Problem) -> Tensor:
        """The previous plan shifted by one step (last action repeated); zeros at first."""
        t, a = problem.horizon, problem.action_dim
        if self.previous is None or self.previous.shape != (t, a):
            return torch.zeros(t, a)
        return torch.cat([self.previous[1:], self.previous[-1:]])

    def plan(self, problem: Problem) -> Tensor:
        """The planned sequence ``[T, A]`` in ``[-1, 1]`` (its first action is executed)."""
        if self.needs_gradients and not problem.differentiable:
            raise ConfigError(
                f"planner {self.name!r} takes gradients through the model; the simulator is not differentiable "
                f"(use cem, mppi or random with --model gt)"
            )
        with torch.enable_grad() if self.needs_gradients else torch.no_grad():
            best = self._plan(problem, self.warm_start(problem)).detach().clamp(-1.0, 1.0)
        self.previous = best
        return best

    @abstractmethod
    def _plan(self, problem: Problem, init: Tensor) -> Tensor:
        """The plan from the warm start ``init`` ``[T, A]``."""

    def _noise(self, *shape: int) -> Tensor:
        return torch.randn(*shape, generator=self.generator)

    def _uniform(self, *shape: int) -> Tensor:
        return 2 * torch.rand(*shape, generator=self.generator) - 1


def adam_refine(problem: Problem, starts: Tensor, steps: int, lr: float) -> tuple[Tensor, Tensor]:
    """Adam on ``starts`` ``[B, T, A]`` (kept in ``[-1, 1]``); returns the best sequence seen and its cost."""
    x = starts.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    best, best_cost = starts[0].clone(), torch.tensor(float("inf"))
    for step in range(steps + 1):
        cost = problem.cost(x)
        values = cost.detach()
        i = int(torch.argmin(values))
        if float(values[i]) < float(best_cost):
            best, best_cost = x[i].detach().clone(), values[i]
        if step == steps:
            break
        opt.zero_grad()
        cost.sum().backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
    return best, best_cost


class GradientPlanner(Planner):
    """Gradient shooting: Adam on the sequence through the model (PropNet, DPI-Net control)."""

    name = "grad"
    needs_gradients = True

    def _plan(self, problem: Problem, init: Tensor) -> Tensor:
        c = self.config
        starts = torch.cat([init[None], self._uniform(c.starts - 1, *init.shape)])
        return adam_refine(problem, starts, c.grad_steps, c.lr)[0]


class CEMPlanner(Planner):
    """Cross-entropy method: a diagonal Gaussian refitted to the elite samples."""

    name = "cem"
    uses_elites = True

    def _plan(self, problem: Problem, init: Tensor) -> Tensor:
        c = self.config
        mean, std = init.clone(), torch.full_like(init, c.std)
        best, best_cost = init, float("inf")
        elites = min(c.elites, c.samples)
        for _ in range(c.iterations):
            pool = (mean + std * self._noise(c.samples, *init.shape)).clamp(-1.0, 1.0)
            pool[0] = mean.clamp(-1.0, 1.0)
            cost = problem.cost(pool)
            order = torch.argsort(cost)
            if float(cost[order[0]]) < best_cost:
                best, best_cost = pool[order[0]].clone(), float(cost[order[0]])
            top = pool[order[:elites]]
            mean, std = top.mean(0), top.std(0, unbiased=False).clamp(min=0.05)
        return best


class MPPIPlanner(Planner):
    """MPPI: the mean moves to the softmax(-cost / temperature)-weighted average of perturbations."""

    name = "mppi"

    def _plan(self, problem: Problem, init: Tensor) -> Tensor:
        c = self.config
        mean = init.clone()
        for _ in range(c.iterations):
            pool = (mean + c.std * self._noise(c.samples, *init.shape)).clamp(-1.0, 1.0)
            pool[0] = mean.clamp(-1.0, 1.0)
            cost = problem.cost(pool)
            spread = (cost.max() - cost.min()).clamp(min=1e-9)
            w = torch.softmax(-(cost - cost.min()) / (c.temperature * spread), dim=0)
            mean = (w[:, None, None] * pool).sum(0)
        return mean


class HybridPlanner(Planner):
    """Sample then refine (RoboCraft): the best ``elites`` of a sampled pool, refined by Adam."""

    name = "hybrid"
    needs_gradients = True
    uses_elites = True

    def _plan(self, problem: Problem, init: Tensor) -> Tensor:
        c = self.config
        pool = torch.cat([init[None], self._uniform(c.samples - 1, *init.shape)])
        with torch.no_grad():
            cost = problem.cost(pool)
        top = pool[torch.argsort(cost)[: min(c.elites, c.samples)]]
        return adam_refine(problem, top, c.grad_steps, c.lr)[0]


class RandomPlanner(Planner):
    """Uniform random actions; the model is never called (the baseline)."""

    name = "random"
    needs_model = False

    def _plan(self, problem: Problem, init: Tensor) -> Tensor:
        return self._uniform(*init.shape)


PLANNERS: Registry[type[Planner]] = Registry("planner")


def register_planner(cls: type[Planner], *, help: str | None = None) -> type[Planner]:
    """Register planner class ``cls`` under ``cls.name`` (one call after the class)."""
    return PLANNERS.register_class(cls, Planner, help=help)


for _cls in (GradientPlanner, CEMPlanner, MPPIPlanner, HybridPlanner, RandomPlanner):
    register_planner(_cls)


def make_planner(name: str, config: PlannerConfig | None = None, seed: int = 0) -> Planner:
    """Planner ``name`` (any of :data:`PLANNERS`) with ``config``."""
    return PLANNERS.get(name)(config, seed)

