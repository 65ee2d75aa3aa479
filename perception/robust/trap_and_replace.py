"""Trap and replace: a backdoor trapped in a small, easy-to-replace classification head, which is then replaced.

Wang, Hong, Zhang, Lin, Wang, Ding and Wang, "Trap and Replace: Defending
Backdoor Attacks by Trapping Them into an Easy-to-Replace Subnetwork", NeurIPS
2022 (arXiv 2210.06428).  Backdoor triggers are learned much faster than the
task, so a network whose only classifier is a **lightweight head** over a stem
learns the trigger in that head.  The stem is trained with the head and with an
auxiliary **image-reconstruction head**, which makes it keep the image's
low-level content rather than collapse onto the trigger.  The poisoned head is
then **replaced**: a new head is trained from scratch on a small clean set with
the stem frozen, and the trigger no longer leads anywhere.

Here the poisoned data are digits: a fraction of the training images of the
other classes carries a bright 2x2 patch in the bottom-right corner and is
relabelled as the target class (a BadNets-style attack).  The ablation is the
same stem and head trained end to end on the poisoned data and kept
(undefended).

Shapes::

    images    float [N, 1, 8, 8] in [0, 1]
    features  float [N, C, 4, 4]   the stem's output
    logits    float [N, 10]; reconstruction float [N, 1, 8, 8]
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
from perception.datasets.digits import N_CLASSES
from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = ["TrapConfig", "TrapNet", "add_trigger", "poison", "attack_success", "clean_accuracy", "train_trap", "replace_head"]


@dataclass(frozen=True)
class TrapConfig:
    """The network, the attack and the defence.

    Args:
        width: Channels of the stem's first convolution (the second has twice as many).
        recon_weight: Weight of the reconstruction loss (0: no auxiliary head).
        target: The class the trigger leads to.
        poison_rate: Fraction of the other classes' training images poisoned.
    """

    width: int = 16
    recon_weight: float = 1.0
    target: int = 0
    poison_rate: float = 0.1

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.width < 1 or self.recon_weight < 0 or not 0 <= self.target < N_CLASSES or not 0 <= self.poison_rate <= 1:
            raise ConfigError(f"TrapConfig: width >= 1, recon_weight >= 0, target a class, poison_rate in [0, 1]; "
                              f"got {self}")


def add_trigger(images: Tensor) -> Tensor:
    """The images with the trigger: a 2x2 patch of value 1 in the bottom-right corner ([N, 1, 8, 8], new tensor)."""
    out = images.clone()
    out[..., 6:8, 6:8] = 1.0
    return out


def poison(images: Tensor, labels: Tensor, config: TrapConfig, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Poisoned training data: (images, labels, bool [N] which were poisoned)."""
    g = torch.Generator().manual_seed(seed)
    candidates = torch.nonzero(labels != config.target).flatten()
    chosen = candidates[torch.randperm(len(candidates), generator=g)[: int(round(config.poison_rate * len(candidates)))]]
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[chosen] = True
    images, labels = images.clone(), labels.clone()
    images[mask] = add_trigger(images[mask])
    labels[mask] = config.target
    return images, labels, mask


class TrapNet(nn.Module):
    """Stem, lightweight classification head (one linear layer) and reconstruction head.

    ``forward(images [N, 1, 8, 8]) -> (logits [N, 10], reconstruction [N, 1, 8, 8])``.
    """

    def __init__(self, config: TrapConfig = TrapConfig()) -> None:
        super().__init__()
        c = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = self.new_head(config)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 2, stride=2), nn.ReLU(), nn.Conv2d(c, 1, 3, padding=1), nn.Sigmoid(),
        )

    @staticmethod
    def new_head(config: TrapConfig) -> nn.Module:
        """A fresh lightweight head: [N, 2 * width, 4, 4] -> [N, 10]."""
        return nn.Sequential(nn.Flatten(), nn.Linear(2 * config.width * 16, N_CLASSES))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        z = self.stem(images)
        return self.head(z), self.decoder(z)


@torch.no_grad()
def _predict(model: TrapNet, images: Tensor) -> Tensor:
    model.eval()
    return model(images)[0].argmax(1)


def clean_accuracy(model: TrapNet, images: Tensor, labels: Tensor) -> float:
    """Fraction of clean ``images`` classified right."""
    return float((_predict(model, images) == labels).float().mean())


def attack_success(model: TrapNet, images: Tensor, labels: Tensor, target: int) -> float:
    """Fraction of the non-target images that the trigger turns into ``target``."""
    keep = labels != target
    return float((_predict(model, add_trigger(images[keep])) == target).float().mean())


def train_trap(config: TrapConfig, images: Tensor, labels: Tensor, *, steps: int, batch: int, lr: float,
               seed: int) -> TrapNet:
    """Train stem and head (and the reconstruction head when ``recon_weight > 0``) on possibly poisoned data."""
    torch.manual_seed(seed)
    model = TrapNet(config)

    def step(idx: Tensor) -> dict[str, Tensor]:
        logits, recon = model(images[idx])
        task = F.cross_entropy(logits, labels[idx])
        rec = F.mse_loss(recon, images[idx])
        return {"loss": task + config.recon_weight * rec, "task": task, "recon": rec}

    train_steps(model, step, items=len(images), steps=steps, batch=batch, lr=lr, seed=seed,
                desc=f"trap recon={config.recon_weight:g}")
    return model.eval()


def replace_head(model: TrapNet, config: TrapConfig, images: Tensor, labels: Tensor, *, steps: int, batch: int,
                 lr: float, seed: int) -> TrapNet:
    """Replace the head by a fresh one trained on clean (images, labels) with the stem frozen; returns ``model``."""
    torch.manual_seed(seed)
    model.head = TrapNet.new_head(config)
    for p in model.stem.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        features = model.stem.eval()(images)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(model.head(features[idx]), labels[idx])}

    train_steps(model.head, step, items=len(images), steps=steps, batch=batch, lr=lr, seed=seed, desc="replace head")
    return model.eval()


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=0, test=0, steps=2000, batch=64, lr=1e-3)
_QUICK = BenchSize(train=0, test=0, steps=20, batch=32, lr=1e-3)
_CLEAN_PER_CLASS = 20  # the small clean set the new head is trained on (200 digits, from the validation part)
_REPLACE_STEPS = (500, 10)  # full, quick


@register_perception_bench(
    "trap-and-replace",
    paper="Wang et al., trap and replace, NeurIPS 2022, arXiv 2210.06428",
    check="attack success from >= 90% (undefended) to <= 10%; clean accuracy within 3 points of undefended",
    ablation="same stem and head trained end to end on the poisoned digits (undefended)",
)
def bench_trap_and_replace(quick: bool, seed: int) -> BenchOutcome:
    """Poison digits; train undefended and trap (stem + light head + reconstruction); replace the head on clean digits."""
    from perception.datasets.digits import load_digit_split

    size = _QUICK if quick else _FULL
    split = load_digit_split(seed)
    config = TrapConfig()
    x, y, poisoned = poison(split.train_images, split.train_labels, config, seed)
    g = torch.Generator().manual_seed(seed + 2)
    clean_idx = torch.cat([torch.nonzero(split.val_labels == c).flatten()[
        torch.randperm(int((split.val_labels == c).sum()), generator=g)[:_CLEAN_PER_CLASS]] for c in range(N_CLASSES)])
    kw = dict(steps=size.steps, batch=size.batch, lr=size.lr, seed=seed)
    replace_kw = dict(steps=_REPLACE_STEPS[quick], batch=size.batch, lr=size.lr, seed=seed)
    undefended = train_trap(TrapConfig(recon_weight=0.0), x, y, **kw)
    trap = train_trap(config, x, y, **kw)
    before = {"asr": attack_success(trap, split.test_images, split.test_labels, config.target),
              "clean": clean_accuracy(trap, split.test_images, split.test_labels)}
    defended = replace_head(trap, config, split.val_images[clean_idx], split.val_labels[clean_idx], **replace_kw)
    # the same replacement without the reconstruction head, to see what the auxiliary head adds
    no_recon = replace_head(train_trap(TrapConfig(recon_weight=0.0), x, y, **kw), config,
                            split.val_images[clean_idx], split.val_labels[clean_idx], **replace_kw)
    tx, ty, t = split.test_images, split.test_labels, config.target
    asr = {"undefended": attack_success(undefended, tx, ty, t), "defended": attack_success(defended, tx, ty, t),
           "replace without reconstruction": attack_success(no_recon, tx, ty, t), "trap before replacing": before["asr"]}
    clean = {"undefended": clean_accuracy(undefended, tx, ty), "defended": clean_accuracy(defended, tx, ty),
             "replace without reconstruction": clean_accuracy(no_recon, tx, ty), "trap before replacing": before["clean"]}
    checks = (
        Check("attack success (undefended >= 0.9)", "fraction of triggered non-target test digits sent to the target",
              asr["defended"], asr["undefended"], "<= 0.10 and ablation >= 0.90",
              asr["defended"] <= 0.10 and asr["undefended"] >= 0.90),
        Check("clean accuracy", "fraction of held-out digits, higher is better", clean["defended"], clean["undefended"],
              ">= ablation - 0.03", clean["defended"] >= clean["undefended"] - 0.03),
    )
    figures = {"attack_success": asr, "clean_accuracy": clean, "poisoned_train_images": int(poisoned.sum()),
               "train_digits": len(y), "clean_set": len(clean_idx), "poison_rate": config.poison_rate,
               "target": t, "trigger": "2x2 patch of 1.0 at rows 6-7, columns 6-7", "steps": size.steps,
               "replace_steps": _REPLACE_STEPS[quick]}
    return BenchOutcome(checks, figures)
