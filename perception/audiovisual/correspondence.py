"""Audio-visual correspondence (L3-Net), embeddings for retrieval (AVE-Net) and localisation (AVOL-Net).

Arandjelovic and Zisserman, "Look, Listen and Learn", ICCV 2017 (arXiv
1705.08168), and "Objects that Sound", ECCV 2018 (arXiv 1712.06651).  All
three learn from the *audio-visual correspondence* task and no labels: a frame
and an audio window either come from the same moment of the same clip, or the
audio comes from another clip; the network says which.

* :class:`L3Net`: a vision and an audio subnetwork (conv towers, global max
  pooling), their features concatenated and fused by two fully connected
  layers into two logits (mismatched, corresponding).
* :class:`AVENet`: each subnetwork ends in two fully connected layers and an
  L2-normalised embedding; the only fusion is the Euclidean distance of the two
  embeddings, mapped to the two logits by one scalar affine layer.  The
  distance is therefore meaningful across clips: it ranks images for an audio
  query (cross-modal retrieval).
* :class:`AVOLNet`: the vision subnetwork keeps its spatial grid (1x1
  convolutions to an embedding per location); the scalar product of every
  location's embedding with the audio embedding, calibrated by a learned scale
  and bias, is the localisation map, and its maximum over locations is the
  correspondence score (multiple-instance learning: the clip corresponds if
  *some* location makes the sound).

Shapes (N pairs, C image channels, H x W pixels, F frequency bins, S spectrogram frames)::

    frames   float [N, C, H, W] in [0, 1]      C = 3 x context frames stacked on channels
    spec     float [N, 1, F, S]                 a log-magnitude spectrogram of the audio window
    L3Net / AVENet   -> logits float [N, 2]     index 1 = "corresponds"
    AVENet.embed_frames / embed_audio -> float [N, D], unit length
    AVOLNet          -> score logits float [N], map logits float [N, h, w]  (h = H / 2^(blocks - 1))

Benchmarks: ``av-correspondence`` trains L3-Net and AVE-Net on one set of
two-instrument clips (correspondence accuracy, audio-to-image recall@10 over
1,000 held-out clips), both with temporal towers (``AVNetConfig.steps``: each of
the audio second's 8 frames seen beside its difference from the frame before,
the spectrum averaged per frame, heads that keep the order of the steps) and
:func:`synchrony_loss` (every mismatch of the batch, and each clip's own audio at
another moment), because in these clips only the timing of each instrument's
loudness against its motion tells two clips with the same instruments apart.
AVE-Net trains first; L3-Net then starts from its towers and time heads
(:func:`l3_from_ave`, :data:`L3_WARM`: towers frozen, a quarter of AVE-Net's steps),
so the budget goes to one set of towers.  ``avol-net`` trains AVOL-Net on one-instrument clips (where
its map peaks in held-out frames) in :data:`AVOL_CONFIG`: 1x1 late vision blocks (a
map location sees about one instrument), the spectrogram's mean over time beside the
audio tower's features, and cosine similarities.  Each beside the same network untrained.
"""

from __future__ import annotations

import ctypes
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.audiovisual.clips import CLIP_CONFIG, SPEC_BINS, ClipBank, clip_bank
from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.model_stats import count_parameters
from physics.config_types import check_field_types
from physics.errors import CheckpointError, ConfigError, StateError
from physics.io import PathLike, atomic_torch_save, torch_load
from physics.training import WarmupCosine
from physics.worlds.audiovisual import AudioVisualConfig

__all__ = [
    "AVNetConfig",
    "ConvTower",
    "L3Net",
    "AVENet",
    "AVOLNet",
    "FrameMotionTower",
    "SpectralTimeTower",
    "mismatched_partners",
    "shifted_centres",
    "synchrony_loss",
    "train_synchrony",
    "l3_from_ave",
    "keep_freed_memory",
    "correspondence_logits",
    "correspondence_loss",
    "recall_at_k",
    "peak_hits",
    "Window",
    "SINGLE_FRAME",
    "FRAME_STACK",
    "SYNC_WINDOW",
    "PAPER_CONFIG",
    "train_correspondence",
    "evaluate_correspondence",
    "TrainedNetworks",
    "trained_networks",
    "ONE_INSTRUMENT",
    "AVOL_SIZE",
    "AVOL_CONFIG",
    "FULL_SIZE",
    "L3_WARM",
    "SYNC_TEMPERATURE",
    "MAX_NCE_SCALE",
    "save_avol",
    "load_avol",
    "train_localiser",
]


@dataclass(frozen=True)
class AVNetConfig:
    """Size of the correspondence networks (the papers' VGG-like towers, narrower).

    Args:
        image_channels: Channels of the vision input (3 per stacked frame).
        widths: Channels of each conv block; every block but the last halves the resolution.
        convs: 3x3 convolutions per block (the papers' VGG blocks have two; one fits a CPU budget).
        embed: D, the embedding size of AVE-Net and AVOL-Net (the papers' 128).
        fusion: Hidden units of L3-Net's fusion layer (the paper's 128).
        profile: The audio features also carry the spectrogram's mean over time (one value per
            frequency bin, the timbre and pitch), which the tower's global max pooling over frequency loses.
        kernels: Kernel size of each block of AVOL-Net's vision tower (empty: 3 everywhere); 1x1 late
            blocks keep the receptive field of a map location near the size of one object.
        cosine: AVOL-Net's map compares unit embeddings (cosine similarity; the calibration scale starts
            at 1 and is learned: starting at 10 collapsed to a constant map at one initialisation of two)
            instead of raw scalar products over sqrt(D).
        steps: 0: the papers' towers (global max pooling, no time).  T > 0: L3-Net and AVE-Net keep time
            (:class:`FrameMotionTower` over T frames and the frame before them, so ``image_channels`` must be
            3 * (T + 1), and :class:`SpectralTimeTower` averaged into the same T frames), each followed by a
            head over every step, so what is compared is *when* each look moves and each timbre sounds.
    """

    image_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64, 64)
    embed: int = 64
    fusion: int = 64
    convs: int = 1
    profile: bool = False
    kernels: tuple[int, ...] = ()
    cosine: bool = False
    steps: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)  # a wrong type from Python: one line naming the field (physics.config_types)
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        if self.kernels and (len(self.kernels) != len(self.widths) or any(k < 1 or k % 2 == 0 for k in self.kernels)):
            raise ConfigError(f"AVNetConfig: kernels must be one odd size per block of widths, got {self.kernels}")
        if (self.image_channels < 1 or not self.widths or min(self.widths) < 1 or self.embed < 1 or self.fusion < 1
                or self.convs < 1):
            raise ConfigError(f"AVNetConfig: channels, widths, embed and fusion must be positive, got {self}")
        if self.steps < 0 or (self.steps and self.image_channels != 3 * (self.steps + 1)):
            raise ConfigError(f"AVNetConfig: steps = {self.steps} needs image_channels = 3 * (steps + 1) "
                              f"(the frame before the window's first), got {self.image_channels}")


class ConvTower(nn.Module):
    """Blocks of ``convs`` conv-BN-ReLU layers, each block but the last followed by 2x2 max pooling.

    ``kernels`` gives each block's kernel size (odd; empty: 3x3 everywhere).
    ``forward(x [N, cin, H, W]) -> [N, widths[-1], H / 2^(len(widths) - 1), W / ...]`` (floor division).
    """

    def __init__(self, cin: int, widths: tuple[int, ...], convs: int = 1, kernels: tuple[int, ...] = ()) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, w in enumerate(widths):
            k = kernels[i] if kernels else 3
            for c_in in (cin, *[w] * (convs - 1)):
                layers += [nn.Conv2d(c_in, w, k, padding=k // 2, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.net = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# ---------------------------------------------------------------------- temporal (synchrony) networks
class FrameMotionTower(nn.Module):
    """Per-frame features of a window of frames, each seen with its difference from the frame before.

    ``forward(frames [N, 3 * (T + 1), H, W])`` (frames stacked on channels, oldest first; the first only
    serves as the previous frame of the second) -> ``[N, 2 * widths[-1], T]``: the shared conv tower's
    maximum and mean over space at each of the T frames.  The difference channels show what moves (an
    instrument's loudness follows its speed); the maximum says which looks are in view.
    """

    def __init__(self, widths: tuple[int, ...], convs: int = 1) -> None:
        super().__init__()
        self.tower = ConvTower(6, widths, convs)
        self.out_channels = 2 * widths[-1]

    def forward(self, frames: Tensor) -> Tensor:
        n, c, h, w = frames.shape
        x = frames.view(n, c // 3, 3, h, w)
        x = torch.cat([x[:, 1:], x[:, 1:] - x[:, :-1]], 2)  # [N, T, 6, H, W]
        f = self.tower(x.flatten(0, 1))
        f = torch.cat([f.amax((2, 3)), f.mean((2, 3))], 1)
        return f.view(n, c // 3 - 1, -1).transpose(1, 2)


class SpectralTimeTower(nn.Module):
    """Per-time features of a spectrogram window: 1-D convolutions over time with the bins as channels.

    ``forward(spec [N, 1, F, S]) -> [N, width, T]`` (averaged into the T video frames the window spans),
    so each step carries the spectrum of its frame: which timbres and pitches sound and how loudly.
    """

    def __init__(self, bins: int, width: int, steps: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(bins, width, 3, padding=1, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=1, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        self.steps = steps
        self.out_channels = width

    def forward(self, spec: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(self.net(spec[:, 0]), self.steps)


class _TimeHead(nn.Module):
    """``[N, C, T]`` -> ``[N, D]``: a temporal convolution, then one linear layer over every step (keeps *when*)."""

    def __init__(self, channels: int, steps: int, out: int, hidden: int = 64) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(channels, hidden, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(hidden * steps, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).flatten(1))


def _check(frames: Tensor, spec: Tensor, config: AVNetConfig, who: str) -> None:
    if frames.dim() != 4 or frames.shape[1] != config.image_channels:
        raise StateError(f"{who}: frames must be [N, {config.image_channels}, H, W], got {tuple(frames.shape)}")
    if spec.dim() != 4 or spec.shape[1] != 1:
        raise StateError(f"{who}: spec must be [N, 1, F, S], got {tuple(spec.shape)}")
    if frames.shape[0] != spec.shape[0]:
        raise StateError(f"{who}: {frames.shape[0]} frames but {spec.shape[0]} spectrograms; pairs need one of each")


def _profile_bins(config: AVNetConfig) -> int:
    """Width of the spectral profile the audio features carry (0 without ``config.profile``)."""
    return SPEC_BINS if config.profile else 0


def _audio_features(tower: ConvTower, spec: Tensor, config: AVNetConfig, who: str) -> Tensor:
    """The audio tower's global max ``[N, widths[-1]]``, followed by the spectrogram's mean over time
    ``[N, SPEC_BINS]`` (pitch range and harmonics, which the max over frequency loses) with ``config.profile``."""
    a = tower(spec).amax((2, 3))
    if not config.profile:
        return a
    if spec.shape[2] != SPEC_BINS:
        raise StateError(f"{who}: the spectral profile needs {SPEC_BINS} bins, got {spec.shape[2]}")
    return torch.cat([a, spec.mean(3)[:, 0]], 1)


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, cout))


class L3Net(nn.Module):
    """L3-Net: concatenated max-pooled vision and audio features, fused into two logits."""

    def __init__(self, config: AVNetConfig = AVNetConfig()) -> None:
        super().__init__()
        self.config = config
        if config.steps:  # temporal towers; the fusion also sees the product of the two step-wise codes
            d = config.embed
            self.vision = nn.Sequential(FrameMotionTower(config.widths, config.convs),
                                        _TimeHead(2 * config.widths[-1], config.steps, d))
            self.audio = nn.Sequential(SpectralTimeTower(SPEC_BINS, config.widths[-1], config.steps),
                                       _TimeHead(config.widths[-1], config.steps, d))
            self.fusion = _mlp(3 * d, config.fusion, 2)
        else:
            self.vision = ConvTower(config.image_channels, config.widths, config.convs)
            self.audio = ConvTower(1, config.widths, config.convs)
            self.fusion = _mlp(2 * config.widths[-1] + _profile_bins(config), config.fusion, 2)

    def encode(self, frames: Tensor, spec: Tensor) -> tuple[Tensor, Tensor]:
        """Max-pooled features of each subnetwork: ``[N, widths[-1]]`` twice (the paper's transfer features;
        the audio's followed by the spectral profile when ``config.profile``); with ``config.steps`` the
        temporal heads' codes, ``[N, embed]`` twice."""
        _check(frames, spec, self.config, "L3Net")
        if self.config.steps:
            return self.vision(frames), self.audio(spec)
        return self.vision(frames).amax((2, 3)), _audio_features(self.audio, spec, self.config, "L3Net")

    def head(self, v: Tensor, a: Tensor) -> Tensor:
        """Logits ``[N, 2]`` of encoded frames ``v`` and audio ``a``."""
        if self.config.steps:
            return self.fusion(torch.cat([v, a, v * a], 1))
        return self.fusion(torch.cat([v, a], 1))

    def forward(self, frames: Tensor, spec: Tensor) -> Tensor:
        return self.head(*self.encode(frames, spec))


class AVENet(nn.Module):
    """AVE-Net: unit embeddings per modality; the logits are an affine function of their distance."""

    def __init__(self, config: AVNetConfig = AVNetConfig()) -> None:
        super().__init__()
        self.config = config
        c, d = config.widths[-1], config.embed
        if config.steps:  # temporal towers (class docs of AVNetConfig)
            self.vision = FrameMotionTower(config.widths, config.convs)
            self.audio = SpectralTimeTower(SPEC_BINS, c, config.steps)
            self.vision_head, self.audio_head = _TimeHead(2 * c, config.steps, d), _TimeHead(c, config.steps, d)
        else:
            self.vision = ConvTower(config.image_channels, config.widths, config.convs)
            self.audio = ConvTower(1, config.widths, config.convs)
            self.vision_head, self.audio_head = _mlp(c, d, d), _mlp(c + _profile_bins(config), d, d)
        self.calibrate = nn.Linear(1, 2)  # the paper's fc3: distance -> two logits
        with torch.no_grad():  # start with "close means corresponding", as the trained layer ends up
            self.calibrate.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.calibrate.bias.zero_()

    def embed_frames(self, frames: Tensor) -> Tensor:
        """Unit image embeddings ``[N, D]``."""
        if self.config.steps:
            return F.normalize(self.vision_head(self.vision(frames)), dim=1)
        return F.normalize(self.vision_head(self.vision(frames).amax((2, 3))), dim=1)

    def embed_audio(self, spec: Tensor) -> Tensor:
        """Unit audio embeddings ``[N, D]``."""
        if self.config.steps:
            return F.normalize(self.audio_head(self.audio(spec)), dim=1)
        return F.normalize(self.audio_head(_audio_features(self.audio, spec, self.config, "AVENet")), dim=1)

    def encode(self, frames: Tensor, spec: Tensor) -> tuple[Tensor, Tensor]:
        """Both unit embeddings, ``[N, D]`` each."""
        _check(frames, spec, self.config, "AVENet")
        return self.embed_frames(frames), self.embed_audio(spec)

    def head(self, v: Tensor, a: Tensor) -> Tensor:
        """Logits ``[N, 2]``: an affine function of the embeddings' distance."""
        return self.calibrate((v - a).norm(dim=1, keepdim=True))

    def forward(self, frames: Tensor, spec: Tensor) -> Tensor:
        return self.head(*self.encode(frames, spec))


class AVOLNet(nn.Module):
    """AVOL-Net: a per-location similarity map between the image grid and the audio, max-pooled to a score."""

    def __init__(self, config: AVNetConfig = AVNetConfig()) -> None:
        super().__init__()
        self.config = config
        c, d = config.widths[-1], config.embed
        self.vision = ConvTower(config.image_channels, config.widths, config.convs, config.kernels)
        self.vision_head = nn.Sequential(nn.Conv2d(c, d, 1), nn.ReLU(), nn.Conv2d(d, d, 1))  # the paper's conv5, conv6
        self.audio = ConvTower(1, config.widths, config.convs)
        self.audio_head = _mlp(c + _profile_bins(config), d, d)
        self.scale = nn.Parameter(torch.tensor(1.0))  # the paper's calibration (a 1x1 conv on one channel)
        self.bias = nn.Parameter(torch.tensor(0.0))

    def encode(self, frames: Tensor, spec: Tensor) -> tuple[Tensor, Tensor]:
        """An embedding per location ``[N, D, h, w]`` and the audio's ``[N, D]``."""
        _check(frames, spec, self.config, "AVOLNet")
        a = _audio_features(self.audio, spec, self.config, "AVOLNet")
        return self.vision_head(self.vision(frames)), self.audio_head(a)

    def head(self, v: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """``(score logits [N], map logits [N, h, w])``: the score is the map's maximum (multiple instances)."""
        if self.config.cosine:
            sim = torch.einsum("ndhw,nd->nhw", F.normalize(v, dim=1), F.normalize(a, dim=1))
        else:
            sim = torch.einsum("ndhw,nd->nhw", v, a) / self.config.embed**0.5
        m = self.scale * sim + self.bias
        return m.flatten(1).amax(1), m

    def similarity_map(self, frames: Tensor, spec: Tensor) -> Tensor:
        """Calibrated scalar products of every location with the audio: logits ``[N, h, w]``."""
        return self.head(*self.encode(frames, spec))[1]

    def forward(self, frames: Tensor, spec: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(*self.encode(frames, spec))

    @torch.no_grad()
    def localise(self, frames: Tensor, spec: Tensor) -> Tensor:
        """Where the sound comes from: probabilities ``[N, H, W]``, the map upsampled bilinearly to the image."""
        m = torch.sigmoid(self.similarity_map(frames, spec))
        return F.interpolate(m[:, None], size=frames.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


# ---------------------------------------------------------------------- training pieces
def mismatched_partners(clip_ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each pair i, the index j of another pair in the batch whose audio serves as i's negative.

    j = (i + r) mod N with r drawn once from 1..N-1, so no pair is its own partner;
    a partner from the same clip (batches are drawn with replacement) is still
    possible and is labelled corresponding by :func:`correspondence_logits`.

    Args:
        clip_ids: int64 [N], the clip each pair comes from (N >= 2).

    Returns:
        int64 [N].
    """
    n = clip_ids.shape[0]
    if n < 2:
        raise StateError(f"mismatched_partners: a batch needs at least 2 pairs to mismatch, got {n}")
    r = int(torch.randint(1, n, (1,), generator=generator))
    return (torch.arange(n) + r) % n


def correspondence_logits(model: L3Net | AVENet | AVOLNet, frames: Tensor, spec: Tensor, clip_ids: Tensor,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Score every frame with its own audio and with a mismatched one.

    Returns:
        ``(logits, labels)``: for L3-Net and AVE-Net logits float [2N, 2], for
        AVOL-Net score logits float [2N]; labels int64 [2N] (1 = corresponds).
    """
    partner = mismatched_partners(clip_ids, generator)
    v, a = model.encode(frames, spec)  # each input is encoded once, then paired twice
    own, other = model.head(v, a), model.head(v, a[partner])
    labels = torch.cat([torch.ones_like(clip_ids), (clip_ids[partner] == clip_ids).long()])
    if isinstance(own, tuple):
        return torch.cat([own[0], other[0]]), labels
    return torch.cat([own, other]), labels


def correspondence_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of two logits per pair, or binary cross-entropy of one score logit per pair."""
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    return F.cross_entropy(logits, labels)


def recall_at_k(queries: Tensor, items: Tensor, k: int) -> float:
    """Fraction of queries whose own item (same row) is among the ``k`` nearest items (Euclidean).

    Args:
        queries: float [N, D] (audio embeddings).
        items: float [N, D] (image embeddings); row i belongs to query i.
        k: 1 <= k <= N.
    """
    n = queries.shape[0]
    if items.shape[0] != n or not 1 <= k <= n:
        raise StateError(f"recall_at_k: needs as many items as queries and 1 <= k <= {n}, got {items.shape[0]}, k={k}")
    dist = torch.cdist(queries, items)  # [N, N]
    own = dist.diagonal()[:, None]
    rank = (dist < own).sum(1)  # items strictly nearer than the own one (ties count for the query)
    return float((rank < k).float().mean())


def peak_hits(maps: Tensor, targets: Tensor) -> Tensor:
    """Whether each map's maximum falls on a target pixel.

    Args:
        maps: float [N, H, W] (a localisation map at image resolution).
        targets: bool [N, H, W] (the pixels of the sounding objects).

    Returns:
        bool [N].
    """
    if maps.shape != targets.shape:
        raise StateError(f"peak_hits: maps {tuple(maps.shape)} and targets {tuple(targets.shape)} differ in shape")
    peak = maps.flatten(1).argmax(1)
    return targets.flatten(1).gather(1, peak[:, None])[:, 0].bool()


# ---------------------------------------------------------------------- training on clips
@dataclass(frozen=True)
class Window:
    """Which frames and which audio a pair holds, around its centre frame ``t``.

    Args:
        offsets: Frames ``t + offset`` stacked on channels (``(0,)``: one frame, as in the papers).
        before: Audio from video frame ``t - before`` ...
        after: ... to ``t + after`` (exclusive); 4 + 4 frames at 8 fps is the papers' one second.
    """

    offsets: tuple[int, ...] = (0,)
    before: int = 4
    after: int = 4

    def centres(self, frames: int) -> tuple[int, int]:
        """Lowest and highest centre frame whose audio lies inside a clip of ``frames`` frames."""
        return self.before, frames - self.after

    def pairs(self, bank: ClipBank, idx: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(frames [B, 3 * len(offsets), H, W], spec [B, 1, F, S]) of clips ``idx`` at centres ``t``."""
        return bank.frame_stack(idx, t, self.offsets), bank.audio_window(idx, t, self.before, self.after)


def train_correspondence(model: nn.Module, bank: ClipBank, window: Window, bench: BenchSize, seed: int,
                         desc: str) -> list[dict[str, Any]]:
    """Train on the audio-visual correspondence task with the shared loop; each pair's centre frame is random.

    Half of each batch's pairs are the clips' own audio, half another clip's
    (:func:`correspondence_logits`); the centres and the partners come from the
    loop's seeded generators.
    """
    lo, hi = window.centres(bank.frames.shape[1])

    def step(idx: Tensor) -> dict[str, Tensor]:
        t = torch.randint(lo, hi + 1, idx.shape)
        frames, spec = window.pairs(bank, idx, t)
        logits, labels = correspondence_logits(model, frames, spec, idx)
        return {"loss": correspondence_loss(logits, labels)}

    return train_steps(model, step, items=len(bank), steps=bench.steps, batch=bench.batch, lr=bench.lr,
                       seed=seed, desc=desc, per_round=50)


def shifted_centres(t: Tensor, lo: int, hi: int, generator: torch.Generator | None = None) -> Tensor:
    """Another centre for each of ``t`` (all in ``lo..hi``), at least two frames away from it.

    ``lo + (t - lo + d) mod (hi - lo + 1)`` with d drawn from ``2 .. hi - lo - 1``; needs ``hi - lo >= 3``.
    """
    span = hi - lo + 1
    if span < 4:
        raise StateError(f"shifted_centres: centres {lo}..{hi} leave no shift of two frames or more both ways")
    d = torch.randint(2, span - 1, t.shape, generator=generator)
    return lo + (t - lo + d) % span


def synchrony_loss(model: L3Net | AVENet, frames: Tensor, spec: Tensor, shifted: Tensor, clip_ids: Tensor,
                   temperature: float | Tensor = 0.1) -> Tensor:
    """The correspondence task with every mismatch a batch holds, and the clip's own audio out of time.

    Each frame window (``frames [N, C, H, W]``) is scored against every audio window of the batch:
    its own (``spec [N, 1, F, S]``, same clip and moment, the positive), the other clips' and each
    clip's own audio at another moment (``shifted [N, 1, F, S]``: same instruments, wrong timing, the
    "hard negatives" of Korbar et al., AVTS, NeurIPS 2018).  Pairs of two windows of one clip at
    possibly the same moment (a batch draws clips with replacement) are left out.

    * AVE-Net: an NCE loss over the embeddings' cosine similarities (``/ temperature``, a number or a
      scalar tensor that carries a gradient, :func:`train_synchrony`'s learned temperature), both ways
      (an audio query's items are the frame windows of the batch), plus the paper's two-way
      cross-entropy of its calibrated distance on each frame's own audio and one mismatched clip's;
    * L3-Net: the two-way cross-entropy of the fusion's logits on all ``N x 2N`` pairs, positives and
      negatives weighted half and half.
    """
    n = clip_ids.shape[0]
    _check(frames, spec, model.config, "synchrony_loss")
    if not model.config.steps:
        raise ConfigError("synchrony_loss: the network needs temporal towers (AVNetConfig.steps > 0)")
    audio = torch.cat([spec, shifted])
    if isinstance(model, AVENet):
        v, a = model.embed_frames(frames), model.embed_audio(audio)  # [N, D], [2N, D]
    else:
        v, a = model.vision(frames), model.audio(audio)
    same = clip_ids[:, None] == clip_ids[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    skip = torch.cat([same & ~eye, same & ~eye], 1)  # [N, 2N]; the own clip's shifted audio stays a negative
    if isinstance(model, AVENet):
        sim = (v @ a.T / temperature).masked_fill(skip, float("-inf"))
        target = torch.arange(n)
        nce = F.cross_entropy(sim, target) + F.cross_entropy(sim[:, :n].T, target)
        partner = mismatched_partners(clip_ids)
        logits, labels = torch.cat([model.head(v, a[:n]), model.head(v, a[partner])]), torch.cat(
            [torch.ones_like(clip_ids), same[torch.arange(n), partner].long()])
        return nce + correspondence_loss(logits, labels)
    pair_logits = model.head(v.repeat_interleave(2 * n, 0), a.repeat(n, 1)).view(n, 2 * n, 2)
    log_p = pair_logits.log_softmax(2)
    positive = torch.cat([eye, torch.zeros_like(eye)], 1)
    negative = ~positive & ~skip
    return -(log_p[..., 1][positive].mean() + log_p[..., 0][negative].mean()) / 2


def train_synchrony(model: L3Net | AVENet, bank: ClipBank, window: Window, bench: BenchSize, seed: int,
                    desc: str, temperature: float = 0.1, frozen: Sequence[nn.Module] = (),
                    cosine: float | None = None, learn_temperature: bool = False,
                    flip: bool = False) -> list[dict[str, Any]]:
    """Train with :func:`synchrony_loss` (the shared loop); each clip's centre and its shifted centre are random.

    Args:
        temperature: AVE-Net's NCE temperature (positive; L3-Net does not use it); with
            ``learn_temperature`` its starting value.
        cosine: None: the constant rate ``bench.lr``.  A fraction f in [0, 1]: a short linear warm-up,
            then cosine decay from ``bench.lr`` towards ``f * bench.lr`` (reached at ``bench.steps``)
            (:class:`~physics.training.WarmupCosine`).
        frozen: Parts of ``model`` left as they are: no gradient, batch norm in evaluation mode (its
            running statistics used and kept), so a step does not pay for their backward pass.
        learn_temperature: AVE-Net only: the temperature is learned with the network, as CLIP learns it
            (Radford et al. 2021): a log-scale parameter ``log(1 / temperature)``, its scale kept at most
            :data:`MAX_NCE_SCALE`.  The final temperature is in the last history record (``temperature``).
        flip: Each pair's frames are mirrored left to right with probability 1/2 (the sound is mono, so a
            mirrored clip is as plausible as the clip; more distinct training windows for the same clips).
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0.0 < temperature < math.inf:
        raise ConfigError(f"train_synchrony ({desc}): temperature must be a positive number, got {temperature!r}")
    if cosine is not None and (isinstance(cosine, bool) or not isinstance(cosine, (int, float))
                               or not 0.0 <= cosine <= 1.0):
        raise ConfigError(f"train_synchrony ({desc}): cosine must be a fraction in [0, 1] or None, got {cosine!r}")
    if learn_temperature and not isinstance(model, AVENet):
        raise ConfigError(f"train_synchrony ({desc}): learn_temperature is for AVE-Net's NCE loss, "
                          f"got {type(model).__name__}")
    lo, hi = window.centres(bank.frames.shape[1])
    for part in frozen:
        part.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError(f"train_synchrony ({desc}): every parameter is frozen, nothing to train")
    log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature))) if learn_temperature else None
    extra = [log_scale] if log_scale is not None else []

    def step(idx: Tensor) -> dict[str, Tensor]:
        for part in frozen:  # the loop puts the whole model in training mode each round
            part.eval()
        t = torch.randint(lo, hi + 1, idx.shape)
        frames, spec = window.pairs(bank, idx, t)
        if flip:
            frames = torch.where(torch.rand(idx.shape[0], 1, 1, 1) < 0.5, frames.flip(3), frames)
        shifted = bank.audio_window(idx, shifted_centres(t, lo, hi), window.before, window.after)
        if log_scale is None:
            return {"loss": synchrony_loss(model, frames, spec, shifted, idx, temperature)}
        tau = 1.0 / log_scale.clamp(max=math.log(MAX_NCE_SCALE)).exp()
        return {"loss": synchrony_loss(model, frames, spec, shifted, idx, tau), "temperature": tau.detach()}

    return train_steps(model, step, items=len(bank), steps=bench.steps, batch=bench.batch, lr=bench.lr,
                       seed=seed, desc=desc, per_round=50,
                       optimizer=lambda m: torch.optim.Adam(
                           [p for p in m.parameters() if p.requires_grad] + extra, lr=bench.lr),
                       schedule=None if cosine is None else WarmupCosine(bench.lr, bench.steps, float(cosine)))


def l3_from_ave(l3: L3Net, ave: AVENet) -> tuple[nn.Module, nn.Module]:
    """Start a temporal L3-Net from a trained AVE-Net: its vision and audio towers and their time heads take
    AVE-Net's weights (the same shapes: a tower, then a temporal convolution and a linear layer over the
    steps), and only its fusion starts fresh.  The towers a warm-started L3-Net may keep frozen are returned.

    AVE-Net learns the same correspondence task, but its distance-only fusion makes every training pair
    a retrieval problem (an NCE over the batch), which trains the towers to tell clips apart by timing;
    L3-Net's own start spends a quarter of its steps at chance (measured, docs/results/perception.md).
    """
    if not (l3.config.steps and ave.config.steps) or l3.config != ave.config:
        raise ConfigError("l3_from_ave: both networks need the same temporal configuration "
                          f"(AVNetConfig.steps > 0), got {l3.config} and {ave.config}")
    l3.vision[0].load_state_dict(ave.vision.state_dict())
    l3.vision[1].load_state_dict(ave.vision_head.state_dict())
    l3.audio[0].load_state_dict(ave.audio.state_dict())
    l3.audio[1].load_state_dict(ave.audio_head.state_dict())
    return l3.vision[0], l3.audio[0]


def keep_freed_memory() -> bool:
    """Let this process reuse the memory its tensors free rather than hand it back to the system (glibc only).

    A training step over the temporal towers allocates activations of tens of MB; glibc serves blocks
    over 32 MB by ``mmap`` and returns them when freed, so every step faults its pages in anew (measured
    on the synchrony step: 0.14-0.21 s of system time a step against 0.38-0.41 s of user time, 86,000-115,000
    minor page faults; with this, 0.01 s and about none).  ``mallopt(M_MMAP_MAX, 0)`` serves every block from
    the heap and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)`` keeps freed heap for the next step.  The process's
    peak memory is kept until it exits, so only benchmark processes call this.  Returns whether it applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-4, 0)) and bool(libc.mallopt(-1, 1 << 30))  # M_MMAP_MAX, M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (macOS, musl): leave the allocator as it is
        return False


@torch.no_grad()
def _scores(model: nn.Module, frames: Tensor, spec: Tensor) -> Tensor:
    """P(corresponds) per pair, in batches."""
    out = []
    for f, s in zip(frames.split(128), spec.split(128), strict=True):
        o = model(f, s)
        out.append(torch.sigmoid(o[0]) if isinstance(o, tuple) else o.softmax(1)[:, 1])
    return torch.cat(out)


@torch.no_grad()
def evaluate_correspondence(model: nn.Module, bank: ClipBank, window: Window, centre: int) -> float:
    """Accuracy on every test clip's own audio and on the next clip's (a balanced set of 2N pairs)."""
    model.eval()
    idx = torch.arange(len(bank))
    frames, spec = window.pairs(bank, idx, torch.full_like(idx, centre))
    p_own, p_other = _scores(model, frames, spec), _scores(model, frames, spec.roll(1, 0))
    return float(torch.cat([p_own > 0.5, p_other <= 0.5]).float().mean())


@torch.no_grad()
def _retrieval(model: AVENet, bank: ClipBank, window: Window, centre: int, ks: Sequence[int]) -> dict[int, float]:
    model.eval()
    idx = torch.arange(len(bank))
    frames, spec = window.pairs(bank, idx, torch.full_like(idx, centre))
    images = torch.cat([model.embed_frames(f) for f in frames.split(128)])
    audio = torch.cat([model.embed_audio(s) for s in spec.split(128)])
    return {k: recall_at_k(audio, images, k) for k in ks}


@torch.no_grad()
def _localisation(model: AVOLNet, bank: ClipBank, window: Window, centre: int) -> dict[str, float]:
    """Peak-on-sounding-object rate over the test clips with a sounding object in view at the centre frame."""
    model.eval()
    idx = torch.arange(len(bank))
    frames, spec = window.pairs(bank, idx, torch.full_like(idx, centre))
    maps = torch.cat([model.localise(f, s) for f, s in zip(frames.split(128), spec.split(128), strict=True)])
    masks = bank.masks[:, centre].long()  # [N, H, W]
    sounding = bank.sounding[:, centre]  # [N, O]
    target = (masks >= 0) & sounding.gather(1, masks.clamp_min(0).flatten(1)).view_as(masks)
    on_object = masks >= 0
    keep = target.flatten(1).any(1)
    hits = peak_hits(maps[keep], target[keep])
    return {
        "peak_on_sounding": float(hits.float().mean()),
        "peak_on_any_object": float(peak_hits(maps[keep], on_object[keep]).float().mean()),
        "sounding_area": float(target[keep].float().mean()),  # a random pixel's chance of a hit
        "clips": int(keep.sum()),
    }


# ---------------------------------------------------------------------- checkpoints
def save_avol(model: AVOLNet, path: PathLike, *, height: int, width: int, sample_rate: int, command: str) -> None:
    """Write ``model`` with what it was trained on (frame size, sample rate, window) and the command."""
    atomic_torch_save(path, {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.config).items()},
        "state": model.state_dict(), "height": height, "width": width, "sample_rate": sample_rate,
        "window": [SINGLE_FRAME.before, SINGLE_FRAME.after], "command": command,
    })


def load_avol(path: PathLike) -> tuple[AVOLNet, dict]:
    """The network and its metadata (frame size, sample rate, window, command) from ``path``."""
    ckpt = torch_load(path, "AVOL-Net checkpoint")
    try:
        cfg = ckpt["config"]
        model = AVOLNet(AVNetConfig(image_channels=int(cfg["image_channels"]), widths=tuple(cfg["widths"]),
                                    embed=int(cfg["embed"]), fusion=int(cfg["fusion"]), convs=int(cfg["convs"]),
                                    profile=bool(cfg.get("profile", False)),
                                    kernels=tuple(cfg.get("kernels", ())), cosine=bool(cfg.get("cosine", False))))
        model.load_state_dict(ckpt["state"])
        meta = {k: ckpt[k] for k in ("height", "width", "sample_rate", "window", "command")}
    except KeyError as exc:  # str(KeyError) is the bare key: say it is missing
        raise CheckpointError(f"AVOL-Net checkpoint {path} does not fit the network (it lacks {exc})") from None
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"AVOL-Net checkpoint {path} does not fit the network ({exc})") from None
    return model.eval(), meta


# ---------------------------------------------------------------------- benchmark
# AVE-Net; L3-Net L3_WARM[0] of these steps (more steps go over the bench's CPU budget).  2,400 training clips: AVE-Net
# overfits fewer, and more cost no training CPU (docs/results/perception.md, av-correspondence)
FULL_SIZE = BenchSize(train=2400, test=1000, steps=1400, batch=32)
_QUICK = BenchSize(train=12, test=12, steps=3, batch=8)
PAPER_CONFIG = AVNetConfig()  # the papers' single-image towers (their figures: docs/results/perception.md)
SINGLE_FRAME = Window()
FRAME_STACK = Window(offsets=(-4, -2, 0, 2))  # the first rounds' AVE-Net: four frames stacked on channels
SYNC_WINDOW = Window(offsets=tuple(range(-5, 4)))  # frames t-5 .. t+3: the 8 frames of the audio and the one before
_CONFIG = AVNetConfig(image_channels=3 * len(SYNC_WINDOW.offsets), widths=(16, 32, 64), steps=8)  # L3-Net, AVE-Net
# L3-Net of av-correspondence starts from the trained AVE-Net's towers and time heads (l3_from_ave):
# (its steps as a fraction of AVE-Net's, whether the towers stay frozen)
L3_WARM = (0.25, True)
# AVE-Net's NCE temperature in av-correspondence: 0.05 retrieves a little better on seed 0's validation clips
# but worse on a held-out seed (docs/results/perception.md, av-correspondence, sixth round)
SYNC_TEMPERATURE = 0.1
MAX_NCE_SCALE = 100.0  # a learned NCE temperature stays at 0.01 or above (CLIP's clamp of its logit scale)
_TRAIN_SEEDS, _TEST_SEEDS = 0, 500_000  # clip seeds: 1,000,000 * seed + these, + 0 .. n - 1
_CENTRE = 8  # test pairs are centred on the middle frame


@dataclass(frozen=True, eq=False)
class TrainedNetworks:
    """Networks trained by a benchmark: name -> (trained, untrained twin, window), and their data."""

    nets: dict[str, tuple[nn.Module, nn.Module, Window]]
    cpu_seconds: dict[str, float]
    bank: ClipBank


_NETWORKS = {"l3": (L3Net, SYNC_WINDOW), "ave": (AVENet, SYNC_WINDOW), "avol": (AVOLNet, SINGLE_FRAME)}
# AVOL-Net's towers: two poolings (a 12 x 16 map of 4 x 4 px cells at 48 x 64) and 1x1 late vision blocks
# (a location sees 6 x 6 px, about one instrument), cosine similarities, the audio's spectral profile.
AVOL_CONFIG = AVNetConfig(widths=(16, 32, 64), kernels=(3, 1, 1), profile=True, cosine=True)
_CONFIGS = {"avol": AVOL_CONFIG}
ONE_INSTRUMENT = replace(CLIP_CONFIG, n_sounding=1)  # AVOL-Net's clips: one sound source, as in the paper
AVOL_SIZE = BenchSize(train=600, test=500, steps=800, batch=32)


@functools.lru_cache(maxsize=2)
def trained_networks(quick: bool, seed: int, names: tuple[str, ...], clips: AudioVisualConfig = CLIP_CONFIG,
                     size: BenchSize = FULL_SIZE) -> TrainedNetworks:
    """The networks ``names`` (of l3, ave, avol) trained as the benchmarks train them, from ``seed``.

    Cached per process, so the shipped AVOL-Net checkpoint is the benchmark's network
    without training it twice; do not train the returned networks further.
    """
    bench = _QUICK if quick else size
    train = clip_bank(1_000_000 * seed + _TRAIN_SEEDS, bench.train, clips)
    if not quick:
        keep_freed_memory()
    nets: dict[str, tuple[nn.Module, nn.Module, Window]] = {}
    seconds: dict[str, float] = {}
    order = sorted(names, key=lambda n: n == "l3")  # L3-Net last: it starts from the trained AVE-Net
    for name in order:
        cls, window = _NETWORKS[name]
        config = replace(_CONFIGS.get(name, _CONFIG), image_channels=3 * len(window.offsets))
        torch.manual_seed(seed)
        untrained = cls(config)
        model = cls(config)
        model.load_state_dict(untrained.state_dict())
        t0 = time.process_time()
        if name == "l3" and "ave" in nets and config.steps:  # L3-Net's fusion on AVE-Net's towers (L3_WARM)
            towers = l3_from_ave(model, nets["ave"][0])
            train_synchrony(model, train, window, replace(bench, steps=max(1, round(bench.steps * L3_WARM[0]))),
                            seed, "l3 synchrony from ave", frozen=towers if L3_WARM[1] else ())
        elif config.steps:  # L3-Net and AVE-Net: every mismatch of the batch and the clip's own audio out of time
            train_synchrony(model, train, window, bench, seed, f"{name} synchrony", temperature=SYNC_TEMPERATURE)
        else:
            train_correspondence(model, train, window, bench, seed, f"{name} correspondence")
        seconds[name] = time.process_time() - t0
        nets[name] = (model.eval(), untrained.eval(), window)
    return TrainedNetworks({n: nets[n] for n in names}, seconds, train)


def _data_figures(train: ClipBank, test: ClipBank, bench: BenchSize, seed: int) -> dict[str, Any]:
    return {
        "train_clips": len(train), "test_clips": len(test), "skipped_clips": [*train.skipped, *test.skipped],
        "steps": bench.steps, "batch": bench.batch, "lr": bench.lr,
        "data": f"make_clip seeds {1_000_000 * seed + _TRAIN_SEEDS}+ (train) and {1_000_000 * seed + _TEST_SEEDS}+ "
                f"(test), {train.config.height}x{train.config.width}, {train.config.frames} frames at "
                f"{train.config.fps} fps, {train.config.sample_rate} Hz, {train.config.n_sounding} instrument(s); "
                f"test pairs centred on frame {_CENTRE}",
    }


@register_perception_bench(
    "av-correspondence",
    paper="Arandjelovic & Zisserman, L3-Net arXiv 1705.08168 and AVE-Net arXiv 1712.06651",
    check="L3 correspondence accuracy >= 0.85; AVE audio-to-image recall@10 >= 0.50 over 1,000 clips",
    ablation="the same networks untrained",
)
def bench_av_correspondence(quick: bool, seed: int) -> BenchOutcome:
    """Train L3-Net and AVE-Net on one set of clips; test on clips of other seeds (module docstring)."""
    bench = _QUICK if quick else FULL_SIZE
    test = clip_bank(1_000_000 * seed + _TEST_SEEDS, bench.test)
    trained = trained_networks(quick, seed, ("l3", "ave"))
    nets = trained.nets
    acc = {k: tuple(evaluate_correspondence(m, test, w, _CENTRE) for m in (t, u)) for k, (t, u, w) in nets.items()}
    ave, ave0, w = nets["ave"]
    rec, rec0 = _retrieval(ave, test, w, _CENTRE, (1, 10)), _retrieval(ave0, test, w, _CENTRE, (1, 10))
    checks = (
        Check("L3 correspondence accuracy", "fraction of held-out pairs (half mismatched), higher is better",
              acc["l3"][0], acc["l3"][1], ">= 0.85 (chance 0.5)", acc["l3"][0] >= 0.85),
        Check(f"AVE audio-to-image recall@10 of {len(test)}", "fraction of audio queries, higher is better",
              rec[10], rec0[10], f">= 0.50 (chance {10 / len(test):.3f})", rec[10] >= 0.50),
    )
    figures = {
        "correspondence_accuracy": {k: {"trained": v[0], "untrained": v[1]} for k, v in acc.items()},
        "recall_at_1": {"trained": rec[1], "untrained": rec0[1]}, "chance_recall_at_10": 10 / len(test),
        "params": {k: count_parameters(v[0]) for k, v in nets.items()}, "train_cpu_seconds": trained.cpu_seconds,
        "windows": {"l3": SYNC_WINDOW.offsets, "ave": SYNC_WINDOW.offsets,
                    "audio_frames": (SYNC_WINDOW.before, SYNC_WINDOW.after)},
        **_data_figures(trained.bank, test, bench, seed),
    }
    return BenchOutcome(checks, figures)


@register_perception_bench(
    "avol-net",
    paper="Arandjelovic & Zisserman, Objects that Sound (AVOL-Net), arXiv 1712.06651",
    check="localisation map peak on the sounding object >= 0.70 (clips with one instrument)",
    ablation="the same network untrained",
)
def bench_avol(quick: bool, seed: int) -> BenchOutcome:
    """Train AVOL-Net on clips with one instrument; where does its map peak on held-out clips?"""
    bench = _QUICK if quick else AVOL_SIZE
    test = clip_bank(1_000_000 * seed + _TEST_SEEDS, bench.test, ONE_INSTRUMENT)
    trained = trained_networks(quick, seed, ("avol",), ONE_INSTRUMENT, AVOL_SIZE)
    avol, avol0, w = trained.nets["avol"]
    loc, loc0 = _localisation(avol, test, w, _CENTRE), _localisation(avol0, test, w, _CENTRE)
    acc = evaluate_correspondence(avol, test, w, _CENTRE), evaluate_correspondence(avol0, test, w, _CENTRE)
    checks = (
        Check("AVOL peak on the sounding object", "fraction of held-out frames with it sounding, higher is better",
              loc["peak_on_sounding"], loc0["peak_on_sounding"], ">= 0.70", loc["peak_on_sounding"] >= 0.70),
    )
    figures = {
        "localisation": {"trained": loc, "untrained": loc0},
        "correspondence_accuracy": {"trained": acc[0], "untrained": acc[1]},
        "params": count_parameters(avol), "train_cpu_seconds": trained.cpu_seconds["avol"],
        **_data_figures(trained.bank, test, bench, seed),
    }
    return BenchOutcome(checks, figures)


def train_localiser(path: PathLike, seed: int = 0) -> AVOLNet:
    """AVOL-Net trained as the ``avol-net`` benchmark trains it at ``seed``, written to ``path``.

    In a process that has just run the benchmark this is the benchmark's own network
    (:func:`~perception.audiovisual.correspondence.trained_networks` is cached).
    """
    trained = trained_networks(False, seed, ("avol",), ONE_INSTRUMENT, AVOL_SIZE)
    model = trained.nets["avol"][0]
    save_avol(model, path, height=trained.bank.config.height, width=trained.bank.config.width,
              sample_rate=trained.bank.config.sample_rate,
              command=f"python -c \"from perception.audiovisual.correspondence import train_localiser; "
                      f"train_localiser('{path}', seed={seed})\"")
    return model
