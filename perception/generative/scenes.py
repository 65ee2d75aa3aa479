"""Small CLEVR renders with per-pixel shape labels: the images the generative models learn.

The generative substrates (autoencoder, VAE, GAN), deep image prior, the
masked convolutional autoencoder and GAN dissection all work on small
pybullet CLEVR renders.  :data:`SMALL_WORLD` frames a few objects close to the
centre with a narrower lens, so that at 64 x 48 pixels each object covers
tens of pixels (CLEVR's own framing at that size leaves a few pixels per
object).  :func:`render_scenes` renders seeded scenes and keeps, besides the
image, the exact instance mask and a shape map (which shape each pixel
shows), the truth that GAN dissection's segmenter learns from.  Renders are
cached in memory per process, so the benchmark entries that share a seed
render once.

Shapes (N scenes of H x W pixels)::

    images     float [N, 3, H, W]   RGB in [0, 1]
    instances  int64 [N, H, W]      object index, -1 background
    shapes     int64 [N, H, W]      0 background, 1 + index in SHAPES (cube, sphere, cylinder)
    counts     int64 [N]            objects in each scene
    largest    int64 [N]            SHAPES index of the object with the most visible pixels
    attributes {attr: int64 [K]}    every object's CLEVR attributes, scene by scene in mask order
    conditions float [N, SHAPE_CONDITIONS]  shape_conditions: each shape's object count, one-hot
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from physics.errors import ConfigError
from physics.worlds.camera import Camera
from physics.worlds.clevr_layout import LayoutConfig
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevr_world import ClevrWorldConfig

__all__ = ["SHAPES", "SMALL_WORLD", "ONE_OBJECT_WORLD", "MAX_OBJECTS", "SHAPE_CONDITIONS", "SceneRenders", "render_scenes",
           "shape_conditions", "shape_classes", "random_hflip"]

SHAPES: tuple[str, ...] = tuple(ATTRIBUTES["shape"])  # CLEVR vocabulary order
# A 64 x 48 render of 2-4 objects within 2 units of the centre, seen through a 32-degree lens
# (CLEVR: 49 degrees, objects within 3 units): objects span 8-20 pixels instead of 3-8.
SMALL_WORLD = ClevrWorldConfig(
    width=64, height=48,
    layout=LayoutConfig(min_objects=2, max_objects=4, extent=2.0),
    camera=Camera(fov_x_deg=32.0),
    camera_jitter=0.25,
    min_pixels=12,
)
# SMALL_WORLD with exactly one object per render (an option): a class-conditional GAN asked for
# "a cube" has one object to draw, so its condition is three classes, not each shape's count in a scene.
ONE_OBJECT_WORLD = replace(SMALL_WORLD, layout=replace(SMALL_WORLD.layout, min_objects=1, max_objects=1))


@dataclass(frozen=True)
class SceneRenders:
    """Rendered scenes with their masks (shapes in the module docstring)."""

    images: Tensor
    instances: Tensor
    shapes: Tensor
    counts: Tensor
    largest: Tensor
    attributes: dict[str, Tensor]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def render_scenes(seeds: Iterable[int], world: ClevrWorldConfig = SMALL_WORLD) -> SceneRenders:
    """Render one scene per seed (cached in memory for the same seeds and world)."""
    return _render(tuple(int(s) for s in seeds), world)


@lru_cache(maxsize=16)
def _render(seeds: tuple[int, ...], world: ClevrWorldConfig) -> SceneRenders:
    from perception.datasets.clevr_render import generate_scene

    images, instances, shapes, counts, largest = [], [], [], [], []
    attributes: dict[str, list[int]] = {a: [] for a in ATTRIBUTES}
    for seed in seeds:
        scene, rgb, _depth, mask = generate_scene(seed, world)
        ids = torch.from_numpy(mask.astype("int64"))
        kinds = torch.tensor([SHAPES.index(o.shape) for o in scene.objects])
        shape_map = torch.where(ids >= 0, kinds[ids.clamp(min=0)] + 1, torch.zeros_like(ids))
        pixels = torch.bincount(ids[ids >= 0], minlength=len(scene))
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
        instances.append(ids)
        shapes.append(shape_map)
        counts.append(len(scene))
        largest.append(int(kinds[pixels.argmax()]))
        for obj in scene.objects:
            for a, values in ATTRIBUTES.items():
                attributes[a].append(values.index(obj.attribute(a)))
    return SceneRenders(torch.stack(images), torch.stack(instances), torch.stack(shapes),
                        torch.tensor(counts), torch.tensor(largest), {a: torch.tensor(v) for a, v in attributes.items()})


MAX_OBJECTS = SMALL_WORLD.layout.max_objects
SHAPE_CONDITIONS = len(SHAPES) * (MAX_OBJECTS + 1)  # width of shape_conditions' code


def shape_conditions(data: SceneRenders, max_objects: int = MAX_OBJECTS) -> Tensor:
    """Each scene's shapes as a class code: float [N, len(SHAPES) * (max_objects + 1)].

    For every shape (SHAPES order) the one-hot of how many of the scene's objects have it
    (0..``max_objects``), the blocks concatenated: a scene of two cubes and a cylinder is
    ``[0,0,1,0,0 | 1,0,0,0,0 | 0,1,0,0,0]``.  A class-conditional GAN reads it
    (:class:`~perception.generative.gan.GAN` with ``CodecConfig.conditions``).
    """
    shapes = data.attributes["shape"].split(data.counts.tolist())
    counts = torch.stack([torch.bincount(s, minlength=len(SHAPES))[: len(SHAPES)] for s in shapes])
    if len(counts) and int(counts.max()) > max_objects:
        raise ConfigError(f"shape_conditions: a scene holds {int(counts.max())} objects of one shape, "
                          f"more than max_objects={max_objects}")
    return F.one_hot(counts, max_objects + 1).flatten(1).float()


def shape_classes(data: SceneRenders) -> Tensor:
    """Each one-object scene's shape as a class code: float [N, len(SHAPES)], one-hot in SHAPES order.

    For renders of :data:`ONE_OBJECT_WORLD`; a scene of any other size is refused (its shape is
    not one class: use :func:`shape_conditions`).
    """
    if len(data) and bool((data.counts != 1).any()):
        bad = int((data.counts != 1).nonzero()[0, 0])
        raise ConfigError(f"shape_classes: every scene must hold one object (ONE_OBJECT_WORLD), "
                          f"scene {bad} holds {int(data.counts[bad])}")
    return F.one_hot(data.attributes["shape"], len(SHAPES)).float()


def random_hflip(generator: torch.Generator, *tensors: Tensor) -> tuple[Tensor, ...]:
    """Mirror each item left-right with probability 1/2, the same items in every tensor (a mirrored scene is a scene).

    Args:
        generator: Source of the draws (one per item).
        tensors: [N, ..., W] tensors of the same N (images, label maps).
    """
    f = torch.rand(len(tensors[0]), generator=generator) < 0.5
    return tuple(torch.where(f.view(-1, *[1] * (t.dim() - 1)), t.flip(-1), t) for t in tensors)
