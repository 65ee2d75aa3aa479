"""DCGAN-style generative adversarial network of small CLEVR renders.

Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014 (arXiv
1406.2661), with the convolutional architecture of Radford, Metz and Chintala,
"Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks", ICLR 2016 (arXiv 1511.06434): a generator of transposed
convolutions with batch norm and ReLU (:class:`~perception.generative.autoencoder.ConvDecoder`,
the autoencoders' decoder), a discriminator of stride-2 convolutions with
leaky ReLU (:class:`~perception.generative.autoencoder.ConvEncoder` with one
output), Adam with beta1 = 0.5 and the non-saturating generator loss.

Both players step together in one optimiser step of the shared training loop:
the discriminator's loss sees detached fakes, and the generator's loss goes
through the discriminator with detached weights, so each player's gradient
comes from its own loss only.

The check: does a sample contain a valid object?  A sample's objects are found
by the shape segmenter (:mod:`perception.generative.segmenter`, trained on
renders with the renderer's masks), cropped with their masks as the
derenderer's attribute network sees them, and classified by a small
:class:`~perception.derender.attributes.AttributeNet` trained on ground-truth
crops of real renders.  An object is valid when, for every attribute, the
network's largest probability reaches a threshold that 95% of the objects found
the same way in held-out real renders reach; a sample is valid when it holds
at least one valid object.

Shapes::

    z        float [N, latent]
    samples  float [N, 3, H, W]  RGB in [0, 1]
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from perception.benchmark import (
    BenchOutcome,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.generative.autoencoder import CodecConfig, ConvDecoder, ConvEncoder
from perception.generative.cell_discriminator import CellDiscriminator
from perception.generative.condition_classifier import (
    Reader,
    ReaderEnsemble,
    ShapePresenceNet,
    balance_loss,
    mean_presence,
    train_presence_net,
)
from perception.generative.scenes import (
    ONE_OBJECT_WORLD,
    SHAPE_CONDITIONS,
    SHAPES,
    SMALL_WORLD,
    SceneRenders,
    random_hflip,
    render_scenes,
    shape_classes,
    shape_conditions,
)
from perception.generative.segmenter import ShapeSegmenter, object_masks, segment, train_segmenter
from physics.errors import ConfigError
from physics.training import Constant, TrainLoop, seed_everything
from physics.worlds.clevr_world import ClevrWorldConfig

__all__ = ["GAN", "train_gan", "fit_gan", "recalibrate_batch_norm", "object_confidence", "ValidObjectJudge", "train_attribute_net", "GanRun", "SCENES", "train_gan_run", "run_conditions", "run_classifier"]

BETAS = (0.5, 0.999)  # DCGAN's Adam momentum: beta1 = 0.9 oscillates


class GAN(nn.Module):
    """Generator and discriminator; ``forward(real [N, 3, H, W], y=None) -> {"loss", "d_loss", "g_loss"}``.

    With ``config.conditions`` > 0 the GAN is class-conditional (Mirza and Osindero, arXiv
    1411.1784): the generator reads a condition ``y`` [N, conditions] appended to its noise,
    and the discriminator is a projection discriminator (Miyato and Koyama, "cGANs with
    Projection Discriminator", ICLR 2018, arXiv 1802.05637): its head gives ``1 + conditions``
    outputs ``o`` and its logit is ``o[:, 0] + <y, o[:, 1:]>`` (the inner product of the
    condition with a linear map of the features).  ``conditions`` [K, conditions] is then
    required: the pool of real conditions (the training scenes') from which :meth:`codes`
    draws the condition of a sample; training gives each fake its real batch-mate's.

    With ``config.condition_head == "auxiliary"`` the discriminator is an auxiliary classifier
    instead (AC-GAN: Odena, Olah and Shlens, ICML 2017, arXiv 1610.09585): its logit is
    ``o[:, 0]`` alone, and ``o[:, 1:]`` are the condition's class logits (:meth:`classify`,
    one softmax per one-hot block of ``config.condition_blocks``).  The discriminator's loss
    adds the classifier's cross-entropy on real images (their true condition) and on fakes
    (the condition they were drawn with), and the generator's loss adds it on its fakes, so the
    generator is pushed to draw what the condition names; each is the mean over blocks.
    ``"auxiliary_real"``: the discriminator's classifier learns on real images only.

    With ``config.condition_head == "classifier"`` the discriminator gives the adversarial logit
    only (one output; it does not read the condition), and ``classifier`` is required: a frozen
    :class:`~perception.generative.condition_classifier.ShapePresenceNet` pre-trained on real
    renders (one shape per condition block); the generator's loss adds its
    :meth:`~perception.generative.condition_classifier.ShapePresenceNet.condition_loss` on the fakes
    (``g_class``: which shapes are present against the ones the condition asks for), so the generator
    is pushed to draw what a fixed reader of real renders calls its condition.  The classifier is
    kept in evaluation mode and never trained here.

    With ``config.discriminator == "cells"`` the discriminator is a
    :class:`~perception.generative.cell_discriminator.CellDiscriminator` (fully convolutional,
    built like the shape reader): outputs ``o`` [N, 1 + conditions, H/4, W/4], one logit per
    cell, ``o[:, 0] + <y, o[:, 1:]>`` in each cell (the projection per cell), and both players'
    losses are the mean over cells of each cell's binary cross-entropy (PatchGAN's).  With
    ``config.discriminator_maps`` it also gives ``1 + len(SHAPES)`` shape logits per cell, and
    its loss adds their per-pixel cross-entropy with the real images' shape maps (``maps`` of
    :meth:`losses`, required then).  With ``condition_head="auxiliary"`` or ``"auxiliary_real"``
    the cells give no projection: the cell logit is ``o[0]`` alone and the class logits are the
    mean over cells of ``o[1:1 + conditions]`` (the cell body reads one-object shapes well as a
    plain classifier: docs/results/perception.md, GAN dissection, seventeenth look).  With ``config.discriminator_image`` the discriminator
    also gives one whole-image logit, and each player's adversarial loss is the cells' mean
    plus that logit's binary cross-entropy (:meth:`image_critic`).

    With ``config.shape_balance`` > 0 (an unconditional GAN) ``classifier`` is required too, a frozen
    shape-presence reader of ``len(SHAPES)`` shapes, and so is ``balance_target`` [len(SHAPES)], its
    :func:`~perception.generative.condition_classifier.mean_presence` on the real renders: the
    generator's loss adds ``shape_balance`` times
    :func:`~perception.generative.condition_classifier.balance_loss` of the reader's presences on its
    fakes (``g_balance``), which pulls the fakes' shape mix, empty images included, to the renders'.
    """

    def __init__(self, config: CodecConfig | None = None, conditions: Tensor | None = None,
                 classifier: Reader | None = None, balance_target: Tensor | None = None) -> None:
        super().__init__()
        self.config = config = config or CodecConfig()
        self.generator = ConvDecoder(config)
        frozen_head = bool(config.conditions) and config.condition_head == "classifier"
        if config.discriminator == "cells":
            maps = 1 + len(SHAPES) if config.discriminator_maps else 0
            self.discriminator = CellDiscriminator(config.height, config.width, 1 + config.conditions + maps,
                                                   config.encoder_norm, image=config.discriminator_image)
        else:
            self.discriminator = ConvEncoder(config, 1 if frozen_head else 1 + config.conditions)
        if frozen_head:
            if not isinstance(classifier, (ShapePresenceNet, ReaderEnsemble)) or classifier.shapes != config.condition_blocks:
                got = None if classifier is None else getattr(classifier, "shapes", type(classifier).__name__)
                raise ConfigError(f"GAN: condition_head='classifier' needs a ShapePresenceNet (or ReaderEnsemble) of "
                                  f"{config.condition_blocks} shapes (one per condition block), got {got}")
            self.classifier = classifier.eval().requires_grad_(False)
        elif config.shape_balance:
            if not isinstance(classifier, (ShapePresenceNet, ReaderEnsemble)) or classifier.shapes != len(SHAPES):
                got = None if classifier is None else getattr(classifier, "shapes", type(classifier).__name__)
                raise ConfigError(f"GAN: shape_balance={config.shape_balance} needs a ShapePresenceNet (or ReaderEnsemble) "
                                  f"of {len(SHAPES)} shapes, got {got}")
            if balance_target is None or tuple(balance_target.shape) != (len(SHAPES),) or not (
                    bool(torch.isfinite(balance_target).all()) and 0 <= float(balance_target.min())
                    and float(balance_target.max()) <= 1):
                got = None if balance_target is None else balance_target.tolist()
                raise ConfigError(f"GAN: shape_balance needs balance_target, the reader's mean presence of each of the "
                                  f"{len(SHAPES)} shapes on the renders (in [0, 1]), got {got}")
            self.balance_reader = classifier.eval().requires_grad_(False)
            self.register_buffer("balance_target", balance_target.detach().float().clone())
        elif classifier is not None:
            raise ConfigError(f"GAN: a classifier is given but condition_head={config.condition_head!r} "
                              f"(conditions={config.conditions}); it is for condition_head='classifier' or shape_balance")
        if balance_target is not None and not config.shape_balance:
            raise ConfigError("GAN: balance_target is given but CodecConfig.shape_balance is 0")
        if config.conditions:
            if conditions is None or conditions.dim() != 2 or conditions.shape[1] != config.conditions or not len(conditions):
                got = None if conditions is None else tuple(conditions.shape)
                raise ConfigError(f"GAN: a conditional config (conditions={config.conditions}) needs a pool of "
                                  f"conditions [K >= 1, {config.conditions}], got {got}")
            self.register_buffer("condition_pool", conditions.detach().float().clone())
        elif conditions is not None:
            raise ConfigError("GAN: conditions given to an unconditional config (CodecConfig.conditions = 0)")

    def forward(self, real: Tensor, y: Tensor | None = None, maps: Tensor | None = None) -> dict[str, Tensor]:
        return self.losses(real, torch.randn(len(real), self.config.latent), y, maps)

    def train(self, mode: bool = True) -> GAN:
        """As :meth:`nn.Module.train`, but a frozen condition classifier stays in evaluation mode."""
        super().train(mode)
        for name in ("classifier", "balance_reader"):
            if hasattr(self, name):
                getattr(self, name).eval()
        return self

    @property
    def frozen_classifier(self) -> bool:
        """Whether the condition loss comes from a frozen, pre-trained classifier (``condition_head='classifier'``)."""
        return hasattr(self, "classifier")

    @property
    def auxiliary(self) -> bool:
        """Whether the discriminator is an auxiliary classifier (AC-GAN) rather than a projection one."""
        return bool(self.config.conditions) and self.config.condition_head.startswith("auxiliary")

    def _outputs(self, images: Tensor, params: dict[str, Tensor] | None) -> Tensor | tuple[Tensor, Tensor]:
        """The discriminator's outputs: a tensor, or (cells, whole-image logit [N, 1]) with ``discriminator_image``."""
        x = images * 2 - 1
        return self.discriminator(x) if params is None else functional_call(self.discriminator, params, (x,))

    def image_critic(self, images: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """A cell discriminator's whole-image logit [N, 1] (``CodecConfig.discriminator_image``)."""
        out = self._outputs(images, params)
        if not isinstance(out, tuple):
            raise ConfigError("GAN.image_critic: the discriminator gives no whole-image logit "
                              "(CodecConfig.discriminator_image=True with discriminator='cells')")
        return out[1]

    def _adversarial(self, out: Tensor | tuple[Tensor, Tensor], y: Tensor | None, real: bool) -> Tensor:
        """Binary cross-entropy of the critic's logits against ``real``: the mean over cells (or the one logit),
        plus the whole-image logit's when there is one."""
        logit = self._critic(out, y)
        loss = F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, float(real)))
        if isinstance(out, tuple):
            loss = loss + F.binary_cross_entropy_with_logits(out[1], torch.full_like(out[1], float(real)))
        return loss

    def critic(self, images: Tensor, y: Tensor | None, params: dict[str, Tensor] | None = None) -> Tensor:
        """The discriminator's logit [N, 1] for images in [0, 1] (and conditions ``y`` when conditional;
        an auxiliary-classifier discriminator's logit does not read them); a cell discriminator's
        (``discriminator="cells"``) logits [N, cells], row-major over its H/4 x W/4 grid."""
        return self._critic(self._outputs(images, params), y)

    def _critic(self, out: Tensor | tuple[Tensor, Tensor], y: Tensor | None) -> Tensor:
        if isinstance(out, tuple):  # a cell discriminator with a whole-image logit: the cells here
            out = out[0]
        if out.dim() == 4:  # a cell discriminator: the projection in every cell (an auxiliary classifier's: none)
            logit = out[:, 0]
            if y is not None and not self.auxiliary:
                logit = logit + (out[:, 1:1 + y.shape[1]] * y[:, :, None, None]).sum(1)
            return logit.flatten(1)
        if y is None or self.auxiliary or self.frozen_classifier:
            return out[:, :1]
        return out[:, :1] + (out[:, 1:] * y).sum(1, keepdim=True)

    def classify(self, images: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """An auxiliary-classifier discriminator's condition logits [N, condition_blocks, block width]."""
        if not self.auxiliary:
            raise ConfigError("GAN.classify: the discriminator is not an auxiliary classifier "
                              "(CodecConfig.condition_head='auxiliary' with conditions > 0)")
        return self._classes(self._outputs(images, params))

    def _classes(self, out: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        if isinstance(out, tuple):
            out = out[0]
        if out.dim() == 4:  # a cell discriminator: each class logit is the mean of its cells'
            out = out[:, :1 + self.config.conditions].mean((2, 3))
        return out[:, 1:].unflatten(1, (self.config.condition_blocks, -1))

    def _class_loss(self, out: Tensor | tuple[Tensor, Tensor], y: Tensor) -> Tensor:
        """Mean over the condition's blocks of the cross-entropy of the class logits with ``y``'s one-hots."""
        logits = self._classes(out)
        return F.cross_entropy(logits.flatten(0, 1), y.unflatten(1, (self.config.condition_blocks, -1)).flatten(0, 1).argmax(1))

    def losses(self, real: Tensor, z: Tensor, y: Tensor | None = None, maps: Tensor | None = None) -> dict[str, Tensor]:
        """Both players' losses for real images [N, 3, H, W] in [0, 1], noise z [N, latent] and, when
        conditional, the real images' conditions y [N, conditions] (the fakes are drawn with them);
        ``maps`` [N, H, W] (int64, 0 background, 1 + shape index): the real images' shape maps, for
        ``discriminator_maps`` only."""
        if (y is None) != (self.config.conditions == 0):
            raise ConfigError(f"GAN.losses: conditions={self.config.conditions} in the config, "
                              f"y {'missing' if y is None else tuple(y.shape)}")
        if (maps is None) == self.config.discriminator_maps:
            raise ConfigError(f"GAN.losses: shape maps are for CodecConfig.discriminator_maps (here "
                              f"{self.config.discriminator_maps}); maps {'missing' if maps is None else 'given'}")
        fake = self.generator(z if y is None else torch.cat([z, y], 1))
        out_real, out_fake = self._outputs(real, None), self._outputs(fake.detach(), None)
        d_loss = self._adversarial(out_real, y, True) + self._adversarial(out_fake, y, False)
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        out_g = self._outputs(fake, frozen)
        g_loss = self._adversarial(out_g, y, True)  # non-saturating
        extra: dict[str, Tensor] = {}
        if self.auxiliary:
            assert y is not None
            d_class = self._class_loss(out_real, y)
            if self.config.condition_head == "auxiliary":  # "auxiliary_real": the classifier learns on renders only
                d_class = d_class + self._class_loss(out_fake, y)
            g_class = self._class_loss(out_g, y)
            d_loss, g_loss = d_loss + d_class, g_loss + g_class
            extra = {"d_class": d_class.detach(), "g_class": g_class.detach()}
        elif self.frozen_classifier:
            assert y is not None
            g_class = self.classifier.condition_loss(fake, y)
            g_loss = g_loss + g_class
            extra = {"g_class": g_class.detach()}
        if self.config.shape_balance:  # the frozen reader's shape mix of the fakes against the renders'
            g_balance = balance_loss(self.balance_reader.presence(fake), self.balance_target)
            g_loss = g_loss + self.config.shape_balance * g_balance
            extra = {**extra, "g_balance": g_balance.detach()}
        if maps is not None:  # the cell discriminator learns the real images' shape maps
            cells = out_real[0] if isinstance(out_real, tuple) else out_real
            logits = cells[:, 1 + self.config.conditions:]
            d_maps = F.cross_entropy(F.interpolate(logits, size=maps.shape[-2:], mode="bilinear", align_corners=False), maps)
            d_loss = d_loss + d_maps
            extra = {**extra, "d_maps": d_maps.detach()}
        return {"loss": d_loss + g_loss, "d_loss": d_loss.detach(), "g_loss": g_loss.detach(), **extra}

    def codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` generator inputs [n, latent + conditions]: Gaussian noise, then (conditional) a condition
        drawn uniformly from the pool, both from ``generator`` (unconditional: exactly ``randn(n, latent)``)."""
        z = torch.randn(n, self.config.latent, generator=generator)
        if not self.config.conditions:
            return z
        pick = torch.randint(len(self.condition_pool), (n,), generator=generator)
        return torch.cat([z, self.condition_pool[pick]], 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples [n, 3, H, W] (generator in evaluation mode)."""
        self.generator.eval()
        return self.generator(self.codes(n, generator))


def train_gan(images: Tensor, config: CodecConfig, *, steps: int, batch: int, lr: float, seed: int,
              per_round: int = 100, ema: float = 0.0, conditions: Tensor | None = None,
              classifier: Reader | None = None, shape_maps: Tensor | None = None) -> GAN:
    """Train a GAN on ``images`` [N, 3, H, W] with the shared loop (Adam, beta1 0.5; horizontal flips).

    ``conditions`` [N, config.conditions]: each image's condition, for a class-conditional
    config (:class:`GAN`); None for an unconditional one.  ``classifier``: the frozen condition
    classifier of ``condition_head='classifier'`` (:class:`GAN`).  ``shape_maps`` [N, H, W]: the
    images' shape maps, for ``config.discriminator_maps`` only (flipped with their images).

    ``ema`` in (0, 1): the returned GAN's generator is the exponential moving average of the
    generator's weights over training (decay ``ema`` per step; :func:`average_generators`), the
    discriminator is the trained one.  0: the last step's generator (the default).
    """
    if not 0.0 <= ema < 1.0:
        raise ConfigError(f"train_gan: ema must be in [0, 1), got {ema}")
    gan, averages = fit_gan(images, config, steps=steps, batch=batch, lr=lr, seed=seed, per_round=per_round,
                            emas=(ema,) if ema else (), conditions=conditions, classifier=classifier,
                            shape_maps=shape_maps)
    if ema:
        gan.generator = averages[0]
    return gan.eval()


def fit_gan(images: Tensor, config: CodecConfig, *, steps: int, batch: int, lr: float, seed: int,
            per_round: int = 100, emas: Sequence[float] = (),
            snapshots: dict[int, ConvDecoder] | None = None,
            conditions: Tensor | None = None,
            classifier: Reader | None = None,
            shape_maps: Tensor | None = None) -> tuple[GAN, list[ConvDecoder]]:
    """The training run of :func:`train_gan`: (the GAN as trained, one averaged generator per decay in ``emas``).

    ``conditions`` [N, config.conditions]: the images' conditions when ``config`` is
    class-conditional (each batch's fakes take its real images' conditions; the pool of
    :meth:`GAN.codes` is all of them).  Averages are for unconditional GANs only.

    ``snapshots``: a dict whose keys are step counts in 1..``steps``; each key's value is set to a copy
    (evaluation mode) of the generator as it was after that many optimiser steps.  Taking them
    changes nothing in the training run (GAN dissection picks one by its samples' shape balance).

    Averaged generators (Yazici et al., "The Unusual Effectiveness of Averaging in GAN Training",
    ICLR 2019, arXiv 1806.04498; Karras et al., ProGAN, arXiv 1710.10196): after every optimiser
    step each parameter ``a <- d a + (1 - d) w``; their batch-norm statistics are then
    re-estimated on samples of their own (:func:`recalibrate_batch_norm`), since the running
    statistics of the trained generator belong to other weights.  Tracking them changes
    nothing in the training run itself.
    """
    if any(not 0.0 < d < 1.0 for d in emas):
        raise ConfigError(f"fit_gan: every ema decay must be in (0, 1), got {tuple(emas)}")
    keep = sorted(snapshots) if snapshots is not None else []
    if any(not isinstance(k, int) or not 1 <= k <= steps for k in keep):
        raise ConfigError(f"fit_gan: snapshot steps must be ints in 1..{steps}, got {keep}")
    if conditions is not None and len(conditions) != len(images):
        raise ConfigError(f"fit_gan: {len(images)} images but conditions {tuple(conditions.shape)}")
    if (shape_maps is None) == config.discriminator_maps or (
            shape_maps is not None and tuple(shape_maps.shape) != (len(images), *images.shape[-2:])):
        got = None if shape_maps is None else tuple(shape_maps.shape)
        raise ConfigError(f"fit_gan: shape_maps [N, H, W] of the images are needed exactly when "
                          f"CodecConfig.discriminator_maps (here {config.discriminator_maps}), got {got}")
    if emas and config.conditions:
        raise ConfigError("fit_gan: generator averages re-estimate batch norm from unconditional codes; "
                          "not available with CodecConfig.conditions")
    seed_everything(seed)
    target = mean_presence(classifier, images) if config.shape_balance and classifier is not None else None
    gan = GAN(config, conditions, classifier, target)
    averages = [copy.deepcopy(gan.generator).requires_grad_(False) for _ in emas]
    flip = torch.Generator().manual_seed(seed + 13)
    optimizer = torch.optim.Adam([p for p in gan.parameters() if p.requires_grad], lr=lr, betas=BETAS)
    loop = TrainLoop(gan, optimizer, Constant(lr), None, flags={"lr": lr, "steps": steps, "seed": seed},
                     unit="step", desc="dcgan", progress=False)
    taken = [0]

    def batches(r: int) -> list[Tensor]:
        g = torch.Generator().manual_seed(seed * 1000 + r)
        return list(torch.randint(len(images), (min(per_round, steps - r * per_round), batch), generator=g))

    def follow() -> None:  # the averages take the weights of the optimiser step just made
        with torch.no_grad():
            for decay, avg in zip(emas, averages, strict=True):
                for a, w in zip(avg.parameters(), gan.generator.parameters(), strict=True):
                    a.lerp_(w, 1.0 - decay)

    def snap() -> None:  # after taken[0] optimiser steps
        if snapshots is not None and taken[0] in snapshots:
            snapshots[taken[0]] = copy.deepcopy(gan.generator).requires_grad_(False).eval()

    def step(idx: Tensor) -> dict[str, Tensor]:
        if taken[0]:
            follow()
            snap()
        taken[0] += 1
        y = None if conditions is None else conditions[idx]
        if shape_maps is not None:
            x, m = random_hflip(flip, images[idx], shape_maps[idx])
            return gan(x, y, m)
        return gan(random_hflip(flip, images[idx])[0], y)

    loop.fit(-(-steps // per_round), batches, step)
    if taken[0]:
        follow()
        snap()
    for i, avg in enumerate(averages):
        recalibrate_batch_norm(avg, batch=batch, seed=seed + 17 + i)
    return gan.eval(), [avg.eval() for avg in averages]


@torch.no_grad()
def recalibrate_batch_norm(generator: ConvDecoder, *, batch: int, batches: int = 20, seed: int = 0) -> ConvDecoder:
    """Re-estimate ``generator``'s batch-norm running statistics from ``batches`` batches of its own samples.

    Each batch norm's running mean and variance become the average over the batches of the
    batch statistics that training mode uses (cumulative average, ``momentum=None``).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    g = torch.Generator().manual_seed(seed)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    generator.train()
    for _ in range(batches):
        generator(torch.randn(batch, generator.config.latent, generator=g))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return generator.eval()


def object_confidence(net: nn.Module, images: Tensor, labels: Tensor, crop_size: int,
                      min_pixels: int = 6) -> list[Tensor]:
    """Per image, each found object's weakest attribute confidence (float [K_i]).

    Objects are the connected components of the segmenter's labels; each is
    cropped with its mask and classified by the attribute network; an
    object's confidence is the smallest, over attributes, of the largest class
    probability.
    """
    from perception.derender.attributes import AttributeConfig, crop_objects

    crop = AttributeConfig(crop_size=crop_size, min_side=8.0)
    out = []
    net.eval()
    with torch.no_grad():
        for image, lab in zip(images, labels, strict=True):
            masks = object_masks(lab, min_pixels)
            if len(masks) == 0:
                out.append(torch.zeros(0))
                continue
            crops, boxes = crop_objects(image, masks, crop)
            logits, _ = net(crops, boxes)
            out.append(torch.stack([v.softmax(-1).max(-1).values for v in logits.values()], 1).min(1).values)
    return out


@dataclass(frozen=True)
class ValidObjectJudge:
    """Decides whether an image holds a valid object (module docstring); threshold from real renders."""

    segmenter: ShapeSegmenter
    attribute_net: nn.Module
    crop_size: int
    threshold: float

    def confidences(self, images: Tensor) -> list[Tensor]:
        return object_confidence(self.attribute_net, images, segment(self.segmenter, images), self.crop_size)

    def rates(self, images: Tensor) -> dict[str, float]:
        """Fraction of images with a valid object, of found objects that are valid, and objects per image."""
        conf = self.confidences(images)
        valid = [c >= self.threshold for c in conf]
        found = sum(len(c) for c in conf)
        return {"images_valid": sum(bool(v.any()) for v in valid) / max(len(conf), 1),
                "objects_valid": sum(int(v.sum()) for v in valid) / max(found, 1),
                "objects_per_image": found / max(len(conf), 1)}


def train_attribute_net(data: SceneRenders, *, crop_size: int, steps: int, batch: int, lr: float,
                        seed: int) -> nn.Module:
    """A small AttributeNet on ground-truth-mask crops of ``data`` (attributes from the renderer)."""
    from perception.derender.attributes import AttributeConfig, AttributeNet, crop_objects
    crop = AttributeConfig(crop_size=crop_size, width=16, min_side=8.0)
    crops, boxes = [], []
    for image, inst in zip(data.images, data.instances, strict=True):
        masks = torch.stack([inst == k for k in range(int(inst.max()) + 1)])
        c, b = crop_objects(image, masks, crop)
        crops.append(c)
        boxes.append(b)
    crops_t, boxes_t = torch.cat(crops), torch.cat(boxes)
    labels = data.attributes
    torch.manual_seed(seed)
    net = AttributeNet(crop)

    def step(idx: Tensor) -> dict[str, Tensor]:
        logits, _ = net(crops_t[idx], boxes_t[idx])
        return {"loss": sum(F.cross_entropy(logits[a], labels[a][idx]) for a in logits)}

    train_steps(net, step, items=len(crops_t), steps=steps, batch=batch, lr=lr, seed=seed, desc="attribute net")
    return net.eval()


# ---------------------------------------------------------------------- benchmark
CLASSIFIER_STEPS = 600  # the frozen shape-presence reader: Adam 2e-3, batch 32, on the GAN's training renders (dev: 0.855 present-set on 200 others)
CLASSIFIER_LR = 2e-3
CLASSIFIER_WIDTH = 16  # ShapePresenceNet's first width


@dataclass(frozen=True)
class GanSize:
    """How much the GAN benchmark renders and trains."""

    train: int
    test: int
    gan_steps: int
    seg_steps: int
    attr_steps: int
    samples: int
    batch: int = 64
    lr: float = 2e-4
    classifier_steps: int = 0  # the frozen condition classifier's training (condition_head="classifier" only)


_FULL = GanSize(train=1000, test=200, gan_steps=2000, seg_steps=400, attr_steps=400, samples=500, batch=32,
                classifier_steps=CLASSIFIER_STEPS)
_QUICK = GanSize(train=8, test=4, gan_steps=3, seg_steps=3, attr_steps=3, samples=8, batch=8, classifier_steps=3)
GAN_CODEC = CodecConfig(channels=24)  # generator layer blocks[0]: 48 units on a 12 x 16 grid
# What a bench run renders: "scenes" (SMALL_WORLD, 2-4 objects; the default) or
# "one_object" (ONE_OBJECT_WORLD; a conditional GAN then reads shape_classes, three classes, an option).
SCENES = {"scenes": SMALL_WORLD, "one_object": ONE_OBJECT_WORLD}
SEG_WIDTH = 12
CROP = 32  # attribute-network crop side


@dataclass(frozen=True)
class GanRun:
    """What one GAN benchmark run trains (GAN dissection reuses it)."""

    gan: GAN
    segmenter: ShapeSegmenter
    attribute_net: nn.Module
    train: SceneRenders
    test: SceneRenders


def _world(scenes: str) -> ClevrWorldConfig:
    if scenes not in SCENES:
        raise ConfigError(f"scenes must be one of {tuple(SCENES)}, got {scenes!r}")
    return SCENES[scenes]


def _renders_and_judges(quick: bool, seed: int, scenes: str = "scenes") -> tuple[SceneRenders, SceneRenders,
                                                                                 ShapeSegmenter, nn.Module]:
    """The run's renders (train, test) of ``scenes`` (:data:`SCENES`), segmenter and attribute network (cached per process)."""
    return _judged_renders(quick, seed, scenes)  # one cache entry however ``scenes`` is passed


@lru_cache(maxsize=2)
def _judged_renders(quick: bool, seed: int, scenes: str) -> tuple[SceneRenders, SceneRenders, ShapeSegmenter, nn.Module]:
    world = _world(scenes)
    size = _QUICK if quick else _FULL
    base = 5_000_000 + seed * 100_000
    train = render_scenes(range(base, base + size.train), world)
    test = render_scenes(range(base + 50_000, base + 50_000 + size.test), world)
    seg = train_segmenter(train, steps=size.seg_steps, batch=16, lr=2e-3, seed=seed, width=SEG_WIDTH)
    attr = train_attribute_net(train, crop_size=CROP, steps=size.attr_steps, batch=64, lr=2e-3, seed=seed)
    return train, test, seg, attr


def train_gan_run(quick: bool, seed: int, codec: CodecConfig = GAN_CODEC, ema: float = 0.0,
                  scenes: str = "scenes") -> GanRun:
    """Render, then train the GAN of ``codec``, the segmenter and the attribute network from ``seed``.

    ``scenes`` (:data:`SCENES`): "scenes", the default, renders :data:`SMALL_WORLD` (2-4 objects; a
    conditional ``codec`` reads :func:`shape_conditions`); "one_object" renders :data:`ONE_OBJECT_WORLD`
    (a conditional ``codec`` reads :func:`shape_classes`, ``conditions=len(SHAPES)``), and the
    segmenter and attribute network learn from those renders too.

    Cached per process (one cache entry per ``(quick, seed, codec, ema)``, however the arguments
    are passed); the renders, segmenter and attribute network are shared by runs of the same
    ``(quick, seed)`` whatever the codec (GAN dissection trains a wider generator beside the
    ``gan`` bench's).  ``ema``: :func:`train_gan`'s generator average (0: none, the ``gan`` bench's).
    """
    return _gan_run(quick, seed, codec, ema, scenes)


@lru_cache(maxsize=2)
def _gan_run(quick: bool, seed: int, codec: CodecConfig, ema: float, scenes: str) -> GanRun:
    size = _QUICK if quick else _FULL
    train, test, seg, attr = _renders_and_judges(quick, seed, scenes)
    gan = train_gan(train.images, codec, steps=size.gan_steps, batch=size.batch, lr=size.lr, seed=seed, ema=ema,
                    conditions=run_conditions(codec, train, scenes),
                    classifier=run_classifier(quick, seed, codec, scenes),
                    shape_maps=train.shapes if codec.discriminator_maps else None)
    return GanRun(gan, seg, attr, train, test)


def run_classifier(quick: bool, seed: int, codec: CodecConfig, scenes: str = "scenes") -> Reader | None:
    """The frozen shape-presence reader of a ``condition_head='classifier'`` or ``shape_balance`` ``codec``, else None.

    Trained from ``seed + 41`` on the run's training renders of ``scenes``, their shape maps and their
    :func:`shape_conditions` (one-object scenes: :func:`shape_classes`) (:data:`CLASSIFIER_STEPS` steps;
    cached per process), before the GAN.
    With ``codec.classifier_members`` > 1 or ``codec.classifier_augment``: a :class:`ReaderEnsemble`
    whose member k trains from ``seed + 41 + 1000 k`` (with the augmentations when asked; its
    draws on the fakes from ``seed + 43``).
    """
    if codec.shape_balance:  # an unconditional GAN's balance reader: one, of the shapes present
        return _classifier(quick, seed, len(SHAPES), 0, False, scenes)
    if not (codec.conditions and codec.condition_head == "classifier"):
        return None
    run_conditions(codec, _renders_and_judges(quick, seed, scenes)[0], scenes)  # the width check
    if codec.classifier_members == 1 and not codec.classifier_augment:
        return _classifier(quick, seed, codec.condition_blocks, 0, False, scenes)
    members = [_classifier(quick, seed, codec.condition_blocks, k, codec.classifier_augment, scenes)
               for k in range(codec.classifier_members)]
    return ReaderEnsemble(members, codec.classifier_augment, seed + 43)


@lru_cache(maxsize=4)
def _classifier(quick: bool, seed: int, blocks: int, member: int, augment: bool, scenes: str = "scenes") -> ShapePresenceNet:
    size = _QUICK if quick else _FULL
    train = _renders_and_judges(quick, seed, scenes)[0]
    return train_presence_net(train.images, train.shapes, _scene_conditions(train, scenes), blocks, steps=size.classifier_steps,
                              batch=size.batch, lr=CLASSIFIER_LR, seed=seed + 41 + 1000 * member,
                              width=CLASSIFIER_WIDTH if not quick else 4, augment=augment)


def run_conditions(codec: CodecConfig, train: SceneRenders, scenes: str = "scenes") -> Tensor | None:
    """The training scenes' conditions for a class-conditional ``codec``, else None.

    ``scenes`` "scenes": :func:`shape_conditions` (``codec.conditions`` must be its width); "one_object":
    :func:`shape_classes` (``codec.conditions`` must be ``len(SHAPES)``).
    """
    one_object = _world(scenes) is ONE_OBJECT_WORLD
    if not codec.conditions:
        return None
    reader, width = ("shape_classes", len(SHAPES)) if one_object else ("shape_conditions", SHAPE_CONDITIONS)
    if codec.conditions != width:
        raise ConfigError(f"train_gan_run: a conditional bench GAN of {scenes!r} reads {reader} ({width} wide), "
                          f"got CodecConfig.conditions={codec.conditions}")
    return _scene_conditions(train, scenes)


def _scene_conditions(train: SceneRenders, scenes: str) -> Tensor:
    """The renders' condition codes: :func:`shape_classes` for one-object scenes, else :func:`shape_conditions`."""
    return shape_classes(train) if _world(scenes) is ONE_OBJECT_WORLD else shape_conditions(train)


train_gan_run.cache_info = _gan_run.cache_info  # type: ignore[attr-defined]


@register_perception_bench(
    "gan",
    paper="Radford et al., DCGAN, arXiv 1511.06434 (Goodfellow et al., arXiv 1406.2661)",
    check="samples holding a valid object (attribute network, threshold met by 95% of real objects) >= 80%",
    ablation="the untrained generator (real renders' rate in the figures)",
)
def bench_gan(quick: bool, seed: int) -> BenchOutcome:
    """Train the GAN, the segmenter and the attribute network; judge GAN samples against real renders."""
    size = _QUICK if quick else _FULL
    run = train_gan_run(quick, seed)
    real_conf = object_confidence(run.attribute_net, run.test.images, segment(run.segmenter, run.test.images), CROP)
    flat = torch.cat(real_conf)
    threshold = float(torch.quantile(flat, 0.05)) if len(flat) else 1.0
    judge = ValidObjectJudge(run.segmenter, run.attribute_net, CROP, threshold)
    g = torch.Generator().manual_seed(seed + 1)
    ours = judge.rates(run.gan.sample(size.samples, g))
    torch.manual_seed(seed)
    untrained = judge.rates(GAN(run.gan.config).sample(size.samples, torch.Generator().manual_seed(seed + 1)))
    real = judge.rates(run.test.images)
    seg_acc = float((segment(run.segmenter, run.test.images) == run.test.shapes).float().mean())
    checks = (
        Check("samples with a valid object", "fraction of GAN samples, higher is better", ours["images_valid"],
              untrained["images_valid"], ">= 0.80", ours["images_valid"] >= 0.80),
    )
    figures = {"threshold": threshold, "ours": ours, "untrained_generator": untrained, "real_test_renders": real,
               "segmenter_pixel_accuracy": seg_acc, "train_scenes": size.train, "test_scenes": size.test,
               "gan_steps": size.gan_steps, "samples": size.samples,
               "valid_object": "every attribute's max probability >= threshold (the 5% quantile of real "
                               "test objects' weakest-attribute confidence, found and cropped the same way)"}
    return BenchOutcome(checks, figures)
