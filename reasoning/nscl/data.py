"""What NS-CL learns from: images, object masks, questions and answers -- no attribute label.

:func:`load_split` reads a CLEVR-format split (``nesy data clevr`` or the
official layout with masks) into :class:`QASet`: per image the crops and boxes
of its objects (from the instance masks, which name no attribute), and per
question its program and answer.  The scene files' attribute fields are never
read: ``tests/reasoning/test_nscl.py`` scrambles them and gets the same data.

With ``objects="proposals"`` each object is cut instead with the mask the
derenderer's proposal network finds for it (what the model sees at test time,
from pixels): proposals are matched one-to-one to the true masks by IoU
(Hungarian), an object whose best proposal overlaps less than ``min_iou`` keeps
its true mask, and proposals matching no object are left out, so the objects
stay those the answers are about.

With ``cache=DIR`` the objects read (the costly part: images decoded and, with
proposals, run through the proposal network) are kept in one file per split
and reading options under ``DIR``; a later read with the same options, the same
images and the same proposal weights takes them from there (questions are
always read afresh from the questions file).

With ``others_mask=True`` every crop gets a fifth channel: the union of the *other*
objects' masks of its image, cut with the same box (:func:`image_objects`), so a
model can tell which pixels of its crop belong to a neighbour (an object partly
hidden behind another shows as a sliver beside that other's mask).  At test time
the others are the other proposals; in training, the other objects' masks as cut.

With ``context_size=C`` each image is also kept whole, resized to C x 3C/2 pixels
(:func:`context_image`), for a model with a context CNN; these are not cached
(resizing a decoded image is cheap next to the proposals).

With ``programs="parser"`` each question's program is the question parser's
(:class:`~reasoning.parser.QuestionParser`, the shipped one unless another is
given: the one ``nesy eval clevr --parser model`` uses), parsed from its text in
batches; the questions file's ``program`` field is then never read.  A question
the parser finds no well-typed program for is skipped and counted in
:attr:`QASet.skipped`, like a question without a program under ``programs="gt"``.  With ``programs="none"``
no program is read or made: :attr:`QASet.programs` stays empty and each question
keeps only its text and answer (:mod:`reasoning.nscl.joint` parses them itself).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from tqdm import tqdm

from perception.datasets import ClevrDataset
from perception.derender.attributes import AttributeConfig, crop_grid, crop_objects
from physics.errors import CheckpointError, ConfigError, DataError
from physics.io import PathLike, atomic_torch_save, torch_load, weights_digest
from reasoning.dsl import Program, from_clevr
from reasoning.dsl.typecheck import unknown_function
from reasoning.errors import ProgramError
from reasoning.executor.result import given_answer
from reasoning.executor.soft import SOFT_OPS
from reasoning.nscl.model import context_shape

__all__ = ["QASet", "load_split", "join_sets", "image_objects", "other_masks", "match_proposals", "context_image", "OBJECT_SOURCES",
           "PROGRAM_SOURCES"]

OBJECT_SOURCES = ("masks", "proposals")
# each question's program: the questions file's, the question parser's, or none (texts and answers only)
PROGRAM_SOURCES = ("gt", "parser", "none")


@dataclass
class QASet:
    """Objects of each image and the questions about them.

    Attributes:
        crops: Per image ``uint8 [K, 4, S, S]`` (RGB and mask, 0-255; ``[K, 5, S, S]`` with the others' mask
            channel last, ``others_mask``).
        boxes: Per image ``float [K, 4]``.
        programs, answers, image: Per question its program, answer and image position (``programs`` empty
            when ``program_source`` is ``"none"``).
        texts: Per question its text.
        skipped: One line per question left out (no program, or a malformed one).
        from_proposals: Objects cut with a matched proposal mask (``objects="proposals"``).
        from_masks: Objects cut with their true mask.
        contexts: Per image ``uint8 [3, C, 3C/2]``, the whole image resized (``context_size``; else empty).
        program_source: Where the programs came from, one of :data:`PROGRAM_SOURCES`.
    """

    crops: list[Tensor]
    boxes: list[Tensor]
    programs: list[Program]
    answers: list[str]
    image: list[int]
    skipped: list[str]
    from_proposals: int = field(default=0)
    from_masks: int = field(default=0)
    contexts: list[Tensor] = field(default_factory=list)
    program_source: str = field(default="gt")
    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.answers)

    def objects(self, images: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """The float crops and boxes of ``images`` (positions), as :class:`ConceptLearner` takes them."""
        return [self.crops[i].float().div_(255.0) for i in images], [self.boxes[i] for i in images]

    def context_images(self, images: list[int]) -> list[Tensor] | None:
        """The float whole images of ``images`` (positions) for a context CNN (None if not read)."""
        if not self.contexts:
            return None
        return [self.contexts[i].float().div_(255.0) for i in images]


def join_sets(sets: list[QASet]) -> QASet:
    """Several splits as one: images one after the other, each question still on its own image."""
    sources = sorted({part.program_source for part in sets})
    if len(sources) > 1:
        raise ConfigError(f"join_sets: the splits' programs come from different sources ({', '.join(sources)})")
    out = QASet([], [], [], [], [], [], program_source=sources[0] if sources else "gt")
    for part in sets:
        offset = len(out.crops)
        out.crops += part.crops
        out.boxes += part.boxes
        out.programs += part.programs
        out.answers += part.answers
        out.image += [offset + i for i in part.image]
        out.texts += part.texts
        out.skipped += part.skipped
        out.from_proposals += part.from_proposals
        out.from_masks += part.from_masks
        out.contexts += part.contexts
    if out.contexts and len(out.contexts) != len(out.crops):
        raise ConfigError("join_sets: some splits were read with whole images (context_size) and some without")
    return out


def image_objects(image: Tensor, masks: Tensor, crop_size: int, others: bool = False) -> tuple[Tensor, Tensor]:
    """Crops (uint8) and boxes of the non-empty ``masks`` ``[K, H, W]`` of ``image`` ``[3, H, W]``.

    With ``others`` each crop ``[4, S, S]`` gets a fifth channel: the union of the other masks
    (:func:`other_masks`) cut with its box, as its own mask is.
    """
    masks = masks[masks.flatten(1).any(1)]
    crops, boxes = crop_objects(image, masks.float(), AttributeConfig(crop_size=crop_size))
    if others and len(masks):
        grid = crop_grid(boxes, crop_size)
        rest = F.grid_sample(other_masks(masks).float().unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)
        crops = torch.cat([crops, rest], dim=1)
    elif others:
        crops = torch.zeros(0, 5, crop_size, crop_size)
    return crops.mul(255.0).round_().clamp_(0, 255).to(torch.uint8), boxes


def other_masks(masks: Tensor) -> Tensor:
    """bool ``[K, H, W]``: per mask of ``masks`` ``[K, H, W]`` the union of all the others (pixels it shares with
    another stay in both)."""
    if not len(masks):
        return masks.bool()
    m = masks.bool()
    counts = m.sum(0, dtype=torch.int32)
    return (counts[None] - m.to(torch.int32)) > 0


def context_image(image: Tensor, size: int) -> Tensor:
    """``float [3, H, W]`` image in [0, 1] -> ``uint8 [3, size, 3 size / 2]`` (area-averaged), a context CNN's input."""
    small = F.interpolate(image[None].float(), size=context_shape(size), mode="area")[0]
    return small.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def match_proposals(masks: Tensor, proposals: Tensor, min_iou: float = 0.5) -> tuple[Tensor, Tensor]:
    """Each true mask replaced by the proposal matched to it, where one overlaps enough.

    Args:
        masks: bool ``[K, H, W]``, the true instance masks.
        proposals: bool ``[P, H, W]``, the proposal network's masks of the same image.
        min_iou: Below this IoU an object keeps its true mask.

    Returns:
        bool ``[K, H, W]``: per object its matched proposal or, unmatched, its own mask
        (one-to-one matching by IoU; unmatched proposals are left out), and bool ``[K]``:
        which objects took a proposal.
    """
    out, used = masks.clone(), torch.zeros(len(masks), dtype=torch.bool)
    if not len(masks) or not len(proposals):
        return out, used
    a, b = masks.flatten(1).float(), proposals.flatten(1).float()
    inter = a @ b.T
    iou = inter / (a.sum(1, keepdim=True) + b.sum(1)[None, :] - inter).clamp_min(1.0)
    rows, cols = linear_sum_assignment(iou.numpy(), maximize=True)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if iou[r, c] >= min_iou:
            out[r], used[r] = proposals[c], True
    return out, used


def load_split(
    root: PathLike,
    split: str,
    *,
    crop_size: int = 32,
    limit_images: int = 0,
    progress: bool = True,
    objects: str = "masks",
    proposals: Any = None,
    min_iou: float = 0.5,
    cache: PathLike | None = None,
    context_size: int = 0,
    others_mask: bool = False,
    programs: str = "gt",
    parser: Any = None,
) -> QASet:
    """Read a CLEVR split's images, instance masks and questions (never its attribute fields).

    Args:
        root, split: The CLEVR-format folder and split name.
        crop_size: Side of the object crops.
        limit_images: Read the first N images only (0: all).
        progress: Show a progress bar.
        objects: ``"masks"`` cuts objects with their true masks; ``"proposals"`` with the
            proposal network's masks matched to them (see :func:`match_proposals`).
        proposals: The :class:`~perception.derender.Derenderer` whose proposals are used
            (default: the shipped one); only with ``objects="proposals"``.
        min_iou: Smallest IoU of a proposal that replaces a true mask.
        cache: Folder that keeps the objects read, to be reused by a later read with the
            same options, images and proposal weights (None: no cache).
        context_size: Keep each image whole at this height too (:func:`context_image`; 0: not).
        others_mask: Give every crop a fifth channel, the other objects' masks (:func:`image_objects`).
        programs: ``"gt"`` reads each question's program from the questions file; ``"parser"``
            parses its text with ``parser`` (and never reads the file's programs).
        parser: The :class:`~reasoning.parser.QuestionParser` of ``programs="parser"`` (default:
            the shipped one).

    Raises:
        ConfigError: ``objects`` is not one of :data:`OBJECT_SOURCES`, or ``programs`` not one of
            :data:`PROGRAM_SOURCES`.
        DataError: the split has no instance masks or no questions.
    """
    if not isinstance(context_size, int) or context_size < 0:
        raise ConfigError(f"context size: give 0 (none) or an image height in pixels, got {context_size!r}")
    if objects not in OBJECT_SOURCES:
        raise ConfigError(f"objects: choose one of {', '.join(OBJECT_SOURCES)}, got {objects!r}")
    if programs not in PROGRAM_SOURCES:
        raise ConfigError(f"programs: choose one of {', '.join(PROGRAM_SOURCES)}, got {programs!r}")
    if programs == "parser" and parser is None:
        from reasoning.parser import load_default_parser

        parser = load_default_parser()
    if objects == "proposals" and proposals is None:
        from perception.derender import load_default_derenderer

        proposals = load_default_derenderer()
    data = ClevrDataset(root, split)
    if not data.load_masks:
        raise DataError(f"{root}: split {split!r} has no instance masks, which NS-CL's objects come from")
    if not data.questions:
        raise DataError(f"{root}: split {split!r} has no questions file")
    n = len(data) if not limit_images else min(limit_images, len(data))
    out = QASet([], [], [], [], [], [], program_source=programs)
    texts: list[tuple[str, str, str, int]] = []  # programs="parser": (where, text, answer, image), parsed at the end
    seen: set[int] = set()  # the question_index of every question read
    path, key, stored = None, "", None
    if cache is not None:
        path, key = _cache_entry(cache, data, n, objects, proposals, crop_size, min_iou, others_mask)
        stored = _read_cache(path, key)
        if stored is not None:
            out.crops, out.boxes = stored["crops"], stored["boxes"]
            out.from_proposals, out.from_masks = int(stored["from_proposals"]), int(stored["from_masks"])
    for k in tqdm(range(n), desc=f"objects of {split}", unit="image", disable=not progress, leave=False):
        if len(out.crops) > k and context_size:  # from the cache, but the whole image is wanted too
            item = data[k]
            name, questions = item["image_filename"], item["questions"]
            out.contexts.append(context_image(item["image"], context_size))
        elif len(out.crops) > k:  # from the cache: only the questions are read
            name, questions = data.filenames[k], data.questions.get(data.indices[k], [])
        else:
            item = data[k]
            name, questions = item["image_filename"], item["questions"]
            ids = item["mask"]
            count = int(ids.max()) + 1 if ids.numel() else 0
            masks = torch.stack([ids == i for i in range(count)]) if count else torch.zeros(0, *ids.shape, dtype=torch.bool)
            masks = masks[masks.flatten(1).any(1)]
            if objects == "proposals":
                with torch.no_grad():
                    found = proposals.instance_masks(item["image"])
                masks, used = match_proposals(masks, found, min_iou)
                out.from_proposals += int(used.sum())
                out.from_masks += int((~used).sum())
            else:
                out.from_masks += len(masks)
            crops, boxes = image_objects(item["image"], masks, crop_size, others_mask)
            out.crops.append(crops)
            out.boxes.append(boxes)
            if context_size:
                out.contexts.append(context_image(item["image"], context_size))
        for q in questions:
            where = f"{name} question {q.get('question_index', '?')}"
            try:
                answer = given_answer(q["answer"], where) if "answer" in q else ""
                _check_index(q, seen, where)
            except DataError as exc:
                out.skipped.append(str(exc))
                continue
            if programs != "gt":
                text = q.get("question")
                if not isinstance(text, str) or not text.strip() or "answer" not in q:
                    out.skipped.append(f"{where}: no question text or answer")
                elif programs == "parser":
                    texts.append((where, text, answer, k))
                else:
                    out.texts.append(text)
                    out.answers.append(answer)
                    out.image.append(k)
                continue
            if "program" not in q or "answer" not in q:
                out.skipped.append(f"{where}: no program or answer")
                continue
            try:
                program = _checked(from_clevr(q["program"]))
            except ProgramError as exc:
                out.skipped.append(f"{where}: {exc}")
                continue
            out.programs.append(program)
            out.texts.append(str(q.get("question", "")))
            out.answers.append(answer)
            out.image.append(k)
    if texts:
        _add_parsed(out, texts, parser)
    if path is not None and stored is None:
        atomic_torch_save(path, {"key": key, "crops": out.crops, "boxes": out.boxes,
                                 "from_proposals": out.from_proposals, "from_masks": out.from_masks})
    return out


def _check_index(q: dict[str, Any], seen: set[int], where: str) -> None:
    """Refuse a ``question_index`` that is not a whole number or is in ``seen`` (the question would be
    learnt twice); add ``q``'s to ``seen``.

    Raises:
        DataError: led by ``where``.
    """
    index = q.get("question_index")
    if index is None:
        return
    if isinstance(index, bool) or not isinstance(index, int):
        raise DataError(f"{where}: question_index must be a whole number, got {index!r}")
    if index in seen:
        raise DataError(f"{where}: question_index given twice; learnt once")
    seen.add(index)


def _checked(program: Program) -> Program:
    """``program`` if the soft executor has every function it calls (found when read, not mid-training)."""
    for n_node, call in enumerate(program.nodes()):
        if call.function not in SOFT_OPS:
            raise ProgramError(f"node {n_node}: {unknown_function(call.function, sorted(SOFT_OPS))}")
    return program


def _add_parsed(out: QASet, texts: list[tuple[str, str, str, int]], parser: Any) -> None:
    """The questions ``texts`` (where, text, answer, image) into ``out``, each with the program ``parser``
    reads from its text (one batched parse); those without a program the soft executor runs are skipped."""
    try:
        parsed = parser.parse([text for _, text, _, _ in texts])
    except DataError as exc:
        raise DataError(f"question parser: {exc}") from None
    for (where, text, answer, image), program in zip(texts, parsed, strict=True):
        if program is None:
            out.skipped.append(f"{where}: the parser found no well-typed program")
            continue
        try:
            program = _checked(program)
        except ProgramError as exc:
            out.skipped.append(f"{where}: parsed program: {exc}")
            continue
        out.programs.append(program)
        out.texts.append(text)
        out.answers.append(answer)
        out.image.append(image)


def _cache_entry(
    cache: PathLike, data: ClevrDataset, n: int, objects: str, proposals: Any, crop_size: int, min_iou: float,
    others_mask: bool = False,
) -> tuple[Path, str]:
    """The cache file of a read and the key that must match for it to be reused."""
    images = data.layout.images
    files = [images / name for name in data.filenames[:n]]
    stamp = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    weights = weights_digest(proposals.proposal_net.state_dict()) if objects == "proposals" else ""
    fields = {"root": str(Path(data.root).resolve()), "split": data.split, "objects": objects,
              "crop_size": crop_size, "min_iou": min_iou if objects == "proposals" else None,
              "images": stamp, "proposals": weights}
    if others_mask:  # only then: the caches of reads without the channel keep their keys
        fields["others_mask"] = True
    key = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache) / f"{data.split}-{objects}-{crop_size}-{n}-{digest}.pt", key


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    """A cache file's objects if it exists and was written for ``key`` (else None)."""
    if not path.is_file():
        return None
    try:
        stored = torch_load(path, "NS-CL object cache")
    except CheckpointError:  # damaged: read the images again and write it anew
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return stored
