"""One functional model interface for planners: (state, action sequences) -> predicted states.

A :class:`PlanningModel` is bound to an environment's episode (:meth:`bind`), then
:meth:`predict` maps the current position history and ``B`` candidate sequences
of per-node world actions ``[B, T, N, 3]`` to the predicted positions
``[B, T, N, 3]`` (the state after each step).  Two implementations:

* :class:`LearnedModel` wraps a trained simulator (IN, PropNet, DPI-Net): the
  ``B`` candidates are ``B`` disjoint copies of the scene in **one** graph per
  step (node ids offset per copy, neighbours searched per copy), so one forward
  pass advances every candidate; gradients flow to the actions.
* :class:`SimulatorModel` is the ground truth: the environment's own world,
  saved (pybullet's ``saveState``; the MPM fields of a particle world) and
  restored before each candidate and at the end (a loop over candidates; not
  differentiable).

:func:`make_planning_model` builds either by name (``gt`` or a name of
:data:`physics.models.MODELS`).  A learned model loads the world's control
checkpoint when one is registered in :data:`CONTROL_CHECKPOINTS` (a model
fine-tuned on the data a planner collects, :mod:`physics.control.collect`), else
the world's shipped dynamics checkpoint ``WORLD_NAME.pt``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from physics.control.envs import ControlEnv
from physics.errors import CheckpointError, ConfigError, StateError
from physics.graph.builder import GraphBuilder
from physics.models import MODELS, DynamicsModel, load_model
from physics.registry import Registry

__all__ = [
    "PlanningModel",
    "LearnedModel",
    "SimulatorModel",
    "make_planning_model",
    "GROUND_TRUTH",
    "CHECKPOINTS",
    "CONTROL_CHECKPOINTS",
    "register_control_checkpoint",
    "default_checkpoint",
]

GROUND_TRUTH = "gt"
CHECKPOINTS = Path(__file__).resolve().parents[1] / "models" / "checkpoints"

CONTROL_CHECKPOINTS: Registry[Path] = Registry("control checkpoint")


def register_control_checkpoint(world: str, model: str, path: str | Path, *, help: str = "") -> Path:
    """Make ``path`` the checkpoint ``make_planning_model(model, world)`` loads (name ``WORLD_MODEL``)."""
    return CONTROL_CHECKPOINTS.register(f"{world}_{model}", Path(path), help=help)


def default_checkpoint(name: str, world: str) -> Path:
    """The registered control checkpoint of ``(world, name)``, else the shipped ``WORLD_NAME.pt``."""
    key = f"{world}_{name}"
    return CONTROL_CHECKPOINTS.get(key) if key in CONTROL_CHECKPOINTS else CHECKPOINTS / f"{key}.pt"


class PlanningModel(ABC):
    """Predicts the states of candidate action sequences from the current state."""

    name = "model"
    differentiable = False
    exact = False  # True for the simulator itself: nothing to adapt (physics.control.adapt)

    def __init__(self) -> None:
        self.env: ControlEnv | None = None

    def bind(self, env: ControlEnv) -> None:
        """Attach to ``env`` at the start of an episode (after ``env.reset``)."""
        self.env = env

    @property
    def history_frames(self) -> int:
        """Recorded frames of the current state the model reads."""
        return 1

    @abstractmethod
    def predict(self, history: Tensor, actions: Tensor) -> Tensor:
        """Positions after each step.

        Args:
            history: ``[history_frames, N, 3]`` recorded positions, oldest first.
            actions: ``[B, T, N, 3]`` per-node world actions of ``B`` candidates.

        Returns:
            ``[B, T, N, 3]``.
        """


class LearnedModel(PlanningModel):
    """A trained simulator rolling out every candidate in one batched graph per step.

    Args:
        model: A :class:`~physics.models.DynamicsModel` (put in eval mode here).
        trained_on: The world its checkpoint records (``meta["world"]``); binding to an
            environment on another world is refused.
        source: Where the model came from, for that error.
    """

    differentiable = True

    def __init__(self, model: DynamicsModel, trained_on: str | None = None, source: str = "the model") -> None:
        super().__init__()
        self.trained_on, self.source = trained_on, source
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.name = model.name
        self.builder = GraphBuilder(model.config.graph)
        self._static: dict[str, Tensor] = {}
        self._union: dict[tuple, dict[str, Tensor]] = {}

    @property
    def history_frames(self) -> int:
        return self.model.config.graph.history + 1

    def bind(self, env: ControlEnv) -> None:
        super().bind(env)
        if self.trained_on is not None and self.trained_on != env.world.name:
            raise CheckpointError(
                f"{self.source} was trained on world {self.trained_on!r}; this task runs on {env.world.name!r}"
            )
        cfg = self.model.config
        st = env.static()
        if env.world.node_attr.shape[1] != cfg.node_attr_dim or st["edge_attr"].shape[1] != cfg.edge_attr_dim:
            raise ConfigError(
                f"model {self.name} expects node_attr {cfg.node_attr_dim} and edge_attr {cfg.edge_attr_dim}; "
                f"world {env.world.name!r} has {env.world.node_attr.shape[1]} and {st['edge_attr'].shape[1]}"
            )
        s = {
            "node_attr": torch.as_tensor(st["node_attr"], dtype=torch.float32),
            "edges": torch.as_tensor(st["edges"], dtype=torch.long),
            "edge_attr": torch.as_tensor(st["edge_attr"], dtype=torch.float32),
            "instance": torch.as_tensor(st["instance"], dtype=torch.long),
            "observed": torch.as_tensor(st["observed"], dtype=torch.bool),
        }
        start = torch.as_tensor(env.history(1)[0], dtype=torch.float32)
        root_of = self.builder.roots_for(start, s["instance"])  # once per episode, as in a rollout
        s["root_of"] = torch.full_like(s["instance"], -1) if root_of is None else root_of
        self._static = s
        self._union = {}

    def _tiled(self, b: int, keep: Tensor | None = None) -> dict[str, Tensor]:
        """Static arrays of ``b`` disjoint copies of the scene, or of its ``keep`` nodes (ids offset per copy)."""
        key = (b, None if keep is None else keep.cpu().numpy().tobytes())
        if key in self._union:
            return self._union[key]
        s = self._static if keep is None else self._subset(keep)
        n = s["node_attr"].shape[0]
        copy = torch.arange(b)
        inst, roots = s["instance"], s["root_of"]
        n_inst = int(inst.max()) + 1 if inst.numel() else 1
        n_root = int(roots.max()) + 1 if bool((roots >= 0).any()) else 0
        u = {
            "node_attr": s["node_attr"].repeat(b, 1),
            "edges": (s["edges"][:, None, :] + (copy * n)[None, :, None]).reshape(2, -1),
            "edge_attr": s["edge_attr"].repeat(b, 1),
            "instance": torch.where(inst >= 0, inst + (copy * n_inst)[:, None], inst).reshape(-1),
            "observed": s["observed"].repeat(b),
            "root_of": torch.where(roots >= 0, roots + (copy * n_root)[:, None], roots).reshape(-1),
            "batch": copy.repeat_interleave(n),
        }
        self._union = {key: u}
        return u

    def _subset(self, keep: Tensor) -> dict[str, Tensor]:
        """The static arrays of the ``keep`` nodes: fixed relations among them, root ids renumbered."""
        s = self._static
        new_id = torch.full((keep.numel(),), -1, dtype=torch.long)
        new_id[keep] = torch.arange(int(keep.sum()))
        both = keep[s["edges"][0]] & keep[s["edges"][1]]
        roots = s["root_of"][keep]
        if bool((roots >= 0).any()):
            _, packed = torch.unique(roots[roots >= 0], return_inverse=True)
            roots = roots.clone()
            roots[roots >= 0] = packed
        return {
            "node_attr": s["node_attr"][keep],
            "edges": new_id[s["edges"][:, both]],
            "edge_attr": s["edge_attr"][both],
            "instance": s["instance"][keep],
            "observed": s["observed"][keep],
            "root_of": roots,
        }

    def predict(self, history: Tensor, actions: Tensor) -> Tensor:
        """See :meth:`PlanningModel.predict`.  With the task's ``focus`` set, only the
        environment's :meth:`~physics.control.envs.ControlEnv.focus_nodes` are rolled
        out; every other node holds its current position."""
        if not self._static:
            raise StateError("LearnedModel.predict: call bind(env) first")
        b, t, n, d = actions.shape
        h1 = self.history_frames
        if history.shape != (h1, n, d):
            raise StateError(f"LearnedModel.predict: history must be [{h1}, {n}, {d}], got {tuple(history.shape)}")
        keep = self.env.focus_nodes(history[-1]) if self.env is not None else None
        pin = self.env.kinematic_node() if self.env is not None else None
        if keep is None or bool(keep.all()):
            return self._rollout(self._tiled(b), history, actions, pin)
        idx = keep.nonzero().squeeze(1)
        if pin is not None:
            pin = (int((idx < pin[0]).sum()), pin[1])  # its row among the kept nodes
        part = self._rollout(self._tiled(b, keep), history[:, idx], actions[:, :, idx], pin)
        still = history[-1].float().expand(b, t, n, d)
        return still.index_copy(2, idx, part)

    def _rollout(self, u: dict[str, Tensor], history: Tensor, actions: Tensor,
                 pin: tuple[int | np.ndarray, float] | None = None) -> Tensor:
        """Roll ``B`` copies of the scene of ``u`` out from ``history`` under ``actions`` ``[B, T, n, 3]``;
        node(s) ``pin[0]`` of each copy move by their action times ``pin[1]`` (kinematic actuators)."""
        b, t, n, d = actions.shape
        h1 = self.history_frames
        roots = u["root_of"] if self.model.config.graph.has_roots else None
        hidden = ~u["observed"] if self.model.config.partially_observed else None
        frames = list(history.float()[:, None].expand(h1, b, n, d).reshape(h1, b * n, d))
        out = []
        for k in range(t):
            g = self.builder.build(torch.stack(frames[-h1:]), u["node_attr"], actions[:, k].reshape(b * n, d),
                                   u["edges"], u["edge_attr"], u["instance"], u["observed"], roots, batch=u["batch"])
            nxt = self.model.next_positions(g)[: b * n]
            if hidden is not None:
                nxt = torch.where(hidden[:, None], frames[-1], nxt)
            if pin is not None:
                nodes = torch.as_tensor(pin[0], dtype=torch.long).reshape(-1)
                rows = (torch.arange(b)[:, None] * n + nodes).reshape(-1)
                step = pin[1] * actions[:, k, nodes].float().reshape(-1, d)
                nxt = nxt.index_copy(0, rows, frames[-1][rows] + step)
            frames.append(nxt)
            out.append(nxt.reshape(b, n, d))
        return torch.stack(out, dim=1)


class SimulatorModel(PlanningModel):
    """The ground truth: the environment's own world, stepped once per candidate.

    The world's state is saved before planning (:meth:`DynamicsWorld.save_state`: pybullet's
    saveState, or a copy of a particle world's MPM fields) and restored before each
    candidate and at the end, so the episode continues exactly where it was.
    """

    name = GROUND_TRUTH
    exact = True

    def predict(self, history: Tensor, actions: Tensor) -> Tensor:
        if self.env is None:
            raise StateError("SimulatorModel.predict: call bind(env) first")
        world = self.env.world
        acts = actions.detach().cpu().double().numpy()
        b, t, n, d = acts.shape
        out = np.empty((b, t, n, d))
        saved = world.save_state()
        try:
            for i in range(b):
                world.restore_state(saved)
                for k in range(t):
                    world.step(acts[i, k])
                    out[i, k] = world.state()
        finally:
            world.restore_state(saved)
            world.discard_state(saved)
        return torch.as_tensor(out, dtype=actions.dtype)


def make_planning_model(name: str, world: str, checkpoint: str | Path | None = None) -> PlanningModel:
    """``gt`` (the simulator) or a learned model from ``checkpoint`` (default: :func:`default_checkpoint`).

    Raises:
        ConfigError: unknown name (lists the choices).
        CheckpointError: the checkpoint is missing or holds another model (one trained on another
            world is refused when the model is bound to an environment).
    """
    if name == GROUND_TRUTH:
        return SimulatorModel()
    if name not in MODELS:
        raise ConfigError(f"{MODELS.unknown_message(name)} (or '{GROUND_TRUTH}' for the simulator)")
    path = Path(checkpoint) if checkpoint else default_checkpoint(name, world)
    model, meta = load_model(path)
    if model.name != name:
        raise CheckpointError(f"{path} holds a {model.name!r} model, not {name!r}")
    return LearnedModel(model, trained_on=meta.get("world"), source=str(path))


register_control_checkpoint(
    "boxes", "propnet", CHECKPOINTS / "boxes_propnet_control_r4.pt",
    help="the boxes PropNet fine-tuned where the CEM planner goes (DAgger, four rounds: the planner's episodes "
    "beside the random policy's, 5-step rollout loss; round 4 with the side term and the way-round approach on); "
    "the dynamics benchmark keeps boxes_propnet.pt, and boxes_propnet_control.pt (round 2) and "
    "boxes_propnet_control_r3.pt (round 3) stay for the earlier rows",
)
