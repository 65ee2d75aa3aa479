"""Training the video PropNet on CLEVRER trajectories."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from physics.errors import ConfigError, DataError
from physics.io import PathLike
from physics.models.resolver import make_model, preset
from physics.models.training import TrainConfig, train
from physics.models.video_propnet.augment import random_rotation
from physics.models.video_propnet.config import NODE_ATTR_DIM, STATE_DIM, WORLD
from physics.models.video_propnet.trajectories import (
    contact_step_weights,
    contact_velocity_frames,
    video_trajectories,
)
from physics.trajectory import Trajectory
from physics.worlds.clevrer_annotation import VideoAnnotation
from physics.worlds.clevrer_truth import VideoTruth


def check_valid_fraction(valid_fraction: float) -> None:
    """Refuse a share of held-out videos outside [0, 1) (above 1 held out all but one video without a word).

    Raises:
        ConfigError: naming ``--valid-fraction`` and the allowed range.
    """
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) or not 0 <= valid_fraction < 1:
        raise ConfigError(f"--valid-fraction must be a share of the videos in [0, 1) (0: none held out), "
                          f"got {valid_fraction!r}")


def train_video_model(
    model_name: str,
    videos: Sequence[tuple[VideoAnnotation, VideoTruth]] | Sequence[Trajectory],
    out_dir: PathLike,
    config: TrainConfig | None = None,
    *,
    valid_fraction: float = 0.1,
    overrides: dict | None = None,
    resume: bool = False,
    meta: dict | None = None,
    progress: bool = True,
    counterfactuals: bool = False,
    contact_weight: float = 1.0,
    contact_after: int = 10,
    contact_lead: int = 0,
) -> dict:
    """Train simulator ``model_name`` (``propnet``) on videos' object trajectories with the shared loop.

    Each video (observed plus future frames) is one :func:`video_trajectory`, and with
    ``counterfactuals`` each of its counterfactual re-runs one more
    (:func:`counterfactual_trajectory`); the last ``valid_fraction`` of the videos
    (with their counterfactuals) validate (the loop keeps the best epoch in ``model.pt``).

    Args:
        model_name: Any of :data:`physics.models.MODELS`.
        videos: ``(annotation, truth)`` per video (:func:`load_video_split`), or trajectories
            (:func:`load_trajectory_pack`; ``meta["video"]`` groups a video's counterfactuals with it).
        out_dir: Run folder (``checkpoint.pt``, ``model.pt``, ``loss.jsonl``).
        config: Optimisation settings (default: :class:`TrainConfig`'s); its ``augment_rotate`` turns the training
            windows (:mod:`~physics.models.video_propnet.augment`).
        valid_fraction: Share of the videos held out for validation (0: none).
        overrides: ModelConfig fields changed from the ``clevrer`` preset.
        counterfactuals: Train on the truth's counterfactual re-runs too (pairs only; a pack holds what it holds).
        contact_weight: Relative chance of drawing a step around a contact (:func:`contact_step_weights`;
            1: every step alike).
        contact_after: Frames after a contact that count as around it.
        contact_lead: With L > 0 a contact sample starts from L frames before a contact
            (:func:`contact_step_weights`'s ``lead``; 0: the window ends no earlier than the contact).
            With ``config.velocity_weight`` > 0 the loss also charges the velocity error of the
            frames ``c .. c + contact_after`` of every collision ``c`` (:func:`contact_velocity_frames`),
            and the metadata records the weight.

    Raises:
        DataError: fewer than two videos, or a video unfit for training.
        ConfigError: ``contact_lead`` below 0, or above 0 with ``contact_weight`` 1 (no contact samples to lead),
            or ``valid_fraction`` outside [0, 1).
    """
    config = config or TrainConfig()
    check_valid_fraction(valid_fraction)
    if contact_lead < 0 or (contact_lead and contact_weight == 1.0):
        raise ConfigError(f"contact_lead must be >= 0 and needs contact_weight != 1 (--contact-weight): got lead "
                          f"{contact_lead}, weight {contact_weight}")
    if videos and isinstance(videos[0], Trajectory):
        trajs = list(videos)
    else:
        trajs = [t for a, tr in videos for t in video_trajectories(a, tr, counterfactuals)]
    groups: dict = {}
    for t in trajs:
        groups.setdefault(t.meta.get("video", t.meta.get("name")), []).append(t)
    order = list(groups)
    if len(order) < 2:
        raise DataError(f"training the video PropNet needs at least 2 videos, got {len(order)}")
    n_valid = int(round(len(order) * valid_fraction)) if valid_fraction > 0 else 0
    n_valid = min(max(n_valid, 1 if valid_fraction > 0 else 0), len(order) - 1)
    if contact_weight != 1.0:
        trajs = [dataclasses.replace(t, meta={**t.meta, "step_weights": contact_step_weights(
            t, contact_weight, contact_after, horizon=config.rollout_steps, lead=contact_lead).tolist()}) for t in trajs]
    if config.velocity_weight > 0:
        trajs = [dataclasses.replace(t, meta={**t.meta, "velocity_frames": contact_velocity_frames(
            t, contact_after).tolist()}) for t in trajs]
    if contact_weight != 1.0 or config.velocity_weight > 0:
        groups = {}
        for t in trajs:
            groups.setdefault(t.meta.get("video", t.meta.get("name")), []).append(t)
    train_trajs = [t for k in order[: len(order) - n_valid] for t in groups[k]]
    valid_trajs = [t for k in order[len(order) - n_valid :] for t in groups[k]]
    torch.manual_seed(config.seed)
    mcfg = preset(WORLD, model_name, dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM, edge_attr_dim=0, **(overrides or {}))
    model = make_model(model_name, mcfg)
    info = {**(meta or {}), "world": WORLD, "train_videos": len(order) - n_valid, "valid_videos": n_valid,
            "train_trajectories": len(train_trajs), "contact_weight": contact_weight, "contact_after": contact_after,
            **({"contact_lead": contact_lead} if contact_lead else {}),
            **({"velocity_weight": config.velocity_weight} if config.velocity_weight > 0 else {})}
    return train(model, train_trajs, valid_trajs, out_dir, config, resume=resume, meta=info, progress=progress,
                 rotate=random_rotation)
