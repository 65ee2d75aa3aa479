"""Object crops of rendered CLEVR scenes with their attributes: the data of the attribute-level models.

:func:`render_object_crops` renders seeded scenes with the pybullet CLEVR world
(:func:`perception.datasets.clevr_render.generate_scene`), cuts every visible
object out of the image with its exact instance mask
(:func:`perception.derender.attributes.crop_objects`) and keeps its
ground-truth attributes and yaw.  The polyphase and warped-convolution models
and the selective-prediction benchmark train on these.

Shapes (K objects in all the scenes, crop side S)::

    crops     float [K, 4, S, S]   RGB in [0, 1] and the mask channel
    boxes     float [K, 4]         (cx / W, cy / H, side / W, side / H)
    labels    {attr: int64 [K]}    CLEVR vocabulary indices (shape, color, material, size)
    rotation  float [K]            yaw about the vertical axis, degrees (CLEVR ``rotation``)
    scene     int64 [K]            index of the scene the object is in
    scenes    the ground-truth SceneGraph of each scene (objects in crop order)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from perception.datasets.clevr_render import generate_scene
from perception.derender.attributes import AttributeConfig, crop_objects
from perception.scene_graph import SceneGraph
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevr_world import ClevrWorldConfig

__all__ = ["ObjectCrops", "render_object_crops"]


@dataclass(frozen=True)
class ObjectCrops:
    """Crops of every object of some scenes (shapes in the module docstring)."""

    crops: Tensor
    boxes: Tensor
    labels: dict[str, Tensor]
    rotation: Tensor
    scene: Tensor
    scenes: tuple[SceneGraph, ...] = ()

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def subset(self, keep: Tensor) -> ObjectCrops:
        """The objects selected by ``keep`` (bool [K] or int64 indices); ``scenes`` stay whole."""
        return ObjectCrops(self.crops[keep], self.boxes[keep], {k: v[keep] for k, v in self.labels.items()},
                           self.rotation[keep], self.scene[keep], self.scenes)


def render_object_crops(
    seeds: Iterable[int], world: ClevrWorldConfig, crop: AttributeConfig | None = None
) -> ObjectCrops:
    """Render one scene per seed and crop each of its objects.

    Args:
        seeds: Scene seeds (each scene is a pure function of its seed and ``world``).
        world: Image size, camera and layout of the scenes.
        crop: Crop side and margin (None: the derenderer's).
    """
    crop = crop or AttributeConfig()
    crops, boxes, rotation, scene_index, scenes = [], [], [], [], []
    labels: dict[str, list[int]] = {a: [] for a in ATTRIBUTES}
    for k, seed in enumerate(seeds):
        scene, rgb, _depth, mask = generate_scene(seed, world)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
        ids = torch.from_numpy(mask.astype("int64"))
        masks = torch.stack([ids == i for i in range(len(scene))])
        c, b = crop_objects(image, masks, crop)
        scenes.append(scene)
        crops.append(c)
        boxes.append(b)
        for obj in scene.objects:
            for a, values in ATTRIBUTES.items():
                labels[a].append(values.index(obj.attribute(a)))
            rotation.append(obj.rotation)
            scene_index.append(k)
    return ObjectCrops(
        torch.cat(crops), torch.cat(boxes), {a: torch.tensor(v) for a, v in labels.items()},
        torch.tensor(rotation, dtype=torch.float32), torch.tensor(scene_index), tuple(scenes),
    )
