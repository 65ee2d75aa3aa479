"""Perception: pixels, video and audio to object-centric scene graphs.

Every perception model implements :class:`Perceiver` and registers itself in
:data:`PERCEIVERS` (``register_perceiver``); :func:`load_perceiver` builds one
by name, from its shipped checkpoint or a checkpoint path.
"""

from perception.errors import SceneError
from perception.registry import PERCEIVERS, Perceiver, load_perceiver, register_perceiver
from perception.scene_graph import SceneGraph, SceneObject, load_scenes, save_scenes

__all__ = [
    "SceneError",
    "SceneGraph",
    "SceneObject",
    "load_scenes",
    "save_scenes",
    "Perceiver",
    "PERCEIVERS",
    "register_perceiver",
    "load_perceiver",
]
