"""Net2Vec: concepts as learned linear combinations of a layer's filters (Fong and Vedaldi, CVPR 2018).

Fong and Vedaldi ("Net2Vec: Quantifying and Explaining how Concepts are
Encoded by Filters in Deep Neural Networks", CVPR 2018, arXiv 1801.03454) ask
whether a concept lives in one filter, as Network Dissection assumes, or is
spread over many.  For each concept they learn a weight per filter of a layer
and a bias; the layer's activations, upsampled to the input size and combined
with those weights, segment the concept after a sigmoid (trained with a
class-balanced binary cross-entropy).  A concept is *distributed* when its
combination segments it clearly better than the best single filter, each
thresholded at its best level.

Here the layer is one of the attribute network's conv blocks and the concepts
come with exact truth from the renderer's instance masks: "object" (any object
against background), each shape and each colour (pixels of objects having it).

Shapes (K crops, C filters of the layer, N concepts, crop side S)::

    activations  float [K, C, S, S]   the layer's output, bilinearly upsampled to the crop
    targets      bool  [K, N, S, S]   concept masks
    weight       float [N, C]          one combination per concept (on standardised activations)
    bias         float [N]
    probability  float [K, N, S, S]   sigmoid(weight . activations + bias)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import BenchOutcome, Check, register_perception_bench, train_steps
from perception.derender.attributes import AttributeNet
from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = [
    "Net2VecConfig",
    "ConceptVectors",
    "concepts",
    "concept_targets",
    "layer_activations",
    "fit_concept_vectors",
    "best_single_filters",
    "set_iou",
]

QUANTILES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)  # threshold levels tried


@dataclass(frozen=True)
class Net2VecConfig:
    """Which layer is read and how the combinations are trained.

    Attributes:
        layer: Index of the conv block of ``AttributeNet.features`` whose output is read.
        steps, batch, lr: Adam on the class-balanced BCE, crops drawn ``batch`` at a time.
    """

    layer: int = 2
    steps: int = 400
    batch: int = 32
    lr: float = 0.02

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


def concepts() -> list[tuple[str, str | None]]:
    """The concepts segmented: ``("object", None)``, then ``("shape", v)`` and ``("color", v)`` for every value."""
    return [("object", None)] + [("shape", v) for v in ATTRIBUTES["shape"]] + [("color", v) for v in ATTRIBUTES["color"]]


def concept_targets(crops, names: Sequence[tuple[str, str | None]]) -> Tensor:
    """bool [K, N, S, S]: each concept's pixels in each crop (``crops``: ObjectCrops with instances)."""
    from perception.interpret.subject import concept_mask

    return torch.stack([concept_mask(crops, a, v) for a, v in names], 1)


def layer_activations(net: AttributeNet, crops: Tensor, layer: int) -> Tensor:
    """float [K, C, S, S]: block ``layer`` of ``net.features`` on ``crops`` [K, 4, S, S], upsampled bilinearly."""
    from perception.interpret.subject import block_output

    with torch.no_grad():
        a = block_output(net, crops, layer)
    return F.interpolate(a, size=crops.shape[-2:], mode="bilinear", align_corners=False)


class ConceptVectors(nn.Module):
    """N concepts as weights over C standardised filters: ``sigmoid(w_n . (a - mu) / sd + b_n)`` per pixel.

    Args:
        n_concepts: N.
        mean, std: float [C] per-filter statistics of the activations (fixed, from the fitting data).
    """

    def __init__(self, n_concepts: int, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clamp(min=1e-6).clone())
        self.weight = nn.Parameter(torch.zeros(n_concepts, len(mean)))
        self.bias = nn.Parameter(torch.zeros(n_concepts))

    def logits(self, activations: Tensor) -> Tensor:
        """float [K, N, S, S] before the sigmoid."""
        z = (activations - self.mean[:, None, None]) / self.std[:, None, None]
        return torch.einsum("kchw,nc->knhw", z, self.weight) + self.bias[:, None, None]

    def forward(self, activations: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(activations))


def balanced_bce(logits: Tensor, targets: Tensor, alpha: Tensor) -> Tensor:
    """Net2Vec's loss: ``-(alpha y log p + (1 - alpha)(1 - y) log(1 - p))`` averaged; alpha float [N] per concept."""
    y = targets.float()
    w = alpha[:, None, None] * y + (1 - alpha[:, None, None]) * (1 - y)
    return (w * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).mean() * 2


def fit_concept_vectors(activations: Tensor, targets: Tensor, config: Net2VecConfig, seed: int) -> tuple[ConceptVectors, list]:
    """Train one combination per concept with the shared loop; returns it and the loop's history.

    ``alpha`` (the weight of positive pixels) is one minus the concept's pixel fraction, as in the paper.
    """
    if activations.shape[0] != targets.shape[0] or activations.shape[-2:] != targets.shape[-2:]:
        raise ConfigError(f"activations {tuple(activations.shape)} and targets {tuple(targets.shape)} do not match")
    flat = activations.transpose(0, 1).flatten(1)
    model = ConceptVectors(targets.shape[1], flat.mean(1), flat.std(1))
    alpha = 1.0 - targets.float().mean((0, 2, 3)).clamp(1e-4, 1 - 1e-4)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": balanced_bce(model.logits(activations[idx]), targets[idx], alpha)}

    history = train_steps(model, step, items=len(activations), steps=config.steps, batch=config.batch, lr=config.lr,
                          seed=seed, desc="net2vec")
    return model, history


def set_iou(prediction: Tensor, targets: Tensor) -> Tensor:
    """Dataset-level IoU per concept: sum of intersections / sum of unions over all crops; float [N].

    Args:
        prediction, targets: bool [K, N, S, S].
    """
    inter = (prediction & targets).sum((0, 2, 3)).double()
    union = (prediction | targets).sum((0, 2, 3)).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter)).float()


def best_threshold(scores: Tensor, targets: Tensor, quantiles: Sequence[float] = QUANTILES) -> tuple[Tensor, Tensor]:
    """Per concept, the threshold on ``scores`` (float [K, N, S, S]) with the best IoU: (threshold [N], iou [N])."""
    levels = torch.quantile(scores.transpose(0, 1).flatten(1)[:, ::7].float(), torch.tensor(quantiles), dim=1)  # [Q, N]
    ious = torch.stack([set_iou(scores > lv[None, :, None, None], targets) for lv in levels])  # [Q, N]
    best = ious.argmax(0)
    n = torch.arange(targets.shape[1])
    return levels[best, n], ious[best, n]


def best_single_filters(activations: Tensor, targets: Tensor,
                        quantiles: Sequence[float] = QUANTILES) -> tuple[Tensor, Tensor, Tensor]:
    """Network Dissection's view: per concept the one filter (and its threshold) that segments it best.

    Returns:
        (filter int64 [N], threshold float [N], iou float [N]) on the given data.
    """
    n = targets.shape[1]
    best_iou, best_f, best_t = torch.full((n,), -1.0), torch.zeros(n, dtype=torch.long), torch.zeros(n)
    for c in range(activations.shape[1]):
        a = activations[:, c : c + 1].expand(-1, n, -1, -1)
        t, iou = best_threshold(a, targets, quantiles)
        better = iou > best_iou
        best_iou = torch.where(better, iou, best_iou)
        best_f = torch.where(better, torch.full_like(best_f, c), best_f)
        best_t = torch.where(better, t, best_t)
    return best_f, best_t, best_iou


# ---------------------------------------------------------------------- benchmark
IOU_GAIN = 0.1  # the check: combination IoU - best single filter IoU, mean over the concepts


@register_perception_bench(
    "net2vec",
    paper="Fong and Vedaldi, Net2Vec, CVPR 2018 (arXiv 1801.03454)",
    check="filter combination's segmentation IoU >= best single filter's + 0.1 (mean over 12 concepts)",
    ablation="best single filter, threshold tuned (Network Dissection)",
)
def bench_net2vec(quick: bool, seed: int) -> BenchOutcome:
    """Fit combinations and single-filter thresholds on probe crops; compare IoUs on held-out crops."""
    from perception.interpret.subject import bench_subject

    subject = bench_subject(quick, seed)
    config = Net2VecConfig(steps=20) if quick else Net2VecConfig()
    names = concepts()
    probe_t, test_t = concept_targets(subject.probe, names), concept_targets(subject.test, names)
    probe_a = layer_activations(subject.net, subject.probe.crops, config.layer)
    test_a = layer_activations(subject.net, subject.test.crops, config.layer)
    vectors, history = fit_concept_vectors(probe_a, probe_t, config, seed)
    with torch.no_grad():
        level, _ = best_threshold(vectors(probe_a), probe_t)
        combo = set_iou(vectors(test_a) > level[None, :, None, None], test_t)
    filt, thr, _ = best_single_filters(probe_a, probe_t)
    single = set_iou(test_a[:, filt] > thr[None, :, None, None], test_t)
    present = test_t.any((0, 2, 3)) & probe_t.any((0, 2, 3))  # concepts seen in both sets
    gain = float((combo - single)[present].mean()) if present.any() else 0.0
    label = [f"{a}={v}" if v else a for a, v in names]
    checks = (
        Check("concept segmentation IoU, combination vs best filter",
              f"mean held-out set IoU over {int(present.sum())} concepts (gain {gain:+.3f})",
              float(combo[present].mean()) if present.any() else 0.0,
              float(single[present].mean()) if present.any() else 0.0,
              f">= ablation + {IOU_GAIN}", bool(present.any()) and gain >= IOU_GAIN),
    )
    figures = {
        "layer": config.layer, "filters": probe_a.shape[1], "steps": config.steps,
        "iou_combination": dict(zip(label, combo.tolist(), strict=True)),
        "iou_best_filter": dict(zip(label, single.tolist(), strict=True)),
        "best_filter": dict(zip(label, filt.tolist(), strict=True)),
        "concepts_with_gain_0.1": int(((combo - single) >= IOU_GAIN)[present].sum()),
        "loss_first_last": [history[0]["loss"], history[-1]["loss"]] if history else None,
        "subject_accuracy": subject.accuracy, "probe_crops": len(subject.probe), "test_crops": len(subject.test),
        "subject": repr(subject.config),
    }
    return BenchOutcome(checks, figures)
