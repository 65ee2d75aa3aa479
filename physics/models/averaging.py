"""Weight averaging of saved models: the mean of several epochs' weights of one training run.

A run whose rollouts swing from epoch to epoch (``docs/results/particles.md``: the kept epoch is
often a single good epoch between two bad ones) may roll out better with the mean of its last
epochs' weights than with any one of them (as in stochastic weight averaging).  Floating-point
entries (weights, normalisation statistics) are averaged; any other entry (a flag such as a
normaliser's ``fitted``) must be equal in every model and is copied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from physics.errors import CheckpointError
from physics.io import PathLike
from physics.models.base import DynamicsModel
from physics.models.config import config_to_dict

__all__ = ["average_state_dicts", "average_models"]


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The entry-wise mean of ``states`` (floating entries; the others must agree and are copied).

    Raises:
        CheckpointError: no state, states with other keys or shapes, or non-floating entries that differ.
    """
    if not states:
        raise CheckpointError("average_state_dicts: no weights to average")
    keys = list(states[0])
    out: dict[str, torch.Tensor] = {}
    for i, state in enumerate(states[1:], start=1):
        if list(state) != keys:
            raise CheckpointError(f"average_state_dicts: weights {i} have other entries than weights 0")
    for key in keys:
        values = [state[key].detach().cpu() for state in states]
        if any(v.shape != values[0].shape for v in values):
            raise CheckpointError(f"average_state_dicts: entry {key!r} has different shapes: "
                                  f"{[tuple(v.shape) for v in values]}")
        if values[0].is_floating_point():
            out[key] = torch.stack([v.to(torch.float64) for v in values]).mean(0).to(values[0].dtype)
        else:
            if any(not torch.equal(v, values[0]) for v in values):
                raise CheckpointError(f"average_state_dicts: non-floating entry {key!r} differs between the weights")
            out[key] = values[0].clone()
    return out


def average_models(paths: Sequence[PathLike]) -> tuple[DynamicsModel, dict[str, Any]]:
    """Load the model files ``paths`` (one model name and config) and return a model holding the mean
    of their weights, with the metadata of the last file plus ``averaged_from`` (the paths).

    Raises:
        CheckpointError: no path, a file that does not load, or models of another name or config.
    """
    from physics.models.resolver import load_model

    if not paths:
        raise CheckpointError("average_models: no model files given")
    loaded = [load_model(p) for p in paths]
    first = loaded[0][0]
    for path, (model, _) in zip(paths, loaded, strict=True):
        if model.name != first.name or config_to_dict(model.config) != config_to_dict(first.config):
            raise CheckpointError(f"average_models: {path} holds a {model.name!r} model with another config than "
                                  f"{paths[0]} ({first.name!r}); only one run's epochs can be averaged")
    model, meta = loaded[-1]
    model.load_state_dict(average_state_dicts([m.state_dict() for m, _ in loaded]))
    return model, {**meta, "averaged_from": [str(p) for p in paths]}
