"""Video perception: CLEVRER frames -> an annotation in the official format (NS-DR's video parsing).

* :mod:`~perception.video.detect` -- the derenderer on every frame, batched; 3-D
  positions by ground-plane back-projection through the known camera;
* :mod:`~perception.video.track` -- detections -> object tracks (Hungarian
  matching on position and attributes, merging by CLEVRER's unique attributes);
* :mod:`~perception.video.annotate` -- tracks -> ``VideoAnnotation``: locations,
  finite-difference velocities, visibility, collisions by the touch rule;
* :mod:`~perception.video.metrics` -- scores against the true annotation
  (attributes, identity, location, collision F1 within 2 frames);
* :mod:`~perception.video.registry` -- :class:`VideoPerceiver`,
  :data:`VIDEO_PERCEIVERS` (``gt``, ``model``) and :func:`perceive_video`.
"""

from perception.video.registry import (
    VIDEO_PERCEIVERS,
    VideoPerceiver,
    load_video_perceiver,
    perceive_video,
    register_video_perceiver,
)

__all__ = [
    "VIDEO_PERCEIVERS",
    "VideoPerceiver",
    "load_video_perceiver",
    "perceive_video",
    "register_video_perceiver",
]
