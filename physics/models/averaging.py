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


def average_state_dicts(
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float] | None = None,
    non_floating: str = "equal",
) -> dict[str, torch.Tensor]:
    """The entry-wise (weighted) mean of ``states``; non-floating entries are copied.

    Args:
        states: State dicts with the same entries and shapes.
        weights: One positive weight per state (normalised to sum to 1; default equal).
        non_floating: ``"equal"``: a non-floating entry (a flag, a step count) must agree in every
            state and is copied; ``"first"``: it is taken from the first state (a fine-tune and its
            start differ in batch-norm step counts).

    Raises:
        CheckpointError: no state, states with other keys or shapes, weights that are not positive or
            do not match the states, or (``"equal"``) non-floating entries that differ.
    """
    if not states:
        raise CheckpointError("average_state_dicts: no weights to average")
    if non_floating not in ("equal", "first"):
        raise CheckpointError(f"average_state_dicts: non_floating must be 'equal' or 'first', got {non_floating!r}")
    weights = [1.0] * len(states) if weights is None else [float(w) for w in weights]
    if len(weights) != len(states) or not all(0 < w < float("inf") for w in weights):
        raise CheckpointError(f"average_state_dicts: give one positive weight per state, got {weights} "
                              f"for {len(states)} states")
    total = sum(weights)
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
            mean = sum(w / total * v.to(torch.float64) for w, v in zip(weights, values, strict=True))
            out[key] = mean.to(values[0].dtype)
        else:
            if non_floating == "equal" and any(not torch.equal(v, values[0]) for v in values):
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
