"""CurveBall: a second-order solver that refines its Newton step by one gradient step on the step itself.

Henriques, Ehrhardt, Albanie and Vedaldi, "Small Steps and Giant Leaps: Minimal
Newton Solvers for Deep Learning", ICCV 2019 (arXiv 1805.08095).  The solver
keeps a step ``z`` (one tensor per parameter) and, each iteration, takes one
gradient step on the quadratic model of the loss
``M(z) = g.z + 1/2 z.(H + lambda I) z`` instead of inverting ``H``:

    dz = (J^T H_L J + lambda I) z + g        # two curvature products, no matrix
    z  <- rho z - beta dz
    w  <- w + z

``J`` is the Jacobian of the network's output ``f`` with respect to its
weights, ``H_L`` the Hessian of the loss with respect to ``f`` (so ``J^T H_L J``
is the Gauss-Newton matrix) and ``g = J^T dL/df`` the gradient.  ``J z`` is one
forward-mode product (:func:`torch.func.jvp`), ``J^T (.)`` one reverse-mode
product (:func:`torch.func.vjp`).  The hyper-parameters are automatic as in the
paper (Sec. 3.2): ``beta`` and ``rho`` minimise ``M`` over the plane spanned by
``dz`` and ``z`` (a 2x2 system that needs a second forward-mode product,
``J dz``), and ``lambda`` follows a trust-region rule: every few iterations the
real change of the loss is compared with the change ``M`` predicted, and
``lambda`` grows when the ratio is poor (below 1/2) and shrinks when the model
is pessimistic (above 3/2).

:class:`CurveBall` is a :class:`torch.optim.Optimizer`, so the shared training
loop drives it: the step function computes the loss (the loop back-propagates
it, which gives ``g``) and first hands the batch to the optimiser with
:meth:`CurveBall.bind`, because the curvature products need the network as a
function of its weights.

Shapes: the network maps ``inputs`` (any tensor, e.g. crops float [K, 4, S, S])
to one output tensor ``f`` (e.g. logits float [K, C]); ``loss_fn(f)`` is a
scalar.  :func:`gauss_newton_product` returns ``(J^T H_L J) v`` with the
shapes of the parameters.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp

from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.model_stats import count_parameters
from physics.errors import ConfigError, StateError

if TYPE_CHECKING:
    from perception.derender.attributes import AttributeConfig

__all__ = ["CurveBall", "gauss_newton_product", "CropAttributeNet", "BasicCNN", "attribute_loss", "steps_to_target",
           "steps_to_loss", "CROP_HEADS", "AttributeLogits", "median_steps"]

LossFn = Callable[[Tensor], Tensor]


@contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norm layers in training mode normalise by the batch's statistics without updating their running ones.

    The solver's products see the network as a function of its weights on one batch: in training mode that
    is batch norm with the batch's mean and variance (what the loss the loop back-propagates saw), and the
    running statistics are the loop's forward pass's to update, once per step, not each product's.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.training and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def _forward_of(model: nn.Module, inputs: Tensor, names: Sequence[str]) -> Callable[..., Tensor]:
    """The network as a function of the listed parameters (the others, and the buffers, held fixed).

    Batch norm in training mode uses the batch's statistics (:func:`_batch_statistics`).
    """

    def forward(*params: Tensor) -> Tensor:
        with _batch_statistics(model):
            return functional_call(model, dict(zip(names, params, strict=True)), (inputs,))

    return forward


def _loss_hessian_product(loss_fn: LossFn, out: Tensor, v: Tensor) -> Tensor:
    """``H_L v``: the Hessian of ``loss_fn`` at ``out`` times ``v`` (forward-over-reverse)."""
    return jvp(grad(loss_fn), (out,), (v,))[1]


def gauss_newton_product(model: nn.Module, inputs: Tensor, loss_fn: LossFn, vector: Sequence[Tensor]) -> list[Tensor]:
    """``(J^T H_L J) v`` for the parameters of ``model`` that require gradients, one tensor per parameter."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = tuple(p.detach() for n, p in model.named_parameters() if p.requires_grad)
    forward = _forward_of(model, inputs, names)
    out, jv = jvp(forward, params, tuple(vector))
    _, back = vjp(forward, *params)
    return list(back(_loss_hessian_product(loss_fn, out.detach(), jv)))


class CurveBall(torch.optim.Optimizer):
    """CurveBall over the parameters of ``model`` (module docstring); ``lr`` scales the step (1: the paper's).

    Args:
        model: The network; its trainable parameters are optimised.
        lr: Multiplier of the step ``z`` added to the weights (the shared loop sets it each step).
        lambd: Initial ``lambda`` (damping of the curvature).
        auto_lambda: Adapt ``lambda`` by the trust-region rule.
        lambda_factor: ``lambda`` changes by this factor per iteration of the interval.
        lambda_interval: Iterations between two adaptations of ``lambda``.
        rho, beta: Fixed momentum and step of the inner solver (None: automatic, as in the paper).
        curvature_scale: Multiplies the curvature ``J^T H_L J + lambda I`` of the quadratic model (1: the
            model of the batch-mean loss).  ``1 / batch`` reproduces the authors' MatConvNet solver for the
            softmax loss, whose gradient and loss are summed over the batch (``vl_nnloss``) while its
            ``H_L`` is divided by the batch size; on the mean loss that is the same iteration with the
            curvature and ``lambda`` divided by the batch size (same ``z``, ``beta * dz``, ratio).
    """

    def __init__(self, model: nn.Module, lr: float = 1.0, *, lambd: float = 1.0, auto_lambda: bool = True,
                 lambda_factor: float = 0.999, lambda_interval: int = 5, rho: float | None = None,
                 beta: float | None = None, curvature_scale: float = 1.0) -> None:
        if not curvature_scale > 0 or curvature_scale == float("inf"):
            raise ConfigError(f"CurveBall needs a finite curvature_scale > 0, got {curvature_scale}")
        if lambd <= 0 or not 0 < lambda_factor <= 1 or lambda_interval < 1:
            raise ConfigError(f"CurveBall needs lambd > 0, 0 < lambda_factor <= 1 and lambda_interval >= 1; got "
                              f"{lambd}, {lambda_factor}, {lambda_interval}")
        if (rho is None) != (beta is None):
            raise ConfigError("CurveBall: give both rho and beta, or neither (automatic)")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        super().__init__([p for _, p in named], {"lr": lr})
        self.model, self.names = model, [n for n, _ in named]
        self.lambd, self.auto_lambda = float(lambd), auto_lambda
        self.lambda_factor, self.lambda_interval = lambda_factor, lambda_interval
        self.fixed = (rho, beta)
        self.curvature_scale = float(curvature_scale)
        self.count = 0
        self.last: dict[str, float] = {}
        self._batch: tuple[Tensor, LossFn] | None = None

    def bind(self, inputs: Tensor, loss_fn: LossFn) -> None:
        """The batch of the coming :meth:`step`: the network's inputs and the loss of its output."""
        self._batch = (inputs, loss_fn)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """One CurveBall iteration; the parameters' ``.grad`` must hold the batch's gradient (loop's backward)."""
        if self._batch is None:
            raise StateError("CurveBall.step needs the batch: call optimizer.bind(inputs, loss_fn) in the step function")
        inputs, loss_fn = self._batch
        self._batch = None
        params = self.param_groups[0]["params"]
        lr = self.param_groups[0]["lr"]
        if any(p.grad is None for p in params):
            raise StateError("CurveBall.step: a parameter has no gradient; back-propagate the loss first")
        g = [p.grad.detach() for p in params]
        zs = [self.state[p].setdefault("z", torch.zeros_like(p)) for p in params]
        forward = _forward_of(self.model, inputs, self.names)
        w = tuple(p.detach() for p in params)
        with torch.enable_grad():
            out, back = vjp(forward, *w)
            out = out.detach()
            _, jz = jvp(forward, w, tuple(zs))
            c = self.curvature_scale
            h_jz = c * _loss_hessian_product(loss_fn, out, jz)
            lam = c * self.lambd
            dz = [a + lam * z + b for a, z, b in zip(back(h_jz), zs, g, strict=True)]
            _, jdz = jvp(forward, w, tuple(dz))
            h_jdz = c * _loss_hessian_product(loss_fn, out, jdz)
            loss = float(loss_fn(out))

        def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
            return float(sum((x * y).sum() for x, y in zip(a, b, strict=True)))

        # M(-beta dz + rho z) = -beta b1 + rho b2 + 1/2 [beta, rho] [[a11, -a12], [-a12, a22]] [beta, rho]^T
        a11 = float((jdz * h_jdz).sum()) + lam * dot(dz, dz)
        a12 = float((jz * h_jdz).sum()) + lam * dot(zs, dz)
        a22 = float((jz * h_jz).sum()) + lam * dot(zs, zs)
        b1, b2 = dot(g, dz), dot(g, zs)
        if self.fixed[0] is not None:
            rho, beta = float(self.fixed[0]), float(self.fixed[1])
        else:
            system = torch.tensor([[a11, -a12], [-a12, a22]], dtype=torch.float64)
            beta, rho = (torch.linalg.pinv(system) @ torch.tensor([b1, -b2], dtype=torch.float64)).tolist()
        predicted = -beta * b1 + rho * b2 + 0.5 * (beta * beta * a11 - 2 * beta * rho * a12 + rho * rho * a22)
        for p, z, d in zip(params, zs, dz, strict=True):
            z.mul_(rho).add_(d, alpha=-beta)
            p.add_(z, alpha=lr)
        if self.auto_lambda and self.count % self.lambda_interval == 0 and predicted < 0:
            ratio = (float(loss_fn(forward(*(p.detach() for p in params)))) - loss) / predicted
            factor = self.lambda_factor ** self.lambda_interval
            if ratio < 0.5:  # the quadratic model was too optimistic: trust it less
                self.lambd /= factor
            elif ratio > 1.5:  # the loss fell more than predicted: trust it more
                self.lambd *= factor
        self.count += 1
        self.last = {"rho": rho, "beta": beta, "lambda": self.lambd, "predicted": predicted}


# ---------------------------------------------------------------------- benchmark
CROP_HEADS = {"shape": 3, "color": 8, "material": 2}  # what an object crop's pixels show (size needs the box)


class CropAttributeNet(nn.Module):
    """A small attribute network without normalisation layers (a pure function of its weights, as the solver needs).

    ``forward(crops [K, 4, S, S]) -> logits [K, 13]`` (shape 3, colour 8, material 2, concatenated).
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, sum(CROP_HEADS.values()))

    def forward(self, crops: Tensor) -> Tensor:
        return self.head(self.features(crops))


def attribute_loss(logits: Tensor, labels: Mapping[str, Tensor]) -> Tensor:
    """Sum over shape, colour and material of the cross-entropy of their slices of ``logits``."""
    parts = logits.split(list(CROP_HEADS.values()), dim=1)
    return sum(F.cross_entropy(p, labels[a]) for p, a in zip(parts, CROP_HEADS, strict=True))


def steps_to_target(history: Sequence[Mapping[str, float]], target: float) -> int | None:
    """The step count at the end of the first round whose mean training loss is at most ``target`` (None: never)."""
    for record in history:
        if record["loss"] <= target:
            return int(record["step"])
    return None


def steps_to_loss(curve: Sequence[float], target: float) -> int | None:
    """The first step count ``t`` whose loss ``curve[t]`` (read after ``t`` steps) is at most ``target`` (None: never)."""
    return next((t for t, value in enumerate(curve) if value <= target), None)


@dataclass(frozen=True)
class _CurveBallBench:
    size: BenchSize
    scenes: tuple[int, int]  # training and test scenes
    adam_rates: tuple[float, ...]  # the grid Adam's rate is tuned over
    target: float  # training loss (sum of three cross-entropies) to reach
    per_round: int  # steps per round: the resolution of "steps to target"
    lambd: float = 1.0  # CurveBall's initial lambda, and how fast it adapts (chosen on seed 0)
    lambda_factor: float = 0.95


# batch 64, lambda 1 and factor 0.95 were the best of CurveBall's settings tried on seed 0 (see the results page)
_FULL = _CurveBallBench(BenchSize(train=0, test=0, steps=600, batch=64), (150, 60), (1e-3, 3e-3, 1e-2, 3e-2),
                        target=1.5, per_round=10)
_QUICK = _CurveBallBench(BenchSize(train=0, test=0, steps=6, batch=16), (4, 2), (1e-3, 1e-2), target=3.5,
                         per_round=2)
_CROP = 16  # crop side: small, so that forward-mode products stay cheap on a CPU
_WORLD = dict(width=240, height=160, min_pixels=60)  # CLEVR's 480 x 320 at half size


def _train_one(
    make_model: Callable[[], nn.Module],
    batch_of: Callable[[Tensor], tuple[Tensor, LossFn]],
    items: int,
    optimizer: str,
    lr: float,
    size: BenchSize,
    per_round: int,
    lambd: float,
    lambda_factor: float,
    seed: int,
    read: Callable[[nn.Module], float] | None = None,
) -> tuple[nn.Module, list[dict], CurveBall | None]:
    """One run of a benchmark race: a fresh model from ``seed`` trained by CurveBall or Adam with the shared loop.

    ``batch_of(idx)`` gives a batch's inputs and its loss of the model's output; CurveBall is bound to
    both each step (its products need the loss as a function of the output).  With ``read``, the
    history's last record gets ``"curve"``: ``read(model)`` before every step and after the last one
    (``curve[t]`` is the value after ``t`` steps).  Returns the model, its history and the solver
    (``None`` for Adam).
    """
    torch.manual_seed(seed)
    model = make_model()
    solver = CurveBall(model, lambd=lambd, lambda_factor=lambda_factor) if optimizer == "curveball" else None
    curve: list[float] = []

    def step(idx: Tensor) -> dict[str, Tensor]:
        if read is not None:
            curve.append(read(model))
        inputs, loss_of = batch_of(idx)
        if solver is not None:
            solver.bind(inputs, loss_of)
        return {"loss": loss_of(model(inputs))}

    history = train_steps(model, step, items=items, steps=size.steps, batch=size.batch, lr=lr, seed=seed,
                          desc=f"{optimizer} {lr:g}", per_round=per_round,
                          optimizer=(lambda m: solver) if solver is not None else None)
    if read is not None:
        history[-1]["curve"] = [*curve, read(model)]
    return model, history, solver


@register_perception_bench(
    "curveball",
    paper="Henriques et al., CurveBall, ICCV 2019, arXiv 1805.08095",
    check="iterations to a target training loss <= 60% of tuned Adam's (attribute network on CLEVR crops)",
    ablation="Adam, rate tuned over a grid",
)
def bench_curveball(quick: bool, seed: int) -> BenchOutcome:
    """Train the crop attribute network with CurveBall and with Adam at each rate of a grid, from one init."""
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig
    from physics.worlds.clevr_world import ClevrWorldConfig

    cfg = _QUICK if quick else _FULL
    world, crop = ClevrWorldConfig(**_WORLD), AttributeConfig(crop_size=_CROP)
    base = 2_000_000 + seed * 10_000
    train = render_object_crops(range(base, base + cfg.scenes[0]), world, crop)
    test = render_object_crops(range(base + 5_000, base + 5_000 + cfg.scenes[1]), world, crop)
    labels = {a: train.labels[a] for a in CROP_HEADS}

    def batch_of(idx: Tensor) -> tuple[Tensor, LossFn]:
        target = {a: v[idx] for a, v in labels.items()}
        return train.crops[idx], lambda out: attribute_loss(out, target)

    def run(optimizer: str, lr: float) -> tuple[nn.Module, list[dict], CurveBall | None]:
        return _train_one(CropAttributeNet, batch_of, len(train), optimizer, lr, cfg.size, cfg.per_round,
                          cfg.lambd, cfg.lambda_factor, seed)

    cb_model, cb_history, solver = run("curveball", 1.0)
    adam = {lr: run("adam", lr) for lr in cfg.adam_rates}
    reached = {lr: steps_to_target(h, cfg.target) for lr, (_, h, _) in adam.items()}
    finite = {lr: n for lr, n in reached.items() if n is not None}
    best_lr = min(finite, key=finite.get) if finite else min(adam, key=lambda r: adam[r][1][-1]["loss"])
    ours, theirs = steps_to_target(cb_history, cfg.target), reached[best_lr]
    budget = float(cfg.size.steps + cfg.per_round)  # "never" reads as one round past the end
    ours_f, theirs_f = float(ours) if ours else budget, float(theirs) if theirs else budget

    @torch.no_grad()
    def accuracy(model: nn.Module) -> float:
        parts = model(test.crops).split(list(CROP_HEADS.values()), dim=1)
        return float(torch.stack([(p.argmax(1) == test.labels[a]).float().mean()
                                  for p, a in zip(parts, CROP_HEADS, strict=True)]).mean())

    checks = (
        Check("iterations to target loss", f"steps until the training loss <= {cfg.target} (lower is better)",
              ours_f, theirs_f, "<= 0.6 x ablation", ours is not None and ours_f <= 0.6 * theirs_f),
    )
    figures = {
        "train_objects": len(train), "test_objects": len(test), "crop": _CROP, "batch": cfg.size.batch,
        "steps": cfg.size.steps, "target_loss": cfg.target, "adam_steps_to_target": reached, "adam_best_lr": best_lr,
        "curveball_final": solver.last if solver else {},
        "final_train_loss": {"curveball": cb_history[-1]["loss"],
                             **{f"adam {lr:g}": h[-1]["loss"] for lr, (_, h, _) in adam.items()}},
        "test_accuracy": {"curveball": accuracy(cb_model), "adam best": accuracy(adam[best_lr][0])},
        "loss_curve": {"curveball": [round(r["loss"], 4) for r in cb_history],
                       "adam best": [round(r["loss"], 4) for r in adam[best_lr][1]]},
        "params": count_parameters(cb_model),
        "seconds": {"curveball": cb_history[-1]["seconds"], "adam best": adam[best_lr][1][-1]["seconds"]},
    }
    return BenchOutcome(checks, figures)


# ---------------------------------------------------------------------- the paper's own setting
class BasicCNN(nn.Module):
    """The paper's "basic CNN" of its CIFAR experiments (MatConvNet's CIFAR network), sized for 16 x 16 inputs.

    5x5 convolutions of 32, 32 and 64 channels, each followed by a 2x2 pooling (max after the first, average
    after the others), ReLUs, then a convolution to 64 over the remaining 2x2 and a 1x1 classifier.  With
    ``batch_norm`` a batch norm follows each of the first four convolutions (MatConvNet's option for this
    network); the solver's products then normalise by the batch's statistics (:func:`_batch_statistics`).
    ``forward(images [N, C, 16, 16]) -> logits [N, classes]``.
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, width: int = 32, batch_norm: bool = False) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int, pad: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=pad)] + ([nn.BatchNorm2d(cout)] if batch_norm else [])

        self.net = nn.Sequential(
            *conv(in_channels, width, 5, 2), nn.MaxPool2d(2), nn.ReLU(),
            *conv(width, width, 5, 2), nn.ReLU(), nn.AvgPool2d(2),
            *conv(width, 2 * width, 5, 2), nn.ReLU(), nn.AvgPool2d(2),
            *conv(2 * width, 2 * width, 2, 0), nn.ReLU(), nn.Conv2d(2 * width, classes, 1), nn.Flatten(),
        )

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[-2:] != (16, 16):
            raise StateError(f"BasicCNN expects images [N, C, 16, 16], got {tuple(images.shape)}")
        return self.net(images)


@dataclass(frozen=True)
class _DigitsBench:
    """The race of `curveball-digits`: each optimiser tuned over a grid of the same size, the loss read every step.

    Each target is met at the first step count after which the whole training set's mean cross-entropy (the
    batch norms normalising by the whole set's statistics, the function the batches sample) is at most the
    target; each side's figure is its best over its own grid (Adam: the rate; CurveBall: the initial lambda).
    """

    size: BenchSize
    adam_rates: tuple[float, ...]
    lambdas: tuple[float, ...]  # CurveBall's grid of initial lambdas: as many runs as Adam's
    targets: tuple[float, ...]  # mean cross-entropy; declared before any run
    per_round: int  # steps per round of the loop (it draws the batches); the loss is read after every step
    width: int = 32
    lambda_factor: float = 0.95
    batch_norm: bool = True  # the network with MatConvNet's batch norm, both sides, as the paper's basic CNN


# chosen on seed 0's split (docs/results/perception.md, CurveBall, eighth round): the loss read every step, targets
# down to 0.01, 150 steps (enough for seed 0's runs to reach 0.01); grids of four, 3x apart, each side's seed-0 best
# inside
_DIGITS_FULL = _DigitsBench(BenchSize(train=0, test=0, steps=150, batch=128), (1e-3, 3e-3, 1e-2, 3e-2),
                            (0.01, 0.03, 0.1, 0.3), targets=(0.5, 0.1, 0.01), per_round=10)
_DIGITS_QUICK = _DigitsBench(BenchSize(train=0, test=0, steps=4, batch=16), (1e-3, 1e-2), (0.1, 1.0),
                             targets=(2.2, 1.0), per_round=2, width=4)


@register_perception_bench(
    "curveball-digits",
    paper="Henriques et al., CurveBall, ICCV 2019, arXiv 1805.08095 (its basic CNN; digits for CIFAR)",
    check="steps to each target training loss <= 60% of tuned Adam's (the paper's basic CNN with batch norm, "
          "batch 128, both sides tuned over grids of the same size, the loss read every step)",
    ablation="Adam, rate tuned over a grid",
)
def bench_curveball_digits(quick: bool, seed: int) -> BenchOutcome:
    """CurveBall against tuned Adam on the paper's basic CNN, scikit-learn's digits up-sampled to 16 x 16."""
    from perception.datasets.digits import load_digit_split

    cfg = _DIGITS_QUICK if quick else _DIGITS_FULL
    split = load_digit_split(seed)

    def prep(x: Tensor) -> Tensor:
        return F.interpolate(x.float(), size=16, mode="bilinear", align_corners=False)

    train_x, test_x = prep(split.train_images), prep(split.test_images)
    mean, std = train_x.mean(), train_x.std()
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    train_y = split.train_labels.long()

    def batch_of(idx: Tensor) -> tuple[Tensor, LossFn]:
        return train_x[idx], lambda out: F.cross_entropy(out, train_y[idx])

    @torch.no_grad()
    def train_loss(model: nn.Module) -> float:
        with _batch_statistics(model):
            return float(F.cross_entropy(model(train_x), train_y))

    def run(optimizer: str, lr: float, lambd: float = 1.0) -> tuple[nn.Module, list[dict], CurveBall | None]:
        return _train_one(lambda: BasicCNN(width=cfg.width, batch_norm=cfg.batch_norm), batch_of, len(train_x),
                          optimizer, lr, cfg.size, cfg.per_round, lambd, cfg.lambda_factor, seed, read=train_loss)

    races = {"curveball": {lam: run("curveball", 1.0, lam) for lam in cfg.lambdas},
             "adam": {lr: run("adam", lr) for lr in cfg.adam_rates}}
    budget = float(cfg.size.steps + 1)  # "never" reads as one step past the end
    checks, per_target = [], {}
    for target in cfg.targets:
        reached = {side: {k: steps_to_loss(h[-1]["curve"], target) for k, (_, h, _) in runs.items()}
                   for side, runs in races.items()}
        best = {side: min((n for n in r.values() if n is not None), default=None) for side, r in reached.items()}
        ours_f, theirs_f = (budget if best[side] is None else float(best[side]) for side in ("curveball", "adam"))
        per_target[str(target)] = reached
        checks.append(Check(f"iterations to loss {target:g}", "steps until the whole training set's mean "
                            f"cross-entropy <= {target:g}, best of each grid (lower is better)", ours_f, theirs_f,
                            "<= 0.6 x ablation", best["curveball"] is not None and ours_f <= 0.6 * theirs_f))

    @torch.no_grad()
    def accuracy(model: nn.Module) -> float:
        model.eval()
        return float((model(test_x).argmax(1) == split.test_labels).float().mean())

    final = {side: {k: h[-1]["curve"][-1] for k, (_, h, _) in runs.items()} for side, runs in races.items()}
    lowest = {side: min(f, key=f.get) for side, f in final.items()}
    figures = {
        "train_images": len(train_x), "test_images": len(test_x), "batch": cfg.size.batch, "steps": cfg.size.steps,
        "batch_norm": cfg.batch_norm, "grids": {"curveball lambda": list(cfg.lambdas), "adam rate": list(cfg.adam_rates)},
        "steps_to_target": per_target,
        "curveball_final": {k: s.last for k, (_, _, s) in races["curveball"].items() if s is not None},
        "final_train_loss": final,
        "test_accuracy": {f"{side} {k:g}": accuracy(races[side][k][0]) for side, k in lowest.items()},
        "loss_curve": {f"{side} {k:g}": [round(v, 4) for v in races[side][k][1][-1]["curve"]]
                       for side, k in lowest.items()},
        "params": count_parameters(races["adam"][cfg.adam_rates[0]][0]),
        "seconds": {f"{side} {k:g}": races[side][k][1][-1]["seconds"] for side, k in lowest.items()},
    }
    return BenchOutcome(tuple(checks), figures)


# ---------------------------------------------------------------------- the race: the attribute network
class AttributeLogits(nn.Module):
    """The derenderer's attribute network (:class:`~perception.derender.attributes.AttributeNet`, batch norm after
    every convolution) as the one-output function of its weights the solver needs.

    ``forward((crops [K, 4, S, S], boxes [K, 4])) -> logits [K, 3 + 8 + 2 + 2]``: the shape, colour, material and
    size logits (CLEVR vocabulary order) concatenated.  The centre head has no loss in this race, so its weights
    are frozen (neither optimiser moves them).
    """

    def __init__(self, config: AttributeConfig) -> None:
        from perception.derender.attributes import AttributeNet
        from physics.worlds.clevr_properties import ATTRIBUTES

        super().__init__()
        self.net = AttributeNet(config)
        self.net.centre.requires_grad_(False)
        self.names = tuple(ATTRIBUTES)
        self.sizes = tuple(len(ATTRIBUTES[a]) for a in self.names)

    def forward(self, packed: tuple[Tensor, Tensor]) -> Tensor:
        crops, boxes = packed
        logits, _ = self.net(crops, boxes)
        return torch.cat([logits[a] for a in self.names], 1)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Sum over the four attributes of the cross-entropy; ``labels`` int64 [K, 4] in :attr:`names` order."""
        parts = logits.split(list(self.sizes), dim=1)
        return sum(F.cross_entropy(p, labels[:, i]) for i, p in enumerate(parts))


def median_steps(counts: Sequence[int | None], budget: int) -> float:
    """The median over training seeds of the steps to a target; a run that never reaches it counts as ``budget``."""
    if not counts:
        raise ConfigError("median_steps needs at least one run's count")
    return float(statistics.median(budget if n is None else n for n in counts))


@dataclass(frozen=True)
class _AttributeRace:
    """The race of `curveball-attributes` (decision rule and protocol: docs/results/perception.md, CurveBall, ninth round).

    Each grid point (Adam's rate; CurveBall's initial lambda) is trained from ``seeds`` training seeds (each its own
    initialisation and batch order, the same ones for every grid point and both sides); the whole training set's
    loss is read before every step and after the last; a grid point's figure at a target is the median over its
    seeds of the first step count at or below the target (never: ``steps + 1``); each side's figure is its best
    grid point.  Only ``primary`` decides the check; the other targets are reported beside it.
    """

    size: BenchSize
    scenes: tuple[int, int]  # training and test scenes
    adam_rates: tuple[float, ...]
    lambdas: tuple[float, ...]  # CurveBall's initial lambdas: as many as Adam's rates
    seeds: int  # training seeds per grid point
    targets: tuple[float, ...]  # sum of the four attributes' cross-entropies; declared before any run
    primary: float  # the target that decides the check
    per_round: int = 10
    crop: int = 16
    width: int = 8  # AttributeNet's first-stage channels (the derenderer's: 32 at crop 48)
    lambda_factor: float = 0.95

    def __post_init__(self) -> None:
        if self.primary not in self.targets or self.seeds < 1 or len(self.lambdas) != len(self.adam_rates):
            raise ConfigError(f"_AttributeRace needs its primary target among its targets, seeds >= 1 and grids of the "
                              f"same size; got primary {self.primary}, targets {self.targets}, seeds {self.seeds}, "
                              f"grids {self.lambdas} / {self.adam_rates}")


# chosen on seed 0's crops (docs/results/perception.md, CurveBall, ninth round)
_ATTR_FULL = _AttributeRace(BenchSize(train=0, test=0, steps=200, batch=64), (150, 60), (1e-3, 3e-3, 1e-2, 3e-2),
                            (0.1, 0.3, 1.0, 3.0), seeds=3, targets=(1.0, 0.5, 0.2), primary=0.5)
_ATTR_QUICK = _AttributeRace(BenchSize(train=0, test=0, steps=4, batch=16), (3, 2), (1e-3, 1e-2), (0.3, 1.0), seeds=2,
                             targets=(4.0, 1.0), primary=4.0, per_round=2, width=2)


@register_perception_bench(
    "curveball-attributes",
    paper="Henriques et al., CurveBall, ICCV 2019, arXiv 1805.08095",
    check="steps to the primary target training loss <= 60% of tuned Adam's (the derenderer's attribute network "
          "with batch norm on CLEVR crops; median over training seeds per grid point, grids of four each side)",
    ablation="Adam, rate tuned over a grid",
)
def bench_curveball_attributes(quick: bool, seed: int) -> BenchOutcome:
    """CurveBall against tuned Adam on the attribute network, several training seeds per grid point."""
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig
    from physics.worlds.clevr_world import ClevrWorldConfig

    cfg = _ATTR_QUICK if quick else _ATTR_FULL
    world, crop = ClevrWorldConfig(**_WORLD), AttributeConfig(crop_size=cfg.crop, width=cfg.width)
    base = 2_000_000 + seed * 10_000  # the `curveball` entry's scenes
    train = render_object_crops(range(base, base + cfg.scenes[0]), world, crop)
    test = render_object_crops(range(base + 5_000, base + 5_000 + cfg.scenes[1]), world, crop)
    make = partial(AttributeLogits, crop)
    probe = make()  # the attribute order and sizes, the loss and the parameter count
    names = probe.names
    mean, std = train.crops.mean((0, 2, 3), keepdim=True), train.crops.std((0, 2, 3), keepdim=True)
    train_x, test_x = (train.crops - mean) / std, (test.crops - mean) / std  # per channel, the training crops'
    train_y = torch.stack([train.labels[a] for a in names], 1)
    test_y = torch.stack([test.labels[a] for a in names], 1)

    def batch_of(idx: Tensor) -> tuple[tuple[Tensor, Tensor], LossFn]:
        labels = train_y[idx]
        return (train_x[idx], train.boxes[idx]), lambda out: probe.loss(out, labels)

    @torch.no_grad()
    def train_loss(model: nn.Module) -> float:
        with _batch_statistics(model):
            return float(probe.loss(model((train_x, train.boxes)), train_y))

    @torch.no_grad()
    def accuracy(model: nn.Module) -> float:
        model.eval()
        parts = model((test_x, test.boxes)).split(list(probe.sizes), dim=1)
        return float(torch.stack([(p.argmax(1) == test_y[:, i]).float().mean() for i, p in enumerate(parts)]).mean())

    grids = {"curveball": cfg.lambdas, "adam": cfg.adam_rates}
    runs: dict[str, dict[float, list[dict]]] = {side: {} for side in grids}
    for side, grid in grids.items():
        for key in grid:
            for k in range(cfg.seeds):
                lr, lambd = (1.0, key) if side == "curveball" else (key, 1.0)
                model, history, solver = _train_one(make, batch_of, len(train_x), side, lr, cfg.size, cfg.per_round,
                                                    lambd, cfg.lambda_factor, seed * 1000 + k, read=train_loss)
                curve = history[-1]["curve"]
                runs[side].setdefault(key, []).append({
                    "curve": curve, "seconds": history[-1]["seconds"], "accuracy": accuracy(model),
                    "final": solver.last if solver is not None else {}})

    budget = cfg.size.steps + 1  # "never" reads as one step past the end
    per_target, medians, best, ratio = {}, {}, {}, {}
    for target in cfg.targets:
        t = str(target)
        per_target[t] = {side: {key: [steps_to_loss(r["curve"], target) for r in rs] for key, rs in by_key.items()}
                         for side, by_key in runs.items()}
        medians[t] = {side: {key: median_steps(c, budget) for key, c in by_key.items()}
                      for side, by_key in per_target[t].items()}
        best[t] = {side: min(m, key=m.get) for side, m in medians[t].items()}  # ties: the grid's first
        ours, theirs = (medians[t][side][best[t][side]] for side in ("curveball", "adam"))
        ratio[t] = ours / theirs
    p = str(cfg.primary)
    ours, theirs = (medians[p][side][best[p][side]] for side in ("curveball", "adam"))
    checks = (Check(f"iterations to loss {cfg.primary:g}", "median over training seeds of the steps until the whole "
                    f"training set's loss (four cross-entropies) <= {cfg.primary:g}, best grid point of each side "
                    "(lower is better)", ours, theirs, "<= 0.6 x ablation", ours < budget and ours <= 0.6 * theirs),)
    figures = {
        "train_objects": len(train_x), "test_objects": len(test_x), "crop": cfg.crop, "width": cfg.width,
        "batch": cfg.size.batch, "steps": cfg.size.steps, "training_seeds": [seed * 1000 + k for k in range(cfg.seeds)],
        "grids": {"curveball lambda": list(cfg.lambdas), "adam rate": list(cfg.adam_rates)},
        "primary_target": cfg.primary, "steps_to_target": per_target, "median_steps": medians,
        "best": best, "ratio": ratio,
        "test_accuracy": {side: {key: [r["accuracy"] for r in rs] for key, rs in by_key.items()}
                          for side, by_key in runs.items()},
        "final_train_loss": {side: {key: [r["curve"][-1] for r in rs] for key, rs in by_key.items()}
                             for side, by_key in runs.items()},
        "curveball_final": {key: rs[0]["final"] for key, rs in runs["curveball"].items()},
        "loss_curve": {f"{side} {best[p][side]:g}": [round(v, 4) for v in runs[side][best[p][side]][0]["curve"]]
                       for side in runs},
        "params": count_parameters(probe),
        "seconds_per_run": {side: statistics.median(r["seconds"] for rs in by_key.values() for r in rs)
                            for side, by_key in runs.items()},
    }
    return BenchOutcome(checks, figures)
