"""A CLEVRER video bound once for the executor: objects, events, motion, futures, counterfactuals.

:class:`VideoScene` is to CLEVRER's operations (:mod:`reasoning.executor.video_ops`)
what :class:`~reasoning.executor.bound_scene.BoundScene` is to CLEVR's: the
evidence of one video in the shape the operations read. It is built from a
:class:`~physics.worlds.clevrer_annotation.VideoAnnotation` (perceived or true)
and a video dynamics provider (:class:`~physics.video_dynamics.VideoDynamics`).
Observed events come from :func:`~physics.worlds.clevrer_events.derive_events`
on the annotation; future and counterfactual events from the same rule on the
provider's outputs, asked for only when a question needs them (a learned model's
rollouts cost time).

Values, as the operations see them (the official executor's, typed)::

    ObjectSet  tuple[int, ...]    object ids, in object order
    Object     int                an object id
    EventSet   tuple[Event, ...]  in frame order (physics.worlds.clevrer_events.Event)
    Event      Event              all_events() pairs carry frame -1 (no frame)
    Frame      int | None         None: the whole observed video (``null``)

Rules taken from the official executor (``executor/executor.py`` and
``simulation.py`` of the CLEVRER release), restated for our annotations:

* ``objects()``: the objects in view in at least one observed frame.
* an object *moves* at a frame when it is in view and its ground-plane speed
  exceeds :data:`MOVING_SPEED`; with no frame, when it does so at some observed frame.
* the causal trace of an object is its in/out/collision events in frame order;
  the causes of an event are, recursively, the previous event in the trace of
  each object taking part.
* ``unseen_events()``: the events after the last observed frame (in, out, collision);
  ``counterfact_events(o)``: the collisions of the whole video re-run without ``o``.

Sound (audio-visual clips, :mod:`physics.worlds.audiovisual`): a scene may carry a
``sound`` estimate (:class:`~perception.audio.localise.SoundingEstimate`, from a
registered sounding-object localiser): an object *is sounding* at a frame when the
estimate says so, and with no frame when it does at some observed frame; its
``sound`` is the estimate's word for it (``silent`` when none); each collision
event then carries its sound (:func:`~physics.worlds.sound.impact_word` of the two
objects' materials).  A video without a ``sound`` estimate has no sound to ask about.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

from physics.errors import ConfigError, DataError
from physics.video_dynamics import CUBE_MEAN_REACH, VideoDynamics, closest_approach
from physics.worlds.camera import CLEVR_CAMERA, Camera
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    VideoAnnotation,
)
from physics.worlds.clevrer_events import Event, derive_events
from physics.worlds.sound import impact_word
from reasoning.executor.ops import InvalidExecution

if TYPE_CHECKING:
    from perception.audio.localise import SoundingEstimate

__all__ = ["VideoScene", "MOVING_SPEED", "FUTURE_FRAMES", "DIRECTION_HALF_ANGLE", "NO_FRAME", "SILENT",
           "UNIQUE_FALLBACKS", "MISSING_COLLISIONS", "REPEATED_COLLISIONS", "check_unique_settings",
           "describe_event"]

# Ground-plane speed (scene units per second) above which an object counts as
# moving: objects at rest have speed 0 up to simulation noise of about 1e-3,
# sliding objects move at 0.3-8 units/s until friction stops them.
MOVING_SPEED = 0.05
# What ``unique`` may do with several objects (VideoScene.unique_fallback).
UNIQUE_FALLBACKS = ("none", "most_seen")
# What ``unique`` does with the empty set of observed collisions of one named pair
# (VideoScene.missing_collision): "none" (the official executor: no answer) or
# "out_of_view" (the pair collided where the camera does not see: presumed at the last
# observed frame at which neither object is in view).
MISSING_COLLISIONS = ("none", "out_of_view")
# What ``unique`` does with several observed collisions of one named pair
# (VideoScene.repeated_collision): "none" (the official executor: no answer) or "first"
# (the earliest: a perceived video may read one touch twice, and questions name a pair's
# collision only when the truth has exactly one).
REPEATED_COLLISIONS = ("none", "first")
# Frames of future asked of the dynamics for predictive questions (CLEVRER: about 2 s).
FUTURE_FRAMES = 50
# query_direction: the velocity must lie within this many degrees of left, right, up or
# down in the image (the official executor's angle_half_range=40; else no answer).
DIRECTION_HALF_ANGLE = 40.0
NO_FRAME = -1  # frame of the all_events() candidates, which have none
SILENT = "silent"  # the sound of an object that makes none


def describe_event(event: Event) -> str:
    """``"collision(0, 2)@57"``, ``"in(3)@12"``, ``"start@0"`` (how traces print events)."""
    objs = f"({', '.join(map(str, event.objects))})" if event.objects else ""
    frame = "" if event.frame == NO_FRAME else f"@{event.frame}"
    return f"{event.kind}{objs}{frame}"



def check_unique_settings(**settings: str) -> None:
    """Refuse, by name, a setting of what ``unique`` does with an odd set of events that is not
    one of its choices (``unique_fallback``, ``missing_collision``, ``repeated_collision``).

    >>> check_unique_settings(missing_collision="out_of_view", repeated_collision="first")
    >>> check_unique_settings(repeated_collision="last")
    Traceback (most recent call last):
    ...
    physics.errors.ConfigError: repeated_collision must be one of none, first, got 'last'
    """
    choices = {"unique_fallback": UNIQUE_FALLBACKS, "missing_collision": MISSING_COLLISIONS,
               "repeated_collision": REPEATED_COLLISIONS}
    for name, value in settings.items():
        if value not in choices[name]:
            raise ConfigError(f"{name} must be one of {', '.join(choices[name])}, got {value!r}")

@dataclass
class VideoScene:
    """One video's evidence for CLEVRER's operations.

    Args:
        annotation: The observed video (official annotation format).
        dynamics: Futures and counterfactuals (ground truth or a learned model).
        future_frames: Frames of future asked for (predictive questions).
        camera: The fixed camera (for ``query_direction``; CLEVRER's by default).
        sound: Which objects sound in each observed frame, and what they sound like
            (None: a silent video).
        unique_fallback: What ``unique`` does with several objects: ``"none"`` (the
            official executor: no answer) or ``"most_seen"`` (the object inside the
            camera view in the most observed frames, the most confident track; ties
            to the lowest object id). An empty set, and several events, stay invalid.
        missing_collision: What ``unique`` does when a program names a collision of two
            objects (``filter_collision`` twice over the observed events) that the
            annotation lacks: ``"none"`` (the official executor: no answer) or
            ``"out_of_view"`` (a perceived video misses collisions outside the camera
            view: the collision is presumed at the last observed frame at which neither
            object is in view, :meth:`presumed_collision`, and takes its place in both
            objects' causal traces; no such frame: still no answer).
        repeated_collision: What ``unique`` does when a program names a collision of two
            objects that the annotation has several times: ``"none"`` (the official
            executor: no answer) or ``"first"`` (the earliest of them; a perceived video
            may read one touch twice, a later re-touch or wobble).
    """

    annotation: VideoAnnotation
    dynamics: VideoDynamics
    future_frames: int = FUTURE_FRAMES
    camera: Camera = CLEVR_CAMERA
    sound: SoundingEstimate | None = None
    unique_fallback: str = "none"
    missing_collision: str = "none"
    repeated_collision: str = "none"
    _counterfactuals: dict[int, tuple[Event, ...]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ static
    def __post_init__(self) -> None:
        check_unique_settings(unique_fallback=self.unique_fallback, missing_collision=self.missing_collision,
                              repeated_collision=self.repeated_collision)
        if self.sound is not None and self.sound.sounding.shape[0] != self.annotation.num_frames:
            raise DataError(f"video {self.annotation.scene_index}: the sound estimate covers "
                            f"{self.sound.sounding.shape[0]} frames, the video has {self.annotation.num_frames}")

    @property
    def name(self) -> str:
        return f"video {self.annotation.scene_index}"

    @cached_property
    def properties(self) -> dict[int, ObjectProperty]:
        """Object id -> its colour, material and shape."""
        return {p.object_id: p for p in self.annotation.object_property}

    @cached_property
    def _states(self) -> dict[int, FrameStates]:
        return {fr.frame_id: fr for fr in self.annotation.motion_trajectory}

    @cached_property
    def objects(self) -> tuple[int, ...]:
        """The objects in view in at least one observed frame, in object order."""
        return tuple(p.object_id for p in self.annotation.object_property if p.object_id in self.seen_frames)

    @cached_property
    def seen_frames(self) -> dict[int, int]:
        """Object id -> the number of observed frames it is inside the camera view (objects never in view absent)."""
        return dict(Counter(o.object_id for fr in self.annotation.motion_trajectory for o in fr.objects
                            if o.inside_camera_view))

    @property
    def observed_frames(self) -> int:
        return self.annotation.num_frames

    # ------------------------------------------------------------------ motion
    def visible(self, obj: int, frame: int) -> bool:
        """Whether ``obj`` is in view at ``frame`` (KeyError: no such observed frame)."""
        state = self._states[frame].by_id().get(obj)
        return state is not None and state.inside_camera_view

    def moving_at(self, obj: int, frame: int) -> bool:
        """Whether ``obj`` is in view and moving at ``frame``."""
        state = self._states[frame].by_id().get(obj)
        return (
            state is not None
            and state.inside_camera_view
            and math.hypot(state.velocity[0], state.velocity[1]) > MOVING_SPEED
        )

    @cached_property
    def _ever_moving(self) -> frozenset[int]:
        return frozenset(o for o in self.objects if any(self.moving_at(o, f) for f in self._states))

    def moving(self, obj: int, frame: int | None) -> bool:
        """Moving at ``frame``, or (``None``) at some observed frame."""
        return obj in self._ever_moving if frame is None else self.moving_at(obj, frame)

    def in_view(self, obj: int, frame: int | None) -> bool:
        """In view at ``frame``, or (``None``) at some observed frame."""
        return obj in self.objects if frame is None else self.visible(obj, frame)

    def direction(self, obj: int, frame: int) -> str | None:
        """``left``/``right``/``up``/``down`` in the image of ``obj``'s motion at ``frame`` (None: in between)."""
        state = self._states[frame].by_id().get(obj)
        if state is None:
            return None
        fx, fy = self.camera.target[0] - self.camera.eye[0], self.camera.target[1] - self.camera.eye[1]
        norm = math.hypot(fx, fy)
        fx, fy = fx / norm, fy / norm  # "up" in the image: away from the camera on the floor
        rx, ry = fy, -fx  # "right" in the image
        vx, vy = state.velocity[0], state.velocity[1]
        if math.hypot(vx, vy) <= MOVING_SPEED:
            return None
        angle = math.degrees(math.atan2(vx * fx + vy * fy, vx * rx + vy * ry))
        for name, centre in (("right", 0.0), ("up", 90.0), ("left", 180.0), ("down", -90.0)):
            if abs((angle - centre + 180.0) % 360.0 - 180.0) < DIRECTION_HALF_ANGLE:
                return name
        return None

    # ------------------------------------------------------------------ events
    @cached_property
    def events(self) -> tuple[Event, ...]:
        """The observed events (start, end, in, out, collision) in frame order."""
        ann = self.annotation
        events = derive_events(ann.motion_trajectory, ann.collision)
        if self.sound is not None:
            events = [replace(e, sound=impact_word([self.properties[o].material for o in e.objects]))
                      if e.kind == "collision" else e for e in events]
        return tuple(events)

    # ------------------------------------------------------------------ sound
    def sounding(self, obj: int, frame: int | None) -> bool:
        """Whether ``obj`` is sounding at ``frame`` (None: at some observed frame); needs ``sound``."""
        est = self.require_sound()
        if not 0 <= obj < est.sounding.shape[1]:
            return False
        if frame is None:
            return bool(est.sounding[:, obj].any())
        return bool(est.sounding[self._frame_row(frame), obj])

    def sounding_after(self, obj: int, frame: int) -> bool:
        """Whether ``obj`` is sounding at some observed frame after ``frame``."""
        est = self.require_sound()
        if not 0 <= obj < est.sounding.shape[1]:
            return False
        first = max(frame - self.annotation.motion_trajectory[0].frame_id + 1, 0)
        return bool(est.sounding[first:, obj].any())

    def sound_of(self, obj: int) -> str:
        """The word for ``obj``'s sound (``silent`` when it makes none, or none is known)."""
        est = self.require_sound()
        word = est.sounds[obj] if 0 <= obj < len(est.sounds) else None
        return word if word is not None else SILENT

    def _frame_row(self, frame: int) -> int:
        return frame - self.annotation.motion_trajectory[0].frame_id

    def require_sound(self) -> SoundingEstimate:
        if self.sound is None:
            raise InvalidExecution(f"{self.name} has no sound (answer sound questions on an audio-visual clip)")
        return self.sound

    @cached_property
    def _future(self) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        """The dynamics' future states and collisions (asked once)."""
        return self.dynamics.future(self.annotation, self.future_frames)

    def future_closest(self, a: int, b: int) -> float | None:
        """The closest approach of objects ``a`` and ``b`` over the future frames (footprint gap, scene units).

        Negative where the footprints overlap.  Footprints as the collision rule of a learned
        rollout takes them: a cube whose yaw the annotation never gives (a pixel perceiver's
        zeros) is a disc of ``CUBE_MEAN_REACH``
        (:attr:`~physics.models.video_propnet.RolloutConfig.unknown_yaw_reach`), other cubes
        squares at their yaw.  None: no future frame holds both (or no future at all).
        """
        turned = {o.object_id for fr in self.annotation.motion_trajectory for o in fr.objects
                  if any(v != 0.0 for v in o.orientation)}
        discs = {k: CUBE_MEAN_REACH for k, p in self.properties.items() if p.shape == "cube" and k not in turned}
        shapes = {k: p.shape for k, p in self.properties.items()}
        return closest_approach(self._future[0], (a, b), shapes, discs)

    @cached_property
    def unseen_events(self) -> tuple[Event, ...]:
        """The in, out and collision events after the last observed frame, in frame order."""
        ann = self.annotation
        future, collisions = self._future
        if not future:
            return ()
        trajectory = (*ann.motion_trajectory, *future)
        last = ann.motion_trajectory[-1].frame_id
        every = derive_events(trajectory, (*ann.collision, *collisions), end_frame=last)
        return tuple(e for e in every if e.frame > last and e.kind not in ("start", "end"))

    @cached_property
    def all_events(self) -> tuple[Event, ...]:
        """A collision candidate (no frame) for every pair of objects."""
        objs = self.objects
        return tuple(Event(NO_FRAME, "collision", (a, b)) for i, a in enumerate(objs) for b in objs[i + 1:])

    def counterfact_events(self, obj: int) -> tuple[Event, ...]:
        """The collisions of the whole video re-run without ``obj`` (asked once, then kept)."""
        if obj not in self._counterfactuals:
            cf = self.dynamics.counterfactual(self.annotation, obj)
            collisions = sorted(e for e in cf.events if e.kind == "collision")
            self._counterfactuals[obj] = tuple(collisions)
        return self._counterfactuals[obj]

    @cached_property
    def _traces(self) -> dict[int, tuple[Event, ...]]:
        traces: dict[int, list[Event]] = {o: [] for o in self.properties}
        for e in self.events:
            if e.kind not in ("start", "end"):
                for o in e.objects:
                    traces.setdefault(o, []).append(e)
        return {o: tuple(tr) for o, tr in traces.items()}

    def presumed_collision(self, a: int, b: int) -> Event | None:
        """A collision of ``a`` and ``b`` the camera could not see: at the last observed frame at which
        neither is in view (None when there is no such frame)."""
        for fr in reversed(self.annotation.motion_trajectory):
            seen = fr.by_id()
            if not any(o in seen and seen[o].inside_camera_view for o in (a, b)):
                return Event(fr.frame_id, "collision", tuple(sorted((a, b))))
        return None

    def causes(self, event: Event) -> frozenset[Event]:
        """The causal ancestors of an observed event (empty for one outside the video's events).

        A presumed collision (:meth:`presumed_collision`, not among the observed events) has
        as causes the events of its two objects' traces before its frame, and theirs.
        """
        found: set[Event] = set()
        frontier = [event]
        if event.kind == "collision" and event not in self.events:
            frontier = []
            for o in event.objects:
                before = [e for e in self._traces.get(o, ()) if e.frame <= event.frame]
                if before and before[-1] not in found:
                    found.add(before[-1])
                    frontier.append(before[-1])
        while frontier:
            nxt = []
            for target in frontier:
                for trace in self._traces.values():
                    if target in trace:
                        k = trace.index(target)
                        if k > 0 and trace[k - 1] not in found:
                            found.add(trace[k - 1])
                            nxt.append(trace[k - 1])
            frontier = nxt
        return frozenset(found)


def objects_of(events: Sequence[Event]) -> frozenset[int]:
    """Every object taking part in one of ``events`` (start and end have none)."""
    return frozenset(o for e in events for o in e.objects)
