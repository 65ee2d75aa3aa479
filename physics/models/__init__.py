"""Learned simulators: Interaction Network, PropNet, DPI-Net on one encode-process-decode skeleton.

>>> from physics.models import make_model, preset
>>> model = make_model("propnet", preset("cradle", "propnet", node_attr_dim=2, edge_attr_dim=1))
"""

from physics.models.base import DynamicsModel, random_walk_noise
from physics.models.config import (
    MODEL_NAMES,
    WORLDS,
    ModelConfig,
    config_from_dict,
    config_to_dict,
    preset,
)
from physics.models.data import make_samples, one_step_graphs
from physics.models.dpinet import DPINet
from physics.models.interaction_network import InteractionNetwork
from physics.models.propnet import PropNet
from physics.models.resolver import MODELS, load_model, make_model, save_model
from physics.models.rollout import rollout, rollout_errors
from physics.models.shape_matching import kabsch, shape_match
from physics.models.training import TrainConfig, resolve_device, train

__all__ = [
    "DynamicsModel",
    "InteractionNetwork",
    "PropNet",
    "DPINet",
    "ModelConfig",
    "MODEL_NAMES",
    "MODELS",
    "WORLDS",
    "preset",
    "config_to_dict",
    "config_from_dict",
    "make_model",
    "save_model",
    "load_model",
    "make_samples",
    "one_step_graphs",
    "rollout",
    "rollout_errors",
    "kabsch",
    "shape_match",
    "random_walk_noise",
    "TrainConfig",
    "train",
    "resolve_device",
]
