"""Meaningful perturbations: the smallest smooth deletion mask that changes a prediction (Fong and Vedaldi, ICCV 2017).

Fong and Vedaldi ("Interpretable Explanations of Black Boxes by Meaningful
Perturbation", ICCV 2017, arXiv 1704.03296) explain a classifier's decision by
learning where to delete: a mask ``m`` in [0, 1] (1 keeps a pixel, 0 replaces
it by a blurred copy of the image) is optimised to make the class score fall
while deleting as little, and as smoothly, as possible::

    min_m  l1 * mean(1 - m) + l2 * TV_beta(m) + p_c(x * m + blur(x) * (1 - m))

(``p_c``: the softmax probability of the explained class).  As in the paper
the mask is learnt at a lower resolution and upsampled, and the input is
jittered by up to ``jitter`` pixels at each step so that the mask cannot
exploit the network's pixel-level artefacts.  The saliency map is the deletion
``1 - m``.

Here the network is the attribute network and the deletion acts on its whole
input, the RGB crop and the object-mask channel alike (the silhouette in the
mask channel is evidence for the shape as much as the pixels are).  The
benchmark uses the paper's *constant* perturbation (RGB to the crop's mean
colour, the mask channel to 0: a blur would smear the silhouette into the
background) and, in place of the softmax probability, a hinge on the logit
margin (:func:`class_term`): this network classifies most crops with a
saturated softmax, whose probability does not move until much of the object is
gone, so the optimiser would only shrink the deletion.
:func:`pointing_hits` scores any saliency map by the pointing game (Zhang et
al., ECCV 2016): a hit when its peak falls on the classified object.

Shapes (K crops, C input channels, crop side S)::

    x         float [K, C, S, S]  the input (here C = 4: RGB in [0, 1] and the mask)
    deletion  float [K, 1, S, S]  learnt mask m in [0, 1] (1 = keep), shared by the channels
    saliency  float [K, S, S]     any explanation map (here 1 - m)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from perception.benchmark import BenchOutcome, Check, register_perception_bench
from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = [
    "PerturbationConfig",
    "gaussian_blur",
    "perturb",
    "constant_replacement",
    "total_variation",
    "deletion_masks",
    "saliency_peaks",
    "pointing_hits",
]


@dataclass(frozen=True)
class PerturbationConfig:
    """The mask's optimisation (the paper's terms, at the crop's scale).

    Attributes:
        mask_side: The mask is learnt on a ``mask_side`` square grid and upsampled bilinearly.
        steps, lr: Adam iterations and rate on the mask (clamped to [0, 1] after every step).
        area: l1, the weight of the deleted fraction.
        tv: l2, the weight of the total-variation term.
        tv_beta: beta of the total variation (the paper uses 3).
        blur_sigma: Gaussian blur of the deleted pixels' replacement, in crop pixels
            (the paper's 10 px on 224 px images is about 1.5 px on these 32 px crops; 3 deletes colour too).
        jitter: Largest random shift of the input, pixels, at each step.
        init: The mask's starting value everywhere (from 1, a confidently classified crop gives a saturated
            softmax no gradient to leave the all-keep corner; 0.5 starts where the score responds).
        margin: The class term (:func:`class_term`): None for the paper's softmax probability, else the
            hinge on the logit margin (the one used here: the probability of a confidently classified crop
            is flat in the mask, and the optimiser then only shrinks the deletion).
    """

    mask_side: int = 16
    steps: int = 150
    lr: float = 0.1
    area: float = 1.0
    tv: float = 0.2
    tv_beta: float = 3.0
    blur_sigma: float = 3.0
    jitter: int = 1
    init: float = 0.5
    margin: float | None = 1.0

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of float [K, C, H, W] (reflect padding), same shape."""
    if sigma <= 0:
        return x
    r = max(1, int(round(3 * sigma)))
    r = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def perturb(x: Tensor, keep: Tensor, replacement: Tensor) -> Tensor:
    """``x * keep + replacement * (1 - keep)``: x, replacement float [K, C, S, S]; keep float [K, 1, S, S] in [0, 1]."""
    return x * keep + replacement * (1 - keep)


def constant_replacement(x: Tensor, zero_channels: int = 0) -> Tensor:
    """The constant perturbation: each channel's mean over the crop, and zero in the last ``zero_channels``.

    (For the attribute network's input the mask channel is the last: deleting it removes the object's
    silhouette there, rather than smearing the silhouette into the background as a blur would.)
    """
    out = x.mean((2, 3), keepdim=True).expand_as(x).clone()
    if zero_channels:
        out[:, -zero_channels:] = 0.0
    return out


def total_variation(m: Tensor, beta: float) -> Tensor:
    """Mean of ``|d m / dx|^beta + |d m / dy|^beta`` over the mask (float [K, 1, h, w]); float [K]."""
    dx = (m[..., :, 1:] - m[..., :, :-1]).abs().pow(beta).flatten(1).mean(1)
    dy = (m[..., 1:, :] - m[..., :-1, :]).abs().pow(beta).flatten(1).mean(1)
    return dx + dy


def class_term(logits: Tensor, target: Tensor, margin: float | None) -> Tensor:
    """The score term per crop: softmax probability of ``target`` (``margin`` None, the paper's),
    or the hinge ``max(0, logit_target - best other logit + margin)``, which keeps a gradient while the
    class is confidently predicted (the softmax saturates there) and stops once it has lost by ``margin``."""
    rows = torch.arange(len(target))
    if margin is None:
        return logits.softmax(1)[rows, target]
    other = logits.clone()
    other[rows, target] = float("-inf")
    return F.relu(logits[rows, target] - other.max(1).values + margin)


def deletion_masks(
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    target: Tensor,
    config: PerturbationConfig,
    seed: int = 0,
    replacement: Tensor | None = None,
) -> tuple[Tensor, list[float]]:
    """Learn one deletion mask per crop for the class ``target``.

    Args:
        score: float [K, C, S, S] input -> logits float [K, n_classes].
        x: float [K, C, S, S], the input to explain.
        target: int64 [K], the class whose probability is to fall.
        config: The optimisation.
        seed: Seeds the jitter.
        replacement: float [K, C, S, S], what deleted pixels become (None: the input blurred by
            ``config.blur_sigma``, the paper's blur perturbation; a constant is its other one).

    Returns:
        (keep mask float [K, 1, S, S] in [0, 1], the objective per step averaged over crops).
    """
    if x.dim() != 4:
        raise ConfigError(f"deletion_masks expects an input [K, C, S, S], got {tuple(x.shape)}")
    k, _, h, w = x.shape
    g = torch.Generator().manual_seed(seed)
    blurred = gaussian_blur(x, config.blur_sigma) if replacement is None else replacement
    if blurred.shape != x.shape:
        raise ConfigError(f"deletion_masks: replacement {tuple(blurred.shape)} differs from the input {tuple(x.shape)}")
    param = torch.full((k, 1, config.mask_side, config.mask_side), config.init, requires_grad=True)
    opt = torch.optim.Adam([param], lr=config.lr)
    losses = []
    for _ in range(config.steps):
        keep = F.interpolate(param, size=(h, w), mode="bilinear", align_corners=False)
        y = perturb(x, keep, blurred)
        if config.jitter:
            dy, dx = torch.randint(-config.jitter, config.jitter + 1, (2,), generator=g).tolist()
            y = torch.roll(y, (dy, dx), (2, 3))
        loss = (config.area * (1 - param).flatten(1).mean(1) + config.tv * total_variation(param, config.tv_beta)
                + class_term(score(y), target, config.margin))
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            param.clamp_(0.0, 1.0)
        losses.append(float(loss.detach().mean()))
    with torch.no_grad():
        keep = F.interpolate(param, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return keep.detach(), losses


def saliency_peaks(saliency: Tensor, smooth: float = 1.0) -> Tensor:
    """int64 [K, 2] (row, column) of each map's peak, after a light blur so a plateau points at its middle."""
    s = gaussian_blur(saliency.unsqueeze(1).float(), smooth)[:, 0] if smooth > 0 else saliency
    flat = s.flatten(1).argmax(1)
    return torch.stack([flat // s.shape[-1], flat % s.shape[-1]], 1)


def pointing_hits(saliency: Tensor, own: Tensor, others: Tensor, tolerance: int = 1) -> Tensor:
    """Pointing game: bool [K], the peak lies on the object (within ``tolerance`` pixels) and not on another one.

    Args:
        saliency: float [K, S, S].
        own: bool [K, S, S] the classified object's pixels.
        others: bool [K, S, S] other objects' pixels (a peak on one of them is a miss even within tolerance).
    """
    peaks = saliency_peaks(saliency)
    near = own.float().unsqueeze(1)
    if tolerance > 0:
        near = F.max_pool2d(near, 2 * tolerance + 1, stride=1, padding=tolerance)
    rows = torch.arange(len(peaks))
    on = near[rows, 0, peaks[:, 0], peaks[:, 1]] > 0
    return on & ~others[rows, peaks[:, 0], peaks[:, 1]]


# ---------------------------------------------------------------------- benchmark
ATTRIBUTE = "shape"  # the prediction explained
CLUTTER = 0.05  # a crop takes part when other objects cover at least this fraction of it
TOLERANCE = 1  # pointing-game tolerance, crop pixels (Zhang et al.'s 15 px of 224 is ~2 px at 32; 1 is stricter)


@register_perception_bench(
    "meaningful-perturbation",
    paper="Fong and Vedaldi, meaningful perturbations, ICCV 2017 (arXiv 1704.03296); baselines via Captum",
    check="pointing game >= 90% on held-out crops holding other objects (>= 5% of the crop)",
    ablation="Captum IntegratedGradients and Occlusion (their pointing games)",
)
def bench_meaningful_perturbation(quick: bool, seed: int) -> BenchOutcome:
    """Explain the shape predictions of the subject network on cluttered held-out crops."""
    from captum.attr import IntegratedGradients, Occlusion

    from perception.interpret.subject import bench_subject, other_mask, own_mask

    subject = bench_subject(quick, seed)
    config = PerturbationConfig(steps=10) if quick else PerturbationConfig()
    test = subject.test
    own, others = own_mask(test), other_mask(test)
    crowded = others.float().mean((1, 2)) >= CLUTTER
    if not crowded.any():  # a tiny config may have no crowded crop; measure on all then
        crowded = torch.ones_like(crowded)
    x, boxes, own, others = test.crops[crowded], test.boxes[crowded], own[crowded], others[crowded]
    net = subject.net

    def forward(y: Tensor, b: Tensor) -> Tensor:
        return net(y, b)[0][ATTRIBUTE]

    def score(y: Tensor) -> Tensor:
        return forward(y, boxes)

    with torch.no_grad():
        target = score(x).argmax(1)
    deleted = constant_replacement(x, zero_channels=1)  # RGB -> the crop's mean colour, mask channel -> 0
    keep, losses = deletion_masks(score, x, target, config, seed, deleted)
    with torch.no_grad():
        flipped = float((score(perturb(x, keep, deleted)).argmax(1) != target).float().mean())
    hits = {"meaningful perturbation": pointing_hits(1 - keep[:, 0], own, others, TOLERANCE)}
    ig = IntegratedGradients(forward).attribute(x, baselines=deleted, target=target, additional_forward_args=(boxes,),
                                                n_steps=8 if quick else 32, internal_batch_size=512)
    hits["integrated gradients"] = pointing_hits(ig.abs().sum(1), own, others, TOLERANCE)
    occ = Occlusion(forward).attribute(x, sliding_window_shapes=(x.shape[1], 6, 6), strides=(x.shape[1], 2, 2),
                                       baselines=deleted, target=target, additional_forward_args=(boxes,))
    hits["occlusion"] = pointing_hits(occ.sum(1), own, others, TOLERANCE)
    centre = torch.zeros_like(own, dtype=torch.float)
    centre[:, own.shape[1] // 2, own.shape[2] // 2] = 1.0
    hits["crop centre"] = pointing_hits(centre, own, others, TOLERANCE)
    rate = {k: float(v.float().mean()) for k, v in hits.items()}
    near = F.max_pool2d(own.float().unsqueeze(1), 2 * TOLERANCE + 1, stride=1, padding=TOLERANCE)[:, 0] > 0
    rate["random point (expected)"] = float((near & ~others).float().mean())
    best_baseline = max(rate["integrated gradients"], rate["occlusion"])
    checks = (
        Check("pointing game (shape prediction)",
              f"fraction of {len(x)} cluttered held-out crops; ablation: best of IG {rate['integrated gradients']:.3f}"
              f" / occlusion {rate['occlusion']:.3f}", rate["meaningful perturbation"], best_baseline, ">= 0.90",
              rate["meaningful perturbation"] >= 0.90),
    )
    figures = {
        "pointing_game": rate, "crops": len(x), "test_crops": len(test),
        "clutter_threshold": CLUTTER, "tolerance_px": TOLERANCE,
        "other_object_fraction_mean": float(others.float().mean()),
        "own_object_fraction_mean": float(own.float().mean()),
        "prediction_flipped_by_deletion": flipped, "deleted_fraction_mean": float((1 - keep).mean()),
        "objective_first_last": [losses[0], losses[-1]],
        "config": repr(config), "subject_accuracy": subject.accuracy, "subject": repr(subject.config),
    }
    return BenchOutcome(checks, figures)
