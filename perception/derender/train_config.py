"""Options of ``nesy train derender`` and the command line that reproduces them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from perception.derender.attributes import AttributeConfig
from perception.derender.proposals import ProposalConfig
from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.training import config_flags

__all__ = ["DerenderTrainConfig", "command_line", "RESUMABLE_CHANGES"]

# flags a resumed network's training may change: they do not change what is computed
RESUMABLE_CHANGES = ("threads", "device", "out", "stage", "eval_data", "eval_limit", "test_scales", "test_flip")


@dataclass(frozen=True)
class DerenderTrainConfig:
    """Options of ``nesy train derender`` (each field is a flag)."""

    data: str = field(metadata={"help": "training data folder written by `nesy data clevr`; several folders "
                                "joined by commas are read in turn (e.g. pybullet and Blender renders)"})
    out: str = field(default="runs/derender", metadata={"help": "output folder (checkpoints, metrics.jsonl)"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation and batch order"})
    epochs: int = field(default=10, metadata={"min": 1, "help": "epochs of each network unless set below"})
    proposal_epochs: int | None = field(default=None, metadata={"min": 1, "help": "epochs of the proposal network"})
    attribute_epochs: int | None = field(default=None, metadata={"min": 1, "help": "epochs of the attribute network"})
    batch_size: int = field(default=8, metadata={"min": 1, "help": "images per proposal-network batch"})
    attribute_batch_size: int = field(default=64, metadata={"min": 1, "help": "crops per attribute-network batch"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate (cosine decay to 5 percent)"})
    limit: int | None = field(default=None, metadata={"min": 1, "help": "use the first N training scenes"})
    stage: str = field(
        default="all",
        metadata={"help": "which networks to train", "choices": ("all", "proposal", "attribute")},
    )
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads"})
    # cpu by default, not auto: a run on a GPU machine stays the CPU run it was before the flag
    device: str = field(default="cpu", metadata={"help": "auto (cuda when present), cpu, cuda, cuda:N; under "
                                                  "torchrun cuda gives each process cuda:LOCAL_RANK"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out data folder to evaluate on"})
    eval_limit: int | None = field(default=None, metadata={"min": 1, "help": "evaluate on the first N held-out scenes"})
    input_height: int = field(default=160, metadata={"min": 1, "help": "proposal-network input height"})
    input_width: int = field(default=240, metadata={"min": 1, "help": "proposal-network input width"})
    width: int = field(default=16, metadata={"min": 1, "help": "proposal-network base channels"})
    attribute_width: int = field(default=32, metadata={"min": 1, "help": "attribute-network base channels"})
    crop_size: int = field(default=48, metadata={"min": 1, "help": "attribute crop side in pixels"})
    skip: int = field(default=0, metadata={"help": "leave out the first N training scenes (--limit counts after them)"})
    attribute_masks: str = field(
        default="gt",
        metadata={
            "help": "masks of the attribute network's training crops: true masks coarsened to the proposal grid, "
            "the proposal network's own masks (matched to true objects by centre distance), or both",
            "choices": ("gt", "proposal", "mixed"),
        },
    )
    match_distance: float = field(
        default=20.0, metadata={"help": "proposal masks: largest centre distance (px) to a matched true object"}
    )
    proposal_from: str | None = field(
        default=None,
        metadata={"help": "derender.pt whose proposal network makes the proposal masks and joins the result "
                  "(--stage attribute; default: OUT's trained proposal network)"},
    )
    attribute_init: str | None = field(
        default=None, metadata={"help": "derender.pt whose attribute network is fine-tuned instead of a new one"}
    )
    attribute_augment: bool = field(
        default=False,
        metadata={"help": "jitter each attribute training crop's box (shift, scale) and mask (grow, shrink)"},
    )
    attribute_occlude: float = field(
        default=0.0,
        metadata={"help": "share (0..1) of the attribute training crops offered a nearer object (another crop's, pasted in front) "
                  "kept when it hides 15-65%% of the mask, then re-cut around the rest, as partly hidden objects are proposed (0: off)"},
    )
    attribute_occlude_no_centre: bool = field(
        default=False,
        metadata={"help": "leave the crops that --attribute-occlude occluded out of the centre loss "
                  "(they train the attribute heads only)"},
    )
    attribute_flip: float = field(
        default=0.0,
        metadata={"help": "share (0..1) of the attribute training crops mirrored left to right (box and centre "
                  "target with them; 0: off); such a network can read with --test-flip"},
    )
    look_augment: bool = field(
        default=False,
        metadata={"help": "randomise the look of every training image and crop (brightness, contrast, gamma, "
                  "channel gains, blur, noise), so the derenderer meets other renderers' looks"},
    )
    proposal_init: str | None = field(
        default=None,
        metadata={"help": "derender.pt whose proposal network is fine-tuned instead of a new one (it is fully "
                  "convolutional: --input-height/--input-width may differ from its own)"},
    )
    offset_balance: float = field(
        default=0.0,
        metadata={"help": "share (0..1) of the proposal offset loss averaged per object instead of per pixel: "
                  "small, half-hidden objects weigh as much as large ones"},
    )
    close_weight: float = field(
        default=1.0,
        metadata={"help": "weight (>= 1) of the objects that touch another object in the image in the proposal "
                  "loss: the heat map near their centres and the offsets on their pixels, against merged "
                  "instances (1: off)"},
    )
    test_scales: str = field(
        default="",
        metadata={"help": "comma-separated crop scales (each in [0.5, 2], e.g. 0.92,1.08) whose attribute "
                  "probabilities the derenderer averages with the plain crop's at test time; recorded in the "
                  "checkpoint, not used in training (default: the plain crop only)"},
    )
    test_flip: bool = field(
        default=False,
        metadata={"help": "the derenderer also averages each crop mirrored left to right at test time (for a "
                  "network trained with --attribute-flip); recorded in the checkpoint, not used in training"},
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        self.parsed_test_scales()  # one-line error for a bad --test-scales
        for name in ("epochs", "batch_size", "attribute_batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DerenderTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"DerenderTrainConfig.lr must be > 0, got {self.lr}")
        if self.skip < 0:
            raise ConfigError(f"DerenderTrainConfig.skip must be >= 0, got {self.skip}")
        if self.attribute_masks not in ("gt", "proposal", "mixed"):
            raise ConfigError(f"DerenderTrainConfig.attribute_masks must be gt, proposal or mixed, "
                              f"got {self.attribute_masks!r}")
        if not 0.0 <= self.attribute_occlude <= 1.0:
            raise ConfigError(f"DerenderTrainConfig.attribute_occlude must lie in [0, 1], got {self.attribute_occlude}")
        if self.attribute_occlude_no_centre and self.attribute_occlude == 0.0:
            raise ConfigError("DerenderTrainConfig.attribute_occlude_no_centre needs attribute_occlude > 0 "
                              "(no crop is occluded without it)")
        if not 0.0 <= self.attribute_flip <= 1.0:
            raise ConfigError(f"DerenderTrainConfig.attribute_flip must lie in [0, 1], got {self.attribute_flip}")
        if not 0.0 <= self.offset_balance <= 1.0:
            raise ConfigError(f"DerenderTrainConfig.offset_balance must lie in [0, 1], got {self.offset_balance}")
        if not (math.isfinite(self.close_weight) and self.close_weight >= 1.0):
            raise ConfigError(f"DerenderTrainConfig.close_weight must be a finite number >= 1 (1: off), "
                              f"got {self.close_weight}")
        if not self.match_distance > 0:
            raise ConfigError(f"DerenderTrainConfig.match_distance must be > 0, got {self.match_distance}")
        if self.proposal_from is not None and self.stage != "attribute":
            raise ConfigError("DerenderTrainConfig.proposal_from needs stage='attribute' (it replaces training "
                              "the proposal network)")
        if self.proposal_init is not None and self.stage == "attribute":
            raise ConfigError("DerenderTrainConfig.proposal_init needs stage 'proposal' or 'all' (it starts the "
                              "proposal network's training)")

    @property
    def proposal_config(self) -> ProposalConfig:
        return ProposalConfig(input_size=(self.input_height, self.input_width), width=self.width)

    def parsed_test_scales(self) -> tuple[float, ...]:
        """``test_scales`` as numbers; ConfigError naming the flag when one is not a number in [0.5, 2]."""
        if not self.test_scales.strip():
            return ()
        out = []
        for item in self.test_scales.split(","):
            try:
                value = float(item)
            except ValueError:
                raise ConfigError(f"--test-scales {self.test_scales!r}: {item.strip()!r} is not a number") from None
            if not math.isfinite(value) or not 0.5 <= value <= 2.0:
                raise ConfigError(f"--test-scales {self.test_scales!r}: each scale must lie in [0.5, 2], got {item.strip()}")
            if value in out:  # 1.1,1.10 would weigh that crop twice in the average
                raise ConfigError(f"--test-scales {self.test_scales!r}: {item.strip()} given twice; name each once")
            out.append(value)
        return tuple(out)

    @property
    def attribute_config(self) -> AttributeConfig:
        return AttributeConfig(crop_size=self.crop_size, width=self.attribute_width,
                               test_scales=self.parsed_test_scales(), test_flip=self.test_flip)


def command_line(config: DerenderTrainConfig) -> str:
    """The ``nesy train derender`` command that reproduces ``config`` (threads and defaults left out)."""
    flags = config_flags(config, skip=("threads",), defaults=DerenderTrainConfig(data=config.data), keep=("data",))
    return " ".join(["nesy", "train", "derender", *flags])
