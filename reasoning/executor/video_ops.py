"""CLEVRER's operations: one small function per catalogue entry, over a :class:`VideoScene`.

Signatures live in CLEVRER's catalogue (``reasoning/dsl/clevrer_functions.json``,
:meth:`~reasoning.dsl.Catalogue.clevrer`); this module attaches an
implementation to each entry by name, as :mod:`reasoning.executor.ops` does for
CLEVR, and declares the table as the ``video symbolic`` mode of the one function
table (:mod:`reasoning.dsl.function_table`), so a test fails when an entry has
no implementation. An operation takes the :class:`VideoScene` first, then its
inputs, then its literal side inputs; value types are listed in
:mod:`reasoning.executor.video_scene`.

Four operations go beyond CLEVRER's, for audio-visual clips (their scene carries a
sound estimate; on a silent video they have no answer): ``filter_sounding(objects,
frame)`` keeps the objects sounding at the frame (``null``: at some frame),
``filter_sounding_after(objects, event)`` those sounding at some frame after the
event's, ``query_sound(object or event)`` names an object's sound (its instrument
class, or ``silent``) or a collision's (``ring`` or ``thud``), and
``describe_objects(object or objects)`` names objects for an answer ("cyan rubber
sphere and blue metal cylinder"; "nothing" for none).

Semantics are those of CLEVRER's official executor (Yi, Gan et al., ICLR 2020):
where it answers ``'error'`` (``unique`` of a set that is not one element, an
order past the end, a value of the wrong kind) the operation raises
:class:`~reasoning.executor.ops.InvalidExecution` and the program has no answer,
which the multiple-choice judge counts as neither correct nor wrong.
"""

from __future__ import annotations

from collections.abc import Callable

from physics.worlds.clevrer_events import Event
from reasoning.dsl.catalogue import Catalogue
from reasoning.dsl.function_table import register_mode
from reasoning.executor.ops import InvalidExecution, OpSpec, op_spec
from reasoning.executor.video_scene import VideoScene

__all__ = ["VIDEO_CATALOGUE", "VIDEO_OPS", "attach_video"]

VIDEO_CATALOGUE = Catalogue.clevrer()
VIDEO_OPS: dict[str, OpSpec] = {}

ObjectSet = tuple[int, ...]
EventSet = tuple[Event, ...]
_ORDER = {"first": 0, "second": 1, "last": -1}


def attach_video(name: str, fn: Callable[..., object]) -> OpSpec:
    """Put ``fn`` in :data:`VIDEO_OPS` as the implementation of CLEVRER catalogue function ``name``."""
    spec = op_spec(name, fn, VIDEO_CATALOGUE)
    VIDEO_OPS[name] = spec
    return spec


# ---------------------------------------------------------------- checks of dynamic types
def _objects(value: object) -> ObjectSet:
    if not isinstance(value, tuple) or any(not isinstance(v, int) for v in value):
        raise InvalidExecution(f"expected objects, got {value!r}")
    return value


def _events(value: object) -> EventSet:
    if not isinstance(value, tuple) or any(not isinstance(v, Event) for v in value):
        raise InvalidExecution(f"expected events, got {value!r}")
    return value


def _object(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidExecution(f"expected an object, got {value!r}")
    return value


def _event(value: object) -> Event:
    if not isinstance(value, Event):
        raise InvalidExecution(f"expected an event, got {value!r}")
    return value


def _object_ids(value: object) -> frozenset[int]:
    """An object or a set of objects, as ids (filter_in / filter_out / filter_collision take either)."""
    return frozenset(_objects(value)) if isinstance(value, tuple) else frozenset((_object(value),))


# ---------------------------------------------------------------- sets and entries
def _list(value: object) -> tuple:
    if not isinstance(value, tuple):
        raise InvalidExecution(f"expected objects or events, got {value!r}")
    return value


class _PairCollisions(tuple):
    """The observed collisions involving the named objects (``filter_collision`` over the video's events):
    remembers the objects, so that ``unique`` can presume a collision the camera missed or take the
    first of one pair's several."""

    involving: frozenset[int] = frozenset()


def _unique(scene: VideoScene, items: object) -> int | Event:
    items = _list(items)
    if (not items and isinstance(items, _PairCollisions) and len(items.involving) == 2
            and scene.missing_collision == "out_of_view"):
        presumed = scene.presumed_collision(*sorted(items.involving))
        if presumed is not None:
            return presumed
    if (len(items) > 1 and isinstance(items, _PairCollisions) and len(items.involving) == 2
            and scene.repeated_collision == "first"
            and all(isinstance(e, Event) and set(e.objects) == items.involving for e in items)):
        return min(items, key=lambda e: e.frame)  # one touch read twice: the earliest
    if len(items) > 1 and scene.unique_fallback == "most_seen" and all(isinstance(i, int) for i in items):
        seen = scene.seen_frames  # the most confident of several perceived objects
        return min(items, key=lambda o: (-seen.get(o, 0), o))
    if len(items) != 1:
        raise InvalidExecution(f"unique needs exactly 1 element, got {len(items)}")
    return items[0]


def _count(scene: VideoScene, items: object) -> int:
    return len(_list(items))


def _exist(scene: VideoScene, items: object) -> bool:
    return len(_list(items)) > 0


def _negate(scene: VideoScene, value: bool) -> bool:
    return not value


def _belong_to(scene: VideoScene, entry: object, events: object) -> bool:
    """An event belongs when one of ``events`` has its kind and objects; an object, when it takes part in one."""
    candidates = [e for e in _events(events) if e.kind not in ("start", "end")]
    if isinstance(entry, Event):
        return any(e.kind == entry.kind and set(e.objects) == set(entry.objects) for e in candidates)
    obj = _object(entry)
    return any(obj in e.objects for e in candidates)


# ---------------------------------------------------------------- object filters
def _filter_attr(attr: str) -> Callable[[VideoScene, object, str], ObjectSet]:
    def filter_attr(scene: VideoScene, objs: object, value: str) -> ObjectSet:
        props = scene.properties
        return tuple(o for o in _objects(objs) if getattr(props[o], attr) == value)

    return filter_attr


def _frame(scene: VideoScene, frame: object) -> int | None:
    if frame is None:
        return None
    if isinstance(frame, bool) or not isinstance(frame, int):
        raise InvalidExecution(f"expected a frame, got {frame!r}")
    if not 0 <= frame - scene.annotation.motion_trajectory[0].frame_id < scene.observed_frames:
        raise InvalidExecution(f"frame {frame} is not an observed frame")
    return frame


def _filter_moving(scene: VideoScene, objs: object, frame: object) -> ObjectSet:
    f = _frame(scene, frame)
    return tuple(o for o in _objects(objs) if scene.in_view(o, f) and scene.moving(o, f))


def _filter_stationary(scene: VideoScene, objs: object, frame: object) -> ObjectSet:
    f = _frame(scene, frame)
    return tuple(o for o in _objects(objs) if scene.in_view(o, f) and not scene.moving(o, f))


def _null(scene: VideoScene) -> None:
    return None


# ---------------------------------------------------------------- event filters
def _filter_kind(kind: str) -> Callable[[VideoScene, object], Event]:
    def filter_kind(scene: VideoScene, events: object) -> Event:
        for e in _events(events):
            if e.kind == kind:
                return e
        raise InvalidExecution(f"no {kind} event among {len(events)}")  # type: ignore[arg-type]

    return filter_kind


def _filter_involving(kind: str) -> Callable[[VideoScene, object, object], EventSet]:
    def filter_involving(scene: VideoScene, events: object, objs: object) -> EventSet:
        ids = _object_ids(objs)
        found = tuple(e for e in _events(events) if e.kind == kind and ids.intersection(e.objects))
        if kind != "collision" or not (events is scene.events or isinstance(events, _PairCollisions)):
            return found
        named = _PairCollisions(found)  # the observed collisions of these objects, remembered for unique
        named.involving = ids | (events.involving if isinstance(events, _PairCollisions) else frozenset())
        return named

    return filter_involving


def _filter_order(scene: VideoScene, events: object, order: str) -> Event:
    events = _events(events)
    k = _ORDER[order]
    if k >= len(events) or not events:
        raise InvalidExecution(f"no {order} event among {len(events)}")
    return events[k]


def _filter_before(scene: VideoScene, events: object, event: object) -> EventSet:
    frame = _event(event).frame
    return tuple(e for e in _events(events) if e.frame < frame)


def _filter_after(scene: VideoScene, events: object, event: object) -> EventSet:
    frame = _event(event).frame
    return tuple(e for e in _events(events) if e.frame > frame)


# ---------------------------------------------------------------- queries
def _query_attr(attr: str) -> Callable[[VideoScene, object], str]:
    def query_attr(scene: VideoScene, obj: object) -> str:
        return getattr(scene.properties[_object(obj)], attr)

    return query_attr


def _query_direction(scene: VideoScene, obj: object, frame: object) -> str:
    f = _frame(scene, frame)
    if f is None:
        raise InvalidExecution("query_direction needs a frame, got null")
    direction = scene.direction(_object(obj), f)
    if direction is None:
        raise InvalidExecution(f"object {obj} moves in no clear direction at frame {f}")
    return direction


def _query_frame(scene: VideoScene, event: object) -> int:
    return _event(event).frame


def _query_object(scene: VideoScene, event: object) -> int:
    e = _event(event)
    if e.kind not in ("in", "out"):
        raise InvalidExecution(f"query_object needs an in or out event, got {e.kind}")
    return e.objects[0]


def _query_collision_partner(scene: VideoScene, event: object, obj: object) -> int:
    e, o = _event(event), _object(obj)
    if e.kind != "collision" or o not in e.objects:
        raise InvalidExecution(f"object {o} takes no part in {e.kind} event at frame {e.frame}")
    a, b = e.objects
    return b if o == a else a


# ---------------------------------------------------------------- causal, predictive, counterfactual
def _filter_ancestor(scene: VideoScene, events: object, event: object) -> EventSet:
    causes = scene.causes(_event(event))
    return tuple(e for e in _events(events) if e in causes)


def _events_op(scene: VideoScene) -> EventSet:
    return scene.events


def _objects_op(scene: VideoScene) -> ObjectSet:
    return scene.objects


def _unseen_events(scene: VideoScene) -> EventSet:
    return scene.unseen_events


def _all_events(scene: VideoScene) -> EventSet:
    return scene.all_events


def _removable(scene: VideoScene, obj: object) -> int:
    o = _object(obj)
    if o not in scene.objects:
        raise InvalidExecution(f"object {o} is not in the video")
    return o


def _counterfact_events(scene: VideoScene, obj: object) -> EventSet:
    return scene.counterfact_events(_removable(scene, obj))


def _filter_counterfact(scene: VideoScene, events: object, obj: object) -> EventSet:
    pairs = {frozenset(e.objects) for e in scene.counterfact_events(_removable(scene, obj))}
    return tuple(e for e in _events(events) if frozenset(e.objects) in pairs)


# ---------------------------------------------------------------- sound (audio-visual clips)
def _filter_sounding(scene: VideoScene, objs: object, frame: object) -> ObjectSet:
    f = _frame(scene, frame)
    return tuple(o for o in _objects(objs) if scene.sounding(o, f))


def _filter_sounding_after(scene: VideoScene, objs: object, event: object) -> ObjectSet:
    frame = _event(event).frame
    return tuple(o for o in _objects(objs) if scene.sounding_after(o, frame))


def _query_sound(scene: VideoScene, entry: object) -> str:
    if isinstance(entry, Event):
        scene.require_sound()
        if entry.kind != "collision":
            raise InvalidExecution(f"only a collision makes a sound, got a {entry.kind} event")
        event = next((e for e in scene.events if e == entry), entry)
        if event.sound is None:
            raise InvalidExecution(f"the collision of {entry.objects} at frame {entry.frame} is not in the video")
        return event.sound
    return scene.sound_of(_object(entry))


def _describe_objects(scene: VideoScene, entry: object) -> str:
    ids = _objects(entry) if isinstance(entry, tuple) else (_object(entry),)
    props = scene.properties
    names = [f"{props[o].color} {props[o].material} {props[o].shape}" for o in ids]
    return " and ".join(names) if names else "nothing"


_IMPLEMENTATIONS: dict[str, Callable[..., object]] = {
    "objects": _objects_op,
    "events": _events_op,
    "unique": _unique,
    "count": _count,
    "exist": _exist,
    "negate": _negate,
    "belong_to": _belong_to,
    **{f"filter_{a}": _filter_attr(a) for a in ("color", "material", "shape")},
    # the official executor's filter_resting and filter_stationary are the same test
    "filter_resting": _filter_stationary,
    "filter_moving": _filter_moving,
    "filter_stationary": _filter_stationary,
    "null": _null,
    "filter_start": _filter_kind("start"),
    "filter_end": _filter_kind("end"),
    "filter_in": _filter_involving("in"),
    "filter_out": _filter_involving("out"),
    "filter_collision": _filter_involving("collision"),
    "filter_order": _filter_order,
    "filter_before": _filter_before,
    "filter_after": _filter_after,
    **{f"query_{a}": _query_attr(a) for a in ("color", "material", "shape")},
    "query_direction": _query_direction,
    "query_frame": _query_frame,
    "query_object": _query_object,
    "query_collision_partner": _query_collision_partner,
    "filter_ancestor": _filter_ancestor,
    "unseen_events": _unseen_events,
    "all_events": _all_events,
    "counterfact_events": _counterfact_events,
    "filter_counterfact": _filter_counterfact,
    "filter_sounding": _filter_sounding,
    "filter_sounding_after": _filter_sounding_after,
    "query_sound": _query_sound,
    "describe_objects": _describe_objects,
}
for _name, _fn in _IMPLEMENTATIONS.items():
    attach_video(_name, _fn)
del _name, _fn

register_mode("video symbolic", lambda: VIDEO_OPS.keys(), dataset=VIDEO_CATALOGUE.dataset)
