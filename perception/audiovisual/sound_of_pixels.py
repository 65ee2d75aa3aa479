"""Sound of Pixels co-segmentation: mix-and-separate with disentangled pixel channels.

Rouditchenko, Zhao, Gan, McDermott and Torralba, "Self-supervised Audio-Visual
Co-Segmentation", ICASSP 2019 (arXiv 1904.09013), extending PixelPlayer (Zhao et
al., "The Sound of Pixels", ECCV 2018, arXiv 1804.03160).

* A small image network gives every pixel K feature channels in [0, 1]
  (:class:`PixelNet`, sigmoid activations as PixelPlayer's); a clip's vector is
  per channel the mean of its few largest values over space and the pooled frames
  (PixelPlayer's maximum, widened to about a small object's area).
* The audio U-Net (:class:`~perception.audiovisual.mix_separate.AudioUNet`) turns
  the mixture's log-magnitude spectrogram into K channels ``A_k``; the mask of the
  sound of a pixel (or clip) with features ``v`` is
  ``sigmoid(sum_k alpha_k v_k A_k + b)`` (PixelPlayer's linear synthesizer).
* Trained by mix-and-separate (two clips' audio added, each recovered from the
  mixture given its own frames; binary-mask BCE) plus the **disentangling loss**:
  binary cross-entropy between the clip vector and the one-hot of the clip's
  instrument category, which assigns category ``CATEGORIES[k]`` to channel k.  It
  uses clip-level category labels only (never a mask), so each channel then
  segments the objects of its category: co-segmentation from sound and a label.

Shapes (B mixtures of S clips, T pooled frames of H x W; K channels)::

    frames    float [B, S, T, 3, H, W] in [0, 1]
    features  float [B * S, T, K, H / 2, W / 2] in [0, 1]
    vector    float [B, S, K]
    log_mix   float [B, 1, F', N'] -> logits float [B, S, F', N']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.audiovisual.mix_separate import (
    CATEGORIES,
    AudioUNet,
    MixtureBatch,
    SeparationClips,
    bench_pools,
    chunks,
    draw_partners,
    frames_float,
    mask_loss,
    mixture_batch,
    sdr,
    separate,
)
from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = [
    "SoundOfPixelsConfig",
    "PixelNet",
    "SoundOfPixels",
    "disentangle_loss",
    "pixel_disentangle_loss",
    "sop_forward",
    "train_mix_separate",
    "train_sound_of_pixels",
    "pooled_frames",
    "held_out_pairs",
    "sop_logits",
    "separation_sdr",
    "channel_iou",
    "channel_overlap",
]


@dataclass(frozen=True)
class SoundOfPixelsConfig:
    """Architecture and loss weights of :class:`SoundOfPixels`.

    Args:
        channels: K, pixel feature channels (one per instrument category with the disentangling loss).
        width: Channels of the image network.
        audio_width: First-stage channels of the audio U-Net.
        frames: Frames pooled into a clip's vector (spread evenly over the clip, PixelPlayer uses 3).
        pool_top: A clip's vector is each channel's mean over its ``pool_top`` largest pixel values
            (over the pooled frames).  PixelPlayer takes the maximum (1); with the maximum the
            disentangling loss lights one pixel per clip, with about a small object's area of
            feature pixels (a small object covers about 8 at half resolution) it lights the object.
        disentangle: Weight of the disentangling loss (0: plain PixelPlayer channels).
        pool_per_frame: Pool each frame on its own (the ``pool_top`` largest values of each pooled frame),
            and average the frames' pooled values into the clip's vector.  Every frame of a clip shows
            its instrument, so the disentangling loss then asks each frame to light about an object's
            area, rather than the clip to light it in whichever frame is easiest (measured: the lit part
            of an instrument widens).
        negatives: What the disentangling loss pushes down in a channel whose category is absent from the
            clip: ``"pooled"``, the clip's vector (its largest values, PixelPlayer's clip-level BCE over
            all K entries); ``"pixels"``, the vector and also every pixel of the channel (no pixel of an
            absent category should fire: multiple-instance learning with clip labels), the present and
            absent entries weighted equally.  With ``"pooled"`` the floor and the silent objects are only
            pushed down where they are a channel's largest values.
        separation_warmup: Fraction of the training steps during which the separation loss does not train
            the image network (the clip vectors that scale the audio channels are detached), so the
            channels settle on their objects from the disentangling loss before the synthesizer pulls on
            them; the separation loss trains the audio network from the first step.
        padding: How the image network's convolutions pad the frame (``torch.nn.Conv2d``'s ``padding_mode``).
            With ``"zeros"`` the frame's edge is black to the network, a place unlike any other; with
            group normalisation (statistics of the whole image) an edge pixel's features then carry
            what is in the rest of the image, and a channel can learn to fire on the edge of the frames
            of its category rather than on its objects (measured: the cello channel lit the right edge).
            ``"replicate"`` pads with the floor the edge shows, so the edge is no different from the floor.
        head: ``"half"``: the channels at half resolution, from the last layer (receptive field 17 px), as
            PixelPlayer's; ``"gated"``: at full resolution, each channel the product of the half-resolution
            map (upsampled) and a local gate read from the first layer's features (receptive field 3 px)
            by a 1x1 convolution.  A half-resolution cell next to an instrument sees it and lights the floor
            beside it, and its bilinear upsampling blurs the silhouette; the gate is a colour model per
            channel that no clip's label can teach to fire on the floor (the floor looks the same in clips
            of every category, where the absent channels are pushed down), so it cuts the map to the pixels
            of the object.  ``pool_top`` then counts full-resolution pixels (4 per half-resolution cell).
    """

    channels: int = len(CATEGORIES)
    width: int = 16
    audio_width: int = 8
    frames: int = 3
    pool_top: int = 8
    disentangle: float = 1.0
    pool_per_frame: bool = False
    negatives: str = "pooled"
    separation_warmup: float = 0.0
    padding: str = "zeros"
    head: str = "half"

    def __post_init__(self) -> None:
        check_field_types(self)  # a wrong type from Python: one line naming the field (physics.config_types)
        if self.negatives not in ("pooled", "pixels"):
            raise ConfigError(f"SoundOfPixelsConfig: negatives must be 'pooled' or 'pixels', got {self.negatives!r}")
        if not 0.0 <= self.separation_warmup <= 1.0:
            raise ConfigError(f"SoundOfPixelsConfig: separation_warmup is a fraction of the steps in [0, 1], "
                              f"got {self.separation_warmup}")
        if self.padding not in ("zeros", "replicate", "reflect"):
            raise ConfigError(f"SoundOfPixelsConfig: padding must be 'zeros', 'replicate' or 'reflect', "
                              f"got {self.padding!r}")
        if self.head not in ("half", "gated"):
            raise ConfigError(f"SoundOfPixelsConfig: head must be 'half' or 'gated', got {self.head!r}")
        if min(self.channels, self.width, self.audio_width, self.frames, self.pool_top) < 1 or self.disentangle < 0:
            raise ConfigError(f"SoundOfPixelsConfig: sizes must be >= 1 and disentangle >= 0, got {self}")
        if self.disentangle and self.channels < len(CATEGORIES):
            raise ConfigError(f"SoundOfPixelsConfig: the disentangling loss needs a channel per category "
                              f"({len(CATEGORIES)}), got channels={self.channels}")


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(4, channels), channels)


class PixelNet(nn.Module):
    """A small fully convolutional image network: ``[B, 3, H, W] -> [B, K, H / 2, W / 2]`` in [0, 1]
    (``head="gated"``: ``[B, K, H, W]``).

    Four 3x3 convolutions (the second of stride 2, the last of dilation 2): a receptive field of
    17 pixels, about a large object's size, so a pixel's features can only come from what is
    near it and a channel that finds an object fires on the object, not beside it.  Group
    normalisation (statistics per image) makes the maps the same in training and evaluation.
    With ``head="gated"`` the half-resolution map is upsampled and multiplied by a per-channel local
    gate, a 1x1 convolution of the first layer's full-resolution features (see
    :class:`SoundOfPixelsConfig`).
    """

    def __init__(self, channels: int, width: int, padding: str = "zeros", head: str = "half") -> None:
        super().__init__()
        w = width
        p = {"padding_mode": padding}
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, **p), _norm(w), nn.ReLU())
        self.body = nn.Sequential(
            nn.Conv2d(w, w, 3, 2, 1, **p), _norm(w), nn.ReLU(),
            nn.Conv2d(w, w, 3, 1, 1, **p), _norm(w), nn.ReLU(),
            nn.Conv2d(w, w, 3, 1, 2, dilation=2, **p), _norm(w), nn.ReLU(),
            nn.Conv2d(w, channels, 1),
        )
        self.gate = nn.Conv2d(w, channels, 1) if head == "gated" else None

    def forward(self, images: Tensor) -> Tensor:
        local = self.stem(images)
        out = torch.sigmoid(self.body(local))
        if self.gate is None:
            return out
        up = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return up * torch.sigmoid(self.gate(local))


class SoundOfPixels(nn.Module):
    """PixelPlayer's three parts (image network, audio U-Net, linear synthesizer) with K channels."""

    def __init__(self, config: SoundOfPixelsConfig = SoundOfPixelsConfig(), audio_in: int = 1) -> None:
        super().__init__()
        self.config = config
        k = config.channels
        self.pixels = PixelNet(k, config.width, config.padding, config.head)
        self.unet = AudioUNet(audio_in, k, config.audio_width)
        self.alpha = nn.Parameter(torch.ones(k))
        self.bias = nn.Parameter(torch.zeros(()))

    def pixel_features(self, frames: Tensor) -> Tensor:
        """float ``[..., T, 3, H, W]`` -> ``[..., T, K, H / 2, W / 2]`` (``head="gated"``: ``H, W``) in [0, 1]."""
        if frames.dim() < 4 or frames.shape[-3] != 3:
            raise StateError(f"SoundOfPixels needs frames [..., T, 3, H, W], got {tuple(frames.shape)}")
        lead = frames.shape[:-3]
        out = self.pixels(frames.reshape(-1, *frames.shape[-3:]))
        return out.view(*lead, *out.shape[1:])

    def clip_vector(self, features: Tensor) -> Tensor:
        """``[..., T, K, h, w] -> [..., K]``: per channel, the mean of the ``pool_top`` largest values over
        frames and pixels (1: PixelPlayer's maximum); with ``pool_per_frame`` the mean over frames of each
        frame's ``pool_top`` largest values."""
        if self.config.pool_per_frame:
            flat = features.flatten(-2)  # [..., T, K, h * w]
            return flat.topk(min(self.config.pool_top, flat.shape[-1]), dim=-1).values.mean((-1, -3))
        flat = features.transpose(-3, -4).flatten(-3)  # [..., K, T * h * w]
        return flat.topk(min(self.config.pool_top, flat.shape[-1]), dim=-1).values.mean(-1)

    def disentangle(self, features: Tensor, category: Tensor) -> Tensor:
        """The disentangling loss of clips' pixel features ``[M, T, K, h, w]`` with categories ``[M]``
        (:func:`disentangle_loss` or, with ``negatives="pixels"``, :func:`pixel_disentangle_loss`)."""
        vector = self.clip_vector(features)
        if self.config.negatives == "pooled":
            return disentangle_loss(vector, category)
        return pixel_disentangle_loss(vector, features, category)

    def synthesize(self, audio: Tensor, vector: Tensor) -> Tensor:
        """Mask logits ``[B, S, F, N]`` from U-Net channels ``[B, K, F, N]`` and vectors ``[B, S, K]``.

        The audio may also be per source, ``[B, S, K, F, N]`` (a model that conditions the U-Net on each source).
        """
        if audio.dim() == 4:
            audio = audio[:, None]
        return torch.einsum("bsk,bskfn->bsfn", vector * self.alpha, audio.expand(-1, vector.shape[1], -1, -1, -1)) \
            + self.bias

    def forward(self, log_mix: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Mask logits ``[B, S, F', N']`` of each clip's sound, and the clip vectors ``[B, S, K]``.

        Args:
            log_mix: float ``[B, 1, F', N']`` (:func:`~perception.audiovisual.mix_separate.mixture_batch`).
            frames: float ``[B, S, T, 3, H, W]``: the pooled frames of each of the S clips.
        """
        logits, features = self.separate_with_features(log_mix, frames)
        return logits, self.clip_vector(features)

    def separate_with_features(self, log_mix: Tensor, frames: Tensor, *,
                               image_grad: bool = True) -> tuple[Tensor, Tensor]:
        """Mask logits ``[B, S, F', N']`` and the pixel features ``[B, S, T, K, h, w]`` they come from.

        Args:
            image_grad: False: the mask logits do not pass gradient to the image network (the clip
                vectors are detached before the synthesizer; ``separation_warmup``).
        """
        features = self.pixel_features(frames)
        vector = self.clip_vector(features)
        return self.synthesize(self.unet(log_mix), vector if image_grad else vector.detach()), features


def disentangle_loss(vector: Tensor, category: Tensor) -> Tensor:
    """Binary cross-entropy of clip vectors ``[M, K]`` (in [0, 1]) against the one-hot of ``category`` ``[M]``:
    channel k fires somewhere in a clip exactly when an instrument of category k is in it."""
    target = F.one_hot(category, vector.shape[-1]).float()
    return F.binary_cross_entropy(vector.clamp(1e-6, 1 - 1e-6), target)


def pixel_disentangle_loss(vector: Tensor, features: Tensor, category: Tensor) -> Tensor:
    """Multiple-instance disentangling loss from clip labels: ``-log v`` of each clip's own category's vector
    entry (its pooled largest values should fire), plus for every absent category the BCE of its vector
    entry and the mean BCE of all its pixels against 0 (no pixel of an absent category fires); present and
    absent entries weigh the same.

    Args:
        vector: float ``[M, K]`` in [0, 1], the clip vectors of ``features``.
        features: float ``[M, T, K, h, w]`` in [0, 1].
        category: int64 ``[M]``.
    """
    own = F.one_hot(category, vector.shape[-1]).float()  # [M, K]
    eps = 1e-6
    present = -(vector.clamp_min(eps).log() * own).sum() / own.sum()
    pixels = -(1 - features).clamp_min(eps).log().mean((1, 3, 4))  # [M, K]
    pooled = -(1 - vector).clamp_min(eps).log()
    absent = ((pixels + pooled) * (1 - own)).sum() / (1 - own).sum().clamp_min(1.0)
    return present + absent


def pooled_frames(clips: SeparationClips, idx: Tensor, count: int) -> Tensor:
    """float ``[len(idx), count, 3, H, W]``: ``count`` frames spread evenly over each clip."""
    t = clips.frames.shape[1]
    picks = torch.linspace(0, t - 1, count).round().long()
    return frames_float(clips.frames[idx][:, picks])


def sop_forward(model: SoundOfPixels, clips: SeparationClips, batch: MixtureBatch,
                pair: Tensor) -> tuple[Tensor, Tensor]:
    """Mask logits ``[b, 2, F', N']`` and clip vectors ``[b, 2, K]`` of the clips of ``pair`` ``[b, 2]``
    in ``batch`` (their mixtures)."""
    frames = pooled_frames(clips, pair.flatten(), model.config.frames)
    return model(batch.log_mix, frames.view(*pair.shape, *frames.shape[1:]))


def sop_logits(model: SoundOfPixels, clips: SeparationClips, batch: MixtureBatch, pair: Tensor) -> Tensor:
    """The mask logits of :func:`sop_forward`."""
    return sop_forward(model, clips, batch, pair)[0]


def train_mix_separate(model: nn.Module, clips: SeparationClips, bench: BenchSize, seed: int, *,
                       forward: Callable[[MixtureBatch, Tensor], tuple[Tensor, Tensor]], disentangle: float,
                       disentangle_fn: Callable[[Tensor, Tensor], Tensor] = disentangle_loss,
                       curriculum: float = 1.0, desc: str, per_round: int = 50) -> list[dict]:
    """Mix-and-separate training with the shared loop: each step mixes every drawn clip with a partner
    (drawn from ``seed``), and minimises the mask loss plus ``disentangle`` times the disentangling loss.

    Args:
        forward: ``(batch, pair [B, 2]) -> (logits [B, 2, F', N'], D [B, 2, ...])`` where D is what
            ``disentangle_fn`` scores: by default the clip vectors ``[B, 2, K]``.
        disentangle_fn: ``(D [2 B, ...], category [2 B]) -> loss`` (default :func:`disentangle_loss`).
        curriculum: The first ``curriculum`` of the steps mix clips of different categories, the rest
            clips whose instruments look identical (Sound of Motions' curriculum; 1.0: different only).
        per_round: Steps per history record.

    Returns:
        The loop's history, one record (mean losses) per ``per_round`` steps.
    """
    if not 0.0 <= curriculum <= 1.0:
        raise ConfigError(f"curriculum must be a fraction of the steps in [0, 1], got {curriculum}")
    partners = torch.Generator().manual_seed(seed + 7)
    switch = round(curriculum * bench.steps)
    done = [0]

    def step(idx: Tensor) -> dict[str, Tensor]:
        mode = "different" if done[0] < switch else "same-look"
        done[0] += 1
        pair = torch.stack([idx, draw_partners(clips, idx, mode, partners)], 1)  # [B, 2]
        batch = mixture_batch(clips.waves[pair])
        logits, vector = forward(batch, pair)
        sep = mask_loss(logits, batch)
        dis = disentangle_fn(vector.flatten(0, 1), clips.category[pair.flatten()])
        return {"loss": sep + disentangle * dis, "separation": sep.detach(), "disentangle": dis.detach()}

    model.train()
    history = train_steps(model, step, items=len(clips), steps=bench.steps, batch=bench.batch, lr=bench.lr,
                          seed=seed, desc=desc, per_round=per_round)
    model.eval()
    return history


def train_sound_of_pixels(model: SoundOfPixels, clips: SeparationClips, bench: BenchSize, seed: int,
                          desc: str = "sound-of-pixels", per_round: int = 50) -> list[dict]:
    """Mix-and-separate training on pairs of clips of different categories (:func:`train_mix_separate`), with
    the model's disentangling loss (:meth:`SoundOfPixels.disentangle`) and its ``separation_warmup``."""
    warmup = round(model.config.separation_warmup * bench.steps)
    calls = [0]

    def forward(batch: MixtureBatch, pair: Tensor) -> tuple[Tensor, Tensor]:
        calls[0] += 1  # one call per training step
        frames = pooled_frames(clips, pair.flatten(), model.config.frames)
        return model.separate_with_features(batch.log_mix, frames.view(*pair.shape, *frames.shape[1:]),
                                            image_grad=calls[0] > warmup)

    return train_mix_separate(model, clips, bench, seed, forward=forward, disentangle=model.config.disentangle,
                              disentangle_fn=model.disentangle, desc=desc, per_round=per_round)


def held_out_pairs(clips: SeparationClips, mode: str, seed: int) -> Tensor:
    """int64 ``[N, 2]``: every test clip with one partner (``mode`` as in ``draw_partners``), drawn from ``seed``."""
    idx = torch.arange(len(clips))
    return torch.stack([idx, draw_partners(clips, idx, mode, torch.Generator().manual_seed(seed))], 1)


@torch.no_grad()
def separation_sdr(model: nn.Module, clips: SeparationClips, pairs: Tensor, logits_fn: Callable) -> dict[str, Tensor]:
    """SDR (dB) of each separated source and of the mixture against it, over ``pairs`` ``[M, 2]``.

    Args:
        logits_fn: ``(model, clips, batch, pair [b, 2]) -> logits [b, 2, F', N']`` (e.g. :func:`sop_logits`).

    Returns:
        ``{"estimate": [M, 2], "mixture": [M, 2]}``.
    """
    model.eval()
    est, mix = [], []
    for rows in chunks(len(pairs), 16):
        pair = pairs[rows]
        sources = clips.waves[pair]
        batch = mixture_batch(sources)
        waves = separate(logits_fn(model, clips, batch, pair), batch)
        est.append(sdr(waves, sources))
        mix.append(sdr(sources.sum(1, keepdim=True).expand_as(sources), sources))
    return {"estimate": torch.cat(est), "mixture": torch.cat(mix)}


@torch.no_grad()
def channel_overlap(model: SoundOfPixels, clips: SeparationClips, frame_step: int = 4) -> dict[str, Tensor]:
    """Pixel counts of each channel's lit pixels (> 0.5, upsampled to the frame) against each category's objects.

    Summed over every ``frame_step``-th frame of every clip (a channel firing in a clip without the
    category counts in that category's union).

    Returns:
        ``{"intersection": [K, C], "union": [K, C], "lit": [K]}`` (``lit``: every pixel the channel lights).
    """
    model.eval()
    k, c = model.config.channels, len(CATEGORIES)
    inter = torch.zeros(k, c)
    union = torch.zeros(k, c)
    lit = torch.zeros(k)
    t = torch.arange(0, clips.frames.shape[1], frame_step)
    for rows in chunks(len(clips), 16):
        frames = frames_float(clips.frames[rows][:, t])  # [b, t, 3, H, W]
        feats = model.pixel_features(frames)  # [b, t, K, h, w]
        up = F.interpolate(feats.flatten(0, 1), size=frames.shape[-2:], mode="bilinear", align_corners=False)
        pred = (up > 0.5).view(*feats.shape[:3], *frames.shape[-2:])  # [b, t, K, H, W]
        lit += pred.sum((0, 1, 3, 4)).float()
        truth = clips.masks[rows][:, t]  # [b, t, H, W]
        cats = clips.category[rows]
        for j in range(c):
            true_j = truth & (cats == j).view(-1, 1, 1, 1)  # [b, t, H, W]
            inter[:, j] += (pred & true_j[:, :, None]).sum((0, 1, 3, 4)).float()
            union[:, j] += (pred | true_j[:, :, None]).sum((0, 1, 3, 4)).float()
    return {"intersection": inter, "union": union, "lit": lit}


def channel_iou(model: SoundOfPixels, clips: SeparationClips, frame_step: int = 4) -> Tensor:
    """IoU ``[K, C]`` of each channel's pixels (> 0.5, upsampled to the frame) with each category's objects
    (:func:`channel_overlap`)."""
    counts = channel_overlap(model, clips, frame_step)
    return counts["intersection"] / counts["union"].clamp_min(1.0)


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=400, test=120, steps=1000, batch=8, lr=2e-3)
_QUICK = BenchSize(train=12, test=6, steps=3, batch=2)
# the benchmark's network: the gated full-resolution head (half-resolution cells light the floor beside an
# instrument and blur its silhouette), pooling each frame's 64 largest full-resolution pixels; the edge padded
# with the floor; every pixel of an absent category pushed down; the image network trained by the disentangling
# loss alone (its IoU is higher than with the separation gradient after a half-way warm-up, SDR the same).
# Figures of each choice: docs/results/perception.md, Sound of Pixels, rounds 3-5
_CONFIG = SoundOfPixelsConfig(pool_top=64, pool_per_frame=True, negatives="pixels", separation_warmup=1.0,
                              padding="replicate", head="gated")


@register_perception_bench(
    "sound-of-pixels",
    paper="Rouditchenko et al., Self-supervised Audio-Visual Co-Segmentation, arXiv 1904.09013 (PixelPlayer)",
    check="SDR >= mixture + 5 dB on held-out two-source mixtures; each category channel IoU >= 0.3 and >= 2x "
          "a random channel's",
    ablation="the mixture itself (SDR); a channel drawn at random (IoU)",
)
def bench_sound_of_pixels(quick: bool, seed: int) -> BenchOutcome:
    """Train on clips of seed range 0 of ``seed``; test on mixtures of two clips of range 1 (other categories)."""
    bench = _QUICK if quick else _FULL
    t0 = time.process_time()
    train, test = bench_pools(seed, bench.train, bench.test)
    data_cpu = time.process_time() - t0
    torch.manual_seed(seed)
    model = SoundOfPixels(_CONFIG)
    history = train_sound_of_pixels(model, train, bench, seed)
    pairs = held_out_pairs(test, "different", seed + 1)
    scores = separation_sdr(model, test, pairs, sop_logits)
    ours, base = float(scores["estimate"].mean()), float(scores["mixture"].mean())
    counts = channel_overlap(model, test)
    iou = counts["intersection"] / counts["union"].clamp_min(1.0)  # [K, C]
    checks = [Check("SDR of separated sources", "dB, mean over both sources of held-out mixtures", ours, base,
                    ">= ablation (the mixture) + 5 dB", ours >= base + 5.0)]
    for j, name in enumerate(CATEGORIES):
        own, rand = float(iou[j, j]), float(iou[:, j].mean())
        checks.append(Check(f"IoU of channel {j} with {name} objects", "fraction, higher is better", own, rand,
                            ">= 0.3 and >= 2 x ablation (a uniformly random channel)", own >= 0.3 and own >= 2 * rand))
    figures = {
        "sdr_improvement_db": ours - base,
        "sdr_median_db": float(scores["estimate"].median()),
        "iou_channel_by_category": iou.tolist(),
        # of the pixels each channel lights in the test frames, the fraction on objects of its own category
        "lit_on_own_objects": (counts["intersection"].diagonal() / counts["lit"].clamp_min(1.0)).tolist(),
        "categories": list(CATEGORIES),
        "loss_first_last": [history[0]["loss"], history[-1]["loss"]] if history else [],
        "train_clips": len(train), "test_clips": len(test), "test_mixtures": len(pairs),
        "skipped_clips": len(train.skipped) + len(test.skipped),
        "steps": bench.steps, "batch": bench.batch,
        "data_cpu_seconds": round(data_cpu, 1), "cpu_seconds": round(time.process_time() - t0, 1),
        "data": f"make_clip seeds {train.seeds[0]}.. (train), {test.seeds[0]}.. (test): one instrument, "
                "one or two silent objects, no impacts",
    }
    return BenchOutcome(tuple(checks), figures)
