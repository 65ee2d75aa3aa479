"""One CLEVRER video's full truth: its official annotation plus events, future and counterfactuals.

:func:`simulate_video` runs one seed through :class:`~physics.worlds.clevrer_world.ClevrerWorld`
and returns two records:

* a :class:`~physics.worlds.clevrer_annotation.VideoAnnotation` in the official
  format, holding the observed frames only (``0 .. frames - 1``) and their collisions;
* a :class:`VideoTruth` with what a model must not see but an evaluation needs:
  the events (:mod:`physics.worlds.clevrer_events`, over observed and future
  frames, ``end`` at the last observed frame), the future frames and collisions
  (predictive truth), and for every object the video re-simulated without it
  (counterfactual truth: trajectory, collisions and events over all frames),
  plus the seed, initial state, camera and light that reproduce it.

Both are pure functions of the seed and the config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physics.errors import DataError
from physics.io import PathLike, atomic_write_json, read_json
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    VideoAnnotation,
    collisions_json,
    parse_collisions,
    parse_trajectory,
    trajectory_json,
)
from physics.worlds.clevrer_events import Event, derive_events, events_json, parse_events
from physics.worlds.clevrer_world import ClevrerWorld, InitialState

__all__ = ["Counterfactual", "VideoTruth", "simulate_video", "read_truth", "write_truth"]


@dataclass(frozen=True)
class Counterfactual:
    """The video re-simulated without object ``removed_object_id`` (all frames)."""

    removed_object_id: int
    trajectory: tuple[FrameStates, ...]
    collisions: tuple[Collision, ...]
    events: tuple[Event, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "removed_object_id": self.removed_object_id,
            "motion_trajectory": trajectory_json(self.trajectory),
            "collision": collisions_json(self.collisions),
            "events": events_json(self.events),
        }


@dataclass(frozen=True)
class VideoTruth:
    """Events, predictive and counterfactual truth of one video, and how to reproduce it.

    Attributes:
        scene_index: The video's index (as in its annotation).
        seed: The seed :meth:`ClevrerWorld.sample` draws the initial state from (the video's
            seed, or one :meth:`ClevrerWorld.draw` derived from it).
        observed_frames: Frames in the video (and in the annotation).
        fps: Frames per second.
        camera: The camera record (``eye``, ``target``, ``up``, ``fov_x_deg``, ``width``, ``height``).
        light_direction: Unit vector towards the light.
        initial_state: Objects, poses and launch schedule at frame 0.
        events: Events over observed and future frames (``end`` = last observed frame).
        future_trajectory: States at frames ``observed_frames ..``.
        future_collisions: Collisions at those frames.
        counterfactuals: One per object, in object order.
    """

    scene_index: int
    seed: tuple[int, ...]
    observed_frames: int
    fps: int
    camera: dict[str, Any]
    light_direction: tuple[float, ...]
    initial_state: InitialState
    events: tuple[Event, ...]
    future_trajectory: tuple[FrameStates, ...]
    future_collisions: tuple[Collision, ...]
    counterfactuals: tuple[Counterfactual, ...]

    def counterfactual(self, object_id: int) -> Counterfactual:
        """The counterfactual without ``object_id`` (DataError if the video has no such object)."""
        for cf in self.counterfactuals:
            if cf.removed_object_id == object_id:
                return cf
        raise DataError(f"video {self.scene_index} has no counterfactual without object {object_id}")

    def to_json(self) -> dict[str, Any]:
        return {
            "scene_index": self.scene_index,
            "seed": list(self.seed),
            "observed_frames": self.observed_frames,
            "fps": self.fps,
            "camera": self.camera,
            "light_direction": list(self.light_direction),
            "initial_state": self.initial_state.to_json(),
            "events": events_json(self.events),
            "future": {
                "motion_trajectory": trajectory_json(self.future_trajectory),
                "collision": collisions_json(self.future_collisions),
            },
            "counterfactual": [cf.to_json() for cf in self.counterfactuals],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "truth") -> VideoTruth:
        """Check and convert a loaded truth record (DataError names ``where`` and the field)."""
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
        try:
            future = data["future"]
            cfs = data["counterfactual"]
            if not isinstance(future, dict) or not isinstance(cfs, list):
                raise DataError(f"{where}: 'future' must be an object and 'counterfactual' a list")
            return cls(
                scene_index=int(data["scene_index"]),
                seed=tuple(int(s) for s in data["seed"]),
                observed_frames=int(data["observed_frames"]),
                fps=int(data["fps"]),
                camera=dict(data["camera"]),
                light_direction=tuple(float(x) for x in data["light_direction"]),
                initial_state=InitialState.from_json(data["initial_state"], f"{where}: initial_state"),
                events=tuple(parse_events(data["events"], f"{where}: events")),
                future_trajectory=parse_trajectory(future["motion_trajectory"], f"{where}: future.motion_trajectory"),
                future_collisions=parse_collisions(future["collision"], f"{where}: future.collision"),
                counterfactuals=tuple(
                    Counterfactual(
                        removed_object_id=int(cf["removed_object_id"]),
                        trajectory=parse_trajectory(cf["motion_trajectory"], f"{where}: counterfactual[{i}].motion_trajectory"),
                        collisions=parse_collisions(cf["collision"], f"{where}: counterfactual[{i}].collision"),
                        events=tuple(parse_events(cf["events"], f"{where}: counterfactual[{i}].events")),
                    )
                    for i, cf in enumerate(cfs)
                ),
            )
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{where}: malformed truth record ({exc})") from None


def read_truth(path: PathLike) -> VideoTruth:
    """Read a truth file written by :func:`write_truth` (DataError names the file and field)."""
    return VideoTruth.from_json(read_json(path, "CLEVRER truth file"), where=str(path))


def write_truth(path: PathLike, truth: VideoTruth) -> None:
    """Write ``truth`` atomically as JSON."""
    atomic_write_json(Path(path), truth.to_json())


def simulate_video(
    world: ClevrerWorld,
    seed: Sequence[int],
    scene_index: int,
    video_filename: str,
    on_frame: Callable[[int, ClevrerWorld], None] | None = None,
) -> tuple[VideoAnnotation, VideoTruth]:
    """Draw (:meth:`ClevrerWorld.draw`), simulate and (through ``on_frame``) render one video, then its counterfactuals.

    Args:
        world: The world to use (its config sets frames, size and physics).
        seed: The video's seed.
        scene_index: Index written into the annotation.
        video_filename: File name written into the annotation.
        on_frame: Called as ``on_frame(f, world)`` at each observed frame ``f`` (to render it).

    Returns:
        (the official annotation, the truth record).
    """
    cfg = world.video_config
    start, drawn_seed = world.draw(seed)

    def observed(f: int, w: ClevrerWorld) -> None:
        if on_frame is not None and f < cfg.frames:
            on_frame(f, w)

    sim = world.simulate(start, on_frame=observed)
    seen, future = sim.split(cfg.frames)
    annotation = VideoAnnotation(
        scene_index=scene_index,
        video_filename=video_filename,
        object_property=tuple(start.properties()),
        motion_trajectory=seen.trajectory,
        collision=seen.collisions,
    )
    counterfactuals = []
    for obj in start.objects:
        cf = world.simulate(start.without(obj.object_id))
        counterfactuals.append(
            Counterfactual(obj.object_id, cf.trajectory, cf.collisions,
                           tuple(derive_events(cf.trajectory, cf.collisions, end_frame=cfg.frames - 1)))
        )
    scene = world.state()
    truth = VideoTruth(
        scene_index=scene_index,
        seed=drawn_seed,
        observed_frames=cfg.frames,
        fps=cfg.fps,
        camera=scene["camera"],
        light_direction=tuple(scene["light_direction"]),
        initial_state=start,
        events=tuple(derive_events(sim.trajectory, sim.collisions, end_frame=cfg.frames - 1)),
        future_trajectory=future.trajectory,
        future_collisions=future.collisions,
        counterfactuals=tuple(counterfactuals),
    )
    return annotation, truth
