"""Ground-truth video dynamics: futures and counterfactuals read from a video's truth record.

The executor asks a *video dynamics* provider two things (the interface agreed
for issue 15, :class:`VideoDynamics`): the frames after the observed video
(predictive questions) and the whole video re-run without one object
(counterfactual questions). :class:`TruthDynamics` answers both from the
:class:`~physics.worlds.clevrer_truth.VideoTruth` that ``nesy data clevrer``
writes beside each annotation (the world re-simulated, not a model); a learned
model (PropNet over object states) answers the same two calls from its rollouts.

This is the reasoning side's own ground-truth adapter, kept to the interface of
``physics.video_dynamics`` (``GroundTruthDynamics``) so that one replaces the
other without changing a caller.
"""

from __future__ import annotations

from typing import Protocol

from physics.errors import DataError
from physics.worlds.clevrer_annotation import Collision, FrameStates, VideoAnnotation
from physics.worlds.clevrer_truth import Counterfactual, VideoTruth

__all__ = ["VideoDynamics", "TruthDynamics"]


class VideoDynamics(Protocol):
    """What the video executor asks of a dynamics provider."""

    def future(
        self, annotation: VideoAnnotation, frames: int
    ) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        """The ``frames`` frames after the last observed frame of ``annotation`` and the collisions among them."""
        ...

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        """The whole video (observed and future frames) re-run without that object."""
        ...


class TruthDynamics:
    """Futures and counterfactuals of one video, from its truth record.

    Args:
        truth: The video's :class:`VideoTruth` (``truth_<split>/truth_<k>.json``).
    """

    def __init__(self, truth: VideoTruth) -> None:
        self.truth = truth

    def _check(self, annotation: VideoAnnotation) -> None:
        if annotation.scene_index != self.truth.scene_index:
            raise DataError(
                f"truth of video {self.truth.scene_index} asked about video {annotation.scene_index}"
            )

    def future(
        self, annotation: VideoAnnotation, frames: int
    ) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        self._check(annotation)
        states = self.truth.future_trajectory[:frames]
        if not states:
            return (), ()
        last = states[-1].frame_id
        return tuple(states), tuple(c for c in self.truth.future_collisions if c.frame_id <= last)

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        self._check(annotation)
        return self.truth.counterfactual(removed_object_id)
