"""Selective prediction: calibrated attribute confidences, uncertain scene-graph nodes, abstention.

The abstain-when-unsure idea of DeepRadiologyNet (Merkow et al., arXiv
1711.09313): a classifier whose confidences are calibrated can hand the cases
it is unsure of to someone else, and be far more accurate on the rest.  Here
the classifier is the derenderer's attribute network
(:class:`~perception.derender.attributes.AttributeNet`):

* :class:`TemperatureScaler` -- one temperature per attribute, fitted by
  negative log-likelihood on held-out calibration crops (Guo et al., "On
  Calibration of Modern Neural Networks", ICML 2017), so that a softmax
  probability of 0.9 is right 90% of the time;
* :class:`ConfidenceGate` -- a threshold on a confidence, set from calibration
  data for a wanted coverage (the fraction of cases kept);
* :func:`mark_scene` -- writes each object's calibrated confidences into its
  scene-graph node (``extra["confidence"]``, one per attribute) and flags the
  node ``extra["uncertain"]`` when the weakest is below the gate;
* :class:`SelectiveDerenderer` -- the derenderer with both, registered as the
  perceiver ``derender-selective``; the NS-VQA answer path abstains on a scene
  with uncertain nodes (:mod:`reasoning.selective`).

Figures: :func:`expected_calibration_error` (ECE, equal-width bins of
confidence) and :func:`error_at_coverage` (the error of the most confident
fraction of predictions).

Shapes (K objects)::

    logits       {attr: float [K, n_values]}
    confidence   {attr: float [K]}  calibrated max-softmax probability
    prediction   {attr: int64 [K]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from perception.derender.attributes import crop_objects
from perception.derender.derenderer import (
    Derenderer,
    image_to_tensor,
    load_derenderer,
    save_derenderer,
)
from perception.registry import register_perceiver
from perception.scene_graph import SceneGraph, SceneObject
from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = [
    "TemperatureScaler",
    "ConfidenceGate",
    "calibrated",
    "expected_calibration_error",
    "error_at_coverage",
    "mark_scene",
    "uncertain_objects",
    "SelectiveDerenderer",
    "save_selective",
]


class TemperatureScaler(nn.Module):
    """One temperature per attribute: ``logits[a] / T[a]`` (T = 1 until :meth:`fit`)."""

    def __init__(self, attributes: Sequence[str] = tuple(ATTRIBUTES)) -> None:
        super().__init__()
        self.attributes = tuple(attributes)
        self.log_t = nn.Parameter(torch.zeros(len(self.attributes)))

    @property
    def temperatures(self) -> dict[str, float]:
        return {a: float(t) for a, t in zip(self.attributes, self.log_t.detach().exp(), strict=True)}

    def forward(self, logits: Mapping[str, Tensor]) -> dict[str, Tensor]:
        t = self.log_t.exp()
        return {a: logits[a] / t[i] for i, a in enumerate(self.attributes)}

    def fit(self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], steps: int = 100) -> TemperatureScaler:
        """Minimise the calibration crops' negative log-likelihood over log T (L-BFGS); returns self."""
        logits = {a: logits[a].detach() for a in self.attributes}
        opt = torch.optim.LBFGS([self.log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            scaled = self(logits)
            loss = sum(nn.functional.cross_entropy(scaled[a], labels[a]) for a in self.attributes)
            loss.backward()
            return loss

        opt.step(closure)
        return self


def calibrated(logits: Mapping[str, Tensor], scaler: TemperatureScaler | None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(confidence, prediction) per attribute from logits, after temperature scaling when ``scaler`` is given."""
    with torch.no_grad():
        scaled = scaler(logits) if scaler is not None else dict(logits)
        probs = {a: v.softmax(-1) for a, v in scaled.items()}
    return {a: p.max(-1).values for a, p in probs.items()}, {a: p.argmax(-1) for a, p in probs.items()}


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = 15) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by their counts."""
    confidence, correct = confidence.flatten().double(), correct.flatten().double()
    if len(confidence) == 0:
        raise ConfigError("expected_calibration_error needs at least one prediction")
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    index = torch.bucketize(confidence, edges[1:-1], right=True)  # bin b holds (edges[b], edges[b+1]]
    ece = 0.0
    for b in range(bins):
        sel = index == b
        if sel.any():
            ece += float(sel.double().mean()) * abs(float(correct[sel].mean()) - float(confidence[sel].mean()))
    return ece


def error_at_coverage(confidence: Tensor, correct: Tensor, coverage: float) -> float:
    """Error rate of the ``coverage`` fraction of predictions with the highest confidence."""
    if not 0 < coverage <= 1:
        raise ConfigError(f"coverage must be in (0, 1], got {coverage}")
    confidence, correct = confidence.flatten(), correct.flatten()
    keep = max(1, int(round(coverage * len(confidence))))
    order = torch.argsort(confidence, descending=True, stable=True)[:keep]
    return 1.0 - float(correct[order].float().mean())


class ConfidenceGate:
    """Accept a prediction when its confidence is at least ``threshold``."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    @classmethod
    def for_coverage(cls, confidence: Tensor, coverage: float) -> ConfidenceGate:
        """The threshold that keeps the ``coverage`` fraction of ``confidence`` (calibration data)."""
        if not 0 < coverage <= 1:
            raise ConfigError(f"coverage must be in (0, 1], got {coverage}")
        return cls(float(torch.quantile(confidence.flatten().double(), 1.0 - coverage)))

    def accepts(self, confidence: Tensor | float) -> Tensor | bool:
        return confidence >= self.threshold

    def __repr__(self) -> str:
        return f"ConfidenceGate(threshold={self.threshold:.4f})"


def mark_scene(scene: SceneGraph, confidence: Sequence[Mapping[str, float]], gate: ConfidenceGate) -> SceneGraph:
    """``scene`` whose object k carries ``extra["confidence"] = confidence[k]`` and ``extra["uncertain"]``.

    An object is uncertain when its weakest attribute confidence is below the gate.
    """
    if len(confidence) != len(scene.objects):
        raise ConfigError(f"mark_scene: {len(confidence)} confidences for the {len(scene.objects)} objects of {scene.name}")
    objects = tuple(
        SceneObject(o.shape, o.color, o.material, o.size, o.position, o.rotation, o.pixel_coords, o.mask,
                    {**o.extra, "confidence": {a: round(float(v), 6) for a, v in c.items()},
                     "uncertain": not bool(gate.accepts(min(c.values())))})
        for o, c in zip(scene.objects, confidence, strict=True)
    )
    return SceneGraph(objects, scene.directions, scene.relationships, scene.image_index, scene.image_filename,
                      scene.split, scene.extra)


def uncertain_objects(scene: SceneGraph) -> list[int]:
    """Indices of the objects :func:`mark_scene` flagged uncertain."""
    return [k for k, o in enumerate(scene.objects) if o.extra.get("uncertain")]


class SelectiveDerenderer(Derenderer):
    """The derenderer with calibrated attribute confidences and uncertain nodes marked (selective prediction).

    Args:
        derenderer: A loaded :class:`~perception.derender.Derenderer`.
        scaler: Fitted temperatures.
        gate: Threshold on an object's weakest calibrated attribute confidence.
    """

    name = "derender-selective"
    default_checkpoint = None

    def __init__(self, derenderer: Derenderer, scaler: TemperatureScaler, gate: ConfidenceGate) -> None:
        super().__init__(derenderer.proposal_net, derenderer.attribute_net, derenderer.projection,
                         derenderer.image_size, derenderer.heights, with_masks=derenderer.with_masks,
                         metadata=derenderer.metadata)
        self.scaler, self.gate = scaler.eval(), gate

    @classmethod
    def from_checkpoint(cls, path: PathLike) -> SelectiveDerenderer:
        """A derenderer checkpoint written by :func:`save_selective` (metadata ``selective``)."""
        base = load_derenderer(path)
        sel = base.metadata.get("selective")
        if not isinstance(sel, dict) or not {"temperatures", "threshold"} <= set(sel):
            raise CheckpointError(f"{path}: no fitted temperatures and gate (metadata 'selective'); "
                                  "write one with perception.confidence.save_selective")
        scaler = TemperatureScaler()
        with torch.no_grad():
            scaler.log_t.copy_(torch.tensor([float(sel["temperatures"][a]) for a in scaler.attributes]).log())
        return cls(base, scaler, ConfidenceGate(float(sel["threshold"])))

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray | Tensor, *, image_index: int | None = None,
                 image_filename: str | None = None) -> SceneGraph:
        """Derender one image; every node carries its confidences and the uncertain flag."""
        image = image_to_tensor(rgb)
        scene = super().__call__(image, image_index=image_index, image_filename=image_filename)
        if not scene.objects:
            return scene
        masks = self.instance_masks(image)  # the same masks the objects came from (deterministic)
        crops, boxes = crop_objects(image, masks, self.attribute_net.config)
        logits, _ = self.attribute_net(crops, boxes)
        confidence, _ = calibrated(logits, self.scaler)
        per_object = [{a: float(confidence[a][k]) for a in confidence} for k in range(len(scene.objects))]
        return mark_scene(scene, per_object, self.gate)


def save_selective(path: PathLike, derenderer: Derenderer, scaler: TemperatureScaler, gate: ConfidenceGate,
                   metadata: Mapping[str, Any] | None = None) -> None:
    """Write the derenderer with its temperatures and gate (loads with :meth:`SelectiveDerenderer.from_checkpoint`)."""
    meta = {**derenderer.metadata, **dict(metadata or {}),
            "selective": {"temperatures": scaler.temperatures, "threshold": gate.threshold}}
    save_derenderer(path, derenderer.proposal_net, derenderer.attribute_net, derenderer.projection,
                    derenderer.image_size, derenderer.heights, meta)


register_perceiver(SelectiveDerenderer, help="derenderer with calibrated confidences; marks uncertain nodes")
