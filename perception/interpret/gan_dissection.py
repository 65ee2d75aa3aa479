"""GAN dissection: units of a generator's layer matched to object concepts, then switched off and on.

Bau, Zhu, Strobelt, Zhou, Tenenbaum, Freeman and Torralba, "GAN Dissection:
Visualizing and Understanding Generative Adversarial Networks", ICLR 2019
(arXiv 1811.10597; the demo paper arXiv 1901.09887).  Dissection: each unit
``u`` of an intermediate layer is up-sampled to the image and thresholded,
and its agreement with a concept ``c``'s segmentation of the generated images
is the IoU ``|{r_u > t_{u,c}} & s_c| / |{r_u > t_{u,c}} | s_c|`` over many
samples.  The concepts are CLEVR's shapes and the segmentation is a
*labeller*, images -> labels: either :class:`~perception.generative.segmenter.ShapeSegmenter`
(trained on renders with the renderer's exact masks) read per pixel, or
:class:`ObjectShapeLabeller`, which gives each object the segmenter finds (a
connected foreground component) the shape the attribute network calls for its
crop.  The benchmark uses the per-object one: on GAN samples the per-pixel
segmenter calls almost no object a cylinder (docs/results/perception.md, fifth look) while the
attribute network reads a quarter of them as cylinders, as in real renders.
:class:`LabelRule` (an option, off by default) cuts objects per shape label and
lets the segmenter vote, which matches the renders' truth better but did not
improve the checks on GAN samples (docs/results/perception.md, eighth look).
The paper picks each threshold by an information-quality ratio; here ``t_{u,c}`` is the activation quantile (among :data:`QUANTILES`)
that maximises the IoU itself, a simpler choice with the same purpose.
Intervention: *ablating* a set of units sets them to zero at every position;
*inserting* sets them to a high value (each unit's mean activation where it
exceeds its threshold, as the paper's "typical value when the concept is
present") in a patch of the layer, and the labeller counts what appeared.
The entry dissects :data:`RESIZE_CODEC`: the ``gan`` bench's generator (48 units at
``blocks[0]``) trained with resize + 3x3 convolution up-sampling instead of transposed
convolutions (it passed more of the checks held out than the transposed one: docs/results/perception.md, ninth look);
:data:`WIDE_CODEC` trains the same GAN with 256 units there (an option; it did
not meet the checks on its held-out seed, see docs/results/perception.md), :data:`SPECTRAL_CODEC`
the resize GAN with a spectrally normalised discriminator (an option: 5 of 6 on dev seed 0, 3 of 6
on its held-out seed 42440; tenth look), :data:`CONDITIONAL_CODEC` that GAN made class-conditional on the
scene's shapes (an option, twelfth look: the unconditional GANs' units are object units, and a generator
asked for given shapes must carry them), :data:`AUXILIARY_CODEC` the same with an auxiliary-classifier
discriminator (AC-GAN; an option, thirteenth look), :data:`FROZEN_CLASSIFIER_CODEC` the same GAN whose condition
loss is a frozen classifier pre-trained on the renders (an option, fourteenth look), :data:`ONE_OBJECT_CODEC`,
:data:`ONE_OBJECT_AUXILIARY_CODEC` and :data:`ONE_OBJECT_READER_CODEC` GANs of one-object renders conditioned on the
object's shape (options, sixteenth look; ``scenes="one_object"``), :data:`ONE_OBJECT_CELL_CODEC` and
:data:`ONE_OBJECT_CELL_MAPS_CODEC` the same with a fully convolutional discriminator that projects the
condition in every cell (options, seventeenth look; ``ONE_OBJECT_CELL_BATCH_*`` with batch norm in it),
:data:`ONE_OBJECT_CELL_AUX_CODEC` the batch-norm cell body as an auxiliary classifier learning on renders only, with
a whole-image logit beside the cells' (an option, eighteenth look), :func:`condition_match` how often a conditional
GAN's samples show the shapes their condition asks for, :func:`shape_probe` reads whether the units, together, tell
an object's shape (a per-object linear probe), and
:func:`judges_agreement` measures whether a generator's objects have shapes: how
often the segmenter and the attribute network call the same one.  Two reading options
(off by default): ``layer=PROJECTED`` dissects and edits the generator's projected
grid (H/8 x W/8, the resolution of the paper's ``layer4``) and ``ranking="causal"`` ablates and
inserts the 10 units whose ablation alone removes most cube pixels (:func:`causal_units`, the
paper's causal choice of intervention units) instead of the 10 of highest cube IoU; neither
met the checks on dev seed 63346 (docs/results/perception.md, nineteenth look).  ``ranking="causal-net"``
(off by default; twenty-first look) grows the 10 units greedily from those of largest cube effect, by cube pixels
removed net of the sphere pixel count's change on the selection samples (:func:`net_causal_units`);
its options ``harmless`` (candidates that move no other shape, :func:`harmless_units`) and ``causal_samples``
(off by default) did not meet the checks on dev 42440 (docs/results/perception.md, twenty-second look).
``ranking="iou-guarded"`` (off by default; twenty-seventh look) keeps the IoU ranking's order but passes over each
unit whose ablation, with the units kept before it, would change the sphere pixel count by more than ``sphere_guard``
on the first ``guard_samples`` dissection samples (:func:`guarded_iou_units`): the highest-IoU cube units are
object units, and ten of them together blank whole samples, spheres included.  It failed its dev rule on 42440, where
every cube unit alone moves the spheres.  ``ranking="iou-net"`` (off by default, same look) walks the same order and
keeps a unit when the kept set's cube pixels removed net of its sphere count change rises; it met the sphere check on
dev 63346 and 42440 and failed its rule on 33190, where the walk kept four units and the fill (the units passed over,
in IoU order) brought back the object units.

Shapes (N samples, layer of U units on an h x w grid, images H x W)::

    z            float [N, latent]
    activations  float [N, U, h, w]
    labels       int64 [N, H, W]  labeller output (0 background, 1 + SHAPES index)
    iou          float [U, C]     C concepts (SHAPES)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import BenchOutcome, Check, register_perception_bench
from perception.generative.autoencoder import CodecConfig, ConvDecoder
from perception.generative.scenes import SHAPE_CONDITIONS, SHAPES
from perception.generative.segmenter import ShapeSegmenter, object_masks, segment, segment_logits
from physics.config_types import check_field_types
from physics.errors import ConfigError

if TYPE_CHECKING:
    from perception.generative.gan import GanRun

__all__ = ["PROJECTED", "RANKINGS", "CAUSAL_SAMPLES", "DISSECTION_SAMPLES", "causal_units", "NET_POOL",
           "SPHERE_GUARD", "GUARD_SAMPLES", "guarded_selection", "guarded_iou_units",
           "greedy_net_selection", "net_causal_units", "unit_scan", "harmless_units", "ablation_images", "QUANTILES", "WIDE_CODEC", "RESIZE_CODEC", "SPECTRAL_CODEC", "MBSTD_CODEC", "BALANCE_CODEC", "CONDITIONAL_CODEC", "AUXILIARY_CODEC", "AUXILIARY_REAL_CODEC", "FROZEN_CLASSIFIER_CODEC", "AUGMENTED_CLASSIFIER_CODEC", "ONE_OBJECT_CODEC", "ONE_OBJECT_AUXILIARY_CODEC", "ONE_OBJECT_READER_CODEC", "ONE_OBJECT_CELL_CODEC", "ONE_OBJECT_CELL_MAPS_CODEC", "ONE_OBJECT_CELL_BATCH_CODEC", "ONE_OBJECT_CELL_BATCH_MAPS_CODEC", "ONE_OBJECT_CELL_AUX_CODEC", "condition_match", "shape_probe", "judges_agreement", "shape_shares", "sample_shape_shares", "balanced_snapshot", "balanced_gan_run", "SNAPSHOTS", "snapshot_steps", "CODECS", "codec_named", "GanDissectionOptions", "Dissection", "Labeller", "ObjectShapeLabeller", "LabelRule", "BENCH_RULE", "layer_activations", "labeller_iou_on_renders", "edited", "dissect",
           "ablate", "insert"]

Labeller = Callable[[Tensor], Tensor]  # images [N, 3, H, W] -> int64 labels [N, H, W]

QUANTILES = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)  # thresholds tried per unit and concept


def _labels(labeller: ShapeSegmenter | Labeller, images: Tensor) -> Tensor:
    """A segmenter's per-pixel labels, or any labeller's output: int64 [N, H, W]."""
    return segment(labeller, images) if isinstance(labeller, ShapeSegmenter) else labeller(images)


@dataclass(frozen=True)
class LabelRule:
    """How :class:`ObjectShapeLabeller` cuts objects and calls their shape.

    ``per_label``: objects are the connected components of each shape label of the segmenter
    separately, so that two touching objects the segmenter labels differently are two objects
    (with False, one foreground component, which merges touching objects into one shape).
    ``segmenter_vote``: an object's shape is the argmax of the attribute network's shape
    probabilities times the segmenter's shape probabilities (background left out) averaged over
    the object's pixels, instead of the attribute network's alone.
    """

    per_label: bool = False
    segmenter_vote: bool = False


def _components(pixel: Tensor, per_label: bool, min_pixels: int) -> Tensor:
    """One image's objects, bool [K, H, W]: foreground components, or each label's components."""
    if not per_label:
        return object_masks(pixel, min_pixels)
    parts = [object_masks(torch.where(pixel == c + 1, pixel, 0), min_pixels) for c in range(len(SHAPES))]
    return torch.cat(parts)


@dataclass(frozen=True)
class ObjectShapeLabeller:
    """Per-object shape labels: each object the segmenter finds takes the attribute network's shape call.

    An object is a connected foreground component of the segmenter's labels
    (:func:`~perception.generative.segmenter.object_masks`; components under
    ``min_pixels`` are background), or with ``rule.per_label`` a connected
    component of one shape label; it is cropped with its mask as the
    derenderer's attribute network sees it, and all its pixels get
    ``1 + argmax`` of the network's ``"shape"`` logits (with
    ``rule.segmenter_vote``, of its probabilities times the segmenter's mean
    shape probabilities over the object).  ``__call__(images [N, 3, H, W]) ->
    labels int64 [N, H, W]``.
    """

    segmenter: ShapeSegmenter
    attribute_net: nn.Module
    crop_size: int
    min_pixels: int = 6
    rule: LabelRule = LabelRule()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        from perception.derender.attributes import AttributeConfig, crop_objects

        crop = AttributeConfig(crop_size=self.crop_size, min_side=8.0)
        logits = segment_logits(self.segmenter, images)
        pixel = logits.argmax(1)
        out = torch.zeros_like(pixel)
        found: list[tuple[int, Tensor]] = []
        crops, boxes = [], []
        for i, (image, lab) in enumerate(zip(images, pixel, strict=True)):
            masks = _components(lab, self.rule.per_label, self.min_pixels)
            if len(masks):
                c, b = crop_objects(image, masks, crop)
                crops.append(c)
                boxes.append(b)
                found.extend((i, m) for m in masks)
        if not found:
            return out
        self.attribute_net.eval()
        crops_t, boxes_t = torch.cat(crops), torch.cat(boxes)
        probs = torch.cat([self.attribute_net(c, b)[0]["shape"].softmax(-1)
                           for c, b in zip(crops_t.split(512), boxes_t.split(512), strict=True)])
        shape_probs = logits[:, 1:].softmax(1) if self.rule.segmenter_vote else None  # [N, C, H, W]
        for (i, mask), p in zip(found, probs, strict=True):
            if shape_probs is not None:
                p = p * shape_probs[i][:, mask].mean(1)
            out[i][mask] = int(p.argmax()) + 1
        return out


PROJECTED = -1  # layer index of the generator's projected grid (H/8 x W/8, before any up-sampling; an option)
RANKINGS = ("iou", "causal", "causal-net", "iou-guarded", "iou-net")  # how the intervention's cube units are chosen (dissection_outcome's ranking)


def _layer(generator: ConvDecoder, layer: int) -> nn.Module:
    if layer == PROJECTED:
        return generator.project
    if not 0 <= layer < len(generator.blocks):
        raise ConfigError(f"layer must be {PROJECTED} (the projected grid) or an up-sampling block "
                          f"0..{len(generator.blocks) - 1}, got {layer}")
    return generator.blocks[layer]


@torch.no_grad()
def layer_activations(generator: ConvDecoder, z: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """(activations [N, U, h, w] of ``generator.blocks[layer]``, images [N, 3, H, W])."""
    seen: list[Tensor] = []
    handle = _layer(generator, layer).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        generator.eval()
        images = generator(z)
    finally:
        handle.remove()
    return seen[0], images


@contextmanager
def edited(generator: ConvDecoder, layer: int, edit: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, ``generator.blocks[layer]``'s output is replaced by ``edit(output)``."""
    handle = _layer(generator, layer).register_forward_hook(lambda _m, _i, out: edit(out))
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class Dissection:
    """IoU of every unit with every concept, the thresholds that gave it, and each unit's typical high value."""

    iou: Tensor  # [U, C]
    threshold: Tensor  # [U, C]
    high: Tensor  # [U, C]: mean activation above the threshold

    def best_units(self, concept: int, k: int) -> Tensor:
        """The ``k`` units with the highest IoU for ``concept``: int64 [k] (the paper's ranking)."""
        return self.iou[:, concept].argsort(descending=True)[:k]

    def specific_units(self, concept: int, k: int) -> Tensor:
        """The ``k`` units whose IoU for ``concept`` most exceeds their best IoU for another concept: int64 [k]."""
        others = torch.cat([self.iou[:, :concept], self.iou[:, concept + 1:]], 1)
        margin = self.iou[:, concept] - (others.max(1).values if others.shape[1] else 0.0)
        return margin.argsort(descending=True)[:k]


@torch.no_grad()
def dissect(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, layer: int,
            quantiles: Sequence[float] = QUANTILES) -> Dissection:
    """Match every unit of ``generator.blocks[layer]`` to every shape concept on samples from ``z``.

    ``labeller`` gives the concepts' masks: a :class:`ShapeSegmenter` (per pixel) or any
    images -> labels callable such as :class:`ObjectShapeLabeller`.
    """
    acts, images = layer_activations(generator, z, layer)
    labels = _labels(labeller, images).flatten()  # [N*H*W], 0 background, 1 + concept
    units, concepts = acts.shape[1], len(SHAPES)
    q = torch.tensor(quantiles)
    if bool((q[1:] < q[:-1]).any()):
        raise ConfigError(f"dissect: quantiles must be ascending, got {tuple(quantiles)}")
    pick = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))[:200_000]
    area = torch.bincount(labels, minlength=1 + concepts)[1:].float()  # |s_c|
    iou = torch.zeros(units, concepts)
    threshold = torch.zeros(units, concepts)
    high = torch.zeros(units, concepts)
    bins = len(quantiles) + 1

    def unit_map(u: int) -> Tensor:  # one unit up-sampled at a time: [N*H*W] instead of the whole layer
        return F.interpolate(acts[:, u:u + 1], size=images.shape[-2:], mode="bilinear", align_corners=False).flatten()

    all_cuts = torch.quantile(torch.stack([unit_map(u)[pick] for u in range(units)]), q, dim=1).T  # [U, Q]
    for u in range(units):
        flat, cuts = unit_map(u), all_cuts[u]  # cuts ascending
        level = torch.bucketize(flat, cuts)  # number of cuts below each pixel: flat > cuts[j] <=> level > j
        joint = torch.bincount(level * (1 + concepts) + labels, minlength=bins * (1 + concepts))
        joint = joint.view(bins, 1 + concepts).float()
        mass = torch.bincount(level, weights=flat, minlength=bins).float()  # activation summed per level
        above = joint.flip(0).cumsum(0).flip(0)[1:]  # [Q, 1 + C]: pixels over cut j, by label
        on = above.sum(1, keepdim=True)  # [Q, 1]
        inter = above[:, 1:]  # [Q, C]
        scores = inter / (on + area[None, :] - inter).clamp(min=1)
        best = scores.argmax(0)  # [C], the first of equal scores
        iou[u] = scores.gather(0, best[None, :])[0]
        threshold[u] = cuts[best]
        above_mass = mass.flip(0).cumsum(0).flip(0)[1:]  # [Q]
        high[u] = torch.where(on[best, 0] > 0, above_mass[best] / on[best, 0].clamp(min=1), flat.max())
    return Dissection(iou, threshold, high)


@torch.no_grad()
def shape_probe(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, layer: int,
                min_pixels: int = 6, chunk: int = 50) -> dict[str, float | int | list[int]]:
    """Do the layer's units, taken together, tell an object's shape?  A per-object linear probe.

    Each object of the samples from ``z`` (a connected component of ``labeller``'s
    foreground, its shape the label it carries; components under ``min_pixels`` are left out)
    is described by every unit's up-sampled activation averaged over its pixels, [U]; a linear
    map with a bias is fitted by least squares to the one-hot shapes of the first half of the
    objects (in sample order) and read (argmax) on the second half.  Returns the probe's
    accuracy there, the majority shape's rate there (what a probe without shape reaches), and
    the objects counted.  A layer of object units reads at the majority rate; shape-carrying units
    well above it (docs/results/perception.md, eleventh look).
    """
    feats, shapes = [], []
    for part in z.split(chunk):
        acts, images = layer_activations(generator, part, layer)
        labels = _labels(labeller, images)
        up = F.interpolate(acts, size=images.shape[-2:], mode="bilinear", align_corners=False)  # [n, U, H, W]
        for a, lab in zip(up, labels, strict=True):
            for mask in object_masks(lab, min_pixels):
                feats.append(a[:, mask].mean(1))
                shapes.append(int(lab[mask].max()) - 1)
    n = len(shapes)
    if n < 4:
        raise ConfigError(f"shape_probe: {n} objects in {len(z)} samples; at least 4 are needed to fit and read a probe")
    x = torch.cat([torch.stack(feats), torch.ones(n, 1)], 1).double()
    y = torch.tensor(shapes)
    half = n // 2
    w = torch.linalg.lstsq(x[:half], F.one_hot(y[:half], len(SHAPES)).double()).solution
    test = y[half:]
    return {"accuracy": float(((x[half:] @ w).argmax(1) == test).float().mean()),
            "majority": float(torch.bincount(test, minlength=len(SHAPES)).max()) / len(test),
            "objects": n, "objects_per_shape": torch.bincount(y, minlength=len(SHAPES)).tolist()}


@torch.no_grad()
def condition_match(labeller: ShapeSegmenter | Labeller, images: Tensor, conditions: Tensor,
                    min_pixels: int = 6) -> dict[str, float | list[float]]:
    """How often images show the shapes their :func:`~perception.generative.scenes.shape_conditions` code asks for.

    ``images`` [N, 3, H, W], ``conditions`` [N, len(SHAPES) * (max_objects + 1)] (one one-hot count
    block per shape), or [N, len(SHAPES)], one-object scenes' :func:`~perception.generative.scenes.shape_classes`
    (one object of the one-hot's shape is asked, none of the others).  Each image's objects (``labeller``'s foreground components of at least
    ``min_pixels``, each with the shape it is labelled) are counted per shape.  Returns
    ``present_set_equal`` (the set of shapes present equals the condition's: the gate of a
    class-conditional GAN), ``counts_equal`` (every shape's count equals it), and
    ``per_shape_present`` (per shape, how often present-or-absent agrees).  Read it on real renders
    with their own codes for the labeller's ceiling.
    """
    shapes = len(SHAPES)
    if conditions.dim() != 2 or len(conditions) != len(images) or conditions.shape[1] % shapes:
        raise ConfigError(f"condition_match: conditions must be [N={len(images)}, {shapes} x (max_objects + 1)] "
                          f"or [N, {shapes}] (one-object shape classes), got {tuple(conditions.shape)}")
    if conditions.shape[1] == shapes:  # shape_classes: one object, of the one-hot's shape
        asked = F.one_hot(conditions.argmax(1), shapes)
    else:
        asked = conditions.view(len(conditions), shapes, -1).argmax(2)  # [N, C] counts
    got = torch.zeros_like(asked)
    for i, lab in enumerate(_labels(labeller, images)):
        for mask in object_masks(lab, min_pixels):
            got[i, int(lab[mask].max()) - 1] += 1
    present = (asked > 0) == (got > 0)
    return {"present_set_equal": float(present.all(1).float().mean()),
            "counts_equal": float((asked == got).all(1).float().mean()),
            "per_shape_present": present.float().mean(0).tolist()}


@torch.no_grad()
def causal_units(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, layer: int, concept: int,
                 k: int, cache: bool = False) -> tuple[Tensor, Tensor]:
    """The ``k`` units whose ablation alone removes most of ``concept``'s pixels: (int64 [k], effect float [U]).

    Each unit of the layer is set to zero everywhere, alone, on the samples from ``z``, and its
    effect is the fraction of the concept's labelled pixels that go (the paper's average causal
    effect of ablating it, ``E[s_c(x)] - E[s_c(x_ablated)]``, over the concept's pixels; negative
    when pixels appear).  The paper chooses the units it ablates and inserts by causal effect
    (a continuous per-unit ablation optimised by gradient, section 3.2); the class masks here are
    not differentiable, so each unit's own effect ranks them, its first-order form.  Ties go to
    the lower unit index.  ``cache`` (an option, off): each ablation runs from the layer's
    output computed once (:func:`ablation_images`; the same images, bit for bit).
    """
    generator.eval()
    base = int((_labels(labeller, generator(z)) == concept + 1).sum())
    units = layer_activations(generator, z[:1], layer)[0].shape[1]
    effect = torch.zeros(units)
    ablated = ablation_images(generator, z, layer, cache)
    for u in range(units):
        after = int((_labels(labeller, ablated([u])) == concept + 1).sum())
        effect[u] = (base - after) / base if base else 0.0
    return effect.argsort(descending=True, stable=True)[:k], effect


NET_POOL = 16  # ranking="causal-net": the candidates, the units of largest single causal effect on cubes


@torch.no_grad()
def unit_scan(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, layer: int, cache: bool = False,
              counts_out: dict[frozenset[int], tuple[int, ...]] | None = None) -> tuple[Tensor, Tensor]:
    """Every unit of the layer ablated alone on the samples from ``z``: its effect on each concept's pixels.

    Returns (removed, changed), each float [U, C] (C concepts, :data:`SHAPES`): ``removed[u, c]`` is the
    fraction of concept ``c``'s labelled pixel count that goes when unit ``u`` is set to zero (negative
    when pixels appear; :func:`causal_units`' effect, for every concept); ``changed[u, c]`` counts pixel
    by pixel, so losses and gains cannot offset: the pixels that stop or start being ``c``, over the
    count of ``c``'s pixels (0 for a concept with no pixels).  One ablation per unit.  ``cache``: as
    :func:`causal_units`'; ``counts_out``, when given, receives each unit's pixel count per concept after its
    ablation (key ``frozenset({u})``), so that a caller can reuse them (:func:`net_causal_units`).
    """
    generator.eval()
    base = _labels(labeller, generator(z))
    concepts = range(1, 1 + len(SHAPES))
    n = [int((base == c).sum()) for c in concepts]
    units = layer_activations(generator, z[:1], layer)[0].shape[1]
    removed, changed = torch.zeros(units, len(SHAPES)), torch.zeros(units, len(SHAPES))
    ablated = ablation_images(generator, z, layer, cache)
    for u in range(units):
        after = _labels(labeller, ablated([u]))
        if counts_out is not None:
            counts_out[frozenset([u])] = tuple(int((after == c).sum()) for c in concepts)
        for i, c in enumerate(concepts):
            if n[i]:
                removed[u, i] = (n[i] - int((after == c).sum())) / n[i]
                changed[u, i] = int(((base == c) != (after == c)).sum()) / n[i]
    return removed, changed


def harmless_units(changed: Tensor, concept: int, k: int, exclude: Sequence[int] = ()) -> list[int]:
    """The ``k`` units, outside ``exclude``, of smallest single effect on every concept but ``concept``.

    ``changed`` is :func:`unit_scan`'s pixel-by-pixel change [U, C]; a unit's harm is its largest
    change over the other concepts.  Ties go to the lower unit index.
    """
    others = [c for c in range(changed.shape[1]) if c != concept]
    harm = changed[:, others].max(1).values
    order = [int(u) for u in harm.argsort(stable=True) if int(u) not in set(exclude)]
    return order[:k]


def greedy_net_selection(effect_of: Callable[[list[int]], tuple[float, float]], pool: Sequence[int],
                         k: int) -> tuple[list[int], list[tuple[float, float]]]:
    """Grow a set of ``k`` units from ``pool`` that removes most of one concept net of another's change.

    ``effect_of(units)`` gives (the fraction of the concept's pixels removed, the other concept's
    relative pixel-count change, signed) when ``units`` are ablated together.  Each step adds the
    unit of ``pool`` whose set scores highest by ``removed - |change|`` (the two figures of the
    check, unweighted).  Ties go to the lower unit index.  Returns (the units in the order chosen,
    each step's (removed, change) of the set so far).
    """
    if not 0 < k <= len(pool):
        raise ConfigError(f"greedy_net_selection: k must be in 1..{len(pool)} (the pool's size), got {k}")
    chosen: list[int] = []
    trace: list[tuple[float, float]] = []
    for _ in range(k):
        tried = {u: effect_of(chosen + [u]) for u in sorted(pool) if u not in chosen}
        pick = max(tried, key=lambda u: (tried[u][0] - abs(tried[u][1]), -u))
        chosen.append(pick)
        trace.append(tried[pick])
    return chosen, trace


@torch.no_grad()
def net_causal_units(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, layer: int, concept: int,
                     other: int, k: int, pool: int = NET_POOL, harmless: int = 0,
                     candidates_out: list[int] | None = None, cache: bool = False) -> tuple[Tensor, list[tuple[float, float]]]:
    """``k`` units whose joint ablation removes most of ``concept`` net of the change of ``other``'s pixel count.

    The paper's causal choice of intervention units (section 3.2 optimises an ablation to change the
    class's segmentation) made net of a second class: the candidates are the ``pool`` units of largest
    single effect on ``concept`` (:func:`causal_units`), and :func:`greedy_net_selection` grows the set
    one unit at a time, each set ablated together on the samples from ``z``, so units that only cancel
    each other's effect on ``other`` count as they do in the ablation.  The measure of ``other`` is its
    pixel count (the paper's average causal effect), so sphere pixels lost in one place and gained in
    another offset each other.  ``harmless`` (an option; 0 off): that many more candidates,
    the units of smallest single effect on every concept but ``concept`` (:func:`unit_scan`,
    :func:`harmless_units`), so that a set of ``k`` can be filled without units that move ``other``
    once ``concept`` is gone.  ``candidates_out``, when given, receives the candidates (the cube pool,
    then the harmless ones).  ``cache`` (an option; the same units and trace, less CPU): each
    ablation runs from the layer's output computed once (:func:`ablation_images`), and with ``harmless``
    the first step's one-unit sets take their counts from the unit scan instead of ablating again.
    Returns (int64 [k] in the order chosen, each step's (removed, change)).
    """
    if harmless < 0:
        raise ConfigError(f"net_causal_units: harmless must be >= 0, got {harmless}")
    generator.eval()
    base = _labels(labeller, generator(z))
    n_concept, n_other = int((base == concept + 1).sum()), int((base == other + 1).sum())
    ablated = ablation_images(generator, z, layer, cache)
    counts: dict[frozenset[int], tuple[int, ...]] = {}  # with cache: pixel count per concept after each scanned ablation

    def effect_of(units: list[int]) -> tuple[float, float]:
        known = counts.get(frozenset(units))  # ablating a set is the same whatever its order
        if known is None:
            after = _labels(labeller, ablated(units))
            n_after_concept, n_after_other = int((after == concept + 1).sum()), int((after == other + 1).sum())
        else:
            n_after_concept, n_after_other = known[concept], known[other]
        removed = (n_concept - n_after_concept) / n_concept if n_concept else 0.0
        change = (n_after_other - n_other) / n_other if n_other else 0.0
        return removed, change

    if harmless:
        removed, changed = unit_scan(generator, labeller, z, layer, cache, counts if cache else None)
        single = removed[:, concept]
    else:  # without the cache: each single effect from causal_units
        _, single = causal_units(generator, labeller, z, layer, concept, 1, cache)
    candidates = single.argsort(descending=True, stable=True)[:pool].tolist()
    if harmless:
        candidates += harmless_units(changed, concept, harmless, exclude=candidates)
    if candidates_out is not None:
        candidates_out.extend(candidates)
    chosen, trace = greedy_net_selection(effect_of, candidates, k)
    return torch.tensor(chosen, dtype=torch.int64), trace


def guarded_selection(effect_of: Callable[[list[int]], tuple[float, float]], order: Sequence[int], k: int,
                      guard: float, net: bool = False) -> tuple[list[int], list[tuple[int, bool, float, float]], int]:
    """Keep ``k`` units of ``order``, in order, each only if the set kept so far with it moves another concept by at most ``guard``.

    ``effect_of(units)`` gives (the fraction of the concept's pixels removed, the other concept's
    relative pixel-count change, signed) when ``units`` are ablated together.  The walk goes down
    ``order`` once (for :func:`guarded_iou_units`, the units by IoU with the concept, the paper's
    ranking) and keeps a unit when ``|change| <= guard`` for the kept set with it added; it stops
    at ``k`` kept.  With ``net`` (``guard`` unused) a unit is kept instead when the kept set with it
    scores higher by ``removed - |change|`` than the kept set without it (the first unit tried is
    always kept).  If the order runs out first, the units it passed over fill the set in order
    (the plain ranking's next ones), and how many did is returned.  Returns (the units, in the
    order kept, then any filled; each unit tried as (unit, kept, removed, change); how many filled).
    """
    if not 0 < k <= len(order):
        raise ConfigError(f"guarded_selection: k must be in 1..{len(order)} (the order's length), got {k}")
    if len(set(order)) != len(order):
        raise ConfigError(f"guarded_selection: the order names a unit twice: {list(order)}")
    if not guard >= 0.0 or guard == float("inf"):  # NaN fails the first test
        raise ConfigError(f"guarded_selection: guard must be a finite number >= 0, got {guard!r}")
    kept: list[int] = []
    tried: list[tuple[int, bool, float, float]] = []
    best = float("-inf")  # net: the kept set's removed - |change|
    for u in order:
        if len(kept) == k:
            break
        removed, change = effect_of(kept + [u])
        keep = removed - abs(change) > best if net else abs(change) <= guard
        if net and keep:
            best = removed - abs(change)
        tried.append((int(u), keep, removed, change))
        if keep:
            kept.append(u)
    passed = [u for u in order if u not in kept]
    filled = k - len(kept)
    return kept + passed[:filled], tried, filled


@torch.no_grad()
def guarded_iou_units(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, layer: int,
                      concept: int, other: int, order: Sequence[int], k: int,
                      guard: float, net: bool = False) -> tuple[Tensor, list[tuple[int, bool, float, float]], int]:
    """``k`` units of ``order`` (by IoU with ``concept``) whose joint ablation keeps ``other``'s pixel count within ``guard``.

    The units are ablated together on the samples from ``z`` (:func:`ablation_images` from the layer's
    output computed once), labelled, and counted: ``concept``'s pixels removed and ``other``'s relative
    pixel-count change (the check's two figures); :func:`guarded_selection` walks ``order``.  So the set
    is the highest-IoU units but for those that, with the units already kept, would move ``other``: object
    units whose ablation with the others blanks whole samples are passed over.  One ablation per unit
    tried (at most the layer's units).  ``net``: :func:`guarded_selection`'s other rule (keep a unit when cube
    pixels removed net of the sphere count's change rises).  Returns (int64 [k] in the order kept, each unit tried,
    how many filled).
    """
    generator.eval()
    base = _labels(labeller, generator(z))
    n_concept, n_other = int((base == concept + 1).sum()), int((base == other + 1).sum())
    ablated = ablation_images(generator, z, layer, cache=type(generator) is ConvDecoder)

    def effect_of(units: list[int]) -> tuple[float, float]:
        after = _labels(labeller, ablated(units))
        removed = (n_concept - int((after == concept + 1).sum())) / n_concept if n_concept else 0.0
        change = (int((after == other + 1).sum()) - n_other) / n_other if n_other else 0.0
        return removed, change

    chosen, tried, filled = guarded_selection(effect_of, [int(u) for u in order], k, guard, net)
    return torch.tensor(chosen, dtype=torch.int64), tried, filled


@torch.no_grad()
def ablate(generator: ConvDecoder, z: Tensor, layer: int, units: Tensor) -> Tensor:
    """Images [N, 3, H, W] generated with ``units`` of the layer set to zero everywhere."""

    def edit(out: Tensor) -> Tensor:
        out = out.clone()
        out[:, units] = 0.0
        return out

    generator.eval()
    with edited(generator, layer, edit):
        return generator(z)


@torch.no_grad()
def ablation_images(generator: ConvDecoder, z: Tensor, layer: int, cache: bool = False) -> Callable[[list[int]], Tensor]:
    """``ablated(units) -> images [N, 3, H, W]``: :func:`ablate` of the samples from ``z``, one call per set of units.

    With ``cache`` (an option, off by default) the layer's output is computed once and each call runs only
    the rest of the decoder from it (:meth:`ConvDecoder.decode_from`, which ``forward`` runs too), with the
    units set to zero: the same operations on the same tensor as :func:`ablate`'s hook, so the same
    images bit for bit, without the layers before the edit (a quarter of the generator's CPU at the entry's
    ``blocks[0]``, 300 samples: 0.61 against 0.83 s).  Only a :class:`ConvDecoder` itself is cut this way (a subclass may change its forward).
    """
    if not cache:
        return lambda units: ablate(generator, z, layer, torch.tensor(units))
    if type(generator) is not ConvDecoder:
        raise ConfigError(f"ablation_images: cache needs a ConvDecoder (its forward is cut after the layer), "
                          f"got {type(generator).__name__}")
    acts = layer_activations(generator, z, layer)[0]

    @torch.no_grad()
    def ablated(units: list[int]) -> Tensor:
        x = acts.clone()
        x[:, torch.tensor(units)] = 0.0
        return generator.decode_from(x, layer + 1)  # PROJECTED (-1): every block

    return ablated


@torch.no_grad()
def insert(generator: ConvDecoder, z: Tensor, layer: int, units: Tensor, value: Tensor,
           box: tuple[int, int, int, int]) -> Tensor:
    """Images with ``units`` set to ``value`` [len(units)] inside ``box`` = (y0, y1, x0, x1) of the layer's grid."""
    y0, y1, x0, x1 = box

    def edit(out: Tensor) -> Tensor:
        out = out.clone()
        out[:, units, y0:y1, x0:x1] = value[None, :, None, None]
        return out

    generator.eval()
    with edited(generator, layer, edit):
        return generator(z)


# ---------------------------------------------------------------------- benchmark
# An option, off by default: the ``gan`` bench's DCGAN (same discriminator, data, steps and seed) with a
# generator whose middle layer has 256 units, as the paper's layers have 512 (10 units are 4% of it; the
# paper ablates 20 of 512; the ``gan`` bench's own 48-unit layer makes them 21%).  Measured once on the
# held-out seed 14203: it did not meet the checks (docs/results/perception.md, seventh look).
WIDE_CODEC = CodecConfig(channels=24, decoder_widths=(96, 256, 24))
RESIZE_CODEC = CodecConfig(channels=24, upsample="nearest")  # the gan bench's GAN, resize + 3x3 up-sampling (option)
# RESIZE_CODEC's GAN with a spectrally normalised discriminator (Miyato et al., arXiv 1802.05957; no batch
# norm in it): an option, not the default, since held out it met no more checks than the entry
# (docs/results/perception.md, tenth look).
SPECTRAL_CODEC = CodecConfig(channels=24, upsample="nearest", encoder_norm="spectral")
# RESIZE_CODEC's GAN whose discriminator also reads the batch's spread (ProGAN's minibatch standard deviation,
# arXiv 1710.10196; CodecConfig.minibatch_std): an option against the entry's GAN drawing its shapes in other
# shares than its renders (docs/results/perception.md, twenty-fourth look).
MBSTD_CODEC = replace(RESIZE_CODEC, minibatch_std=True)
# The entry's GAN with a shape-balance term (an option; twenty-fifth look): a frozen shape-presence reader of the
# renders pulls the fakes' mean shape presence to the renders' (CodecConfig.shape_balance, weight 1;
# perception.generative.condition_classifier)
BALANCE_CODEC = replace(RESIZE_CODEC, shape_balance=1.0)
# An option (twelfth look): SPECTRAL_CODEC's GAN made class-conditional on the scene's shapes (each shape's object
# count, one-hot: perception.generative.scenes.shape_conditions), with a projection discriminator (Miyato and
# Koyama, arXiv 1802.05637), so that the generator must draw the shapes it is asked for and its units may carry
# shape (the unconditional GANs' units are object units: eleventh look).  Samples draw their condition from the
# training scenes'.  BigGAN-style class conditioning is what the GAN Dissection follow-ups dissect.
CONDITIONAL_CODEC = CodecConfig(channels=24, upsample="nearest", encoder_norm="spectral", conditions=SHAPE_CONDITIONS)
# An option (thirteenth look): the same conditional GAN with an auxiliary-classifier discriminator (AC-GAN, Odena et
# al., arXiv 1610.09585) instead of the projection one: the projection discriminator barely read the
# condition (twelfth look), and an auxiliary classifier puts the condition in both
# players' losses.  One block per shape (its count), so the classifier predicts each shape's count.
AUXILIARY_CODEC = CodecConfig(channels=24, upsample="nearest", encoder_norm="spectral", conditions=SHAPE_CONDITIONS,
                              condition_head="auxiliary", condition_blocks=len(SHAPES))
# The same with the classifier learning on renders only (AUXILIARY_CODEC's classifier read its fakes' conditions
# and the renders' counts at chance, so the generator drew a code, not shapes; thirteenth look).
AUXILIARY_REAL_CODEC = CodecConfig(channels=24, upsample="nearest", encoder_norm="spectral", conditions=SHAPE_CONDITIONS,
                                   condition_head="auxiliary_real", condition_blocks=len(SHAPES))
# An option (fourteenth look): the same conditional GAN whose condition loss is a frozen reader of the shapes present,
# trained first on the run's renders and their shape maps (perception.generative.condition_classifier): neither
# AC-GAN head read the renders' counts above the majority rate in 2,000 steps, so neither could teach the
# generator shapes.  The discriminator is unconditional (one logit).
FROZEN_CLASSIFIER_CODEC = CodecConfig(channels=24, upsample="nearest", encoder_norm="spectral",
                                      conditions=SHAPE_CONDITIONS, condition_head="classifier",
                                      condition_blocks=len(SHAPES))
# The same, its reader trained with and reading the fakes through differentiable augmentations (an option,
# fifteenth look): the generator fooled the plain reader (its samples' shapes read right by it, not by the judges).
AUGMENTED_CLASSIFIER_CODEC = replace(FROZEN_CLASSIFIER_CODEC, classifier_augment=True)
# Options (sixteenth look) for one-object renders (``scenes="one_object"``): the condition is the object's shape,
# three classes (perception.generative.scenes.shape_classes), the easiest condition a class-conditional GAN can be
# given here; the scene-count conditions above were matched by few samples (twelfth to fifteenth looks).
# The projection discriminator of CONDITIONAL_CODEC, and an auxiliary classifier (AC-GAN) of the three classes.
ONE_OBJECT_CODEC = replace(CONDITIONAL_CODEC, conditions=len(SHAPES))
ONE_OBJECT_AUXILIARY_CODEC = replace(ONE_OBJECT_CODEC, condition_head="auxiliary")
# The frozen shape reader as the condition loss on one-object renders (an option): the discriminators
# above read one-object shapes near chance, the reader most of them; its GAN's samples did not meet gate A either
# (docs/results/perception.md, sixteenth look).
ONE_OBJECT_READER_CODEC = replace(FROZEN_CLASSIFIER_CODEC, conditions=len(SHAPES), condition_blocks=len(SHAPES))
# Options (seventeenth look): ONE_OBJECT_CODEC with a discriminator built like the shape reader (fully convolutional,
# one logit per cell of the 12 x 16 grid, the condition projected in every cell;
# perception.generative.cell_discriminator), since the DCGAN discriminator's body read one-object shapes as a plain
# classifier far worse than the reader; and the same discriminator also learning the real renders' shape maps (the
# reader's supervision).
ONE_OBJECT_CELL_CODEC = replace(ONE_OBJECT_CODEC, discriminator="cells")
ONE_OBJECT_CELL_MAPS_CODEC = replace(ONE_OBJECT_CELL_CODEC, discriminator_maps=True)
# The two with batch norm in the discriminator instead of spectral norm: as a plain classifier of one-object shapes
# (its cells' mean) the batch-norm body reads the renders about as well as the reader, the spectral one about half as
# well (seventeenth look).
ONE_OBJECT_CELL_BATCH_CODEC = replace(ONE_OBJECT_CELL_CODEC, encoder_norm="batch")
ONE_OBJECT_CELL_BATCH_MAPS_CODEC = replace(ONE_OBJECT_CELL_MAPS_CODEC, encoder_norm="batch")
# An option (eighteenth look): the batch-norm cell body as an auxiliary classifier of the shape that learns on renders
# only (the class logits the cells' mean; the generator's loss adds its cross-entropy on the fakes), so that the
# condition has a teacher that reads the body directly and cannot be taught the fakes' own code (the per-cell
# projection's only teacher was real-against-fake, and it read the test renders' class at chance inside the game,
# while the same body as a plain classifier read it well); plus a whole-image real-or-fake logit beside the cells', so
# that the object count is judged (the cells alone let the generator draw several objects per one-object sample).
ONE_OBJECT_CELL_AUX_CODEC = replace(ONE_OBJECT_CELL_BATCH_CODEC, condition_head="auxiliary_real", discriminator_image=True)
BENCH_RULE = LabelRule()  # the entry's class masks: one shape per foreground component (sixth and seventh looks)
LAYER = 0  # blocks[0]: the middle of the generator's three up-sampling stages, on an H/4 x W/4 grid
UNITS = 10  # the "10 best cube units"
CAUSAL_SAMPLES = 150  # of the dissection samples, on which ranking="causal" ablates each unit alone
# ranking="iou-guarded": the largest |sphere pixel-count change| a kept set may make on the guard samples, below the
# check's 0.10 so that a set kept at the limit on these samples has room on the edit samples (twenty-seventh look)
SPHERE_GUARD = 0.08
GUARD_SAMPLES = 300  # ranking="iou-guarded" or "iou-net": of the dissection samples, the first ones the walk is measured on
DISSECTION_SAMPLES = 600  # samples dissected (z from seed + 21); the 300 edit samples (seed + 22) are apart
SNAPSHOTS = 5  # generator snapshots balanced_gan_run compares: steps 1,000, 1,250, ..., 2,000 of the full run
_INSERT_MIN = 12  # image pixels of new cube inside the patch that count as an inserted object


@torch.no_grad()
def _intervention_figures(generator: ConvDecoder, labeller: ShapeSegmenter | Labeller, z: Tensor, units: Tensor,
                          value: Tensor, cube: int, sphere: int, patches: Sequence[tuple[int, int]],
                          patch: int, scale: int, layer: int = LAYER) -> dict[str, float]:
    """Cube/sphere pixels before and after ablating ``units``; how often inserting them adds a cube.

    ``sphere_change`` is the relative change of the sphere pixel count (the check's figure);
    ``sphere_pixels_lost`` counts pixel by pixel: the fraction of the originals' sphere pixels that are
    not sphere in the ablated images (never below the count's loss, since gains elsewhere cannot offset it).
    """
    base = generator(z)
    base_labels = _labels(labeller, base)
    after_labels = _labels(labeller, ablate(generator, z, layer, units))
    before = {"cube": (base_labels == cube + 1).sum((1, 2)), "sphere": (base_labels == sphere + 1).sum((1, 2))}
    after = {"cube": (after_labels == cube + 1).sum((1, 2)), "sphere": (after_labels == sphere + 1).sum((1, 2))}
    cubes, spheres = float(before["cube"].sum()), float(before["sphere"].sum())
    nan = float("nan")  # no cube (sphere) pixels to begin with: nothing was removed (kept), the check cannot pass
    removed = 1.0 - float(after["cube"].sum()) / cubes if cubes else nan
    sphere_change = abs(float(after["sphere"].sum()) - spheres) / spheres if spheres else nan
    was_sphere = base_labels == sphere + 1
    sphere_lost = float((was_sphere & (after_labels != sphere + 1)).sum()) / spheres if spheres else nan
    inserted, tried = 0, 0
    for (gy, gx) in patches:
        images = insert(generator, z, layer, units, value, (gy, gy + patch, gx, gx + patch))
        labels = _labels(labeller, images)
        ys, xs = slice(gy * scale, (gy + patch) * scale), slice(gx * scale, (gx + patch) * scale)
        new = ((labels[:, ys, xs] == cube + 1) & (base_labels[:, ys, xs] != cube + 1)).sum((1, 2))
        inserted += int((new >= _INSERT_MIN).sum())
        tried += len(z)
    return {"cube_removed": removed, "sphere_change": sphere_change, "sphere_pixels_lost": sphere_lost, "inserted": inserted, "tried": tried,
            "inserted_fraction": inserted / max(tried, 1),
            "cube_pixels_before": int(before["cube"].sum()), "cube_pixels_after": int(after["cube"].sum()),
            "sphere_pixels_before": int(before["sphere"].sum()), "sphere_pixels_after": int(after["sphere"].sum())}


CODECS = {  # the codecs the CLI names (``--set codec=NAME``): the entry's and every option above
    "resize": RESIZE_CODEC, "transposed": None, "wide": WIDE_CODEC, "spectral": SPECTRAL_CODEC, "resize-mbstd": MBSTD_CODEC,
    "resize-balance": BALANCE_CODEC,
    "conditional": CONDITIONAL_CODEC, "auxiliary": AUXILIARY_CODEC, "auxiliary-real": AUXILIARY_REAL_CODEC,
    "frozen-classifier": FROZEN_CLASSIFIER_CODEC, "augmented-classifier": AUGMENTED_CLASSIFIER_CODEC,
    "one-object": ONE_OBJECT_CODEC, "one-object-auxiliary": ONE_OBJECT_AUXILIARY_CODEC,
    "one-object-reader": ONE_OBJECT_READER_CODEC, "one-object-cell": ONE_OBJECT_CELL_CODEC,
    "one-object-cell-maps": ONE_OBJECT_CELL_MAPS_CODEC, "one-object-cell-batch": ONE_OBJECT_CELL_BATCH_CODEC,
    "one-object-cell-batch-maps": ONE_OBJECT_CELL_BATCH_MAPS_CODEC, "one-object-cell-aux": ONE_OBJECT_CELL_AUX_CODEC,
}  # "transposed": the gan bench's own GAN_CODEC, looked up when named (gan imports late)


def codec_named(name: str) -> CodecConfig:
    """The codec of :data:`CODECS` called ``name``; ConfigError listing the names otherwise."""
    if name not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {name!r}")
    if name == "transposed":
        from perception.generative.gan import GAN_CODEC

        return GAN_CODEC
    return CODECS[name]  # type: ignore[return-value]


@dataclass(frozen=True)
class GanDissectionOptions:
    """The ``gan-dissection`` entry's options (``nesy bench perception --model gan-dissection --set k=v``).

    The defaults are the entry's; each is :func:`bench_gan_dissection`'s keyword of the same name. The entry
    dissects the balanced snapshot of a GAN of one-object renders, which met more checks held out than the
    multi-object GAN (docs/results/perception.md, twentieth look, its held-out read);
    ``--set scenes=scenes --set balanced=false`` dissects the multi-object GAN's last step instead.
    """

    codec: str = field(default="resize", metadata={"choices": tuple(CODECS), "help": "the GAN's codec (CODECS)"})
    scenes: str = field(default="one_object", metadata={"choices": ("scenes", "one_object"),
                                                        "help": "what the GAN is trained on (perception.generative.gan.SCENES)"})
    layer: int = field(default=0, metadata={"choices": (PROJECTED, 0, 1), "help": "-1 the projected grid, 0 or 1 a block"})
    ranking: str = field(default="iou", metadata={"choices": RANKINGS, "help": "how the 10 cube units are chosen"})
    balanced: bool = field(default=True, metadata={"help": "dissect the snapshot with the renders' shape balance"})
    ema: float = field(default=0.0, metadata={"help": "dissect an average of the generator's weights (decay; 0: off)"})
    harmless: int = field(default=0, metadata={
        "help": "ranking=causal-net: add this many units of smallest single effect on the non-cube shapes to the "
                "candidates (0: off)"})
    causal_samples: int = field(default=CAUSAL_SAMPLES, metadata={
        "help": f"ranking=causal or causal-net: the dissection samples the units are chosen on (1..{DISSECTION_SAMPLES})"})
    cache_ablations: bool = field(default=False, metadata={
        "help": "ranking=causal or causal-net: run the choice's ablations from the layer's output computed once "
                "(the same units and figures, less CPU)"})
    gan_steps: int = field(default=0, metadata={
        "help": "balanced: the GAN's training steps (0: the run size's, 2,000; the snapshots keep their fractions)"})
    snapshots: int = field(default=SNAPSHOTS, metadata={
        "help": "balanced: how many generator snapshots, evenly from half the steps to the last, the pick compares"})
    entry_snapshots: bool = field(default=False, metadata={
        "help": "balanced: the pick also compares the entry's snapshot steps (1,000-2,000 of a full run)"})
    sphere_guard: float = field(default=SPHERE_GUARD, metadata={
        "help": "ranking=iou-guarded: the largest |sphere pixel-count change| a kept set of units may make on the "
                "guard samples"})
    guard_samples: int = field(default=GUARD_SAMPLES, metadata={
        "help": f"ranking=iou-guarded or iou-net: the dissection samples the walk is measured on (1..{DISSECTION_SAMPLES})"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        _check_reading(self.layer, self.ranking, self.harmless, self.causal_samples, cli=True,
                       cache_ablations=self.cache_ablations, sphere_guard=self.sphere_guard,
                       guard_samples=self.guard_samples)
        _check_training(self.balanced, self.gan_steps, self.snapshots, self.entry_snapshots, cli=True)
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"perception benchmark 'gan-dissection': option 'ema' must be in [0, 1), got {self.ema!r}")
        if self.balanced and self.ema:
            raise ConfigError("perception benchmark 'gan-dissection': options 'balanced' and 'ema' exclude each other "
                              "(balanced picks a snapshot, not an average; add --set balanced=false for ema)")


@register_perception_bench(
    "gan-dissection",
    paper="Bau et al., GAN dissection, ICLR 2019, arXiv 1811.10597",
    check="a unit with IoU > 0.2 for every shape (per-object shape masks); ablating the 10 best cube units "
          "removes >= 50% of cube pixels, spheres change < 10%; inserting them adds cubes (counted)",
    ablation="10 random units of the same layer",
    options=GanDissectionOptions,
)
def bench_gan_dissection(quick: bool, seed: int, codec: CodecConfig | str | None = None, ema: float = 0.0,
                         balanced: bool = False, scenes: str = "scenes", layer: int = LAYER,
                         ranking: str = "iou", harmless: int = 0, causal_samples: int = CAUSAL_SAMPLES,
                         cache_ablations: bool = False, gan_steps: int = 0, snapshots: int = SNAPSHOTS,
                         entry_snapshots: bool = False, sphere_guard: float = SPHERE_GUARD,
                         guard_samples: int = GUARD_SAMPLES) -> BenchOutcome:
    """Dissect a benchmark GAN (:func:`perception.generative.gan.train_gan_run`) on fresh samples.

    ``codec`` None: :data:`RESIZE_CODEC`, the ``gan`` bench's GAN (48 units at ``blocks[0]``) with
    resize + 3x3 up-sampling (the entry: it met more checks held out than the transposed generator;
    docs/results/perception.md, ninth look); ``GAN_CODEC`` dissects the ``gan`` bench's own
    generator; :data:`WIDE_CODEC` a 256-unit middle layer (seventh look).
    ``ema``: dissect the average of the generator's weights over training (decay per step;
    :func:`perception.generative.gan.fit_gan`); 0, the default, dissects the last step's generator.
    ``balanced`` (on in the entry): train without averages and dissect the snapshot of
    :func:`balanced_gan_run` (the one whose samples' shape balance is nearest the renders') instead of
    the last step's generator.  ``scenes`` (the entry's is "one_object"): what the run renders
    (:data:`perception.generative.gan.SCENES`); "one_object" with :data:`ONE_OBJECT_CODEC`,
    :data:`ONE_OBJECT_AUXILIARY_CODEC` or :data:`ONE_OBJECT_CELL_CODEC` (and the other one-object
    codecs) dissects a GAN conditioned on its one object's shape.  ``layer`` and ``ranking`` (options;
    defaults the entry's): the layer dissected and edited (:data:`PROJECTED`, the
    projected grid, or an up-sampling block) and how the 10 cube units are chosen
    (:func:`dissection_outcome`), with ``harmless`` and ``causal_samples`` (options) and
    ``cache_ablations`` (an option, off), ``sphere_guard`` (ranking "iou-guarded") and ``guard_samples`` (rankings
    "iou-guarded" and "iou-net").  ``gan_steps``, ``snapshots`` and ``entry_snapshots`` (options;
    balanced only): how long the GAN trains and which snapshots the pick compares (:func:`balanced_gan_run`).
    ``codec`` may also be a name of :data:`CODECS` (the command line's).
    """
    from perception.generative.gan import train_gan_run

    _check_reading(layer, ranking, harmless, causal_samples, cache_ablations=cache_ablations,
                   sphere_guard=sphere_guard, guard_samples=guard_samples)
    _check_training(balanced, gan_steps, snapshots, entry_snapshots)
    reading = {"ranking": ranking, "harmless": harmless, "causal_samples": causal_samples,
               "cache_ablations": cache_ablations, "sphere_guard": sphere_guard, "guard_samples": guard_samples}
    codec = codec_named(codec) if isinstance(codec, str) else codec
    if not balanced:
        return dissection_outcome(train_gan_run(quick, seed, codec or RESIZE_CODEC, ema, scenes), quick, seed, layer,
                                  **reading)
    if ema:
        raise ConfigError("bench_gan_dissection: balanced picks a snapshot of the trained generator, not an average (ema 0)")
    run, pick, dist = balanced_gan_run(quick, seed, codec or RESIZE_CODEC, scenes, gan_steps, snapshots, entry_snapshots)
    outcome = dissection_outcome(run, quick, seed, layer, **reading)
    outcome.figures["snapshot"] = {"step": pick, "gan_steps": max(dist),
                                   "l1_to_renders_shape_shares": {str(k): v for k, v in dist.items()}}
    return outcome


def _check_training(balanced: bool, gan_steps: int, snapshots: int, entry_snapshots: bool = False,
                    cli: bool = False) -> None:
    """Refuse a training length or snapshot count the run cannot take, naming the keyword (``cli``: the ``--set`` option)."""
    def name(n: str) -> str:
        return f"perception benchmark 'gan-dissection': option '{n}'" if cli else n

    for key, value, least in (("gan_steps", gan_steps, 0), ("snapshots", snapshots, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{name(key)} must be an int >= {least}, got {value!r}")
    given = [f"{key}={value}" for key, value, unset in (("gan_steps", gan_steps, 0), ("snapshots", snapshots, SNAPSHOTS),
                                                         ("entry_snapshots", entry_snapshots, False)) if value != unset]
    if not balanced and given:
        where = "perception benchmark 'gan-dissection': " if cli else ""
        raise ConfigError(f"{where}{' and '.join(given)} set the balanced run's training and snapshots; "
                          "they need balanced=true")


def _check_reading(layer: int, ranking: str, harmless: int = 0, causal_samples: int = CAUSAL_SAMPLES,
                   cli: bool = False, cache_ablations: bool = False, sphere_guard: float = SPHERE_GUARD,
                   guard_samples: int = GUARD_SAMPLES) -> None:
    """Refuse a reading the dissection cannot make, naming the keyword (``cli``: the ``--set`` option)."""
    def name(n: str) -> str:
        return f"perception benchmark 'gan-dissection': option '{n}'" if cli else n

    if layer not in (PROJECTED, 0, 1):  # ConvDecoder: the projected grid and two up-sampling blocks
        raise ConfigError(f"{name('layer')} must be {PROJECTED} (the projected grid), 0 or 1 (up-sampling blocks), got {layer!r}")
    if ranking not in RANKINGS:
        raise ConfigError(f"{name('ranking')} must be one of {RANKINGS}, got {ranking!r}")
    if harmless < 0 or (harmless and ranking != "causal-net"):
        raise ConfigError(f"{name('harmless')} must be >= 0, and above 0 only with ranking=causal-net (it adds "
                          f"candidates to that ranking's pool), got {harmless!r} with ranking={ranking}")
    causal = ranking in ("causal", "causal-net")
    if not 1 <= causal_samples <= DISSECTION_SAMPLES or (causal_samples != CAUSAL_SAMPLES and not causal):
        raise ConfigError(f"{name('causal_samples')} must be in 1..{DISSECTION_SAMPLES}, and other than {CAUSAL_SAMPLES} "
                          f"only with ranking=causal or causal-net, got {causal_samples!r} with ranking={ranking}")
    guarded = ranking == "iou-guarded"
    if (isinstance(sphere_guard, bool) or not isinstance(sphere_guard, (int, float)) or not 0.0 <= sphere_guard < float("inf")
            or (sphere_guard != SPHERE_GUARD and not guarded)):  # NaN fails the range test
        raise ConfigError(f"{name('sphere_guard')} must be a finite number >= 0, and other than {SPHERE_GUARD} only with "
                          f"ranking=iou-guarded, got {sphere_guard!r} with ranking={ranking}")
    if (isinstance(guard_samples, bool) or not isinstance(guard_samples, int) or not 1 <= guard_samples <= DISSECTION_SAMPLES
            or (guard_samples != GUARD_SAMPLES and ranking not in ("iou-guarded", "iou-net"))):
        raise ConfigError(f"{name('guard_samples')} must be in 1..{DISSECTION_SAMPLES}, and other than {GUARD_SAMPLES} "
                          f"only with ranking=iou-guarded or iou-net, got {guard_samples!r} with ranking={ranking}")
    if cache_ablations and not causal:
        raise ConfigError(f"{name('cache_ablations')} only speeds up ranking=causal or causal-net (the iou ranking "
                          f"ablates nothing to choose its units, and iou-guarded and iou-net always run from the cached layer), "
                          f"got it with ranking={ranking}")


def snapshot_steps(steps: int, count: int = SNAPSHOTS) -> list[int]:
    """The training steps of ``count`` snapshots spread evenly from half of ``steps`` to the last step.

    Rounded to whole steps (at least 1), repeats dropped, ascending; ``count`` 1 is the last step alone.
    The default, 5 snapshots of 2,000 steps, is 1,000, 1,250, 1,500, 1,750 and 2,000.

    >>> snapshot_steps(3000, 9)
    [1500, 1688, 1875, 2062, 2250, 2438, 2625, 2812, 3000]
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"snapshot_steps: steps must be an int >= 1, got {steps!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"snapshot_steps: count must be an int >= 1, got {count!r}")
    if count == 1:
        return [steps]
    return sorted({max(1, round((0.5 + 0.5 * i / (count - 1)) * steps)) for i in range(count)})


def balanced_gan_run(quick: bool, seed: int, codec: CodecConfig, scenes: str = "scenes", gan_steps: int = 0,
                     snapshots: int = SNAPSHOTS, entry_snapshots: bool = False) -> tuple[GanRun, int, dict[int, float]]:
    """The bench GAN run of ``codec`` whose generator is the snapshot with the best shape balance.

    The same renders, judges, GAN training and seed as :func:`perception.generative.gan.train_gan_run`
    (training is unchanged by taking snapshots), with ``snapshots`` generator snapshots at
    :func:`snapshot_steps` of the training steps; :func:`balanced_snapshot` picks one by the class masks'
    shape shares on 300 samples (z from ``seed + 24``, not the dissection's) against the run's test
    renders.  ``gan_steps``: the GAN's training steps (0: the run size's, 2,000 full and 3 quick); the
    learning rate is constant, so a longer run's first 2,000 steps are the default run's.  ``entry_snapshots``:
    the snapshots also include the default run's (:data:`SNAPSHOTS` of the run size's steps, those within the run), so
    a longer run's pick is over a superset of the default's and its L1 is at most the default pick's.
    Returns (the run with the picked generator, its step, every step's L1 distance).
    """
    from perception.generative.gan import (
        _FULL,
        _QUICK,
        CROP,
        GanRun,
        _renders_and_judges,
        fit_gan,
        run_classifier,
        run_conditions,
    )

    size = _QUICK if quick else _FULL
    if not isinstance(gan_steps, int) or isinstance(gan_steps, bool) or gan_steps < 0:
        raise ConfigError(f"balanced_gan_run: gan_steps must be an int >= 0 (0: the run size's), got {gan_steps!r}")
    steps = gan_steps or size.gan_steps
    keep = set(snapshot_steps(steps, snapshots))
    if entry_snapshots:
        keep |= {k for k in snapshot_steps(size.gan_steps) if k <= steps}
    snaps: dict[int, ConvDecoder | None] = dict.fromkeys(sorted(keep))
    train, test, seg, attr = _renders_and_judges(quick, seed, scenes)
    gan, _ = fit_gan(train.images, codec, steps=steps, batch=size.batch, lr=size.lr, seed=seed,
                     snapshots=snaps, conditions=run_conditions(codec, train, scenes),  # type: ignore[arg-type]
                     classifier=run_classifier(quick, seed, codec, scenes))
    labeller = ObjectShapeLabeller(seg, attr, CROP)
    z = gan.codes(8 if quick else 300, torch.Generator().manual_seed(seed + 24))
    pick, dist = balanced_snapshot({k: v for k, v in snaps.items() if v is not None}, labeller, test.images, z)
    gan.generator = snaps[pick]  # type: ignore[assignment]
    return GanRun(gan.eval(), seg, attr, train, test), pick, dist


def labeller_iou_on_renders(labeller: ShapeSegmenter | Labeller, images: Tensor, shapes: Tensor) -> list[float]:
    """Each shape's IoU of ``labeller``'s labels with the renderer's shape maps ``shapes`` [N, H, W] (SHAPES order)."""
    labels = _labels(labeller, images)
    out = []
    for c in range(len(SHAPES)):
        ours, truth = labels == c + 1, shapes == c + 1
        union = int((ours | truth).sum())
        out.append(int((ours & truth).sum()) / union if union else float("nan"))
    return out


@torch.no_grad()
def shape_shares(labeller: ShapeSegmenter | Labeller, images: Tensor) -> Tensor:
    """Each shape's share of the labelled object pixels of ``images`` [N, 3, H, W]: float [C] (SHAPES order; zeros if none)."""
    counts = torch.bincount(_labels(labeller, images).flatten(), minlength=1 + len(SHAPES))[1:].float()
    return counts / counts.sum() if counts.sum() > 0 else counts


@torch.no_grad()
def sample_shape_shares(labeller: ShapeSegmenter | Labeller, images: Tensor) -> dict[str, float]:
    """How a generator's samples split by shape: a direct measure of collapse onto one shape.

    Each of ``images`` [N, 3, H, W] with any labelled object pixel counts for the shape with the most
    such pixels (one-object samples: its object's shape).  Returns each shape's share of those
    samples (SHAPES order; zeros if none) and ``"empty"``, the fraction of all N with no object.
    Unlike :func:`shape_shares` (pixels), a shape drawn large and a shape drawn small weigh the same.
    """
    labels = _labels(labeller, images).flatten(1)
    counts = torch.stack([(labels == c + 1).sum(1) for c in range(len(SHAPES))], 1)  # [N, C] object pixels
    has = counts.sum(1) > 0
    votes = torch.bincount(counts[has].argmax(1), minlength=len(SHAPES)).float()
    shares = votes / votes.sum() if votes.sum() > 0 else votes
    out = {s: float(v) for s, v in zip(SHAPES, shares, strict=True)}
    out["empty"] = 1.0 - float(has.float().mean()) if len(images) else float("nan")
    return out


@torch.no_grad()
def balanced_snapshot(generators: Mapping[int, ConvDecoder], labeller: ShapeSegmenter | Labeller, real: Tensor,
                      z: Tensor) -> tuple[int, dict[int, float]]:
    """The generator whose samples' shape balance is nearest the real renders' (a gate before dissecting).

    ``generators``: snapshots by training step (:func:`perception.generative.gan.fit_gan`'s
    ``snapshots``); each one's samples from ``z`` are labelled by ``labeller`` and their
    :func:`shape_shares` compared with those of the real renders ``real`` under the same labeller
    (so the labeller's own bias on renders cancels), by L1 distance.  Returns (the chosen step,
    the distance of every step); ties go to the later step.  The dissection's check IoU of a unit
    that fires on every object equals its shape's share of the object pixels, so a GAN whose
    samples hold few objects the masks call spheres cannot have a sphere unit over 0.2
    (docs/results/perception.md, eleventh look).
    """
    if not generators:
        raise ConfigError("balanced_snapshot: no generators given")
    want = shape_shares(labeller, real)
    dist = {}
    for step in sorted(generators):
        gen = generators[step].eval()
        dist[step] = float((shape_shares(labeller, gen(z)) - want).abs().sum())
    best = min(sorted(dist, reverse=True), key=lambda k: dist[k])
    return best, dist


@torch.no_grad()
def judges_agreement(segmenter: ShapeSegmenter, attribute_net: nn.Module, images: Tensor, crop_size: int,
                     min_pixels: int = 6) -> tuple[float, int]:
    """(fraction of objects on which the two judges agree on the shape, objects found) for images [N, 3, H, W].

    Objects are the segmenter's foreground components (as :class:`ObjectShapeLabeller` with the
    default rule); the per-pixel segmenter's call is its most frequent shape label over the object,
    the attribute network's is its shape argmax on the object's masked crop.
    """
    pixel = segment(segmenter, images)
    called = ObjectShapeLabeller(segmenter, attribute_net, crop_size, min_pixels)(images)
    agree = found = 0
    for lab, obj in zip(pixel, called, strict=True):
        for mask in object_masks(lab, min_pixels):
            seg_call = int(torch.bincount(lab[mask], minlength=len(SHAPES) + 1)[1:].argmax()) + 1
            agree += int(seg_call == int(obj[mask][0]))
            found += 1
    return agree / max(found, 1), found


def dissection_outcome(run: GanRun, quick: bool, seed: int, layer: int, rule: LabelRule | None = None,
                       ranking: str = "iou", harmless: int = 0, causal_samples: int = CAUSAL_SAMPLES,
                       cache_ablations: bool = False, sphere_guard: float = SPHERE_GUARD,
                       guard_samples: int = GUARD_SAMPLES) -> BenchOutcome:
    """The bench's checks and figures for ``generator.blocks[layer]`` (or the projected grid) of a trained GAN run.

    Class masks (dissection and interventions alike) are the run's :class:`ObjectShapeLabeller`
    under ``rule`` (None: :data:`BENCH_RULE`); the per-pixel segmenter's best IoUs are reported
    beside them, and each labeller's IoU with the truth of the run's real test renders.
    ``ranking``: "iou" (the entry) ablates and inserts the 10 units of highest cube IoU; "causal"
    (an option) the 10 whose ablation alone removes most cube pixels on the first
    :data:`CAUSAL_SAMPLES` dissection samples (:func:`causal_units`, the paper's choice of
    intervention units by causal effect); "causal-net" (an option) the 10 that
    :func:`net_causal_units` grows on the same samples, removing most cube pixels net of the sphere
    count's change; the IoU check is the same whichever ranking.  ``harmless`` (causal-net
    only) adds that many units of smallest single effect on the non-cube shapes to causal-net's
    candidates (:func:`net_causal_units`); ``causal_samples`` is how many of the
    dissection samples the causal rankings choose on (the first ones; :data:`CAUSAL_SAMPLES` by default);
    ``cache_ablations`` makes the causal rankings' ablations cheaper without changing them
    (:func:`ablation_images`, :func:`net_causal_units`).  "iou-guarded" (an option) walks the units by cube
    IoU and keeps each one unless the kept set with it changes the sphere pixel count by more than
    ``sphere_guard`` (relative, either sign) on the first ``guard_samples`` dissection samples
    (:func:`guarded_iou_units`); "iou-net" (an option) walks the same order and keeps a unit when the
    kept set's cube pixels removed net of its sphere count change rises; the edit samples play no part in either choice.
    """
    from perception.generative.gan import CROP

    _check_reading(layer, ranking, harmless, causal_samples, cache_ablations=cache_ablations,
                   sphere_guard=sphere_guard, guard_samples=guard_samples)
    rule = BENCH_RULE if rule is None else rule
    gen = run.gan.generator.eval()
    seg = ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP, rule=rule)  # the class masks (module docstring)
    truth_iou = {name: labeller_iou_on_renders(lab, run.test.images, run.test.shapes) for name, lab in (
        ("class masks", seg), ("one shape per foreground component", ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP)),
        ("per-pixel segmenter", run.segmenter))}
    n_dissect, n_edit = (8, 4) if quick else (DISSECTION_SAMPLES, 300)
    n_causal = min(causal_samples, n_dissect)
    z = run.gan.codes(n_dissect, torch.Generator().manual_seed(seed + 21))  # unconditional: randn(n, latent)
    z_edit = run.gan.codes(n_edit, torch.Generator().manual_seed(seed + 22))  # held out
    result = dissect(gen, seg, z, layer)
    with torch.no_grad():
        collapse = sample_shape_shares(seg, gen(z))  # each shape's share of the samples, reported
    per_pixel = dissect(gen, run.segmenter, z, layer)  # the earlier masks, reported beside
    try:  # do the units, together, tell shapes apart
        probe: dict[str, object] = dict(shape_probe(gen, seg, z, layer))
    except ConfigError as err:  # too few objects (tiny configs)
        probe = {"accuracy": float("nan"), "majority": float("nan"), "error": str(err)}
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    best_iou = result.iou.max(0).values
    k = min(UNITS, result.iou.shape[0])
    iou_units = result.best_units(cube, k)
    effect, net_trace, candidates, guard = None, None, [], None
    if ranking == "causal":
        units, effect = causal_units(gen, seg, z[:n_causal], layer, cube, k, cache_ablations)
    elif ranking == "causal-net":
        units, net_trace = net_causal_units(gen, seg, z[:n_causal], layer, cube, sphere, k,
                                            pool=min(NET_POOL, result.iou.shape[0]), harmless=harmless,
                                            candidates_out=candidates, cache=cache_ablations)
    elif ranking in ("iou-guarded", "iou-net"):
        n_guard = min(guard_samples, n_dissect)
        units, tried, filled = guarded_iou_units(gen, seg, z[:n_guard], layer, cube, sphere,
                                                 result.best_units(cube, result.iou.shape[0]).tolist(), k, sphere_guard,
                                                 net=ranking == "iou-net")
        guard = {"samples": n_guard, "filled": filled, "sphere_guard": None if ranking == "iou-net" else sphere_guard,
                 "keep": "removed - |sphere change| rises" if ranking == "iou-net" else f"|sphere change| <= {sphere_guard}",
                 "kept_from_iou_top10": sum(u in iou_units.tolist() for u in units.tolist()),
                 "tried": [{"unit": u, "kept": kept, "cube_removed": r, "sphere_change": c} for u, kept, r, c in tried]}
    else:
        units = iou_units
    random_units = torch.randperm(result.iou.shape[0], generator=torch.Generator().manual_seed(seed + 23))[:k]
    acts, images = layer_activations(gen, z[:1], layer)
    grid_h, grid_w = acts.shape[-2:]
    scale = images.shape[-1] // grid_w
    patch = max(1, grid_h // 4)
    patches = [(grid_h // 2 - patch // 2 + dy, grid_w // 2 - patch // 2 + dx)
               for dy in (-patch, 0, patch) for dx in (-2 * patch, 0, 2 * patch)]
    patches = [(min(max(y, 0), grid_h - patch), min(max(x, 0), grid_w - patch)) for y, x in patches]
    ours = _intervention_figures(gen, seg, z_edit, units, result.high[units, cube], cube, sphere, patches, patch,
                                 scale, layer)
    rand = _intervention_figures(gen, seg, z_edit, random_units, result.high[random_units, cube], cube, sphere,
                                 patches, patch, scale, layer)
    specific = result.specific_units(cube, k)  # not the check's ranking: a measured alternative
    spec = _intervention_figures(gen, seg, z_edit, specific, result.high[specific, cube], cube, sphere, patches,
                                 patch, scale, layer)
    checks = tuple(
        Check(f"best unit IoU with {shape}", "IoU over dissection samples, higher is better", float(best_iou[c]),
              None, "> 0.2", float(best_iou[c]) > 0.2) for c, shape in enumerate(SHAPES)
    ) + (
        Check("cube pixels removed by ablating 10 cube units", "fraction, higher is better", ours["cube_removed"],
              rand["cube_removed"], ">= 0.5", ours["cube_removed"] >= 0.5),
        Check("sphere pixels changed by the same ablation", "relative change, lower is better",
              ours["sphere_change"], rand["sphere_change"], "< 0.10", ours["sphere_change"] < 0.10),
        Check("cubes inserted by activating the 10 units", "fraction of (sample, patch) edits, higher is better",
              ours["inserted_fraction"], rand["inserted_fraction"], "> ablation",
              ours["inserted_fraction"] > rand["inserted_fraction"]),
    )
    figures = {"layer": "generator.project" if layer == PROJECTED else f"generator.blocks[{layer}]",
               "units_in_layer": int(result.iou.shape[0]), "ranking": ranking,
               "iou_cube_units": iou_units.tolist(),
               "causal_effect_of_cube_units": None if effect is None else effect[units].tolist(),
               "causal_samples": None if effect is None and net_trace is None else n_causal,
               "cache_ablations": cache_ablations, "guarded_selection": guard,
               "net_selection": None if net_trace is None else {
                   "pool": min(NET_POOL, int(result.iou.shape[0])), "objective": "cube removed - |sphere change|",
                   "harmless": harmless, "harmless_candidates": candidates[min(NET_POOL, int(result.iou.shape[0])):],
                   "harmless_chosen": sum(u in candidates[min(NET_POOL, int(result.iou.shape[0])):] for u in units.tolist()),
                   "steps": [{"unit": int(u), "cube_removed": r, "sphere_change": c}
                             for u, (r, c) in zip(units.tolist(), net_trace, strict=True)]},
               "generator_widths": list(gen.config.decoder_channels),
               "cube_units": units.tolist(), "cube_unit_iou": result.iou[units, cube].tolist(),
               "class_masks": "per object: the attribute network's shape call on each segmented object",
               "label_rule": {"per_label": rule.per_label, "segmenter_vote": rule.segmenter_vote},
               "labeller_iou_on_real_renders": {k: dict(zip(SHAPES, v, strict=True)) for k, v in truth_iou.items()},
               "best_iou": dict(zip(SHAPES, best_iou.tolist(), strict=True)),
               "best_iou_per_pixel_segmenter": dict(zip(SHAPES, per_pixel.iou.max(0).values.tolist(), strict=True)),
               "units_over_0.2": {s: int((result.iou[:, c] > 0.2).sum()) for c, s in enumerate(SHAPES)},
               "sample_shape_shares": collapse,
               "ours": ours, "random_units": rand, "specific_cube_units": specific.tolist(),
               "specific_units": spec, "shape_probe": probe, "conditions": run.gan.config.conditions,
               "objects_per_render": sorted(set(run.train.counts.tolist())),
               "dissection_samples": n_dissect, "edit_samples": n_edit,
               "insert_patch": f"{patch}x{patch} of the {grid_h}x{grid_w} grid at {len(patches)} places",
               "insert_min_pixels": _INSERT_MIN}
    return BenchOutcome(checks, figures)
