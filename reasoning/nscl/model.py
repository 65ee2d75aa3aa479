"""NS-CL's visual side: object features meet concept embeddings (Mao et al., ICLR 2019).

Each object proposal (an image crop stacked with its mask, and its box) goes
through a small CNN to a feature vector (three stride-2 stages, each optionally
followed by ``residual`` residual blocks that widen its receptive field to the
whole crop).  Per attribute group (colour, shape,
material, size) a linear map takes it into that group's concept space, where
every concept (``red``, ``cube``, ...) is one learned embedding; the object's
logit for a concept is the paper's

    (cos(f_a(object), e_concept) - margin) / temperature

and relations (``left``, ``behind``, ...) work the same way on a feature of the
object pair (both boxes and their difference).  The logits are a
:class:`~reasoning.executor.soft.SoftScenes`, which the quasi-symbolic executor
runs programs over; nothing here ever sees an attribute label.

Shapes (K objects of one image, crop side S)::

    crops   float [K, 4, S, S]   RGB in [0, 1] and the mask channel
    boxes   float [K, 4]         (cx / W, cy / H, side / W, side / H)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.executor.soft import SoftScenes

__all__ = ["ConceptConfig", "ConceptLearner", "ResidualBlock"]


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

        self.cnn = nn.Sequential(block(4, w), block(w, 2 * w), block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1))
        self.object_mlp = nn.Sequential(
            nn.Linear(4 * w + 4, config.feature_dim), nn.ReLU(inplace=True), nn.Linear(config.feature_dim, config.feature_dim)
        )
        d = config.concept_dim
        self.attribute_maps = nn.ModuleDict({a: nn.Linear(config.feature_dim, d) for a in self.vocabulary})
        self.concepts = nn.ParameterDict(
            {a: nn.Parameter(torch.randn(len(ws), d) * 0.5) for a, ws in self.vocabulary.items()}
        )
        self.pair_mlp = nn.Sequential(nn.Linear(12, 64), nn.ReLU(inplace=True), nn.Linear(64, d))
        self.relation_concepts = nn.Parameter(torch.randn(len(self.relation_names), d) * 0.5)

    def object_features(self, crops: Tensor, boxes: Tensor) -> Tensor:
        """``[K, 4, S, S]`` crops and ``[K, 4]`` boxes -> ``[K, feature_dim]``."""
        pooled = self.cnn(crops).flatten(1)
        return self.object_mlp(torch.cat([pooled, boxes], dim=1))

    def _logits(self, x: Tensor, concepts: Tensor) -> Tensor:
        cos = F.normalize(x, dim=-1) @ F.normalize(concepts, dim=-1).T
        return (cos - self.config.margin) / self.config.temperature

    def forward(self, crops: Sequence[Tensor], boxes: Sequence[Tensor]) -> SoftScenes:
        """Per image its crops ``[K_s, 4, S, S]`` and boxes ``[K_s, 4]`` -> the batch's concept logits."""
        counts = [len(b) for b in boxes]
        s, n = len(counts), max(counts, default=0)
        dtype, device = self.relation_concepts.dtype, self.relation_concepts.device
        present = torch.zeros(s, n, dtype=dtype, device=device)
        for k, c in enumerate(counts):
            present[k, :c] = 1.0
        flat_boxes = torch.cat(list(boxes)) if s else torch.zeros(0, 4, device=device)
        features = self.object_features(torch.cat(list(crops)), flat_boxes) if sum(counts) else None
        attributes = {}
        for a, words in self.vocabulary.items():
            out = torch.full((s, n, len(words)), -1.0 / self.config.temperature, dtype=dtype, device=device)
            if features is not None:
                logits = self._logits(self.attribute_maps[a](features), self.concepts[a])
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


def _slots(counts: Sequence[int], device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(scene, object) index pairs of the real objects, in order."""
    scene = torch.cat([torch.full((c,), k, dtype=torch.long, device=device) for k, c in enumerate(counts)])
    obj = torch.cat([torch.arange(c, device=device) for c in counts])
    return scene, obj
