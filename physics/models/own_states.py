"""States from the model's own rollouts, for the containment penalty (``TrainConfig.own_rollouts``).

A training unroll of K steps from recorded states almost never leaves the container, while a
model's 100-step rollout can leak: the fluid it piles against a wall after the splash is a state
only its own rollout reaches (docs/results/particles.md, session 17).  :class:`OwnStates` rolls
the model being trained out over training trajectories, from their first frames to their end, as
a test rollout does (:func:`~physics.models.rollout.rollout`: no gradient, neighbour edges rebuilt
every step, projected into the container when the model declares ``wall_projection``), and hands
out training graphs whose histories are those predicted frames.  The training loop adds the
containment penalty of a K-step unroll from them (:meth:`DynamicsModel.loss` with
``errors=False``): such a state has no ground truth, only walls.

A pool holds one rollout at a time: ``rollouts`` per epoch, spread evenly over the epoch's
batches (the first at its first batch), each of the next training trajectory in an order drawn
per epoch; every batch draws ``samples`` states of the current pool.  All draws come from a
generator seeded by ``(seed, epoch)`` alone, never the training loop's own, so the training
batches and their noise are those of a run without the option, and a resumed run redraws the
same states.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch_geometric.data import Batch

from physics.errors import ConfigError, StateError
from physics.graph.builder import GraphBuilder
from physics.models.base import DynamicsModel
from physics.models.data import one_step_graphs
from physics.models.rollout import rollout
from physics.trajectory import Trajectory

__all__ = ["OwnStates"]


class OwnStates:
    """Training graphs whose states come from the model's own rollouts of ``trajs``.

    Args:
        trajs: Training trajectories (each long enough for a rollout and a ``horizon``-step unroll).
        builder: The model's graph builder.
        rollouts: Rollouts per epoch (>= 1).
        samples: States drawn per batch (>= 1).
        horizon: Steps of each state's unroll (the graphs hold ``horizon`` steps of actions).
        batches_per_epoch: How many batches an epoch has (spreads the rollouts over it).
        seed: Seeds the draws with the epoch.

    Raises:
        ConfigError: a count below 1, or a trajectory too short (named).
    """

    def __init__(self, trajs: list[Trajectory], builder: GraphBuilder, rollouts: int, samples: int, horizon: int,
                 batches_per_epoch: int, seed: int) -> None:
        if rollouts < 1 or samples < 1 or horizon < 1 or batches_per_epoch < 1:
            raise ConfigError(f"OwnStates needs rollouts, samples, horizon and batches per epoch >= 1, got "
                              f"{rollouts}, {samples}, {horizon}, {batches_per_epoch}")
        h = builder.config.history
        need = h + horizon + 2  # a predicted frame at h+1 and a horizon-step unroll after it
        short = [t.meta.get("name", i) for i, t in enumerate(trajs) if t.num_steps < need]
        if not trajs or short:
            raise ConfigError(f"own rollouts need training trajectories of at least {need} steps; too short: {short}")
        self.trajs, self.builder, self.samples, self.horizon, self.seed = trajs, builder, samples, horizon, seed
        self.every = max(1, -(-batches_per_epoch // rollouts))  # batches between two rollouts
        self.generator = torch.Generator()
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        """Reset the draws to those of ``epoch`` (the next batch starts a new rollout)."""
        self.generator.manual_seed(self.seed * 100003 + epoch + 1_000_003)
        self.order = torch.randperm(len(self.trajs), generator=self.generator).tolist()
        self.batch_index = 0
        self.rollouts_done = 0
        self.current: tuple[int, Trajectory] | None = None

    def _refresh(self, model: DynamicsModel, device: torch.device) -> None:
        index = self.order[self.rollouts_done % len(self.order)]
        self.rollouts_done += 1
        traj = self.trajs[index]
        was_training = model.training
        try:
            pred = rollout(model, traj, device=device)  # as the model declares its wall projection
        except StateError:
            return  # a rollout that turned NaN/inf: keep the previous pool (none yet: no term this batch)
        finally:
            model.train(was_training)
        self.current = (index, dataclasses.replace(traj, positions=np.ascontiguousarray(pred, dtype=np.float32)))

    def next_batch(self, model: DynamicsModel, device: torch.device) -> Batch | None:
        """The graphs of ``samples`` states of the current rollout, starting a new rollout first at every
        ``every``-th batch of the epoch; None while no rollout has succeeded yet this epoch."""
        if self.batch_index % self.every == 0:
            self._refresh(model, device)
        self.batch_index += 1
        if self.current is None:
            return None
        index, traj = self.current
        h = self.builder.config.history
        # a state's newest frame is predicted (t >= h+1), and its unroll ends within the rollout
        steps = torch.randint(h + 1, traj.num_steps - self.horizon, (self.samples,), generator=self.generator)
        graphs = one_step_graphs(traj, self.builder, sorted(steps.tolist()), seed=self.seed + index, horizon=self.horizon)
        return Batch.from_data_list(graphs).to(device)
