"""A frozen, pre-trained reader of the shapes a render shows, as a conditional GAN's condition loss.

An auxiliary-classifier GAN (AC-GAN: Odena, Olah and Shlens, ICML 2017, arXiv
1610.09585) trains the classifier that tells the generator whether its sample
shows its condition alongside the generator, as a head of the discriminator;
on CLEVR renders that head read the scenes' shape counts no better than the
majority rate in 2,000 steps, and the generator drew a code that head read
instead of shapes (docs/results/perception.md, GAN dissection, thirteenth
look).  Here the reader is trained **first**, on real renders only, then
frozen: the generator's loss adds its loss on the fakes with the conditions
they were drawn with, so the generator is pushed to draw what a fixed reader of
real renders calls the condition (the guidance of a pre-trained classifier).

A whole-image classifier of the counts (a convolutional encoder and a linear
head) learns the training renders by heart and reads others at the majority
rate, as the AC-GAN heads do (docs/results/perception.md, GAN dissection,
fourteenth look).  So the reader
is fully convolutional and learns from the renderer's exact shape maps: a
small network gives every cell of an H/4 x W/4 grid background-or-shape logits
(trained by per-pixel cross-entropy against the shape maps, its logits
up-sampled), and a shape is *present* with the probability of its most
confident cell (a max over the grid, so presence is local evidence, as it is
in a scene).  It reads which shapes are present, not how many: the condition
loss is the binary cross-entropy of each shape's presence with the condition's
(a shape is asked for when its count is above 0).  It is the GAN's own
network, not GAN dissection's judges (the class masks' shapes come from the
attribute network's call on object crops).

Shapes::

    images      float [N, 3, H, W]   RGB in [0, 1]
    shape maps  int64 [N, H, W]      0 background, 1 + shape index
    logits      float [N, 1 + C, H/4, W/4]
    presence    float [N, C]         probability that each shape is in the image
    conditions  float [N, C * (max_objects + 1)]  each shape's count, one-hot (shape_conditions)

A generator can draw samples this reader reads as their condition far more often than
GAN dissection's judges agree: it finds the reader's adversarial patterns (the same
look).  Two options make it harder to fool (off by default):
:func:`diff_augment` (random translation, brightness, saturation, contrast and pixel noise,
differentiable in the images, after DiffAugment: Zhao et al., NeurIPS 2020, arXiv 2006.10738),
applied both when the reader trains (``train_presence_net(..., augment=True)``, the shape
maps translated alike) and to the fakes before the reader's condition loss, so a pattern must
fool it under every draw; and :class:`ReaderEnsemble`, several readers of different seeds,
the condition loss their mean.

An unconditional GAN can use the same frozen reader against mode dropping
(``CodecConfig.shape_balance``): :func:`balance_loss` compares the batch of
fakes' mean presence of each shape with the renders' (:func:`mean_presence`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import train_steps
from perception.generative.scenes import random_hflip
from physics.errors import ConfigError

__all__ = ["ShapePresenceNet", "ReaderEnsemble", "Reader", "diff_augment", "asked_presence", "train_presence_net",
           "presence_accuracy", "mean_presence", "balance_loss"]

AUGMENT_SHIFT = 0.125  # diff_augment: translation up to this fraction of the height and width (replicated edges)
AUGMENT_BRIGHTNESS = 0.15  # added, uniform in +-
AUGMENT_SATURATION = (0.6, 1.4)  # factor on the distance from the pixel's grey
AUGMENT_CONTRAST = (0.7, 1.3)  # factor on the distance from the image's mean
AUGMENT_NOISE = 0.03  # Gaussian pixel noise's standard deviation


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class ShapePresenceNet(nn.Module):
    """``forward(images [N, 3, H, W] in [0, 1]) -> logits [N, 1 + shapes, H/4, W/4]``; :meth:`presence` -> [N, shapes].

    Six 3x3 convolutions with batch norm and ReLU (the second and fourth of stride 2; widths
    ``width``, ``2 width``, ``2 width``, then ``3 width``; receptive field 29 pixels, more than an
    object's 8-20) and a 1x1 convolution to background-or-shape logits.
    """

    def __init__(self, shapes: int, width: int = 16) -> None:
        super().__init__()
        if shapes < 1 or width < 1:
            raise ConfigError(f"ShapePresenceNet: needs shapes >= 1 and width >= 1, got {shapes}, {width}")
        self.shapes = shapes
        w = width
        self.features = nn.Sequential(*_conv(3, w), *_conv(w, 2 * w, 2), *_conv(2 * w, 2 * w),
                                      *_conv(2 * w, 3 * w, 2), *_conv(3 * w, 3 * w), *_conv(3 * w, 3 * w))
        self.head = nn.Conv2d(3 * w, 1 + shapes, 1)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] % 4 or images.shape[3] % 4:
            raise ConfigError(f"ShapePresenceNet expects images [N, 3, H, W] with H, W multiples of 4, got {tuple(images.shape)}")
        return self.head(self.features(images * 2 - 1))

    def presence(self, images: Tensor) -> Tensor:
        """Each shape's probability of being in each image, float [N, shapes]: its most confident cell's."""
        return self(images).softmax(1)[:, 1:].flatten(2).max(2).values

    def condition_loss(self, images: Tensor, conditions: Tensor) -> Tensor:
        """Binary cross-entropy of :meth:`presence` with the shapes ``conditions`` ask for (:func:`asked_presence`), mean over shapes."""
        return F.binary_cross_entropy(self.presence(images).clamp(1e-6, 1 - 1e-6), asked_presence(conditions, self.shapes))


def diff_augment(images: Tensor, generator: torch.Generator, shape_maps: Tensor | None = None
                 ) -> tuple[Tensor, Tensor | None]:
    """Random per-image translation, brightness, saturation, contrast and noise; differentiable in ``images``.

    ``images`` [N, 3, H, W] (in [0, 1], not clamped after), ``shape_maps`` [N, H, W] (optional)
    translated by the same integer shift (up to :data:`AUGMENT_SHIFT` of each side, edges
    replicated: the render's floor continues).  All draws from ``generator``.  Returns
    ``(images, shape_maps or None)``.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ConfigError(f"diff_augment: images must be [N, 3, H, W], got {tuple(images.shape)}")
    if shape_maps is not None and (shape_maps.shape[0] != images.shape[0] or shape_maps.shape[-2:] != images.shape[-2:]):
        raise ConfigError(f"diff_augment: shape maps {tuple(shape_maps.shape)} do not match images {tuple(images.shape)}")
    n, _, h, w = images.shape
    g = generator

    def uniform(lo: float, hi: float) -> Tensor:
        return (lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=g)).to(images)

    sh, sw = int(h * AUGMENT_SHIFT), int(w * AUGMENT_SHIFT)
    dy = torch.randint(-sh, sh + 1, (n, 1), generator=g)
    dx = torch.randint(-sw, sw + 1, (n, 1), generator=g)
    rows = (torch.arange(h)[None] + dy).clamp(0, h - 1)  # [N, H]
    cols = (torch.arange(w)[None] + dx).clamp(0, w - 1)  # [N, W]
    idx = torch.arange(n)[:, None, None]
    x = images.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    maps = None if shape_maps is None else shape_maps[idx, rows[:, :, None], cols[:, None, :]]
    x = x + uniform(-AUGMENT_BRIGHTNESS, AUGMENT_BRIGHTNESS)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * uniform(*AUGMENT_SATURATION)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * uniform(*AUGMENT_CONTRAST)
    x = x + AUGMENT_NOISE * torch.randn(x.shape, generator=g).to(images)
    return x, maps


class ReaderEnsemble(nn.Module):
    """Frozen :class:`ShapePresenceNet` readers as one condition loss (same interface: ``shapes``, :meth:`presence`, :meth:`condition_loss`).

    :meth:`condition_loss`: the mean of each member's loss, each on its own :func:`diff_augment`
    draw of the images when ``augment`` (draws from ``seed``); :meth:`presence`: the members'
    mean probability, on the images as given (no augmentation).
    """

    def __init__(self, members: list[ShapePresenceNet], augment: bool, seed: int) -> None:
        super().__init__()
        if not members or len({m.shapes for m in members}) != 1:
            raise ConfigError(f"ReaderEnsemble: needs >= 1 readers of the same shapes, got {[m.shapes for m in members]}")
        self.members = nn.ModuleList(members)
        self.shapes = members[0].shapes
        self.augment = augment
        self._draws = torch.Generator().manual_seed(seed)

    def presence(self, images: Tensor) -> Tensor:
        """The members' mean probability of each shape, float [N, shapes]."""
        return torch.stack([m.presence(images) for m in self.members]).mean(0)

    def condition_loss(self, images: Tensor, conditions: Tensor) -> Tensor:
        """Mean over the members of :meth:`ShapePresenceNet.condition_loss`, each on its own augmentation draw."""
        losses = [m.condition_loss(diff_augment(images, self._draws)[0] if self.augment else images, conditions)
                  for m in self.members]
        return torch.stack(losses).mean()


Reader = ShapePresenceNet | ReaderEnsemble  # what a condition_head="classifier" or shape_balance GAN takes


def asked_presence(conditions: Tensor, shapes: int) -> Tensor:
    """Which shapes a condition asks for: float [N, shapes] of 0 / 1.

    A :func:`~perception.generative.scenes.shape_conditions` code [N, shapes x (max_objects + 1)]:
    each shape's count > 0; a one-object :func:`~perception.generative.scenes.shape_classes` code
    [N, shapes]: the one-hot itself (one object, of that shape).
    """
    if conditions.dim() != 2 or conditions.shape[1] % shapes:
        raise ConfigError(f"asked_presence: conditions must be [N, {shapes} x (max_objects + 1)] or [N, {shapes}] "
                          f"(one-object shape classes), got {tuple(conditions.shape)}")
    if conditions.shape[1] == shapes:
        return (conditions > 0.5).float()
    return (conditions.view(len(conditions), shapes, -1).argmax(2) > 0).float()


BALANCE_EPS = 1e-6  # balance_loss: mean presences clamped into [eps, 1 - eps] (log of 0 otherwise)


@torch.no_grad()
def mean_presence(net: Reader, images: Tensor, chunk: int = 200) -> Tensor:
    """Each shape's mean presence probability over ``images`` [N, 3, H, W] (``net`` in evaluation mode): float [shapes]."""
    net.eval()
    if not len(images):
        raise ConfigError("mean_presence: no images")
    return torch.cat([net.presence(part) for part in images.split(chunk)]).mean(0)


def balance_loss(presence: Tensor, target: Tensor) -> Tensor:
    """How far a batch's shape mix is from the renders': the sum over shapes of binary KL(target || batch mean).

    ``presence`` [N, shapes]: a reader's presence probabilities on a batch of fakes (differentiable in
    them); ``target`` [shapes]: the same reader's :func:`mean_presence` on the real renders (so the
    reader's own bias on renders cancels).  Zero exactly when the batch's mean presence of every shape
    is the renders'; a shape drawn too rarely (or empty images) raises it, and its gradient raises that
    shape's presence.  A classifier-in-the-loop balance term, as in Rangwani, Mopuri and Babu, "Class
    Balancing GAN with a Classifier in the Loop", UAI 2021 (arXiv 2106.09402), there on the entropy of
    the class mix; here on the presence of each shape against the renders'.
    """
    if presence.dim() != 2 or target.shape != presence.shape[1:] or not len(presence):
        raise ConfigError(f"balance_loss: presence must be [N >= 1, shapes] and target [shapes], got "
                          f"{tuple(presence.shape)} and {tuple(target.shape)}")
    q = presence.mean(0).clamp(BALANCE_EPS, 1 - BALANCE_EPS)
    t = target.to(q).clamp(BALANCE_EPS, 1 - BALANCE_EPS)
    return (t * (t / q).log() + (1 - t) * ((1 - t) / (1 - q)).log()).sum()


@torch.no_grad()
def presence_accuracy(net: Reader, images: Tensor, conditions: Tensor,
                      chunk: int = 200) -> dict[str, float | list[float]]:
    """How well ``net`` reads the shapes present (probability > 0.5) against ``conditions``' counts > 0.

    ``present_set``: all shapes right at once (GAN dissection's condition gate reads the same
    on the class masks); ``per_shape``: each shape's rate.
    """
    net.eval()
    got = torch.cat([net.presence(part) for part in images.split(chunk)]) > 0.5
    want = asked_presence(conditions, net.shapes) > 0.5
    right = got == want
    return {"present_set": float(right.all(1).float().mean()), "per_shape": right.float().mean(0).tolist()}


def train_presence_net(images: Tensor, shape_maps: Tensor, conditions: Tensor, shapes: int, *, steps: int,
                       batch: int, lr: float, seed: int, width: int = 16, augment: bool = False) -> ShapePresenceNet:
    """Train a :class:`ShapePresenceNet` on real renders, then freeze it (evaluation mode, no gradients).

    Loss per step: the per-pixel cross-entropy of its logits, up-sampled (bilinear) to the image,
    with the renderer's ``shape_maps`` [N, H, W], plus :meth:`ShapePresenceNet.condition_loss`
    with the renders' own ``conditions``; ``batch`` renders per step with horizontal flips,
    Adam at the constant rate ``lr`` (:func:`~perception.benchmark.train_steps`).  ``augment``:
    each batch also goes through :func:`diff_augment` (maps translated alike; draws from ``seed + 37``).
    """
    if not len(images) == len(shape_maps) == len(conditions) or shape_maps.shape[-2:] != images.shape[-2:]:
        raise ConfigError(f"train_presence_net: images {tuple(images.shape)}, shape maps {tuple(shape_maps.shape)} and "
                          f"conditions {tuple(conditions.shape)} must be of the same renders")
    torch.manual_seed(seed)
    net = ShapePresenceNet(shapes, width)
    flip = torch.Generator().manual_seed(seed + 31)
    draws = torch.Generator().manual_seed(seed + 37)

    def step(idx: Tensor) -> dict[str, Tensor]:
        x, m = random_hflip(flip, images[idx], shape_maps[idx])
        if augment:
            x, m = diff_augment(x, draws, m)
        logits = net(x)
        dense = F.cross_entropy(F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False), m)
        present = F.binary_cross_entropy(logits.softmax(1)[:, 1:].flatten(2).max(2).values.clamp(1e-6, 1 - 1e-6),
                                         asked_presence(conditions[idx], shapes))
        return {"loss": dense + present, "dense": dense.detach(), "presence": present.detach()}

    train_steps(net, step, items=len(images), steps=steps, batch=batch, lr=lr, seed=seed, desc="shape presence net")
    return net.eval().requires_grad_(False)
