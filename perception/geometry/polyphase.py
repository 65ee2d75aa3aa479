"""Learnable polyphase sampling: down-sampling that makes an attribute classifier shift invariant.

Rojas-Gomez, Lim, Schwing, Do and Yeh, "Learnable Polyphase Sampling for Shift
Invariant and Equivariant Convolutional Networks", NeurIPS 2022 (arXiv
2210.08001).  A stride-2 down-sampling keeps one of the four polyphase
components of a feature map (even/odd rows x even/odd columns); plain
subsampling always keeps the (0, 0) one, so a one-pixel shift of the input
changes what the network sees.  Learnable polyphase down-sampling (LPD) scores
each component with a small shift-invariant network (circular convolutions and
a global mean) and keeps the best-scoring one: a circular shift of the input
permutes the components and shifts each, the scores follow the permutation,
and the same content is kept.  With circular padding throughout and a global
mean before the heads, the classifier is exactly invariant to circular shifts.
Training samples a component with the Gumbel-softmax over the scores (Sec.
3.2), straight-through: the forward pass keeps one component, the gradient is
the soft one's; evaluation takes the arg-max.

:class:`PolyphaseAttributeNet` classifies an object crop (RGB + mask, as the
derenderer's attribute network sees it) into shape, colour and material; size
is left out because it is read from the crop box, not from the crop's pixels.
The ablation is the same network with plain subsampling (``down="plain"``).

Shapes (K crops of side S, a multiple of 8)::

    crops       float [K, 4, S, S]
    logits      {attr: float [K, n_values]}   attr in shape, color, material
    components  float [K, 4, C, H / 2, W / 2] (polyphase_components)
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
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["PolyphaseConfig", "polyphase_components", "LearnablePolyphaseDown", "PolyphaseAttributeNet",
           "CROP_ATTRIBUTES", "shift_consistency"]

CROP_ATTRIBUTES = ("shape", "color", "material")  # what a crop's pixels show (size needs the box)
DOWNS = ("lps", "plain")


@dataclass(frozen=True)
class PolyphaseConfig:
    """Architecture of :class:`PolyphaseAttributeNet`.

    Args:
        width: Channels of the first stage (doubled at each of the three down-samplings).
        down: ``"lps"`` (learnable polyphase) or ``"plain"`` (keep component (0, 0): the ablation).
        tau: Gumbel-softmax temperature of the soft selection in training.
    """

    width: int = 16
    down: str = "lps"
    tau: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.down not in DOWNS:
            raise ConfigError(f"PolyphaseConfig.down must be one of {DOWNS}, got {self.down!r}")


def polyphase_components(x: Tensor) -> Tensor:
    """The four stride-2 polyphase components: [N, C, H, W] -> [N, 4, C, H/2, W/2] (order (0,0),(0,1),(1,0),(1,1))."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise StateError(f"polyphase_components needs even H and W, got {tuple(x.shape[-2:])}")
    return torch.stack([x[..., i::2, j::2] for i in (0, 1) for j in (0, 1)], 1)


class LearnablePolyphaseDown(nn.Module):
    """LPD: score each polyphase component, keep the best (soft in training, arg-max in evaluation).

    ``forward(x [N, C, H, W]) -> [N, C, H/2, W/2]``.
    """

    def __init__(self, channels: int, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        hidden = max(channels // 2, 4)
        self.score_net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, padding_mode="circular"),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, 1),
        )

    def scores(self, parts: Tensor) -> Tensor:
        """Score of each component: [N, 4, C, h, w] -> [N, 4] (circular convolutions, then a global mean)."""
        return self.score_net(parts.flatten(0, 1)).mean((1, 2, 3)).view(parts.shape[0], 4)

    def forward(self, x: Tensor) -> Tensor:
        parts = polyphase_components(x)  # [N, 4, C, h, w]
        logits = self.scores(parts)
        if self.training:
            # straight-through: the forward pass keeps one component, as evaluation does
            weight = F.gumbel_softmax(logits, tau=self.tau, hard=True)
        else:
            weight = F.one_hot(logits.argmax(1), 4).to(x.dtype)
        return torch.einsum("nk,nkchw->nchw", weight, parts)


class _PlainDown(nn.Module):
    """Plain stride-2 subsampling: keep the (0, 0) component."""

    def forward(self, x: Tensor) -> Tensor:
        return x[..., ::2, ::2]


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, padding_mode="circular", bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class PolyphaseAttributeNet(nn.Module):
    """Circular-padded CNN with three down-samplings (LPD or plain), a global mean and attribute heads.

    ``forward(crops [K, 4, S, S]) -> {attr: logits [K, n_values]}`` for :data:`CROP_ATTRIBUTES`.
    """

    def __init__(self, config: PolyphaseConfig = PolyphaseConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width

        def down(ch: int) -> nn.Module:
            return LearnablePolyphaseDown(ch, config.tau) if config.down == "lps" else _PlainDown()

        self.features = nn.Sequential(
            _conv(4, c), _conv(c, c), down(c),
            _conv(c, 2 * c), down(2 * c),
            _conv(2 * c, 4 * c), down(4 * c),
            _conv(4 * c, 4 * c),
        )
        self.heads = nn.ModuleDict({a: nn.Linear(4 * c, len(ATTRIBUTES[a])) for a in CROP_ATTRIBUTES})

    def forward(self, crops: Tensor) -> dict[str, Tensor]:
        if crops.dim() != 4 or crops.shape[1] != 4 or crops.shape[-1] % 8 or crops.shape[-2] % 8:
            raise StateError(f"PolyphaseAttributeNet expects crops [K, 4, S, S] with S a multiple of 8, "
                             f"got {tuple(crops.shape)}")
        z = self.features(crops).mean((2, 3))
        return {a: head(z) for a, head in self.heads.items()}


@torch.no_grad()
def predict(model: PolyphaseAttributeNet, crops: Tensor) -> Tensor:
    """Predicted value indices: int64 [K, len(CROP_ATTRIBUTES)]."""
    model.eval()
    out = [model(c) for c in crops.split(256)]
    return torch.stack([torch.cat([o[a] for o in out]).argmax(1) for a in CROP_ATTRIBUTES], 1)


def shift_consistency(model: PolyphaseAttributeNet, crops: Tensor, seed: int) -> float:
    """Fraction of crops whose predicted attributes are all unchanged under a random circular shift.

    As in the paper's consistency metric: each crop is compared under two
    random circular shifts (drawn from ``seed``), the first of which may be zero.
    """
    g = torch.Generator().manual_seed(seed)
    side = crops.shape[-1]
    shifts = torch.randint(side, (len(crops), 2, 2), generator=g)
    a = torch.stack([c.roll(tuple(s[0].tolist()), (1, 2)) for c, s in zip(crops, shifts, strict=True)])
    b = torch.stack([c.roll(tuple(s[1].tolist()), (1, 2)) for c, s in zip(crops, shifts, strict=True)])
    return float((predict(model, a) == predict(model, b)).all(1).float().mean())


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=200, test=80, steps=800, batch=32)
_QUICK = BenchSize(train=6, test=3, steps=10, batch=16)
_CROP = 32  # crop side: a multiple of 8 for three down-samplings
_WORLD = dict(width=240, height=160, min_pixels=60)  # CLEVR's 480 x 320 at half size


def train_polyphase(config: PolyphaseConfig, crops: Tensor, labels: dict[str, Tensor], steps: int, batch: int,
                    lr: float, seed: int) -> PolyphaseAttributeNet:
    """Train a classifier on ``crops`` / ``labels`` with the shared loop (no shift augmentation, as in the paper)."""
    torch.manual_seed(seed)
    model = PolyphaseAttributeNet(config)

    def step(idx: Tensor) -> dict[str, Tensor]:
        logits = model(crops[idx])
        return {"loss": sum(F.cross_entropy(logits[a], labels[a][idx]) for a in CROP_ATTRIBUTES)}

    train_steps(model, step, items=len(crops), steps=steps, batch=batch, lr=lr, seed=seed,
                desc=f"polyphase {config.down}")
    return model.eval()


@register_perception_bench(
    "polyphase",
    paper="Rojas-Gomez et al., learnable polyphase sampling, arXiv 2210.08001",
    check="circular-shift consistency 100% (plain: reported); attribute accuracy within 1 point of plain",
    ablation="plain stride-2 subsampling",
)
def bench_polyphase(quick: bool, seed: int) -> BenchOutcome:
    """Train LPS and plain classifiers on crops of the same scenes; test on scenes of other seeds."""
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig
    from physics.worlds.clevr_world import ClevrWorldConfig

    bench = _QUICK if quick else _FULL
    world, crop = ClevrWorldConfig(**_WORLD), AttributeConfig(crop_size=_CROP)
    base = 1_000_000 + seed * 10_000  # scene seeds: train then test, disjoint
    train = render_object_crops(range(base, base + bench.train), world, crop)
    test = render_object_crops(range(base + 5_000, base + 5_000 + bench.test), world, crop)
    models = {down: train_polyphase(PolyphaseConfig(down=down), train.crops, train.labels, bench.steps, bench.batch,
                                    bench.lr, seed) for down in DOWNS}
    truth = torch.stack([test.labels[a] for a in CROP_ATTRIBUTES], 1)
    right = {d: predict(m, test.crops) == truth for d, m in models.items()}
    acc = {d: float(r.float().mean()) for d, r in right.items()}
    cons = {d: shift_consistency(m, test.crops, seed) for d, m in models.items()}
    probe = test.crops[:1]
    checks = (
        Check("shift consistency", "fraction of held-out crops, higher is better", cons["lps"], cons["plain"],
              "== 1.0", cons["lps"] >= 1.0),
        Check("attribute accuracy", "mean over shape, color, material", acc["lps"], acc["plain"],
              ">= ablation - 0.01", acc["lps"] >= acc["plain"] - 0.01),
    )
    figures = {
        "train_objects": len(train), "test_objects": len(test), "train_scenes": bench.train,
        "test_scenes": bench.test, "steps": bench.steps, "batch": bench.batch, "crop": _CROP,
        "params_ours": count_parameters(models["lps"]), "params_ablation": count_parameters(models["plain"]),
        "macs_ours": count_macs(models["lps"], probe), "macs_ablation": count_macs(models["plain"], probe),
        "image": f"{world.width}x{world.height} pybullet CLEVR renders",
        "accuracy_per_attribute": {d: dict(zip(CROP_ATTRIBUTES, r.float().mean(0).tolist(), strict=True))
                                   for d, r in right.items()},
    }
    return BenchOutcome(checks, figures)
