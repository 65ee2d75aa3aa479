"""Synthetic scene graphs: CLEVR layouts without rendering.

The synthetic twin of the rendered CLEVR data set.  Tests, question generation
and the executor speed benchmark use it when pixels are not needed.

>>> scene = sample_scene_graph(seed=0)
>>> 3 <= len(scene) <= 10
True
"""

from __future__ import annotations

import numpy as np

from perception.scene_graph import SceneGraph, SceneObject
from physics.worlds.clevr_layout import LayoutConfig, sample_layout
from physics.worlds.clevr_properties import DEFAULT_DIRECTIONS

__all__ = ["sample_scene_graph", "sample_scene_graphs"]


def sample_scene_graph(
    seed: int | np.random.Generator, config: LayoutConfig = LayoutConfig(), *, image_index: int | None = None
) -> SceneGraph:
    """One scene following CLEVR's placement rules, relationships computed."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    objects = tuple(
        SceneObject(o.shape, o.color, o.material, o.size, o.position, o.rotation)
        for o in sample_layout(rng, config, DEFAULT_DIRECTIONS)
    )
    return SceneGraph(objects=objects, directions=dict(DEFAULT_DIRECTIONS), image_index=image_index)


def sample_scene_graphs(n: int, seed: int = 0, config: LayoutConfig = LayoutConfig()) -> list[SceneGraph]:
    """``n`` scenes from one seed; scene k has ``image_index`` k."""
    rng = np.random.default_rng(seed)
    return [sample_scene_graph(rng, config, image_index=k) for k in range(n)]
