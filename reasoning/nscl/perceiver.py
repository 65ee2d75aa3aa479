"""NS-CL as a perceiver and as a QA model (``--perceiver nscl``, ``--model nscl``).

The perceiver proposes objects with the shipped derenderer's proposal network
(trained on instance masks, which name no attribute), scores each proposal with
the concept learner, and writes the scene graph of its most likely concepts:
per attribute group the concept of highest score, a relation wherever its
probability passes one half, and a 3D position from the box centre through the
derenderer's calibrated camera (at the resting height of the learned size).
With hard concepts the quasi-symbolic executor and the symbolic one agree
(``tests/reasoning/test_soft_executor.py``), so the QA model answers with the
batched symbolic executor, like NS-VQA, and ``nesy eval clevr --model nscl``
scores its concepts against the true attributes as NS-VQA's perception scores
(the concept probe of the paper).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception.derender import load_default_derenderer
from perception.derender.camera import backproject_to_plane, project
from perception.derender.derenderer import Derenderer, image_to_tensor
from perception.registry import Perceiver, register_perceiver
from perception.scene_graph import SceneGraph, SceneObject
from physics.io import PathLike
from physics.worlds.clevr_properties import SIZE_RADIUS
from reasoning.nscl.data import image_objects
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
        crops, boxes = image_objects(image, masks, self.model.config.crop_size)
        scores = self.model([crops.float().div_(255.0)], [boxes])
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
        sy, sx = self.proposals.image_size[0] / h, self.proposals.image_size[1] / w
        z = np.array([SIZE_RADIUS.get(s, 0.5) for s in words["size"]])
        xyz = backproject_to_plane(self.proposals.projection, np.c_[u * sx, v * sy], z)
        depth = project(self.proposals.projection, xyz)[:, 2]
        objects = tuple(
            SceneObject(
                shape=words["shape"][i],
                color=words["color"][i],
                material=words["material"][i],
                size=words["size"][i],
                position=tuple(float(c) for c in xyz[i]),  # type: ignore[arg-type]
                pixel_coords=(float(u[i]), float(v[i]), float(depth[i])),
            )
            for i in range(len(boxes))
        )
        return SceneGraph(objects=objects, directions=directions, relationships=relationships, **meta)


register_perceiver(NSCLPerceiver)


class NSCL(NSVQA):
    """NS-CL: concept perceiver, question parser, executor (Mao et al. 2019)."""

    name = "nscl"
    default_perceiver = "nscl"


register_qa_model(NSCL, help="NS-CL: concepts learned from answers, parser, executor (Mao et al. 2019)")
