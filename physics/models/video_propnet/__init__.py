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

Modules
-------
* :mod:`~physics.models.video_propnet.config`: the constants, :class:`RolloutConfig`, :func:`rollout_config`.
* :mod:`~physics.models.video_propnet.trajectories`: states as arrays, launches, trajectories from
  annotations, contact weights, the compact trajectory files, :func:`load_video_split`.
* :mod:`~physics.models.video_propnet.spin`: the spin input (sliding spheres; off by default).
* :mod:`~physics.models.video_propnet.starts`: the state a rollout starts from (fits, jitter).
* :mod:`~physics.models.video_propnet.collisions`: the collision rules over rolled-out states.
* :mod:`~physics.models.video_propnet.free_slide`: the friction prior for free objects of a future rollout
  (off by default).
* :mod:`~physics.models.video_propnet.rest_hold`: objects resting at the video's end held in place in a future
  rollout (off by default).
* :mod:`~physics.models.video_propnet.heading_hold`: free objects of a future rollout kept on their heading (off by
  default).
* :mod:`~physics.models.video_propnet.rollout`: the rollout loop :class:`PropNetVideoDynamics` inherits (observed
  frames followed until influenced, one-step predictions, frames from the arrays), its contact carry.
* :mod:`~physics.models.video_propnet.dynamics`: :class:`PropNetVideoDynamics` (futures, counterfactuals, loading),
  the ``propnet`` registration.
* :mod:`~physics.models.video_propnet.augment`: training windows turned about the vertical axis
  (``--augment-rotate``; off by default).
* :mod:`~physics.models.video_propnet.training`: :func:`train_video_model`, :func:`check_valid_fraction`.
"""

from __future__ import annotations

# One module a concept (config, trajectories, spin, starts, collisions, free_slide, rest_hold, heading_hold,
# rollout, dynamics, augment, training); this module re-exports every name callers imported from the single module it was,
# private ones included.
# ruff: noqa: F401
from physics.models.video_propnet.augment import random_rotation, rotate_windows
from physics.models.video_propnet.collisions import (
    _counterfactual_reach_collisions,
    edge_collisions,
    lookahead_collisions,
    near_miss_candidates,
    near_miss_collisions,
    unrecorded_edge_collisions,
)
from physics.models.video_propnet.config import (
    CARRY_SCOPES,
    FREE_SLIDES,
    HEADING_HOLDS,
    LAUNCH_CLEARANCE,
    LAUNCH_STEP,
    NEAR_MISS_FEATURES,
    NEAR_MISS_MAX_GAP,
    NEAR_MISS_SPAN,
    NODE_ATTR_DIM,
    REST_STEP,
    ROLL_RATIO,
    ROLL_SPEED,
    SHIPPED_CHECKPOINT,
    SLIDE_INPUT,
    SPIN_CHANNEL,
    SPIN_MIN_SPEED,
    SPIN_SLOPE,
    SPIN_WINDOW,
    STATE_DIM,
    SYMMETRY,
    VELOCITY_FIT_MIN,
    WORLD,
    WORLD_RESTITUTION,
    YAW_DISCS,
    YAW_INPUTS,
    RolloutConfig,
    rollout_config,
)
from physics.models.video_propnet.dynamics import PropNetVideoDynamics
from physics.models.video_propnet.free_slide import (
    ROLL_DECEL,
    SLIDE_DECEL,
    FreeSlide,
    prior_deceleration,
)
from physics.models.video_propnet.heading_hold import HeadingHold
from physics.models.video_propnet.rest_hold import RestHold
from physics.models.video_propnet.rollout import _Carry
from physics.models.video_propnet.spin import (
    grow_spin_input,
    sliding_read,
    sliding_states,
    spin_actions,
)
from physics.models.video_propnet.starts import (
    fitted_start,
    late_collision_start,
    velocity_fitted_start,
)
from physics.models.video_propnet.training import check_valid_fraction, train_video_model
from physics.models.video_propnet.trajectories import (
    PACK_FORMAT,
    _make_trajectory,
    _tracks,
    contact_step_weights,
    contact_velocity_frames,
    counterfactual_trajectory,
    launch_actions,
    load_trajectory_pack,
    load_video_split,
    save_trajectory_pack,
    unknown_yaw_cubes,
    video_trajectories,
    video_trajectory,
)
from physics.video_dynamics import CUBE_MEAN_REACH

__all__ = [
    "FREE_SLIDES",
    "HEADING_HOLDS",
    "ROLL_DECEL",
    "SLIDE_DECEL",
    "FreeSlide",
    "HeadingHold",
    "RestHold",
    "prior_deceleration",
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
    "WORLD_RESTITUTION",
    "unknown_yaw_cubes",
    "YAW_DISCS",
    "CARRY_SCOPES",
    "edge_collisions",
    "unrecorded_edge_collisions",
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
    "check_valid_fraction",
    "rotate_windows",
    "random_rotation",
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

