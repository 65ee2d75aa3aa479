"""The video PropNet's constants and its rollout settings (:class:`RolloutConfig`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.video_dynamics import COLLISION_GAP, CONTACT_TOLERANCE, CUBE_MEAN_REACH, HALF_EXTENT
from physics.worlds.clevr_properties import MATERIALS, SHAPES
from physics.worlds.clevrer_world import ClevrerConfig

WORLD = "clevrer"  # the world preset (physics.models.config) the video PropNet is built from
STATE_DIM = 3  # x, y, orientation channel
NODE_ATTR_DIM = len(SHAPES) + len(MATERIALS)
SYMMETRY = {"cube": 4}  # quarter-turn symmetry: the orientation channel is yaw unwrapped modulo 2 pi / 4
YAW_DISCS = ("unknown", "cubes")  # RolloutConfig.yaw_discs: which cubes the collision rule takes as discs
YAW_INPUTS = ("given", "zeros")  # RolloutConfig.yaw_input: what the PropNet's orientation input gets
CARRY_SCOPES = ("all", "future")  # RolloutConfig.carry_scope / lookahead_scope: which rollouts the setting applies to
FREE_SLIDES = ("off", "spheres", "all")  # RolloutConfig.free_slide: which free objects the friction prior moves
HEADING_HOLDS = ("off", "spheres", "all")  # RolloutConfig.heading_hold: which free objects keep their last heading
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
# The world's median normal restitution over its recorded collisions (separation speed along the centre line 4 frames
# after a contact over the closing speed 2 frames before; 578 collisions of development pool 44086, closing at 0.5
# units/s or more): a value for RolloutConfig.late_collision_restitution, not a default.
WORLD_RESTITUTION = 0.18
ROLL_SPEED = 5.0 / 7.0  # a solid sphere launched without spin rolls once its speed fell to 5/7 of its launch speed
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "video" / "clevrer_propnet.pt"


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
            read it.  Meant for the near misses of late chained contacts, where the rollout brings the true
            pair within a few hundredths of a unit without touching.  Off here; 0.15 for objects perceived
            from pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``), where it answers more predictive
            questions on development and fresh pools (``docs/results/clevrer.md``, twenty-eighth session,
            nsdr9 and nsdr11).
        counterfactual_reach: Counterfactual rollouts only (0: off, the default): a pair the rollout brings within
            this footprint distance after the last observed frame (where a counterfactual is a future rollout of
            every object but the removed one) is a collision too, next to the ones the collision rule
            (``contact_tolerance``) finds, which it never removes (:func:`_counterfactual_reach_collisions`); a
            pair already that near at the video's end adds nothing.  Inside the video the plain rule alone
            (there a reach invents as many pairs as it finds).  The counterfactual's analogue of
            ``future_reach``; futures, observed frames and rolled-out states never read it.  An option, off:
            0.03 gains too few counterfactual answers on development pools to pass its gate
            (``docs/results/clevrer.md``, twenty-ninth session, nsdr14).
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
            frames).  Counterfactuals are one rollout.
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
            from pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``), where it halves the median error of
            the start velocity and answers more predictive questions (``docs/results/clevrer.md``,
            twenty-second session, nsdrv).
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
            pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``), where it answers more counterfactual
            questions (``docs/results/clevrer.md``, twenty-seventh session, nsdr8).
        counterfactual_fit_residual: With ``counterfactual_velocity_fit`` (0: off, the default; else scene
            units > 0): an object whose fitted parabola lies farther than this from one of the centres it
            was fitted to keeps its observed history at its first predicted frame (a one-frame
            difference), as without the fit: such a span holds a bounce or a jump of the track that no
            perceived collision cut off, where the fit's start errs far more than the raw one.
            An option, off: 0.04 answers about as many counterfactual questions as without it on
            development pools from pixels (``docs/results/clevrer.md``, twenty-eighth session, nsdr10).
        late_collision_start: Future rollouts only, with ``start_velocity_fit`` (0: off, the default):
            an object whose last recorded collision lies in the last ``late_collision_start`` observed
            frames, too late for ``start_velocity_fit`` to fit, starts at the velocity the equal-mass
            exchange (``late_collision_restitution``) gives the two objects' parabola-fitted velocities before
            the contact, if the pair was closing in at ``carry_min_speed`` or faster
            (:func:`late_collision_start`); a struck object read at rest gets its velocity too.
            Meant for the contacts at the video's end the PropNet does not bounce; struck 2 frames or
            more before the end, the observed start is the better one (``docs/results/clevrer.md``,
            twenty-fourth session, nsdr2).
        late_collision_restitution: The normal restitution of ``late_collision_start``'s exchange (a number from 0
            to 1; None, the default: ``carry_restitution``); only with ``late_collision_start``.  The world's
            contacts are far less elastic than its bodies' 0.7 x 0.7: over 578 recorded collisions of development
            videos the separation speed along the centre line 4 frames after a contact is a median 0.18 of the
            closing speed before it (``WORLD_RESTITUTION``), so pairs the world keeps together after a late
            contact (a striker pushing on) are sent apart by the carry's 0.49.  An option, off: with
            ``late_collision_start`` 5 and 0.18 it answers fewer predictive questions on development pools (it also
            exchanges contacts the perceiver dates early and the first link of a chain;
            ``docs/results/clevrer.md``, thirty-fourth session, nsdr24).
        unknown_yaw_reach: With a value above 0, a cube whose annotation never gives its yaw
            (orientation exactly zero at every observed frame it is in: the pixel perceiver
            writes zeros, ``perception.video.annotate``) is a disc of this radius in the
            collision rule of futures and counterfactuals, instead of a square at yaw 0
            whose reach errs by up to 0.1 units either way.  0: the square at the given yaw.
            Default 0.315, the square's reach averaged over directions, which answers more
            questions from pixels; true annotations give every cube a yaw and are unchanged
            (``docs/results/clevrer.md``, sixteenth session).
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
            one a frame or two before the world in about a quarter.  Counterfactuals are
            unchanged.  0 here (true annotations date collisions as the world does); NS-DR sets 2
            for annotations perceived from pixels (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``),
            where it gains a predictive question and loses none (``docs/results/clevrer.md``,
            seventeenth session, nsdr).
        edge_unrecorded: Future rollouts only (``False``, the default): a new touch the future collision rule
            dates at the last observed frame, of a pair the annotation records no collision of within
            ``collision_gap`` frames before it, whose footprints still touch at the first predicted frame (as
            ``edge_frames`` reads it) and which the future has no collision of, is also a future collision, dated
            at that first predicted frame.  The rule reads a touch on the path into a frame (or on at the speed
            before), so it may date a contact one frame before the world does; when that frame is the last
            observed one the future filter (after the last observed frame) drops the touch and the annotation
            lacks it (``docs/results/clevrer.md``, thirty-third session, nsdr21).  Counterfactuals are
            unchanged.
        edge_tolerance: Footprint distance (scene units) at which an ``edge_frames`` pair still touches at
            the first predicted frame (``None``, the default: the future rule's tolerance, ``future_tolerance``
            or else ``contact_tolerance``).  Perceived centres jitter by a few hundredths of a unit, so a pair
            perceived in contact at the video's end can read a hair apart (a few thousandths of a unit) at the
            first predicted frame.  Futures only, with ``edge_frames``; an option, off (``None``): with
            ``edge_frames`` 15 and 0.01 it gains too few predictive answers on development pools to pass its
            gate (``docs/results/clevrer.md``, twenty-ninth session, nsdr12).
        contact_carry: Frames (0: off) over which a contact the rollout itself makes is answered
            by momentum exchange instead of the PropNet: when two predicted objects' footprints
            (discs; a cube one of ``CUBE_MEAN_REACH``) first touch at a frame while closing in at
            ``carry_min_speed`` or faster, both objects' velocities before the touch are exchanged
            along the line of centres as between equal masses with restitution
            ``carry_restitution``, and the next ``contact_carry`` frames move each object on at its
            new velocity; the PropNet takes over from that history.  Meant for the chains of
            collisions the learned rollout cuts short (a struck object or its striker stopped
            short).  The rollouts ``carry_scope`` names.  0 here: on every rollout it loses
            counterfactual questions on a held-out pool; NS-DR sets 3 with ``carry_scope``
            ``"future"`` for annotations perceived from pixels
            (``reasoning.nsdr.PIXEL_ROLLOUT_SETTINGS``), where it gains predictive questions and
            leaves counterfactuals unchanged (``docs/results/clevrer.md``, seventeenth session,
            nsdr3 and nsdr4).
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
            and for pixel perception: it invents more pairs than the missed chain links it finds,
            and answers fewer questions on development pools (``docs/results/clevrer.md``,
            eighteenth session, nsdr).
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
            learned rollout stops short of (a single tolerance adds as many invented ones as it finds).
            Off: a logistic score fitted on development near misses ties the default on held-back
            development videos (``docs/results/clevrer.md``, twenty-fourth session, nsdr3).
        near_miss_scope: Which rollouts ``near_miss`` applies to (``"all"`` or ``"future"``).
        spin_input: For a checkpoint trained on ``video_trajectories(spin=True)`` packs only
            (``nesy data video-trajectories --spin``): each predicted step gives a sphere the
            sliding input (``SLIDE_INPUT``) when its last ``SPIN_WINDOW`` steps of the rollout's
            states (observed or predicted) read as sliding (:func:`sliding_read`), and keeps it
            until its speed fell to ``ROLL_SPEED`` times the window's first speed; then it rolls
            (no re-reading for ``SPIN_WINDOW`` frames).  A collision's change of spin is not
            modelled.  Off: it makes the free slide more accurate but answers no more predictive
            questions from pixels and fewer counterfactual ones (``docs/results/clevrer.md``,
            twenty-second session, nsdr); ``nesy eval clevrer --spin-input``.
        free_slide: Future rollouts only (``"off"``, the default): a physical prior for the free slide after
            the video (:mod:`physics.models.video_propnet.free_slide`).  An object whose footprint stays
            ``free_slide_clearance`` or farther from every other object's, before and after a predicted step,
            moves on along its last step with that step's speed less the world's friction (a sliding object's
            or a rolling sphere's deceleration, fitted on the truth of tune pools), instead of the PropNet's
            step; ``"spheres"``: rolling spheres only (a sphere's spin read from its last steps, as
            ``spin_input`` reads it), ``"all"``: every free moving object.  Objects at rest, near another
            object or carried (``contact_carry``) keep the PropNet's step; counterfactuals never read it.
            Meant for the predicted free slides that stall short of a collision (the learned rollout brakes
            rolling spheres too hard and lets slow cubes and cylinders creep on).  An option, off: ``"spheres"``
            gains too few predictive answers on development pools to pass its gate (``docs/results/clevrer.md``,
            thirtieth session, nsdr16).
        free_slide_clearance: Footprint gap (scene units, > 0) from every other object that makes an object
            free for ``free_slide``.  0.2 with ``"spheres"`` answers as many predictive questions as the
            default on development pools (``docs/results/clevrer.md``, thirty-first session, nsdr18).
        rest_hold: Future rollouts only (0, off, the default): an object at rest at the last observed frame keeps
            its place while every object not so held stays this far or farther from its footprint (scene units);
            once one comes nearer, the PropNet moves it for the rest of the rollout
            (:class:`physics.models.video_propnet.rest_hold.RestHold`).  Meant for resting objects touching each
            other that the PropNet pushes apart.  An option, off: 0.15 gains too few predictive answers on
            development pools to pass its gate (``docs/results/clevrer.md``, thirty-first session, nsdr18).
        heading_hold: Future rollouts only (``"off"``, the default): an object whose footprint stays
            ``heading_hold_clearance`` or farther from every other object's, before and after a predicted step,
            keeps the heading of its last step, at the PropNet's step length
            (:mod:`physics.models.video_propnet.heading_hold`); ``"spheres"``: free spheres only, ``"all"``: every
            free moving object.  Near another object the PropNet's step stands; counterfactuals never read it.
            Meant for the near passes the world makes and the rollout misses because the PropNet turns free
            paths a degree or so every 10 frames.  An option, off: ``"all"`` gains too few predictive answers
            on a development pool with true annotations to pass its gate (``docs/results/clevrer.md``,
            thirty-second session, nsdr20).
        turn_average: Every PropNet step of every rollout (0, off, the default; else K >= 2) is the mean of the
            steps predicted for K copies of the scene turned by ``2 pi j / K`` about the vertical axis, each turned
            back (:func:`physics.models.video_propnet.augment.turn_averaged_step`): equivariant to those turns by
            construction (the learned step alone turns a lone sliding object by a few degrees depending on its
            heading).  K times the network's work per step.  An option, off: 4 answers fewer predictive
            questions on a development pool (``docs/results/clevrer.md``, thirty-third session, nsdr21).
        heading_hold_clearance: Footprint gap (scene units, > 0) from every other object that makes an object
            free for ``heading_hold``; 0.15 is the shipped ``future_reach``.
        carry_restitution: Normal restitution of ``contact_carry`` (the world's 0.7 per body,
            multiplied: 0.49).
        carry_min_speed: Closing speed (units/s) below which a touch is not carried (objects at
            rest side by side).

    The future defaults are one rollout and the counterfactual's collision rule: an ensemble
    with unanimous votes invents fewer collisions but answers fewer predictive questions, and no
    tolerance, closing speed or vote count answers more (``docs/results/clevrer.md``, ninth session).
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
    late_collision_restitution: float | None = None
    counterfactual_velocity_fit: int = 0
    counterfactual_fit_residual: float = 0.0
    unknown_yaw_reach: float = CUBE_MEAN_REACH
    yaw_discs: str = "unknown"
    yaw_input: str = "given"
    edge_frames: int = 0
    edge_tolerance: float | None = None
    edge_unrecorded: bool = False
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
    free_slide: str = "off"
    free_slide_clearance: float = 0.5
    rest_hold: float = 0.0
    heading_hold: str = "off"
    heading_hold_clearance: float = 0.15
    turn_average: int = 0

    @property
    def late_restitution(self) -> float:
        """The restitution ``late_collision_start`` exchanges at: ``late_collision_restitution``, else ``carry_restitution``."""
        lr = self.late_collision_restitution
        return self.carry_restitution if lr is None else float(lr)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        nm = self.near_miss
        if not isinstance(nm, tuple) or (nm and (len(nm) != 1 + NEAR_MISS_FEATURES or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in nm))):
            raise ConfigError(f"RolloutConfig: near_miss must be () (off) or {1 + NEAR_MISS_FEATURES} finite numbers "
                              f"(bias, gap, closing speed, seconds, spheres), got {nm!r}", settings=("near_miss",))
        lc = self.late_collision_start
        if isinstance(lc, bool) or not isinstance(lc, int) or lc < 0:
            raise ConfigError(f"RolloutConfig: late_collision_start must be an integer >= 0 (0: off), got {lc!r}",
                              settings=("late_collision_start",))
        if self.late_collision_start and not self.start_velocity_fit:
            raise ConfigError("RolloutConfig.late_collision_start needs start_velocity_fit > 0 (its fit window)",
                              settings=("late_collision_start", "start_velocity_fit"))
        lr = self.late_collision_restitution
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                               or not 0.0 <= lr <= 1.0):
            raise ConfigError(f"RolloutConfig: late_collision_restitution must be None (the carry's) or a number from 0 "
                              f"to 1, got {lr!r}", settings=("late_collision_restitution",))
        if lr is not None and not self.late_collision_start:
            raise ConfigError("RolloutConfig.late_collision_restitution is read only by late_collision_start, which is "
                              "off (0); set late_collision_start or drop late_collision_restitution",
                              settings=("late_collision_restitution", "late_collision_start"))
        if not isinstance(self.spin_input, bool):
            raise ConfigError(f"RolloutConfig.spin_input must be True or False, got {self.spin_input!r}",
                              settings=("spin_input",))
        for name, choices in (("lookahead_scope", CARRY_SCOPES), ("carry_scope", CARRY_SCOPES), ("near_miss_scope", CARRY_SCOPES),
                              ("yaw_input", YAW_INPUTS), ("yaw_discs", YAW_DISCS), ("free_slide", FREE_SLIDES),
                              ("heading_hold", HEADING_HOLDS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"RolloutConfig: {name} must be one of {choices}, got {getattr(self, name)!r}",
                                  settings=(name,))
        if self.turn_average == 1 or self.turn_average < 0:
            raise ConfigError(f"RolloutConfig: turn_average must be 0 (off) or a number of turns >= 2, got "
                              f"{self.turn_average!r}", settings=("turn_average",))
        for name in ("lookahead", "contact_carry", "edge_frames"):  # frame counts, 0: off
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"RolloutConfig: {name} must be an integer >= 0 (0: off), got {value!r}",
                                  settings=(name,))
        if not (math.isfinite(self.lookahead_min_speed) and self.lookahead_min_speed > 0.0):
            raise ConfigError(f"RolloutConfig: lookahead_min_speed must be a number > 0, got {self.lookahead_min_speed!r}",
                              settings=("lookahead_min_speed",))
        if not (math.isfinite(self.carry_restitution) and 0.0 <= self.carry_restitution <= 1.0):
            raise ConfigError(f"RolloutConfig: carry_restitution must be a number from 0 to 1, got {self.carry_restitution!r}",
                              settings=("carry_restitution",))
        if not (math.isfinite(self.carry_min_speed) and self.carry_min_speed >= 0.0):
            raise ConfigError(f"RolloutConfig: carry_min_speed must be a number >= 0, got {self.carry_min_speed!r}",
                              settings=("carry_min_speed",))
        if self.future_frames < 0 or self.fps < 1 or self.collision_gap < 1 or self.contact_lead < 0:
            raise ConfigError(f"RolloutConfig: future_frames >= 0, fps >= 1, collision_gap >= 1 and contact_lead >= 0 "
                              f"needed, got {self}", settings=("future_frames", "fps", "collision_gap", "contact_lead"))
        if self.start_fit < 0 or not math.isfinite(self.fit_residual) or self.fit_residual <= 0:
            raise ConfigError(f"RolloutConfig: start_fit must be >= 0 and fit_residual a number > 0, got "
                              f"start_fit {self.start_fit}, fit_residual {self.fit_residual}",
                              settings=("start_fit", "fit_residual"))
        for name in ("start_velocity_fit", "counterfactual_velocity_fit"):
            sv = getattr(self, name)
            if isinstance(sv, bool) or not isinstance(sv, int) or sv < 0 or 0 < sv < VELOCITY_FIT_MIN:
                raise ConfigError(f"RolloutConfig: {name} must be 0 (off) or an integer >= {VELOCITY_FIT_MIN}, "
                                  f"got {sv!r}", settings=(name,))
        cr = self.counterfactual_fit_residual
        if isinstance(cr, bool) or not isinstance(cr, (int, float)) or not math.isfinite(cr) or cr < 0:
            raise ConfigError(f"RolloutConfig: counterfactual_fit_residual must be a number >= 0 (0: off), got {cr!r}",
                              settings=("counterfactual_fit_residual",))
        if cr and not self.counterfactual_velocity_fit:
            raise ConfigError("RolloutConfig.counterfactual_fit_residual needs counterfactual_velocity_fit > 0 (its fit)",
                              settings=("counterfactual_fit_residual", "counterfactual_velocity_fit"))
        rh = self.rest_hold
        if isinstance(rh, bool) or not isinstance(rh, (int, float)) or not math.isfinite(rh) or rh < 0:
            raise ConfigError(f"RolloutConfig: rest_hold must be a number >= 0 (0: off), got {rh!r}",
                              settings=("rest_hold",))
        for name in ("free_slide_clearance", "heading_hold_clearance"):
            fc = getattr(self, name)
            if isinstance(fc, bool) or not isinstance(fc, (int, float)) or not math.isfinite(fc) or fc <= 0:
                raise ConfigError(f"RolloutConfig: {name} must be a number > 0, got {fc!r}", settings=(name,))
        if not math.isfinite(self.unknown_yaw_reach) or not 0.0 <= self.unknown_yaw_reach <= HALF_EXTENT:
            raise ConfigError(f"RolloutConfig: unknown_yaw_reach must be a number from 0 (off) to {HALF_EXTENT}, "
                              f"got {self.unknown_yaw_reach}", settings=("unknown_yaw_reach",))
        reals = {"contact_tolerance": self.contact_tolerance, "influence_distance": self.influence_distance,
                 "approach_speed": self.approach_speed, "ensemble_shift": self.ensemble_shift,
                 "ensemble_turn": self.ensemble_turn, "ensemble_speed": self.ensemble_speed}
        if self.future_tolerance is not None:
            reals["future_tolerance"] = self.future_tolerance
        et = self.edge_tolerance
        if et is not None and (isinstance(et, bool) or not isinstance(et, (int, float)) or not math.isfinite(et) or et < 0):
            raise ConfigError(f"RolloutConfig: edge_tolerance must be None (the future rule's) or a number >= 0, got {et!r}",
                              settings=("edge_tolerance",))
        for name in ("future_reach", "counterfactual_reach"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"RolloutConfig: {name} must be a finite number >= 0 (0: off), got {value!r}",
                                  settings=(name,))
        bad = {name: value for name, value in reals.items() if not math.isfinite(value)}
        if bad:  # NaN passes every `< 0` test below and would silently find no collisions
            raise ConfigError(f"RolloutConfig: settings must be finite numbers, got {bad}", settings=tuple(bad))
        if self.future_tolerance is not None and self.future_tolerance < 0 or self.approach_speed < 0:
            raise ConfigError(f"RolloutConfig: future_tolerance and approach_speed must be >= 0, got "
                              f"{self.future_tolerance}, {self.approach_speed}",
                              settings=("future_tolerance", "approach_speed"))
        if self.ensemble < 1 or not 1 <= self.votes <= self.ensemble or self.vote_window < 0 or self.ensemble_starts < 1:
            raise ConfigError(f"RolloutConfig: need ensemble >= 1, 1 <= votes <= ensemble, vote_window >= 0 and "
                              f"ensemble_starts >= 1; got ensemble {self.ensemble}, votes {self.votes}, "
                              f"vote_window {self.vote_window}, ensemble_starts {self.ensemble_starts}",
                              settings=("ensemble", "votes", "vote_window", "ensemble_starts"))
        if min(self.ensemble_shift, self.ensemble_turn, self.ensemble_speed) < 0:
            raise ConfigError("RolloutConfig: ensemble_shift, ensemble_turn and ensemble_speed must be >= 0, got "
                              f"{self.ensemble_shift}, {self.ensemble_turn}, {self.ensemble_speed}",
                              settings=("ensemble_shift", "ensemble_turn", "ensemble_speed"))
        if self.contact_tolerance < 0 or self.influence_distance <= 2.0 * HALF_EXTENT:
            raise ConfigError("RolloutConfig: need contact_tolerance >= 0 and influence_distance > "
                              f"{2.0 * HALF_EXTENT}, got {self.contact_tolerance}, {self.influence_distance}",
                              settings=("contact_tolerance", "influence_distance"))


def rollout_config(settings: Mapping[str, Any] | None = None) -> RolloutConfig:
    """:class:`RolloutConfig` with ``settings`` (field name -> value) changed from the defaults.

    Raises:
        ConfigError: a name that is no field, or a value the config refuses.
    """
    fields = {f.name for f in dataclasses.fields(RolloutConfig)}
    unknown = sorted(set(settings or {}) - fields)
    if unknown:
        raise ConfigError(f"PropNet rollout settings {unknown} unknown; known: {', '.join(sorted(fields))}",
                          settings=unknown)
    return dataclasses.replace(RolloutConfig(), **(settings or {}))
