"""What NS-CL learns from: images, object masks, questions and answers -- no attribute label.

:func:`load_split` reads a CLEVR-format split (``nesy data clevr`` or the
official layout with masks) into :class:`QASet`: per image the crops and boxes
of its objects (from the instance masks, which name no attribute), and per
question its program and answer.  The scene files' attribute fields are never
read: ``tests/reasoning/test_nscl.py`` scrambles them and gets the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from perception.datasets import ClevrDataset
from perception.derender.attributes import AttributeConfig, crop_objects
from physics.errors import DataError
from physics.io import PathLike
from reasoning.dsl import Program, from_clevr
from reasoning.errors import ProgramError

__all__ = ["QASet", "load_split", "image_objects"]


@dataclass
class QASet:
    """Objects of each image and the questions about them.

    Attributes:
        crops: Per image ``uint8 [K, 4, S, S]`` (RGB and mask, 0-255).
        boxes: Per image ``float [K, 4]``.
        programs, answers, image: Per question its program, answer and image position.
        skipped: One line per question left out (no program, or a malformed one).
    """

    crops: list[Tensor]
    boxes: list[Tensor]
    programs: list[Program]
    answers: list[str]
    image: list[int]
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.programs)

    def objects(self, images: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """The float crops and boxes of ``images`` (positions), as :class:`ConceptLearner` takes them."""
        return [self.crops[i].float().div_(255.0) for i in images], [self.boxes[i] for i in images]


def image_objects(image: Tensor, masks: Tensor, crop_size: int) -> tuple[Tensor, Tensor]:
    """Crops (uint8) and boxes of the non-empty ``masks`` ``[K, H, W]`` of ``image`` ``[3, H, W]``."""
    masks = masks[masks.flatten(1).any(1)]
    crops, boxes = crop_objects(image, masks.float(), AttributeConfig(crop_size=crop_size))
    return crops.mul(255.0).round_().clamp_(0, 255).to(torch.uint8), boxes


def load_split(root: PathLike, split: str, *, crop_size: int = 32, limit_images: int = 0, progress: bool = True) -> QASet:
    """Read a CLEVR split's images, instance masks and questions (never its attribute fields).

    Raises:
        DataError: the split has no instance masks or no questions.
    """
    data = ClevrDataset(root, split)
    if not data.load_masks:
        raise DataError(f"{root}: split {split!r} has no instance masks, which NS-CL's objects come from")
    if not data.questions:
        raise DataError(f"{root}: split {split!r} has no questions file")
    n = len(data) if not limit_images else min(limit_images, len(data))
    out = QASet([], [], [], [], [], [])
    for k in tqdm(range(n), desc=f"objects of {split}", unit="image", disable=not progress, leave=False):
        item = data[k]
        ids = item["mask"]
        count = int(ids.max()) + 1 if ids.numel() else 0
        masks = torch.stack([ids == i for i in range(count)]) if count else torch.zeros(0, *ids.shape, dtype=torch.bool)
        crops, boxes = image_objects(item["image"], masks, crop_size)
        out.crops.append(crops)
        out.boxes.append(boxes)
        for q in item["questions"]:
            where = f"{item['image_filename']} question {q.get('question_index', '?')}"
            if "program" not in q or "answer" not in q:
                out.skipped.append(f"{where}: no program or answer")
                continue
            try:
                program = from_clevr(q["program"])
            except ProgramError as exc:
                out.skipped.append(f"{where}: {exc}")
                continue
            out.programs.append(program)
            out.answers.append(str(q["answer"]))
            out.image.append(k)
    return out
