"""Learned simulators: Interaction Network, PropNet, DPI-Net on one encode-process-decode skeleton.

A simulator is one module: a :class:`DynamicsModel` subclass and one
``register_model(Cls)`` call; a world's defaults are one ``register_preset``.

>>> from physics.models import make_model, preset
>>> model = make_model("propnet", preset("cradle", "propnet", node_attr_dim=2, edge_attr_dim=1))
"""

from physics.models.base import MODELS, DynamicsModel, random_walk_noise, register_model
from physics.models.config import (
    PRESETS,
    ModelConfig,
    WorldPreset,
    config_from_dict,
    config_to_dict,
    register_preset,
)
from physics.models.data import make_samples, one_step_graphs
from physics.models.dpinet import DPINet
from physics.models.gns import GNS
from physics.models.interaction_network import InteractionNetwork
from physics.models.propnet import PropNet
from physics.models.resolver import declare_model, load_model, make_model, preset, save_model
from physics.models.rollout import prescribed_nodes, rollout, rollout_errors
from physics.models.shape_matching import kabsch, rigidity_error, shape_match
from physics.models.training import TrainConfig, resolve_device, train

__all__ = [
    "DynamicsModel",
    "InteractionNetwork",
    "PropNet",
    "DPINet",
    "GNS",
    "ModelConfig",
    "WorldPreset",
    "MODELS",
    "PRESETS",
    "register_model",
    "register_preset",
    "preset",
    "config_to_dict",
    "config_from_dict",
    "make_model",
    "save_model",
    "load_model",
    "declare_model",
    "make_samples",
    "one_step_graphs",
    "rollout",
    "rollout_errors",
    "prescribed_nodes",
    "kabsch",
    "shape_match",
    "rigidity_error",
    "random_walk_noise",
    "TrainConfig",
    "train",
    "resolve_device",
]
