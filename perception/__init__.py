"""Perception: pixels, video and audio to object-centric scene graphs."""

from perception.errors import SceneError
from perception.scene_graph import SceneGraph, SceneObject, load_scenes, save_scenes

__all__ = ["SceneError", "SceneGraph", "SceneObject", "load_scenes", "save_scenes"]
