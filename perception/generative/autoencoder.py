"""Convolutional autoencoder and variational autoencoder of small CLEVR renders.

The autoencoder compresses a render into a latent vector and decodes it back,
trained on the mean squared reconstruction error.  The VAE (Kingma and
Welling, "Auto-Encoding Variational Bayes", ICLR 2014, arXiv 1312.6114)
encodes a Gaussian posterior ``q(z | x) = N(mu, diag(sigma^2))`` instead,
decodes a sample drawn with the reparameterisation trick and adds the KL
divergence to the unit Gaussian prior, so that decoding prior samples gives
images.  Both share :class:`ConvEncoder` and :class:`ConvDecoder` (the GAN's
generator in :mod:`perception.generative.gan` is the same decoder), and the
benchmark reports the VAE's held-out reconstruction error against the
autoencoder's: the price the KL term makes it pay for a sampleable latent.

Shapes (N images of H x W, both multiples of 8)::

    images   float [N, 3, H, W]   RGB in [0, 1]
    z        float [N, latent]
    mu, logvar  float [N, latent]  (VAE posterior)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.generative.scenes import random_hflip
from perception.generative.upsample import Nearest2x
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["CodecConfig", "ConvEncoder", "ConvDecoder", "minibatch_std", "Autoencoder", "VAE", "train_codec", "reconstruction_mse"]

STAGES = 3  # stride-2 stages: a 64 x 48 render becomes an 8 x 6 grid
UPSAMPLE = ("transposed", "nearest", "bilinear")  # CodecConfig.upsample: the decoder's grid doubling
ENCODER_NORM = ("batch", "spectral")  # CodecConfig.encoder_norm: how the encoder's layers are normalised
CONDITION_HEAD = ("projection", "auxiliary", "auxiliary_real", "classifier")  # CodecConfig.condition_head: how a conditional GAN's discriminator reads y
DISCRIMINATOR = ("encoder", "cells")  # CodecConfig.discriminator: the GAN discriminator's body


@dataclass(frozen=True)
class CodecConfig:
    """Architecture shared by the encoders and decoders.

    Args:
        height, width: Image size (multiples of 8).
        latent: Size of the code.
        channels: Channels of the finest stage (doubled at each coarser one).
        beta: Weight of the VAE's KL term (1: the ELBO).
        decoder_widths: Channels of the decoder's projected grid, ``blocks[0]`` and
            ``blocks[1]``; None gives ``(4 c, 2 c, c)``.  GAN dissection widens
            ``blocks[0]`` to hundreds of units (the encoder keeps ``channels``).
        upsample: How the decoder doubles its grid: ``"transposed"`` (a 4x4 stride-2
            transposed convolution, DCGAN's; the default, so earlier checkpoints load),
            or ``"nearest"`` / ``"bilinear"`` (resize, then a 3x3 convolution; Odena,
            Dumoulin and Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016).
        encoder_norm: ``"batch"`` (batch norm after the second and third convolutions; the
            default, DCGAN's discriminator) or ``"spectral"`` (no batch norm; every convolution
            and the head divided by its largest singular value, estimated by one power
            iteration per training forward: Miyato et al., "Spectral Normalization for
            Generative Adversarial Networks", ICLR 2018, arXiv 1802.05957; the GAN's
            discriminator becomes 1-Lipschitz per layer).
        conditions: Width of a condition vector (a class-conditional GAN's class code) that
            the decoder reads appended to its latent code, so that its input is
            ``[N, latent + conditions]``; 0 (the default): unconditional.  Only the GAN uses it
            (:class:`~perception.generative.gan.GAN` then has a projection or auxiliary-classifier
            discriminator, ``condition_head``);
            the autoencoders refuse it.
        condition_head: How a conditional GAN's discriminator uses the condition:
            ``"projection"`` (the default; Miyato and Koyama, arXiv 1802.05637) or
            ``"auxiliary"`` (an auxiliary classifier, AC-GAN: Odena, Olah and Shlens, ICML 2017,
            arXiv 1610.09585; the discriminator also predicts the condition, and both players
            add that prediction's cross-entropy to their losses: the discriminator on real
            images and fakes), or ``"auxiliary_real"`` (the same classifier learning on real
            images only, so it cannot learn the fakes' own code for their condition; the
            generator's loss is the same), or ``"classifier"`` (the discriminator gives the
            adversarial logit only and does not read the condition; the generator's loss adds
            the condition loss of a frozen reader pre-trained on real renders,
            :mod:`perception.generative.condition_classifier`, on its fakes).
        condition_blocks: The condition is this many one-hot blocks of equal width (e.g. one
            per shape, each a count); the auxiliary classifier predicts each block with its own
            softmax.  1 (the default): one one-hot class.
        classifier_members, classifier_augment: ``condition_head="classifier"`` only: how many
            frozen readers of different seeds make the condition loss (their mean), and whether
            the readers train with, and read the fakes through, differentiable augmentations
            (:class:`~perception.generative.condition_classifier.ReaderEnsemble`).  1 and False
            (the defaults): one reader, no augmentation.
        discriminator: The GAN discriminator's body: ``"encoder"`` (:class:`ConvEncoder`, a
            linear map of the whole grid; the default) or ``"cells"`` (the fully convolutional
            :class:`~perception.generative.cell_discriminator.CellDiscriminator`, built like the
            shape reader, one logit per cell of the H/4 x W/4 grid, the condition projected in
            every cell, or, with ``condition_head="auxiliary"`` / ``"auxiliary_real"``, the
            condition's class logits the mean over cells of per-cell logits; not with
            ``"classifier"``).
        discriminator_maps: ``discriminator="cells"`` only: the discriminator also learns the
            real images' shape maps (per-cell background-or-shape logits, per-pixel
            cross-entropy added to its loss); False (the default): it does not.
        discriminator_image: ``discriminator="cells"`` only: the discriminator also gives one
            whole-image real-or-fake logit (pooled features, two linear layers), whose binary
            cross-entropy both players add to the cells' mean, so that the whole image, its
            object count included, is judged too; False (the default): cells only.
        minibatch_std: ``discriminator="encoder"`` only, the GAN's: the discriminator's last
            features get one more channel, the mean over features and positions of each
            feature's standard deviation across the batch (:func:`minibatch_std`; Karras et al.,
            ProGAN, ICLR 2018, arXiv 1710.10196, section 3), so that a batch of fakes less varied
            than a batch of renders can be told apart: a term against mode collapse.  False (the
            default): no such channel (earlier checkpoints load); the autoencoders refuse it.
        shape_balance: An unconditional GAN's: the weight of a shape-balance term in the generator's
            loss, the binary KL divergence of each shape's presence among the renders from its mean
            presence in the batch of fakes, both read by a frozen shape-presence reader trained on the
            renders first (:func:`~perception.generative.condition_classifier.balance_loss`), so that
            a generator that drops a shape, or draws empty images, is pushed back to the renders' mix:
            a term against mode dropping.  0.0 (the default): no term; the autoencoders and the
            conditional GANs (whose condition sets the mix) refuse it.
    """

    height: int = 48
    width: int = 64
    latent: int = 64
    channels: int = 32
    beta: float = 1.0
    decoder_widths: tuple[int, int, int] | None = None
    upsample: str = "transposed"
    encoder_norm: str = "batch"
    conditions: int = 0
    condition_head: str = "projection"
    condition_blocks: int = 1
    classifier_members: int = 1
    classifier_augment: bool = False
    discriminator: str = "encoder"
    discriminator_maps: bool = False
    discriminator_image: bool = False
    minibatch_std: bool = False
    shape_balance: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)  # a wrong type from Python: one line naming the field (physics.config_types)
        if self.height % 2**STAGES or self.width % 2**STAGES:
            raise ConfigError(f"CodecConfig: image size must be multiples of {2 ** STAGES}, "
                              f"got {self.height}x{self.width}")
        if self.latent < 1 or self.channels < 1:
            raise ConfigError(f"CodecConfig: latent and channels must be >= 1, got {self.latent}, {self.channels}")
        widths = self.decoder_widths
        if widths is not None and (len(widths) != 3 or any(not isinstance(w, int) or w < 1 for w in widths)):
            raise ConfigError(f"CodecConfig: decoder_widths must be three ints >= 1, got {widths!r}")
        if self.upsample not in UPSAMPLE:
            raise ConfigError(f"CodecConfig: upsample must be one of {UPSAMPLE}, got {self.upsample!r}")
        if self.encoder_norm not in ENCODER_NORM:
            raise ConfigError(f"CodecConfig: encoder_norm must be one of {ENCODER_NORM}, got {self.encoder_norm!r}")
        if not isinstance(self.conditions, int) or self.conditions < 0:
            raise ConfigError(f"CodecConfig: conditions must be an int >= 0, got {self.conditions!r}")
        if self.condition_head not in CONDITION_HEAD:
            raise ConfigError(f"CodecConfig: condition_head must be one of {CONDITION_HEAD}, got {self.condition_head!r}")
        blocks = self.condition_blocks
        if not isinstance(blocks, int) or blocks < 1 or (self.conditions and self.conditions % blocks):
            raise ConfigError(f"CodecConfig: condition_blocks must be an int >= 1 dividing conditions={self.conditions}, "
                              f"got {blocks!r}")

        if not isinstance(self.classifier_members, int) or self.classifier_members < 1:
            raise ConfigError(f"CodecConfig: classifier_members must be an int >= 1, got {self.classifier_members!r}")
        if (self.classifier_members != 1 or self.classifier_augment) and self.condition_head != "classifier":
            raise ConfigError(f"CodecConfig: classifier_members / classifier_augment are for condition_head='classifier', "
                              f"got {self.condition_head!r}")
        if self.discriminator not in DISCRIMINATOR:
            raise ConfigError(f"CodecConfig: discriminator must be one of {DISCRIMINATOR}, got {self.discriminator!r}")
        if self.discriminator == "cells" and self.conditions and self.condition_head == "classifier":
            raise ConfigError("CodecConfig: discriminator='cells' reads the condition itself; it needs condition_head "
                              "'projection', 'auxiliary' or 'auxiliary_real', got 'classifier'")
        if not isinstance(self.discriminator_maps, bool) or (self.discriminator_maps and self.discriminator != "cells"):
            raise ConfigError(f"CodecConfig: discriminator_maps must be a bool, True only with discriminator='cells', "
                              f"got {self.discriminator_maps!r} with {self.discriminator!r}")
        if not isinstance(self.discriminator_image, bool) or (self.discriminator_image and self.discriminator != "cells"):
            raise ConfigError(f"CodecConfig: discriminator_image must be a bool, True only with discriminator='cells', "
                              f"got {self.discriminator_image!r} with {self.discriminator!r}")
        if self.minibatch_std and self.discriminator != "encoder":
            raise ConfigError(f"CodecConfig: minibatch_std is for discriminator='encoder' (a ConvEncoder's last "
                              f"features), got {self.discriminator!r}")
        if not math.isfinite(self.shape_balance) or self.shape_balance < 0:
            raise ConfigError(f"CodecConfig: shape_balance must be a finite weight >= 0, got {self.shape_balance!r}")
        if self.shape_balance and self.conditions:
            raise ConfigError(f"CodecConfig: shape_balance is for an unconditional GAN (a condition sets the shapes "
                              f"drawn), got conditions={self.conditions}")

    @property
    def decoder_channels(self) -> tuple[int, int, int]:
        """The decoder's widths: projected grid, ``blocks[0]``, ``blocks[1]``."""
        c = self.channels
        return self.decoder_widths if self.decoder_widths is not None else (4 * c, 2 * c, c)

    @property
    def grid(self) -> tuple[int, int]:
        """Size of the coarsest feature map."""
        return self.height // 2**STAGES, self.width // 2**STAGES


MBSTD_EPS = 1e-8  # under the square root of the minibatch variance, as ProGAN: a batch of one gives 1e-4, not NaN


def minibatch_std(features: Tensor) -> Tensor:
    """``features`` [N, C, h, w] with one more channel: [N, C + 1, h, w] (ProGAN's minibatch standard deviation).

    The channel is the same scalar everywhere: the mean over the C features and h x w positions of
    each one's standard deviation across the N items (biased, ``sqrt(var + MBSTD_EPS)``), so a
    discriminator sees how varied its batch is (Karras et al., arXiv 1710.10196, section 3, with the
    whole batch as the group).  Gradients flow through it to every item.
    """
    std = (features.var(0, unbiased=False) + MBSTD_EPS).sqrt().mean()
    return torch.cat([features, std.expand(len(features), 1, *features.shape[2:])], 1)


class ConvEncoder(nn.Module):
    """``forward(images [N, 3, H, W]) -> [N, outputs]`` (three stride-2 convolutions, then a linear map).

    With ``config.encoder_norm == "spectral"`` the batch norms are left out and every
    convolution and the head are spectrally normalised (``torch.nn.utils.parametrizations``).
    With ``config.minibatch_std`` (a GAN discriminator's option) the head also reads
    :func:`minibatch_std`'s channel, so each output depends on the rest of the batch.
    """

    def __init__(self, config: CodecConfig, outputs: int) -> None:
        super().__init__()
        c, (h, w) = config.channels, config.grid
        self.config = config
        spectral = config.encoder_norm == "spectral"
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)

        def norm(width: int) -> list[nn.Module]:
            return [] if spectral else [nn.BatchNorm2d(width)]

        self.features = nn.Sequential(
            sn(nn.Conv2d(3, c, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(c, 2 * c, 4, 2, 1)), *norm(2 * c), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * c, 4 * c, 4, 2, 1)), *norm(4 * c), nn.LeakyReLU(0.2),
        )
        self.head = sn(nn.Linear((4 * c + int(config.minibatch_std)) * h * w, outputs))

    def forward(self, images: Tensor) -> Tensor:
        cfg = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, cfg.height, cfg.width):
            raise StateError(f"ConvEncoder expects images [N, 3, {cfg.height}, {cfg.width}], got {tuple(images.shape)}")
        x = self.features(images)
        return self.head((minibatch_std(x) if cfg.minibatch_std else x).flatten(1))


def _up(c_in: int, c_out: int, mode: str, *, bias: bool) -> list[nn.Module]:
    """One grid doubling, [N, c_in, h, w] -> [N, c_out, 2h, 2w]: a transposed convolution or resize + 3x3 convolution."""
    if mode == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)]
    resize = Nearest2x() if mode == "nearest" else nn.Upsample(scale_factor=2, mode=mode, align_corners=False)
    return [resize, nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias)]


class ConvDecoder(nn.Module):
    """DCGAN-style decoder: ``forward(z [N, latent + conditions]) -> images [N, 3, H, W]`` in [0, 1].

    A linear map to a w0 x H/8 x W/8 grid, then three up-sampling stages, each a
    transposed convolution or (``CodecConfig.upsample``) a resize and a 3x3
    convolution (batch norm and ReLU between); ``blocks[i]`` is the i-th up-sampling stage,
    the layers GAN dissection reads and edits.  Widths ``(w0, w1, w2)`` are
    :attr:`CodecConfig.decoder_channels` (``(4c, 2c, c)`` unless set).
    """

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        (w0, w1, w2), (h, w) = config.decoder_channels, config.grid
        self.config = config
        self.project = nn.Sequential(nn.Linear(config.latent + config.conditions, w0 * h * w), nn.Unflatten(1, (w0, h, w)),
                                     nn.BatchNorm2d(w0), nn.ReLU())
        mode = config.upsample
        self.blocks = nn.ModuleList([
            nn.Sequential(*_up(w0, w1, mode, bias=False), nn.BatchNorm2d(w1), nn.ReLU()),
            nn.Sequential(*_up(w1, w2, mode, bias=False), nn.BatchNorm2d(w2), nn.ReLU()),
        ])
        to_rgb = _up(w2, 3, mode, bias=True)
        self.to_rgb = to_rgb[0] if len(to_rgb) == 1 else nn.Sequential(*to_rgb)

    def forward(self, z: Tensor) -> Tensor:
        return self.decode_from(self.project(z), 0)

    def decode_from(self, x: Tensor, start: int) -> Tensor:
        """Images from ``x``, the input of ``blocks[start]`` (``start == len(blocks)``: the input of ``to_rgb``)."""
        for block in self.blocks[start:]:
            x = block(x)
        return torch.sigmoid(self.to_rgb(x))


def _unconditional(config: CodecConfig, who: str) -> None:
    if config.conditions:
        raise ConfigError(f"{who}: CodecConfig.conditions is the GAN's (got {config.conditions}); an autoencoder decodes its own code")
    if config.minibatch_std:  # an encoder's code must not depend on the rest of its batch
        raise ConfigError(f"{who}: CodecConfig.minibatch_std is the GAN discriminator's; an autoencoder's code reads one image")
    if config.shape_balance:
        raise ConfigError(f"{who}: CodecConfig.shape_balance is the GAN generator's loss term (got {config.shape_balance}); "
                          f"an autoencoder has none")


class Autoencoder(nn.Module):
    """``forward(images) -> {"recon", "z", "loss"}``: the code is deterministic; loss = pixel MSE."""

    def __init__(self, config: CodecConfig = CodecConfig()) -> None:
        super().__init__()
        _unconditional(config, "Autoencoder")
        self.config = config
        self.encoder, self.decoder = ConvEncoder(config, config.latent), ConvDecoder(config)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        z = self.encoder(images)
        recon = self.decoder(z)
        return {"recon": recon, "z": z, "loss": F.mse_loss(recon, images)}

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Evaluation-mode reconstruction [N, 3, H, W]."""
        self.eval()
        return self.decoder(self.encoder(images))


class VAE(nn.Module):
    """``forward(images) -> {"recon", "mu", "logvar", "kl", "mse", "loss"}``.

    The loss is the negative ELBO per pixel with a unit-variance Gaussian
    likelihood scaled to the MSE: ``mse + beta * kl / (3 H W)``, so that
    ``beta = 1`` weighs the prior as the ELBO of pixels with noise variance 1/2.
    """

    def __init__(self, config: CodecConfig = CodecConfig()) -> None:
        super().__init__()
        _unconditional(config, "VAE")
        self.config = config
        self.encoder, self.decoder = ConvEncoder(config, 2 * config.latent), ConvDecoder(config)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        mu, logvar = self.encoder(images).chunk(2, 1)
        logvar = logvar.clamp(-10.0, 6.0)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        recon = self.decoder(z)
        mse = F.mse_loss(recon, images)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        pixels = images[0].numel()
        return {"recon": recon, "mu": mu, "logvar": logvar, "kl": kl, "mse": mse,
                "loss": mse + self.config.beta * kl / pixels}

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Decode the posterior mean [N, 3, H, W] (evaluation mode)."""
        self.eval()
        return self.forward(images)["recon"]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` draws from the prior: [n, 3, H, W]."""
        self.eval()
        return self.decoder(torch.randn(n, self.config.latent, generator=generator))


def train_codec(model: Autoencoder | VAE, images: Tensor, *, steps: int, batch: int, lr: float,
                seed: int) -> Autoencoder | VAE:
    """Train an autoencoder or VAE on ``images`` [N, 3, H, W] with the shared loop (horizontal flips)."""
    flip = torch.Generator().manual_seed(seed + 11)

    def step(idx: Tensor) -> dict[str, Tensor]:
        out = model(random_hflip(flip, images[idx])[0])
        return {k: v for k, v in out.items() if k in ("loss", "mse", "kl")}  # the loop logs scalars

    train_steps(model, step, items=len(images), steps=steps, batch=batch, lr=lr, seed=seed,
                desc=type(model).__name__.lower())
    return model.eval()


@torch.no_grad()
def reconstruction_mse(model: Autoencoder | VAE, images: Tensor) -> float:
    """Mean squared error per pixel of ``model.reconstruct`` on ``images``."""
    return float(torch.cat([(model.reconstruct(x) - x).pow(2).flatten(1).mean(1) for x in images.split(256)]).mean())


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=800, test=200, steps=800, batch=32)
_QUICK = BenchSize(train=8, test=4, steps=4, batch=8)
_CODEC = CodecConfig(channels=16)  # a small codec: two of them train in about two minutes


def scene_seeds(seed: int, bench: BenchSize) -> tuple[range, range]:
    """Scene seeds of a bench run: (train, test), disjoint, both from ``seed``."""
    base = 4_000_000 + seed * 100_000
    return range(base, base + bench.train), range(base + 50_000, base + 50_000 + bench.test)


@register_perception_bench(
    "vae",
    paper="Kingma and Welling, auto-encoding variational Bayes, arXiv 1312.6114",
    check="VAE held-out reconstruction MSE reported beside the autoencoder's; below the mean image's",
    ablation="plain autoencoder (no KL term, deterministic code)",
)
def bench_vae(quick: bool, seed: int) -> BenchOutcome:
    """Train an autoencoder and a VAE of the same architecture on the same renders; test on other scenes."""
    from perception.generative.scenes import render_scenes

    bench = _QUICK if quick else _FULL
    train_seeds, test_seeds = scene_seeds(seed, bench)
    train, test = render_scenes(train_seeds).images, render_scenes(test_seeds).images
    config = _CODEC
    torch.manual_seed(seed)
    ae = train_codec(Autoencoder(config), train, steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed)
    torch.manual_seed(seed)
    vae = train_codec(VAE(config), train, steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed)
    mse = {"vae": reconstruction_mse(vae, test), "ae": reconstruction_mse(ae, test)}
    mean_image = float((test - train.mean(0)).pow(2).mean())
    with torch.no_grad():
        kl = float(vae.train(False)(test)["kl"])
        samples = vae.sample(256, torch.Generator().manual_seed(seed))
    checks = (
        Check("reconstruction MSE (VAE vs AE)", "per pixel on held-out renders, lower is better", mse["vae"],
              mse["ae"], "reported; < mean image's MSE", mse["vae"] < mean_image),
    )
    figures = {"mean_image_mse": mean_image, "vae_kl_nats": kl, "latent": config.latent,
               "vae_sample_pixel_std": float(samples.std(0).mean()), "data_pixel_std": float(test.std(0).mean()),
               "train_scenes": bench.train, "test_scenes": bench.test, "steps": bench.steps, "batch": bench.batch,
               "image": f"{config.width}x{config.height} pybullet CLEVR renders (perception.generative.scenes)"}
    return BenchOutcome(checks, figures)
