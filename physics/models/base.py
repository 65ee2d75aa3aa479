"""The encode-process-decode skeleton every learned simulator here shares.

The base class owns the algorithm, the way DeepMind's ``learned_simulator.py``
separates pre-processing, the graph network and the integrator (GNS,
Sanchez-Gonzalez et al. 2020); a subclass fills in one hook, :meth:`process`.

One step, for a graph built by :class:`physics.graph.GraphBuilder`::

    preprocess  velocities v_{t-H+1..t} = diff(pos_hist), normalised by buffers;
                relative positions x_i - x_j on every edge, scaled by a buffer
    encode      c_i = f_enc([v-history, node_attr, action, node type])    [M, hidden]
                c_ij = f_rel([x_i - x_j, |x_i - x_j|, v_i - v_j, edge_attr, type])  [E, hidden]
                       (+ footprint gap, next-frame gap, approach speed with ModelConfig.contact)
    process     h = hook(c_i, c_ij, graph)        (IN / PropNet / DPI-Net) [M, hidden]
    decode      y = f_dec(h)  -> normalised acceleration (or velocity)    [M, D]
    integrate   v_{t+1} = v_t + a;  x_{t+1} = x_t + v_{t+1}   (per-step units, no dt)

Partially observable mode (PropNet, Sec. 4.3, box pushing): only ``observed``
nodes are inputs.  What is implemented: an unobserved node's velocities are set
to zero and flagged, relative positions on edges touching it are zeroed, and a
GRU runs over each node's velocity history (H steps) to give its latent state,
instead of a flat concatenation; the unobserved nodes' latents are then shaped
only by propagation from observed neighbours.  The loss and the rollout error
count observed nodes only, and rollouts keep unobserved nodes at their last
known position.  It is a history-window latent, not a state carried across the
whole rollout.
"""

from __future__ import annotations

import abc
import copy

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from physics.errors import ConfigError, StateError
from physics.graph.builder import NUM_RELATIONS, GraphBuilder, NodeType, Relation, box_distances
from physics.models.config import ModelConfig, WorldPreset
from physics.models.contact import CONTACT_FEATURES, contact_features
from physics.models.layers import mlp
from physics.models.normalization import Normalizer
from physics.models.shape_matching import shape_match
from physics.registry import Registry

__all__ = ["DynamicsModel", "MODELS", "register_model", "random_walk_noise", "wall_excess"]

LEAF_RELATIONS = (Relation.FIXED, Relation.NEIGHBOR)


def random_walk_noise(pos_hist: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """GNS input noise: a random walk on velocities whose last-frame position std is ``std``.

    Args:
        pos_hist: ``[M, H+1, D]``.  Returns the noise ``[M, H+1, D]`` (zero at the oldest frame).
    """
    m, h1, d = pos_hist.shape
    steps = h1 - 1
    vel_noise = torch.randn(m, steps, d, generator=generator, device="cpu").to(pos_hist) * (std / steps**0.5)
    walk = torch.cumsum(vel_noise, dim=1)
    return torch.cat([torch.zeros_like(walk[:, :1]), walk], dim=1)


class DynamicsModel(nn.Module, abc.ABC):
    """Encode-process-decode simulator; subclasses implement :meth:`process`.

    Args:
        config: Sizes and switches (see :class:`ModelConfig`).
    """

    name = "base"

    @classmethod
    def preset_config(cls, world: WorldPreset) -> ModelConfig:
        """This model's default config on a world with preset ``world``.

        The skeleton's default is a multi-step processor on the world's graph
        (``world.steps`` propagation steps, no roots, the world's training noise);
        a subclass overrides what it does differently.
        """
        return ModelConfig(propagation_steps=world.steps, noise_std=world.noise, graph=world.graph(roots=0))

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, hd, d, h = config, config.hidden, config.dim, config.graph.history
        self.vel_norm = Normalizer(d, isotropic=True)
        self.acc_norm = Normalizer(d, isotropic=True)
        self.action_norm = Normalizer(d, isotropic=True)
        self.attr_norm = Normalizer(c.node_attr_dim)
        self.edge_attr_norm = Normalizer(c.edge_attr_dim)
        self.register_buffer("rel_scale", torch.ones(()))
        po = 1 if c.partially_observed else 0
        if c.partially_observed:
            self.history_rnn = nn.GRU(d + 1, hd, batch_first=True)
            vel_in = hd
        else:
            vel_in = h * d
        wall = d + 1 if c.graph.wall_clip > 0 else 0  # GraphConfig.wall_clip's node features
        wall += 2 * d - 1 if c.graph.wall_box > 0 else 0  # GraphConfig.wall_box's signed distances
        self.node_encoder = mlp(vel_in + c.node_attr_dim + d + len(NodeType) + po + wall, hd, hd, c.mlp_layers, norm=True)
        contact = CONTACT_FEATURES if c.contact else 0  # ModelConfig.contact's edge features
        self.edge_encoder = mlp(2 * d + 1 + c.edge_attr_dim + NUM_RELATIONS + contact, hd, hd, c.mlp_layers, norm=True)
        self.decoder = mlp(hd, hd, d, c.mlp_layers)

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def fit_normalizers(self, graphs: list[Data]) -> None:
        """Set the normalisation buffers from training graphs (leaves only)."""
        vel, acc, act, attr, eattr, rel = [], [], [], [], [], []
        for g in graphs:
            leaf = g.node_type == NodeType.LEAF
            ph = g.pos_hist[leaf]
            v = ph[:, 1:] - ph[:, :-1]
            vel.append(v.reshape(-1, v.shape[-1]))
            if "target_pos" in g:
                nxt = g.target_pos[leaf]
                acc.append(nxt - ph[:, -1] - v[:, -1] if self.config.predict == "acceleration" else nxt - ph[:, -1])
            act.append(g.action[leaf])
            attr.append(g.node_attr[leaf])
            m = torch.isin(g.edge_type, torch.tensor([int(r) for r in LEAF_RELATIONS]))
            eattr.append(g.edge_attr[g.edge_type == Relation.FIXED])
            s, r = g.edge_index[:, m]
            rel.append(g.pos_hist[r, -1] - g.pos_hist[s, -1])
        self.vel_norm.fit(torch.cat(vel))
        if acc:
            self.acc_norm.fit(torch.cat(acc))
        self.action_norm.fit(torch.cat(act), center=False)
        self.attr_norm.fit(torch.cat(attr))
        self.edge_attr_norm.fit(torch.cat(eattr))
        rel = torch.cat(rel)
        if rel.numel():
            self.rel_scale.fill_(float(rel.norm(dim=-1).mean().clamp(min=1e-6)))

    # ------------------------------------------------------------------ the skeleton
    def encode(self, g: Data, pos_hist: Tensor, action: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Node latents ``[M, hidden]`` and edge latents ``[E, hidden]`` (``action`` defaults to ``g.action``)."""
        cfg = self.config
        action = g.action if action is None else action
        vel = self.vel_norm(pos_hist[:, 1:] - pos_hist[:, :-1])  # [M, H, D]
        node_type = nn.functional.one_hot(g.node_type, len(NodeType)).float()
        parts = []
        if cfg.partially_observed:
            obs = g.observed.float()[:, None]
            vel = vel * obs[:, :, None]
            seq = torch.cat([vel, obs[:, None, :].expand(-1, vel.shape[1], 1)], dim=-1)
            _, last = self.history_rnn(seq)
            parts.append(last[0])
        else:
            parts.append(vel.flatten(1))
        parts += [self.attr_norm(g.node_attr), self.action_norm(action), node_type]
        if cfg.partially_observed:
            parts.append(g.observed.float()[:, None])
        if cfg.graph.wall_clip > 0:
            parts.append(g.wall_feat)
        if cfg.graph.wall_box > 0:
            parts.append(box_distances(pos_hist[:, -1], g.box_bounds, cfg.graph.wall_box))
        c_node = self.node_encoder(torch.cat(parts, dim=-1))
        s, r = g.edge_index
        rel = (pos_hist[r, -1] - pos_hist[s, -1]) / self.rel_scale
        if cfg.partially_observed:
            rel = rel * (g.observed[s] & g.observed[r]).float()[:, None]
        vel_t = pos_hist[:, -1] - pos_hist[:, -2]
        rel_vel = (vel_t[r] - vel_t[s]) / self.vel_norm.std  # closing speed tells a contact coming
        if cfg.partially_observed:
            rel_vel = rel_vel * (g.observed[s] & g.observed[r]).float()[:, None]
        etype = nn.functional.one_hot(g.edge_type, NUM_RELATIONS).float()
        feats = [rel, rel.norm(dim=-1, keepdim=True), rel_vel, self.edge_attr_norm(g.edge_attr), etype]
        if cfg.contact:
            leaf = g.node_type == NodeType.LEAF
            feats.append(contact_features(cfg.contact, pos_hist, g.node_attr, s, r, self.vel_norm.std[0], leaf[s] & leaf[r]))
        c_edge = self.edge_encoder(torch.cat(feats, -1))
        return c_node, c_edge

    @abc.abstractmethod
    def process(self, c_node: Tensor, c_edge: Tensor, g: Data) -> Tensor:
        """The hook: propagate effects over the graph; returns ``[M, hidden]``."""

    def decode(self, h: Tensor) -> Tensor:
        """Normalised acceleration (or velocity) ``[M, D]``."""
        return self.decoder(h)

    def forward(self, g: Data, pos_hist: Tensor | None = None, action: Tensor | None = None) -> Tensor:
        """Normalised network output ``[M, D]`` for graph (batch) ``g``."""
        pos_hist = g.pos_hist if pos_hist is None else pos_hist
        c_node, c_edge = self.encode(g, pos_hist, action)
        return self.decode(self.process(c_node, c_edge, g))

    def integrate(self, pos_hist: Tensor, out: Tensor) -> Tensor:
        """Next positions ``[M, D]`` from the history ``[M, H+1, D]`` and the network output."""
        x_t = pos_hist[:, -1]
        if self.config.predict == "acceleration":
            v_next = (x_t - pos_hist[:, -2]) + self.acc_norm.inverse(out)
        else:
            v_next = self.acc_norm.inverse(out)
        return x_t + v_next

    def next_positions(self, g: Data, pos_hist: Tensor | None = None, action: Tensor | None = None) -> Tensor:
        """Predicted positions at t+1 ``[M, D]`` (leaves meaningful; roots are helpers)."""
        pos_hist = g.pos_hist if pos_hist is None else pos_hist
        nxt = self.integrate(pos_hist, self(g, pos_hist, action))
        if self.config.shape_matching:
            group = torch.where(g.node_type == NodeType.LEAF, g.instance, torch.full_like(g.instance, -1))
            if "batch" in g and g.batch is not None:
                group = torch.where(group >= 0, g.batch * (int(g.instance.max()) + 1) + group, group)
            nxt = shape_match(pos_hist[:, -1], nxt, group)
        return nxt

    def loss(self, g: Data, generator: torch.Generator | None = None, rebuild_edges: bool = False,
             wall_penalty: float = 0.0, errors: bool = True, velocity_weight: float = 0.0,
             bulk_weight: float = 0.0) -> Tensor:
        """Rollout loss: MSE of predicted positions in units of the one-step target's std
        (leaves; observed leaves in the partially observable mode), with GNS input noise
        on the first history in training.

        One step ahead (``g.target_pos``) for one-step samples.  For K-step samples
        (``g.target_seq`` ``[M, K, D]``, see :mod:`physics.models.data`) the model rolls
        out K steps on its own predictions, as in a test rollout, and the K errors are
        averaged; gradients flow through the whole unroll.  The root positions are
        the means of their leaves' predictions, as the graph builder makes them.
        Within the unroll the edges stay those of the first state, unless
        ``rebuild_edges``: then before every step after the first the dynamic
        neighbour edges (``Relation.NEIGHBOR``, wall markers included) are searched
        again among the predicted leaf positions, as a test rollout's graph builder
        does (:meth:`with_neighbors_of`); fixed and hierarchy edges stay those of the
        first state (``box_bounds`` too).  A particle that reaches a wall within the
        unroll then sees the wall's markers.

        ``wall_penalty`` w > 0 adds w times the containment penalty of every predicted
        step (:func:`wall_excess`: how far each moving leaf lies past the container
        the first state's wall markers outline, ``box_bounds``, in the same units),
        averaged over the steps like the errors; it needs ``graph.wall_box`` > 0.
        The container is the first state's: exact for static walls (fluidfall,
        boxbath), a step's motion off for a moving one (fluidshake).

        ``velocity_weight`` w > 0 (K-step samples) adds w times the mean squared velocity error,
        in the same units, of the unrolled steps: each step's predicted displacement (from the
        state the unroll stands on) against the true one (from the true previous frame), over
        the leaves and steps ``g.vel_mask_seq`` ``[M, K]`` marks (every step when the sample
        has no such field; nothing when it marks none).  A position loss lets a lost impulse
        pass as a small early error; this term charges it at the steps it is lost.

        ``bulk_weight`` w > 0 adds w times the squared error of each graph's bulk step: the mean,
        over the graph's moving leaves (:meth:`moving_leaves`: wall markers left out), of the
        position errors, in the same units, of every predicted step (averaged over the steps like
        the errors).  The per-particle error of a model trained with input noise is mostly the
        noise it corrects; a bias that moves every particle the same way (a blob falling at the
        wrong rate) is a small part of it, but it grows quadratically over a rollout.  Averaged
        over a graph's particles the noise cancels and the bias stays
        (``docs/results/particles.md``, fluidfall, twentieth session).

        ``errors=False`` leaves the error terms out: the loss is the penalty alone, for
        states with no ground truth to compare with (the model's own rollouts,
        :mod:`physics.models.own_states`); the unroll is the same.

        Raises:
            ConfigError: ``wall_penalty`` > 0 on a graph without ``box_bounds``, or
                ``errors=False`` without a penalty (nothing to train).
        """
        if not errors and not wall_penalty > 0:
            raise ConfigError("loss(errors=False) is the containment penalty alone: give wall_penalty > 0")
        if wall_penalty > 0 and "box_bounds" not in g:
            raise ConfigError("wall_penalty > 0 needs the container's bounds: give the model graph.wall_box > 0 "
                              "(--set graph.wall_box=...) in a particle world with wall markers")
        pos_hist = g.pos_hist
        if self.training and self.config.noise_std > 0:
            pos_hist = pos_hist + random_walk_noise(pos_hist, self.config.noise_std, generator)
        mask = g.node_type == NodeType.LEAF
        if self.config.partially_observed:
            mask = mask & g.observed
        if "target_seq" not in g:
            nxt = self.next_positions(g, pos_hist)
            out = pos_hist.new_zeros(())
            if errors:
                out = out + (((nxt[mask] - g.target_pos[mask]) / self.acc_norm.std) ** 2).mean()
            if errors and bulk_weight > 0:
                out = out + bulk_weight * self.bulk_error(g, nxt, g.target_pos, mask)
            if wall_penalty > 0:
                out = out + wall_penalty * wall_excess(nxt[mask], g.box_bounds[mask], self.acc_norm.std)
            return out
        horizon = g.target_seq.shape[1]
        total = pos_hist.new_zeros(())
        vel_sum, vel_count = pos_hist.new_zeros(()), 0.0
        vmask = g.vel_mask_seq.bool() if velocity_weight > 0 and "vel_mask_seq" in g else None
        for k in range(horizon):
            nxt = self.next_positions(g, pos_hist, g.action_seq[:, k])
            if errors:
                total = total + (((nxt[mask] - g.target_seq[mask, k]) / self.acc_norm.std) ** 2).mean()
            if errors and bulk_weight > 0:
                total = total + bulk_weight * self.bulk_error(g, nxt, g.target_seq[:, k], mask)
            if errors and velocity_weight > 0:
                # a sample built from input states (data.py's input_positions) holds the true one as true_last
                first = g.true_last if "true_last" in g else g.pos_hist[:, -1]
                prev_true = first if k == 0 else g.target_seq[:, k - 1]
                sel = mask if vmask is None else mask & vmask[:, k]
                err = (((nxt - pos_hist[:, -1]) - (g.target_seq[:, k] - prev_true)) / self.acc_norm.std) ** 2
                vel_sum = vel_sum + err[sel].mean(-1).sum()
                vel_count += float(sel.sum())
            if wall_penalty > 0:
                total = total + wall_penalty * wall_excess(nxt[mask], g.box_bounds[mask], self.acc_norm.std)
            if k + 1 < horizon:
                pos_hist = torch.cat([pos_hist[:, 1:], self._roots_as_leaf_means(g, nxt)[:, None]], dim=1)
                if rebuild_edges:
                    g = self.with_neighbors_of(g, pos_hist[:, -1])
        if vel_count:
            total = total + velocity_weight * horizon * vel_sum / vel_count
        return total / horizon

    @staticmethod
    def moving_leaves(g: Data, mask: Tensor) -> Tensor:
        """``mask`` without the wall markers of a particle world: where ``g`` holds ``box_bounds``
        (``graph.wall_box`` > 0), the rows with a finite container (the markers' rows, and those of
        scenes without markers, are infinite); ``mask`` itself when that leaves nothing."""
        if "box_bounds" in g:
            moving = mask & torch.isfinite(g.box_bounds[:, 0, 0])
            if bool(moving.any()):
                return moving
        return mask

    def bulk_error(self, g: Data, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """The mean over the graphs of a batch of the squared error (mean over the D axes, in units of
        the one-step target's std) of each graph's mean predicted position of its moving leaves
        (:meth:`moving_leaves` of ``mask``) against the mean target; ``pred``, ``target`` ``[M, D]``."""
        rows = self.moving_leaves(g, mask)
        err = (pred[rows] - target[rows]) / self.acc_norm.std
        batch = g.batch[rows] if getattr(g, "batch", None) is not None else torch.zeros_like(rows.nonzero()[:, 0])
        n = int(batch.max()) + 1 if batch.numel() else 0
        if n == 0:
            return pred.new_zeros(())
        sums = err.new_zeros(n, err.shape[1]).index_add(0, batch, err)
        counts = err.new_zeros(n).index_add(0, batch, torch.ones_like(batch, dtype=err.dtype))
        used = counts > 0
        return ((sums[used] / counts[used, None]) ** 2).mean()

    def with_neighbors_of(self, g: Data, pos: Tensor) -> Data:
        """A shallow copy of graph (batch) ``g`` whose dynamic neighbour edges are those of the leaf
        positions ``pos`` ``[M, D]`` (:meth:`GraphBuilder.neighbor_edges`, no edge between two graphs
        of a batch); the other edges (fixed, hierarchy) and every node field are kept.

        Raises:
            ConfigError: the model's graph has no neighbour radius.
        """
        rows = (g.node_type == NodeType.LEAF).nonzero(as_tuple=True)[0]
        batch = g.batch[rows] if getattr(g, "batch", None) is not None else None
        ne = rows[GraphBuilder(self.config.graph).neighbor_edges(pos[rows].detach(), batch)]
        keep = g.edge_type != Relation.NEIGHBOR
        out = copy.copy(g)
        out.edge_index = torch.cat([g.edge_index[:, keep], ne], 1)
        out.edge_type = torch.cat([g.edge_type[keep], torch.full_like(ne[0], int(Relation.NEIGHBOR))])
        out.edge_attr = torch.cat([g.edge_attr[keep], g.edge_attr.new_zeros(ne.shape[1], g.edge_attr.shape[1])])
        return out

    @staticmethod
    def _roots_as_leaf_means(g: Data, pos: Tensor) -> Tensor:
        """``pos`` ``[M, D]`` with each root's row replaced by the mean of its leaves' rows."""
        sel = g.edge_type == Relation.LEAF_ROOT
        if not bool(sel.any()):
            return pos
        s, r = g.edge_index[:, sel]
        acc = torch.zeros_like(pos).index_add(0, r, pos[s])
        cnt = torch.zeros(pos.shape[0], device=pos.device, dtype=pos.dtype).index_add(0, r, torch.ones_like(r, dtype=pos.dtype))
        roots = (g.node_type != NodeType.LEAF)[:, None]
        return torch.where(roots & (cnt[:, None] > 0), acc / cnt.clamp(min=1)[:, None], pos)

    @staticmethod
    def check_finite(x: Tensor, where: str) -> None:
        if not torch.isfinite(x).all():
            raise StateError(f"{where}: prediction holds NaN or inf")

    def stage_edges(self, g: Data, relations: tuple[Relation, ...]) -> tuple[Tensor, Tensor]:
        """Indices into the edge list ``[E_s]`` and ``edge_index`` ``[2, E_s]`` of the given relation types."""
        mask = torch.zeros_like(g.edge_type, dtype=torch.bool)
        for rel in relations:
            mask |= g.edge_type == rel
        idx = mask.nonzero(as_tuple=True)[0]
        return idx, g.edge_index[:, idx]


def wall_excess(pos: Tensor, bounds: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """Containment penalty: the mean over the rows of ``pos`` ``[M, D]`` of the squared distances
    (divided by ``scale``) by which each lies past the walls of its container ``bounds``
    ``[M, 2, D]`` (``box_bounds``: below ``lo`` on every axis, above ``hi`` on every axis but the
    last, open on top); 0 inside and for rows without walls (infinite bounds).  Its gradient
    points each outside row straight back across the wall it passed."""
    d = pos.shape[1]
    if pos.shape[0] == 0:
        return pos.new_zeros(())
    pos, bounds = pos / scale, bounds / scale  # scale: a number or one per axis [D]
    past = torch.cat([bounds[:, 0] - pos, (pos - bounds[:, 1])[:, : d - 1]], 1).clamp(min=0.0)
    return (past**2).sum(1).mean()


MODELS: Registry[type[DynamicsModel]] = Registry(
    "dynamics model",
    modules=("physics.models.interaction_network", "physics.models.propnet", "physics.models.dpinet", "physics.models.gns"),
)


def register_model(cls: type[DynamicsModel], *, help: str | None = None) -> type[DynamicsModel]:
    """Register simulator class ``cls`` under ``cls.name`` (call it once, after the class).

    Its per-world defaults come from :meth:`DynamicsModel.preset_config`.

    Args:
        cls: A :class:`DynamicsModel` subclass with its own ``name``.
        help: One line for ``--help`` (default: the first line of the class docstring).

    Returns:
        ``cls``, so the call can also decorate the class.
    """
    return MODELS.register_class(cls, DynamicsModel, help=help)
