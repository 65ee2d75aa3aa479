"""The options of ``nesy bench speed`` (one frozen config shared by all suites)."""

from __future__ import annotations

from dataclasses import dataclass, field

from physics.config_types import check_field_types

__all__ = ["SpeedConfig"]


@dataclass(frozen=True)
class SpeedConfig:
    """Options shared by the speed suites (flags of ``nesy bench speed``)."""

    suite: str = field(default="executor", metadata={"help": "speed suite to run"})
    questions: int = field(default=100_000, metadata={"min": 1, "help": "questions to answer"})
    scenes: int = field(default=1000, metadata={"min": 1, "help": (
        "executor: synthetic scenes of the in-memory runs (in the JSON result; the printed end-to-end table's "
        "questions have scenes of their own, --questions-per-scene each); clevr-data: scenes rendered")})
    seed: int = field(default=0, metadata={"help": "random seed of scenes and questions"})
    questions_per_scene: int = field(
        default=10,
        metadata={"min": 1,
            "help": "official-shaped questions per scene in the end-to-end run (CLEVR asks about 10)"
        },
    )
    shapes: int = field(
        default=90, metadata={"min": 1, "help": "distinct program shapes (CLEVR v1.0 has 90 templates)"}
    )
    repeats: int = field(
        default=3, metadata={"min": 1, "help": "timed runs per mode; the fastest is reported"}
    )
    out: str | None = field(default=None, metadata={"help": "also write the JSON result here"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
