"""Trajectories of a CLEVRER video's object states, launches as actions, and compact trajectory files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physics.errors import ConfigError, DataError, StateError
from physics.io import PathLike
from physics.models.video_propnet.config import (
    LAUNCH_CLEARANCE,
    LAUNCH_STEP,
    NODE_ATTR_DIM,
    REST_STEP,
    STATE_DIM,
    SYMMETRY,
)
from physics.models.video_propnet.spin import sliding_states, spin_actions
from physics.trajectory import Trajectory
from physics.video_dynamics import yaw_of
from physics.worlds.clevr_properties import MATERIALS, SHAPES
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectState,
    VideoAnnotation,
    annotation_files,
    read_annotation,
)
from physics.worlds.clevrer_truth import VideoTruth, read_truth
from physics.worlds.clevrer_world import ClevrerConfig


# ---------------------------------------------------------------------- states as arrays
def _orientation_channel(shape: str, yaws: np.ndarray) -> np.ndarray:
    """The orientation channel of one object over frames (see the module docstring)."""
    k = SYMMETRY.get(shape)
    if k is None or yaws.size == 0:
        return np.zeros_like(yaws)
    return np.unwrap(k * yaws) / k


def _shapes(annotation: VideoAnnotation) -> dict[int, str]:
    return {p.object_id: p.shape for p in annotation.object_property}


def unknown_yaw_cubes(annotation: VideoAnnotation) -> frozenset[int]:
    """Cubes whose orientation is exactly zero at every observed frame they are in (no yaw given).

    A simulated cube is never exactly unturned all video long; the pixel perceiver writes
    zeros for every object (``perception.video.annotate``).  A cube never observed is not
    counted (it has no footprint to place).
    """
    turned = {o.object_id for fr in annotation.motion_trajectory for o in fr.objects
              if any(v != 0.0 for v in o.orientation)}
    return frozenset(_observed_cubes(annotation) - turned)


def _observed_cubes(annotation: VideoAnnotation) -> set[int]:
    """Cubes present in at least one observed frame of ``annotation``."""
    seen = {o.object_id for fr in annotation.motion_trajectory for o in fr.objects}
    return {p.object_id for p in annotation.object_property if p.shape == "cube"} & seen


def _attributes(annotation: VideoAnnotation) -> dict[int, np.ndarray]:
    """``object_id -> shape one-hot + material one-hot``."""
    out = {}
    for p in annotation.object_property:
        if p.shape not in SHAPES or p.material not in MATERIALS:
            raise DataError(f"video {annotation.scene_index}: object {p.object_id} is a {p.material} {p.shape}; "
                            f"the video PropNet knows shapes {SHAPES} and materials {MATERIALS}")
        a = np.zeros(NODE_ATTR_DIM, np.float32)
        a[SHAPES.index(p.shape)] = 1.0
        a[len(SHAPES) + MATERIALS.index(p.material)] = 1.0
        out[p.object_id] = a
    return out


@dataclass
class _Track:
    """One object's observed states, indexed by frame position (``None`` where absent)."""

    shape: str
    states: list[ObjectState | None]
    xyt: np.ndarray  # [T, 3] x, y, orientation channel (NaN where absent)


def _tracks(annotation: VideoAnnotation, frames: Sequence[FrameStates] | None = None) -> dict[int, _Track]:
    """Per-object observed states of ``frames`` (default: the annotation's), frame ids consecutive."""
    frames = annotation.motion_trajectory if frames is None else frames
    if not frames:
        raise DataError(f"video {annotation.scene_index}: the annotation has no frames")
    first = frames[0].frame_id
    for i, fr in enumerate(frames):
        if fr.frame_id != first + i:
            raise DataError(f"video {annotation.scene_index}: motion_trajectory frame {fr.frame_id} at position {i}; "
                            "the video PropNet needs consecutive frame ids")
    shapes = {p.object_id: p.shape for p in annotation.object_property}
    out: dict[int, _Track] = {}
    for oid, shape in shapes.items():
        states = [fr.by_id().get(oid) for fr in frames]
        xyt = np.full((len(frames), STATE_DIM), np.nan)
        idx = [i for i, s in enumerate(states) if s is not None]
        if idx:
            xyt[idx, 0] = [states[i].location[0] for i in idx]
            xyt[idx, 1] = [states[i].location[1] for i in idx]
            xyt[idx, 2] = _orientation_channel(shape, np.array([yaw_of(states[i].orientation) for i in idx]))
        out[oid] = _Track(shape, states, xyt)
    return out


def launch_actions(positions: np.ndarray) -> np.ndarray:
    """Launches found in states: the action ``[T, N, D]`` that explains each unprovoked start.

    Object ``k`` is launched at frame ``t`` when it was at rest (moved less than
    ``REST_STEP`` from ``t - 1``; frame 0 counts as rest), moves more than
    ``LAUNCH_STEP`` from ``t`` to ``t + 1``, and no other object's centre is within
    ``LAUNCH_CLEARANCE`` at ``t`` or ``t + 1``.  Its action at ``t``
    is that first displacement (x, y; zero orientation); every other entry is zero.

    Args:
        positions: ``[T, N, D]`` states (x, y first), NaN where an object is absent.
    """
    pos = np.asarray(positions, dtype=np.float64)
    t_len, n = pos.shape[:2]
    act = np.zeros(pos.shape, np.float32)
    if t_len < 2:
        return act
    xy = pos[:, :, :2]
    step = np.linalg.norm(xy[1:] - xy[:-1], axis=-1)  # [T-1, N]: t -> t+1
    with np.errstate(invalid="ignore"):
        dist = np.linalg.norm(xy[:, :, None] - xy[:, None, :], axis=-1)  # [T, N, N]
    dist[:, np.arange(n), np.arange(n)] = np.inf
    near = np.nan_to_num(dist, nan=np.inf).min(axis=2) < LAUNCH_CLEARANCE  # [T, N]
    for t in range(t_len - 1):
        rest = np.ones(n, bool) if t == 0 else step[t - 1] < REST_STEP
        go = rest & (step[t] > LAUNCH_STEP) & ~near[t] & ~near[t + 1]
        for k in np.flatnonzero(go):
            act[t, k, :2] = xy[t + 1, k] - xy[t, k]
    return act


def video_trajectory(annotation: VideoAnnotation, truth: VideoTruth | None = None, spin: bool = False) -> Trajectory:
    """One video as a :class:`~physics.trajectory.Trajectory` of object states (a training example).

    Observed frames, then the truth's future frames when given; every object must be
    present in every frame (the generated annotations hold objects outside the view too).
    ``meta["collision_frames"]`` holds the frame positions of the recorded collisions
    (observed, and future ones when ``truth`` is given).  ``spin``: ``meta["sliding"]`` holds the
    frames each sphere slides by the truth's spin (:func:`sliding_states`, as ``[k, first, end)``
    runs), which the actions carry (:func:`spin_actions`).

    Raises:
        DataError: an object is missing from a frame, or the frame ids are not consecutive.
    """
    frames = tuple(annotation.motion_trajectory) + (tuple(truth.future_trajectory) if truth is not None else ())
    collisions = tuple(annotation.collision) + (tuple(truth.future_collisions) if truth is not None else ())
    return _states_trajectory(annotation, frames, collisions, truth, removed=None, spin=spin)


def counterfactual_trajectory(annotation: VideoAnnotation, truth: VideoTruth, removed_object_id: int,
                              spin: bool = False) -> Trajectory:
    """The video re-simulated without ``removed_object_id`` (the truth's counterfactual) as a trajectory.

    A counterfactual is the same world from the same initial state with one object fewer:
    another example of the same dynamics, with the collisions that removing it makes and
    unmakes.  ``meta["removed"]`` names the object; otherwise as :func:`video_trajectory`.

    Raises:
        DataError: no such counterfactual, or an object missing from one of its frames.
    """
    cf = truth.counterfactual(removed_object_id)
    return _states_trajectory(annotation, cf.trajectory, cf.collisions, truth, removed=removed_object_id, spin=spin)


def _states_trajectory(annotation: VideoAnnotation, frames: Sequence[FrameStates], collisions: Sequence[Collision],
                       truth: VideoTruth | None, removed: int | None, spin: bool = False) -> Trajectory:
    tracks = _tracks(annotation, frames)
    ids = sorted(k for k in tracks if k != removed)
    if not ids:
        raise DataError(f"video {annotation.scene_index}: no object left to train on")
    pos = np.stack([tracks[k].xyt for k in ids], axis=1)  # [T, N, 3]
    what = f"video {annotation.scene_index}" + (f" without object {removed}" if removed is not None else "")
    if np.isnan(pos).any():
        t, k = np.argwhere(np.isnan(pos[:, :, 0]))[0]
        raise DataError(f"{what}: object {ids[k]} is missing at frame {frames[t].frame_id}; "
                        "training needs every object in every frame")
    attrs = _attributes(annotation)
    first = frames[0].frame_id
    hits = sorted({c.frame_id - first for c in collisions if 0 <= c.frame_id - first < len(frames)})
    meta = {"name": what, "video": annotation.scene_index, "object_ids": ids, "removed": removed,
            "collision_frames": hits, "seed": list(truth.seed) if truth is not None else None}
    if spin:
        slides = sliding_states(frames, ids, _shapes(annotation))
        runs = []
        for k in range(len(ids)):
            edges = np.flatnonzero(np.diff(np.concatenate([[0], slides[:, k].astype(np.int8), [0]])))
            runs += [[k, int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
        meta["sliding"] = runs
    return _make_trajectory(pos, np.stack([attrs[k] for k in ids]), truth.fps if truth is not None else ClevrerConfig().fps,
                            meta)


def _make_trajectory(pos: np.ndarray, node_attr: np.ndarray, fps: float, meta: dict) -> Trajectory:
    """A trajectory of states ``pos`` ``[T, N, 3]``: every pair related, launches as actions.

    Launches are found on the float32 states, so a trajectory read back from a pack is the same.
    """
    pos = np.asarray(pos, np.float32)
    n = pos.shape[1]
    edges = np.array([(i, j) for i in range(n) for j in range(n) if i != j], np.int64).reshape(-1, 2).T
    actions = launch_actions(pos)
    if "sliding" in meta:  # the spin input (video_trajectory's spin)
        slides = np.zeros(pos.shape[:2], bool)
        for k, a, b in meta["sliding"]:
            slides[a:b, k] = True
        actions = spin_actions(actions, slides)
    return Trajectory(
        positions=pos,
        node_attr=np.asarray(node_attr, np.float32),
        instance=np.arange(n, dtype=np.int64),
        edges=edges,
        edge_attr=np.zeros((edges.shape[1], 0), np.float32),
        actions=actions,
        observed=np.ones(n, bool),
        dt=1.0 / fps,
        meta=meta,
    )


def video_trajectories(annotation: VideoAnnotation, truth: VideoTruth, counterfactuals: bool = False,
                       spin: bool = False) -> list[Trajectory]:
    """The video's trajectory, then (``counterfactuals``) one per object removed, in object order (``spin``: see
    :func:`video_trajectory`)."""
    out = [video_trajectory(annotation, truth, spin)]
    if counterfactuals:
        out += [counterfactual_trajectory(annotation, truth, cf.removed_object_id, spin) for cf in truth.counterfactuals]
    return out


def contact_step_weights(traj: Trajectory, weight: float, after: int, horizon: int = 1, before: int = 1,
                         lead: int = 0) -> np.ndarray:
    """Relative chances ``[T]`` of drawing each step ``t`` as a sample: ``weight`` around contacts, 1 elsewhere.

    A sample at ``t`` predicts frames ``t + 1 .. t + horizon``; it is a contact sample when
    one of them lies from ``before`` frames before a recorded collision
    (``meta["collision_frames"]``) to ``after`` frames after it: the impulse and the
    motion it starts, which a struck object's future (and every changed counterfactual
    collision) depends on, and which are a few percent of a video's frames.

    ``lead`` L > 0 (for multi-step rollout samples) replaces ``before``: a contact sample
    starts from L frames before a recorded collision to ``after`` frames after it
    (``c - L <= t < c + after``), so a long unroll holds the approach, the contact and
    the motion it starts rather than ending at the contact.
    """
    if weight < 0 or after < 0 or before < 0 or lead < 0 or horizon < 1:
        raise ConfigError(f"contact weights need weight, after, before, lead >= 0 and horizon >= 1, got "
                          f"{weight}, {after}, {before}, {lead}, {horizon}")
    w = np.ones(traj.num_steps)
    for c in traj.meta.get("collision_frames", ()):
        lo = c - lead if lead > 0 else c - before - horizon  # t + horizon >= c - before
        lo, hi = max(lo, 0), min(c + after, traj.num_steps - 1)  # t + 1 <= c + after
        w[lo : hi] = weight
    return w


def contact_velocity_frames(traj: Trajectory, after: int) -> np.ndarray:
    """``[T]`` 0/1: 1 on frames ``c .. c + after`` of every recorded collision ``c``
    (``meta["collision_frames"]``), the frames whose velocity a contact sets; the steps a
    ``velocity_weight`` loss charges (:meth:`~physics.models.base.DynamicsModel.loss`)."""
    if after < 0:
        raise ConfigError(f"contact velocity frames need after >= 0, got {after}")
    m = np.zeros(traj.num_steps)
    for c in traj.meta.get("collision_frames", ()):
        m[max(c, 0) : min(c + after + 1, traj.num_steps)] = 1.0
    return m


# ---------------------------------------------------------------------- compact trajectory files
PACK_FORMAT = "nesy-video-trajectories-1"


def save_trajectory_pack(path: PathLike, trajs: Sequence[Trajectory]) -> None:
    """Write video trajectories (states, attributes, meta) into one compressed ``.npz``, atomically.

    About 50 times smaller than the annotation and truth JSON they come from (launches and
    edges are recomputed on loading), so many videos travel to another machine.  A trajectory
    whose ``meta`` holds ``input_positions`` (perceived states, :mod:`physics.models.video_perceived`)
    keeps them: the pack then holds an ``inputs`` array laid out as ``positions`` (the true states
    for trajectories without inputs) and ``has_inputs`` per trajectory.
    """
    import io
    import json

    from physics.io import atomic_write_bytes

    if not trajs:
        raise DataError("no trajectories to write")
    sizes = np.array([t.positions.shape[:2] for t in trajs], np.int64)  # [K, 2]: T, N
    has_inputs = np.array(["input_positions" in t.meta for t in trajs])
    extra = {}
    if has_inputs.any():
        extra = {"has_inputs": has_inputs, "inputs": np.concatenate([
            np.asarray(t.meta.get("input_positions", t.positions), np.float32).reshape(-1) for t in trajs])}
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format=np.frombuffer(PACK_FORMAT.encode(), np.uint8),
        sizes=sizes,
        fps=np.array([1.0 / t.dt for t in trajs]),
        positions=np.concatenate([t.positions.reshape(-1) for t in trajs]).astype(np.float32),
        node_attr=np.concatenate([t.node_attr for t in trajs]).astype(np.float32),
        meta=np.frombuffer(json.dumps([{k: v for k, v in t.meta.items() if k != "input_positions"}
                                       for t in trajs]).encode(), np.uint8),
        **extra,
    )
    atomic_write_bytes(path, buf.getvalue())


def load_trajectory_pack(path: PathLike) -> list[Trajectory]:
    """Read the trajectories of :func:`save_trajectory_pack` (launch actions and edges recomputed).

    Raises:
        DataError: missing, damaged or not a trajectory pack (names the file).
    """
    import json
    import zipfile
    import zlib

    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DataError(f"trajectory pack {path} is damaged or not a .npz file (made by `nesy data video-trajectories`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if "format" not in arrays or arrays["format"].tobytes().decode() != PACK_FORMAT:
            raise DataError(f"{path} is not a video trajectory pack ({PACK_FORMAT}; made by `nesy data video-trajectories`)")
        sizes, fps, metas = arrays["sizes"], arrays["fps"], json.loads(arrays["meta"].tobytes().decode())
        pos, attr = arrays["positions"], arrays["node_attr"]
        inputs, has_inputs = arrays.get("inputs"), arrays.get("has_inputs")
    except FileNotFoundError:
        raise DataError(f"trajectory pack not found: {path}") from None
    except KeyError as exc:  # str(KeyError) is the bare key in quotes
        raise DataError(f"trajectory pack {path} is damaged: it lacks the array {exc}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"trajectory pack {path} is damaged: {exc}") from None
    if len(metas) != len(sizes) or len(fps) != len(sizes) or int((sizes[:, 0] * sizes[:, 1]).sum()) * STATE_DIM != pos.size \
            or int(sizes[:, 1].sum()) != len(attr) or (inputs is not None and (
                inputs.size != pos.size or has_inputs is None or len(has_inputs) != len(sizes))):
        raise DataError(f"trajectory pack {path} is damaged: its arrays disagree in size")
    out, p, a = [], 0, 0
    for i, ((t, n), f, meta) in enumerate(zip(sizes.tolist(), fps.tolist(), metas, strict=True)):
        if inputs is not None and has_inputs[i]:
            meta = {**meta, "input_positions": inputs[p : p + t * n * STATE_DIM].reshape(t, n, STATE_DIM)}
        try:
            out.append(_make_trajectory(pos[p : p + t * n * STATE_DIM].reshape(t, n, STATE_DIM), attr[a : a + n], f, meta))
        except StateError as exc:  # NaN or a bad shape: name the pack, not only the video
            raise StateError(f"{path}: {exc}") from None
        p, a = p + t * n * STATE_DIM, a + n
    return out


def load_video_split(data: PathLike, split: str, limit: int | None = None) -> list[tuple[VideoAnnotation, VideoTruth]]:
    """The (annotation, truth) pairs of one split of a ``nesy data clevrer`` folder, in video order.

    Raises:
        DataError: no annotations, or an annotation without its truth file.
    """
    root = Path(data)
    files = annotation_files(root / f"annotation_{split}")
    out = []
    for path in files[:limit]:
        ann = read_annotation(path)
        tpath = root / f"truth_{split}" / path.name.replace("annotation_", "truth_")
        if not tpath.is_file():
            raise DataError(f"{path}: no truth file {tpath} beside it (made by `nesy data clevrer`)")
        out.append((ann, read_truth(tpath)))
    return out
