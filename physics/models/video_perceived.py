"""Perceived starting states for training the video PropNet (``nesy train video-dynamics --perceived-inputs``).

From pixels the learned rollout starts from the perceiver's states, and those are off: jittered
centres, a step's velocity off by a few hundredths of a unit a frame, two objects that touch placed
apart, and the rollout is right from true states far more often than from perceived ones
(``docs/results/clevrer.md``, twenty-fifth session, the lead's census).  So here a training trajectory keeps
its true states as targets and gets, as ``meta["input_positions"]``, the centres the pixel perceiver
gave the same objects in the observed frames (:mod:`physics.models.data` builds each sample's history
from them): the model learns to reach the true future from a perceived start.

* :func:`match_tracks` names each perceived track's true object (a track split in two maps both
  halves to one object; per frame the nearer one is kept).
* :func:`with_perceived_inputs` writes the inputs: the perceived centre (x, y) where the object was
  perceived within ``max_distance`` of the truth, the true state elsewhere (frames after the video,
  objects not seen, the orientation channel: the pixel perceiver reads no yaw, and the targets hold
  the true one).  For a counterfactual re-run (``factual`` given) only the frames where the object is
  still where the video shows it (within ``tolerance``) take the perceived centre: a test rollout
  follows the perceived video there too, and predicts from it after.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from physics.errors import ConfigError, DataError
from physics.trajectory import Trajectory

__all__ = ["MATCH_DISTANCE", "MIN_COMMON_FRAMES", "match_tracks", "with_perceived_inputs"]

MATCH_DISTANCE = 0.5  # units: a perceived centre farther than this from its object's true one is a misread, not noise
MIN_COMMON_FRAMES = 3  # a perceived track seen with its object in fewer frames is not matched


def match_tracks(true_xy: np.ndarray, perceived_xy: np.ndarray, max_distance: float = MATCH_DISTANCE) -> np.ndarray:
    """For every frame and true object, the index of the perceived track that stands for it, or -1.

    Each perceived track goes to the true object its centres lie nearest to (median distance over the
    frames both are present, at most ``max_distance``); where two tracks of one object overlap in a
    frame, the nearer one is kept.

    Args:
        true_xy: ``[T, N, 2]`` true centres (NaN where absent).
        perceived_xy: ``[T, P, 2]`` perceived centres, the same frames (NaN where not perceived).
        max_distance: Largest median distance of a match (units).

    Returns:
        ``[T, N]`` int: perceived track index per frame and true object (-1: none).

    Raises:
        ConfigError: ``max_distance`` not a positive number.
        DataError: the two arrays cover different frames.
    """
    if not max_distance > 0:
        raise ConfigError(f"match_tracks: max_distance must be > 0 units, got {max_distance}")
    if true_xy.shape[0] != perceived_xy.shape[0] or true_xy.shape[2:] != (2,) or perceived_xy.shape[2:] != (2,):
        raise DataError(f"match_tracks: true [T, N, 2] and perceived [T, P, 2] centres of the same frames needed, got "
                        f"{true_xy.shape} and {perceived_xy.shape}")
    t, n = true_xy.shape[:2]
    out = np.full((t, n), -1, np.int64)
    if n == 0 or perceived_xy.shape[1] == 0:
        return out
    dist = np.linalg.norm(true_xy[:, :, None, :] - perceived_xy[:, None, :, :], axis=-1)  # [T, N, P], NaN: absent
    best = np.full((t, n), np.inf)
    for p in range(perceived_xy.shape[1]):
        d = dist[:, :, p]
        common = np.isfinite(d).sum(axis=0)
        med = np.array([np.median(d[np.isfinite(d[:, k]), k]) if common[k] >= MIN_COMMON_FRAMES else np.inf
                        for k in range(n)])
        k = int(np.argmin(med))
        if not med[k] <= max_distance:
            continue
        here = np.isfinite(d[:, k]) & (d[:, k] < best[:, k])
        out[here, k] = p
        best[here, k] = d[here, k]
    return out


def with_perceived_inputs(traj: Trajectory, perceived_xy: np.ndarray, factual: np.ndarray | None = None,
                          max_distance: float = MATCH_DISTANCE, tolerance: float = 1e-3) -> Trajectory:
    """``traj`` with ``meta["input_positions"]``: its states with the perceived centres written in.

    Args:
        traj: A video's trajectory (:func:`~physics.models.video_propnet.video_trajectory`) or one of its
            counterfactual re-runs; ``positions`` ``[T, N, 3]``, the truth.
        perceived_xy: ``[T_obs, N, 2]`` the perceived centre of each of ``traj``'s objects in the observed
            frames (NaN where not perceived; :func:`match_tracks` gives the rows), ``T_obs <= T``.
        factual: For a counterfactual re-run, ``[T, N, 2]`` or longer in time: the same objects' true centres in
            the video as it happened; a frame takes the perceived centre only where the re-run's object is
            within ``tolerance`` of it (not yet changed by the removal).
        max_distance: A perceived centre farther than this from the true one is left out (a misread).
        tolerance: See ``factual`` (units).

    Returns:
        A new trajectory (the input is not changed); ``meta["perceived_frames"]`` counts the object-frames
        that took a perceived centre.

    Raises:
        ConfigError: ``max_distance`` not a positive number or ``tolerance`` not one >= 0 (a NaN took no
            perceived centre and said nothing).
        DataError: shapes that do not fit ``traj``.
    """
    if not (max_distance > 0 and tolerance >= 0):
        raise ConfigError(f"with_perceived_inputs: max_distance must be > 0 and tolerance >= 0 units, got "
                          f"{max_distance} and {tolerance}")
    pos = traj.positions
    name = traj.meta.get("name", "trajectory")
    t_obs = perceived_xy.shape[0]
    if perceived_xy.ndim != 3 or perceived_xy.shape[1:] != (pos.shape[1], 2) or t_obs > pos.shape[0]:
        raise DataError(f"{name}: perceived centres must be [T_obs <= {pos.shape[0]}, {pos.shape[1]}, 2], "
                        f"got {perceived_xy.shape}")
    use = np.isfinite(perceived_xy).all(axis=-1)
    use &= np.linalg.norm(np.nan_to_num(perceived_xy) - pos[:t_obs, :, :2], axis=-1) <= max_distance
    if factual is not None:
        if factual.ndim != 3 or factual.shape[1:] != (pos.shape[1], 2) or factual.shape[0] < t_obs:
            raise DataError(f"{name}: factual centres must be [T >= {t_obs}, {pos.shape[1]}, 2], got {factual.shape}")
        use &= np.linalg.norm(factual[:t_obs] - pos[:t_obs, :, :2], axis=-1) <= tolerance
    inputs = np.array(pos, np.float32, copy=True)
    inputs[:t_obs, :, :2] = np.where(use[..., None], perceived_xy, pos[:t_obs, :, :2])
    meta = {**traj.meta, "input_positions": inputs, "perceived_frames": int(use.sum())}
    return dataclasses.replace(traj, meta=meta)
