"""A config's field values checked against its annotations (``physics.config_types``), once for every config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from physics.config_types import check_field_types
from physics.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    k: int = 1


@dataclass(frozen=True)
class Toy:
    steps: int = 3
    rate: float = 0.5
    on: bool = False
    name: str = "a"
    limit: int | None = None
    weights: tuple[float, ...] = ()
    pair: tuple[int, str] = (1, "x")
    mode: Literal["fast", "slow"] = "fast"
    inner: Inner = Inner()
    anything: object = None

    def __post_init__(self) -> None:
        check_field_types(self)


@pytest.mark.parametrize("kwargs", [
    {}, {"steps": np.int64(4)}, {"rate": 2}, {"rate": np.float32(0.25)}, {"on": np.bool_(True)}, {"name": Path("p")},
    {"limit": 5}, {"limit": None}, {"weights": (1, 2.5)}, {"weights": [1.0]}, {"pair": [2, "y"]}, {"mode": "slow"},
    {"inner": Inner(2)}, {"anything": "text"},
])
def test_values_of_their_fields_types_pass(kwargs):
    assert Toy(**kwargs) is not None


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"steps": "3"}, "Toy.steps must be an integer, got '3' (str)"),
    ({"steps": True}, "Toy.steps must be an integer, got True (bool)"),  # True is an int in Python
    ({"steps": 3.0}, "Toy.steps must be an integer, got 3.0 (float)"),
    ({"rate": "0.5"}, "Toy.rate must be a number, got '0.5' (str)"),
    ({"rate": None}, "Toy.rate must be a number, got None (NoneType)"),
    ({"rate": False}, "Toy.rate must be a number, got False (bool)"),
    ({"on": 1}, "Toy.on must be true or false (a bool), got 1 (int)"),
    ({"on": "false"}, "Toy.on must be true or false (a bool), got 'false' (str)"),
    ({"name": 3}, "Toy.name must be text, got 3 (int)"),
    ({"limit": "5"}, "Toy.limit must be an integer or None, got '5' (str)"),
    ({"weights": 0.5}, "Toy.weights must be a tuple of numbers, got 0.5 (float)"),
    ({"weights": ("1",)}, "Toy.weights must be a tuple of numbers, got ('1',) (tuple)"),
    ({"pair": (1,)}, "Toy.pair must be a tuple of 2 (an integer, text), got (1,) (tuple)"),
    ({"mode": "medium"}, "Toy.mode must be one of 'fast', 'slow', got 'medium' (str)"),
    ({"inner": {"k": 1}}, "Toy.inner must be a Inner, got {'k': 1} (dict)"),
])
def test_a_wrong_type_is_one_config_error_naming_the_config_the_field_the_value_and_the_type(kwargs, says):
    with pytest.raises(ConfigError) as info:
        Toy(**kwargs)
    assert str(info.value) == says


def _configs():
    from benchmarks.eval_clevrer import ClevrerEvalConfig
    from perception.audiovisual.correspondence import AVNetConfig
    from perception.audiovisual.sound_of_pixels import SoundOfPixelsConfig
    from perception.audiovisual.vatt import VATTConfig, VATTOptions
    from perception.derender.outline_training import OutlineTrainConfig
    from perception.derender.train_config import DerenderTrainConfig
    from perception.generative.autoencoder import CodecConfig
    from perception.generative.von import VonConfig
    from perception.interpret.gan_dissection import GanDissectionOptions
    from perception.video.annotate import VideoPerceptionConfig
    from perception.video.track import TrackConfig
    from physics.control.envs import BoxPushTaskConfig
    from physics.control.planners import PlannerConfig
    from physics.models.config import ModelConfig
    from physics.models.training import TrainConfig
    from physics.models.video_propnet import RolloutConfig
    from physics.worlds.audiovisual import AudioVisualConfig
    from physics.worlds.dynamics.rope import RopeConfig
    from reasoning.nscl.train import NSCLTrainConfig
    from reasoning.questions.config import GeneratorConfig

    return [
        (RolloutConfig, {"fps": "25"}, "RolloutConfig.fps must be an integer, got '25' (str)"),
        (RolloutConfig, {"future_reach": "0.15"}, "RolloutConfig.future_reach must be a number"),
        (RolloutConfig, {"spin_input": "yes"}, "RolloutConfig.spin_input must be true or false"),
        (RolloutConfig, {"ensemble": 2.0}, "RolloutConfig.ensemble must be an integer"),
        (ClevrerEvalConfig, {"data": "x", "limit": "3"}, "ClevrerEvalConfig.limit must be an integer or None"),
        (ClevrerEvalConfig, {"data": "x", "future_reach": "0.1"}, "ClevrerEvalConfig.future_reach must be a number"),
        (TrainConfig, {"epochs": "3"}, "TrainConfig.epochs must be an integer, got '3' (str)"),
        (TrainConfig, {"lr": "1e-3"}, "TrainConfig.lr must be a number"),
        (DerenderTrainConfig, {"data": "x", "epochs": "2"}, "DerenderTrainConfig.epochs must be an integer"),
        (OutlineTrainConfig, {"data": "x", "threads": "1"}, "OutlineTrainConfig.threads must be an integer"),
        (NSCLTrainConfig, {"epochs": "2"}, "NSCLTrainConfig.epochs must be an integer"),
        (VATTConfig, {"dim": "32"}, "VATTConfig.dim must be an integer"),
        (VATTOptions, {"variant": 3}, "VATTOptions.variant must be text"),
        (GanDissectionOptions, {"harmless": "8"}, "GanDissectionOptions.harmless must be an integer"),
        (VideoPerceptionConfig, {"batch": "8"}, "VideoPerceptionConfig.batch must be an integer"),
        (TrackConfig, {"max_distance": "9"}, "TrackConfig.max_distance must be a number"),
        (ModelConfig, {"hidden": "64"}, "ModelConfig.hidden must be an integer"),
        (PlannerConfig, {"horizon": "3"}, "PlannerConfig.horizon must be an integer"),
        (BoxPushTaskConfig, {"max_steps": "9"}, "BoxPushTaskConfig.max_steps must be an integer"),
        (RopeConfig, {"steps": "9"}, "RopeConfig.steps must be an integer"),
        # the configs the docs build from Python (docs/CHANGELOG.md)
        (CodecConfig, {"latent": "16"}, "CodecConfig.latent must be an integer"),
        (VonConfig, {"depth_weight": "1"}, "VonConfig.depth_weight must be a number"),
        (SoundOfPixelsConfig, {"frames": 3.0}, "SoundOfPixelsConfig.frames must be an integer"),
        (AudioVisualConfig, {"fps": "25"}, "AudioVisualConfig.fps must be an integer"),
        (AVNetConfig, {"profile": "no"}, "AVNetConfig.profile must be true or false"),
        (GeneratorConfig, {"balance_ratio": "0.5"}, "GeneratorConfig.balance_ratio must be a number"),
    ]


@pytest.mark.parametrize("case", range(26))
def test_the_configs_users_build_from_python_name_a_wrong_type(case):
    """Each names the config, the field and the type, in one line (not a TypeError naming nothing, such as
    ``'<' not supported between instances of 'str' and 'int'``, and never taken)."""
    configs = _configs()
    assert len(configs) == 26  # the parametrization covers each
    cls, kwargs, says = configs[case]
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert str(info.value).startswith(says) and "\n" not in str(info.value), str(info.value)


# every other public config dataclass of the four packages, by family (data builders, speed runs, derender and
# other perception networks, worlds and graphs, parsers and question generators, the bench / demo / eval commands'
# configs): a wrong type is one line, never a TypeError naming nothing (``'<' not supported between instances of
# 'str' and 'int'``) nor a value taken without a word (``SpeedConfig(questions="3")``).
PUBLIC_CONFIGS = [
    ("benchmarks.bench_all", "BenchAllConfig", {"out": "o", "quick": "yes"}),
    ("benchmarks.datasets.audiovisual_builder", "AudioVisualDataConfig", {"out": "o", "n": "3"}),
    ("benchmarks.datasets.clevr_builder", "ClevrDataConfig", {"out": "o", "n": "3"}),
    ("benchmarks.datasets.clevrer_builder", "ClevrerDataConfig", {"out": "o", "n": "3"}),
    ("benchmarks.datasets.clevrer_questions", "ClevrerQuestionsDataConfig", {"data": "d", "seed": "3"}),
    ("benchmarks.datasets.dynamics_builder", "DynamicsDataConfig", {"world": "cradle", "out": "o", "n": "3"}),
    ("benchmarks.demo", "DemoConfig", {"seed": "3"}),
    ("benchmarks.eval_clevr", "ClevrEvalConfig", {"data": "d", "min_depth": "3"}),
    ("benchmarks.speed.clevr_data", "ClevrSpeedConfig", {"scenes": "3"}),
    ("benchmarks.speed.clevrer_data", "ClevrerSpeedConfig", {"videos": "3"}),
    ("benchmarks.speed.config", "SpeedConfig", {"questions": "3"}),
    ("perception.audio.spectrogram", "SpectrogramConfig", {"n_fft": "3"}),
    ("perception.audiovisual.sound_of_motions", "SoundOfMotionsConfig", {"motion": "3"}),
    ("perception.correspondence.critters", "CritterConfig", {"size": "3"}),
    ("perception.correspondence.dve", "DVEConfig", {"dim": "3"}),
    ("perception.derender.attributes", "AttributeConfig", {"crop_size": "3"}),
    ("perception.derender.proposals", "ProposalConfig", {"width": "3"}),
    ("perception.events.collision_videos", "VideoConfig", {"frames": "3"}),
    ("perception.events.ctcn", "TCNConfig", {"depth": "3"}),
    ("perception.events.pgcn", "PGCNConfig", {"classes": "3"}),
    ("perception.events.tsm", "TSMConfig", {"frames": "3"}),
    ("perception.generative.deep_image_prior", "DipConfig", {"code": "3"}),
    ("perception.generative.masked_conv_ae", "MaskedConvConfig", {"height": "3"}),
    ("perception.generative.score_manifold", "ScoreConfig", {"ambient": "3"}),
    ("perception.geometry.polyphase", "PolyphaseConfig", {"width": "3"}),
    ("perception.geometry.warped", "WarpConfig", {"width": "3"}),
    ("perception.grounding.joint_embedding", "EmbeddingConfig", {"dim": "3"}),
    ("perception.interpret.net2vec", "Net2VecConfig", {"layer": "3"}),
    ("perception.interpret.perturbation", "PerturbationConfig", {"mask_side": "3"}),
    ("perception.interpret.promotion", "AttackConfig", {"linf_eps": "3"}),
    ("perception.interpret.scaffold", "ScaffoldConfig", {"student_width": "3"}),
    ("perception.interpret.subject", "SubjectConfig",
     {"probe_scenes": 2, "test_scenes": 2, "steps": 2, "batch": 2, "train_scenes": "3"}),
    ("perception.intuitive_physics.extrapolation", "ExtrapolationConfig", {"observed": "3"}),
    ("perception.intuitive_physics.tracker", "TrackerConfig", {"width": "3"}),
    ("perception.keypoints.autolink", "AutoLinkConfig", {"keypoints": "3"}),
    ("perception.robust.defensive_quantization", "QuantConfig", {"bits": "3"}),
    ("perception.robust.trap_and_replace", "TrapConfig", {"width": "3"}),
    ("perception.training_methods.distillation", "DistillConfig", {"per_class": "3"}),
    ("perception.training_methods.once_for_all", "OFAConfig", {"stem": "3"}),
    ("perception.training_methods.residual_adapters", "AdapterConfig", {"adapters": "yes"}),
    ("physics.graph.builder", "GraphConfig", {"history": "3"}),
    ("physics.worlds.articulated", "ChainConfig", {"link_length": "3"}),
    ("physics.worlds.clevr_blender", "BlenderConfig", {"assets": "a", "samples": "3"}),
    ("physics.worlds.clevr_layout", "LayoutConfig", {"min_objects": "3"}),
    ("physics.worlds.clevr_world", "ClevrWorldConfig", {"width": "3"}),
    ("physics.worlds.clevrer_world", "ClevrerConfig", {"width": "3"}),
    ("physics.worlds.heightfield", "HeightfieldConfig", {"size": "3"}),
    ("reasoning.nscl.model", "ConceptConfig", {"crop_size": "3"}),
    ("reasoning.parser.config", "ParserConfig", {"embedding_dim": "3"}),
    ("reasoning.questions.clevrer", "ClevrerQuestionConfig", {"descriptive": "3"}),
]


@pytest.mark.parametrize(("module", "name", "kwargs"), PUBLIC_CONFIGS, ids=[c[1] for c in PUBLIC_CONFIGS])
def test_every_public_config_names_a_wrong_type_in_one_line(module, name, kwargs):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    wrong = list(kwargs)[-1]  # the last key is the wrong one; those before it are required fields
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert str(info.value).startswith(f"{name}.{wrong} must be ") and "\n" not in str(info.value), str(info.value)
