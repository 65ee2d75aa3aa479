"""Rendered CLEVR-style scenes as SceneGraphs: the pixel twin of :mod:`perception.synthetic`.

:func:`generate_scene` asks the pybullet world
(:func:`physics.worlds.clevr_world.render_clevr_scene`) for a seeded scene and
turns its CLEVR scene dict into a validated :class:`~perception.SceneGraph`,
whose ``relationships`` follow CLEVR's rule along the render camera's
``directions``.  It lives in ``perception`` rather than next to the world
because the world (bottom layer) must not import the scene-graph type.

>>> from physics.worlds.clevr_world import ClevrWorldConfig
>>> scene, rgb, depth, mask = generate_scene(0, ClevrWorldConfig(width=120, height=80, min_pixels=10))
>>> rgb.shape, depth.dtype.name, int(mask.max()) + 1 == len(scene)
((80, 120, 3), 'float32', True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception.scene_graph import SceneGraph
from physics.worlds.clevr_blender import BlenderConfig, render_clevr_scene_blender
from physics.worlds.clevr_world import ClevrRender, ClevrWorldConfig, render_clevr_scene

__all__ = ["generate_scene"]


def generate_scene(
    seed: int | Sequence[int],
    config: ClevrWorldConfig | None = None,
    *,
    image_index: int | None = None,
    image_filename: str | None = None,
    split: str | None = None,
    blender: BlenderConfig | None = None,
) -> tuple[SceneGraph, np.ndarray, np.ndarray, np.ndarray]:
    """Build, settle and render one scene.

    Args:
        seed: An int or a sequence of ints; the scene is a pure function of it and ``config``.
        config: World and render parameters (``None``: CLEVR's defaults).
        image_index, image_filename, split: Recorded in the SceneGraph as CLEVR does.
        blender: Render with Blender's Cycles from the official CLEVR assets
            (:mod:`physics.worlds.clevr_blender`) instead of pybullet; the
            layout still comes from the pybullet world.

    Returns:
        ``(scene, rgb, depth, mask)``: the SceneGraph (objects in mask order),
        rgb uint8 [H, W, 3], metric depth float32 [H, W], and the instance mask
        int16 [H, W] (``k`` = object ``k``, ``-1`` = background).
    """
    world = config if config is not None else ClevrWorldConfig()
    render: ClevrRender = (
        render_clevr_scene(seed, world) if blender is None else render_clevr_scene_blender(seed, world, blender)
    )
    data = dict(render.scene)
    if split is not None:
        data["split"] = split
    if image_index is not None:
        data["image_index"] = image_index
    if image_filename is not None:
        data["image_filename"] = image_filename
    where = f"generated scene (seed {seed!r})"
    return SceneGraph.from_clevr(data, where=where), render.rgb, render.depth, render.mask
