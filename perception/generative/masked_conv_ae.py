"""Masked convolutional autoencoder (ConvMAE / MCMAE): masked pretraining of a convolution-then-transformer encoder.

Gao, Ma, Li, Zhang, Qiao, Dai and Li, "MCMAE: Masked Convolution Meets Masked
Autoencoders", NeurIPS 2022 (arXiv 2205.03892, first titled ConvMAE).  The
encoder is hybrid: two convolution stages at 1/2 and 1/4 of the image
resolution, then a transformer over patch tokens at 1/8.  Pretraining hides
75% of the tokens, as in MAE (He et al., arXiv 2111.06377), and the paper's
*masked convolution* keeps the convolution stages from leaking what is
hidden: the token mask, up-sampled to each stage, multiplies the stage's input
and output, so every visible feature is computed from visible pixels only.
The transformer then sees the visible tokens only; their multi-scale fusion
adds the convolution stages' features, pooled to the token grid, to its
output; a light transformer decoder fills in mask tokens and predicts each
hidden patch's pixels (mean squared error on hidden patches).  Fine-tuning
drops the mask and puts a linear head on the mean token.

The benchmark pretrains on unlabelled renders and fine-tunes on 200 labelled
ones, against the same network trained from scratch on the same 200 (the
ablation); the task is how many objects the scene holds.

Shapes (N images of H x W, multiples of PATCH; T = (H / PATCH) * (W / PATCH) tokens)::

    images   float [N, 3, H, W]     RGB in [0, 1]
    keep     bool  [N, T]           visible tokens (pretraining)
    tokens   float [N, T, dim]
    pred     float [N, T, PATCH * PATCH * 3]
    logits   float [N, classes]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import (
    BenchOutcome,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.generative.scenes import random_hflip
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["PATCH", "MaskedConvConfig", "MaskedConvEncoder", "MaskedConvAE", "ConvMAEClassifier",
           "random_keep", "patchify", "pretrain", "finetune", "accuracy"]

PATCH = 8  # image pixels per token side: two stride-2 conv stages, then a stride-2 patch embedding


@dataclass(frozen=True)
class MaskedConvConfig:
    """Architecture and masking.

    Args:
        height, width: Image size (multiples of PATCH).
        conv: Channels of the first convolution stage (doubled in the second).
        dim: Token width of the transformer encoder.
        depth, heads: Encoder transformer layers and attention heads.
        decoder_dim, decoder_depth: The pretraining decoder.
        mask_ratio: Fraction of tokens hidden in pretraining (MAE and ConvMAE: 0.75).
    """

    height: int = 48
    width: int = 64
    conv: int = 24
    dim: int = 96
    depth: int = 4
    heads: int = 4
    decoder_dim: int = 64
    decoder_depth: int = 2
    mask_ratio: float = 0.75

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.height % PATCH or self.width % PATCH:
            raise ConfigError(f"MaskedConvConfig: image size must be multiples of {PATCH}, got {self.height}x{self.width}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"MaskedConvConfig.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.dim % self.heads:
            raise ConfigError(f"MaskedConvConfig: dim {self.dim} is not a multiple of heads {self.heads}")

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (rows, columns)."""
        return self.height // PATCH, self.width // PATCH

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1]


def _sincos(grid: tuple[int, int], dim: int) -> Tensor:
    """Fixed 2-D sine-cosine position embedding [T, dim] (MAE's)."""
    ys, xs = torch.meshgrid(torch.arange(grid[0], dtype=torch.float32), torch.arange(grid[1], dtype=torch.float32),
                            indexing="ij")
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    parts = [f(c.flatten()[:, None] * freq) for c in (ys, xs) for f in (torch.sin, torch.cos)]
    emb = torch.cat(parts, 1)
    return F.pad(emb, (0, dim - emb.shape[1]))


class _ConvBlock(nn.Module):
    """Residual 3 x 3 convolution block (no batch norm: hidden zeros must not shift the statistics)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x + self.body(x))


def random_keep(n: int, tokens: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """bool [n, tokens]: each row keeps ``round(tokens * (1 - ratio))`` random tokens visible."""
    visible = max(1, int(round(tokens * (1.0 - ratio))))
    order = torch.rand(n, tokens, generator=generator).argsort(1)
    keep = torch.zeros(n, tokens, dtype=torch.bool)
    keep.scatter_(1, order[:, :visible], True)
    return keep


def patchify(images: Tensor) -> Tensor:
    """[N, 3, H, W] -> [N, T, PATCH * PATCH * 3] (tokens in row-major order)."""
    n, c, h, w = images.shape
    x = images.view(n, c, h // PATCH, PATCH, w // PATCH, PATCH)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // PATCH) * (w // PATCH), PATCH * PATCH * c)


class MaskedConvEncoder(nn.Module):
    """Conv stage (1/2), conv stage (1/4), patch embedding (1/8), transformer over the visible tokens.

    ``forward(images [N, 3, H, W], keep [N, T] or None) -> tokens [N, V, dim]``:
    V = visible tokens per image (all T without a mask); every image keeps the same number.
    """

    def __init__(self, config: MaskedConvConfig = MaskedConvConfig()) -> None:
        super().__init__()
        c, d = config.conv, config.dim
        self.config = config
        self.stem1 = nn.Conv2d(3, c, 2, 2)
        self.stage1 = _ConvBlock(c)
        self.stem2 = nn.Conv2d(c, 2 * c, 2, 2)
        self.stage2 = _ConvBlock(2 * c)
        self.embed = nn.Conv2d(2 * c, d, 2, 2)
        self.fuse1 = nn.Conv2d(c, d, 4, 4)  # multi-scale fusion: stage features pooled to the token grid
        self.fuse2 = nn.Conv2d(2 * c, d, 2, 2)
        self.register_buffer("pos", _sincos(config.grid, d), persistent=False)
        layer = nn.TransformerEncoderLayer(d, config.heads, 2 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, images: Tensor, keep: Tensor | None = None) -> Tensor:
        cfg = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, cfg.height, cfg.width):
            raise StateError(f"MaskedConvEncoder expects images [N, 3, {cfg.height}, {cfg.width}], "
                             f"got {tuple(images.shape)}")
        n = len(images)
        if keep is None:
            m1 = m2 = None
        else:
            grid = keep.view(n, 1, *cfg.grid).float()
            m1, m2 = (F.interpolate(grid, scale_factor=s, mode="nearest") for s in (4.0, 2.0))
            images = images * F.interpolate(grid, scale_factor=8.0, mode="nearest")
        x1 = self.stage1(self.stem1(images))
        x1 = x1 if m1 is None else x1 * m1  # masked convolution: hidden regions stay zero
        x2 = self.stage2(self.stem2(x1))
        x2 = x2 if m2 is None else x2 * m2
        tokens = (self.embed(x2)).flatten(2).transpose(1, 2) + self.pos  # [N, T, d]
        fused = (self.fuse1(x1) + self.fuse2(x2)).flatten(2).transpose(1, 2)
        if keep is not None:
            visible = int(keep[0].sum())
            if not bool((keep.sum(1) == visible).all()):
                raise StateError("MaskedConvEncoder: every image must keep the same number of tokens")
            index = keep.float().argsort(dim=1, descending=True, stable=True)[:, :visible]
            tokens = tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))
            fused = fused.gather(1, index[..., None].expand(-1, -1, fused.shape[-1]))
        return self.norm(self.blocks(tokens)) + fused


class MaskedConvAE(nn.Module):
    """Pretraining model: ``forward(images) -> {"loss", "pred"}`` with a fresh random mask.

    ``loss(images, keep)``: MSE of the predicted pixels of the hidden patches.
    """

    def __init__(self, config: MaskedConvConfig = MaskedConvConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = MaskedConvEncoder(config)
        dd = config.decoder_dim
        self.to_decoder = nn.Linear(config.dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(dd))
        self.register_buffer("pos", _sincos(config.grid, dd), persistent=False)
        layer = nn.TransformerEncoderLayer(dd, 4, 2 * dd, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerEncoder(layer, config.decoder_depth, enable_nested_tensor=False)
        self.head = nn.Linear(dd, PATCH * PATCH * 3)
        self.generator: torch.Generator | None = None

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        keep = random_keep(len(images), self.config.tokens, self.config.mask_ratio, self.generator)
        return self.loss(images, keep)

    def loss(self, images: Tensor, keep: Tensor) -> dict[str, Tensor]:
        n, t = keep.shape
        visible = self.to_decoder(self.encoder(images, keep))  # [N, V, dd]
        full = self.mask_token.expand(n, t, -1).clone()
        index = keep.float().argsort(dim=1, descending=True, stable=True)[:, : visible.shape[1]]
        full.scatter_(1, index[..., None].expand(-1, -1, full.shape[-1]), visible)
        pred = self.head(self.decoder(full + self.pos))
        hidden = ~keep
        err = (pred - patchify(images)).pow(2).mean(-1)
        return {"loss": (err * hidden).sum() / hidden.sum().clamp(min=1), "pred": pred}


class ConvMAEClassifier(nn.Module):
    """Fine-tuning model: ``forward(images) -> logits [N, classes]`` (all tokens, mean-pooled, linear head)."""

    def __init__(self, config: MaskedConvConfig, classes: int, encoder: MaskedConvEncoder | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else MaskedConvEncoder(config)
        self.head = nn.Sequential(nn.LayerNorm(config.dim), nn.Linear(config.dim, classes))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.encoder(images).mean(1))


def pretrain(images: Tensor, config: MaskedConvConfig, *, steps: int, batch: int, lr: float, seed: int) -> MaskedConvAE:
    """Masked pretraining on unlabelled ``images`` with the shared loop (horizontal flips)."""
    torch.manual_seed(seed)
    model = MaskedConvAE(config)
    model.generator = torch.Generator().manual_seed(seed + 31)
    flip = torch.Generator().manual_seed(seed + 32)
    train_steps(model, lambda idx: {"loss": model(random_hflip(flip, images[idx])[0])["loss"]}, items=len(images),
                steps=steps, batch=batch, lr=lr, seed=seed, desc="convmae pretrain")
    return model.eval()


def finetune(images: Tensor, labels: Tensor, classes: int, config: MaskedConvConfig, *, steps: int, batch: int,
             lr: float, seed: int, encoder: MaskedConvEncoder | None = None) -> ConvMAEClassifier:
    """Train a classifier (from ``encoder``'s weights, or from scratch when None) on labelled ``images``."""
    torch.manual_seed(seed)
    model = ConvMAEClassifier(config, classes, encoder)
    flip = torch.Generator().manual_seed(seed + 33)
    train_steps(model, lambda idx: {"loss": F.cross_entropy(model(random_hflip(flip, images[idx])[0]), labels[idx])},
                items=len(images), steps=steps, batch=batch, lr=lr, seed=seed,
                desc="convmae finetune" if encoder is not None else "convmae scratch")
    return model.eval()


@torch.no_grad()
def accuracy(model: ConvMAEClassifier, images: Tensor, labels: Tensor) -> float:
    """Fraction of ``images`` classified as ``labels``."""
    model.eval()
    pred = torch.cat([model(x).argmax(1) for x in images.split(256)])
    return float((pred == labels).float().mean())


# ---------------------------------------------------------------------- benchmark
@dataclass(frozen=True)
class MaeSize:
    unlabelled: int
    labelled: int
    test: int
    pretrain_steps: int
    finetune_steps: int
    batch: int
    config: MaskedConvConfig


_FULL = MaeSize(unlabelled=1500, labelled=200, test=400, pretrain_steps=800, finetune_steps=300, batch=32,
                config=MaskedConvConfig(conv=16))
_QUICK = MaeSize(unlabelled=8, labelled=6, test=4, pretrain_steps=3, finetune_steps=3, batch=4,
                 config=MaskedConvConfig(conv=4, dim=16, depth=1, heads=2, decoder_dim=16, decoder_depth=1))
_LR = {"pretrain": 1e-3, "finetune": 5e-4}


@register_perception_bench(
    "masked-conv-ae",
    paper="Gao et al., MCMAE / ConvMAE, NeurIPS 2022, arXiv 2205.03892",
    check="object-count accuracy after masked pretraining and fine-tuning on 200 renders >= scratch + 10 points",
    ablation="the same network trained from scratch on the 200 labelled renders",
)
def bench_masked_conv_ae(quick: bool, seed: int) -> BenchOutcome:
    """Pretrain on unlabelled renders; fine-tune and train from scratch on 200 labelled ones; test on others."""
    from perception.generative.scenes import render_scenes

    size = _QUICK if quick else _FULL
    base = 7_000_000 + seed * 100_000
    unlabelled = render_scenes(range(base, base + size.unlabelled)).images
    labelled = render_scenes(range(base + 50_000, base + 50_000 + size.labelled))
    test = render_scenes(range(base + 70_000, base + 70_000 + size.test))
    lo = int(min(labelled.counts.min(), test.counts.min()))
    classes = int(max(labelled.counts.max(), test.counts.max())) - lo + 1
    mae = pretrain(unlabelled, size.config, steps=size.pretrain_steps, batch=size.batch, lr=_LR["pretrain"], seed=seed)
    with torch.no_grad():
        keep = random_keep(len(test.images), size.config.tokens, size.config.mask_ratio,
                           torch.Generator().manual_seed(seed + 34))
        recon = float(mae.loss(test.images, keep)["loss"])
    models = {name: finetune(labelled.images, labelled.counts - lo, classes, size.config, steps=size.finetune_steps,
                             batch=size.batch, lr=_LR["finetune"], seed=seed, encoder=enc)
              for name, enc in (("pretrained", mae.encoder), ("scratch", None))}
    acc = {name: accuracy(m, test.images, test.counts - lo) for name, m in models.items()}
    majority = float((test.counts - lo == torch.bincount(labelled.counts - lo).argmax()).float().mean())
    checks = (
        Check("object-count accuracy", "fraction of held-out renders, higher is better", acc["pretrained"],
              acc["scratch"], ">= ablation + 0.10", acc["pretrained"] >= acc["scratch"] + 0.10),
    )
    figures = {"held_out_masked_patch_mse": recon, "majority_class_accuracy": majority, "classes": classes,
               "objects_per_scene": [lo, lo + classes - 1], "unlabelled": size.unlabelled,
               "labelled": size.labelled, "test": size.test, "pretrain_steps": size.pretrain_steps,
               "finetune_steps": size.finetune_steps, "batch": size.batch, "lr": _LR,
               "tokens": size.config.tokens, "patch": PATCH, "mask_ratio": size.config.mask_ratio}
    return BenchOutcome(checks, figures)
