"""CLEVRER's events (start, end, in, out, collision) derived from an annotation.

CLEVRER's executor (Yi, Gan et al., ICLR 2020) reasons over five kinds of
event.  This module derives them from per-frame states and collisions with one
documented rule, used for the ground truth, for learned rollouts and for
perceived tracks alike:

* ``start``: frame of the first state (0), no objects.
* ``end``: the last frame of the video (``end_frame``, default the last state), no objects.
* ``in``: object ``k`` enters the view at the first frame ``f`` (after the
  first) where ``inside_camera_view`` is true and was false (or ``k`` absent)
  at the frame before.  Objects in view at the first frame have no ``in``.
* ``out``: object ``k`` leaves the view at the first frame ``f`` where it is
  outside (or absent) after being inside at ``f - 1`` *and* stays outside for
  every later frame.  An object still in view at the last frame has no ``out``.
* ``collision``: one event per annotated collision, objects sorted.

An event may carry its ``sound`` (a word, e.g. a collision's ``ring`` or ``thud``
in the audio-visual worlds, :mod:`physics.worlds.audiovisual`); it plays no part
in equality or order, and is written to JSON only when set.

Events are ordered by frame, then kind (start, in, collision, out, end), then
objects.  Frames after ``end_frame`` (a simulated future) keep their events;
``end`` marks where the observed video stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from physics.errors import DataError
from physics.worlds.clevrer_annotation import Collision, FrameStates

__all__ = ["Event", "EVENT_KINDS", "derive_events", "events_json", "parse_events"]

EVENT_KINDS: tuple[str, ...] = ("start", "in", "collision", "out", "end")  # also the order within a frame


@dataclass(frozen=True, order=True)
class Event:
    """One event: its frame, kind and the objects taking part (sorted ids)."""

    frame: int
    kind: str
    objects: tuple[int, ...] = ()
    sound: str | None = field(default=None, compare=False)

    def sort_key(self) -> tuple[int, int, tuple[int, ...]]:
        return (self.frame, EVENT_KINDS.index(self.kind), self.objects)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "frame_id": self.frame, "object_ids": list(self.objects)}
        if self.sound is not None:
            out["sound"] = self.sound
        return out


def derive_events(
    trajectory: Sequence[FrameStates], collisions: Sequence[Collision], end_frame: int | None = None
) -> list[Event]:
    """The events of a video, by the rule in the module docstring.

    Args:
        trajectory: Per-frame states in frame order (at least one frame).
        collisions: The video's collisions.
        end_frame: Frame of the ``end`` event (default: the last state's frame).

    Raises:
        DataError: ``trajectory`` is empty.
    """
    if not trajectory:
        raise DataError("cannot derive events from an empty motion_trajectory")
    first, last = trajectory[0].frame_id, trajectory[-1].frame_id
    events = [Event(first, "start"), Event(last if end_frame is None else end_frame, "end")]
    inside = [{o.object_id for o in fr.objects if o.inside_camera_view} for fr in trajectory]
    ids = sorted({o.object_id for fr in trajectory for o in fr.objects})
    for k in ids:
        seen = [k in frame_in for frame_in in inside]
        entered = next((i for i in range(1, len(seen)) if seen[i] and not seen[i - 1]), None)
        if entered is not None:
            events.append(Event(trajectory[entered].frame_id, "in", (k,)))
        if seen[-1]:
            continue
        last_inside = max((i for i, s in enumerate(seen) if s), default=None)
        if last_inside is not None:
            events.append(Event(trajectory[last_inside + 1].frame_id, "out", (k,)))
    events += [Event(c.frame_id, "collision", tuple(sorted(c.object_ids))) for c in collisions]
    return sorted(events, key=Event.sort_key)


def events_json(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Events -> JSON list of ``{"type", "frame_id", "object_ids"}``."""
    return [e.to_json() for e in events]


def parse_events(data: Any, where: str) -> list[Event]:
    """JSON list (as :func:`events_json` writes) -> events; DataError names the bad entry."""
    if not isinstance(data, list):
        raise DataError(f"{where}: expected a list of events, got {type(data).__name__}")
    out = []
    for i, e in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(e, dict) or e.get("type") not in EVENT_KINDS:
            raise DataError(f"{at}: expected an event with type one of {list(EVENT_KINDS)}, got {e!r}")
        frame, objs = e.get("frame_id"), e.get("object_ids")
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise DataError(f"{at}.frame_id: expected an integer, got {frame!r}")
        if not isinstance(objs, list) or not all(isinstance(o, int) and not isinstance(o, bool) for o in objs):
            raise DataError(f"{at}.object_ids: expected a list of integers, got {objs!r}")
        sound = e.get("sound")
        if sound is not None and not isinstance(sound, str):
            raise DataError(f"{at}.sound: expected a word, got {sound!r}")
        out.append(Event(frame, e["type"], tuple(objs), sound))
    return out
