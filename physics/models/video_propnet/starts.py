"""Rollout starts: the state a future rollout begins from (fitted, velocity-fitted, late-collision, jittered)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from physics.errors import ConfigError
from physics.models.video_propnet.config import VELOCITY_FIT_MIN


def fitted_start(observed: np.ndarray, t_pred: int, history: int, window: int, residual: float) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with the x, y of the history before frame ``t_pred`` fitted (``RolloutConfig.start_fit``).

    Per object seen in all of the ``window`` frames before ``t_pred``: a parabola in time
    through those centres (least squares, x and y apart); where every centre lies within
    ``residual`` of it, the history frames (``t_pred - 1 - history .. t_pred - 1``) take the
    fitted centres.  Objects with a gap in the window, or a worse fit (a touch, a launch),
    keep their observed history.  ``window`` must exceed ``history + 1``.
    """
    if window < history + 2:
        raise ConfigError(f"start_fit {window} frames cannot fit a history of {history + 1} frames; need >= {history + 2}")
    out = observed.copy()
    lo = t_pred - window
    if lo < 0:
        return out
    t = np.arange(window, dtype=float) - (window - 1)  # the last observed frame at 0
    basis = np.stack([np.ones(window), t, t * t], axis=1)  # [W, 3]
    for i in range(observed.shape[1]):
        xy = observed[lo:t_pred, i, :2]
        if np.isnan(xy).any():
            continue
        coef, *_ = np.linalg.lstsq(basis, xy, rcond=None)
        fit = basis @ coef
        if np.linalg.norm(fit - xy, axis=1).max() <= residual:
            out[t_pred - 1 - history : t_pred, i, :2] = fit[window - 1 - history :]
    return out


def velocity_fitted_start(observed: np.ndarray, t_pred: int, history: int, window: int, last_collision: np.ndarray,
                          moving: np.ndarray, max_residual: float = 0.0) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with each moving object's history before ``t_pred`` shaped by a parabola (``RolloutConfig.start_velocity_fit``).

    Per object ``i`` with ``moving[i]``: its contiguous observed centres ending at frame
    ``t_pred - 1``, only those after frame ``last_collision[i] + 1`` (frame positions; -1:
    none), the last ``window`` of them; with at least ``VELOCITY_FIT_MIN``, a parabola in time
    is fitted to them (least squares, x and y apart) and the history frames
    ``t_pred - 1 - j`` (``j = 1 .. history``) become the last centre plus the parabola's
    change from frame ``t_pred - 1`` back to them.  The last centre, other objects and every
    other frame are unchanged.  ``max_residual`` > 0 (``RolloutConfig.counterfactual_fit_residual``):
    an object whose fitted parabola lies farther than that from one of its fitted centres keeps
    its observed history (the span holds a bounce or a jump of the track that no recorded
    collision cut off).
    """
    if window < VELOCITY_FIT_MIN:
        raise ConfigError(f"start_velocity_fit {window} frames: a parabola needs at least {VELOCITY_FIT_MIN}")
    last = t_pred - 1
    out = observed.copy()
    if last - history < 0:
        return out
    for i in range(observed.shape[1]):
        if not moving[i] or np.isnan(observed[last, i, 0]):
            continue
        lo = _fit_span(observed, i, last, last_collision[i] + 1, window)
        if lo is None:
            continue
        k = last - lo + 1
        t = np.arange(k, dtype=float) - (k - 1)  # the last observed frame at 0
        coef = np.polyfit(t, observed[lo : last + 1, i, :2], 2)  # [3, 2]
        if max_residual > 0:
            fitted = np.stack([np.polyval(coef[:, d], t) for d in range(2)], axis=1)
            if np.linalg.norm(fitted - observed[lo : last + 1, i, :2], axis=1).max() > max_residual:
                continue
        back = -np.arange(history, 0, -1, dtype=float)  # -history .. -1
        shape = np.stack([np.polyval(coef[:, d], back) - coef[2, d] for d in range(2)], axis=1)
        out[last - history : last, i, :2] = observed[last, i, :2] + shape
    return out


def _parabola_velocity(centres: np.ndarray, at: float) -> np.ndarray:
    """Velocity ``[2]`` (units a frame) at frame offset ``at`` of a parabola fitted to ``centres`` ``[K, 2]`` (frames 0 .. K-1)."""
    coef = np.polyfit(np.arange(len(centres), dtype=float), centres, 2)  # [3, 2]
    return 2.0 * coef[0] * at + coef[1]


def _fit_span(observed: np.ndarray, i: int, end: int, after: int, window: int) -> int | None:
    """First frame of object ``i``'s contiguous observed centres ending at ``end``, after frame ``after``, at most ``window``.

    None when fewer than ``VELOCITY_FIT_MIN`` frames qualify (or the object is absent at ``end``).
    """
    if end < 0 or np.isnan(observed[end, i, 0]):
        return None
    lo = end
    while lo - 1 >= 0 and lo - 1 > after and not np.isnan(observed[lo - 1, i, 0]) and end - lo + 1 < window:
        lo -= 1
    return lo if end - lo + 1 >= VELOCITY_FIT_MIN else None


def late_collision_start(observed: np.ndarray, t_pred: int, history: int, window: int, frames: int,
                         contacts: Mapping[int, Mapping[int, Sequence[int]]], ids: Sequence[int], restitution: float,
                         min_speed: float) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with the history of each object struck in the last ``frames`` observed frames set from an exchange (``RolloutConfig.late_collision_start``).

    For object ``i`` whose last recorded collision (frame ``c``, one partner ``j``) lies in the
    last ``frames`` observed frames (``c >= t_pred - frames``) and leaves fewer than
    ``VELOCITY_FIT_MIN`` centres after ``c + 1`` (so :func:`velocity_fitted_start` cannot fit
    it), both objects' velocities at ``c`` come from parabolas fitted to their last ``window``
    contiguous centres before ``c`` (after each one's earlier collision + 1, at least
    ``VELOCITY_FIT_MIN``).  When the pair closes in along the line of their centres at ``c`` at
    ``min_speed`` (units a frame) or faster, ``i``'s history frames become its last centre minus
    the equal-mass exchange's velocity (``restitution``, as ``contact_carry``) times 1 ..
    ``history``.  Otherwise (no approach: a phantom), an object with two partners at ``c``,
    one absent at ``c`` or at the last frame, or too few centres for a fit keeps its history;
    so do the last centres and every other frame.  ``contacts``: ``object id -> partner id ->
    frame positions`` (:func:`_contact_frames`); ``ids``: the object id of each column.
    """
    if window < VELOCITY_FIT_MIN:
        raise ConfigError(f"late_collision_start needs start_velocity_fit >= {VELOCITY_FIT_MIN}, got {window}")
    last = t_pred - 1
    out = observed.copy()
    if last - history < 0:
        return out
    col = {k: n for n, k in enumerate(ids)}

    def before(k: int, c: int) -> int:
        return max([f for fr in contacts.get(k, {}).values() for f in fr if f < c], default=-1)

    for i, k in enumerate(ids):
        if np.isnan(observed[last, i, 0]):
            continue
        c = before(k, t_pred)
        if c < t_pred - frames or last - (c + 2) + 1 >= VELOCITY_FIT_MIN:  # none late, or enough centres to fit
            continue
        partners = [o for o, fr in contacts.get(k, {}).items() if c in fr]
        if len(partners) != 1 or partners[0] not in col:
            continue
        j = col[partners[0]]
        if np.isnan(observed[c, i, 0]) or np.isnan(observed[c, j, 0]):
            continue
        vel = []
        for n, m in ((i, k), (j, partners[0])):
            lo = _fit_span(observed, n, c - 1, before(m, c) + 1, window)
            vel.append(None if lo is None else _parabola_velocity(observed[lo:c, n, :2], c - lo))
        if vel[0] is None or vel[1] is None:
            continue
        line = observed[c, j, :2] - observed[c, i, :2]
        dist = float(np.linalg.norm(line))
        closing = float((vel[0] - vel[1]) @ line) / dist if dist > 0 else 0.0
        if closing < min_speed:  # no approach before the contact: a phantom, history kept
            continue
        v = vel[0] - 0.5 * (1.0 + restitution) * closing * line / dist
        steps = np.arange(history, 0, -1, dtype=float)[:, None]  # history .. 1 frames back
        out[last - history : last, i, :2] = observed[last, i, :2] - steps * v
    return out


def _jittered(observed: np.ndarray, t_pred: int, history: int, shift: np.ndarray, turn: np.ndarray,
              speed: np.ndarray) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with the history before frame ``t_pred`` perturbed (see ``_run``)."""
    out = observed.copy()
    lo, last = max(t_pred - 1 - history, 0), t_pred - 1
    if last < 0:
        return out
    anchor = observed[last, :, :2]
    rel = observed[lo : last + 1, :, :2] - anchor  # [H+1, N, 2]
    c, s = np.cos(turn), np.sin(turn)
    turned = np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], axis=-1)
    out[lo : last + 1, :, :2] = anchor + turned * (1.0 + speed)[:, None] + shift
    return out
