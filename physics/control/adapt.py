"""Online model adaptation in the planner (adaptive MPC): a per-episode gain on predicted displacements.

A learned simulator can be systematically wrong on the states a planner drives
it to: the boxes PropNet predicts about half of a pushed box's displacement over
the planning horizon on the planner's own episodes (0.97 of it on the random
policy's episodes; ``docs/results/control.md``).  During an episode the
environment shows what really happened, so the planner can fit a correction to
the model as it goes, the usual move of adaptive model-predictive control.

:class:`OnlineCorrection` keeps the episode's recorded world steps and the
executed actions.  Before each plan it re-runs the planning model over the most
recent window the horizon spans (from the state ``horizon`` control steps ago,
with the actions that were really executed) and compares the displacement of
every *passive* node (all but the actuated one) from the window's start with
the true one, at each lead time ``j = 1 .. horizon * repeat`` world steps.  The
gain is the regularised least-squares fit of ``true ~ gain * predicted`` over
the last ``window`` such windows (planar ``x, y`` only)::

    gain_j = (prior + sum d_true . d_pred) / (prior + sum |d_pred|^2)

clipped to ``[1 / max_gain, max_gain]``; ``prior`` (m^2) pulls it towards 1 when
little has moved.  Mode ``gain`` pools every lead time into one scalar; mode
``lead`` fits one gain per lead time (the model's error grows with the lead
time: a pushed box lags more the longer the model rolls out on its own).
:meth:`OnlineCorrection.apply` scales the passive nodes' predicted planar
displacement from the current state by the gain of its lead time; it is linear,
so gradients still flow to the actions.

The simulator as the planning model is exact (``PlanningModel.exact``) and is
never corrected.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import Tensor

from physics.errors import ConfigError

__all__ = ["ADAPT_MODES", "OnlineCorrection"]

ADAPT_MODES = ("none", "gain", "lead")


class OnlineCorrection:
    """A per-episode gain on a planning model's predicted displacements of the passive nodes.

    Args:
        model: The planning model (:class:`~physics.control.model.PlanningModel`), bound to the episode.
        actuated: Index of the actuated node (never corrected: the action drives it).
        lead_steps: World steps the plans roll out (``horizon * repeat``); the fitted lead times.
        mode: ``"gain"`` (one scalar) or ``"lead"`` (one gain per lead time).
        window: Most recent windows the fit uses (one per control step).
        prior: Regulariser (m^2): pseudo-observations of a gain of 1.
        max_gain: The gain is clipped to ``[1 / max_gain, max_gain]``.

    Raises:
        ConfigError: an unknown mode or a non-positive setting.
    """

    def __init__(self, model, actuated: int, lead_steps: int, mode: str = "lead", window: int = 10,
                 prior: float = 2.5e-5, max_gain: float = 3.0) -> None:
        if mode not in ADAPT_MODES[1:]:
            raise ConfigError(f"OnlineCorrection: mode must be one of {ADAPT_MODES[1:]}, got {mode!r}")
        if lead_steps < 1 or window < 1 or not prior > 0 or not max_gain >= 1:
            raise ConfigError("OnlineCorrection: lead_steps >= 1, window >= 1, prior > 0 and max_gain >= 1 are required, "
                              f"got {lead_steps}, {window}, {prior}, {max_gain}")
        self.model, self.actuated, self.lead_steps, self.mode = model, int(actuated), int(lead_steps), mode
        self.prior, self.max_gain = float(prior), float(max_gain)
        self._sums: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=int(window))
        self._frames: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._fitted_to = 0  # recorded world steps the last fit saw
        self.gains = np.ones(self.lead_steps)

    def start(self, state: np.ndarray) -> None:
        """Begin an episode at recorded positions ``state`` ``[N, 3]`` (forgets everything)."""
        self._frames = [np.asarray(state, dtype=np.float64)]
        self._actions = []
        self._sums.clear()
        self._fitted_to = 0
        self.gains = np.ones(self.lead_steps)

    def record(self, frames: np.ndarray, actions: np.ndarray) -> None:
        """Append the recorded world steps of one control step: positions ``[k, N, 3]`` and the
        per-node world action that led to each ``[k, N, 3]``."""
        frames, actions = np.asarray(frames, dtype=np.float64), np.asarray(actions, dtype=np.float64)
        if frames.shape != actions.shape or frames.shape[1:] != self._frames[0].shape:
            raise ConfigError(f"OnlineCorrection.record: frames and actions must both be [k, N, 3], "
                              f"got {frames.shape} and {actions.shape}")
        self._frames.extend(frames)
        self._actions.extend(actions)

    def update(self) -> np.ndarray:
        """Fit the gains on the newest window (called before each plan); returns them ``[lead_steps]``."""
        t = len(self._actions)
        if t == 0 or t == self._fitted_to:
            return self.gains
        self._fitted_to = t
        s = max(0, t - self.lead_steps)  # the window: recorded steps s .. t
        h1 = self.model.history_frames
        hist = np.stack([self._frames[max(0, i)] for i in range(s - h1 + 1, s + 1)])  # at rest before the start
        acts = np.stack(self._actions[s:t])[None]
        with torch.no_grad():
            pred = self.model.predict(torch.as_tensor(hist, dtype=torch.float32),
                                      torch.as_tensor(acts, dtype=torch.float32))[0].double().numpy()
        passive = np.ones(pred.shape[1], bool)
        passive[self.actuated] = False
        start = self._frames[s][passive, :2]
        d_pred = pred[:, passive, :2] - start  # [L, P, 2]
        d_true = np.stack(self._frames[s + 1:t + 1])[:, passive, :2] - start
        num, den = np.zeros(self.lead_steps), np.zeros(self.lead_steps)
        num[: t - s] = (d_true * d_pred).sum(axis=(1, 2))
        den[: t - s] = (d_pred * d_pred).sum(axis=(1, 2))
        self._sums.append((num, den))
        num = sum(n for n, _ in self._sums)
        den = sum(d for _, d in self._sums)
        if self.mode == "gain":
            num, den = np.full(self.lead_steps, num.sum()), np.full(self.lead_steps, den.sum())
        self.gains = np.clip((self.prior + num) / (self.prior + den), 1.0 / self.max_gain, self.max_gain)
        return self.gains

    def apply(self, current: Tensor, positions: Tensor) -> Tensor:
        """Corrected predictions: every passive node's planar displacement from ``current`` ``[N, 3]``
        scaled by its lead time's gain (``positions`` ``[B, T, N, 3]``, ``T <= lead_steps``)."""
        t, n = positions.shape[1], positions.shape[2]
        if t > self.lead_steps:
            raise ConfigError(f"OnlineCorrection.apply: {t} predicted steps, fitted for at most {self.lead_steps}")
        passive = torch.ones(n, dtype=torch.bool)
        passive[self.actuated] = False
        scale = positions.new_ones(t, n, 3)
        scale[:, passive, :2] = positions.new_tensor(self.gains[:t])[:, None, None]  # heights stay as predicted
        base = current.to(positions.dtype)
        return base + scale * (positions - base)
