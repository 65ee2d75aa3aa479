"""The rollout loop of the video PropNet: observed frames followed until influenced, one-step predictions, frames.

:class:`_Rollout` holds the methods that run a rollout (:meth:`_Rollout._run` and the steps it takes);
:class:`~physics.models.video_propnet.dynamics.PropNetVideoDynamics`, the provider, inherits them and
builds on them its future and counterfactual answers.  Beside it, the rollout's contact carry
(:class:`_Carry`), its result (:class:`_Run`) and the annotation's contact frames (:func:`_contact_frames`).
What a rollout follows and what it predicts is told in the package's docstring (Rollouts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from physics.errors import ConfigError
from physics.graph.builder import GraphBuilder
from physics.models.base import DynamicsModel
from physics.models.video_propnet.augment import turn_averaged_step
from physics.models.video_propnet.config import (
    ROLL_SPEED,
    SLIDE_INPUT,
    SPIN_WINDOW,
    STATE_DIM,
    SYMMETRY,
    RolloutConfig,
)
from physics.models.video_propnet.free_slide import FreeSlide
from physics.models.video_propnet.heading_hold import HeadingHold
from physics.models.video_propnet.rest_hold import RestHold
from physics.models.video_propnet.spin import sliding_read
from physics.models.video_propnet.starts import (
    _jittered,
    fitted_start,
    late_collision_start,
    velocity_fitted_start,
)
from physics.models.video_propnet.trajectories import (
    _attributes,
    _orientation_channel,
    _shapes,
    _Track,
    _tracks,
    launch_actions,
)
from physics.video_dynamics import (
    CUBE_MEAN_REACH,
    HALF_EXTENT,
    yaw_of,
)
from physics.worlds.camera import Camera
from physics.worlds.clevr_properties import SHAPES
from physics.worlds.clevrer_annotation import FrameStates, ObjectState, VideoAnnotation
from physics.worlds.clevrer_world import ClevrerConfig


class _Rollout:
    """The rollout methods of :class:`~physics.models.video_propnet.dynamics.PropNetVideoDynamics`.

    They read the attributes the provider sets in its ``__init__`` (annotated below).
    """

    model: DynamicsModel
    config: RolloutConfig
    camera: Camera
    builder: GraphBuilder
    history: int

    # ------------------------------------------------------------------ the rollout
    def _run(self, annotation: VideoAnnotation, removed: int | None, extra: int, back: int = 0,
             jitter: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> _Run:
        """Observed frames (followed until influenced, see the module docstring), then ``extra`` predicted ones.

        ``back`` > 0 (futures only): prediction starts ``back`` frames before the last observed
        frame.  ``jitter`` (futures only): per object (in object id order) a shift ``[N, 2]``,
        a turn ``[N]`` and a relative speed change ``[N]`` of the history the first prediction
        starts from (each history frame turned and stretched about the last one, then shifted).
        """
        tracks = _tracks(annotation)
        if self.config.yaw_input == "zeros":  # the PropNet sees no yaw; the frames keep the observed states
            for t in tracks.values():
                t.xyt[~np.isnan(t.xyt[:, 2]), 2] = 0.0
        attrs = _attributes(annotation)
        t_obs = len(annotation.motion_trajectory)
        first = annotation.motion_trajectory[0].frame_id
        ids = sorted(k for k in tracks if k != removed)
        observed = np.stack([tracks[k].xyt for k in ids], axis=1) if ids else np.zeros((t_obs, 0, STATE_DIM))
        if (back or jitter is not None) and removed is not None:
            raise ConfigError("an ensemble member's start (back, jitter) is for future rollouts only")
        t_pred = t_obs - back
        contacts = _contact_frames(annotation, first)
        if removed is None and self.config.start_fit:
            observed = fitted_start(observed, t_pred, self.history, self.config.start_fit, self.config.fit_residual)
        if removed is None and self.config.start_velocity_fit:
            cut = [max([c for fr in contacts.get(k, {}).values() for c in fr if c < t_pred], default=-1) for k in ids]
            moving = [(st := tracks[k].states[t_pred - 1]) is not None and any(st.velocity[:2]) for k in ids]
            observed = velocity_fitted_start(observed, t_pred, self.history, self.config.start_velocity_fit,
                                             np.asarray(cut), np.asarray(moving, bool))
            if self.config.late_collision_start:
                observed = late_collision_start(observed, t_pred, self.history, self.config.start_velocity_fit,
                                                self.config.late_collision_start, contacts, ids, self.config.late_restitution,
                                                self.config.carry_min_speed / self.config.fps)
        if jitter is not None:
            observed = _jittered(observed, t_pred, self.history, *jitter)
        # launches are found with every object present: a push by the removed object is no launch
        everyone = sorted(tracks)
        actions = launch_actions(np.stack([tracks[k].xyt for k in everyone], axis=1))[:, [everyone.index(k) for k in ids]]
        lead = self.config.contact_lead
        ghost_r = self.config.influence_distance
        n, total = len(ids), t_obs + extra
        state = np.full((total, n, STATE_DIM), np.nan)
        predicted = np.zeros((total, n), bool)
        changed = np.zeros(n, bool)
        shapes = _shapes(annotation)
        carried = self.config.contact_carry and (removed is None or self.config.carry_scope == "all")
        carry = _Carry(self.config, [shapes[k] == "cube" for k in ids]) if carried else None
        spin: dict[int, tuple[str, float]] | None = {} if self.config.spin_input else None
        free = None
        if removed is None and self.config.free_slide != "off":
            free = FreeSlide(self.config.free_slide, self.config.free_slide_clearance, [shapes[k] for k in ids],
                             self.config.fps)
            free_spin: dict[int, tuple[str, float]] = {}  # the free slide's own spin memory (_sliding's)
        hold = RestHold(self.config.rest_hold, [shapes[k] for k in ids]) if removed is None and self.config.rest_hold else None
        heading = None
        if removed is None and self.config.heading_hold != "off":
            heading = HeadingHold(self.config.heading_hold, self.config.heading_hold_clearance, [shapes[k] for k in ids])

        cf_fit = self.config.counterfactual_velocity_fit if removed is not None else 0

        def refit(i: int, f: int) -> bool:
            """Object ``i``'s history before frame ``f`` shaped by its fitted parabola (``counterfactual_velocity_fit``).

            Whether ``state`` changed.  Only its history frames ``f - 1 - history .. f - 2`` are
            written: the centre at ``f - 1`` and the observed frames the rollout returns are kept.
            """
            h, last = self.history, f - 1
            st = tracks[ids[i]].states[last] if 0 <= last < t_obs else None
            if last - h < 0 or st is None or not any(st.velocity[:2]):
                return False
            cuts = np.full(n, -1)
            cuts[i] = max([c for fr in contacts.get(ids[i], {}).values() for c in fr if c < f], default=-1)
            only = np.zeros(n, bool)
            only[i] = True
            fit = velocity_fitted_start(observed, f, h, cf_fit, cuts, only,
                                        self.config.counterfactual_fit_residual)[last - h : last, i, :2]
            if np.array_equal(fit, state[last - h : last, i, :2]):
                return False
            state[last - h : last, i, :2] = fit
            return True

        def touched(i: int, f: int) -> bool:
            """Whether object ``ids[i]`` touches, within ``lead`` frames after ``f``, the removed or a changed object."""
            for other, frames in contacts.get(ids[i], {}).items():
                source = other == removed or (other in ids and changed[ids.index(other)])
                if source and any(f <= c <= f + lead for c in frames):
                    return True
            return False

        for f in range(total):
            if f == 0:
                state[0] = observed[0]
                continue
            cache: dict[str, np.ndarray | None] = {}

            def pred(f: int = f, cache: dict = cache) -> np.ndarray | None:
                if "p" not in cache:
                    cache["p"] = self._step(state, actions, attrs, ids, f - 1, spin)
                return cache["p"]

            if f >= t_pred:
                if cf_fit and f == t_pred:  # objects the removal never reached start their prediction here
                    for i in np.flatnonzero(~changed):
                        refit(i, f)
                p = pred()
                if p is not None:
                    state[f] = p
                    predicted[f] = ~np.isnan(p[:, 0])
                if free is not None:
                    free.step(state, predicted, f, lambda i, f=f: self._sliding(state, attrs[ids[i]], i, f - 1, free_spin))
                if hold is not None:
                    hold.step(state, predicted, f)
                if heading is not None:
                    heading.step(state, predicted, f)
                if carry is not None:
                    carry.step(state, predicted, f)
                continue
            if changed.any():
                p = pred()
                state[f, changed] = p[changed]
                predicted[f, changed] = True
            grew = True
            while grew:  # an object changed this frame can reach another in the same frame
                grew = False
                for i in np.flatnonzero(~changed & ~np.isnan(observed[f, :, 0])):
                    here = observed[f, i, :2]
                    near = [state[f, j, :2] for j in np.flatnonzero(changed)]
                    reach = touched(i, f) or any(np.linalg.norm(here - s) < ghost_r for s in near
                                                 if not np.isnan(s).any())
                    if reach and cf_fit and refit(i, f):  # predict frame f again, from the fitted history
                        cache.pop("p", None)
                        again = pred()
                        if again is not None:
                            state[f, changed] = again[changed]
                    p = pred() if reach else None
                    if p is not None and not np.isnan(p[i, 0]):
                        changed[i] = grew = True
                        state[f, i] = p[i]
                        predicted[f, i] = True
            follow = ~changed
            state[f, follow] = observed[f, follow]
            if carry is not None:
                carry.step(state, predicted, f)
        frames = self._frames(annotation, tracks, ids, state, predicted, first)
        return _Run(frames, ids, predicted, first)

    def _step(self, state: np.ndarray, actions: np.ndarray, attrs: dict[int, np.ndarray], ids: list[int], t: int,
              spin: dict[int, tuple[str, float]] | None = None) -> np.ndarray | None:
        """Predicted states at ``t + 1`` ``[N, 3]`` (NaN rows: objects absent at ``t``), or None before the history.

        ``spin`` (``RolloutConfig.spin_input``): the rollout's per-object spin memory, updated here
        (steps in increasing ``t``); None: no spin input.
        """
        h = self.history
        if t < h:
            return None
        here = np.flatnonzero(~np.isnan(state[t, :, 0]))
        out = np.full(state.shape[1:], np.nan)
        if here.size == 0:
            return out
        hist = state[t - h : t + 1][:, here].copy()  # [H+1, M, 3]
        for c in range(hist.shape[1]):  # an object that appeared within the history: extend it back at rest
            col = hist[:, c]
            known = np.flatnonzero(~np.isnan(col[:, 0]))
            col[: known[0]] = col[known[0]]
        m = here.size
        edges = torch.tensor([(i, j) for i in range(m) for j in range(m) if i != j], dtype=torch.long).reshape(-1, 2).T
        act = actions[t][here] if t < actions.shape[0] else np.zeros((m, STATE_DIM), np.float32)
        if spin is not None:
            act = act.copy()
            act[:, 2] = [SLIDE_INPUT if self._sliding(state, attrs[ids[i]], i, t, spin) else 0.0 for i in here]
        with torch.no_grad():
            g = self.builder.build(
                torch.as_tensor(hist, dtype=torch.float32),
                torch.as_tensor(np.stack([attrs[ids[i]] for i in here])),
                torch.as_tensor(act, dtype=torch.float32),
                edges,
                torch.zeros(edges.shape[1], 0),
            )
            if self.config.turn_average:  # the step averaged over turned copies of the scene
                nxt = turn_averaged_step(self.model, g, self.config.turn_average)[:m]
            else:
                nxt = self.model.next_positions(g)[:m]
        self.model.check_finite(nxt, f"video PropNet rollout at frame {t + 1}")
        out[here] = nxt.numpy()
        return out

    @staticmethod
    def _sliding(state: np.ndarray, attr: np.ndarray, i: int, t: int, spin: dict[int, tuple[str, float]]) -> bool:
        """Whether object ``i`` (a sphere) gets the sliding input at step ``t`` (``RolloutConfig.spin_input``)."""
        if attr[SHAPES.index("sphere")] != 1.0:
            return False
        fps = ClevrerConfig().fps
        speed = float(np.linalg.norm(state[t, i, :2] - state[t - 1, i, :2])) * fps
        kind, value = spin.get(i, ("", 0.0))
        if kind == "slide":
            if speed > value:
                return True
            spin[i] = ("hold", t + SPIN_WINDOW)
            return False
        if kind == "hold" and t < value:
            return False
        sliding, start = sliding_read(state[max(t - SPIN_WINDOW, 0) : t + 1, i, :2], fps=fps)
        if sliding and speed > ROLL_SPEED * start:
            spin[i] = ("slide", ROLL_SPEED * start)
            return True
        spin.pop(i, None)
        return False

    def _frames(self, annotation: VideoAnnotation, tracks: dict[int, _Track], ids: list[int], state: np.ndarray,
                predicted: np.ndarray, first: int) -> tuple[FrameStates, ...]:
        """Rollout arrays -> frames: observed states as recorded, predicted ones built from (x, y, theta)."""
        fps = self.config.fps
        t_obs = len(annotation.motion_trajectory)
        last_seen: dict[int, ObjectState] = {}
        frames = []
        for f in range(state.shape[0]):
            objs = []
            pending = []
            for i, k in enumerate(ids):
                obs = tracks[k].states[f] if f < t_obs else None
                if obs is not None:
                    last_seen[k] = obs
                if np.isnan(state[f, i, 0]):
                    continue
                if not predicted[f, i] and obs is not None:
                    objs.append(obs)
                    continue
                base = last_seen[k]
                x, y, th = state[f, i]
                px, py, pth = state[f - 1, i] if f and not np.isnan(state[f - 1, i, 0]) else state[f, i]
                yaw0 = yaw_of(base.orientation)
                th0 = _orientation_channel(tracks[k].shape, np.array([yaw0]))[0]
                turns = tracks[k].shape in SYMMETRY and self.config.yaw_input == "given"
                yaw = yaw0 + (th - th0) if turns else yaw0  # yaw_input zeros: the last observed yaw carried on
                orient = tuple(base.orientation[:2]) + (yaw,) if len(base.orientation) == 3 else tuple(base.orientation)
                pending.append((len(objs), (x, y, base.location[2])))
                objs.append(ObjectState(
                    object_id=k,
                    location=(float(x), float(y), float(base.location[2])),
                    orientation=tuple(float(v) for v in orient),
                    velocity=(float((x - px) * fps), float((y - py) * fps), 0.0),
                    angular_velocity=(0.0, 0.0, float((th - pth) * fps)) if tracks[k].shape in SYMMETRY else (0.0, 0.0, 0.0),
                    inside_camera_view=False,
                ))
            if pending:
                uvd = self.camera.project(np.array([p for _, p in pending], dtype=float))
                w, h, near = self.camera.width, self.camera.height, self.camera.near
                for (slot, _), (u, v, d) in zip(pending, uvd, strict=True):
                    inside = bool(d > near and 0.0 <= u < w and 0.0 <= v < h)
                    o = objs[slot]
                    objs[slot] = ObjectState(o.object_id, o.location, o.orientation, o.velocity, o.angular_velocity, inside)
            frames.append(FrameStates(first + f, tuple(objs)))
        return tuple(frames)



def _contact_frames(annotation: VideoAnnotation, first: int) -> dict[int, dict[int, list[int]]]:
    """``object -> other object -> frame positions`` of the annotation's collisions between them."""
    out: dict[int, dict[int, list[int]]] = {}
    for c in annotation.collision:
        if len(c.object_ids) != 2:
            continue
        a, b = c.object_ids
        out.setdefault(a, {}).setdefault(b, []).append(c.frame_id - first)
        out.setdefault(b, {}).setdefault(a, []).append(c.frame_id - first)
    return out


class _Carry:
    """Momentum exchange at the contacts a rollout makes (:attr:`RolloutConfig.contact_carry`)."""

    def __init__(self, config: RolloutConfig, cubes: Sequence[bool]) -> None:
        self.frames, self.e = config.contact_carry, config.carry_restitution
        self.min_step = config.carry_min_speed / config.fps  # closing speed in units a frame
        self.reach = np.where(np.asarray(cubes, bool), CUBE_MEAN_REACH, HALF_EXTENT)
        self.until = np.full(len(cubes), -1)  # last frame each object is carried to
        self.velocity = np.zeros((len(cubes), 2))  # units a frame

    def step(self, state: np.ndarray, predicted: np.ndarray, f: int) -> None:
        """Carry on the objects in a carry at frame ``f``, then start carries at the touches first made at ``f``."""
        on = np.flatnonzero((self.until >= f) & predicted[f] & ~np.isnan(state[f - 1, :, 0]))
        state[f, on, :2] = state[f - 1, on, :2] + self.velocity[on]
        if f < 2:
            return
        xy, before, older = state[f, :, :2], state[f - 1, :, :2], state[f - 2, :, :2]
        live = np.flatnonzero(predicted[f] & ~np.isnan(xy[:, 0]) & ~np.isnan(before[:, 0]) & ~np.isnan(older[:, 0]))
        for a_pos, i in enumerate(live):
            for j in live[a_pos + 1:]:
                reach = self.reach[i] + self.reach[j]
                offset = xy[j] - xy[i]
                dist = float(np.hypot(*offset))
                if dist > reach or float(np.hypot(*(before[j] - before[i]))) <= reach or dist == 0.0:
                    continue  # not touching now, or touching already
                normal = offset / dist
                ui, uj = before[i] - older[i], before[j] - older[j]
                closing = float((ui - uj) @ normal)
                if closing < self.min_step:
                    continue
                kick = 0.5 * (1.0 + self.e) * closing * normal
                self.velocity[i], self.velocity[j] = ui - kick, uj + kick
                self.until[[i, j]] = f + self.frames


@dataclass(frozen=True)
class _Run:
    """A rollout: its frames and which object was predicted (not followed) at which frame."""

    frames: tuple[FrameStates, ...]
    ids: list[int]
    predicted: np.ndarray  # [T, N] bool
    first: int

    def followed(self, object_id: int, frame_id: int) -> bool:
        """Whether ``object_id`` still followed the video at ``frame_id`` (and the frame before)."""
        i = self.ids.index(object_id)
        f = frame_id - self.first
        return not self.predicted[max(f - 1, 0) : f + 1, i].any()

