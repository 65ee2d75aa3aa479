"""Names -> simulators, and self-contained checkpoints.

``make_model("propnet", config)`` builds a model; an unknown name raises a
ConfigError listing the choices (PyG's ``resolver.py`` style).  A saved model
file holds the weights (normalisation buffers included), the model name, its
config and free-form metadata (the command and seed that trained it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from physics.models.base import DynamicsModel
from physics.models.config import MODEL_NAMES, ModelConfig, config_from_dict, config_to_dict
from physics.models.dpinet import DPINet
from physics.models.interaction_network import InteractionNetwork
from physics.models.propnet import PropNet

__all__ = ["MODELS", "make_model", "save_model", "load_model"]

MODELS: dict[str, type[DynamicsModel]] = {"in": InteractionNetwork, "propnet": PropNet, "dpinet": DPINet}
assert tuple(MODELS) == MODEL_NAMES


def make_model(name: str, config: ModelConfig) -> DynamicsModel:
    """Build simulator ``name`` (``in``, ``propnet`` or ``dpinet``) from ``config``."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown dynamics model {name!r}; choose one of {', '.join(MODELS)}") from None
    return cls(config)


def save_model(path: PathLike, model: DynamicsModel, meta: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write weights + name + config + metadata atomically (loadable with ``weights_only=True``)."""
    atomic_torch_save(
        path,
        {
            "format": "nesy-dynamics-1",
            "model": model.name,
            "config": config_to_dict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": dict(meta or {}),
            **extra,
        },
    )


def load_model(path: PathLike) -> tuple[DynamicsModel, dict[str, Any]]:
    """Rebuild a model from :func:`save_model` output (or a training checkpoint).

    Returns:
        ``(model in eval mode, metadata dict)``.

    Raises:
        CheckpointError: missing/corrupt/damaged file (weights that do not match
            their digest), a file of another structure (each entry's type is
            checked), or weights that do not fit the config.
    """
    ckpt = require_fields(torch_load(path, "dynamics checkpoint"), path, "nesy dynamics checkpoint",
                          {"model": str, "config": dict, "state_dict": dict})
    meta = ckpt.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not a nesy dynamics checkpoint: its 'meta' entry is a "
                              f"{type(meta).__name__}, expected a dict")
    try:
        model = make_model(ckpt["model"], config_from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
    except (ConfigError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{Path(path)}: weights do not fit the stored config: {exc}") from None
    model.eval()
    return model, dict(meta)
