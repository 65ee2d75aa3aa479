"""Configuration of the NS-VQA question parser: model size and both training stages."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = ["ParserConfig"]


@dataclass(frozen=True)
class ParserConfig:
    """Model and training settings of :class:`~reasoning.parser.QuestionParser`.

    The defaults follow NS-VQA (Yi et al., arXiv 1810.02338, Sec. 3.2 and
    App. B): an attention seq2seq model, supervised pretraining on a few
    hundred (question, program) pairs (270 = 3 per template for 90 templates),
    then REINFORCE on (question, answer) pairs.  The model is smaller than the
    paper's 2-layer 256-unit network so that both stages train on two CPU cores.
    """

    # --- model
    embedding_dim: int = field(default=128, metadata={"min": 1, "help": "word and token embedding size"})
    hidden_dim: int = field(default=256, metadata={"min": 1, "help": "LSTM hidden size (encoder: half per direction)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on embeddings and decoder outputs"})
    anonymize: bool = field(default=True, metadata={"help": "replace attribute words by numbered slots (Dong & Lapata 2016)"})
    phrases: bool = field(default=True, metadata={"help": "also collapse object phrases ('the big red cube') into slots <obj1> (needs anonymize)"})
    word_dropout: float = field(default=0.02, metadata={"help": "probability that a plain question word is read as <unk> in supervised training, so the model learns to read past words it never saw"})
    max_program_length: int = field(default=40, metadata={"min": 1, "help": "longest prefix program decoded"})
    # --- supervised stage
    programs: int = field(default=270, metadata={"min": 1, "help": "number of (question, program) pairs for pretraining"})
    epochs: int = field(default=100, metadata={"help": "passes over the supervised pairs"})
    batch_size: int = field(default=64, metadata={"min": 1, "help": "questions per optimiser step (both stages)"})
    learning_rate: float = field(default=2e-3, metadata={"help": "Adam step size of the supervised stage"})
    # --- REINFORCE stage
    reinforce_questions: int = field(default=20000, metadata={"help": "number of (question, answer) pairs for REINFORCE (0: skip the stage)"})
    reinforce_steps: int = field(default=1000, metadata={"help": "REINFORCE optimiser steps"})
    reinforce_learning_rate: float = field(default=3e-4, metadata={"help": "Adam step size of REINFORCE"})
    baseline_decay: float = field(default=0.9, metadata={"help": "moving-average reward baseline decay"})
    entropy_weight: float = field(default=0.005, metadata={"help": "entropy bonus weight in REINFORCE"})
    # --- bookkeeping
    seed: int = field(default=0, metadata={"help": "seed of initialisation, batching and sampling"})
    threads: int = field(default=2, metadata={"min": 1, "help": "torch CPU threads"})
    device: str = field(default="cpu", metadata={"help": "cpu (default: a small model decoded token by token), "
                                                 "auto (cuda when present), cuda, cuda:N"})
    checkpoint_every: int = field(default=200, metadata={"min": 1, "help": "optimiser steps between checkpoints"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        positive = (
            "embedding_dim", "hidden_dim", "max_program_length", "programs", "batch_size",
            "threads", "checkpoint_every",
        )
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in positive and v <= 0:
                raise ConfigError(f"ParserConfig.{f.name} must be positive, got {v}")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise ConfigError(f"ParserConfig.{f.name} must not be negative, got {v}")
        if self.hidden_dim % 2:
            raise ConfigError(f"ParserConfig.hidden_dim must be even (two encoder directions), got {self.hidden_dim}")
        for name in ("dropout", "word_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"ParserConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"ParserConfig.baseline_decay must be in [0, 1), got {self.baseline_decay}")
