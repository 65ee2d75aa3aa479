"""Perception-model benchmarks: each model's check against its ablation, trained from one seed.

Every perception model that is not the derenderer carries a check from its
paper (``docs/results/perception.md`` lists them): a figure measured on
held-out data, compared with a threshold and with the same network trained
without the model's idea (its *ablation*) on the same data, steps and seed.
A model module registers its benchmark next to itself with one call::

    @register_perception_bench("tsm", paper="Lin et al., arXiv 1811.08383",
                               check="clip accuracy >= ablation + 20 points", ablation="no temporal shift")
    def bench_tsm(quick: bool, seed: int) -> list[Check]:
        ...

The function trains both networks from ``seed`` on data the framework makes
(``quick``: a tiny configuration that runs in seconds, for the tests), then
returns its :class:`Check` s.  :func:`run_bench` runs one by name and
returns a JSON-ready dict; ``nesy bench perception`` prints and writes it.

An entry with settings a user may want to change registers them as a frozen
dataclass, ``register_perception_bench(..., options=OptionsClass)``: each field is a
keyword argument of the function, its default the entry's, its type one of bool, int,
float or str, and ``metadata["choices"]`` (optional) the values allowed.
:func:`bench_options` turns ``{"name": "text"}`` settings (``nesy bench perception
--set name=value``) into those keyword arguments, refusing an unknown name, a value of
the wrong type or outside the choices with a one-line error naming the option.

Result of :func:`run_bench` (one model)::

    model, paper, check, ablation     the registration's text
    seed, quick, threads              how it was run
    options                           every option of the entry as run ({} for an entry without options)
    train_minutes                     wall time of the whole entry (both trainings and the evaluation)
    checks                            [{name, metric, ours, ablation, threshold, passed}, ...]
    figures                           everything else the entry measured (counts, curves, sizes)
    passed                            every check passed
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from physics.errors import ConfigError
from physics.registry import Registry
from physics.training import Constant, Schedule, TrainLoop, seed_everything

__all__ = [
    "BenchSize",
    "Check",
    "BenchOutcome",
    "PerceptionBench",
    "PERCEPTION_BENCHES",
    "register_perception_bench",
    "bench_options",
    "run_bench",
    "train_steps",
]


@dataclass(frozen=True)
class BenchSize:
    """How much a benchmark entry trains and tests: items (scenes, clips or sequences), steps, batch, rate."""

    train: int
    test: int
    steps: int
    batch: int
    lr: float = 2e-3


@dataclass(frozen=True)
class Check:
    """One measured check.

    Attributes:
        name: What is checked (``"shift consistency"``).
        metric: How the figure reads (``"fraction, higher is better"``).
        ours: The model's figure.
        ablation: The ablation's figure (None when the check has no ablation side).
        threshold: The condition in words (``">= 1.0 and >= ablation"``).
        passed: Whether ``ours`` meets it.
    """

    name: str
    metric: str
    ours: float
    ablation: float | None
    threshold: str
    passed: bool


@dataclass(frozen=True)
class BenchOutcome:
    """What a benchmark function returns: its checks and any other figures it measured."""

    checks: tuple[Check, ...]
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PerceptionBench:
    """A registered benchmark: the function, the words that describe its check, and its options (a dataclass or None)."""

    name: str
    run: Callable[..., BenchOutcome]
    paper: str
    check: str
    ablation: str
    options: type | None = None


PERCEPTION_BENCHES: Registry[PerceptionBench] = Registry(
    "perception benchmark",
    modules=(
        "perception.geometry.polyphase",
        "perception.geometry.warped",
        "perception.generative.von",
        "perception.grounding.joint_embedding",
        "perception.events.tsm",
        "perception.events.ctcn",
        "perception.events.pgcn",
        "perception.correspondence.dve",
        "perception.intuitive_physics.tracker",
        "perception.intuitive_physics.extrapolation",
        "perception.keypoints.autolink",
        "perception.audiovisual.sound_of_pixels",
        "perception.audiovisual.sound_of_motions",
        "perception.audiovisual.correspondence",
        "perception.audiovisual.vatt",
        "perception.generative.autoencoder",
        "perception.generative.gan",
        "perception.generative.deep_image_prior",
        "perception.generative.score_manifold",
        "perception.generative.masked_conv_ae",
        "perception.interpret.gan_dissection",
        "perception.interpret.net2vec",
        "perception.interpret.perturbation",
        "perception.interpret.promotion",
        "perception.interpret.scaffold",
        "perception.training_methods.distillation",
        "perception.training_methods.once_for_all",
        "perception.training_methods.curveball",
        "perception.training_methods.residual_adapters",
        "perception.robust.defensive_quantization",
        "perception.robust.trap_and_replace",
    ),
)


def register_perception_bench(
    name: str, *, paper: str, check: str, ablation: str, options: type | None = None
) -> Callable[[Callable[..., BenchOutcome]], Callable[..., BenchOutcome]]:
    """Decorator: register ``fn(quick, seed) -> BenchOutcome`` as benchmark ``name``.

    Args:
        name: The name users type (``nesy bench perception --model NAME``).
        paper: The paper the model comes from (authors, arXiv id).
        check: The check in words, as the table and the docs show it.
        ablation: What the ablation lacks (``"no temporal shift"``).
        options: A frozen dataclass of the function's keyword options (module docstring), or None.
    """
    if options is not None and not dataclasses.is_dataclass(options):
        raise ConfigError(f"register_perception_bench {name!r}: options must be a dataclass type, got {options!r}")

    def decorate(fn: Callable[..., BenchOutcome]) -> Callable[..., BenchOutcome]:
        PERCEPTION_BENCHES.register(name, PerceptionBench(name, fn, paper, check, ablation, options), help=check)
        return fn

    return decorate


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_KINDS = {bool: "true or false", int: "an integer", float: "a finite number", str: "text"}  # option types, in words


def _option_value(bench: str, fld: dataclasses.Field, tp: Any, value: Any) -> Any:
    """``value`` (text, or already typed) as option ``fld``'s type, within its choices; ConfigError naming it otherwise."""
    if tp not in _KINDS:
        raise ConfigError(f"perception benchmark {bench!r}: option {fld.name!r} has type {tp!r}; options are bool, int, float or str")
    refused = ConfigError(f"perception benchmark {bench!r}: option {fld.name!r} must be {_KINDS[tp]}, got {value!r}")
    if isinstance(value, str) and tp is not str:
        text = value.strip().lower()
        try:
            if tp is bool:
                if text not in _TRUE + _FALSE:
                    raise ValueError(text)
                value = text in _TRUE
            else:
                value = tp(text)
        except ValueError:
            raise refused from None
    elif tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)) or (tp is float and not math.isfinite(value)):
        raise refused
    choices = fld.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"perception benchmark {bench!r}: option {fld.name!r} must be one of "
                          f"{', '.join(map(str, choices))}, got {value!r}")
    return value


def bench_options(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every option of benchmark ``name`` with ``settings`` applied: ``{field: value}`` ({} if it has none).

    ``settings`` values may be text (from the command line) or already typed; each is converted to
    its field's type and checked against its choices.

    Raises:
        ConfigError: an unknown benchmark, option name, type or choice (one line, naming the option
            and what is allowed), or settings for a benchmark without options.
    """
    bench = PERCEPTION_BENCHES.get(name)
    settings = dict(settings or {})
    if bench.options is None:
        if settings:
            raise ConfigError(f"perception benchmark {name!r} takes no options, got {', '.join(sorted(settings))}")
        return {}
    fields = {f.name: f for f in dataclasses.fields(bench.options)}
    hints = typing.get_type_hints(bench.options)
    for key in settings:
        if key not in fields:
            raise ConfigError(f"perception benchmark {name!r} has no option {key!r}; its options: {', '.join(fields)}")
    values = {k: _option_value(name, fields[k], hints[k], v) for k, v in settings.items()}
    return asdict(bench.options(**values))  # its __post_init__ may refuse a combination


def run_bench(name: str, quick: bool = False, seed: int = 0,
              options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate benchmark ``name`` from ``seed``; a JSON-ready dict (module docstring).

    Benchmarks registered above the perception layer (selective prediction's,
    which runs NS-VQA) are loaded by :func:`benchmarks.perception_bench.run_perception_bench`.
    ``options``: settings of the entry's registered options (:func:`bench_options`); None or {}
    runs the entry as registered: an entry with options always runs with its options dataclass's
    values (its defaults define the entry), so the result's ``options`` are what ran.

    Raises:
        ConfigError: unknown name (the message lists the registered ones), or a refused option.
    """
    bench = PERCEPTION_BENCHES.get(name)
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"perception benchmark {name!r}: seed must be an integer >= 0, got {seed!r}")
    kwargs = bench_options(name, options)  # before anything trains
    t0 = time.perf_counter()
    outcome = bench.run(bool(quick), seed, **kwargs)
    minutes = (time.perf_counter() - t0) / 60.0
    checks = [_finite(asdict(c)) for c in outcome.checks]
    return {
        "model": name,
        "paper": bench.paper,
        "check": bench.check,
        "ablation": bench.ablation,
        "seed": seed,
        "quick": bool(quick),
        "threads": torch.get_num_threads(),
        "options": kwargs,
        "train_minutes": round(minutes, 3),
        "checks": checks,
        "figures": _finite(dict(outcome.figures)),
        "passed": bool(checks) and all(c["passed"] for c in checks),
    }


def train_steps(
    model: torch.nn.Module,
    step_fn: Callable[[torch.Tensor], Mapping[str, Any]],
    *,
    items: int,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    desc: str,
    per_round: int = 100,
    optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer] | None = None,
    schedule: Schedule | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` with the shared loop (:class:`~physics.training.TrainLoop`), no checkpoint file.

    Benchmarks train from scratch every time, so nothing is written; the loop
    still seeds, schedules and logs each round the way every trainer does.
    Each step gets ``batch`` indices drawn with replacement from ``range(items)``;
    round r's draws come from a generator seeded with ``seed * 1000 + r``.

    Args:
        model: The network; its parameters are optimised (by default with Adam) at the constant rate ``lr``.
        step_fn: int64 [batch] indices of the training items -> ``{"loss": scalar, ...}``.
        items: Number of training items.
        steps: Optimiser steps in all.
        batch: Items per step.
        lr: Learning rate.
        seed: Seeds every generator before training, and the batches.
        desc: Name of the run in the history records.
        per_round: Steps per round of the loop (one history record each).
        optimizer: Model -> its optimiser (default: Adam over its parameters); the loop sets its rate.
        schedule: The rate of each step (default: ``Constant(lr)``).

    Returns:
        The loop's history: one record per round (mean loss, step, seconds).
    """

    def batches(r: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed * 1000 + r)
        return list(torch.randint(items, (min(per_round, steps - r * per_round), batch), generator=g))

    seed_everything(seed)
    opt = optimizer(model) if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    rates = schedule if schedule is not None else Constant(lr)
    loop = TrainLoop(model, opt, rates, None, flags={"lr": lr, "steps": steps, "seed": seed},
                     unit="step", desc=desc, progress=False)
    return loop.fit(-(-steps // per_round), batches, step_fn)


def _finite(data: Any) -> Any:
    """JSON-safe copy: tensors and numpy scalars to Python numbers, NaN/inf to None."""
    if isinstance(data, Mapping):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    if torch.is_tensor(data):
        return _finite(data.tolist())
    if hasattr(data, "item") and callable(data.item):  # numpy scalar
        return _finite(data.item())
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data
