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
    instances int64 [K, S, S]      (only with ``instances=True``) which object of the crop's scene each crop
                                   pixel shows, -1 for background: the exact masks of the object itself and
                                   of every other object that falls inside its crop
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from perception.datasets.clevr_render import generate_scene
from perception.derender.attributes import AttributeConfig, crop_grid, crop_objects
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
    instances: Tensor | None = None

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def subset(self, keep: Tensor) -> ObjectCrops:
        """The objects selected by ``keep`` (bool [K] or int64 indices); ``scenes`` stay whole."""
        return ObjectCrops(self.crops[keep], self.boxes[keep], {k: v[keep] for k, v in self.labels.items()},
                           self.rotation[keep], self.scene[keep], self.scenes,
                           None if self.instances is None else self.instances[keep])


def render_object_crops(
    seeds: Iterable[int], world: ClevrWorldConfig, crop: AttributeConfig | None = None, *, instances: bool = False
) -> ObjectCrops:
    """Render one scene per seed and crop each of its objects.

    Args:
        seeds: Scene seeds (each scene is a pure function of its seed and ``world``).
        world: Image size, camera and layout of the scenes.
        crop: Crop side and margin (None: the derenderer's).
        instances: Also crop the instance-id map (nearest sampling) into ``ObjectCrops.instances``.
    """
    crop = crop or AttributeConfig()
    crops, boxes, rotation, scene_index, scenes, ids_crops = [], [], [], [], [], []
    labels: dict[str, list[int]] = {a: [] for a in ATTRIBUTES}
    for k, seed in enumerate(seeds):
        scene, rgb, _depth, mask = generate_scene(seed, world)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
        ids = torch.from_numpy(mask.astype("int64"))
        masks = torch.stack([ids == i for i in range(len(scene))])
        c, b = crop_objects(image, masks, crop)
        if instances:  # object k + 1 in a channel of nearest-sampled ids; 0 (background and outside) -> -1
            grid = crop_grid(b, crop.crop_size)
            plane = (ids + 1).float()[None, None].expand(len(b), 1, *ids.shape)
            ids_crops.append(F.grid_sample(plane, grid, mode="nearest", padding_mode="zeros",
                                           align_corners=False)[:, 0].round().long() - 1)
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
        torch.cat(ids_crops) if instances else None,
    )
