"""Names -> simulators and their per-world configs, and self-contained checkpoints.

``make_model("propnet", config)`` builds a model registered in :data:`MODELS`;
``preset("rope", "propnet")`` is its default config on a world registered in
:data:`PRESETS`; an unknown name raises a ConfigError naming the closest names
and the choices (PyG's ``resolver.py`` style).  A saved model
file holds the weights (normalisation buffers included), the model name, its
config and free-form metadata (the command and seed that trained it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from physics.models.base import MODELS, DynamicsModel
from physics.models.config import (
    PRESETS,
    ModelConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)

__all__ = ["make_model", "preset", "save_model", "load_model", "declare_model", "DECLARABLE"]

# config fields that say how a trained model is rolled out, not what its weights compute: a checkpoint may
# declare them after training (declare_model) without retraining
DECLARABLE = ("wall_projection",)


def make_model(name: str, config: ModelConfig) -> DynamicsModel:
    """Build simulator ``name`` (any of :data:`MODELS`: ``in``, ``propnet``, ``dpinet``, ...) from ``config``."""
    return MODELS.get(name.lower() if isinstance(name, str) else name)(config)


def preset(world: str, model: str, **overrides: Any) -> ModelConfig:
    """Default config of ``model`` on ``world``: the model's own defaults on the world's preset.

    Interaction Network: one propagation step.  PropNet: L propagation steps with
    residuals.  DPI-Net: PropNet's processor plus dynamic neighbours and root nodes
    (per object; k-means clusters for the rope), with shape matching on rigid boxes
    (each model's :meth:`~physics.models.base.DynamicsModel.preset_config`).

    Overrides name ModelConfig fields (``hidden=128``) or, with a ``graph.``
    prefix, GraphConfig fields (``graph.radius=0.2``).

    Raises:
        ConfigError: unknown world, model or field (names the choices).
    """
    world_preset = PRESETS.get(world)
    cls = MODELS.get(model)
    return apply_overrides(cls.preset_config(world_preset), overrides)


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


def declare_model(src: PathLike, dst: PathLike, note: str = "", **fields: Any) -> None:
    """Write ``src``'s model to ``dst`` with config fields of :data:`DECLARABLE` set (``wall_projection=True``).

    The weights and metadata are copied unchanged; ``meta["declared"]`` records the fields (and ``note``,
    e.g. the rule that decided them), so the file says what was added after training.

    Raises:
        ConfigError: no field, or a field that is not declarable (one that would change the weights' meaning).
        CheckpointError: ``src`` is not a loadable model file.
    """
    bad = sorted(set(fields) - set(DECLARABLE))
    if not fields or bad:
        raise ConfigError(f"declare_model: give fields among {', '.join(DECLARABLE)} (what changes a rollout, not "
                          f"the weights), got {', '.join(bad) or 'none'}")
    old, meta = load_model(src)
    model = make_model(old.name, apply_overrides(old.config, fields))
    model.load_state_dict(old.state_dict())
    declared = ", ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
    meta["declared"] = declared + (f" ({note})" if note else "")
    save_model(dst, model, meta)
