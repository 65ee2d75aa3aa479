"""The spin input: which spheres slide, read from the truth or from a track (off by default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from physics.errors import ConfigError
from physics.graph.builder import NodeType
from physics.models.base import DynamicsModel
from physics.models.video_propnet.config import (
    ROLL_RATIO,
    SLIDE_INPUT,
    SPIN_CHANNEL,
    SPIN_MIN_SPEED,
    SPIN_SLOPE,
    SPIN_WINDOW,
    STATE_DIM,
)
from physics.worlds.clevr_properties import SIZE_RADIUS
from physics.worlds.clevrer_annotation import FrameStates
from physics.worlds.clevrer_world import ClevrerConfig


def sliding_states(frames: Sequence[FrameStates], ids: Sequence[int], shapes: Mapping[int, str]) -> np.ndarray:
    """``[T, N]`` bool: sphere ``ids[k]`` slides at frame ``t`` by the truth's spin.

    Sliding: a sphere moving at ``SPIN_MIN_SPEED`` or faster whose spin about the floor's axes
    is short of rolling (``|angular velocity (x, y)| x radius < ROLL_RATIO x |velocity (x, y)|``).
    Absent objects, cubes and cylinders are False.
    """
    radius = SIZE_RADIUS[ClevrerConfig().size]
    out = np.zeros((len(frames), len(ids)), bool)
    for t, fr in enumerate(frames):
        by = fr.by_id()
        for k, oid in enumerate(ids):
            o = by.get(oid)
            if o is None or shapes.get(oid) != "sphere":
                continue
            v = float(np.linalg.norm(np.asarray(o.velocity[:2], float)))
            w = float(np.linalg.norm(np.asarray(o.angular_velocity[:2], float)))
            out[t, k] = v >= SPIN_MIN_SPEED and w * radius < ROLL_RATIO * v
    return out


def spin_actions(actions: np.ndarray, sliding: np.ndarray) -> np.ndarray:
    """``actions`` ``[T, N, D]`` with ``SLIDE_INPUT`` in the orientation channel where ``sliding`` ``[T, N]``."""
    out = np.array(actions, np.float32, copy=True)
    out[..., 2] = np.where(sliding, SLIDE_INPUT, out[..., 2])
    return out


def sliding_read(xy: np.ndarray, window: int = SPIN_WINDOW, slope: float = SPIN_SLOPE, fps: float = 25.0) -> tuple[bool, float]:
    """Whether a track's last ``window + 1`` centres ``[window + 1, 2]`` read as a sliding sphere.

    The slope of a line fitted to the step lengths (units/s a frame) below ``slope`` reads as
    sliding; also returns the line's speed at the window's first step (units/s), from which a
    rollout lets the sphere roll at ``ROLL_SPEED`` times it.  NaN anywhere: not sliding.
    """
    xy = np.asarray(xy, float)
    if xy.shape[0] < 3 or np.isnan(xy).any():
        return False, 0.0
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1) * fps
    b, a = np.polyfit(np.arange(len(steps)), steps, 1)
    return bool(b < slope and steps[-1] >= SPIN_MIN_SPEED), float(a)


def grow_spin_input(model: DynamicsModel) -> DynamicsModel:
    """Zero the node encoder's first weights on the spin channel of the action, in place; returns ``model``.

    A model trained without the spin input saw 0 in :data:`SPIN_CHANNEL` of every action (its
    action normaliser does not centre), so its weights on that channel never trained: zeroed,
    the model gives the same outputs as unzeroed for any action, ``SLIDE_INPUT`` or not, and a
    fine-tune on a ``--spin`` pack (``nesy train video-dynamics --init ... --grow-spin``) grows
    the input from there (``docs/results/clevrer.md``, twenty-second session, nsdr2).

    Raises:
        ConfigError: a model whose node encoder does not read the plain action layout
            (velocities of the history, attributes, action, node type), or whose action
            normaliser centres the spin channel (zeroing would then change its outputs).
    """
    cfg = model.config
    first = model.node_encoder[0]
    if cfg.partially_observed or cfg.dim != STATE_DIM or not isinstance(first, torch.nn.Linear):
        raise ConfigError(f"grow_spin_input needs a fully observed {STATE_DIM}-D model with a linear node encoder, "
                          f"got dim {cfg.dim}, partially_observed {cfg.partially_observed}")
    column = cfg.graph.history * cfg.dim + cfg.node_attr_dim + SPIN_CHANNEL
    expected = cfg.graph.history * cfg.dim + cfg.node_attr_dim + cfg.dim + len(NodeType)
    if first.in_features != expected:
        raise ConfigError(f"grow_spin_input: the node encoder reads {first.in_features} inputs, expected {expected} "
                          "(history velocities, attributes, action, node type)")
    if float(model.action_norm.mean[SPIN_CHANNEL]) != 0.0:
        raise ConfigError("grow_spin_input: the action normaliser centres the spin channel "
                          f"(mean {float(model.action_norm.mean[SPIN_CHANNEL])}); zeroing its weights would change the outputs")
    with torch.no_grad():
        first.weight[:, column] = 0.0
    return model
