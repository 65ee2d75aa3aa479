"""A small VATT: transformers over raw video patches, waveform chunks and words, trained contrastively.

Akbari, Yuan, Qian, Chuang, Chang, Cui and Gong, "VATT: Transformers for
Multimodal Self-Supervised Learning from Raw Video, Audio and Text", NeurIPS
2021 (arXiv 2104.11178).  Each modality is cut into tokens with no hand-made
features: the video into 3-D tubelets of raw pixels (a linear projection,
written as a strided ``Conv3d``), the waveform into chunks of raw samples, the
text into words.  Learned positional embeddings (separable in time, height and
width for the video) are added, an aggregation token ``[AGG]`` is prepended,
and one transformer per modality ("modality-specific" VATT) encodes them.
``VATTConfig.audio_front`` can replace the raw chunks by log-magnitude STFT columns
or a learned filterbank (the benchmark uses STFT columns: a raw-chunk tower did not
learn the impacts' onsets here; ``docs/results/perception.md``).

Training is self-supervised in VATT's fine-and-coarse common spaces: video and
audio meet in a video-audio space (NCE, in-batch negatives, both directions),
and the video's video-audio embedding is mapped on to a video-text space where
it meets the clip's description (MIL-NCE, Miech et al. 2020: the several phrases
of a clip are all positives).  **DropToken** drops a random fraction of the
video and audio tokens of every clip while training (never the ``[AGG]``
token, never at evaluation), which cuts the cost of the quadratic attention.

Shapes (N clips)::

    video    float [N, T, 3, H, W] in [0, 1]   T, H, W multiples of the tubelet
             (``video_stem="objects"``: float [N, T, S, OBJECT_FEATURES], :func:`object_features` of S slots;
             with ``object_ground`` its :func:`ground_features` appended: [N, T, S, OBJECT_FEATURES + GROUND_FEATURES])
    audio    float [N, L]                       raw waveform, L a multiple of the chunk
    text     int64 [N, P, W]                    P phrases of W word ids (0 = padding), >= 1 word per clip
    VATT.video_features(video) -> float [N, 2 * dim]   ([AGG] output beside the mean of the tokens)
    VATT.video_features(video, per_time=True) -> float [N, (1 + T / t) * dim]   (a mean per time step)
    VATT.audio_features(audio[, per_time]) -> the same sizes, from the audio tower
    VATT.losses(video, audio, text) -> {"loss", "nce_va", "mil_nce_vt"} scalars (+ "nce_steps", "onset_mse")
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.audiovisual.clips import CLIP_CONFIG, VOCABULARY, ClipBank, clip_bank
from perception.audiovisual.object_tokens import (
    CHANGES,
    GROUND_FEATURES,
    OBJECT_FEATURES,
    PAIR_FEATURES,
    depth_features,
    ground_features,
    object_features,
    pair_features,
    pair_slots,
)
from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.model_stats import count_parameters
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = [
    "VATTConfig",
    "drop_tokens",
    "nce_loss",
    "clip_step_nce",
    "mil_nce_loss",
    "VATT",
    "step_means",
    "linear_probe",
    "collision_late",
    "onset_strength",
    "run_vatt_bench",
    "VATT_VARIANTS",
    "DEFAULT_VATT_VARIANT",
    "VATTOptions",
]

PAD = 0  # word id of padding; a phrase of all PAD is absent
AUDIO_FRONTS = ("waveform", "stft", "conv")
VIDEO_INPUTS = ("rgb", "diff")
VIDEO_STEMS = ("linear", "conv", "objects")
OBJECT_ATTENTIONS = ("all", "frame")
PAIR_TOKENS = ("measured", "learned")
DROP_TOKEN_MODES = ("tokens", "objects", "frames")
GROUNDS = (False, True, "mask", "depth")  # VATTConfig.object_ground: off, the mask and camera's floor (True = "mask"), depth's
_LOG_EPS = 1e-3  # floor of the STFT front end's log-magnitude (the mixture peaks at 0.9)
_LOG_CENTRE, _LOG_SCALE = -4.0, 2.5  # log(|X| + 1e-3) spans about [-6.9, 3]; this maps it near [-1, 3]
_FILTERS = 32  # learned filters of the "conv" front end


@dataclass(frozen=True)
class VATTConfig:
    """Size of :class:`VATT` (the paper's Base is 12 layers of width 768; this one fits a CPU).

    Args:
        frames, height, width: Video size T, H, W.
        tubelet: (t, h, w) of a video patch (the paper's 4 x 16 x 16, smaller here).
        samples: L, waveform samples per clip.
        chunk: Waveform samples per audio token (the paper's 128).
        vocab: Number of word ids (0 is padding).
        dim: Transformer width.
        depth: Layers per modality's transformer (the text's has one).
        heads: Attention heads.
        va_dim: Size of the video-audio space.
        vt_dim: Size of the video-text space.
        drop_token: Fraction of video and audio tokens dropped per clip in training (the paper's 0.5).
        drop_token_mode: Which video tokens DropToken may drop (the audio tokens are dropped at random in every
            mode). ``"tokens"`` (the default, VATT's): a random ``drop_token`` of all of them. The two others need
            ``video_stem="objects"``; they keep the contact that random DropToken at 0.5 takes from the object tower
            (``docs/results/audiovisual.md``, twenty-seventh session, vatt5). ``"objects"``: a random ``drop_token`` of the object
            tokens only, every pair token kept (the pairs carry the contact; needs ``object_pairs``), so fewer
            tokens go and the step costs more. ``"frames"``: whole frames, ``round(t * (1 - drop_token))`` kept at
            random in each time step of ``t`` frames (at least one), so every kept frame keeps all its objects and
            pairs and every step keeps some frames.
        temperature: NCE temperature (the paper's 0.07 with batches of 2,048; 0.1 for batches of 32).
        sync_negatives: Add each clip's own audio, rolled by half the clip, as a further negative of its video
            in the video-to-audio NCE (Korbar, Tran and Torresani's AVTS "hard negatives", NeurIPS 2018): the
            same sources out of time, so the video has to carry *when* things sound, not only what sounds.
        temporal_nce: Weight of a fine-grained video-audio NCE between *time steps* (0 = off, VATT's own
            objective): the video tokens of each tubelet time step are averaged, the audio tokens of the same
            span likewise, and each video step must pick its own audio step among every step of the batch,
            the other steps of its own clip included. The same sources at another time are then negatives,
            so the video tokens have to carry when something sounds (an impact), not only what sounds.
        temporal_negatives: Which audio steps are the negatives of a video step in ``temporal_nce``:
            ``"batch"``, every step of every clip of the batch; ``"clip"``, only the other steps of the same clip,
            so what sounds (which other clips differ in) never helps and only when it sounds does.
        audio_front: How the waveform becomes audio tokens, one per ``chunk`` samples. ``"waveform"`` (VATT's
            own): a linear projection of the raw chunk. ``"stft"``: a linear projection of the chunk's two
            log-magnitude STFT columns (Hann window of ``2 * chunk`` samples, hop ``chunk / 2``, causal: each
            column ends at its hop), where an impact's broadband onset is a rise across bins that one linear
            map can read, whatever the chunk's phase. ``"conv"``: a learned filterbank, a strided 1-D
            convolution (32 filters of ``chunk / 4`` samples), GELU, then a convolution of stride ``chunk``.
        video_input: What a tubelet holds. ``"rgb"`` (VATT's own): the raw pixels. ``"diff"``: each frame's
            pixels beside its difference from the frame before (zero for the first frame), 6 channels, so one
            linear map of a tubelet sees motion and contact, not only appearance.
        onset_target: Weight of a cross-modal regression (0 = off): a linear head on each video time step's
            token mean predicts the audio's onset strength in that step (:func:`onset_strength`: mean and peak
            positive spectral flux of the fixed log-magnitude STFT, standardised over the batch), as Owens et
            al. (ECCV 2016) predict sound statistics from frames. No label enters: the target is the clip's
            own audio, through a fixed (never trained) front end, so the video tower must learn to see what
            makes an onset.
        onset_band: Lowest frequency of ``onset_target``'s spectral flux, as a fraction of the Nyquist frequency
            (0, the default: every bin). The clips' instruments are harmonic tones whose harmonics end below
            3.64 kHz (0.66 of the 5.5 kHz Nyquist; the trumpet's 7th at 520 Hz), while an impact rings high modes
            and clicks, so the flux from 0.67 up is an impact onset detector made from the mixture alone (no label,
            no separated source; ``docs/results/vatt_onset_look.py``, and ``docs/results/audiovisual.md``,
            twenty-seventh session, vatt4), and regressing it asks the video tower *when something hits*, not when
            an instrument swells.
        audio_positions: Add learned positional embeddings to the audio tokens (VATT's own). With ``False``
            the audio tower is blind to position (its STFT tokens are causal and local), so an audio step's
            features say only what sounds in it: the per-step NCE can no longer pair a video step with the
            audio step of the same position by their positional embeddings alone, only by what happens.
        video_time_positions: Add the learned positional embedding along time to the video tubelets (VATT's
            own); the height and width embeddings stay either way. With ``False`` (and ``audio_positions=False``)
            neither tower knows which time step it is in, so a video step can pick its audio step only by what
            it shows.
        video_stem: How a tubelet becomes a token. ``"linear"`` (VATT's own): one linear projection of its raw
            pixels. ``"conv"``: a small CNN inside each tubelet at full resolution (:class:`_TubeletCNN`: a 3x3
            convolution per frame, GELU, a strided convolution across the tubelet's frames, GELU, a linear map
            of the resulting map), for objects of a few pixels whose contact one linear map of 8x8 pixels does
            not read. It runs on the tokens DropToken keeps, so DropToken cuts its cost too.
            ``"objects"``: one token per object slot per frame (:mod:`perception.audiovisual.object_tokens`: the
            object's centre, size, colour, velocity and velocity change, measured from the pixels and instance
            masks), through a two-layer MLP; the video input is then those features, float
            [N, T, object_slots, OBJECT_FEATURES]. A slot not in view is padding (masked in attention, left out
            of the per-step means); the tubelet's time length still sets the time steps (frames per step), its
            height and width are unused.
        stem_width: Channels of the ``"conv"`` stem's first layer (twice as many in its second).
        object_slots: Object slots per frame of the ``"objects"`` stem.
        object_attention: Which tokens an object token attends to in the ``"objects"`` stem: ``"all"`` (every
            token of the clip) or ``"frame"`` (the [AGG] token and the objects of its own frame; the [AGG] token
            still sees every token). Without time positions a token cannot tell which others share its frame, so
            with ``"all"`` no layer can measure two objects' gap at one moment; ``"frame"`` gives that pairing
            without telling any token its time step (its velocity and velocity change already span frames).
        object_pairs: In the ``"objects"`` stem, add one token per pair of object slots per frame
            (:func:`perception.audiovisual.object_tokens.pair_features`: the pair's gap, closeness, closing and
            relative speed, and their velocity changes, through its own two-layer MLP), as an interaction
            network's relations, so that contact is a read of one token; a pair not both in view is padding. The
            pair tokens belong to their frame (``object_attention="frame"`` pairs them with its objects) and
            enter the per-step means like the object tokens.
        pair_tokens: Where ``object_pairs``' tokens come from. ``"measured"``: the hand-made
            :func:`perception.audiovisual.object_tokens.pair_features` (gap, closeness, velocity changes), which an
            untrained encoder already reads the probe's label from nearly as well as the best reading of the masks,
            leaving no room for the check's 15 points (``docs/results/audiovisual.md``, twenty-second session,
            vatt). ``"learned"``: an interaction network's
            relation model instead, a two-layer MLP of the two objects' own features ``[a, b, a - b]``, summed over
            both orders so the pair is unordered; the network has to learn what makes a contact from training.
        temporal_skip_first: Leave the first time step out of ``temporal_nce`` (each clip's steps 1.. only). The
            first step carries marks no other step has (no velocity in its first frame, the causal STFT's zero
            padding), so it can be matched by those marks alone; without it only what happens can win the NCE.
        object_ground: In the ``"objects"`` stem, each object token also carries where the object stands on the
            floor (:func:`perception.audiovisual.object_tokens.ground_features`: its floor position, radius and
            their motion in scene units, from the mask and the known camera), so the stem's input is
            ``[..., OBJECT_FEATURES + GROUND_FEATURES]`` (see :attr:`object_inputs`): the masks' 2-D gaps cap how
            well any reader gets the probe's label, and depth is the cue they lack (``docs/results/audiovisual.md``,
            twenty-second session, vatt3). ``"depth"``: the same 7 features from the renderer's depth per mask pixel
            (:func:`perception.audiovisual.object_tokens.depth_features`; an RGB-D sensor, so the clips must be made
            with ``AudioVisualConfig(depth=True)``, :attr:`ClipBank.depth`), whose contact score reads the label
            better than the mask's (twenty-sixth session, vatt3). ``True`` and ``"mask"`` are the mask-and-camera
            estimate.
        object_change: How the ``"objects"`` stem's tokens measure an object's velocity change (features 9-10 of
            :func:`perception.audiovisual.object_tokens.object_features`): ``"difference"`` (the second difference
            of the mask's centre) or ``"kink"`` (two slopes fitted over 2 frames before and after, differenced:
            the centre's drifting bias averages out; ``docs/results/audiovisual.md``, twenty-fifth session, vatt2).
            The benchmark's ``_inputs``
            and ``docs/results/vatt_dev.py`` (``VATT_OBJECT_CHANGE``) compute the features this way.
    """

    frames: int = 8
    height: int = 64
    width: int = 64
    tubelet: tuple[int, int, int] = (2, 8, 8)
    samples: int = 16000
    chunk: int = 128
    vocab: int = 64
    dim: int = 64
    depth: int = 2
    heads: int = 4
    va_dim: int = 64
    vt_dim: int = 32
    drop_token: float = 0.5
    drop_token_mode: str = "tokens"
    temperature: float = 0.1
    sync_negatives: bool = False
    temporal_nce: float = 0.0
    temporal_negatives: str = "batch"
    audio_front: str = "waveform"
    video_input: str = "rgb"
    onset_target: float = 0.0
    onset_band: float = 0.0
    audio_positions: bool = True
    video_time_positions: bool = True
    video_stem: str = "linear"
    stem_width: int = 16
    object_slots: int = 4
    object_attention: str = "all"
    object_pairs: bool = False
    pair_tokens: str = "measured"
    temporal_skip_first: bool = False
    object_ground: bool | str = False
    object_change: str = "difference"

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        t, h, w = self.tubelet
        if self.frames % t or self.height % h or self.width % w:
            raise ConfigError(f"VATTConfig: video {self.frames}x{self.height}x{self.width} is not a whole number "
                              f"of tubelets {self.tubelet}")
        if self.samples % self.chunk:
            raise ConfigError(f"VATTConfig: {self.samples} samples is not a whole number of chunks of {self.chunk}")
        if not 0.0 <= self.drop_token < 1.0:
            raise ConfigError(f"VATTConfig: drop_token must be in [0, 1), got {self.drop_token}")
        if self.drop_token_mode not in DROP_TOKEN_MODES or (self.drop_token_mode != "tokens" and (
                self.video_stem != "objects" or (self.drop_token_mode == "objects" and not self.object_pairs))):
            raise ConfigError(f"VATTConfig: drop_token_mode must be one of {', '.join(DROP_TOKEN_MODES)} ('objects' "
                              f"and 'frames' with video_stem 'objects', 'objects' with object_pairs=True), got "
                              f"{self.drop_token_mode!r}, video_stem {self.video_stem!r}, "
                              f"object_pairs {self.object_pairs}")
        if not (math.isfinite(self.temporal_nce) and self.temporal_nce >= 0):
            raise ConfigError(f"VATTConfig: temporal_nce must be a finite weight >= 0, got {self.temporal_nce}")
        if self.temporal_negatives not in ("batch", "clip"):
            raise ConfigError(f"VATTConfig: temporal_negatives must be 'batch' or 'clip', "
                              f"got {self.temporal_negatives!r}")
        if self.audio_front not in AUDIO_FRONTS:
            raise ConfigError(f"VATTConfig: audio_front must be one of {', '.join(AUDIO_FRONTS)}, "
                              f"got {self.audio_front!r}")
        if self.video_input not in VIDEO_INPUTS:
            raise ConfigError(f"VATTConfig: video_input must be one of {', '.join(VIDEO_INPUTS)}, "
                              f"got {self.video_input!r}")
        if self.video_stem not in VIDEO_STEMS:
            raise ConfigError(f"VATTConfig: video_stem must be one of {', '.join(VIDEO_STEMS)}, "
                              f"got {self.video_stem!r}")
        if self.stem_width < 1 or (self.video_stem == "conv" and (self.tubelet[1] % 2 or self.tubelet[2] % 2)):
            raise ConfigError(f"VATTConfig: the conv stem needs stem_width >= 1 and an even tubelet height and "
                              f"width, got stem_width {self.stem_width}, tubelet {self.tubelet}")
        if self.object_attention not in OBJECT_ATTENTIONS:
            raise ConfigError(f"VATTConfig: object_attention must be one of {', '.join(OBJECT_ATTENTIONS)}, "
                              f"got {self.object_attention!r}")
        if self.video_stem == "objects" and (self.object_slots < 1 or self.video_input != "rgb"):
            raise ConfigError(f"VATTConfig: the objects stem needs object_slots >= 1 and video_input 'rgb' (its "
                              f"tokens carry their own motion), got object_slots {self.object_slots}, "
                              f"video_input {self.video_input!r}")
        if self.temporal_skip_first and (not self.temporal_nce or self.video_grid[0] < 3):
            raise ConfigError(f"VATTConfig: temporal_skip_first needs temporal_nce > 0 and at least 3 time steps, "
                              f"got temporal_nce {self.temporal_nce}, {self.video_grid[0]} steps")
        if self.object_pairs and (self.video_stem != "objects" or self.object_slots < 2):
            raise ConfigError(f"VATTConfig: object_pairs needs video_stem 'objects' and object_slots >= 2, got "
                              f"video_stem {self.video_stem!r}, object_slots {self.object_slots}")
        if self.object_change not in CHANGES or (self.object_change != "difference" and self.video_stem != "objects"):
            raise ConfigError(f"VATTConfig: object_change must be one of {', '.join(CHANGES)} ('kink' with video_stem "
                              f"'objects'), got {self.object_change!r}, video_stem {self.video_stem!r}")
        if not any(self.object_ground is g or (isinstance(g, str) and self.object_ground == g) for g in GROUNDS):
            raise ConfigError(f"VATTConfig: object_ground must be one of {', '.join(map(repr, GROUNDS))}, "
                              f"got {self.object_ground!r}")
        if self.object_ground and self.video_stem != "objects":
            raise ConfigError(f"VATTConfig: object_ground needs video_stem 'objects', got {self.video_stem!r}")
        if self.pair_tokens not in PAIR_TOKENS or (self.pair_tokens != "measured" and not self.object_pairs):
            raise ConfigError(f"VATTConfig: pair_tokens must be one of {', '.join(PAIR_TOKENS)} ('learned' with "
                              f"object_pairs=True), got {self.pair_tokens!r}, object_pairs {self.object_pairs}")
        if not (isinstance(self.onset_target, (int, float)) and math.isfinite(self.onset_target)
                and self.onset_target >= 0):
            raise ConfigError(f"VATTConfig: onset_target must be a finite weight >= 0, got {self.onset_target!r}")
        if not (isinstance(self.onset_band, (int, float)) and math.isfinite(self.onset_band)
                and 0.0 <= self.onset_band < 1.0) or (self.onset_band and not self.onset_target):
            raise ConfigError(f"VATTConfig: onset_band must be a fraction of the Nyquist frequency in [0, 1), with "
                              f"onset_target > 0 when not 0; got onset_band {self.onset_band!r}, "
                              f"onset_target {self.onset_target}")
        if self.onset_target and self.chunk % 8:
            raise ConfigError(f"VATTConfig: onset_target needs chunk divisible by 8, got {self.chunk}")
        if self.audio_front != "waveform" and self.chunk % 8:
            raise ConfigError(f"VATTConfig: audio_front {self.audio_front!r} needs chunk divisible by 8, "
                              f"got {self.chunk}")
        if self.dim % self.heads or self.vocab < 2 or self.temperature <= 0:
            raise ConfigError(f"VATTConfig: dim must divide by heads, vocab >= 2, temperature > 0; got {self}")

    @property
    def video_grid(self) -> tuple[int, int, int]:
        """Tubelets along time, height and width."""
        t, h, w = self.tubelet
        return self.frames // t, self.height // h, self.width // w

    @property
    def frame_tokens(self) -> int:
        """Video tokens per frame of the ``"objects"`` stem: the object slots, and their pairs when asked."""
        s = self.object_slots
        return s + (s * (s - 1) // 2 if self.object_pairs else 0)

    @property
    def object_inputs(self) -> int:
        """Features of one object token of the ``"objects"`` stem (``object_ground`` adds the floor's)."""
        return OBJECT_FEATURES + (GROUND_FEATURES if self.object_ground else 0)

    @property
    def audio_tokens(self) -> int:
        return self.samples // self.chunk


def drop_tokens(tokens: Tensor, rate: float, generator: torch.Generator | None = None,
                return_index: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """DropToken: keep a random ``1 - rate`` of each sequence's tokens, in their order.

    Args:
        tokens: float [N, K, D] (positional embeddings already added).
        rate: Fraction dropped, in [0, 1); at least one token is kept.
        return_index: Also return which tokens were kept, int64 [N, keep] (positions in ``0 .. K-1``).

    Returns:
        float [N, max(1, round(K * (1 - rate))), D] (and the kept positions when asked).
    """
    n, k, d = tokens.shape
    keep = max(1, round(k * (1.0 - rate)))
    if keep >= k:
        return (tokens, torch.arange(k, device=tokens.device).expand(n, k)) if return_index else tokens
    order = torch.rand(n, k, generator=generator, device=tokens.device).argsort(1)[:, :keep].sort(1).values
    kept = tokens.gather(1, order[..., None].expand(n, keep, d))
    return (kept, order) if return_index else kept


def step_means(tokens: Tensor, step: Tensor, steps: int) -> Tensor:
    """Mean of the tokens of each time step: tokens float [N, K, D], step int64 [N, K] -> float [N, steps, D].

    A step with no token (all dropped) gives zeros; a token of step -1 (padding) counts in none.
    """
    onehot = F.one_hot(step.clamp_min(0), steps).to(tokens.dtype) * (step >= 0)[..., None]  # [N, K, S]
    return (onehot.transpose(1, 2) @ tokens) / onehot.sum(1).clamp_min(1.0)[..., None]


def nce_loss(a: Tensor, b: Tensor, temperature: float, extra: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE of paired unit embeddings ``a``, ``b`` [N, D]; the other rows are the negatives.

    ``extra`` [M, D] are further negatives of every ``a`` (the ``a -> b`` direction only).
    """
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    forward = logits if extra is None else torch.cat([logits, a @ extra.T / temperature], 1)
    return 0.5 * (F.cross_entropy(forward, target) + F.cross_entropy(logits.T, target))


def clip_step_nce(video: Tensor, audio: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE between the time steps of each clip: video, audio float [N, S, D] unit embeddings.

    Step ``s`` of a clip's video must pick the same clip's audio step ``s`` among its ``S`` steps (and back);
    other clips take no part.
    """
    logits = video @ audio.transpose(1, 2) / temperature  # [N, S, S]
    n, s, _ = logits.shape
    target = torch.arange(s, device=video.device).repeat(n)
    return 0.5 * (F.cross_entropy(logits.flatten(0, 1), target)
                  + F.cross_entropy(logits.transpose(1, 2).flatten(0, 1), target))


def mil_nce_loss(video: Tensor, phrases: Tensor, present: Tensor, temperature: float) -> Tensor:
    """MIL-NCE: each clip's phrases are all positives, every other clip's phrases negatives.

    Args:
        video: float [N, D] unit embeddings.
        phrases: float [N, P, D] unit embeddings of each clip's phrases.
        present: bool [N, P], which phrases exist (each clip has at least one).

    Returns:
        Mean over clips of ``-log(sum_pos exp(s / t) / sum_all exp(s / t))``.
    """
    n, p, _ = phrases.shape
    if not bool(present.any(1).all()):
        raise StateError("mil_nce_loss: every clip needs at least one phrase")
    sims = video @ phrases.reshape(n * p, -1).T / temperature  # [N, N * P]
    sims = sims.masked_fill(~present.reshape(1, n * p), float("-inf"))
    own = torch.eye(n, dtype=torch.bool, device=video.device).repeat_interleave(p, 1) & present.reshape(1, n * p)
    positive = sims.masked_fill(~own, float("-inf")).logsumexp(1)
    return (sims.logsumexp(1) - positive).mean()


class _Encoder(nn.Module):
    """[AGG] token + tokens -> transformer; returns [AGG] output and all token outputs."""

    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.agg = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.agg, std=0.02)

    def forward(self, tokens: Tensor, padding: Tensor | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``padding`` bool [N, K] (True: ignore the token); ``mask`` bool [N * heads, K + 1, K + 1] (True: query
        may not attend to key; row and column 0 are the [AGG] token's)."""
        x = torch.cat([self.agg.expand(tokens.shape[0], -1, -1), tokens], 1)
        if padding is not None:
            padding = torch.cat([torch.zeros_like(padding[:, :1]), padding], 1)
        x = self.norm(self.blocks(x, mask=mask, src_key_padding_mask=padding))
        return x[:, 0], x[:, 1:]


class VATT(nn.Module):
    """Modality-specific VATT with DropToken and the fine-and-coarse common spaces (module docstring)."""

    def __init__(self, config: VATTConfig = VATTConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        gt, gh, gw = c.video_grid
        channels = 6 if c.video_input == "diff" else 3
        if c.video_stem == "conv":
            self.stem = _TubeletCNN(channels, c.tubelet, c.dim, c.stem_width)
        elif c.video_stem == "objects":
            self.objects = nn.Sequential(nn.Linear(c.object_inputs, c.dim), nn.GELU(), nn.Linear(c.dim, c.dim))
            if c.object_pairs:
                inputs = PAIR_FEATURES if c.pair_tokens == "measured" else 3 * c.object_inputs
                self.pairs = nn.Sequential(nn.Linear(inputs, c.dim), nn.GELU(), nn.Linear(c.dim, c.dim))
        else:
            self.patch = nn.Conv3d(channels, c.dim, c.tubelet, c.tubelet)  # linear projection of raw tubelets
        self.pos_t = nn.Parameter(torch.randn(gt, 1, 1, c.dim) * 0.02)
        self.pos_h = nn.Parameter(torch.randn(1, gh, 1, c.dim) * 0.02)
        self.pos_w = nn.Parameter(torch.randn(1, 1, gw, c.dim) * 0.02)
        self.chunk = _audio_front(c)
        self.pos_a = nn.Parameter(torch.randn(1, c.audio_tokens, c.dim) * 0.02)
        self.words = nn.Embedding(c.vocab, c.dim, padding_idx=PAD)
        self.video_encoder = _Encoder(c.dim, c.depth, c.heads)
        self.audio_encoder = _Encoder(c.dim, c.depth, c.heads)
        self.text_encoder = _Encoder(c.dim, 1, c.heads)
        self.video_to_va = nn.Linear(c.dim, c.va_dim)
        self.audio_to_va = nn.Linear(c.dim, c.va_dim)
        self.va_to_vt = nn.Linear(c.va_dim, c.vt_dim)
        self.text_to_vt = nn.Linear(c.dim, c.vt_dim)
        if c.temporal_nce:  # heads of the per-time-step video-audio space
            self.video_to_step = nn.Linear(c.dim, c.va_dim)
            self.audio_to_step = nn.Linear(c.dim, c.va_dim)
        if c.onset_target:  # a video step's token mean -> the audio's onset strength in that step
            self.video_to_onset = nn.Linear(c.dim, ONSET_FEATURES)

    # ---------------------------------------------------------------- tokens
    def video_tokens(self, video: Tensor) -> Tensor:
        """float [N, T, 3, H, W] -> tokens [N, gt * gh * gw, dim] with positions added.

        ``video_stem="objects"``: float [N, T, S, OBJECT_FEATURES] -> [N, T * S, dim], frame by frame.
        """
        c = self.config
        if c.video_stem == "objects":
            return self._object_tokens(video)[0]
        x = self._video_input(video)  # [N, C, T, H, W]
        if c.video_stem == "conv":
            k = math.prod(c.video_grid)
            return self.stem(self._tubelets(x).flatten(0, 1)).view(x.shape[0], k, c.dim) + self._video_positions()
        x = self.patch(x)  # [N, dim, gt, gh, gw]
        x = x.permute(0, 2, 3, 4, 1) + self.pos_h + self.pos_w
        if c.video_time_positions:
            x = x + self.pos_t
        return x.flatten(1, 3)

    def _object_tokens(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Object features [N, T, S, F] -> tokens [N, T * S, dim] (time positions when the config says) and
        whether each token's object is in view, bool [N, T * S]."""
        c = self.config
        if features.dim() != 4 or tuple(features.shape[1:]) != (c.frames, c.object_slots, c.object_inputs):
            raise StateError(f"VATT: the objects stem needs object features [N, {c.frames}, {c.object_slots}, "
                             f"{c.object_inputs}] (object_ground={c.object_ground}), got {tuple(features.shape)}")
        tokens = self.objects(features)  # [N, T, S, dim]
        present = features[..., 0] > 0.5  # [N, T, S]
        if c.object_pairs:  # then the frame's pair tokens: [N, T, S + P, dim]
            pairs, both = self._pair_tokens(features)
            tokens = torch.cat([tokens, pairs], 2)
            present = torch.cat([present, both], 2)
        if c.video_time_positions:  # the time step's embedding, shared by the frames of the step
            tokens = tokens + self.pos_t.view(-1, 1, c.dim).repeat_interleave(c.tubelet[0], 0)
        return tokens.flatten(1, 2), present.flatten(1)

    def _pair_tokens(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Object features [N, T, S, F] -> pair tokens [N, T, P, dim] and whether both objects are in view
        [N, T, P] (``pair_tokens`` of the config)."""
        c = self.config
        if c.pair_tokens == "measured":
            pairs = pair_features(features[..., :OBJECT_FEATURES], c.height, c.width)
            return self.pairs(pairs), pairs[..., 0] > 0.5
        i, j = pair_slots(c.object_slots)
        a, b = features[:, :, i], features[:, :, j]  # [N, T, P, F]
        both = (a[..., 0] > 0.5) & (b[..., 0] > 0.5)
        tokens = self.pairs(torch.cat([a, b, a - b], -1)) + self.pairs(torch.cat([b, a, b - a], -1))
        return tokens * both[..., None], both

    def _frame_mask(self, frame: Tensor) -> Tensor | None:
        """``object_attention="frame"``: the attention mask [N * heads, K + 1, K + 1] that lets each object token
        see the [AGG] token and the tokens of its own frame only (``frame`` int64 [N, K]); None for ``"all"``."""
        if self.config.object_attention == "all":
            return None
        n, k = frame.shape
        blocked = torch.zeros(n, k + 1, k + 1, dtype=torch.bool, device=frame.device)
        blocked[:, 1:, 1:] = frame[:, :, None] != frame[:, None, :]
        return blocked.repeat_interleave(self.config.heads, 0)

    def _video_input(self, video: Tensor) -> Tensor:
        """Checked video [N, T, 3, H, W] -> the stem's input [N, C, T, H, W] (C = 6 for ``"diff"``)."""
        c = self.config
        if video.dim() != 5 or tuple(video.shape[1:]) != (c.frames, 3, c.height, c.width):
            raise StateError(f"VATT: video must be [N, {c.frames}, 3, {c.height}, {c.width}], got {tuple(video.shape)}")
        x = video.transpose(1, 2)  # [N, 3, T, H, W]
        if c.video_input == "diff":
            x = torch.cat([x, F.pad(x.diff(dim=2), (0, 0, 0, 0, 1, 0))], 1)  # frame beside (frame - previous)
        return x

    def _tubelets(self, x: Tensor) -> Tensor:
        """[N, C, T, H, W] -> [N, gt * gh * gw, C, t, h, w], in the token order of :meth:`video_tokens`."""
        n, ch = x.shape[:2]
        (gt, gh, gw), (t, h, w) = self.config.video_grid, self.config.tubelet
        x = x.reshape(n, ch, gt, t, gh, h, gw, w).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return x.reshape(n, gt * gh * gw, ch, t, h, w)

    def _video_positions(self) -> Tensor:
        """Positional embedding of each tubelet, [gt * gh * gw, dim] (time left out when the config says)."""
        pos = self.pos_h + self.pos_w + (self.pos_t if self.config.video_time_positions else 0.0)
        return pos.expand(*self.config.video_grid, -1).reshape(-1, self.config.dim)

    def audio_tokens(self, audio: Tensor) -> Tensor:
        """float [N, L] -> tokens [N, L / chunk, dim] with positions added."""
        c = self.config
        if audio.dim() != 2 or audio.shape[1] != c.samples:
            raise StateError(f"VATT: audio must be [N, {c.samples}], got {tuple(audio.shape)}")
        tokens = self.chunk(audio)
        return tokens + self.pos_a if self.config.audio_positions else tokens

    # ---------------------------------------------------------------- encoders
    def _drop(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """DropToken in training mode; returns the kept tokens and their positions [N, K']."""
        if self.training and self.config.drop_token:
            return drop_tokens(tokens, self.config.drop_token, return_index=True)
        n, k, _ = tokens.shape
        return tokens, torch.arange(k, device=tokens.device).expand(n, k)

    def _kept_object_tokens(self, n: int, device: torch.device) -> Tensor:
        """Which tokens of the ``"objects"`` stem ``drop_token_mode`` keeps, int64 [N, K'] in order (positions in
        the ``frames * frame_tokens`` sequence, frame by frame)."""
        c = self.config
        per_frame = c.frame_tokens
        if c.drop_token_mode == "objects":
            slot = torch.arange(c.frames * per_frame, device=device) % per_frame
            objects, pairs = (slot < c.object_slots).nonzero()[:, 0], (slot >= c.object_slots).nonzero()[:, 0]
            keep = max(1, round(len(objects) * (1.0 - c.drop_token)))
            chosen = objects[torch.rand(n, len(objects), device=device).argsort(1)[:, :keep]]
            return torch.cat([chosen, pairs.expand(n, -1)], 1).sort(1).values
        t, steps = c.tubelet[0], c.video_grid[0]  # "frames": the same number of whole frames from each step
        keep = max(1, round(t * (1.0 - c.drop_token)))
        frames = torch.rand(n, steps, t, device=device).argsort(2)[..., :keep]
        frames = (frames + torch.arange(steps, device=device)[:, None] * t).flatten(1).sort(1).values  # [N, F']
        return (frames[..., None] * per_frame + torch.arange(per_frame, device=device)).flatten(1)

    def _video(self, video: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[AGG] [N, dim], token outputs [N, K', dim] and each output's time step [N, K']."""
        if self.config.video_stem == "objects":
            tokens, present = self._object_tokens(video)
            if self.training and self.config.drop_token and self.config.drop_token_mode != "tokens":
                kept = self._kept_object_tokens(tokens.shape[0], tokens.device)
                tokens = tokens.gather(1, kept[..., None].expand(-1, -1, tokens.shape[2]))
            else:
                tokens, kept = self._drop(tokens)
            present = present.gather(1, kept)
            frame = kept // self.config.frame_tokens
            agg, out = self.video_encoder(tokens, padding=~present, mask=self._frame_mask(frame))
            return agg, out, (frame // self.config.tubelet[0]).masked_fill(~present, -1)
        if self.config.video_stem == "conv":  # drop raw tubelets first, so the stem runs on the kept ones only
            tubelets = self._tubelets(self._video_input(video))  # [N, K, C, t, h, w]
            n, k = tubelets.shape[:2]
            _, kept = self._drop(tubelets.new_zeros(n, k, 1))
            chosen = tubelets.gather(1, kept.view(n, -1, 1, 1, 1, 1).expand(-1, -1, *tubelets.shape[2:]))
            tokens = self.stem(chosen.flatten(0, 1)).view(n, kept.shape[1], -1) + self._video_positions()[kept]
        else:
            tokens, kept = self._drop(self.video_tokens(video))
        agg, out = self.video_encoder(tokens)
        _, gh, gw = self.config.video_grid
        return agg, out, kept // (gh * gw)

    def _audio(self, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`_video`; chunk ``k`` belongs to video time step ``k * gt // audio_tokens``."""
        tokens, kept = self._drop(self.audio_tokens(audio))
        agg, out = self.audio_encoder(tokens)
        return agg, out, kept * self.config.video_grid[0] // self.config.audio_tokens

    def encode_video(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """``([AGG] [N, dim], tokens [N, K, dim])``; DropToken applies in training mode."""
        return self._video(video)[:2]

    def encode_audio(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self._audio(audio)[:2]

    def encode_text(self, text: Tensor) -> Tensor:
        """int64 [M, W] phrases -> [AGG] outputs [M, dim] (padding masked; an all-padding phrase gives a value
        that callers mask out)."""
        if text.dim() != 2:
            raise StateError(f"VATT: phrases must be [M, W] word ids, got {tuple(text.shape)}")
        pos = _sinusoid(text.shape[1], self.config.dim).to(text.device)
        agg, _ = self.text_encoder(self.words(text) + pos, padding=text == PAD)
        return agg

    @torch.no_grad()
    def video_features(self, video: Tensor, batch: int = 64, per_time: bool = False) -> Tensor:
        """Frozen video representation for a linear probe.

        Args:
            per_time: Pool the tokens of each tubelet time step apart (``[AGG]`` beside ``gt`` means,
                float [N, (1 + gt) dim]) rather than all together (``[AGG]`` beside one mean, [N, 2 dim]).
        """
        return self._features(self._video, video, batch, per_time)

    @torch.no_grad()
    def audio_features(self, audio: Tensor, batch: int = 64, per_time: bool = False) -> Tensor:
        """Frozen audio representation, pooled as :meth:`video_features` (a step is the video's time step)."""
        return self._features(self._audio, audio, batch, per_time)

    def _features(self, encode, x: Tensor, batch: int, per_time: bool) -> Tensor:
        was = self.training
        self.eval()
        try:
            out = []
            for part in x.split(batch):
                agg, tokens, step = encode(part)
                pooled = step_means(tokens, step, self.config.video_grid[0]).flatten(1) if per_time \
                    else step_means(tokens, step.clamp_max(0), 1)[:, 0]  # padding (step -1) left out
                out.append(torch.cat([agg, pooled], 1))
            return torch.cat(out)
        finally:
            self.train(was)

    # ---------------------------------------------------------------- objective
    def losses(self, video: Tensor, audio: Tensor, text: Tensor) -> dict[str, Tensor]:
        """NCE in the video-audio space plus MIL-NCE in the video-text space (VATT's equal weights), plus
        ``temporal_nce`` times the per-time-step NCE when the config asks for it."""
        c = self.config
        if text.dim() != 3 or text.shape[0] != video.shape[0] or audio.shape[0] != video.shape[0]:
            raise StateError(f"VATT.losses: needs N clips of each modality and text [N, P, W]; got video "
                             f"{tuple(video.shape)}, audio {tuple(audio.shape)}, text {tuple(text.shape)}")
        v_agg, v_tokens, v_step = self._video(video)
        a_agg, a_tokens, a_step = self._audio(audio)
        v_va, a_va = self.video_to_va(v_agg), self.audio_to_va(a_agg)
        v_vt = F.normalize(self.va_to_vt(v_va), dim=1)
        n, p, w = text.shape
        present = (text != PAD).any(2)
        t_vt = F.normalize(self.text_to_vt(self.encode_text(text.view(n * p, w))), dim=1).view(n, p, -1)
        extra = None
        if c.sync_negatives:  # the clip's own audio out of time: the second half first
            extra = F.normalize(self.audio_to_va(self.encode_audio(audio.roll(c.samples // 2, 1))[0]), dim=1)
        nce = nce_loss(F.normalize(v_va, dim=1), F.normalize(a_va, dim=1), c.temperature, extra)
        mil = mil_nce_loss(v_vt, t_vt, present, c.temperature)
        out = {"loss": nce + mil, "nce_va": nce.detach(), "mil_nce_vt": mil.detach()}
        if c.temporal_nce:
            steps = c.video_grid[0]
            vs = F.normalize(self.video_to_step(step_means(v_tokens, v_step, steps)), dim=-1)  # [N, S, D]
            as_ = F.normalize(self.audio_to_step(step_means(a_tokens, a_step, steps)), dim=-1)
            if c.temporal_skip_first:
                vs, as_ = vs[:, 1:], as_[:, 1:]
            if c.temporal_negatives == "clip":
                temporal = clip_step_nce(vs, as_, c.temperature)
            else:
                temporal = nce_loss(vs.flatten(0, 1), as_.flatten(0, 1), c.temperature)
            out["loss"] = out["loss"] + c.temporal_nce * temporal
            out["nce_steps"] = temporal.detach()
        if c.onset_target:
            target = onset_strength(audio, c.video_grid[0], c.chunk, c.onset_band)  # [N, S, 2], no gradient
            target = (target - target.mean((0, 1))) / (target.std((0, 1)) + 1e-6)
            guess = self.video_to_onset(step_means(v_tokens, v_step, c.video_grid[0]))
            onset = F.mse_loss(guess, target)
            out["loss"] = out["loss"] + c.onset_target * onset
            out["onset_mse"] = onset.detach()
        return out


class _TubeletCNN(nn.Module):
    """A small CNN inside one tubelet at full resolution: [M, C, t, h, w] -> [M, dim].

    A 3x3 convolution on each frame (``width`` channels, zero padding at the tubelet's border), GELU, a
    convolution across all ``t`` frames with a 3x3 kernel of stride 2 (``2 * width`` channels), GELU, then a
    linear map of the whole ``2 * width x h/2 x w/2`` map, so where in the tubelet a feature lies is kept.
    """

    def __init__(self, channels: int, tubelet: tuple[int, int, int], dim: int, width: int) -> None:
        super().__init__()
        t, h, w = tubelet
        self.frame = nn.Conv3d(channels, width, (1, 3, 3), padding=(0, 1, 1))
        self.across = nn.Conv3d(width, 2 * width, (t, 3, 3), stride=(t, 2, 2), padding=(0, 1, 1))
        self.proj = nn.Linear(2 * width * (h // 2) * (w // 2), dim)

    def forward(self, tubelets: Tensor) -> Tensor:
        x = F.gelu(self.across(F.gelu(self.frame(tubelets))))  # [M, 2 width, 1, h / 2, w / 2]
        return self.proj(x.flatten(1))


class _WaveformChunks(nn.Module):
    """VATT's audio tokens: a linear projection of raw chunks, [N, L] -> [N, L / chunk, dim]."""

    def __init__(self, chunk: int, dim: int) -> None:
        super().__init__()
        self.size = chunk
        self.proj = nn.Linear(chunk, dim)

    def forward(self, audio: Tensor) -> Tensor:
        return self.proj(audio.view(audio.shape[0], -1, self.size))


def _causal_log_stft(audio: Tensor, chunk: int, window: Tensor) -> Tensor:
    """[N, L] -> log-magnitude [N, F, L / hop] of the causal STFT of :class:`_STFTColumns` (window ``2 * chunk``)."""
    n_fft, hop = 2 * chunk, chunk // 2
    padded = F.pad(audio, (n_fft - hop, 0))
    spec = torch.stft(padded, n_fft, hop_length=hop, window=window, center=False, return_complex=True)
    return (spec.abs() + _LOG_EPS).log()


class _STFTColumns(nn.Module):
    """Log-magnitude STFT tokens: [N, L] -> [N, L / chunk, dim], a linear map of each chunk's 2 columns.

    ``torch.stft`` with a Hann window of ``2 * chunk`` samples and hop ``chunk / 2``, not centred, over the
    waveform padded on the left by ``window - hop`` zeros, so there are exactly ``L / hop`` columns and
    column ``j`` ends at sample ``(j + 1) * hop``: a token hears its own chunk and the 1.5 chunks before it.
    """

    def __init__(self, chunk: int, dim: int) -> None:
        super().__init__()
        self.size, self.n_fft, self.hop = chunk, 2 * chunk, chunk // 2
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.proj = nn.Linear(2 * (self.n_fft // 2 + 1), dim)

    def forward(self, audio: Tensor) -> Tensor:
        logmag = (_causal_log_stft(audio, self.size, self.window) - _LOG_CENTRE) / _LOG_SCALE
        n, bins, cols = logmag.shape
        return self.proj(logmag.transpose(1, 2).reshape(n, cols // 2, 2 * bins))


class _ConvFilterbank(nn.Module):
    """A learned filterbank: [N, L] -> [N, L / chunk, dim] (strided 1-D convolutions with a GELU between)."""

    def __init__(self, chunk: int, dim: int) -> None:
        super().__init__()
        width, stride = chunk // 4, chunk // 8
        self.filters = nn.Conv1d(1, _FILTERS, width, stride, padding=(width - stride) // 2)
        self.pool = nn.Conv1d(_FILTERS, dim, 8, 8)  # 8 filter frames of ``chunk / 8`` samples per token

    def forward(self, audio: Tensor) -> Tensor:
        x = F.gelu(self.filters(audio[:, None]))
        return self.pool(x).transpose(1, 2)  # L / (chunk / 8) filter frames -> L / chunk tokens


ONSET_FEATURES = 2  # mean and peak spectral flux per time step


@torch.no_grad()
def onset_strength(audio: Tensor, steps: int, chunk: int = 128, band: float = 0.0) -> Tensor:
    """Onset strength of each time step of waveforms: float [N, L] -> [N, steps, 2] (mean, peak).

    The positive spectral flux (sum over bins of the rise of the log-magnitude from one column to the next)
    of the causal STFT of the ``"stft"`` audio front (Hann window ``2 * chunk``, hop ``chunk / 2``), its
    ``log1p``, then the mean and the maximum over the columns of each of ``steps`` equal spans. An impact's
    broadband attack is a large rise in every bin; an instrument's tone swelling with its speed is not.
    ``band`` (a fraction of the Nyquist frequency, in [0, 1)) keeps only the bins from that frequency up
    (:attr:`VATTConfig.onset_band`).
    """
    if not 0.0 <= band < 1.0:
        raise StateError(f"onset_strength: band must be a fraction of the Nyquist frequency in [0, 1), got {band}")
    n, length = audio.shape
    if length % steps or (length // steps) % (chunk // 2):
        raise StateError(f"onset_strength: {length} samples do not split into {steps} steps of whole hops "
                         f"of {chunk // 2}")
    logmag = _causal_log_stft(audio, chunk, torch.hann_window(2 * chunk, device=audio.device))  # [N, F, L / hop]
    logmag = logmag[:, round(band * (logmag.shape[1] - 1)):]  # the bins from ``band`` of the Nyquist up
    flux = F.pad(logmag.diff(dim=2).clamp_min(0).sum(1), (1, 0)).log1p()  # [N, L / hop], 0 for the first column
    per_step = flux.view(n, steps, -1)
    return torch.stack([per_step.mean(2), per_step.amax(2)], 2)


def _audio_front(config: VATTConfig) -> nn.Module:
    """The audio tokeniser ``config.audio_front`` names (see :class:`VATTConfig`)."""
    front = {"waveform": _WaveformChunks, "stft": _STFTColumns, "conv": _ConvFilterbank}[config.audio_front]
    return front(config.chunk, config.dim)


def _sinusoid(length: int, dim: int) -> Tensor:
    """Fixed sinusoidal positions [length, dim] for words (a phrase is short; nothing to learn)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(length, dim)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


# ---------------------------------------------------------------------- probe and benchmark
def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, classes: int, seed: int,
                 steps: int = 300) -> float:
    """Accuracy on ``test`` of a linear classifier trained on frozen features ``train_x`` [N, D].

    The features are standardised with the training set's mean and deviation;
    the classifier is trained by the shared loop (Adam, 1e-4 weight decay as L2).
    """
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(seed)
    probe = nn.Linear(xs.shape[1], classes)

    def step(idx: Tensor) -> dict[str, Tensor]:
        logits = probe(xs[idx])
        return {"loss": F.cross_entropy(logits, train_y[idx]) + 1e-4 * probe.weight.square().sum()}

    train_steps(probe, step, items=len(train_y), steps=steps, batch=min(256, len(train_y)), lr=1e-2, seed=seed,
                desc="linear probe", per_round=steps)
    with torch.no_grad():
        return float((probe(xt).argmax(1) == test_y).float().mean())


def collision_late(collisions: Tensor) -> Tensor:
    """The probe's event label: int64 [N], 1 when a collision sounds in the second half of the clip.

    Args:
        collisions: int64 [N, T], collisions starting in each frame.
    """
    return (collisions[:, collisions.shape[1] // 2 :].sum(1) > 0).long()


_FULL = BenchSize(train=600, test=1000, steps=400, batch=32, lr=1e-3)
_QUICK = BenchSize(train=12, test=12, steps=2, batch=4)
_TEST_OFFSET = 500_000  # a seed's test clips start this far after its training clips
_VIDEO_STRIDE = 2  # every second frame: 8 of the clip's 16, 4 fps
_CHUNK = 128


def _inputs(bank: ClipBank, config: VATTConfig) -> tuple[Tensor, Tensor, Tensor]:
    """The bank's video (every ``stride``-th of its frames, ``config.frames`` of them), audio and text.

    With ``video_stem="objects"`` the video is :func:`object_features` of the bank's frames and the renderer's
    instance masks, measured at the bank's full frame rate (so velocities span one frame), then strided.
    """
    stride = bank.frames.shape[1] // config.frames
    if stride < 1 or bank.frames.shape[1] != stride * config.frames:
        raise ConfigError(f"vatt: {config.frames} frames do not stride the bank's {bank.frames.shape[1]} evenly")
    if config.video_stem == "objects":
        video = object_features(bank.frames, bank.masks, config.object_slots, config.object_change)
        camera = bank.config.world_config().camera.with_size(bank.config.width, bank.config.height)  # fixed
        if config.object_ground == "depth":  # the floor from the depth channel (an RGB-D sensor)
            if bank.depth is None:
                raise ConfigError("vatt: object_ground='depth' needs clips made with AudioVisualConfig(depth=True)")
            video = torch.cat([video, depth_features(bank.masks, bank.depth, camera, config.object_slots)], -1)
        elif config.object_ground:  # the floor from the mask and the camera that rendered the bank
            video = torch.cat([video, ground_features(video, camera)], -1)
        video = video[:, ::stride]
    else:
        video = bank.frames[:, ::stride].float() / 255.0
    return video, bank.wave[:, : config.samples], bank.text


def _config(bank: ClipBank) -> VATTConfig:
    """The benchmark's VATT: STFT audio tokens, since a raw-chunk audio tower does not learn the impacts' onsets
    (``docs/results/perception.md``, vatt's rounds), and the per-step NCE among each clip's own steps, so the video
    has to say *when* it sounds, which the probe's label asks."""
    cfg = bank.config
    return VATTConfig(frames=cfg.frames // _VIDEO_STRIDE, height=cfg.height, width=cfg.width,
                      samples=cfg.samples // _CHUNK * _CHUNK, chunk=_CHUNK, vocab=len(VOCABULARY),
                      audio_front="stft", temporal_nce=1.0, temporal_negatives="clip")


def train_vatt(model: VATT, video: Tensor, audio: Tensor, text: Tensor, bench: BenchSize, seed: int) -> float:
    """Pretrain ``model`` contrastively with the shared loop; returns CPU seconds per step."""

    def step(idx: Tensor) -> dict[str, Tensor]:
        return model.losses(video[idx], audio[idx], text[idx])

    t0 = time.process_time()
    train_steps(model, step, items=len(video), steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed,
                desc=f"vatt drop_token={model.config.drop_token}", per_round=50)
    return (time.process_time() - t0) / max(bench.steps, 1)


# The object-token tower with depth grounding and the impact-band onset target (audiovisual.md, sessions 26-27):
# the VATTConfig fields it replaces.
_DEPTH_ONSET = dict(video_stem="objects", frames=16, tubelet=(4, 8, 8), audio_positions=False,
                    video_time_positions=False, object_attention="frame", object_pairs=True, pair_tokens="learned",
                    temporal_skip_first=True, object_ground="depth", onset_target=4, onset_band=0.67)

#: Named configurations of the ``vatt`` entry (``nesy bench perception --model vatt --set variant=NAME``):
#: :func:`run_vatt_bench`'s ``lr`` and ``pretrain_clips`` and the :class:`VATTConfig` fields each replaces.
#: ``depth-onset-frames``, the default (depth object tokens, the impact-band onset target and whole frames dropped),
#: meets every check on a held-out seed; ``depth-onset`` is the same with VATT's random DropToken; ``patches`` is
#: raw patches and STFT audio tokens (figures of each: ``docs/results/audiovisual.md``, "History of `vatt`").
VATT_VARIANTS: dict[str, dict] = {
    "depth-onset-frames": {"lr": 1e-3, "pretrain_clips": 3000, **_DEPTH_ONSET, "drop_token_mode": "frames"},
    "depth-onset": {"lr": 1e-3, "pretrain_clips": 3000, **_DEPTH_ONSET},
    "patches": {},
}
DEFAULT_VATT_VARIANT = "depth-onset-frames"


@dataclass(frozen=True)
class VATTOptions:
    """The ``vatt`` entry's options (``nesy bench perception --model vatt --set variant=NAME``)."""

    variant: str = field(default=DEFAULT_VATT_VARIANT, metadata={"choices": tuple(VATT_VARIANTS),
                                                                 "help": "a named configuration (VATT_VARIANTS)"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


@register_perception_bench(
    "vatt",
    paper="Akbari et al., VATT, NeurIPS 2021, arXiv 2104.11178",
    check="linear probe of frozen video features per time step (collision in the clip's second half) >= random encoder + 15 "
    "points; DropToken 0.5 cuts CPU time per step >= 40% with the probe within 2 points",
    ablation="a randomly initialised encoder; the same VATT without DropToken",
    options=VATTOptions,
)
def bench_vatt(quick: bool, seed: int, variant: str = DEFAULT_VATT_VARIANT) -> BenchOutcome:
    """Pretrain VATT with and without DropToken on the same clips, probe the frozen video features.

    ``variant``: a name of :data:`VATT_VARIANTS`. The quick run keeps its own clip count (a variant's
    ``pretrain_clips`` is for the full benchmark) and takes the rest of the variant.
    """
    if variant not in VATT_VARIANTS:
        raise ConfigError(f"vatt: variant must be one of {', '.join(VATT_VARIANTS)}, got {variant!r}")
    settings = dict(VATT_VARIANTS[variant])
    pretrain_clips = settings.pop("pretrain_clips", None)
    return run_vatt_bench(quick, seed, lr=settings.pop("lr", None), pretrain_clips=None if quick else pretrain_clips,
                          **settings)


def run_vatt_bench(quick: bool, seed: int, lr: float | None = None, pretrain_clips: int | None = None,
                   **overrides) -> BenchOutcome:
    """The ``vatt`` benchmark with fields of its :class:`VATTConfig` replaced (for a variant's held-out run;
    ``bench_vatt`` is this with none), and the pretraining rate ``lr`` when given. The figures name them.

    ``pretrain_clips`` (default: the benchmark's labelled clips only): pretrain both
    models on this many clips of the seed's training range, unlabelled as VATT's pretraining data are, while the
    probes (of the random encoder too) are still fitted on the benchmark's labelled clips, the first of them
    (``_FULL.train``: 600). The probe's label is learnable from the object tokens only with thousands of clips
    (``docs/results/audiovisual.md``, twenty-second session, vatt2), and a probe fitted on more clips lifts the
    random encoder too, so only the pretraining, never the probe, may see more clips.
    """
    unknown = sorted(set(overrides) - {f.name for f in fields(VATTConfig)})
    if unknown:
        raise ConfigError(f"run_vatt_bench: {', '.join(unknown)} are not VATTConfig fields")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"run_vatt_bench: lr must be a finite rate > 0, got {lr}")
    bench = _QUICK if quick else _FULL
    if lr is not None:
        bench = replace(bench, lr=lr)
    if pretrain_clips is not None and (isinstance(pretrain_clips, bool) or not isinstance(pretrain_clips, int)
                                       or not bench.train <= pretrain_clips <= _TEST_OFFSET):
        raise ConfigError(f"run_vatt_bench: pretrain_clips must be an integer from {bench.train} (the labelled "
                          f"clips) to {_TEST_OFFSET}, got {pretrain_clips!r}")
    first = 1_000_000 * seed
    clips = replace(CLIP_CONFIG, depth=True) if overrides.get("object_ground") == "depth" else CLIP_CONFIG
    train = clip_bank(first, pretrain_clips or bench.train, clips)
    test = clip_bank(first + _TEST_OFFSET, bench.test, clips)
    config = replace(_config(train), **overrides)
    video, audio, text = _inputs(train, config)
    test_video, test_audio, _ = _inputs(test, config)
    labelled = torch.tensor([s < first + bench.train for s in train.seeds])  # the probe's clips
    if bool(labelled.all()):  # the default: every training clip is labelled (no copy)
        labelled = slice(None)
    y_train, y_test = collision_late(train.collisions[labelled]), collision_late(test.collisions)
    probes, audio_probes, step_seconds, params = {}, {}, {}, 0
    for name, drop in (("random", None), ("drop_token", config.drop_token), ("no_drop", 0.0)):
        torch.manual_seed(seed)
        model = VATT(replace(config, drop_token=drop or 0.0))
        params = count_parameters(model)
        if drop is not None:
            step_seconds[name] = train_vatt(model, video, audio, text, bench, seed)
        # the label is about time, so the probe reads each time step's pooled tokens (the random encoder's too)
        probes[name] = linear_probe(model.video_features(video[labelled], per_time=True), y_train,
                                    model.video_features(test_video, per_time=True), y_test, 2, seed)
        # where the label's timing must come from: the audio tower's own probe, per time step
        audio_probes[name] = linear_probe(model.audio_features(audio[labelled], per_time=True), y_train,
                                          model.audio_features(test_audio, per_time=True), y_test, 2, seed)
    cut = 1.0 - step_seconds["drop_token"] / step_seconds["no_drop"]
    gap = abs(probes["drop_token"] - probes["no_drop"])
    checks = (
        Check("probe accuracy, collision in second half", "per-time-step video features; fraction of held-out clips, higher is better",
              probes["drop_token"], probes["random"], ">= ablation + 0.15",
              probes["drop_token"] >= probes["random"] + 0.15),
        Check("DropToken 0.5: CPU time per step cut", "1 - time(drop) / time(no drop), higher is better",
              cut, None, ">= 0.40", cut >= 0.40),
        Check("DropToken 0.5: probe change", "|probe(drop) - probe(no drop)|, lower is better",
              gap, probes["no_drop"], "<= 0.02", gap <= 0.02),
    )
    figures = {
        "probe_accuracy": probes, "audio_probe_accuracy_per_time": audio_probes, "audio_front": config.audio_front,
        "temporal_nce": config.temporal_nce, "majority_class": float(max(y_test.float().mean(), 1 - y_test.float().mean())),
        "cpu_seconds_per_step": step_seconds, "params": params,
        "train_clips": len(y_train), "test_clips": len(test), "steps": bench.steps, "batch": bench.batch,
        "lr": bench.lr, "tokens": {"video": int(torch.tensor(config.video_grid).prod()),
                                   "audio": config.audio_tokens, "phrases": int(text.shape[1])},
        "skipped_clips": [*train.skipped, *test.skipped], "config_overrides": dict(overrides),
    }
    if pretrain_clips is not None:
        figures["pretrain_clips"] = len(train)
    return BenchOutcome(checks, figures)
