"""NS-CL's visual side: object features meet concept embeddings (Mao et al., ICLR 2019).

Each object proposal (an image crop stacked with its mask, and its box) goes
through a small CNN to a feature vector (three stride-2 stages, each optionally
followed by ``residual`` residual blocks that widen its receptive field to the
whole crop).  With ``detail_size`` the crops are cut at that larger side: the CNN
reads them resized to ``crop_size`` and a second CNN of the same shape reads them
at full size, for the finer detail (edges of cubes and cylinders, highlights of
metal) that a 32-pixel crop of a small object loses; both pooled features feed
the object MLP.  With ``context_size`` a third, small CNN reads the whole image
resized to that height (the light's direction, which the renderer jitters per
scene, shows in the shading and the shadows of every object; a crop alone does
not tell a flat metal face from a rubber one lit another way); its pooled
feature joins every object's.  With ``max_pool`` the last feature map of the detail CNN
(of the CNN without one) is max-pooled beside its average pool (a highlight is a few
pixels of a face, which an average dilutes); that feature comes after the others.  With ``spatial`` K
the same last map keeps its layout: a 1 x 1 convolution (with batch normalisation and a ReLU) reduces
it to K channels and every position's K numbers join the object MLP (K x (S/8)^2 columns, last), so
that where on the object a highlight or an edge lies (the top face of a cube, its corners) is not
averaged away as the pools do; it needs crops of exactly ``input_size``.  With ``mask_crop`` every
crop's RGB outside its object's mask is replaced by the mean colour there (:func:`mask_outside`):
the neighbours that a crop's box takes in (their pixels, their highlights) are hidden, the light's
level around the object is kept; ``mask_dilate`` grows the mask that hides by that many crop pixels
first (a proposal mask misses a rim of its object; the mask channel itself stays).  With
``others_mask`` every CNN reads a fifth input channel, the union of the other objects' masks cut with
the crop's box (:func:`reasoning.nscl.data.image_objects`): which pixels of the crop belong to a
neighbour, so that an object partly hidden behind another is read as such and not as a small face.  Per attribute group (colour, shape,
material, size) a linear map takes it into that group's concept space, where
every concept (``red``, ``cube``, ...) is one learned embedding; the object's
logit for a concept is the paper's

    (cos(f_a(object), e_concept) - margin) / temperature

and relations (``left``, ``behind``, ...) work the same way on a feature of the
object pair (both boxes and their difference).  The logits are a
:class:`~reasoning.executor.soft.SoftScenes`, which the quasi-symbolic executor
runs programs over; nothing here ever sees an attribute label.

Shapes (K objects of one image, crop side S)::

    crops   float [K, 4, S, S]   RGB in [0, 1] and the mask channel (S: ``config.input_size``;
                                 [K, 5, S, S] with the others' mask channel last, ``config.others_mask``)
    boxes   float [K, 4]         (cx / W, cy / H, side / W, side / H)
    images  float [3, C, 3C/2]   the whole image in [0, 1] (C: ``config.context_size``; only with a context CNN)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physics.config_types import check_field_types
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.executor.soft import SoftScenes

__all__ = ["ConceptConfig", "ConceptLearner", "ResidualBlock", "recolour", "rescale", "context_shape", "mask_outside"]


@dataclass(frozen=True)
class ConceptConfig:
    """Architecture of :class:`ConceptLearner`."""

    crop_size: int = 32  # S: crops are resized to S x S
    width: int = 32  # channels of the first conv stage (doubled twice)
    residual: int = 0  # residual blocks after each conv stage (0: three convolutions, a 15-px receptive field)
    feature_dim: int = 128  # object feature size
    concept_dim: int = 32  # size of every concept space
    margin: float = 0.2  # NS-CL's gamma
    temperature: float = 0.1  # NS-CL's tau
    test_flip: bool = False  # in evaluation, average each object's concept logits over its crop and the mirrored crop
    detail_size: int = 0  # 0: none; N: crops cut at N px, read at that side by a second CNN beside the crop_size one
    context_size: int = 0  # 0: none; C: the whole image at C x 3C/2 px, read by a context CNN whose feature joins every object's
    max_pool: bool = False  # also max-pool the last feature map of the detail CNN (or of the CNN without one); its 4w columns come last
    mask_crop: bool = False  # RGB outside the object's mask replaced by the crop's mean colour there (mask_outside), for every CNN
    mask_dilate: int = 0  # with mask_crop: the mask that hides grown by this many pixels of the input_size crop first
    spatial: int = 0  # 0: none; K: the detail CNN's (or the CNN's) last map reduced to K channels, flattened (its columns last)
    others_mask: bool = False  # crops carry a fifth channel, the other objects' masks, read by every crop CNN

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if not isinstance(self.spatial, int) or self.spatial < 0:
            raise ValueError(f"ConceptConfig.spatial: give a number of channels >= 0, got {self.spatial!r}")
        if not isinstance(self.mask_dilate, int) or self.mask_dilate < 0:
            raise ValueError(f"ConceptConfig.mask_dilate: give a number of crop pixels >= 0, got {self.mask_dilate!r}")
        if self.mask_dilate and not self.mask_crop:
            raise ValueError(f"ConceptConfig.mask_dilate {self.mask_dilate}: dilates the mask of mask_crop, which is off")

    @property
    def channels(self) -> int:
        """Channels of the crops the model takes: RGB, its mask (and the others' masks with ``others_mask``)."""
        return 5 if self.others_mask else 4

    @property
    def input_size(self) -> int:
        """Side of the crops the model takes (``detail_size`` if set, else ``crop_size``)."""
        return self.detail_size or self.crop_size

    @property
    def map_side(self) -> int:
        """Side of the last feature map of the CNN that reads ``input_size`` crops (three stride-2 stages)."""
        side = self.input_size
        for _ in range(3):
            side = -(-side // 2)
        return side


def context_shape(size: int) -> tuple[int, int]:
    """(height, width) of the whole-image input of a context CNN of ``context_size`` ``size`` (CLEVR's 3:2)."""
    return size, round(1.5 * size)


class ResidualBlock(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))`` at constant width and resolution.

    The second normalisation's scale starts at zero (Goyal et al. 2017, "zero-init
    residual"), so a new block is exactly the identity on the non-negative features
    it follows: a model deepened with ``nesy train nscl --residual N --init SMALLER``
    starts as the smaller model and only then learns what the blocks add.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        nn.init.zeros_(self.body[4].weight)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class ConceptLearner(nn.Module):
    """Crops and boxes of objects -> concept and relation logits (a :class:`SoftScenes`).

    Args:
        config: Architecture.
        vocabulary: Concept words per attribute group (CLEVR's by default).
        relations: Relational concepts.
    """

    def __init__(
        self,
        config: ConceptConfig = ConceptConfig(),
        vocabulary=ATTRIBUTES,
        relations: Sequence[str] = RELATIONS,
    ) -> None:
        super().__init__()
        self.config = config
        self.vocabulary = {a: tuple(ws) for a, ws in vocabulary.items()}
        self.relation_names = tuple(relations)
        w = config.width

        def block(cin: int, cout: int) -> nn.Sequential:  # a model with residual=0 keeps its keys cnn.K.0/1
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                *(ResidualBlock(cout) for _ in range(config.residual)),
            )

        def cnn() -> nn.Sequential:
            return nn.Sequential(block(config.channels, w), block(w, 2 * w), block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1))

        self.cnn = cnn()
        # the detail CNN's features come after the boxes in the object MLP's input, so that the first
        # 4w + 4 columns are a model without it (see reasoning.nscl.train._load_init)
        self.detail_cnn = cnn() if config.detail_size else None
        # the context CNN's feature (2w) comes last, after the detail CNN's: a model without it is the first columns
        self.context_cnn = (
            nn.Sequential(block(3, w // 2), block(w // 2, w), block(w, 2 * w), nn.AdaptiveAvgPool2d(1))
            if config.context_size else None
        )
        # the max-pooled feature (4w) of the detail CNN's (else the CNN's) last map comes after everything else:
        # a model without it is the first columns
        # the spatial branch (spatial x map_side^2) comes after the max-pooled feature, last of all
        self.spatial_map = (
            nn.Sequential(nn.Conv2d(4 * w, config.spatial, 1, bias=False), nn.BatchNorm2d(config.spatial),
                          nn.ReLU(inplace=True))
            if config.spatial else None
        )
        inputs = (4 * w + 4 + (4 * w if config.detail_size else 0) + (2 * w if config.context_size else 0)
                  + (4 * w if config.max_pool else 0) + config.spatial * config.map_side ** 2)
        self.object_mlp = nn.Sequential(
            nn.Linear(inputs, config.feature_dim), nn.ReLU(inplace=True), nn.Linear(config.feature_dim, config.feature_dim)
        )
        d = config.concept_dim
        self.attribute_maps = nn.ModuleDict({a: nn.Linear(config.feature_dim, d) for a in self.vocabulary})
        self.concepts = nn.ParameterDict(
            {a: nn.Parameter(torch.randn(len(ws), d) * 0.5) for a, ws in self.vocabulary.items()}
        )
        self.pair_mlp = nn.Sequential(nn.Linear(12, 64), nn.ReLU(inplace=True), nn.Linear(64, d))
        self.relation_concepts = nn.Parameter(torch.randn(len(self.relation_names), d) * 0.5)

    def feature_columns(self) -> dict[str, slice]:
        """The columns of the object MLP's first layer that read each part's feature, for the parts this model has.

        ``base`` (the crop CNN and the box), then ``detail``, ``context``, ``max`` (``max_pool``) and
        ``spatial``, in the order :meth:`object_features` joins them.
        """
        w, c = self.config.width, self.config
        widths = {"base": 4 * w + 4, "detail": 4 * w if self.detail_cnn is not None else 0,
                  "context": 2 * w if self.context_cnn is not None else 0, "max": 4 * w if c.max_pool else 0,
                  "spatial": c.spatial * c.map_side ** 2}
        columns, start = {}, 0
        for part, width in widths.items():
            if width:
                columns[part] = slice(start, start + width)
                start += width
        return columns

    def part_parameters(self, part: str) -> list[tuple[nn.Parameter, slice | None]]:
        """The weights of ``part`` (``detail``, ``context``, ``max``, ``spatial`` or ``others``): (parameter, its
        columns, or None for all of it).

        A part is its CNN and the columns of the object MLP's first layer that read its feature;
        ``max`` (the max-pooled branch, ``max_pool``) is those columns only, its CNN being shared;
        ``spatial`` is its 1 x 1 reduction and its columns; ``others`` (``others_mask``) is the input
        channel 4 of the first convolution of the crop CNN and of the detail CNN.

        Raises:
            ValueError: an unknown part, or one this model does not have.
        """
        if part == "others":
            if not self.config.others_mask:
                raise ValueError("part_parameters: this model has no others' mask channel (others_mask off)")
            convs = [cnn[0][0].weight for cnn in (self.cnn, self.detail_cnn) if cnn is not None]
            return [(weight, slice(4, 5)) for weight in convs]
        cnns = {"detail": self.detail_cnn, "context": self.context_cnn, "max": None, "spatial": self.spatial_map}
        if part not in cnns:
            raise ValueError(f"part_parameters: no part {part!r}; parts: {', '.join(cnns)}, others")
        columns = self.feature_columns().get(part)
        if columns is None:
            raise ValueError("part_parameters: this model has no max-pooled branch (max_pool off)" if part == "max"
                             else "part_parameters: this model has no spatial branch (spatial 0)" if part == "spatial"
                             else f"part_parameters: this model has no {part} CNN ({part}_size 0)")
        cnn = cnns[part]
        return ([] if cnn is None else [(p, None) for p in cnn.parameters()]) + [(self.object_mlp[0].weight, columns)]

    def object_features(self, crops: Tensor, boxes: Tensor, context: Tensor | None = None) -> Tensor:
        """``[K, 4, S, S]`` crops (``S = config.input_size``) and ``[K, 4]`` boxes -> ``[K, feature_dim]``.

        ``context``: ``[K, 2 * width]``, each object's image's context feature (with a context CNN only).
        """
        peak = layout = None
        if len(crops) and crops.shape[1] != self.config.channels:
            raise ValueError(f"this model reads crops of {self.config.channels} channels (others_mask "
                             f"{self.config.others_mask}), got {crops.shape[1]}")
        if self.config.mask_crop:
            crops = mask_outside(crops, self.config.mask_dilate)
        if self.spatial_map is not None and len(crops) and tuple(crops.shape[-2:]) != (self.config.input_size,) * 2:
            raise ValueError(f"this model's spatial branch reads crops of {self.config.input_size} px, got "
                             f"{tuple(crops.shape[-2:])}")
        if self.detail_cnn is None:  # the CNN pools adaptively: it reads crops of any side as they come
            pooled, peak, layout = self._pooled(self.cnn, crops)
            parts = [pooled, boxes]
        else:
            side = self.config.crop_size
            coarse = F.interpolate(crops, size=(side, side), mode="bilinear", align_corners=False)
            fine, peak, layout = self._pooled(self.detail_cnn, crops)
            parts = [self._pooled(self.cnn, coarse, last=False)[0], boxes, fine]
        if self.context_cnn is not None:
            if context is None:
                raise ValueError("this model reads the whole image too (context_size): give each object's context")
            parts.append(context)
        if self.config.max_pool:
            parts.append(peak)
        if self.spatial_map is not None:
            parts.append(layout)
        return self.object_mlp(torch.cat(parts, dim=1))

    def _pooled(self, cnn: nn.Sequential, crops: Tensor, last: bool = True) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``cnn``'s average-pooled feature ``[K, 4w]``; with ``last`` (the CNN whose map the branches read) also
        its last map's maximum with ``max_pool`` and its reduced, flattened map ``[K, spatial * side^2]`` with
        ``spatial`` (each None without)."""
        if not last or not (self.config.max_pool or self.spatial_map is not None):
            return cnn(crops).flatten(1), None, None
        maps = cnn[:-1](crops)
        peak = maps.amax(dim=(-2, -1)) if self.config.max_pool else None
        layout = self.spatial_map(maps).flatten(1) if self.spatial_map is not None else None
        return cnn[-1](maps).flatten(1), peak, layout

    def _contexts(self, images: Sequence[Tensor] | None, counts: Sequence[int], mirror: bool = False) -> Tensor | None:
        """Per object its image's context feature ``[sum(counts), 2 * width]`` (None without a context CNN)."""
        if self.context_cnn is None:
            return None
        if images is None or len(images) != len(counts):
            raise ValueError(
                f"this model reads the whole image too (context_size {self.config.context_size}): give one "
                f"[3, H, W] image per scene, got {'none' if images is None else len(images)} for {len(counts)} scenes"
            )
        batch = torch.stack(list(images))
        features = self.context_cnn(batch.flip(-1) if mirror else batch).flatten(1)
        return features.repeat_interleave(torch.as_tensor(list(counts), device=features.device), dim=0)

    def _logits(self, x: Tensor, concepts: Tensor) -> Tensor:
        cos = F.normalize(x, dim=-1) @ F.normalize(concepts, dim=-1).T
        return (cos - self.config.margin) / self.config.temperature

    def forward(
        self,
        crops: Sequence[Tensor],
        boxes: Sequence[Tensor],
        recoloured: Sequence[Tensor] | None = None,
        groups: Sequence[str] = (),
        images: Sequence[Tensor] | None = None,
    ) -> SoftScenes:
        """Per image its crops ``[K_s, 4, S, S]`` and boxes ``[K_s, 4]`` -> the batch's concept logits.

        ``images``: per scene the whole image ``[3, C, 3C/2]`` (:func:`context_shape`), required
        by a model with a context CNN (``config.context_size``) and ignored by any other.

        With ``recoloured`` (the same crops with other colours, see :func:`recolour`) the
        attribute groups named in ``groups`` read those crops' features instead of the
        originals' (one CNN pass over both, so batch normalisation sees them together):
        training with randomised colours for, say, shape leaves the shape concepts nothing
        to learn from colour.  In evaluation (``eval()``) a model whose config has
        ``test_flip`` reads every crop also mirrored left to right (as ``--flip`` training
        shows them) and takes the mean of the two concept logits (the mirrored crops with the
        mirrored image's context); relations read boxes only.
        """
        counts = [len(b) for b in boxes]
        s, n = len(counts), max(counts, default=0)
        dtype, device = self.relation_concepts.dtype, self.relation_concepts.device
        present = torch.zeros(s, n, dtype=dtype, device=device)
        for k, c in enumerate(counts):
            present[k, :c] = 1.0
        flat_boxes = torch.cat(list(boxes)) if s else torch.zeros(0, 4, device=device)
        features = other = mirrored = None
        k = len(flat_boxes)
        context = self._contexts(images, counts) if sum(counts) else None
        twice = torch.cat([context, context]) if context is not None else None
        if sum(counts) and recoloured is not None and groups:
            both = self.object_features(torch.cat([*crops, *recoloured]), torch.cat([flat_boxes, flat_boxes]), twice)
            features, other = both[:k], both[k:]
        elif sum(counts) and self.config.test_flip and not self.training:
            flat = torch.cat(list(crops))
            if context is not None:
                twice = torch.cat([context, self._contexts(images, counts, mirror=True)])
            both = self.object_features(torch.cat([flat, flat.flip(-1)]), torch.cat([flat_boxes, flat_boxes]), twice)
            features, mirrored = both[:k], both[k:]
        elif sum(counts):
            features = self.object_features(torch.cat(list(crops)), flat_boxes, context)
        attributes = {}
        for a, words in self.vocabulary.items():
            out = torch.full((s, n, len(words)), -1.0 / self.config.temperature, dtype=dtype, device=device)
            if features is not None:
                x = other if other is not None and a in groups else features
                logits = self._logits(self.attribute_maps[a](x), self.concepts[a])
                if mirrored is not None:  # test_flip: the mean of the crop's and its mirror image's logits
                    logits = 0.5 * (logits + self._logits(self.attribute_maps[a](mirrored), self.concepts[a]))
                out = out.index_put(_slots(counts, device), logits)
            attributes[a] = out
        relations = torch.full((s, len(self.relation_names), n, n), -1.0 / self.config.temperature, dtype=dtype,
                               device=device)
        if n:
            padded = torch.zeros(s, n, 4, dtype=dtype, device=device).index_put(_slots(counts, device), flat_boxes)
            bi = padded[:, :, None, :].expand(s, n, n, 4)  # [s, i, j]: the subject i
            bj = padded[:, None, :, :].expand(s, n, n, 4)  # and the object j
            pair = self.pair_mlp(torch.cat([bi, bj, bj - bi], dim=-1))  # [s, n, n, d]
            relations = self._logits(pair, self.relation_concepts).permute(0, 3, 1, 2)
        return SoftScenes(present, attributes, relations, self.vocabulary, self.relation_names)


def recolour(crops: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``[K, 4, S, S]`` crops with each object's colours randomised; the mask channel kept.

    Per crop, the RGB values are rotated about the gray axis by an angle drawn
    uniformly from [0, 2 pi) (a hue rotation that keeps each pixel's mean of R, G, B),
    their distance from that gray scaled by U(0, 1.25) (saturation: even a gray
    object's colours are then reachable from every other colour's) and the whole
    scaled by U(0.75, 1.25) (brightness), then clamped to [0, 1].  The identity
    (angle 0, both scales 1) is among the draws, so the original crops lie within
    what a model trained on recoloured crops has seen.
    """
    k = len(crops)
    if not k:
        return crops
    angle = torch.rand(k, generator=generator) * (2 * torch.pi)
    saturation = torch.rand(k, generator=generator) * 1.25
    brightness = 0.75 + torch.rand(k, generator=generator) * 0.5
    u = torch.full((3,), 3 ** -0.5)
    cross = torch.tensor([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    rotation = cos * torch.eye(3) + sin * cross + (1 - cos) * torch.outer(u, u)  # Rodrigues, [K, 3, 3]
    rgb = torch.einsum("kij,kjhw->kihw", rotation.to(crops), crops[:, :3])
    gray = rgb.mean(1, keepdim=True)
    scale = lambda v: v.to(crops)[:, None, None, None]  # noqa: E731
    rgb = ((gray + scale(saturation) * (rgb - gray)) * scale(brightness)).clamp(0.0, 1.0)
    return torch.cat([rgb, crops[:, 3:]], dim=1)


def rescale(crops: Tensor, spread: float, generator: torch.Generator | None = None) -> Tensor:
    """``[K, 4, S, S]`` crops re-framed: each crop's box scaled about its centre by a factor from U(1 - spread, 1 + spread).

    The crop is resampled (bilinear, RGB and mask channel alike) as if it had been cut with its box's
    side times that factor: below 1 the object fills more of the crop, above 1 less, and the band
    beyond the cut crop repeats its edge pixels (the crops are cut with a quarter of the object's box
    of margin on each side; at a spread of 0.1 that band is at most 5% of the side at each edge).  The model reads
    the object's box as it was: what a crop's framing says about the object's size is taken away.

    Raises:
        ValueError: ``spread`` outside [0, 0.5).
    """
    if not 0.0 <= spread < 0.5:
        raise ValueError(f"rescale: give a spread in [0, 0.5), got {spread!r}")
    k = len(crops)
    if not k or not spread:
        return crops
    factor = 1.0 + spread * (2.0 * torch.rand(k, generator=generator) - 1.0)
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0] = factor
    theta[:, 1, 1] = factor
    grid = F.affine_grid(theta.to(crops), list(crops.shape), align_corners=False)
    return F.grid_sample(crops, grid, mode="bilinear", padding_mode="border", align_corners=False)


def mask_outside(crops: Tensor, dilate: int = 0) -> Tensor:
    """``[K, 4, S, S]`` crops with the RGB outside each object's mask replaced by the crop's mean colour there.

    The mask channel ``m`` (soft at the edges, as the crops are resampled) blends: ``rgb m + fill (1 - m)``,
    where ``fill`` is the crop's mean RGB weighted by ``1 - m`` (the ground and whatever else lies
    around the object, so the light's level stays); a crop that is all object keeps its pixels.
    With ``dilate`` d > 0, ``m`` is first grown by d pixels (the maximum over a (2d+1)-pixel square
    about each pixel), so a rim of the object that its (proposal) mask missed stays visible.
    The mask channel is kept as it came.

    Raises:
        ValueError: ``dilate`` negative.
    """
    if dilate < 0:
        raise ValueError(f"mask_outside: dilate by a number of pixels >= 0, got {dilate}")
    if not len(crops):
        return crops
    rgb, mask = crops[:, :3], crops[:, 3:4]  # the object's own mask (an others' mask channel after it stays as it is)
    m = F.max_pool2d(mask, 2 * dilate + 1, stride=1, padding=dilate) if dilate else mask
    out = 1.0 - m
    fill = (rgb * out).sum((-2, -1), keepdim=True) / out.sum((-2, -1), keepdim=True).clamp_min(1e-6)
    return torch.cat([rgb * m + fill * out, crops[:, 3:]], dim=1)


def _slots(counts: Sequence[int], device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(scene, object) index pairs of the real objects, in order."""
    scene = torch.cat([torch.full((c,), k, dtype=torch.long, device=device) for k, c in enumerate(counts)])
    obj = torch.cat([torch.arange(c, device=device) for c in counts])
    return scene, obj
