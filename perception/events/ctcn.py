"""C-TCN: concept-wise temporal convolution for event localisation, against a plain TCN.

Li et al., "Deep Concept-wise Temporal Convolutional Networks for Action
Localization", ACM MM 2020 (arXiv 1908.09442).  A localiser reads a sequence
of per-frame concept scores (what a frame-level detector says about each of C
concepts).  A plain temporal convolutional network (TCN) mixes all concepts at
its first layer and then convolves mixed channels over time.  A concept-wise
temporal convolution (CTC) layer convolves every concept's own sequence with
the same m kernels, keeping the concepts apart through the depth (a 2-D
convolution with kernel ``(1, k)`` over a ``[m, C, T]`` tensor), and one 1 x 1
layer mixes the concepts at the end: far fewer weights, shared by all concepts.

Data (:func:`concept_sequences`, synthesised in torch): T frames of C concept
scores with noise and stray activations; an event of class k lasts 6-14
frames, in which concept ``a_k`` fires during the first half and ``b_k``
during the second; class k + K has the same two concepts in the reverse
order; the other concepts are distractors.  Localisation is read from the
per-frame labels (runs of one class are segments) and scored by segment F1 at
temporal IoU 0.5.  The benchmark uses K = 12 kinds (24 event classes, as
THUMOS'14 has 20 action classes, over 48 concepts: :data:`BENCH_KINDS`), a
128-wide plain TCN, and reads each network's F1 as the mean over three
training seeds; with K = 3 the plain TCN keeps up (docs/results/perception.md).

Shapes (N sequences, C concepts, T frames)::

    scores  float [N, C, T]
    labels  int64 [N, T] in 0..2K (0 is background)
    logits  float [N, 2K + 1, T]
"""

from __future__ import annotations

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
from perception.model_stats import count_macs, count_parameters
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["TCNConfig", "TCN", "concept_sequences", "segments", "segment_f1", "EVENT_KINDS", "BENCH_KINDS"]

KINDS = ("ctcn", "plain")
EVENT_KINDS = 3  # K: classes are K kinds x 2 orders, plus background (the default of the data and the config)
BENCH_KINDS = 12  # K of the benchmark's task: 24 event classes, 24 of the 48 concepts take part in events


@dataclass(frozen=True)
class TCNConfig:
    """Architecture of :class:`TCN`.

    Args:
        kind: ``"ctcn"`` (concept-wise layers) or ``"plain"`` (concepts mixed at the first layer).
        depth: Number of temporal convolutions.
        concepts: C.
        width: Channels of the plain TCN; kernels per concept (m) of the C-TCN.
        kernel: Temporal kernel size.
        residual: Every layer after the first adds its input back (``x + BN(conv(x))``, then ReLU), as the
            paper's backbone of CTC residual blocks; False stacks the layers as a conventional TCN.
        classes: Output classes per frame, background included (the synthetic task's ``2K + 1`` by default).
        head_hidden: 0 reads the classes from the last layer with one 1 x 1 convolution; ``h > 0`` puts a
            hidden 1 x 1 layer of ``h`` channels and a ReLU before it (a per-frame MLP, the same for both kinds).
    """

    kind: str = "ctcn"
    depth: int = 8
    concepts: int = 48
    width: int = 8
    kernel: int = 3
    residual: bool = False
    classes: int = 2 * EVENT_KINDS + 1
    head_hidden: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.kind not in KINDS:
            raise ConfigError(f"TCNConfig.kind must be one of {KINDS}, got {self.kind!r}")
        if self.depth < 1 or self.width < 1 or self.concepts < 1 or self.classes < 2 or self.head_hidden < 0:
            raise ConfigError(f"TCNConfig needs depth, width, concepts >= 1 and classes >= 2, got {self}")


class _Layer(nn.Module):
    """Convolution, batch norm and ReLU; with ``residual`` (same widths) the input is added before the ReLU."""

    def __init__(self, conv: nn.Module, norm: nn.Module, residual: bool) -> None:
        super().__init__()
        self.conv, self.norm, self.residual = conv, norm, residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.conv(x))
        return F.relu(x + y if self.residual else y)


class TCN(nn.Module):
    """``forward(scores [N, C, T]) -> logits [N, classes, T]``; plain or concept-wise (module docstring)."""

    def __init__(self, config: TCNConfig = TCNConfig()) -> None:
        super().__init__()
        self.config = config
        c, w, k = config.concepts, config.width, config.kernel
        layers: list[nn.Module] = []
        if config.kind == "plain":
            chans = [c] + [w] * config.depth
            for i, (a, b) in enumerate(zip(chans, chans[1:], strict=False)):
                layers.append(_Layer(nn.Conv1d(a, b, k, padding=k // 2), nn.BatchNorm1d(b), config.residual and i > 0))
            features = w
        else:
            chans = [1] + [w] * config.depth
            for i, (a, b) in enumerate(zip(chans, chans[1:], strict=False)):
                layers.append(_Layer(nn.Conv2d(a, b, (1, k), padding=(0, k // 2)), nn.BatchNorm2d(b),
                                     config.residual and i > 0))
            features = w * c  # the concepts meet only in the head
        h = config.head_hidden
        self.head = nn.Conv1d(features, config.classes, 1) if h == 0 else nn.Sequential(
            nn.Conv1d(features, h, 1), nn.ReLU(), nn.Conv1d(h, config.classes, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, scores: Tensor) -> Tensor:
        if scores.dim() != 3 or scores.shape[1] != self.config.concepts:
            raise StateError(f"TCN expects scores [N, {self.config.concepts}, T], got {tuple(scores.shape)}")
        if self.config.kind == "plain":
            return self.head(self.body(scores))
        return self.head(self.body(scores.unsqueeze(1)).flatten(1, 2))  # [N, m, C, T] -> [N, m * C, T]


def concept_sequences(n: int, seed: int, *, frames: int = 96, concepts: int = 48,
                      noise: float = 0.25, group: int = 1, kinds: int = EVENT_KINDS) -> tuple[Tensor, Tensor]:
    """``n`` sequences of concept scores with their per-frame labels; a pure function of ``seed``.

    With ``group`` g > 1 each role of an event kind (its first and its second part) excites g concepts
    (``2K`` groups of g), each with its own gain drawn uniformly in [0.3, 1.0] per event, as one action
    excites many of a video backbone's latent channels, each weakly; ``group=1`` is the one-concept task.
    ``kinds`` K event kinds give labels in 0..2K (K = 3 by default).
    """
    if kinds < 1:
        raise ConfigError(f"concept_sequences needs kinds >= 1, got {kinds}")
    if concepts < 2 * kinds * group:
        raise ConfigError(f"concept_sequences needs concepts >= {2 * kinds * group} for {kinds} kinds and "
                          f"group {group}, got {concepts}")
    g = torch.Generator().manual_seed(seed)
    scores = (torch.rand(n, concepts, frames, generator=g) < 0.03).float() * 0.8  # stray activations
    labels = torch.zeros(n, frames, dtype=torch.int64)
    for i in range(n):
        t = int(torch.randint(0, 6, (1,), generator=g))
        while True:
            length = int(torch.randint(6, 15, (1,), generator=g))
            if t + length > frames:
                break
            cls = int(torch.randint(0, 2 * kinds, (1,), generator=g))
            kind = cls % kinds
            first, second = (2 * kind + 1, 2 * kind) if cls >= kinds else (2 * kind, 2 * kind + 1)
            half = length // 2
            if group == 1:
                scores[i, first, t : t + half] += 1.0
                scores[i, second, t + half : t + length] += 1.0
            else:
                gains = 0.3 + 0.7 * torch.rand(2, group, 1, generator=g)
                scores[i, first * group : (first + 1) * group, t : t + half] += gains[0]
                scores[i, second * group : (second + 1) * group, t + half : t + length] += gains[1]
            labels[i, t : t + length] = cls + 1
            t += length + int(torch.randint(4, 20, (1,), generator=g))
    return scores + noise * torch.randn(scores.shape, generator=g), labels


def segments(labels: Tensor) -> list[tuple[int, int, int]]:
    """Runs of one non-zero label in a [T] sequence: (class, start, end), end exclusive."""
    out, t, values = [], 0, labels.tolist()
    while t < len(values):
        if values[t] == 0:
            t += 1
            continue
        start = t
        while t < len(values) and values[t] == values[start]:
            t += 1
        out.append((values[start], start, t))
    return out


def segment_f1(pred: Tensor, truth: Tensor, iou: float = 0.5) -> float:
    """F1 of predicted segments [N, T] against true ones (same class, temporal IoU >= ``iou``, one match each)."""
    tp = n_pred = n_true = 0
    for p_row, t_row in zip(pred, truth, strict=True):
        found, true = segments(p_row), segments(t_row)
        n_pred, n_true = n_pred + len(found), n_true + len(true)
        used: set[int] = set()
        for c, s, e in found:
            for j, (c2, s2, e2) in enumerate(true):
                overlap = max(0, min(e, e2) - max(s, s2)) / (max(e, e2) - min(s, s2))
                if j not in used and c == c2 and overlap >= iou:
                    used.add(j)
                    tp += 1
                    break
    return 2 * tp / max(n_pred + n_true, 1)


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=100, test=300, steps=400, batch=16)  # few sequences: where sharing kernels matters
_QUICK = BenchSize(train=16, test=8, steps=4, batch=4)
_INITS = 3  # training seeds per network: one C-TCN's F1 moves ~8 points between initialisations
_PLAIN_WIDTH = 128  # wide enough to fit its training set on the 12-kind task (64 channels reach training F1 0.71 in 400 steps)


def train_tcn(config: TCNConfig, scores: Tensor, labels: Tensor, bench: BenchSize, seed: int) -> TCN:
    """Train a :class:`TCN` with per-frame cross-entropy (the shared loop)."""
    torch.manual_seed(seed)
    model = TCN(config)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(model(scores[idx]), labels[idx])}

    train_steps(model, step, items=len(labels), steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed,
                desc=f"{config.kind} depth {config.depth}")
    return model.eval()


@register_perception_bench(
    "ctcn",
    paper="Li et al., C-TCN, arXiv 1908.09442",
    check="segment F1 at tIoU 0.5 at depth 8 >= plain TCN of depth 8 + 5 points; plain's change from depth 4 reported",
    ablation="plain TCN of the same depth",
)
def bench_ctcn(quick: bool, seed: int) -> BenchOutcome:
    """Train C-TCN (depth 8) and plain TCNs (depths 4 and 8) on the same sequences, each from the same three
    training seeds (``seed``, ``seed + 1``, ``seed + 2``); test on another seed's sequences; compare mean F1."""
    bench = _QUICK if quick else _FULL
    k = BENCH_KINDS
    train_x, train_y = concept_sequences(bench.train, seed=2 * seed, kinds=k)
    test_x, test_y = concept_sequences(bench.test, seed=2 * seed + 1, kinds=k)
    classes = 2 * k + 1
    runs = {"ctcn8": TCNConfig("ctcn", 8, classes=classes), "plain8": TCNConfig("plain", 8, width=_PLAIN_WIDTH, classes=classes),
            "plain4": TCNConfig("plain", 4, width=_PLAIN_WIDTH, classes=classes)}
    inits = [seed + i for i in range(_INITS)]  # the same training seeds (initialisation, batch order) for every network
    per_init: dict[str, list[float]] = {name: [] for name in runs}
    train_f1: dict[str, list[float]] = {name: [] for name in runs}
    for s in inits:
        models = {name: train_tcn(c, train_x, train_y, bench, s) for name, c in runs.items()}
        with torch.no_grad():
            for name, m in models.items():
                per_init[name].append(segment_f1(m(test_x).argmax(1), test_y))
                train_f1[name].append(segment_f1(m(train_x).argmax(1), train_y))
    f1 = {name: sum(v) / len(v) for name, v in per_init.items()}
    probe = test_x[:1]
    checks = (
        Check(f"segment F1 at tIoU 0.5, depth 8 (mean of {_INITS} training seeds)", "higher is better", f1["ctcn8"], f1["plain8"],
              ">= ablation + 0.05", f1["ctcn8"] >= f1["plain8"] + 0.05),
    )
    figures = {
        "f1_plain_depth4": f1["plain4"], "plain_drop_depth4_to_8": f1["plain4"] - f1["plain8"],
        "f1_per_training_seed": per_init, "training_seeds": inits, "train_f1": train_f1,
        "params": {name: count_parameters(m) for name, m in models.items()},
        "macs_per_sequence": {name: count_macs(m, probe) for name, m in models.items()},
        "train_sequences": bench.train, "test_sequences": bench.test, "steps": bench.steps, "batch": bench.batch,
        "event_kinds": k, "event_classes": 2 * k,
        "data": f"synthetic concept-score sequences in torch, 48 concepts x 96 frames, {k} event kinds x 2 orders "
                "(train seed 2*seed, test 2*seed+1)",
    }
    return BenchOutcome(checks, figures)
