"""Sound of Motions: separation conditioned on dense trajectories fused with appearance, with a curriculum.

Zhao, Gan, Ma and Torralba, "The Sound of Motions", ICCV 2019 (arXiv
1904.05979).  Two instruments that look the same cannot be told apart by a
clip's appearance (Sound of Pixels sees two identical vectors), but they move
differently, and an instrument's sound follows its motion.  The model:

* **Dense trajectories** (:mod:`~perception.audiovisual.dense_trajectories`):
  points on a 4-pixel grid of the first frame followed by pyramidal
  Lucas-Kanade flow through the clip (computed from the frames, not from the
  simulator's motion).
* **Trajectory network** (:class:`TrajectoryNet`): per track, its appearance
  (the Sound of Pixels pixel features at its start point, K channels) beside its
  per-frame displacement (dx, dy, length), through two temporal convolutions,
  then the maximum over tracks: a motion-appearance code ``m(t)``, D channels per
  video frame step (appearance x motion fusion: "how fast does something that
  looks like an instrument move now").
* **Fusion with the audio network** (the paper fuses time-aligned visual
  features into the separation network): ``m`` is resampled to the
  spectrogram's frames and fed to the U-Net as extra input maps: ``m(t)`` tiled
  over frequency, and the correlation over time of each frequency bin's
  log-magnitude with each channel of ``m`` tiled over time (a bin whose loudness
  rises and falls with this object's motion belongs to it).  The U-Net runs once
  per source; the mask is Sound of Pixels' synthesizer over its K channels.
* **Curriculum** (the paper's): mixtures of two different categories first, then
  mixtures of two clips whose instruments look identical (category, material and
  size; ``draw_partners(..., "same-look")``).

Shapes (B mixtures of S clips; T video frames, P tracks, K appearance and D motion channels)::

    tracks     float [B, S, T, P, 2] (pixels)    code m    float [B * S, D, T - 1]
    maps       float [B * S, 2 D, F', N']        logits    float [B, S, F', N']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.audiovisual.dense_trajectories import dense_tracks, track_displacements
from perception.audiovisual.mix_separate import (
    MixtureBatch,
    SeparationClips,
    bench_pools,
    frames_float,
)
from perception.audiovisual.sound_of_pixels import (
    SoundOfPixels,
    SoundOfPixelsConfig,
    held_out_pairs,
    pooled_frames,
    separation_sdr,
    sop_forward,
    sop_logits,
    train_mix_separate,
)
from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
)
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = [
    "SoundOfMotionsConfig",
    "TrajectoryNet",
    "SoundOfMotions",
    "clip_tracks",
    "train_separator",
    "som_forward",
    "som_logits",
]

_PIXEL_SCALE = 4.0  # displacements are divided by this (pixels per frame of a fast object) before the network


@dataclass(frozen=True)
class SoundOfMotionsConfig:
    """Architecture of :class:`SoundOfMotions`.

    Args:
        appearance: The Sound of Pixels part (pixel network, U-Net widths, synthesizer channels).
        motion: D, channels of the motion-appearance code.
        hidden: Channels of the trajectory network's hidden layer.
        track_stride: Grid spacing (pixels) of the tracks' start points.
    """

    appearance: SoundOfPixelsConfig = field(default_factory=SoundOfPixelsConfig)
    motion: int = 4
    hidden: int = 16
    track_stride: int = 4

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.motion < 1 or self.hidden < 1 or self.track_stride < 1:
            raise ConfigError(f"SoundOfMotionsConfig: motion, hidden and track_stride must be >= 1, got {self}")


class TrajectoryNet(nn.Module):
    """Per-track temporal convolutions over (appearance at the start, displacement per step), max over tracks.

    ``forward(appearance [M, K, P], steps [M, T - 1, P, 3]) -> [M, D, T - 1]``.
    """

    def __init__(self, appearance: int, hidden: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(appearance + 3, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv1d(hidden, out, 3, padding=1),
        )

    def forward(self, appearance: Tensor, steps: Tensor) -> Tensor:
        m, k, p = appearance.shape
        t = steps.shape[1]
        if steps.shape != (m, t, p, 3):
            raise StateError(f"TrajectoryNet: steps {tuple(steps.shape)} do not match appearance {tuple(appearance.shape)}")
        x = torch.cat([appearance[:, :, None].expand(m, k, t, p), steps.permute(0, 3, 1, 2) / _PIXEL_SCALE], 1)
        x = x.permute(0, 3, 1, 2).reshape(m * p, k + 3, t)  # one sequence per track
        y = self.net(x).view(m, p, -1, t)
        return y.amax(1)


def _standardise(x: Tensor, dim: int) -> Tensor:
    return (x - x.mean(dim, keepdim=True)) / (x.std(dim, keepdim=True) + 1e-5)


class SoundOfMotions(nn.Module):
    """Sound of Pixels with a trajectory stream fused into its audio network (module docstring)."""

    def __init__(self, config: SoundOfMotionsConfig = SoundOfMotionsConfig()) -> None:
        super().__init__()
        self.config = config
        self.sop = SoundOfPixels(config.appearance, audio_in=1 + 2 * config.motion)
        self.trajectories = TrajectoryNet(config.appearance.channels, config.hidden, config.motion)

    def motion_code(self, features: Tensor, tracks: Tensor, size: tuple[int, int]) -> Tensor:
        """``m``: ``[M, D, T - 1]`` from first-frame pixel features ``[M, K, h, w]`` and tracks ``[M, T, P, 2]``
        in pixels of a ``size`` (H, W) frame."""
        h, w = size
        start = tracks[:, 0]  # [M, P, 2]
        grid = torch.stack([2 * start[..., 0] / (w - 1) - 1, 2 * start[..., 1] / (h - 1) - 1], -1)[:, None]
        appearance = F.grid_sample(features, grid, mode="bilinear", align_corners=True)[:, :, 0]  # [M, K, P]
        return self.trajectories(appearance, track_displacements(tracks))

    @staticmethod
    def condition_maps(code: Tensor, log_mix: Tensor, frames: int) -> Tensor:
        """The U-Net's extra inputs ``[M, 2 D, F', N']`` from ``code`` ``[M, D, T - 1]`` and ``log_mix``
        ``[M, 1, F', N']`` whose first ``frames`` columns are the clip (the rest is padding).

        Video step t (frame t to t + 1) spans the audio of frame t, centred at (t + 0.5) / T of the clip.
        """
        m, d, steps = code.shape
        n_pad = log_mix.shape[-1]
        centre = (torch.arange(frames, dtype=code.dtype) + 0.5) / frames * (steps + 1) - 0.5
        pos = centre.clamp(0, steps - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=steps - 1)
        frac = pos - lo
        per_frame = code[..., lo] * (1 - frac) + code[..., hi] * frac  # [M, D, N]
        spec = log_mix[:, 0, :, :frames]  # [M, F', N]
        corr = torch.einsum("mfn,mdn->mdf", _standardise(spec, -1), _standardise(per_frame, -1)) / frames
        tiled_time = F.pad(per_frame, (0, n_pad - frames))[:, :, None].expand(-1, -1, spec.shape[1], -1)
        tiled_freq = corr[..., None].expand(-1, -1, -1, n_pad)
        return torch.cat([tiled_time, tiled_freq], 1)

    def forward(self, batch: MixtureBatch, frames: Tensor, tracks: Tensor) -> tuple[Tensor, Tensor]:
        """Mask logits ``[B, S, F', N']`` and clip vectors ``[B, S, K]``.

        Args:
            batch: The mixtures.
            frames: float ``[B, S, T_pool, 3, H, W]``, the pooled frames; the first is the tracks' first frame.
            tracks: float ``[B, S, T, P, 2]``.
        """
        b, s = frames.shape[:2]
        feats = self.sop.pixel_features(frames)  # [B, S, T_pool, K, h, w]
        vector = self.sop.clip_vector(feats)
        code = self.motion_code(feats[:, :, 0].flatten(0, 1), tracks.flatten(0, 1), tuple(frames.shape[-2:]))
        log_mix = batch.log_mix.repeat_interleave(s, 0)  # [B * S, 1, F', N']
        maps = self.condition_maps(code, log_mix, batch.frames)
        audio = self.sop.unet(torch.cat([log_mix, maps], 1))  # [B * S, K, F', N']
        return self.sop.synthesize(audio.view(b, s, *audio.shape[1:]), vector), vector


def clip_tracks(clips: SeparationClips, stride: int) -> Tensor:
    """float ``[N, T, P, 2]``: :func:`~perception.audiovisual.dense_trajectories.dense_tracks` of every clip."""
    return torch.stack([dense_tracks(frames_float(f), stride) for f in clips.frames])


def som_forward(model: SoundOfMotions, clips: SeparationClips, batch: MixtureBatch, pair: Tensor,
                tracks: Tensor) -> tuple[Tensor, Tensor]:
    """Mask logits ``[b, 2, F', N']`` and clip vectors of the clips of ``pair`` ``[b, 2]`` (``tracks`` of every clip)."""
    cfg = model.config.appearance
    frames = pooled_frames(clips, pair.flatten(), cfg.frames).view(*pair.shape, cfg.frames, *clips.frames.shape[2:])
    return model(batch, frames, tracks[pair])


def som_logits(model: SoundOfMotions, clips: SeparationClips, batch: MixtureBatch, pair: Tensor,
               tracks: Tensor) -> Tensor:
    """The mask logits of :func:`som_forward`."""
    return som_forward(model, clips, batch, pair, tracks)[0]


def train_separator(model: nn.Module, clips: SeparationClips, bench: BenchSize, seed: int, *,
                    curriculum: float, tracks: Tensor | None = None, desc: str, per_round: int = 50) -> list[dict]:
    """Mix-and-separate training with the curriculum (:func:`~perception.audiovisual.sound_of_pixels.
    train_mix_separate`): the first ``curriculum`` of the steps on mixtures of different categories,
    the rest on mixtures of identical-looking instruments.

    ``model`` is a :class:`SoundOfMotions` (``tracks`` ``[N, T, P, 2]`` of every clip needed) or a
    :class:`SoundOfPixels`.  Returns the loop's history, one record per ``per_round`` steps.
    """
    if isinstance(model, SoundOfMotions):
        if tracks is None:
            raise ConfigError("train_separator: a SoundOfMotions model needs the clips' tracks")
        cfg = model.config.appearance

        def forward(batch: MixtureBatch, pair: Tensor) -> tuple[Tensor, Tensor]:
            return som_forward(model, clips, batch, pair, tracks)
    else:
        cfg = model.config

        def forward(batch: MixtureBatch, pair: Tensor) -> tuple[Tensor, Tensor]:
            return sop_forward(model, clips, batch, pair)

    return train_mix_separate(model, clips, bench, seed, forward=forward, disentangle=cfg.disentangle,
                              curriculum=curriculum, desc=desc, per_round=per_round)


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=240, test=120, steps=600, batch=8, lr=2e-3)
_QUICK = BenchSize(train=12, test=6, steps=3, batch=2)
_CURRICULUM = 0.5  # half the steps on different-category mixtures, then identical-looking ones


@register_perception_bench(
    "sound-of-motions",
    paper="Zhao et al., The Sound of Motions, arXiv 1904.05979",
    check="SDR on held-out mixtures of two identical-looking instruments >= appearance-only + 3 dB",
    ablation="Sound of Pixels (appearance only), same clips, curriculum, steps and seed",
)
def bench_sound_of_motions(quick: bool, seed: int) -> BenchOutcome:
    """Train both models on clips of seed range 0 of ``seed``; test on identical-looking pairs of range 1."""
    bench = _QUICK if quick else _FULL
    t0 = time.process_time()
    train, test = bench_pools(seed, bench.train, bench.test)
    som_cfg = SoundOfMotionsConfig()
    train_tracks = clip_tracks(train, som_cfg.track_stride)
    test_tracks = clip_tracks(test, som_cfg.track_stride)
    data_cpu = time.process_time() - t0
    torch.manual_seed(seed)
    ours = SoundOfMotions(som_cfg)
    hist_ours = train_separator(ours, train, bench, seed, curriculum=_CURRICULUM, tracks=train_tracks,
                                desc="sound-of-motions")
    torch.manual_seed(seed)
    plain = SoundOfPixels(som_cfg.appearance)
    hist_plain = train_separator(plain, train, bench, seed, curriculum=_CURRICULUM, desc="sound-of-motions ablation")
    pairs = held_out_pairs(test, "same-look", seed + 1)
    identical = float((test.look[pairs[:, 0]] == test.look[pairs[:, 1]]).float().mean())
    s_ours = separation_sdr(ours, test, pairs, lambda m, c, b, p: som_logits(m, c, b, p, test_tracks))
    s_plain = separation_sdr(plain, test, pairs, sop_logits)
    a, b = float(s_ours["estimate"].mean()), float(s_plain["estimate"].mean())
    checks = (
        Check("SDR on identical-looking mixtures", "dB, mean over both sources of held-out mixtures", a, b,
              ">= ablation + 3 dB", a >= b + 3.0),
    )
    figures = {
        "sdr_mixture_db": float(s_ours["mixture"].mean()),
        "sdr_improvement_db": a - float(s_ours["mixture"].mean()),
        "sdr_improvement_ablation_db": b - float(s_plain["mixture"].mean()),
        "identical_look_fraction": identical,
        "loss_first_last": [hist_ours[0]["loss"], hist_ours[-1]["loss"]] if hist_ours else [],
        "loss_first_last_ablation": [hist_plain[0]["loss"], hist_plain[-1]["loss"]] if hist_plain else [],
        "train_clips": len(train), "test_clips": len(test), "test_mixtures": len(pairs),
        "skipped_clips": len(train.skipped) + len(test.skipped),
        "steps": bench.steps, "batch": bench.batch, "curriculum": _CURRICULUM,
        "data_cpu_seconds": round(data_cpu, 1), "cpu_seconds": round(time.process_time() - t0, 1),
        "motion": "pyramidal Lucas-Kanade flow from the frames, chained into tracks from a 4-pixel grid",
    }
    return BenchOutcome(checks, figures)
