"""Errors of the perception layer (members of the framework's one family)."""

from physics.errors import DataError

__all__ = ["SceneError"]


class SceneError(DataError):
    """A scene (or video scene) record is invalid: names the scene, object and field."""
