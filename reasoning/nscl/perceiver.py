"""NS-CL as a perceiver and as a QA model (``--perceiver nscl``, ``--model nscl``).

The perceiver proposes objects with the shipped derenderer's proposal network
(trained on instance masks, which name no attribute), scores each proposal with
the concept learner, and writes the scene graph of its most likely concepts:
per attribute group the concept of highest score, a relation wherever its
probability passes one half, and a 3D position from the box centre through the
derenderer's calibrated camera (:meth:`~perception.derender.Derenderer.place_objects`).
``nesy eval clevr --model nscl`` scores those concepts against the true
attributes as NS-VQA's perception scores (the concept probe of the paper).

The QA model answers as NS-CL does: with the quasi-symbolic executor over the
concept scores of the images it perceived (the perceiver keeps each scene's
scores); scene graphs it did not perceive (ground truth) are answered by the
symbolic executor, which agrees with the soft one on hard concepts.  A scene
perceived in another process brings its scores along
(:meth:`NSCL.perception_state`, :meth:`NSCL.adopt_perception`: ``nesy eval clevr
--model nscl --workers N`` and Ray).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from perception.derender import load_default_derenderer
from perception.derender.derenderer import Derenderer, image_to_tensor
from perception.registry import Perceiver, register_perceiver
from perception.scene_graph import SceneGraph
from physics.io import PathLike
from reasoning.dsl import Program
from reasoning.errors import ProgramError
from reasoning.executor.soft import SoftScenes, soft_execute
from reasoning.nscl.data import context_image, image_objects
from reasoning.nscl.model import ConceptLearner
from reasoning.nscl.train import load_nscl
from reasoning.nsvqa import NSVQA
from reasoning.registry import register_qa_model

__all__ = ["NSCLPerceiver", "NSCL", "DEFAULT_CHECKPOINT"]

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "nscl.pt"


class NSCLPerceiver(Perceiver):
    """NS-CL concepts: proposals scored by concept embeddings learned from answers alone (Mao et al. 2019)."""

    name = "nscl"
    default_checkpoint = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None

    def __init__(self, model: ConceptLearner, proposals: Derenderer, metadata: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.proposals = proposals
        self.metadata = dict(metadata or {})
        self._scores: dict[int, tuple[weakref.ref, SoftScenes]] = {}

    def scores_of(self, scene: SceneGraph) -> SoftScenes | None:
        """The concept scores behind a scene graph this perceiver made (None for any other)."""
        hit = self._scores.get(id(scene))
        return hit[1] if hit is not None and hit[0]() is scene else None

    def keep(self, scene: SceneGraph, scores: SoftScenes) -> None:
        """Hold ``scores`` as the concept scores behind ``scene`` (for as long as ``scene`` lives)."""
        key = id(scene)
        self._scores[key] = (weakref.ref(scene, lambda _: self._scores.pop(key, None)), scores)

    @classmethod
    def from_checkpoint(cls, path: PathLike) -> NSCLPerceiver:
        model, meta = load_nscl(path)
        return cls(model, load_default_derenderer(), meta)

    @torch.no_grad()
    def __call__(self, rgb: Any, *, image_index: int | None = None, image_filename: str | None = None) -> SceneGraph:
        image = image_to_tensor(rgb)
        masks = self.proposals.instance_masks(image)
        directions = dict(self.proposals.directions)
        meta = {"image_index": image_index, "image_filename": image_filename}
        if len(masks) == 0:
            return SceneGraph(objects=(), directions=directions, **meta)
        crops, boxes = image_objects(image, masks, self.model.config.input_size, self.model.config.others_mask)
        whole = None
        if self.model.config.context_size:  # the whole image too, as training read it (uint8-rounded)
            whole = [context_image(image, self.model.config.context_size).float().div_(255.0)]
        scores = self.model([crops.float().div_(255.0)], [boxes], images=whole)
        words = {
            a: [self.model.vocabulary[a][int(k)] for k in logits[0].argmax(-1)]
            for a, logits in scores.attributes.items()
        }
        related = torch.sigmoid(scores.relations[0]) > 0.5  # [R, i, j]
        relationships = {
            name: [[j for j in range(len(boxes)) if j != i and related[r, i, j]] for i in range(len(boxes))]
            for r, name in enumerate(scores.relation_names)
        }
        h, w = image.shape[1:]
        u, v = (boxes[:, 0] * w).numpy(), (boxes[:, 1] * h).numpy()
        objects = self.proposals.place_objects(words, u, v, (h, w))
        scene = SceneGraph(objects=objects, directions=directions, relationships=relationships, **meta)
        self.keep(scene, scores)
        return scene


register_perceiver(NSCLPerceiver)


class NSCL(NSVQA):
    """NS-CL: concept perceiver, question parser, executor (Mao et al. 2019)."""

    name = "nscl"
    default_perceiver = "nscl"

    def perception_state(self, scene: SceneGraph) -> SoftScenes | None:
        """The concept scores behind a scene this model perceived (None for any other scene)."""
        perceiver = self.derenderer
        return perceiver.scores_of(scene) if isinstance(perceiver, NSCLPerceiver) else None

    def adopt_perception(self, scene: SceneGraph, state: SoftScenes | None) -> None:
        """Take the concept scores another copy of this model (another worker) kept for ``scene``."""
        if state is None:
            return
        if not isinstance(self.derenderer, NSCLPerceiver):
            raise ProgramError("this NS-CL model has no concept perceiver to take the scores of a perceived scene")
        self.derenderer.keep(scene, state)

    def answer_programs(
        self, programs: Sequence[Program | None], scenes: Sequence[SceneGraph], scene_indices: Sequence[int]
    ) -> list[str | None]:
        """Soft execution over the perceived concept scores; symbolic for the scenes not perceived here.

        Each question goes by its own scene: a question about a scene without scores (the ground truth, an image
        with no proposal, an unreadable one) is answered symbolically, every other one softly.
        """
        perceiver = self.derenderer
        scores = [perceiver.scores_of(s) if isinstance(perceiver, NSCLPerceiver) else None for s in scenes]
        if all(sc is None for sc in scores):
            return NSVQA.answer_programs(programs, scenes, scene_indices)
        soft = [k for k, p in enumerate(programs) if p is not None and scores[scene_indices[k]] is not None]
        answers: list[str | None] = [None] * len(programs)
        if len(soft) < sum(p is not None for p in programs):  # questions about scenes without scores
            symbolic = [None if scores[i] is not None else p for p, i in zip(programs, scene_indices, strict=True)]
            answers = NSVQA.answer_programs(symbolic, scenes, scene_indices)
        if soft:
            if all(sc is not None for sc in scores):  # every scene scored: the batch as it always was
                batch, where = SoftScenes.cat(scores), list(range(len(scores)))  # type: ignore[arg-type]
            else:
                where = [i for i, sc in enumerate(scores) if sc is not None]
                batch = SoftScenes.cat([scores[i] for i in where])  # type: ignore[misc]
            pos = {i: n for n, i in enumerate(where)}
            out = soft_execute([programs[k] for k in soft], batch, [pos[scene_indices[k]] for k in soft])
            for k, a in zip(soft, out.answers, strict=True):
                answers[k] = a
        return answers

register_qa_model(NSCL, help="NS-CL: concepts learned from answers, parser, executor (Mao et al. 2019)")
