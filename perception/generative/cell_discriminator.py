"""A fully convolutional GAN discriminator with one logit per grid cell, built like the shape reader.

The DCGAN discriminator (:class:`~perception.generative.autoencoder.ConvEncoder`: three
stride-2 convolutions and a linear map of the whole grid) read a one-object render's shape
at 0.44 as a plain classifier (majority 0.375), while the fully convolutional
:class:`~perception.generative.condition_classifier.ShapePresenceNet` read it at 0.88
(docs/results/perception.md, GAN dissection, sixteenth look), so a projection
discriminator built on that encoder could not tell the generator which shape it drew.
:class:`CellDiscriminator` has the reader's body (six 3x3 convolutions, the second and
fourth of stride 2, receptive field 29 pixels, more than an object's 8-20) with leaky
ReLU, and a 1x1 convolution that gives every cell of the H/4 x W/4 grid its outputs: a
PatchGAN-style discriminator (Isola et al., pix2pix, CVPR 2017, arXiv 1611.07004) whose
condition enters by a projection in every cell (Miyato and Koyama, arXiv 1802.05637):
``logit[cell] = o[0, cell] + <y, o[1:1 + K, cell]>``.

With ``maps`` the head also gives ``1 + shapes`` background-or-shape logits per cell,
trained on the real images' shape maps as the reader is (per-pixel cross-entropy of the
logits up-sampled to the image): the body then has to carry shape, which the projection
can read (an auxiliary segmentation task of the discriminator; the generator's loss does
not use these logits).

With ``image`` the discriminator also gives one whole-image logit beside the cells': the body's
features pooled over the grid (mean and max, so that the sum of what the cells see and its peak
are both there) and read by a two-layer perceptron.  A loss of cells alone judges each 29-pixel
window and loses the image's object count (a sample fills with objects where renders have one:
docs/results/perception.md, GAN dissection, seventeenth look); a global logit judges the whole image, as the DCGAN discriminator did (the same
pairing as the local and global discriminators of Iizuka et al., "Globally and Locally
Consistent Image Completion", SIGGRAPH 2017).

Shapes::

    images   float [N, 3, H, W]   in [-1, 1] (the GAN's discriminator input)
    outputs  float [N, outputs, H/4, W/4]
    image    float [N, 1]         (``image=True`` only: forward returns (outputs, image))
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from physics.errors import ConfigError, StateError

__all__ = ["CellDiscriminator", "CELL_WIDTH", "CELL_STRIDE"]

CELL_WIDTH = 16  # first width, as ShapePresenceNet's bench reader (perception.md, GAN dissection, sixteenth look)
CELL_STRIDE = 4  # two stride-2 convolutions: a 64 x 48 image gives a 16 x 12 grid of cells


class CellDiscriminator(nn.Module):
    """``forward(images [N, 3, H, W]) -> [N, outputs, H/4, W/4]``: the reader's body, one output vector per cell.

    With ``image=True``: ``forward(images) -> (cells [N, outputs, H/4, W/4], image [N, 1])``.

    Args:
        height, width: Image size (multiples of :data:`CELL_STRIDE`).
        outputs: Channels of the per-cell head.
        norm: ``"spectral"`` (every convolution spectrally normalised, no batch norm) or
            ``"batch"`` (batch norm after each convolution but the first, as DCGAN's discriminator).
        width: First width (then ``2 width``, ``2 width``, ``3 width``, ``3 width``, ``3 width``).
        image: Also give a whole-image logit (mean- and max-pooled features, two linear layers).
    """

    def __init__(self, height: int, width_px: int, outputs: int, norm: str = "spectral", width: int = CELL_WIDTH,
                 image: bool = False) -> None:
        super().__init__()
        if height % CELL_STRIDE or width_px % CELL_STRIDE:
            raise ConfigError(f"CellDiscriminator: image size must be multiples of {CELL_STRIDE}, got {height}x{width_px}")
        if outputs < 1 or width < 1:
            raise ConfigError(f"CellDiscriminator: needs outputs >= 1 and width >= 1, got {outputs}, {width}")
        if not isinstance(image, bool):
            raise ConfigError(f"CellDiscriminator: image must be a bool, got {image!r}")
        if norm not in ("spectral", "batch"):
            raise ConfigError(f"CellDiscriminator: norm must be 'spectral' or 'batch', got {norm!r}")
        self.size = (height, width_px)
        sn = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda m: m)
        w = width
        plan = [(3, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 3 * w, 2), (3 * w, 3 * w, 1), (3 * w, 3 * w, 1)]
        layers: list[nn.Module] = []
        for i, (c_in, c_out, stride) in enumerate(plan):
            layers.append(sn(nn.Conv2d(c_in, c_out, 3, stride, 1)))
            if norm == "batch" and i:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Conv2d(3 * w, outputs, 1))
        # the whole-image logit: [mean, max] over cells (6 w) -> 3 w -> 1
        self.image_head = nn.Sequential(sn(nn.Linear(6 * w, 3 * w)), nn.LeakyReLU(0.2), sn(nn.Linear(3 * w, 1))) if image else None

    def forward(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, *self.size):
            raise StateError(f"CellDiscriminator expects images [N, 3, {self.size[0]}, {self.size[1]}], "
                             f"got {tuple(images.shape)}")
        h = self.features(images)
        if self.image_head is None:
            return self.head(h)
        return self.head(h), self.image_head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))
