"""One training loop for every model (dynamics, parser, derenderer, and those to come).

* :mod:`~physics.training.loop` -- :class:`TrainLoop`: rounds of optimiser steps,
  checkpoints with the optimiser, RNG states, flags and command, bit-identical resume;
* :mod:`~physics.training.schedule` -- learning-rate schedules;
* :mod:`~physics.training.rng` -- seeding and capturing every random generator;
* :mod:`~physics.training.log` -- JSON-lines logs and TensorBoard scalars;
* :mod:`~physics.training.command` -- a config back to the flags that reproduce it.

It lives in the bottom layer because every layer trains models with it.
"""

from physics.training.command import config_flags
from physics.training.log import RunLog
from physics.training.loop import TrainLoop, flag_name
from physics.training.rng import rng_state, seed_everything, set_rng_state
from physics.training.schedule import (
    Constant,
    ExponentialDecay,
    LinearWarmup,
    Schedule,
    WarmupCosine,
)

__all__ = [
    "TrainLoop",
    "flag_name",
    "config_flags",
    "RunLog",
    "Schedule",
    "Constant",
    "ExponentialDecay",
    "LinearWarmup",
    "WarmupCosine",
    "seed_everything",
    "rng_state",
    "set_rng_state",
]
