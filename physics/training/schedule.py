"""Learning-rate schedules of the training loop: the rate of every optimiser step.

A schedule is a pure function of the position in the run (round and global
step), so a resumed run sets exactly the rates an uninterrupted one did.
Each one's :meth:`describe` is stored with the run; a resume with another
schedule is refused.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

from physics.errors import ConfigError

__all__ = ["Schedule", "Constant", "ExponentialDecay", "LinearWarmup", "WarmupCosine"]


class Schedule(ABC):
    """Base class: ``lr(round, step)`` is the rate of the step numbered ``step`` (0-based) in ``round``."""

    @abstractmethod
    def lr(self, round_: int, step: int) -> float:
        """The learning rate of global step ``step``, in round ``round_``."""

    def describe(self) -> dict:
        """Name and parameters (JSON-ready), stored in checkpoints."""
        return {"name": type(self).__name__, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Constant(Schedule):
    """The same rate throughout."""

    rate: float

    def lr(self, round_: int, step: int) -> float:
        return self.rate


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """Per round, ``start`` decayed geometrically to ``final`` at round ``rounds - 1``.

    The rate of round r is ``start`` multiplied r times by ``gamma`` (as
    ``torch.optim.lr_scheduler.ExponentialLR`` does, bit for bit), so it never
    decays past ``final`` within the ``rounds`` the run was started with; that is
    why ``rounds`` (``--epochs``) may not change on resume.
    """

    start: float
    final: float
    rounds: int

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.final > 0 and self.rounds >= 1):
            raise ConfigError(f"ExponentialDecay needs start, final > 0 and rounds >= 1, got {self}")

    @property
    def gamma(self) -> float:
        return (self.final / self.start) ** (1.0 / max(self.rounds - 1, 1))

    def lr(self, round_: int, step: int) -> float:
        rate, gamma = self.start, self.gamma
        for _ in range(min(round_, self.rounds - 1)):
            rate = rate * gamma
        return rate


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warm-up over ``total // 50`` steps, then cosine decay from ``rate`` to ``floor * rate``."""

    rate: float
    total: int
    floor: float = 0.05

    def lr(self, round_: int, step: int) -> float:
        warm = max(1, self.total // 50)
        if step < warm:
            return self.rate * (step + 1) / warm
        t = (step - warm) / max(1, self.total - warm)
        return self.rate * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """Another schedule's rate scaled by ``(step + 1) / steps`` over the run's first ``steps`` global steps.

    Linear from (almost) 0 up to the inner schedule's rate at step ``steps - 1``, then the inner
    schedule unchanged; e.g. a fine-tune whose first full-rate updates would break what it starts from.
    """

    inner: Schedule
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"LinearWarmup needs steps >= 1, got {self.steps}")

    def lr(self, round_: int, step: int) -> float:
        rate = self.inner.lr(round_, step)
        return rate * (step + 1) / self.steps if step < self.steps else rate

    def describe(self) -> dict:
        return {"name": type(self).__name__, "steps": self.steps, "inner": self.inner.describe()}
