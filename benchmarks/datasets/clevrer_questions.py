"""``nesy data clevrer-questions``: CLEVRER questions for a folder of videos, in the official JSON.

Reads the annotations and truth files ``nesy data clevrer`` wrote for one split
and writes (see :mod:`reasoning.questions.clevrer` for the questions)::

    DATA/questions_<split>/questions_00000.json   one video's entry, written when it is done
    DATA/questions_<split>.build.json             the options the questions were made with
    DATA/validation.json                          the split's questions: train.json, validation.json, test.json

Video ``k``'s questions are a pure function of its annotation, its truth file,
``seed`` and the counts, so the output is the same bytes however often the run
is interrupted: a rerun keeps the per-video files already written (after
checking they parse) and makes only the missing ones, then assembles the split
file. Resuming with other options is refused. A video whose files cannot be
read is reported and skipped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.datasets.build_record import check_same_build
from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError, NesyError
from physics.io import atomic_write_json, ensure_dir, read_json
from physics.video_dynamics import GroundTruthDynamics
from physics.worlds.clevrer_annotation import annotation_files, read_annotation
from physics.worlds.clevrer_truth import read_truth
from reasoning.executor.video_scene import VideoScene
from reasoning.nsdr import VideoFiles
from reasoning.questions.clevrer import (
    QUESTION_TYPES,
    ClevrerQuestionConfig,
    generate_video_questions,
    question_path,
)

__all__ = ["ClevrerQuestionsDataConfig", "build_clevrer_questions"]


@dataclass(frozen=True)
class ClevrerQuestionsDataConfig:
    """What ``nesy data clevrer-questions`` writes (one split of an existing folder)."""

    data: str = field(metadata={"help": "folder written by nesy data clevrer"})
    split: str = field(default="train", metadata={"help": "split name in the folder names"})
    seed: int = field(default=0, metadata={"help": "question seed (each video's index is mixed in)"})
    descriptive: int = field(default=6, metadata={"help": "descriptive questions per video (at most)"})
    explanatory: int = field(default=2, metadata={"help": "explanatory questions per video (at most)"})
    predictive: int = field(default=1, metadata={"help": "predictive questions per video (0 or 1)"})
    counterfactual: int = field(default=3, metadata={"help": "counterfactual questions per video (at most)"})
    choices: int = field(default=4, metadata={"min": 2, "help": "most options of an explanatory or counterfactual question"})
    predictive_choices: int = field(default=2, metadata={"min": 2,
        "help": "most options of a predictive question (CLEVRER: 2); equal to --choices it is left out of the "
                "build record, so a folder whose record lacks it resumes"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.seed < 0:
            raise ConfigError(f"--seed must be non-negative, got {self.seed}")
        self.questions()  # checks the counts

    def questions(self) -> ClevrerQuestionConfig:
        return ClevrerQuestionConfig(self.descriptive, self.explanatory, self.predictive, self.counterfactual,
                                     self.choices, predictive_choices=self.predictive_choices)


def _per_video(cfg: ClevrerQuestionsDataConfig, index: int) -> Path:
    return Path(cfg.data) / f"questions_{cfg.split}" / f"questions_{index:05d}.json"


def _check_same_build(cfg: ClevrerQuestionsDataConfig) -> None:
    marker = Path(cfg.data) / f"questions_{cfg.split}.build.json"
    identity = {k: v for k, v in asdict(cfg).items() if k != "data"}
    if cfg.predictive_choices == cfg.choices:
        del identity["predictive_choices"]  # predictive questions as every question before: older records still match
    check_same_build(marker, identity, what="CLEVRER questions build record",
                     holds=f"{cfg.data} holds {cfg.split} questions made",
                     remedy=f"delete {marker.name} and questions_{cfg.split}/ to start again")


def _done(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        entry = read_json(path, "CLEVRER questions of one video")
    except DataError:
        return None
    return entry if isinstance(entry, dict) and "questions" in entry else None


def build_clevrer_questions(cfg: ClevrerQuestionsDataConfig, *, progress: bool = True) -> dict[str, Any]:
    """Write (or finish) the questions of one split; returns a JSON-able summary.

    Raises:
        DataError: the folder holds no annotation of ``split``.
        ConfigError: the split's questions were started with other options.
    """
    files = annotation_files(Path(cfg.data) / f"annotation_{cfg.split}")
    ensure_dir(Path(cfg.data) / f"questions_{cfg.split}")
    _check_same_build(cfg)
    start = time.perf_counter()
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    made = 0
    counts: Counter[str] = Counter()
    for path in tqdm(files, desc=f"CLEVRER questions {cfg.split}", unit="video", disable=not progress):
        index = int(path.stem.removeprefix("annotation_"))
        target = _per_video(cfg, index)
        entry = _done(target)
        if entry is None:
            try:
                video = VideoFiles.in_folder(cfg.data, cfg.split, index)
                if video.truth is None:
                    raise DataError(f"no truth file for {path.name} (nesy data clevrer writes truth_{cfg.split}/)")
                annotation = read_annotation(video.annotation)
                scene = VideoScene(annotation, GroundTruthDynamics(read_truth(video.truth)))
                entry = generate_video_questions(annotation, scene, cfg.questions(), cfg.seed)
            except NesyError as exc:
                skipped.append(f"{path.name}: {exc}")
                continue
            atomic_write_json(target, entry)
            made += 1
        entries.append(entry)
        counts.update(q["question_type"] for q in entry["questions"])
    out = question_path(cfg.data, cfg.split)
    atomic_write_json(out, entries)
    return {
        "out": str(out),
        "split": cfg.split,
        "videos": len(entries),
        "generated": made,
        "resumed": len(entries) - made,
        "skipped": skipped,
        "questions": {t: counts[t] for t in QUESTION_TYPES},
        "seconds": round(time.perf_counter() - start, 3),
    }
