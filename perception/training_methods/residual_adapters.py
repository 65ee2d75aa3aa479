"""Residual adapters: one network for several visual domains, a few per-domain parameters each.

Rebuffi, Bilen and Vedaldi, "Learning multiple visual domains with residual
adapters", NeurIPS 2017 (arXiv 1705.08045).  The 3x3 filter banks of a
network trained on one domain are shared by every domain; each domain owns
small *residual adapter* modules -- a 1x1 convolution ``A_d`` used as
``x + A_d x`` (identity at initialisation) -- its own batch normalisation and
its own classifier.  A new domain trains only those; the result is compared
with fine-tuning a whole copy of the network.

Here the adapter sits in series in front of each 3x3 bank (``W (x + A x)``; the
paper places it after the bank, ``x' + A x'`` with ``x' = W x``: the same 1x1
residual in series, but on the narrower side, so that ``A`` costs
``C_in^2 <= C_in C_out`` and stays at most 1/9 of the bank's ``9 C_in C_out``
when the widths grow).  Domains of the benchmark: shape x colour of CLEVR
object crops (the base domain, 24 classes), the shipped digits (upsampled to
the crop size, grey in three channels) and the material of CLEVR crops (a
second CLEVR task: rubber or metal, seen in the highlights).

Shapes::

    images  float [N, 3, S, S] in [0, 1]   (S = 16 in the benchmark)
    logits  float [N, n_classes of the domain]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
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
from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = ["AdapterConfig", "AdapterNet", "domain_parameters", "shared_parameters", "train_domain"]


@dataclass(frozen=True)
class AdapterConfig:
    """Widths of the four 3x3 banks (the second and third have stride 2) and whether domains get adapters."""

    widths: tuple[int, ...] = (16, 32, 64, 64)
    adapters: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ConfigError(f"AdapterConfig.widths needs four positive widths, got {self.widths}")


class _DomainModules(nn.Module):
    """What one domain owns: an adapter in front of each bank, a batch norm after it, and the classifier."""

    def __init__(self, config: AdapterConfig, n_classes: int) -> None:
        super().__init__()
        inputs = (3, *config.widths[:-1])
        self.adapters = nn.ModuleList(nn.Conv2d(c, c, 1, bias=False) for c in inputs) if config.adapters else None
        if self.adapters is not None:
            for a in self.adapters:
                nn.init.zeros_(a.weight)  # x + A x starts as the identity
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in config.widths)
        self.head = nn.Linear(config.widths[-1], n_classes)


class AdapterNet(nn.Module):
    """Shared 3x3 banks and per-domain modules: ``forward(images [N, 3, S, S], domain) -> logits [N, K_domain]``.

    Args:
        domains: Domain name -> number of classes.
        config: Widths, and whether the domains have adapters.
    """

    def __init__(self, domains: Mapping[str, int], config: AdapterConfig = AdapterConfig()) -> None:
        super().__init__()
        self.config = config
        inputs, strides = (3, *config.widths[:-1]), (1, 2, 2, 1)
        self.banks = nn.ModuleList(nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False)
                                   for i, o, s in zip(inputs, config.widths, strides, strict=True))
        self.domains = nn.ModuleDict({d: _DomainModules(config, k) for d, k in domains.items()})

    def add_domain(self, name: str, n_classes: int) -> None:
        """A new domain's modules (adapters at the identity, fresh norms and classifier)."""
        self.domains[name] = _DomainModules(self.config, n_classes)

    def forward(self, images: Tensor, domain: str) -> Tensor:
        if domain not in self.domains:
            raise ConfigError(f"AdapterNet has no domain {domain!r}; it has {sorted(self.domains)}")
        own = self.domains[domain]
        x = images
        for k, bank in enumerate(self.banks):
            if own.adapters is not None:
                x = x + own.adapters[k](x)
            x = F.relu(own.norms[k](bank(x)))
        return own.head(x.mean((2, 3)))


def domain_parameters(model: AdapterNet, domain: str, head: bool = False) -> int:
    """Parameters a domain owns: adapters and norms (and its classifier when ``head``)."""
    own = model.domains[domain]
    n = sum(p.numel() for p in own.norms.parameters())
    n += sum(p.numel() for p in own.adapters.parameters()) if own.adapters is not None else 0
    return n + (sum(p.numel() for p in own.head.parameters()) if head else 0)


def shared_parameters(model: AdapterNet) -> int:
    """Parameters of the shared 3x3 banks."""
    return sum(p.numel() for p in model.banks.parameters())


def train_domain(model: AdapterNet, domain: str, images: Tensor, labels: Tensor, *, shared: bool, steps: int,
                 batch: int, lr: float, seed: int) -> AdapterNet:
    """Train ``domain``'s modules, and the shared banks too when ``shared``; the rest is frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.domains[domain].parameters():
        p.requires_grad_(True)
    if shared:
        for p in model.banks.parameters():
            p.requires_grad_(True)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(model(images[idx], domain), labels[idx])}

    trainable = [p for p in model.parameters() if p.requires_grad]
    train_steps(model, step, items=len(images), steps=steps, batch=batch, lr=lr, seed=seed,
                desc=f"{domain} {'all' if shared else 'adapters'}",
                optimizer=lambda m: torch.optim.Adam(trainable, lr=lr))
    return model.eval()


@torch.no_grad()
def _accuracy(model: AdapterNet, domain: str, images: Tensor, labels: Tensor) -> float:
    model.eval()
    return float((model(images, domain).argmax(1) == labels).float().mean())


# ---------------------------------------------------------------------- benchmark
@dataclass(frozen=True)
class _AdapterBench:
    size: BenchSize  # train / test: CLEVR scenes; steps per domain
    base_steps: int


_FULL = _AdapterBench(BenchSize(train=200, test=80, steps=800, batch=64), base_steps=1000)
_QUICK = _AdapterBench(BenchSize(train=4, test=2, steps=8, batch=16), base_steps=8)
_SIDE = 16  # image side of every domain
_WORLD = dict(width=240, height=160, min_pixels=60)  # CLEVR's 480 x 320 at half size


def _domains(quick: bool, seed: int) -> dict[str, tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Each domain's (train images, train labels, test images, test labels) at the common size."""
    from perception.datasets.digits import load_digit_split
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig
    from physics.worlds.clevr_world import ClevrWorldConfig

    size = (_QUICK if quick else _FULL).size
    world, crop = ClevrWorldConfig(**_WORLD), AttributeConfig(crop_size=_SIDE)
    base = 3_500_000 + seed * 10_000
    train = render_object_crops(range(base, base + size.train), world, crop)
    test = render_object_crops(range(base + 5_000, base + 5_000 + size.test), world, crop)
    digits = load_digit_split(seed)

    def grey(x: Tensor) -> Tensor:
        return F.interpolate(x, size=(_SIDE, _SIDE), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)

    n_digits = 40 if quick else len(digits.train_labels)
    return {
        "clevr-shape-color": (train.crops[:, :3], train.labels["shape"] * 8 + train.labels["color"],
                              test.crops[:, :3], test.labels["shape"] * 8 + test.labels["color"]),
        "digits": (grey(digits.train_images[:n_digits]), digits.train_labels[:n_digits],
                   grey(digits.test_images), digits.test_labels),
        "clevr-material": (train.crops[:, :3], train.labels["material"], test.crops[:, :3], test.labels["material"]),
    }


_CLASSES = {"clevr-shape-color": 24, "digits": 10, "clevr-material": 2}


@register_perception_bench(
    "residual-adapters",
    paper="Rebuffi, Bilen and Vedaldi, residual adapters, NeurIPS 2017, arXiv 1705.08045",
    check="per new domain: adapter accuracy >= 95% of full fine-tuning's, with <= 10% extra parameters",
    ablation="full fine-tuning of a copy of the base network per domain",
)
def bench_residual_adapters(quick: bool, seed: int) -> BenchOutcome:
    """Base network on CLEVR shape x colour; digits and CLEVR material by adapters and by full fine-tuning."""
    cfg = _QUICK if quick else _FULL
    data = _domains(quick, seed)
    base_name = "clevr-shape-color"
    torch.manual_seed(seed)
    base = AdapterNet({base_name: _CLASSES[base_name]})
    kw = dict(batch=cfg.size.batch, lr=cfg.size.lr, seed=seed)
    xb, yb, tb, lb = data[base_name]
    train_domain(base, base_name, xb, yb, shared=True, steps=cfg.base_steps, **kw)
    shared = shared_parameters(base)
    checks, figures = [], {"base_accuracy": _accuracy(base, base_name, tb, lb), "shared_parameters": shared,
                           "steps_per_domain": cfg.size.steps, "base_steps": cfg.base_steps, "side": _SIDE}
    adapters = base  # one network that grows a domain at a time
    for name in ("digits", "clevr-material"):
        x, y, tx, ty = data[name]
        torch.manual_seed(seed)
        adapters.add_domain(name, _CLASSES[name])
        train_domain(adapters, name, x, y, shared=False, steps=cfg.size.steps, **kw)
        ours = _accuracy(adapters, name, tx, ty)
        finetuned = copy.deepcopy(base)
        for other in list(finetuned.domains):
            if other != name:
                del finetuned.domains[other]
        torch.manual_seed(seed)
        finetuned.domains[name] = _DomainModules(base.config, _CLASSES[name])  # the same fresh start
        train_domain(finetuned, name, x, y, shared=True, steps=cfg.size.steps, **kw)
        full = _accuracy(finetuned, name, tx, ty)
        extra = domain_parameters(adapters, name) / shared
        checks.append(Check(f"{name}: accuracy ratio", "adapter accuracy / fine-tuned accuracy", ours / max(full, 1e-9),
                            None, ">= 0.95", ours >= 0.95 * full))
        checks.append(Check(f"{name}: extra parameters", "domain's adapters and norms / shared banks", extra, None,
                            "<= 0.10", extra <= 0.10))
        figures[name] = {"adapters": ours, "fine-tuned": full, "train": len(y), "test": len(ty),
                         "domain_parameters": domain_parameters(adapters, name),
                         "domain_parameters_with_head": domain_parameters(adapters, name, head=True)}
    figures["base_accuracy_after_all_domains"] = _accuracy(adapters, base_name, tb, lb)  # unchanged: banks frozen
    return BenchOutcome(tuple(checks), figures)
