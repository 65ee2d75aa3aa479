"""A learned PropNet over CLEVRER object states, behind the video Dynamics interface.

NS-DR (Yi, Gan et al., ICLR 2020) predicts CLEVRER's future and counterfactual
frames with a Propagation Network (Li et al. 2019) over objects.  Here the
project's one PropNet (:class:`~physics.models.propnet.PropNet`, world preset
``clevrer``) learns object states from the videos' trajectories with the shared
training loop (:func:`physics.models.training.train`), and
:class:`PropNetVideoDynamics` answers :class:`~physics.video_dynamics.VideoDynamics`.

State and graph
---------------
An object is one node; its state is ``(x, y, theta)``: the centre on the floor
(scene units) and an orientation channel, the yaw of cubes unwrapped modulo a
quarter turn (a cube looks the same after 90 degrees), zero for spheres and
cylinders, whose yaw is invisible.  Velocities are the differences of the
history (GNS); shape and material one-hot are the static node attributes; every
pair of objects is a relation (at most 6 objects: 30 relations).  The shipped
checkpoint was trained with ``--set contact=clevrer``: each relation also carries
the gap between the two footprints, that gap one frame on, and the approach speed
(:mod:`physics.models.contact`), so the network sees a contact coming.

Launches
--------
CLEVRER's entering objects start at rest outside the view and are launched at a
random frame: nothing in the states explains that push.  A launch is the
trajectory's external *action* (as the pusher is in the boxes world):
:func:`launch_actions` finds, from the states alone, an object at rest that
moves the next frame with no other object near, and gives it its first
displacement as the action of that frame.  Training sees the launches as
actions; rollouts replay the launches observed in the video.

Rollouts
--------
* ``future``: from the last observed frames, every object present at the last
  observed frame is rolled out (objects that left a perceived annotation stay
  gone); its collisions come from the state rule, optionally with a tolerance and
  a closing-speed test of their own, and optionally voted over an ensemble of
  rollouts from perturbed or earlier starts (:class:`RolloutConfig`; off by
  default, as measured); optionally a collision recorded in the last observed
  frames whose contact goes on into the future counts as a future one too
  (``edge_frames``, :func:`edge_collisions`).
* ``counterfactual``: the video is re-run from its first frame without the
  removed object.  Without the removed object nothing differs until it would
  have touched something, so an object follows its observed states (launch
  included) until it is about to touch (``contact_lead`` frames before a
  collision the annotation records) the removed object or an object already
  changed, or until a changed object's rolled-out centre comes within
  ``influence_distance`` of it (a contact the video does not show); from then
  on the model predicts it, seeing the others' current states.  Merely passing
  near the removed object changes nothing, so it is no reason to predict.
  After the last observed frame every object is predicted.  Objects of
  a perceived annotation join when they first appear, already moving.
  Collisions between objects both still following the video are the video's
  own; any pair with a predicted member gets them from the state rule
  (:func:`physics.video_dynamics.state_collisions`).

``inside_camera_view`` of a predicted state is its centre projected by the
CLEVRER world's fixed camera (``ClevrerConfig().camera``, 480x320).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError, StateError
from physics.graph.builder import GraphBuilder, NodeType
from physics.io import PathLike
from physics.models.base import DynamicsModel
from physics.models.resolver import load_model, make_model, preset
from physics.models.training import TrainConfig, train
from physics.trajectory import Trajectory
from physics.video_dynamics import (
    COLLISION_GAP,
    CONTACT_TOLERANCE,
    CUBE_MEAN_REACH,
    HALF_EXTENT,
    footprint_gaps,
    register_video_dynamics,
    state_collisions,
    vote_collisions,
    yaw_of,
)
from physics.worlds.camera import Camera
from physics.worlds.clevr_properties import MATERIALS, SHAPES, SIZE_RADIUS
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectState,
    VideoAnnotation,
    annotation_files,
    read_annotation,
)
from physics.worlds.clevrer_events import derive_events
from physics.worlds.clevrer_truth import Counterfactual, VideoTruth, read_truth
from physics.worlds.clevrer_world import ClevrerConfig

__all__ = [
    "WORLD",
    "STATE_DIM",
    "NODE_ATTR_DIM",
    "SHIPPED_CHECKPOINT",
    "RolloutConfig",
    "rollout_config",
    "PropNetVideoDynamics",
    "launch_actions",
    "fitted_start",
    "velocity_fitted_start",
    "VELOCITY_FIT_MIN",
    "unknown_yaw_cubes",
    "YAW_DISCS",
    "CARRY_SCOPES",
    "edge_collisions",
    "lookahead_collisions",
    "video_trajectory",
    "counterfactual_trajectory",
    "video_trajectories",
    "contact_step_weights",
    "contact_velocity_frames",
    "save_trajectory_pack",
    "load_trajectory_pack",
    "load_video_split",
    "train_video_model",
    "SLIDE_INPUT",
    "ROLL_RATIO",
    "ROLL_SPEED",
    "SPIN_WINDOW",
    "SPIN_SLOPE",
    "sliding_states",
    "spin_actions",
    "sliding_read",
    "grow_spin_input",
    "SPIN_CHANNEL",
]

WORLD = "clevrer"  # the world preset (physics.models.config) the video PropNet is built from
STATE_DIM = 3  # x, y, orientation channel
NODE_ATTR_DIM = len(SHAPES) + len(MATERIALS)
SYMMETRY = {"cube": 4}  # quarter-turn symmetry: the orientation channel is yaw unwrapped modulo 2 pi / 4
YAW_DISCS = ("unknown", "cubes")  # RolloutConfig.yaw_discs: which cubes the collision rule takes as discs
YAW_INPUTS = ("given", "zeros")  # RolloutConfig.yaw_input: what the PropNet's orientation input gets
CARRY_SCOPES = ("all", "future")  # RolloutConfig.carry_scope / lookahead_scope: which rollouts the setting applies to
NEAR_MISS_FEATURES = 4  # RolloutConfig.near_miss: gap, closing speed, seconds into the rollout, spheres of the pair
NEAR_MISS_MAX_GAP = 0.6  # units: a wider closest approach is never a near miss
NEAR_MISS_SPAN = 3  # frames over which a near miss's closing speed is measured
REST_STEP = 1e-3  # scene units a frame: an object moving less is at rest (launch detection)
LAUNCH_STEP = 0.02  # an object at rest moving more than this the next frame was pushed (0.5 units/s at 25 fps)
LAUNCH_CLEARANCE = 2.0 * math.sqrt(2.0) * HALF_EXTENT + 0.2  # centres farther apart: no object could have pushed it
# The spin input (off by default; ``video_trajectories(spin=True)``, ``RolloutConfig.spin_input``): a sphere that
# slides (its spin short of rolling) carries SLIDE_INPUT in the orientation channel of its action, which launches
# never use; a rolling sphere, one at rest and every cube and cylinder carry 0.
SLIDE_INPUT = 0.05  # about a launch's displacement, so the isotropic action normaliser keeps launches visible
VELOCITY_FIT_MIN = 4  # centres a start_velocity_fit parabola needs (3 parameters, one to spare)
ROLL_RATIO = 0.9  # truth: a sphere rolls when |angular velocity (x, y)| x radius >= ROLL_RATIO x |velocity (x, y)|
SPIN_MIN_SPEED = 0.3  # units/s: a slower sphere carries no sliding flag
SPIN_WINDOW = 8  # rollouts: frames of a sphere's track whose step-length slope reads its spin
SPIN_SLOPE = -0.10  # units/s a frame: a slope below it reads as sliding (92% agreement on dev 58172, nsdr)
SPIN_CHANNEL = 2  # the action channel that carries SLIDE_INPUT (the orientation channel; launches leave it 0)
ROLL_SPEED = 5.0 / 7.0  # a solid sphere launched without spin rolls once its speed fell to 5/7 of its launch speed
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "video" / "clevrer_propnet.pt"


@dataclass(frozen=True)
class RolloutConfig:
    """How :class:`PropNetVideoDynamics` rolls out.

    Args:
        future_frames: Frames after the observed ones a counterfactual covers (the truth files' 50).
        contact_tolerance: Footprint distance of the collision rule (:func:`state_collisions`).
        collision_gap: Frames apart before a touch is a new collision (the world's rule).
        influence_distance: An object starts being predicted in a counterfactual once its
            centre comes this close to the rolled-out centre of an object already changed
            (above the farthest touching centres, 0.7 for two discs,
            plus a frame of motion, so a contact is never missed).
        contact_lead: An object starts being predicted this many frames before a collision the
            annotation records between it and the removed object or an object already changed
            (the contact that may not happen; the margin covers perceived collision frames a
            frame or two late).
        fps: Frames per second (velocities of predicted states).
        future_tolerance: Footprint distance of the collision rule on a *future* rollout
            (``None``: ``contact_tolerance``); predicted objects that should meet often
            pass a little apart.
        future_reach: Future rollouts only (0: off, the default): a pair the rollout brings within this
            footprint distance inside the predicted frames is a future collision too, next to the ones
            the collision rule (``future_tolerance``) finds, which it never removes
            (:func:`_reach_collisions`); counterfactuals, observed frames and rolled-out states never
            read it.  Meant for the near misses of late chained contacts (twenty-eighth session, nsdr9's
            census: the true pair's closest approach a median 0.054 units in 57 of 69 predictive misses).
            Off here; 0.15 for objects perceived from pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``;
            nsdr11: development predictive 365 -> 375 of 432, fresh pool 60251 183 -> 190 of 219 by its
            committed rule, ``docs/results/clevrer.md``).
        counterfactual_reach: Counterfactual rollouts only (0: off, the default): a pair the rollout brings within
            this footprint distance after the last observed frame (where a counterfactual is a future rollout of
            every object but the removed one) is a collision too, next to the ones the collision rule
            (``contact_tolerance``) finds, which it never removes (:func:`_counterfactual_reach_collisions`); a
            pair already that near at the video's end adds nothing.  Inside the video the plain rule alone, as
            before.  The counterfactual's analogue of ``future_reach``; futures, observed frames and rolled-out
            states never read it.  Twenty-ninth session, nsdr14's census of counterfactual misses on dev pools
            81521 + 98562 (``docs/results/clevrer.md``): inside the video a reach invents as many pairs as it
            finds at every distance tried; after the video 0.03 found 4 missed pairs and invented none.  Off:
            0.03 answered 4 more counterfactual questions of 1,364 on dev pools 89682 + 30316 (7 gained, 3 lost;
            its gate asked +8).
        approach_speed: A future touch also needs the centres closing in at this speed
            (units/s; 0: no test), so that a tolerance above 0 does not make neighbours
            at rest or sliding side by side collide (:func:`state_collisions`).
        ensemble: Future rollouts whose collisions are voted (1: one rollout).  Member 0
            is the plain rollout; member ``k`` starts ``k % ensemble_starts`` frames
            before the last observed frame and has its starting history perturbed
            (``ensemble_shift``, ``ensemble_turn``, ``ensemble_speed``), reproducibly
            from ``ensemble_seed`` and the video's index.  The future states returned
            are member 0's; the collisions those that ``votes`` members agree on
            (:func:`~physics.video_dynamics.vote_collisions`, within ``vote_window``
            frames).  Counterfactuals are one rollout, as before.
        votes: Members that must find a collision (1 <= votes <= ensemble).
        vote_window: Frames within which two members' collisions of a pair are one.
        ensemble_starts: Starting frames the members cycle through (1: the last observed one only).
        ensemble_shift: Standard deviation of a member's shift of each object's
            starting history (scene units; the same shift for every history frame).
        ensemble_turn: Standard deviation of the turn of each object's starting
            velocity (radians; the history is turned about its last state).
        ensemble_speed: Relative standard deviation of each object's starting speed.
        ensemble_seed: Seed of the members' perturbations.
        start_fit: Future rollouts only (0: off): each object seen in every one of the last
            ``start_fit`` observed frames (at least ``history + 2``) starts from its x, y there
            fitted by a parabola in time (constant deceleration), evaluated at the history's
            frames, when no fitted centre lies more than ``fit_residual`` from the observed
            one (no touch inside the window); otherwise from the observed history.  Perceived
            centres jitter by a few hundredths of a unit a frame, which the history's
            differences turn into velocity errors the rollout carries on.
        fit_residual: Largest distance of an observed centre from the fit (scene units) for
            ``start_fit`` to replace an object's history.
        start_velocity_fit: Future rollouts only (0: off; else at least ``VELOCITY_FIT_MIN``):
            each object moving at the last observed frame (its annotated velocity there not
            zero) keeps its last observed centre, and its history frames take the shape of a
            parabola in time (constant deceleration) fitted by least squares to its last
            contiguous observed centres, at most ``start_velocity_fit`` of them, only the frames
            after its last recorded collision + 1, at least ``VELOCITY_FIT_MIN``
            (:func:`velocity_fitted_start`); otherwise its observed history.  Unlike
            ``start_fit`` it takes objects seen for fewer frames than the window (late
            entrants) and never fits across a collision.  Off here; 12 for objects perceived
            from pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``): on the velocity at the last
            observed frame of 234 moving objects perceived from pixels (twenty-second session,
            development pools) 12 frames cut the median error from 0.207 to 0.102 units/s;
            predictive from pixels 86 -> 89 of 107 (development), 44 -> 46 of 49 on held-out seed
            69169 (``docs/results/clevrer.md``).
        counterfactual_velocity_fit: Counterfactual rollouts only (0: off, the default; else at least
            ``VELOCITY_FIT_MIN``): the ``start_velocity_fit`` of a future rollout, at each object's own
            first predicted frame ``f`` of a counterfactual (the frame the removal's influence reaches
            it, or the first frame after the observed ones for an object it never reached): an object
            moving at ``f - 1`` (its annotated velocity there not zero) keeps its observed centre at
            ``f - 1``, and its history frames before take the shape of a parabola fitted to its last
            contiguous observed centres up to ``f - 1``, at most ``counterfactual_velocity_fit`` of
            them, only the frames after its last recorded collision before ``f`` + 1, at least
            ``VELOCITY_FIT_MIN`` (:func:`velocity_fitted_start`); otherwise its observed history.  The
            prediction at ``f`` is then made from the fitted history (objects already predicted see it
            too).  Observed frames stay as recorded; futures are unchanged.  Meant for the perceived
            one-frame velocity a counterfactual starts from.  Off here; 12 for objects perceived from
            pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``; twenty-seventh session, nsdr8: development
            counterfactual 799 -> 809 of 941, then held-out pool 30316 by its committed rule,
            ``docs/results/clevrer.md``).
        counterfactual_fit_residual: With ``counterfactual_velocity_fit`` (0: off, the default; else scene
            units > 0): an object whose fitted parabola lies farther than this from one of the centres it
            was fitted to keeps its observed history at its first predicted frame (a one-frame
            difference), as without the fit: such a span holds a bounce or a jump of the track that no
            perceived collision cut off, where the fit's start errs far more than the raw one
            (twenty-eighth session, nsdr10, dev 98562: at residuals above 0.08 units the median start
            error is 0.93 units/s fitted, 0.17 raw).  Off: 0.04 answered 1 more counterfactual question
            of 1,611 on three development pools from pixels (8 gained, 7 lost; its gate asked +3),
            ``docs/results/clevrer.md``.
        late_collision_start: Future rollouts only, with ``start_velocity_fit`` (0: off, the default):
            an object whose last recorded collision lies in the last ``late_collision_start`` observed
            frames, too late for ``start_velocity_fit`` to fit, starts at the velocity the equal-mass
            exchange (``carry_restitution``) gives the two objects' parabola-fitted velocities before
            the contact, if the pair was closing in at ``carry_min_speed`` or faster
            (:func:`late_collision_start`); a struck object read at rest gets its velocity too.
            Meant for the contacts at the video's end the PropNet does not bounce (twenty-fourth
            session: against the true velocity 3 frames after the last observed one, 34 objects of 220
            development videos struck in the last 2 frames start 0.58-1.59 units/s off in median as
            shipped; exchanged, 21 nearer and 13 farther; struck 2-4 frames before the end, the
            shipped start is the better one).
        unknown_yaw_reach: With a value above 0, a cube whose annotation never gives its yaw
            (orientation exactly zero at every observed frame it is in: the pixel perceiver
            writes zeros, ``perception.video.annotate``) is a disc of this radius in the
            collision rule of futures and counterfactuals, instead of a square at yaw 0
            whose reach errs by up to 0.1 units either way.  0: the square at the given yaw.
            Default 0.315, the square's reach averaged over directions (sixteenth session:
            +6 questions on development, +7 predictive and counterfactual questions on
            held-out seed 61937; true annotations give every cube a yaw and are unchanged).
        yaw_discs: Which cubes the collision rule takes as discs of ``unknown_yaw_reach``
            (nothing with ``unknown_yaw_reach`` 0): ``"unknown"`` (the default) the cubes whose
            yaw the annotation never gives (:func:`unknown_yaw_cubes`); ``"cubes"`` every cube,
            its yaw (e.g. fitted to its masks, ``VideoPerceptionConfig.cube_yaw``) going to the
            PropNet's orientation input only, not to the collision rule.
        yaw_input: What the PropNet's orientation input gets: ``"given"`` (the default) the
            annotation's yaws; ``"zeros"`` zeros for every object (what the pixel perceiver
            gives without ``cube_yaw``), the annotation's yaws going to the collision rule
            only: a predicted frame keeps the object's last observed yaw (the PropNet's
            orientation channel, fed zeros, says nothing of it).
        edge_frames: Future rollouts only (0: off): a collision the annotation records in its
            last ``edge_frames`` observed frames, whose two footprints still touch (by the future
            rule: tolerance and discs, no closing-speed test) at the first predicted frame and
            which the rollout does not find again later, is also a future collision, dated at
            that first predicted frame.  The contact goes on past the end of the observed video,
            so CLEVRER may date it after the last observed frame: the world dates a collision a
            frame after the state rule in about 8% of collisions, and the pixel perceiver dates
            one a frame or two before the world in about a quarter (seventeenth session,
            ``docs/results/clevrer.md``).  Counterfactuals are unchanged.  0 here (true
            annotations date collisions as the world does); NS-DR sets 2 for annotations
            perceived from pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``: held-out seeds
            77351 and 80949, +1 predictive question of 62, none lost).
        edge_tolerance: Footprint distance (scene units) at which an ``edge_frames`` pair still touches at
            the first predicted frame (``None``, the default: the future rule's tolerance, ``future_tolerance``
            or else ``contact_tolerance``).  Perceived centres jitter by a few hundredths of a unit, so a pair
            perceived in contact at the video's end can read a hair apart at the first predicted frame
            (twenty-ninth session, nsdr12: 3 of the 9 predictive misses with a pair near at the video's end on
            development pools 98562 + 87197 lie 0.0006-0.0022 apart there).  Futures only, with
            ``edge_frames``; an option, off (``None``): with ``edge_frames`` 15 and 0.01 it answered 3 more
            predictive questions of 432 on development pools 89682 + 30316 (4 gained, 1 lost; its gate asked +5;
            ``docs/results/clevrer.md``).
        contact_carry: Frames (0: off) over which a contact the rollout itself makes is answered
            by momentum exchange instead of the PropNet: when two predicted objects' footprints
            (discs; a cube one of ``CUBE_MEAN_REACH``) first touch at a frame while closing in at
            ``carry_min_speed`` or faster, both objects' velocities before the touch are exchanged
            along the line of centres as between equal masses with restitution
            ``carry_restitution``, and the next ``contact_carry`` frames move each object on at its
            new velocity; the PropNet takes over from that history.  Meant for the chains of
            collisions the learned rollout cuts short (a struck object or its striker stopped
            short, seventeenth session).  The rollouts ``carry_scope`` names.  0 here: 3 on every
            rollout answered +4 predictive and +1 counterfactual questions on development from
            pixels but +3 predictive and -5 counterfactual on held-out seed 66419; NS-DR sets 3 with
            ``carry_scope`` ``"future"`` for annotations perceived from pixels
            (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``: held-out seed 49585 +4 predictive questions
            of 57, none lost, counterfactuals unchanged; ``docs/results/clevrer.md``).
        carry_scope: Which rollouts ``contact_carry`` applies to: ``"all"`` (the default) futures
            and counterfactuals alike; ``"future"`` the future rollouts only, every counterfactual
            rolled out by the PropNet alone (exactly as with ``contact_carry`` 0).
        lookahead: Frames (0: off) of a closing-speed tolerance on the rollout's collision rule
            (:func:`lookahead_collisions`): a pair with a predicted member whose footprints are
            apart at a frame but would touch within ``lookahead`` frames if their gap kept
            closing at its rate over the frame before (at least ``lookahead_min_speed``) is a
            collision, dated at the pair's closest frame within that window, unless the state
            rule finds one of the pair within ``collision_gap`` frames.  The tolerance grows
            with the closing speed: a near miss of a fast approach counts, neighbours at rest
            or sliding side by side never do.  Meant for the chains the learned rollout cuts
            short by a few hundredths of a unit.  The rollouts ``lookahead_scope`` names.  0 here
            and for pixel perception: on two development pools (eighteenth session, 1,015
            predictive and counterfactual questions) 2, 3 and 4 frames found 7, 14 and 18 of 60
            missed chain links but invented 22, 39 and 57 pairs, and answered 917, 920 and 914
            questions against 922 (``docs/results/clevrer.md``).
        lookahead_min_speed: Closing speed of the footprint gap (units/s) below which
            ``lookahead`` adds nothing.
        lookahead_scope: Which rollouts ``lookahead`` applies to (``"all"`` or ``"future"``,
            as ``carry_scope``).
        near_miss: Weights (empty: off, the default) of a score that turns a near miss of the
            rollout into a collision: bias, then the closest approach's footprint gap (units), the
            closing speed over the ``NEAR_MISS_SPAN`` frames before it (units/s), the seconds from
            the rollout's first predicted frame to it, and the pair's spheres (0-2)
            (:func:`near_miss_candidates`, :func:`near_miss_collisions`): a pair with a predicted
            member whose gap has a local minimum above the tolerance (at most
            ``NEAR_MISS_MAX_GAP``) and scores above 0 collides there, unless the rule already has
            one of the pair within ``collision_gap`` frames.  Meant for the true collisions the
            learned rollout stops short of (twenty-fourth session: about two missed for each one
            invented among wrong answers; a single tolerance added as many invented ones as it found).
            Off: a logistic score fitted on development near misses tied the shipped default on held-back
            development videos (counterfactual 3 gained, 3 lost of 247; predictive unchanged; ``docs/results/clevrer.md``).
        near_miss_scope: Which rollouts ``near_miss`` applies to (``"all"`` or ``"future"``).
        spin_input: For a checkpoint trained on ``video_trajectories(spin=True)`` packs only
            (``nesy data video-trajectories --spin``): each predicted step gives a sphere the
            sliding input (``SLIDE_INPUT``) when its last ``SPIN_WINDOW`` steps of the rollout's
            states (observed or predicted) read as sliding (:func:`sliding_read`), and keeps it
            until its speed fell to ``ROLL_SPEED`` times the window's first speed; then it rolls
            (no re-reading for ``SPIN_WINDOW`` frames).  A collision's change of spin is not
            modelled.  Off: with the 10-step rollout loss it cut the fast free slide's end error by
            a third but answered no more predictive questions from pixels and fewer counterfactual
            ones (twenty-second session; ``docs/results/clevrer.md``); ``nesy eval clevrer --spin-input``.
        carry_restitution: Normal restitution of ``contact_carry`` (the world's 0.7 per body,
            multiplied: 0.49).
        carry_min_speed: Closing speed (units/s) below which a touch is not carried (objects at
            rest side by side).

    The future defaults (one rollout, the counterfactual rule) were kept after measurement:
    on 100 development videos (seed 64646) a 9-member ensemble with unanimous votes found
    fewer invented collisions but answered fewer predictive questions, and no tolerance,
    closing speed or vote count answered more (``docs/results/clevrer.md``).
    """

    future_frames: int = ClevrerConfig().future_frames
    contact_tolerance: float = CONTACT_TOLERANCE
    collision_gap: int = COLLISION_GAP
    influence_distance: float = 1.3
    contact_lead: int = 2
    fps: int = ClevrerConfig().fps
    future_tolerance: float | None = None
    future_reach: float = 0.0
    counterfactual_reach: float = 0.0
    approach_speed: float = 0.0
    ensemble: int = 1
    votes: int = 1
    vote_window: int = 5
    ensemble_starts: int = 1
    ensemble_shift: float = 0.0
    ensemble_turn: float = 0.0
    ensemble_speed: float = 0.0
    ensemble_seed: int = 0
    start_fit: int = 0
    fit_residual: float = 0.03
    start_velocity_fit: int = 0
    late_collision_start: int = 0
    counterfactual_velocity_fit: int = 0
    counterfactual_fit_residual: float = 0.0
    unknown_yaw_reach: float = CUBE_MEAN_REACH
    yaw_discs: str = "unknown"
    yaw_input: str = "given"
    edge_frames: int = 0
    edge_tolerance: float | None = None
    contact_carry: int = 0
    carry_restitution: float = 0.49
    carry_min_speed: float = 0.25
    carry_scope: str = "all"
    lookahead: int = 0
    lookahead_min_speed: float = 0.5
    lookahead_scope: str = "all"
    near_miss: tuple[float, ...] = ()
    near_miss_scope: str = "all"
    spin_input: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        nm = self.near_miss
        if not isinstance(nm, tuple) or (nm and (len(nm) != 1 + NEAR_MISS_FEATURES or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in nm))):
            raise ConfigError(f"RolloutConfig: near_miss must be () (off) or {1 + NEAR_MISS_FEATURES} finite numbers "
                              f"(bias, gap, closing speed, seconds, spheres), got {nm!r}")
        lc = self.late_collision_start
        if isinstance(lc, bool) or not isinstance(lc, int) or lc < 0:
            raise ConfigError(f"RolloutConfig: late_collision_start must be an integer >= 0 (0: off), got {lc!r}")
        if self.late_collision_start and not self.start_velocity_fit:
            raise ConfigError("RolloutConfig.late_collision_start needs start_velocity_fit > 0 (its fit window)")
        if not isinstance(self.spin_input, bool):
            raise ConfigError(f"RolloutConfig.spin_input must be True or False, got {self.spin_input!r}")
        for name, choices in (("lookahead_scope", CARRY_SCOPES), ("carry_scope", CARRY_SCOPES), ("near_miss_scope", CARRY_SCOPES),
                              ("yaw_input", YAW_INPUTS), ("yaw_discs", YAW_DISCS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"RolloutConfig: {name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("lookahead", "contact_carry", "edge_frames"):  # frame counts, 0: off
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"RolloutConfig: {name} must be an integer >= 0 (0: off), got {value!r}")
        if not (math.isfinite(self.lookahead_min_speed) and self.lookahead_min_speed > 0.0):
            raise ConfigError(f"RolloutConfig: lookahead_min_speed must be a number > 0, got {self.lookahead_min_speed!r}")
        if not (math.isfinite(self.carry_restitution) and 0.0 <= self.carry_restitution <= 1.0):
            raise ConfigError(f"RolloutConfig: carry_restitution must be a number from 0 to 1, got {self.carry_restitution!r}")
        if not (math.isfinite(self.carry_min_speed) and self.carry_min_speed >= 0.0):
            raise ConfigError(f"RolloutConfig: carry_min_speed must be a number >= 0, got {self.carry_min_speed!r}")
        if self.future_frames < 0 or self.fps < 1 or self.collision_gap < 1 or self.contact_lead < 0:
            raise ConfigError(f"RolloutConfig: future_frames >= 0, fps >= 1, collision_gap >= 1 and contact_lead >= 0 "
                              f"needed, got {self}")
        if self.start_fit < 0 or not math.isfinite(self.fit_residual) or self.fit_residual <= 0:
            raise ConfigError(f"RolloutConfig: start_fit must be >= 0 and fit_residual a number > 0, got "
                              f"start_fit {self.start_fit}, fit_residual {self.fit_residual}")
        for name in ("start_velocity_fit", "counterfactual_velocity_fit"):
            sv = getattr(self, name)
            if isinstance(sv, bool) or not isinstance(sv, int) or sv < 0 or 0 < sv < VELOCITY_FIT_MIN:
                raise ConfigError(f"RolloutConfig: {name} must be 0 (off) or an integer >= {VELOCITY_FIT_MIN}, "
                                  f"got {sv!r}")
        cr = self.counterfactual_fit_residual
        if isinstance(cr, bool) or not isinstance(cr, (int, float)) or not math.isfinite(cr) or cr < 0:
            raise ConfigError(f"RolloutConfig: counterfactual_fit_residual must be a number >= 0 (0: off), got {cr!r}")
        if cr and not self.counterfactual_velocity_fit:
            raise ConfigError("RolloutConfig.counterfactual_fit_residual needs counterfactual_velocity_fit > 0 (its fit)")
        if not math.isfinite(self.unknown_yaw_reach) or not 0.0 <= self.unknown_yaw_reach <= HALF_EXTENT:
            raise ConfigError(f"RolloutConfig: unknown_yaw_reach must be a number from 0 (off) to {HALF_EXTENT}, "
                              f"got {self.unknown_yaw_reach}")
        reals = {"contact_tolerance": self.contact_tolerance, "influence_distance": self.influence_distance,
                 "approach_speed": self.approach_speed, "ensemble_shift": self.ensemble_shift,
                 "ensemble_turn": self.ensemble_turn, "ensemble_speed": self.ensemble_speed}
        if self.future_tolerance is not None:
            reals["future_tolerance"] = self.future_tolerance
        et = self.edge_tolerance
        if et is not None and (isinstance(et, bool) or not isinstance(et, (int, float)) or not math.isfinite(et) or et < 0):
            raise ConfigError(f"RolloutConfig: edge_tolerance must be None (the future rule's) or a number >= 0, got {et!r}")
        for name in ("future_reach", "counterfactual_reach"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"RolloutConfig: {name} must be a finite number >= 0 (0: off), got {value!r}")
        bad = {name: value for name, value in reals.items() if not math.isfinite(value)}
        if bad:  # NaN passes every `< 0` test below and would silently find no collisions
            raise ConfigError(f"RolloutConfig: settings must be finite numbers, got {bad}")
        if self.future_tolerance is not None and self.future_tolerance < 0 or self.approach_speed < 0:
            raise ConfigError(f"RolloutConfig: future_tolerance and approach_speed must be >= 0, got "
                              f"{self.future_tolerance}, {self.approach_speed}")
        if self.ensemble < 1 or not 1 <= self.votes <= self.ensemble or self.vote_window < 0 or self.ensemble_starts < 1:
            raise ConfigError(f"RolloutConfig: need ensemble >= 1, 1 <= votes <= ensemble, vote_window >= 0 and "
                              f"ensemble_starts >= 1; got ensemble {self.ensemble}, votes {self.votes}, "
                              f"vote_window {self.vote_window}, ensemble_starts {self.ensemble_starts}")
        if min(self.ensemble_shift, self.ensemble_turn, self.ensemble_speed) < 0:
            raise ConfigError("RolloutConfig: ensemble_shift, ensemble_turn and ensemble_speed must be >= 0, got "
                              f"{self.ensemble_shift}, {self.ensemble_turn}, {self.ensemble_speed}")
        if self.contact_tolerance < 0 or self.influence_distance <= 2.0 * HALF_EXTENT:
            raise ConfigError("RolloutConfig: need contact_tolerance >= 0 and influence_distance > "
                              f"{2.0 * HALF_EXTENT}, got {self.contact_tolerance}, {self.influence_distance}")


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


def sliding_states(frames: Sequence[FrameStates], ids: Sequence[int], shapes: Mapping[int, str]) -> np.ndarray:
    """``[T, N]`` bool: sphere ``ids[k]`` slides at frame ``t`` by the truth's spin.

    Sliding: a sphere moving at ``SPIN_MIN_SPEED`` or faster whose spin about the floor's axes
    is short of rolling (``|angular velocity (x, y)| x radius < ROLL_RATIO x |velocity (x, y)|``).
    Absent objects, cubes and cylinders are False.
    """
    radius = SIZE_RADIUS[ClevrerConfig().size]
    out = np.zeros((len(frames), len(ids)), bool)
    for t, fr in enumerate(frames):
        by = fr.by_id()
        for k, oid in enumerate(ids):
            o = by.get(oid)
            if o is None or shapes.get(oid) != "sphere":
                continue
            v = float(np.linalg.norm(np.asarray(o.velocity[:2], float)))
            w = float(np.linalg.norm(np.asarray(o.angular_velocity[:2], float)))
            out[t, k] = v >= SPIN_MIN_SPEED and w * radius < ROLL_RATIO * v
    return out


def spin_actions(actions: np.ndarray, sliding: np.ndarray) -> np.ndarray:
    """``actions`` ``[T, N, D]`` with ``SLIDE_INPUT`` in the orientation channel where ``sliding`` ``[T, N]``."""
    out = np.array(actions, np.float32, copy=True)
    out[..., 2] = np.where(sliding, SLIDE_INPUT, out[..., 2])
    return out


def sliding_read(xy: np.ndarray, window: int = SPIN_WINDOW, slope: float = SPIN_SLOPE, fps: float = 25.0) -> tuple[bool, float]:
    """Whether a track's last ``window + 1`` centres ``[window + 1, 2]`` read as a sliding sphere.

    The slope of a line fitted to the step lengths (units/s a frame) below ``slope`` reads as
    sliding; also returns the line's speed at the window's first step (units/s), from which a
    rollout lets the sphere roll at ``ROLL_SPEED`` times it.  NaN anywhere: not sliding.
    """
    xy = np.asarray(xy, float)
    if xy.shape[0] < 3 or np.isnan(xy).any():
        return False, 0.0
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1) * fps
    b, a = np.polyfit(np.arange(len(steps)), steps, 1)
    return bool(b < slope and steps[-1] >= SPIN_MIN_SPEED), float(a)


def grow_spin_input(model: DynamicsModel) -> DynamicsModel:
    """Zero the node encoder's first weights on the spin channel of the action, in place; returns ``model``.

    A model trained without the spin input saw 0 in :data:`SPIN_CHANNEL` of every action (its
    action normaliser does not centre), so its weights on that channel never trained: zeroed,
    the model gives the same outputs as before for any action, ``SLIDE_INPUT`` or not, and a
    fine-tune on a ``--spin`` pack (``nesy train video-dynamics --init ... --grow-spin``) grows
    the input from there (twenty-second session, nsdr2; ``docs/results/clevrer.md``).

    Raises:
        ConfigError: a model whose node encoder does not read the plain action layout
            (velocities of the history, attributes, action, node type), or whose action
            normaliser centres the spin channel (zeroing would then change its outputs).
    """
    cfg = model.config
    first = model.node_encoder[0]
    if cfg.partially_observed or cfg.dim != STATE_DIM or not isinstance(first, torch.nn.Linear):
        raise ConfigError(f"grow_spin_input needs a fully observed {STATE_DIM}-D model with a linear node encoder, "
                          f"got dim {cfg.dim}, partially_observed {cfg.partially_observed}")
    column = cfg.graph.history * cfg.dim + cfg.node_attr_dim + SPIN_CHANNEL
    expected = cfg.graph.history * cfg.dim + cfg.node_attr_dim + cfg.dim + len(NodeType)
    if first.in_features != expected:
        raise ConfigError(f"grow_spin_input: the node encoder reads {first.in_features} inputs, expected {expected} "
                          "(history velocities, attributes, action, node type)")
    if float(model.action_norm.mean[SPIN_CHANNEL]) != 0.0:
        raise ConfigError("grow_spin_input: the action normaliser centres the spin channel "
                          f"(mean {float(model.action_norm.mean[SPIN_CHANNEL])}); zeroing its weights would change the outputs")
    with torch.no_grad():
        first.weight[:, column] = 0.0
    return model


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


# ---------------------------------------------------------------------- the dynamics provider
class PropNetVideoDynamics:
    """Future and counterfactual frames from a learned PropNet over object states.

    Args:
        model: A simulator trained on :func:`video_trajectory` data (``dim`` 3, shape and material attributes).
        config: Rollout settings.
        camera: Decides ``inside_camera_view`` of predicted states (default: the CLEVRER world's).

    >>> dyn = PropNetVideoDynamics.load()  # the shipped checkpoint
    """

    def __init__(self, model: DynamicsModel, config: RolloutConfig = RolloutConfig(), camera: Camera | None = None) -> None:
        cfg = model.config
        if cfg.dim != STATE_DIM or cfg.node_attr_dim != NODE_ATTR_DIM or cfg.edge_attr_dim != 0:
            raise ConfigError(f"a video PropNet needs dim {STATE_DIM}, node_attr_dim {NODE_ATTR_DIM}, edge_attr_dim 0; "
                              f"the model has {cfg.dim}, {cfg.node_attr_dim}, {cfg.edge_attr_dim}")
        self.model = model.eval()
        self.config = config
        world = ClevrerConfig()
        self.camera = camera or world.camera.with_size(world.width, world.height)
        self.builder = GraphBuilder(cfg.graph)
        self.history = cfg.graph.history
        if config.start_fit and config.start_fit < self.history + 2:  # refused here, not at the first rollout
            raise ConfigError(f"start_fit {config.start_fit} frames cannot fit the model's history of "
                              f"{self.history + 1} frames; need >= {self.history + 2}")

    @classmethod
    def load(cls, checkpoint: PathLike | None = None, config: RolloutConfig = RolloutConfig()) -> PropNetVideoDynamics:
        """From a model file (``None``: the shipped ``clevrer_propnet.pt``).

        Raises:
            CheckpointError: missing or damaged file.
        """
        return cls(_load_cached(str(checkpoint or SHIPPED_CHECKPOINT)), config)

    # ------------------------------------------------------------------ the interface
    def future(self, annotation: VideoAnnotation, frames: int) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
            raise ConfigError(f"future frames must be a non-negative integer, got {frames!r}")
        cfg = self.config
        runs = self.future_runs(annotation, frames)
        members = [self.future_collisions(annotation, run.frames) for run in runs]
        voted = vote_collisions(members, cfg.votes, cfg.vote_window) if cfg.ensemble > 1 else members[0]
        return runs[0].frames[-frames:] if frames else (), voted

    def future_runs(self, annotation: VideoAnnotation, frames: int) -> list[_Run]:
        """Every ensemble member's future rollout, member 0 the plain one (see :class:`RolloutConfig`'s ``ensemble``)."""
        cfg = self.config
        n = len({p.object_id for p in annotation.object_property})
        rng = np.random.default_rng([cfg.ensemble_seed, max(annotation.scene_index, 0)])
        perturbed = cfg.ensemble_shift > 0 or cfg.ensemble_turn > 0 or cfg.ensemble_speed > 0
        runs = []
        for k in range(cfg.ensemble):
            back = min(k % cfg.ensemble_starts, len(annotation.motion_trajectory) - 1)
            jitter = None
            if k and perturbed:
                jitter = (rng.normal(0.0, cfg.ensemble_shift, (n, 2)), rng.normal(0.0, cfg.ensemble_turn, n),
                          rng.normal(0.0, cfg.ensemble_speed, n))
            runs.append(self._run(annotation, removed=None, extra=frames, back=back, jitter=jitter))
        return runs

    def future_collisions(self, annotation: VideoAnnotation, frames: Sequence[FrameStates]) -> tuple[Collision, ...]:
        """The collisions after the last observed frame of a future rollout, by the future rule."""
        cfg = self.config
        tol = cfg.contact_tolerance if cfg.future_tolerance is None else cfg.future_tolerance
        collisions = state_collisions(frames, _shapes(annotation), tol, cfg.collision_gap,
                                      approach_speed=cfg.approach_speed, fps=cfg.fps, discs=self._discs(annotation))
        last = annotation.motion_trajectory[-1].frame_id
        if cfg.lookahead:
            ahead = lookahead_collisions(frames, _shapes(annotation), cfg.lookahead, cfg.lookahead_min_speed, cfg.fps, tol,
                                         cfg.collision_gap, collisions, lambda pair, f: f > last,
                                         self._discs(annotation))
            collisions = tuple(sorted((*collisions, *ahead), key=lambda c: (c.frame_id, c.object_ids)))
        future = tuple(c for c in collisions if c.frame_id > last)
        if cfg.future_reach:
            future = tuple(sorted((*future, *_reach_collisions(frames, _shapes(annotation), cfg, last, future,
                                                               self._discs(annotation))),
                                  key=lambda c: (c.frame_id, c.object_ids)))
        if cfg.near_miss:
            near = near_miss_candidates(frames, _shapes(annotation), tol, cfg.fps, lambda pair, f: f > last,
                                        self._discs(annotation), start=last + 1)
            added = near_miss_collisions(near, cfg.near_miss, collisions, cfg.collision_gap)
            future = tuple(sorted((*future, *added), key=lambda c: (c.frame_id, c.object_ids)))
        edge = edge_collisions(annotation, frames, future, cfg.edge_frames,
                               tol if cfg.edge_tolerance is None else cfg.edge_tolerance, self._discs(annotation))
        return tuple(sorted((*edge, *future), key=lambda c: c.frame_id)) if edge else future

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        ids = {p.object_id for p in annotation.object_property}
        if removed_object_id not in ids:
            raise DataError(f"video {annotation.scene_index} has no object {removed_object_id} to remove (ids {sorted(ids)})")
        run = self._run(annotation, removed=removed_object_id, extra=self.config.future_frames)
        ruled = state_collisions(run.frames, _shapes(annotation), self.config.contact_tolerance, self.config.collision_gap,
                                 discs=self._discs(annotation))
        kept = [c for c in annotation.collision
                if removed_object_id not in c.object_ids and all(run.followed(k, c.frame_id) for k in c.object_ids)]
        kept += [c for c in ruled if not all(run.followed(k, c.frame_id) for k in c.object_ids)]
        cfg = self.config
        if cfg.lookahead and cfg.lookahead_scope == "all":
            kept += lookahead_collisions(run.frames, _shapes(annotation), cfg.lookahead, cfg.lookahead_min_speed, cfg.fps,
                                         cfg.contact_tolerance, cfg.collision_gap, (*ruled, *kept),
                                         lambda pair, f: not all(run.followed(k, f) for k in pair),
                                         self._discs(annotation))
        if cfg.near_miss and cfg.near_miss_scope == "all":
            moved = np.flatnonzero(run.predicted.any(axis=1))
            near = near_miss_candidates(run.frames, _shapes(annotation), cfg.contact_tolerance, cfg.fps,
                                        lambda pair, f: not all(run.followed(k, f) for k in pair), self._discs(annotation),
                                        start=run.first + int(moved[0]) if len(moved) else None)
            kept += near_miss_collisions(near, cfg.near_miss, (*ruled, *kept), cfg.collision_gap)
        if cfg.counterfactual_reach:
            kept += _counterfactual_reach_collisions(run.frames, _shapes(annotation), cfg,
                                                     annotation.motion_trajectory[-1].frame_id, kept,
                                                     self._discs(annotation))
        collisions = tuple(sorted(kept, key=lambda c: (c.frame_id, tuple(sorted(c.object_ids)))))
        last = annotation.motion_trajectory[-1].frame_id
        events = derive_events(run.frames, collisions, end_frame=last)
        return Counterfactual(removed_object_id, run.frames, collisions, tuple(events))

    def _discs(self, annotation: VideoAnnotation) -> dict[int, float]:
        """Objects the collision rule takes as discs of ``unknown_yaw_reach``: the cubes ``yaw_discs`` names."""
        reach = self.config.unknown_yaw_reach
        if reach <= 0:
            return {}
        cubes = _observed_cubes(annotation) if self.config.yaw_discs == "cubes" else unknown_yaw_cubes(annotation)
        return dict.fromkeys(cubes, reach)

    def collision_impulses(self, annotation: VideoAnnotation, truth: VideoTruth) -> list[tuple[float, float]]:
        """Per recorded collision and each of its objects: (true, predicted) velocity change, units/s.

        A diagnostic of the model's contact response with true states in: at the step into
        the first frame a collision is recorded (frame ``c - 1`` to ``c``, observed and future
        collisions), the change of the object's velocity over the previous step's in the
        truth, and in the model's one-step prediction from the true history.  A model that
        only carries objects on (inertia and friction) predicts a change near 0 there.
        Collisions within the model's history of the first frame are skipped.
        """
        frames = (*annotation.motion_trajectory, *truth.future_trajectory)
        tracks = _tracks(annotation, frames)
        ids = sorted(tracks)
        state = np.stack([tracks[k].xyt for k in ids], axis=1)
        actions = launch_actions(state)
        attrs = _attributes(annotation)
        first, fps = frames[0].frame_id, self.config.fps
        out = []
        cache: dict[int, np.ndarray | None] = {}
        for c in (*annotation.collision, *truth.future_collisions):
            t = c.frame_id - first - 1
            if (t < self.history + 1 or t + 1 >= len(frames) or len(c.object_ids) != 2
                    or any(k not in tracks for k in c.object_ids)):  # an object never tracked: nothing to compare
                continue
            if t not in cache:
                cache[t] = self._step(state, actions, attrs, ids, t)
            pred = cache[t]
            for k in c.object_ids:
                i = ids.index(k)
                before = state[t, i, :2] - state[t - 1, i, :2]
                if pred is None or np.isnan(pred[i, 0]) or np.isnan(state[t + 1, i, 0]) or np.isnan(before).any():
                    continue
                out.append((float(np.linalg.norm(state[t + 1, i, :2] - state[t, i, :2] - before) * fps),
                            float(np.linalg.norm(pred[i, :2] - state[t, i, :2] - before) * fps)))
        return out

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
                                                self.config.late_collision_start, contacts, ids, self.config.carry_restitution,
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


def edge_collisions(annotation: VideoAnnotation, frames: Sequence[FrameStates], future: Sequence[Collision],
                    edge_frames: int, tolerance: float, discs: Mapping[int, float] | None = None) -> list[Collision]:
    """The collisions of ``annotation``'s last ``edge_frames`` observed frames still in contact at the first future frame.

    A pair counts when the annotation records a collision of it after frame
    ``last - edge_frames`` (``last`` the last observed frame), its footprints touch in the
    frame ``last + 1`` of ``frames`` (:func:`~physics.video_dynamics.state_collisions` on
    that frame alone: ``tolerance``, ``discs``) and ``future`` has no collision of it; each
    is dated ``last + 1``, located at the midpoint of the two centres there
    (:attr:`RolloutConfig.edge_frames`).  No such frame in ``frames``: none.
    """
    if edge_frames < 0:
        raise ConfigError(f"edge_frames must be >= 0, got {edge_frames}")
    last = annotation.motion_trajectory[-1].frame_id
    first = next((fr for fr in frames if fr.frame_id == last + 1), None)
    if not edge_frames or first is None:
        return []
    touching = {c.object_ids: c for c in state_collisions([first], _shapes(annotation), tolerance, discs=discs)}
    have = {tuple(sorted(c.object_ids)) for c in future}
    out: list[Collision] = []
    for c in annotation.collision:
        pair = tuple(sorted(c.object_ids))
        if c.frame_id > last - edge_frames and pair in touching and pair not in have:
            out.append(touching[pair])
            have.add(pair)
    return out


def _reach_collisions(frames: Sequence[FrameStates], shapes: Mapping[int, str], cfg: RolloutConfig, last: int,
                      future: Sequence[Collision], discs: Mapping[int, float] | None = None) -> list[Collision]:
    """The near passes ``future_reach`` adds to a future rollout's collisions (:attr:`RolloutConfig.future_reach`).

    The collision rule with tolerance ``cfg.future_reach`` over ``frames``; a touch it dates after ``last`` (the
    pair's gap fell below the reach inside the predicted frames) is added unless ``future`` already has a
    collision of the pair within ``collision_gap`` frames of it.  A touch it dates at or before ``last`` (the pair
    already that near in the observed frames) adds nothing and removes nothing.
    """
    have: dict[tuple[int, ...], list[int]] = {}
    for c in future:
        have.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    out: list[Collision] = []
    for c in state_collisions(frames, shapes, cfg.future_reach, cfg.collision_gap, approach_speed=cfg.approach_speed,
                              fps=cfg.fps, discs=discs):
        pair = tuple(sorted(c.object_ids))
        if c.frame_id > last and all(abs(c.frame_id - f) > cfg.collision_gap for f in have.get(pair, ())):
            out.append(c)
            have.setdefault(pair, []).append(c.frame_id)
    return out


def _counterfactual_reach_collisions(frames: Sequence[FrameStates], shapes: Mapping[int, str], cfg: RolloutConfig,
                                     last: int, have: Sequence[Collision], discs: Mapping[int, float] | None = None,
                                     ) -> list[Collision]:
    """The near passes ``counterfactual_reach`` adds to a counterfactual's collisions (:attr:`RolloutConfig.counterfactual_reach`).

    The collision rule with tolerance ``cfg.counterfactual_reach`` over the counterfactual's ``frames``; a touch it
    dates after ``last`` (the last observed frame) is added unless ``have`` already holds a collision of the pair
    within ``collision_gap`` frames of it.  A touch dated at or before ``last`` (inside the video, or the pair
    already that near at its end) adds nothing and removes nothing.
    """
    near: dict[tuple[int, ...], list[int]] = {}
    for c in have:
        near.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    out: list[Collision] = []
    for c in state_collisions(frames, shapes, cfg.counterfactual_reach, cfg.collision_gap, fps=cfg.fps, discs=discs):
        pair = tuple(sorted(c.object_ids))
        if c.frame_id > last and all(abs(c.frame_id - f) > cfg.collision_gap for f in near.get(pair, ())):
            out.append(c)
            near.setdefault(pair, []).append(c.frame_id)
    return out


def _pair_gaps(frames: Sequence[FrameStates], shapes: Mapping[int, str], discs: Mapping[int, float] | None = None,
               ) -> tuple[list[dict[tuple[int, int], float]], list[dict[tuple[int, int], tuple[float, ...]]]]:
    """Per frame, each pair's footprint gap (as the state rule, ``discs`` included) and its centres' midpoint."""
    discs = dict(discs or {})
    gaps: list[dict[tuple[int, int], float]] = []
    mids: list[dict[tuple[int, int], tuple[float, ...]]] = []
    for fr in frames:
        by = fr.by_id()
        ids = sorted(by)
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
        if not pairs:
            gaps.append({})
            mids.append({})
            continue
        xa = np.array([[*by[a].location[:2], yaw_of(by[a].orientation)] for a, _ in pairs])
        xb = np.array([[*by[b].location[:2], yaw_of(by[b].orientation)] for _, b in pairs])
        cube_a = np.array([shapes.get(a) == "cube" and a not in discs for a, _ in pairs])
        cube_b = np.array([shapes.get(b) == "cube" and b not in discs for _, b in pairs])
        g = footprint_gaps(xa, xb, cube_a, cube_b)
        g = g + np.array([2.0 * HALF_EXTENT - discs.get(a, HALF_EXTENT) - discs.get(b, HALF_EXTENT) for a, b in pairs])
        gaps.append(dict(zip(pairs, g.tolist(), strict=True)))
        mids.append({(a, b): tuple(round(float(x), 5) + 0.0 for x in (np.asarray(by[a].location) + np.asarray(by[b].location)) / 2.0)
                     for a, b in pairs})
    return gaps, mids


def near_miss_candidates(frames: Sequence[FrameStates], shapes: Mapping[int, str], tolerance: float, fps: float,
                         eligible: Callable[[tuple[int, int], int], bool], discs: Mapping[int, float] | None = None,
                         start: int | None = None) -> list[tuple[Collision, tuple[float, float, float, float]]]:
    """The rollout's near misses, each with its score features (:attr:`RolloutConfig.near_miss`).

    A near miss of a pair is a frame ``s`` (not the first or last of ``frames``) where its footprint
    gap ``g`` is a local minimum (``g(s - 1) >= g < g(s + 1)``), above ``tolerance`` (the state rule
    finds no touch there) and at most ``NEAR_MISS_MAX_GAP``, with ``eligible(pair, frame_id)``
    true.  Features: ``g`` (units), the closing speed over the ``NEAR_MISS_SPAN`` frames before
    (units/s; fewer frames where the pair is not there as long), the seconds from ``start`` (a
    frame id: the first predicted frame; ``None``: the first frame of ``frames``) to ``s``, and
    the pair's spheres (0-2).  Each as a :class:`Collision` dated ``s`` at the centres' midpoint.
    """
    if len(frames) < 3:
        return []
    gaps, mids = _pair_gaps(frames, shapes, discs)
    t0 = frames[0].frame_id if start is None else start
    out = []
    for s in range(1, len(frames) - 1):
        f = frames[s].frame_id
        for pair, g in gaps[s].items():
            before, after = gaps[s - 1].get(pair), gaps[s + 1].get(pair)
            if (before is None or after is None or not tolerance < g <= NEAR_MISS_MAX_GAP or before < g or after <= g
                    or not eligible(pair, f)):
                continue
            k = max(j for j in range(1, NEAR_MISS_SPAN + 1) if s - j >= 0 and all(pair in gaps[s - i] for i in range(1, j + 1)))
            speed = (gaps[s - k][pair] - g) * fps / k
            spheres = sum(shapes.get(o) == "sphere" for o in pair)
            out.append((Collision(pair, f, mids[s][pair]), (g, speed, (f - t0) / fps, float(spheres))))
    return out


def near_miss_collisions(candidates: Sequence[tuple[Collision, tuple[float, float, float, float]]],
                         weights: Sequence[float], ruled: Sequence[Collision], collision_gap: int) -> list[Collision]:
    """The near misses (:func:`near_miss_candidates`) whose score ``w0 + w . features`` is above 0.

    One of a pair within ``collision_gap`` frames of a collision ``ruled`` (or one taken here)
    already has is skipped; the best-scored first.
    """
    if len(weights) != 1 + NEAR_MISS_FEATURES:
        raise ConfigError(f"near_miss needs {1 + NEAR_MISS_FEATURES} weights (bias, gap, closing speed, seconds, "
                          f"spheres), got {len(weights)}")
    dates: dict[tuple[int, ...], list[int]] = {}
    for c in ruled:
        dates.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    scored = [(weights[0] + float(np.dot(weights[1:], x)), c) for c, x in candidates]
    out = []
    for score, c in sorted(scored, key=lambda t: -t[0]):
        pair = tuple(sorted(c.object_ids))
        if score <= 0 or any(abs(c.frame_id - d) <= collision_gap for d in dates.get(pair, ())):
            continue
        dates.setdefault(pair, []).append(c.frame_id)
        out.append(c)
    return sorted(out, key=lambda c: (c.frame_id, c.object_ids))


def lookahead_collisions(frames: Sequence[FrameStates], shapes: Mapping[int, str], lookahead: int,
                         min_speed: float, fps: float, tolerance: float, collision_gap: int,
                         ruled: Sequence[Collision], eligible: Callable[[tuple[int, int], int], bool], discs: Mapping[int, float] | None = None,
                         ) -> list[Collision]:
    """Near misses of closing pairs, by a tolerance that grows with the closing speed (:attr:`RolloutConfig.lookahead`).

    At each frame ``f`` (after the first) and each pair present at ``f`` and ``f - 1`` with
    ``eligible(pair, frame_id)`` true: the footprint gap ``g`` (centres' footprints,
    :func:`~physics.video_dynamics.footprint_gaps`, ``discs`` as the state rule) is above
    ``tolerance``, it closed by ``c = g(f - 1) - g(f)`` units over the frame with
    ``c * fps >= min_speed``, and ``g - lookahead * c <= tolerance``: the pair would touch
    within ``lookahead`` frames at that rate.  Such a pair is a collision dated at its
    smallest gap among frames ``f .. f + lookahead`` (where eligible), located at the centres'
    midpoint there, unless ``ruled`` (the state rule's collisions) or an earlier one found
    here has a collision of the pair within ``collision_gap`` frames of that date.

    Returns:
        The added collisions in frame order, ``object_ids`` sorted.

    Raises:
        ConfigError: ``lookahead`` < 0, ``min_speed`` <= 0, ``fps`` <= 0, ``tolerance`` < 0
            or ``collision_gap`` < 1.
    """
    if lookahead < 0 or not min_speed > 0 or not fps > 0 or tolerance < 0 or collision_gap < 1:
        raise ConfigError(f"lookahead_collisions needs lookahead >= 0, min_speed > 0, fps > 0, tolerance >= 0 and "
                          f"collision_gap >= 1; got {lookahead}, {min_speed}, {fps}, {tolerance}, {collision_gap}")
    if not lookahead or len(frames) < 2:
        return []
    gaps, mids = _pair_gaps(frames, shapes, discs)
    dates: dict[tuple[int, int], list[int]] = {}
    for c in ruled:
        dates.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    out: list[Collision] = []
    for t in range(1, len(frames)):
        f = frames[t].frame_id
        for pair, g in gaps[t].items():
            before = gaps[t - 1].get(pair)
            if before is None or g <= tolerance or not eligible(pair, f):
                continue
            closing = before - g
            if closing * fps < min_speed or g - lookahead * closing > tolerance:
                continue
            window = [s for s in range(t, min(t + lookahead, len(frames) - 1) + 1)
                      if pair in gaps[s] and eligible(pair, frames[s].frame_id)]
            best = min(window, key=lambda s: gaps[s][pair])
            date = frames[best].frame_id
            if any(abs(date - d) <= collision_gap for d in dates.get(pair, ())):
                continue
            dates.setdefault(pair, []).append(date)
            out.append(Collision(pair, date, mids[best][pair]))
    return sorted(out, key=lambda c: (c.frame_id, c.object_ids))


def fitted_start(observed: np.ndarray, t_pred: int, history: int, window: int, residual: float) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with the x, y of the history before frame ``t_pred`` fitted (``RolloutConfig.start_fit``).

    Per object seen in all of the ``window`` frames before ``t_pred``: a parabola in time
    through those centres (least squares, x and y apart); where every centre lies within
    ``residual`` of it, the history frames (``t_pred - 1 - history .. t_pred - 1``) take the
    fitted centres.  Objects with a gap in the window, or a worse fit (a touch, a launch),
    keep their observed history.  ``window`` must exceed ``history + 1``.
    """
    if window < history + 2:
        raise ConfigError(f"start_fit {window} frames cannot fit a history of {history + 1} frames; need >= {history + 2}")
    out = observed.copy()
    lo = t_pred - window
    if lo < 0:
        return out
    t = np.arange(window, dtype=float) - (window - 1)  # the last observed frame at 0
    basis = np.stack([np.ones(window), t, t * t], axis=1)  # [W, 3]
    for i in range(observed.shape[1]):
        xy = observed[lo:t_pred, i, :2]
        if np.isnan(xy).any():
            continue
        coef, *_ = np.linalg.lstsq(basis, xy, rcond=None)
        fit = basis @ coef
        if np.linalg.norm(fit - xy, axis=1).max() <= residual:
            out[t_pred - 1 - history : t_pred, i, :2] = fit[window - 1 - history :]
    return out


def velocity_fitted_start(observed: np.ndarray, t_pred: int, history: int, window: int, last_collision: np.ndarray,
                          moving: np.ndarray, max_residual: float = 0.0) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with each moving object's history before ``t_pred`` shaped by a parabola (``RolloutConfig.start_velocity_fit``).

    Per object ``i`` with ``moving[i]``: its contiguous observed centres ending at frame
    ``t_pred - 1``, only those after frame ``last_collision[i] + 1`` (frame positions; -1:
    none), the last ``window`` of them; with at least ``VELOCITY_FIT_MIN``, a parabola in time
    is fitted to them (least squares, x and y apart) and the history frames
    ``t_pred - 1 - j`` (``j = 1 .. history``) become the last centre plus the parabola's
    change from frame ``t_pred - 1`` back to them.  The last centre, other objects and every
    other frame are unchanged.  ``max_residual`` > 0 (``RolloutConfig.counterfactual_fit_residual``):
    an object whose fitted parabola lies farther than that from one of its fitted centres keeps
    its observed history (the span holds a bounce or a jump of the track that no recorded
    collision cut off).
    """
    if window < VELOCITY_FIT_MIN:
        raise ConfigError(f"start_velocity_fit {window} frames: a parabola needs at least {VELOCITY_FIT_MIN}")
    last = t_pred - 1
    out = observed.copy()
    if last - history < 0:
        return out
    for i in range(observed.shape[1]):
        if not moving[i] or np.isnan(observed[last, i, 0]):
            continue
        lo = _fit_span(observed, i, last, last_collision[i] + 1, window)
        if lo is None:
            continue
        k = last - lo + 1
        t = np.arange(k, dtype=float) - (k - 1)  # the last observed frame at 0
        coef = np.polyfit(t, observed[lo : last + 1, i, :2], 2)  # [3, 2]
        if max_residual > 0:
            fitted = np.stack([np.polyval(coef[:, d], t) for d in range(2)], axis=1)
            if np.linalg.norm(fitted - observed[lo : last + 1, i, :2], axis=1).max() > max_residual:
                continue
        back = -np.arange(history, 0, -1, dtype=float)  # -history .. -1
        shape = np.stack([np.polyval(coef[:, d], back) - coef[2, d] for d in range(2)], axis=1)
        out[last - history : last, i, :2] = observed[last, i, :2] + shape
    return out


def _parabola_velocity(centres: np.ndarray, at: float) -> np.ndarray:
    """Velocity ``[2]`` (units a frame) at frame offset ``at`` of a parabola fitted to ``centres`` ``[K, 2]`` (frames 0 .. K-1)."""
    coef = np.polyfit(np.arange(len(centres), dtype=float), centres, 2)  # [3, 2]
    return 2.0 * coef[0] * at + coef[1]


def _fit_span(observed: np.ndarray, i: int, end: int, after: int, window: int) -> int | None:
    """First frame of object ``i``'s contiguous observed centres ending at ``end``, after frame ``after``, at most ``window``.

    None when fewer than ``VELOCITY_FIT_MIN`` frames qualify (or the object is absent at ``end``).
    """
    if end < 0 or np.isnan(observed[end, i, 0]):
        return None
    lo = end
    while lo - 1 >= 0 and lo - 1 > after and not np.isnan(observed[lo - 1, i, 0]) and end - lo + 1 < window:
        lo -= 1
    return lo if end - lo + 1 >= VELOCITY_FIT_MIN else None


def late_collision_start(observed: np.ndarray, t_pred: int, history: int, window: int, frames: int,
                         contacts: Mapping[int, Mapping[int, Sequence[int]]], ids: Sequence[int], restitution: float,
                         min_speed: float) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with the history of each object struck in the last ``frames`` observed frames set from an exchange (``RolloutConfig.late_collision_start``).

    For object ``i`` whose last recorded collision (frame ``c``, one partner ``j``) lies in the
    last ``frames`` observed frames (``c >= t_pred - frames``) and leaves fewer than
    ``VELOCITY_FIT_MIN`` centres after ``c + 1`` (so :func:`velocity_fitted_start` cannot fit
    it), both objects' velocities at ``c`` come from parabolas fitted to their last ``window``
    contiguous centres before ``c`` (after each one's earlier collision + 1, at least
    ``VELOCITY_FIT_MIN``).  When the pair closes in along the line of their centres at ``c`` at
    ``min_speed`` (units a frame) or faster, ``i``'s history frames become its last centre minus
    the equal-mass exchange's velocity (``restitution``, as ``contact_carry``) times 1 ..
    ``history``.  Otherwise (no approach: a phantom), an object with two partners at ``c``,
    one absent at ``c`` or at the last frame, or too few centres for a fit keeps its history;
    so do the last centres and every other frame.  ``contacts``: ``object id -> partner id ->
    frame positions`` (:func:`_contact_frames`); ``ids``: the object id of each column.
    """
    if window < VELOCITY_FIT_MIN:
        raise ConfigError(f"late_collision_start needs start_velocity_fit >= {VELOCITY_FIT_MIN}, got {window}")
    last = t_pred - 1
    out = observed.copy()
    if last - history < 0:
        return out
    col = {k: n for n, k in enumerate(ids)}

    def before(k: int, c: int) -> int:
        return max([f for fr in contacts.get(k, {}).values() for f in fr if f < c], default=-1)

    for i, k in enumerate(ids):
        if np.isnan(observed[last, i, 0]):
            continue
        c = before(k, t_pred)
        if c < t_pred - frames or last - (c + 2) + 1 >= VELOCITY_FIT_MIN:  # none late, or enough centres to fit
            continue
        partners = [o for o, fr in contacts.get(k, {}).items() if c in fr]
        if len(partners) != 1 or partners[0] not in col:
            continue
        j = col[partners[0]]
        if np.isnan(observed[c, i, 0]) or np.isnan(observed[c, j, 0]):
            continue
        vel = []
        for n, m in ((i, k), (j, partners[0])):
            lo = _fit_span(observed, n, c - 1, before(m, c) + 1, window)
            vel.append(None if lo is None else _parabola_velocity(observed[lo:c, n, :2], c - lo))
        if vel[0] is None or vel[1] is None:
            continue
        line = observed[c, j, :2] - observed[c, i, :2]
        dist = float(np.linalg.norm(line))
        closing = float((vel[0] - vel[1]) @ line) / dist if dist > 0 else 0.0
        if closing < min_speed:  # no approach before the contact: a phantom, history kept
            continue
        v = vel[0] - 0.5 * (1.0 + restitution) * closing * line / dist
        steps = np.arange(history, 0, -1, dtype=float)[:, None]  # history .. 1 frames back
        out[last - history : last, i, :2] = observed[last, i, :2] - steps * v
    return out


def _jittered(observed: np.ndarray, t_pred: int, history: int, shift: np.ndarray, turn: np.ndarray,
              speed: np.ndarray) -> np.ndarray:
    """``observed`` ``[T, N, 3]`` with the history before frame ``t_pred`` perturbed (see ``_run``)."""
    out = observed.copy()
    lo, last = max(t_pred - 1 - history, 0), t_pred - 1
    if last < 0:
        return out
    anchor = observed[last, :, :2]
    rel = observed[lo : last + 1, :, :2] - anchor  # [H+1, N, 2]
    c, s = np.cos(turn), np.sin(turn)
    turned = np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], axis=-1)
    out[lo : last + 1, :, :2] = anchor + turned * (1.0 + speed)[:, None] + shift
    return out


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


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> DynamicsModel:
    model, _meta = load_model(path)
    return model


def rollout_config(settings: Mapping[str, Any] | None = None) -> RolloutConfig:
    """:class:`RolloutConfig` with ``settings`` (field name -> value) changed from the defaults.

    Raises:
        ConfigError: a name that is no field, or a value the config refuses.
    """
    fields = {f.name for f in dataclasses.fields(RolloutConfig)}
    unknown = sorted(set(settings or {}) - fields)
    if unknown:
        raise ConfigError(f"PropNet rollout settings {unknown} unknown; known: {', '.join(sorted(fields))}")
    return dataclasses.replace(RolloutConfig(), **(settings or {}))


def _propnet(truth: VideoTruth | None, checkpoint: PathLike | None,
             settings: Mapping[str, Any] | None = None) -> PropNetVideoDynamics:
    return PropNetVideoDynamics.load(checkpoint, rollout_config(settings))


register_video_dynamics("propnet", _propnet, help="learned PropNet over object states (the shipped checkpoint unless one is given)")


# ---------------------------------------------------------------------- training
def train_video_model(
    model_name: str,
    videos: Sequence[tuple[VideoAnnotation, VideoTruth]] | Sequence[Trajectory],
    out_dir: PathLike,
    config: TrainConfig | None = None,
    *,
    valid_fraction: float = 0.1,
    overrides: dict | None = None,
    resume: bool = False,
    meta: dict | None = None,
    progress: bool = True,
    counterfactuals: bool = False,
    contact_weight: float = 1.0,
    contact_after: int = 10,
    contact_lead: int = 0,
) -> dict:
    """Train simulator ``model_name`` (``propnet``) on videos' object trajectories with the shared loop.

    Each video (observed plus future frames) is one :func:`video_trajectory`, and with
    ``counterfactuals`` each of its counterfactual re-runs one more
    (:func:`counterfactual_trajectory`); the last ``valid_fraction`` of the videos
    (with their counterfactuals) validate (the loop keeps the best epoch in ``model.pt``).

    Args:
        model_name: Any of :data:`physics.models.MODELS`.
        videos: ``(annotation, truth)`` per video (:func:`load_video_split`), or trajectories
            (:func:`load_trajectory_pack`; ``meta["video"]`` groups a video's counterfactuals with it).
        out_dir: Run folder (``checkpoint.pt``, ``model.pt``, ``loss.jsonl``).
        config: Optimisation settings (default: :class:`TrainConfig`'s).
        valid_fraction: Share of the videos held out for validation (0: none).
        overrides: ModelConfig fields changed from the ``clevrer`` preset.
        counterfactuals: Train on the truth's counterfactual re-runs too (pairs only; a pack holds what it holds).
        contact_weight: Relative chance of drawing a step around a contact (:func:`contact_step_weights`;
            1: every step alike).
        contact_after: Frames after a contact that count as around it.
        contact_lead: With L > 0 a contact sample starts from L frames before a contact
            (:func:`contact_step_weights`'s ``lead``; 0: the window ends no earlier than the contact).
            With ``config.velocity_weight`` > 0 the loss also charges the velocity error of the
            frames ``c .. c + contact_after`` of every collision ``c`` (:func:`contact_velocity_frames`),
            and the metadata records the weight.

    Raises:
        DataError: fewer than two videos, or a video unfit for training.
        ConfigError: ``contact_lead`` below 0, or above 0 with ``contact_weight`` 1 (no contact samples to lead).
    """
    config = config or TrainConfig()
    if contact_lead < 0 or (contact_lead and contact_weight == 1.0):
        raise ConfigError(f"contact_lead must be >= 0 and needs contact_weight != 1 (--contact-weight): got lead "
                          f"{contact_lead}, weight {contact_weight}")
    if videos and isinstance(videos[0], Trajectory):
        trajs = list(videos)
    else:
        trajs = [t for a, tr in videos for t in video_trajectories(a, tr, counterfactuals)]
    groups: dict = {}
    for t in trajs:
        groups.setdefault(t.meta.get("video", t.meta.get("name")), []).append(t)
    order = list(groups)
    if len(order) < 2:
        raise DataError(f"training the video PropNet needs at least 2 videos, got {len(order)}")
    n_valid = int(round(len(order) * valid_fraction)) if valid_fraction > 0 else 0
    n_valid = min(max(n_valid, 1 if valid_fraction > 0 else 0), len(order) - 1)
    if contact_weight != 1.0:
        trajs = [dataclasses.replace(t, meta={**t.meta, "step_weights": contact_step_weights(
            t, contact_weight, contact_after, horizon=config.rollout_steps, lead=contact_lead).tolist()}) for t in trajs]
    if config.velocity_weight > 0:
        trajs = [dataclasses.replace(t, meta={**t.meta, "velocity_frames": contact_velocity_frames(
            t, contact_after).tolist()}) for t in trajs]
    if contact_weight != 1.0 or config.velocity_weight > 0:
        groups = {}
        for t in trajs:
            groups.setdefault(t.meta.get("video", t.meta.get("name")), []).append(t)
    train_trajs = [t for k in order[: len(order) - n_valid] for t in groups[k]]
    valid_trajs = [t for k in order[len(order) - n_valid :] for t in groups[k]]
    torch.manual_seed(config.seed)
    mcfg = preset(WORLD, model_name, dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM, edge_attr_dim=0, **(overrides or {}))
    model = make_model(model_name, mcfg)
    info = {**(meta or {}), "world": WORLD, "train_videos": len(order) - n_valid, "valid_videos": n_valid,
            "train_trajectories": len(train_trajs), "contact_weight": contact_weight, "contact_after": contact_after,
            **({"contact_lead": contact_lead} if contact_lead else {}),
            **({"velocity_weight": config.velocity_weight} if config.velocity_weight > 0 else {})}
    return train(model, train_trajs, valid_trajs, out_dir, config, resume=resume, meta=info, progress=progress)
