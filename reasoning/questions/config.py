"""GeneratorConfig: every knob of the question generator, frozen and validated."""

from __future__ import annotations

from dataclasses import dataclass, field

from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = ["GeneratorConfig"]


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings of :class:`~reasoning.questions.QuestionGenerator`.

    The defaults follow CLEVR's ``generate_questions.py``: one instance per
    template and scene, answer balancing with the 1.1 x runner-up / 5 x median
    rule, counts reset every 250 scenes, 10 % trivial relate-filters allowed.
    """

    instances_per_template: int = field(
        default=1, metadata={"min": 1, "help": "questions one template may give per scene"}
    )
    balance: bool = field(
        default=True, metadata={"help": "reject over-represented answers per template"}
    )
    balance_ratio: float = field(
        default=1.1,
        metadata={"help": "reject an answer counted more than this x the runner-up's count"},
    )
    balance_median_factor: float = field(
        default=5.0, metadata={"help": "reject an answer counted more than this x the median count"}
    )
    balance_median_floor: int = field(
        default=5, metadata={"help": "the median used by the median rule is at least this"}
    )
    reset_counts_every: int = field(
        default=250,
        metadata={"help": "forget template and answer counts every N scenes (0: never)"},
    )
    trivial_relate_fraction: float = field(
        default=0.1,
        metadata={
            "help": "share of relate-filter options whose relation adds nothing, kept on purpose"
        },
    )
    reject_degenerate: bool = field(
        default=True,
        metadata={"help": "drop questions whose relate step does not change the answer"},
    )
    # 500: on 250 synthetic scenes, 500 and 5000 gave the same per-template question
    # counts (official templates), while failing searches cost 4x less.
    max_search_states: int = field(
        default=500,
        metadata={"min": 1, "help": "search states one template may visit per scene before giving up"},
    )
    split: str = field(
        default="train", metadata={"help": "split name for questions whose scene has none"}
    )
    fix_articles: bool = field(default=True, metadata={"help": "write 'an' before a vowel sound"})

    def __post_init__(self) -> None:
        check_field_types(self)  # a wrong type from Python: one line naming the field (physics.config_types)
        if self.instances_per_template < 1:
            raise ConfigError(
                f"instances_per_template must be >= 1, got {self.instances_per_template}"
            )
        if not self.balance_ratio >= 1.0:  # written so that NaN fails too (it fails every comparison)
            raise ConfigError(f"balance_ratio must be >= 1.0, got {self.balance_ratio}")
        if not self.balance_median_factor > 0 or self.balance_median_floor < 0:
            raise ConfigError("balance_median_factor must be > 0 and balance_median_floor >= 0, got "
                              f"{self.balance_median_factor} and {self.balance_median_floor}")
        if self.reset_counts_every < 0:
            raise ConfigError(f"reset_counts_every must be >= 0, got {self.reset_counts_every}")
        if not 0.0 <= self.trivial_relate_fraction < 1.0:
            raise ConfigError(
                f"trivial_relate_fraction must be in [0, 1), got {self.trivial_relate_fraction}"
            )
        if self.max_search_states < 1:
            raise ConfigError(f"max_search_states must be >= 1, got {self.max_search_states}")
