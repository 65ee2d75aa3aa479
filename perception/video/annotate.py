"""Object tracks -> a CLEVRER annotation (the official ``VideoAnnotation``), collisions included.

Per track (one object), in frame order:

* ``object_property``: the track's colour, material and shape (summed
  probabilities over its observations; with ``rest_votes`` set, over its
  resting observations away from the image border only, and with
  ``edge_weight`` below 1, observations at the border count less:
  :func:`voted_attributes`); ids in order of first appearance;
* ``location``: each observed centre pixel back-projected to the resting
  height of the track's shape (so one misread frame does not move the object to
  another plane), linearly interpolated over the frames it was hidden; the
  object is listed from its first to its last observed frame, except that
  objects enter and leave only across the image border: a track that starts
  after the first frame (ends before the last) with its centre more than
  ``border`` of the image's width inside the image was hidden, and its first
  (last) location is held from the video's first frame (to its last);
* with ``coast_frames`` K > 0 (20 by default): a track whose last observation
  lies inside the image (not within ``border`` of its edge) before the video's
  last frame, and which was moving at its last steady observation, was hidden
  while moving (passed behind another object): from that observation it carries
  on at its velocity there for up to K frames past its last observation, then is
  held (:func:`coast_lost_track`), instead of being held at its last centre, which
  is often the centre of the sliver left visible as it went behind; with
  ``coast_stop`` (on by default) it stops where it meets another object
  (:func:`stop_coasts_at_contact`), and with ``coast_ride`` (off by default) it then
  moves on with the object it met instead of resting;
* ``velocity``: central finite differences over ``2 * velocity_span`` frames
  (one-sided at the ends), times the frame rate; no vertical velocity (objects
  slide on the floor); zero where the track is at rest: every centre within
  ``rest_window`` frames either side lies within ``rest_radius`` of their
  median.  A resting object's perceived centre jitters by about 0.01 units
  from frame to frame (more when another object passes in front or its shadow
  falls near), which finite differences turn into 0.05-0.1 units/s, above the
  executor's "moving" speed (0.05): without the rule a stationary object
  reads as moving (``filter_stationary`` then finds none, and questions about
  "the stationary object" get no answer).  True objects either rest (below
  0.05 units/s in every frame) or slide faster than 0.3 units/s.  With
  ``area_tolerance`` set (off by default), the rest test looks only at steady
  observations (:func:`steady_areas`: mask area within ``area_tolerance`` of
  the median over the window): a passing object cuts a resting one's mask,
  or the proposal network gives the resting one part of the passer's pixels,
  and its centre moves by up to 0.2 units while the object does not; where
  such a track rests it is held at its steady centres' median;
* ``orientation``: zeros, except with ``cube_yaw`` on (off by default): a cube
  track's yaw (0, 0, yaw) from the per-frame fits of its masks
  (:func:`perception.video.yaw.track_yaw`: averaged modulo a quarter turn over
  ``yaw_window`` frames either side, fits overlapping their mask less than
  ``yaw_min_iou`` left out); a cube with no usable fit keeps zeros;
* ``angular_velocity``: not perceived, written as zeros;
* ``inside_camera_view``: the location projects inside the image (the
  annotations' rule);
* ``collision``: :func:`touch_collisions` on these states.

Second partners (``second_partner``, 0 turns it off): an object at rest that one
collision sets moving may be struck by two objects in one frame.  The
perceived centres of three touching objects come out further apart than the
true ones (0.83 against 0.75), so the second touch is missed.  For each
collision found, an object of the pair that rested before it and moves after
it takes a second collision, at the same frame, with every other object that
was closing in on it and came within ``contact_distance + second_partner``
(less ``cube_inset`` per cube) of it over that frame and the next
(:func:`second_partners`).

The collision rule follows the annotations' (``ClevrerWorld.step``): a pair
touching during frame ``f`` is a new collision unless it touched in the
previous ``gap`` frames.  Perceived states have no contact points, so a pair
touches during frame ``f`` when its ground-plane centre offset comes closer
than ``contact_distance`` (less ``cube_inset`` per cube) either along the
straight path from frame ``f - 1`` to ``f`` or carried on from ``f - 1`` at
the velocity it had over the two frames before (objects that meet and bounce
apart within one frame, 40 ms, are seen only so); the collision is located at the
centres' midpoint.  The default contact distance is 0.72, a little over the 0.7 at
which two small spheres touch, because perceived centres of touching objects come
out about 0.02 further apart than the true ones (figures: ``docs/results/clevrer.md``,
"Collision annotations" under "Video perception").
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from perception.video.detect import VIDEO_ATTRIBUTES, FrameDetections, ground_backproject
from perception.video.track import Track, TrackConfig, at_edge
from perception.video.yaw import track_yaw
from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.settings import parse_settings
from physics.worlds.camera import CLEVR_CAMERA, Camera
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)
from physics.worlds.clevrer_world import ClevrerConfig

__all__ = ["VideoPerceptionConfig", "perception_config", "tracking_config", "tracks_to_annotation", "touch_collisions", "at_rest", "settle_excursions",
           "steady_areas", "coast_lost_track", "stop_coasts_at_contact", "video_index", "second_partners", "drop_unstruck", "slow_drift",
           "drop_closing_at_end", "drop_unchanged_passes", "end_slide_velocity", "SLIDE_DECELERATION", "struck_at_end",
           "voted_attributes", "attribute_votes", "distinct_looks", "split_merged_masks",
           "CONTACT_DISTANCE", "STRUCK_FLOOR"]

_DIGITS = 5  # decimals written, as in the annotations
# Deceleration (units/s^2) of an object sliding free on the floor, by shape: cubes and cylinders
# slide (friction 0.5 x 0.5 x g: 0.0966 units/s a frame at 25 fps, the median over 600 frames of
# objects at 0.1-1 units/s in the truth of development seed 16139), spheres roll (0.0064 a frame).
SLIDE_DECELERATION = {"cube": 2.415, "cylinder": 2.415, "sphere": 0.16}
END_SLIDE_MIN = 4  # centres a slide fit at the video's end needs (VideoPerceptionConfig.end_slide)
STRUCK_RESTITUTION = 0.49  # restitution of the exchange that sets a struck object moving (struck_end; contact_carry's)
STRUCK_MIN_SPEED = 0.05  # units/s: a partner closing slower than the executor's moving speed strikes nothing
CONTACT_DISTANCE = 0.72  # VideoPerceptionConfig.contact_distance's default (two small spheres touch at 0.7)
# struck_floor's default at the default contact distance; at another it scales with it (two objects' centres stay
# about a contact distance apart, so the floor is a share of it: 0.5 / 0.72, 0.69)
STRUCK_FLOOR = 0.5


@dataclass(frozen=True)
class VideoPerceptionConfig:
    """How frames become an annotation.

    Args:
        batch: Frames per forward pass of the networks.
        fps: Frame rate of the videos (velocities are in units per second).
        velocity_span: Half-width, in frames, of the finite difference of velocities.
        contact_distance: Ground-plane centre distance (scene units) under which two round
            objects touch (two small spheres touch at 0.7).
        cube_inset: Subtracted from ``contact_distance`` per cube in the pair (a cube's
            centre comes closer: 0.2475 to 0.35 from its sides, by its turn).
        collision_gap: Frames a pair must be apart before a touch is a new collision
            (the annotations' ``collision_gap``).
        border: Tracks that start or end further inside the image than this fraction of
            its width were hidden, not entering or leaving (see the module docstring).
        min_area: Masks covering less of the frame than this fraction are dropped before
            tracking (:func:`perception.video.detect.drop_small`; 0.0013 is about 200 pixels
            at 480x320).
        rest_window: Frames either side of a frame that the rest test looks at (0: no rest test).
        rest_radius: A track is at rest at a frame when its centres over the window all lie
            within this ground-plane distance (scene units) of their median; its velocity is
            then zero.
        excursion_frames: A resting track whose centre leaves its place and comes back to it
            (within ``rest_radius``) after at most ``2 * rest_window + excursion_frames`` frames
            rests throughout (:func:`settle_excursions`): a passing object cut or swelled its
            mask; the object did not move (0: off).
        cube_settle: A touch that involves a cube is dated at the frame the pair stops closing in,
            at most this many frames after the centres first come within the contact distance
            (:func:`touch_collisions`; 0: at that first frame).
        track_height: The tracker matches detections back-projected onto this one plane
            (:func:`perception.video.detect.at_height`; the resting height of round objects),
            so that a shape misread in one frame does not move a detection; None: each at its
            read shape's height.  The annotation's locations come from the pixels at the track's
            shape height either way.
        rest_votes: A track with at least this many observations at rest (the rest test on its
            observed centres) away from the image border takes its colour, material and shape
            from those observations only (:func:`voted_attributes`): a resting object is whole
            and upright, while a sliding one may be tipped over, cut by the border or merged
            with a partner (0: every observation votes).  On by default: it reads a tipped-over
            object right and changes no other (``docs/results/clevrer.md``, thirteenth session).
        edge_weight: Weight of an observation whose centre lies within ``border`` of the image's
            edge in the attribute vote of a track that has observations further in (1: the same
            as any other); an object half out of the image is read from its visible part.
        second_partner: Looser contact distance (added to ``contact_distance``) at which an
            object closing in on a resting object in the frame a collision sets it moving also
            collides with it (:func:`second_partners`; 0: off).  0.2 is the middle of the range
            that finds the development case and adds no other collision; 0 is the other candidate
            default (``docs/results/clevrer.md``, fourteenth session).
        split_reentries: 1 (on): the tracker cuts a track that left the view across the image's
            edge and was continued after a gap by detections reading other attributes (an
            object entering where one left): :func:`perception.video.track.track_detections`
            with the image size and ``border``; 0: off (tracks are never cut).
        area_tolerance: None (the default): the rest test reads every centre.  A fraction: an
            observation whose mask area differs by more than it from the median over the rest
            window is not steady (cut by an object in front, or swollen by a touching
            neighbour's pixels): the rest test ignores its centre, and where the track rests it
            is put at the steady centres' median (:func:`steady_areas`).  Off by default: a
            resting object whose window holds too few steady frames reads as moving
            (``docs/results/clevrer.md``, seventh session).
        coast_frames: 0: a track lost inside the image is held at its last centre.
            K > 0 (20 by default, with ``coast_stop``): a track lost
            inside the image while moving carries on at the velocity of its last steady observation
            for up to K frames past its last observation (:func:`coast_lost_track`;
            ``docs/results/clevrer.md``, fifteenth and twenty-sixth sessions).
        coast_area: An observation is steady for coasting when its mask covers at least this
            fraction of the median mask area of the track's last ``2 * rest_window``
            observations (the ones after the last steady one were being cut by an occluder).
        coast_stop: 0: a coasted track (``coast_frames``) runs on its line for its K frames.
            1 (the default): it stops, held to its end, at the first
            coasted frame its centre comes within the contact distance of another object's
            (:func:`stop_coasts_at_contact`): an object that vanishes into its neighbour's mask while
            moving is meeting it.  On by default with ``coast_frames`` 20 and ``join_short`` 1: together
            they gain explanatory questions and lose none of another type (``docs/results/clevrer.md``,
            twenty-sixth session, nsdr5).
        coast_ride: 0 (the default): a coasted track that ``coast_stop`` stops is held at rest from the
            frame it meets another object.  1 (needs ``coast_stop`` 1): from that frame it moves with the
            object it met (the nearest within the contact distance), keeping its offset from it, at that
            object's velocity, while that object is present (then held): the world's contacts are far
            from elastic (a median restitution of 0.18), so a striker that vanishes into the mask of the
            object it strikes slides on behind it rather than stopping (:func:`stop_coasts_at_contact`).
            An option, off: on a development pool it puts 3 of 4 held objects nearer the truth and answers
            one descriptive question more, but no predictive one (``docs/results/clevrer.md``, thirty-fourth
            session, nsdr25).
        collision_release: 0: a pair's touch is a new collision when its centres were not
            under the contact distance in the previous ``collision_gap`` frames (the
            annotations' rule on contact points).  R > 0 (scene units; 0.05 by default): a pair
            that touched stays in contact, from
            frame to frame, while its centres stay under the contact distance plus R, so a pair that collided
            and then rests side by side, its perceived distance wobbling about the contact
            distance (0.71-0.78 for 30 frames), gives one collision and not one per dip
            (:func:`touch_collisions`); the default gains explanatory questions and costs a true
            repeat collision soon after the first (``docs/results/clevrer.md``, fifteenth
            session, collmerge).
        cube_yaw: 0 (the default): every orientation is written as zeros (not perceived).
            1: a cube's yaw is fitted to its masks (:func:`perception.video.yaw.fit_cube_yaw`,
            the detections must be made with ``cube_yaw``) and written per frame
            (:func:`perception.video.yaw.track_yaw`), so the rollout's collision rule and the
            PropNet's orientation input see a turned cube (``docs/results/clevrer.md``,
            sixteenth session, second wave).
        unstruck_frames: 0 (the default): every touch of the collision rule is a collision.
            W > 0: a collision one of whose objects moves slower than ``UNSTRUCK_SPEED`` (the
            executor's moving speed, 0.05 units/s) at every frame from W frames before it to W
            frames after it is dropped (:func:`drop_unstruck`): the objects all weigh the same, so
            a touch that leaves a resting object resting was a near miss of a passer, or a pair
            side by side read touching again; a collision fewer than W frames before the video's
            last frame is kept (what follows it is not seen) (``docs/results/clevrer.md``,
            eighteenth session).
        closing_end_frames: 0 (the default): a touch in the video's last frames is a collision like
            any other.  W > 0: a collision dated in the last W frames whose pair's centre distance
            shrinks at every frame from the frame before it to the video's last frame is dropped
            (:func:`drop_closing_at_end`): no bounce is seen, and perceived touches come a frame or
            two early (the contact distance is reached before the surfaces meet), so the pair is
            still closing in on a touch that comes after the video (the truth's future collision)
            (``docs/results/clevrer.md``, eighteenth session).
        drift_window: 0 (the default): the rest test alone says where a track rests.  W > 0: a frame
            the rest test calls resting moves after all when the least-squares line through the
            track's centres over the W frames either side (cut at the track's ends) drifts at
            ``drift_speed`` or faster with residuals within half of ``rest_radius``
            (:func:`slow_drift`): a sphere rolling to a stop creeps at 0.07-0.17 units/s for the
            last seconds of a video, too slowly for the rest test's radius over its window, and the
            executor's moving speed is 0.05; its velocity there is the line's slope
            (``docs/results/clevrer.md``, eighteenth session).
        drift_speed: The slope (units/s) at or above which a rest frame's line drifts.
        end_slide: 0 (the default): a track's velocity in the video's last ``velocity_span``
            frames is the one-sided finite difference, the mean velocity of frames before it.
            W > 0: where such a frame moves, or the frame before them does (the rest test's
            window is cut at the video's end: 0.04 units over 7-8 frames holds a sphere rolling
            at 0.25 units/s), its velocity comes from the track's last W centres after its last
            perceived collision (at least 4; fewer: unchanged) fitted by a slide at the shape's
            deceleration (:data:`SLIDE_DECELERATION`, :func:`end_slide_velocity`); an object that
            the fit stops before the frame rests there.  The one-sided difference reads an object
            sliding to a stop in the last frames at 0.1-0.3 units/s while it has stopped (the
            executor's moving speed is 0.05), so "moving when the video ends" counts it
            (``docs/results/clevrer.md``, twenty-third session).
        struck_end: 0 (the default): a collision's objects move as their tracks say.  W > 0: a
            collision perceived in the video's last W frames one of whose objects is at rest from
            it to the last frame, while its partner moved into it (the partner's velocity two
            frames before, along the line of centres, at least the executor's 0.05 units/s), sets
            that object moving from the frame after the collision: the equal-mass exchange along
            the line of centres at restitution ``STRUCK_RESTITUTION`` (as the rollout's
            ``contact_carry``), locations unchanged (:func:`struck_at_end`).  A struck object's
            mask merges with its striker's and its track is often lost or held in the last frames,
            which the rest test, its window cut at the end, reads as resting
            (``docs/results/clevrer.md``, twenty-third session).
        join_short: 0: the tracker drops tracks seen in fewer than ``track.min_length`` frames.
            1 (the default, with ``coast_stop``): it first joins such a track to a kept track with the
            same attributes that it continues or that continues it (``TrackConfig.join_short``,
            :func:`perception.video.track.track_detections`): an object struck at a merged mask
            keeps the few frames it was seen before it vanished into it
            (``docs/results/clevrer.md``, twenty-sixth session, nsdr5).
        split_merged: 0 (the default): a track's centre is its detection's wherever its mask is.
            R > 1: an observation whose mask area exceeds R times the track's median area, while a
            track lost in the frames before was last seen inside its box (two objects read as one
            mask), is split: the track is placed from the edges of the mask's bounding box that
            stayed where its own edges were going, the hidden object from the edges that moved
            out (:func:`split_merged_masks`); with ``split_hidden`` 0 the hidden object is not
            placed (only the track is moved back to its own edges).  Needs detections with footprints
            (``FrameDetections.foot``; a cache written before them is detected again).
        struck_partner: 0: collisions only from the contact rule (and ``second_partner``).
            D > 0 (0.2 by default, with both guards below on): an object that rested and is set
            moving with no perceived collision of its own near that frame was struck by the object that
            closed in on it: the one whose centre came within ``contact_distance`` + D (less
            ``cube_inset`` per cube) around the start (:func:`struck_partners`).  At a fast contact the two masks merge and the perceived
            centres stay 0.1-0.2 units further apart than the true ones, so the contact rule misses
            it (``docs/results/clevrer.md``, twenty-ninth session, nsdr13).
        unchanged_pass: 0 (the default): every touch of the contact rule (and ``second_partner``) is a
            collision.  R in (0, 1]: a collision through which the pair's relative velocity keeps is
            dropped (:func:`drop_unchanged_passes`): the change of the pair's relative velocity across it
            (each object's kick as ``struck_partner`` reads it, friction's slowing taken off) is below R
            times the pair's relative speed before it.  Every object weighs the same, so a collision
            turns back the pair's closing along the line of centres (the change is about 1.5 times the
            closing speed), while a near miss read as a touch (the perceived centres of a pair passing
            0.75-0.85 apart come within the contact distance) leaves both velocities as they were.  A
            collision whose kicks cannot be read (an object missing, or the video ending, within the
            window) is kept (``docs/results/clevrer.md``, thirtieth session, nsdr15).
        struck_distinct: 0: ``struck_partner`` pairs any two tracks.  1: never two tracks with the same
            voted colour, material and shape (no two objects of a video are alike, so such a pair is one
            object's doubled track).  None (the default): 1 with ``struck_partner`` on, 0 with it off.
            1 with ``struck_partner`` 0 is refused (it guards that rule).  Read it as applied from
            :attr:`applied_struck_distinct`.
        struck_floor: 0: no floor.  F in (0, ``contact_distance``): ``struck_partner`` never pairs two tracks
            whose perceived centres come closer than F anywhere in the kick's window (two objects' centres
            stay about a contact distance apart; closer ones are merged tracks or a swap).  None (the
            default): ``STRUCK_FLOOR`` (0.5) at the default ``contact_distance`` (0.72), scaled with
            another (``STRUCK_FLOOR * contact_distance / CONTACT_DISTANCE``: 0.28 at 0.4), with
            ``struck_partner`` on; 0 with it off.  F > 0 with ``struck_partner`` 0 is refused.  Read it as
            applied from :attr:`applied_struck_floor` (``docs/results/clevrer.md``, thirtieth session, nsdr17).
        distinct_looks: 0 (the default): each track keeps its own vote.  D > 0: no two objects of a
            CLEVRER video look alike, so two tracks voted the same colour, material and shape that share
            5 or more frames and whose observed centres stay D or more apart (median over those frames;
            closer ones are one object's doubled track and are left alone) are two objects one of which
            is misread: of the misreads the detector makes (a sphere for a cylinder or back, one material
            for the other), the one of either track whose other reading trails its vote by the least
            share of the track's weight (under 0.9: a read of 95 to 5 is kept) is undone
            (:func:`distinct_looks`), as long as that makes no third pair alike.  Cylinders read as
            spheres are most such pairs
            (``docs/results/clevrer.md``, thirty-first session, nsdr19).
        yaw_window: Frames either side whose fits are averaged into one frame's yaw.
        yaw_min_iou: Fits whose silhouette overlaps the mask less than this are not used.
        camera: The videos' fixed camera (its image size is replaced by the frames').
        track: Tracking parameters.
    """

    batch: int = 16
    fps: int = ClevrerConfig().fps
    velocity_span: int = 2
    contact_distance: float = CONTACT_DISTANCE
    cube_inset: float = 0.03
    collision_gap: int = ClevrerConfig().collision_gap
    border: float = 0.05
    min_area: float = 0.0013
    rest_window: int = 6
    rest_radius: float = 0.04
    area_tolerance: float | None = None
    rest_votes: int = 3
    edge_weight: float = 1.0
    split_reentries: int = 1
    second_partner: float = 0.2
    excursion_frames: int = 8
    track_height: float | None = 0.35
    cube_settle: int = 5
    coast_frames: int = 20
    coast_area: float = 0.8
    coast_stop: int = 1
    coast_ride: int = 0
    collision_release: float = 0.05
    unstruck_frames: int = 0
    closing_end_frames: int = 0
    drift_window: int = 0
    drift_speed: float = 0.06
    end_slide: int = 0
    struck_end: int = 0
    cube_yaw: int = 0
    join_short: int = 1
    split_merged: float = 0.0
    split_hidden: int = 1
    struck_partner: float = 0.2
    unchanged_pass: float = 0.0
    struck_distinct: int | None = None
    struck_floor: float | None = None
    distinct_looks: float = 0.0
    yaw_window: int = 3
    yaw_min_iou: float = 0.5
    camera: Camera = CLEVR_CAMERA
    track: TrackConfig = field(default_factory=TrackConfig)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.batch < 1 or self.fps < 1 or self.velocity_span < 1 or self.collision_gap < 1:
            raise ConfigError(f"VideoPerceptionConfig needs batch, fps, velocity_span and collision_gap >= 1, got "
                              f"{self.batch}, {self.fps}, {self.velocity_span}, {self.collision_gap}")
        if not 0.0 <= self.border < 0.5:
            raise ConfigError(f"VideoPerceptionConfig.border must lie in [0, 0.5), got {self.border}")
        if not 0.0 <= self.min_area < 1.0:
            raise ConfigError(f"VideoPerceptionConfig.min_area must lie in [0, 1), got {self.min_area}")
        if self.rest_window < 0 or self.rest_radius <= 0:
            raise ConfigError(f"VideoPerceptionConfig needs rest_window >= 0 and rest_radius > 0, got "
                              f"{self.rest_window}, {self.rest_radius}")
        if self.excursion_frames < 0 or self.cube_settle < 0:
            raise ConfigError(f"VideoPerceptionConfig needs excursion_frames >= 0 and cube_settle >= 0, got "
                              f"{self.excursion_frames}, {self.cube_settle}")
        if self.rest_votes < 0 or not 0.0 <= self.edge_weight <= 1.0:
            raise ConfigError(f"VideoPerceptionConfig needs rest_votes >= 0 and edge_weight in [0, 1], got "
                              f"{self.rest_votes}, {self.edge_weight}")
        if self.split_reentries not in (0, 1):
            raise ConfigError(f"VideoPerceptionConfig.split_reentries must be 0 (off) or 1 (on), got {self.split_reentries}")
        if self.area_tolerance is not None and self.area_tolerance <= 0:
            raise ConfigError(f"VideoPerceptionConfig.area_tolerance must be > 0, got {self.area_tolerance}")
        if self.track_height is not None and not 0.0 <= self.track_height < 5.0:
            raise ConfigError(f"VideoPerceptionConfig.track_height must lie in [0, 5) scene units or be None, got "
                              f"{self.track_height}")
        if self.second_partner < 0:
            raise ConfigError(f"VideoPerceptionConfig.second_partner must be >= 0, got {self.second_partner}")
        if self.coast_frames < 0 or not 0.0 < self.coast_area <= 1.0:
            raise ConfigError(f"VideoPerceptionConfig needs coast_frames >= 0 and coast_area in (0, 1], got "
                              f"{self.coast_frames}, {self.coast_area}")
        if self.contact_distance <= 0:
            raise ConfigError(f"VideoPerceptionConfig.contact_distance must be > 0, got {self.contact_distance}")
        if self.cube_yaw not in (0, 1) or self.yaw_window < 0 or not 0.0 <= self.yaw_min_iou < 1.0:
            raise ConfigError(f"VideoPerceptionConfig needs cube_yaw 0 or 1, yaw_window >= 0 and yaw_min_iou in [0, 1), "
                              f"got {self.cube_yaw}, {self.yaw_window}, {self.yaw_min_iou}")
        if self.collision_release < 0:
            raise ConfigError(f"VideoPerceptionConfig.collision_release must be >= 0, got {self.collision_release}")
        if self.unstruck_frames < 0:
            raise ConfigError(f"VideoPerceptionConfig.unstruck_frames must be >= 0 (0: off), got {self.unstruck_frames}")
        if self.drift_window < 0 or self.drift_speed <= 0:
            raise ConfigError(f"VideoPerceptionConfig needs drift_window >= 0 (0: off) and drift_speed > 0, got "
                              f"{self.drift_window}, {self.drift_speed}")
        if self.end_slide < 0 or 0 < self.end_slide < END_SLIDE_MIN:
            raise ConfigError(f"VideoPerceptionConfig.end_slide must be 0 (off) or at least {END_SLIDE_MIN} frames, "
                              f"got {self.end_slide}")
        if self.struck_end < 0:
            raise ConfigError(f"VideoPerceptionConfig.struck_end must be >= 0 (0: off), got {self.struck_end}")
        if self.coast_stop not in (0, 1):
            raise ConfigError(f"VideoPerceptionConfig.coast_stop must be 0 (off) or 1 (on), got {self.coast_stop}")
        if self.coast_ride not in (0, 1):
            raise ConfigError(f"VideoPerceptionConfig.coast_ride must be 0 (off) or 1 (on), got {self.coast_ride}",
                              settings=("coast_ride",))
        if self.coast_ride and not (self.coast_stop and self.coast_frames):
            raise ConfigError("VideoPerceptionConfig.coast_ride 1 needs coast_stop 1 and coast_frames > 0 (it moves the "
                              "tracks coast_stop stops)", settings=("coast_ride", "coast_stop"))
        if self.join_short not in (0, 1):
            raise ConfigError(f"VideoPerceptionConfig.join_short must be 0 (off) or 1 (on), got {self.join_short}")
        sm = self.split_merged  # a ratio of inf would split nothing, without a word
        if not isinstance(sm, (int, float)) or (sm != 0 and not 1 < sm < float("inf")):
            raise ConfigError(f"VideoPerceptionConfig.split_merged must be 0 (off) or an area ratio > 1, got {sm!r}")
        if self.split_hidden not in (0, 1):
            raise ConfigError(f"VideoPerceptionConfig.split_hidden must be 0 (the hidden object not placed) or 1, "
                              f"got {self.split_hidden}")
        if not self.split_hidden and not sm:  # as late_collision_start needs start_velocity_fit: else a no-op
            raise ConfigError("VideoPerceptionConfig.split_hidden 0 needs split_merged > 1 (it says what a split does)")
        if self.closing_end_frames < 0:
            raise ConfigError(f"VideoPerceptionConfig.closing_end_frames must be >= 0 (0: off), got {self.closing_end_frames}")
        if not 0.0 <= self.struck_partner <= 1.0:
            raise ConfigError(f"VideoPerceptionConfig.struck_partner must be 0 (off) or a distance in (0, 1] scene "
                              f"units, got {self.struck_partner}")
        if not 0.0 <= self.unchanged_pass <= 1.0:
            raise ConfigError(f"VideoPerceptionConfig.unchanged_pass must be 0 (off) or a ratio in (0, 1], got "
                              f"{self.unchanged_pass}")
        if self.struck_distinct not in (None, 0, 1):
            raise ConfigError(f"VideoPerceptionConfig.struck_distinct must be 0 (off), 1 (on) or None (on with "
                              f"struck_partner), got {self.struck_distinct}", settings=("struck_distinct",))
        if self.struck_floor is not None and not 0.0 <= self.struck_floor < self.contact_distance:
            raise ConfigError(f"VideoPerceptionConfig.struck_floor must be 0 (off), a distance below contact_distance "
                              f"({self.contact_distance}) or None (the default: {STRUCK_FLOOR} / {CONTACT_DISTANCE} of "
                              f"contact_distance), got {self.struck_floor}", settings=("struck_floor", "contact_distance"))
        if self.struck_partner == 0:  # the guards of a rule that is off would do nothing: one given on is refused
            for guard in ("struck_distinct", "struck_floor"):
                if getattr(self, guard):
                    raise ConfigError(f"VideoPerceptionConfig.{guard} {getattr(self, guard)} needs struck_partner > 0 "
                                      f"(it guards it); set it 0 or leave it None", settings=(guard, "struck_partner"))
        if not 0.0 <= self.distinct_looks < float("inf"):
            raise ConfigError(f"VideoPerceptionConfig.distinct_looks must be 0 (off) or a distance > 0 in scene units, got "
                              f"{self.distinct_looks}")

    @property
    def applied_struck_distinct(self) -> int:
        """``struck_distinct`` as :func:`tracks_to_annotation` applies it (None: 1 with ``struck_partner`` on, else 0)."""
        if self.struck_distinct is not None:
            return self.struck_distinct
        return 1 if self.struck_partner > 0 else 0

    @property
    def applied_struck_floor(self) -> float:
        """``struck_floor`` as :func:`tracks_to_annotation` applies it (None: ``STRUCK_FLOOR`` scaled with
        ``contact_distance``, exactly 0.5 at the default 0.72, with ``struck_partner`` on; else 0)."""
        if self.struck_floor is not None:
            return self.struck_floor
        return STRUCK_FLOOR * (self.contact_distance / CONTACT_DISTANCE) if self.struck_partner > 0 else 0.0


# the settable rules: every number field of the config (read from it, so a new rule is settable at
# once), except fps, which is the videos' own frame rate; "X | None" fields also take "none"
_NUMBER_TYPES = {"int": False, "float": False, "int | None": True, "float | None": True}
_SETTABLE = {f.name: _NUMBER_TYPES[f.type] for f in fields(VideoPerceptionConfig)
             if f.type in _NUMBER_TYPES and f.name != "fps"}
_WHOLE = {f.name for f in fields(VideoPerceptionConfig) if f.type in ("int", "int | None")}  # by the field, not its value


def tracking_config(config: VideoPerceptionConfig) -> TrackConfig:
    """The tracker's parameters for ``config``: ``config.track`` with ``config.join_short`` applied."""
    return replace(config.track, join_short=1) if config.join_short else config.track


def perception_config(settings: Sequence[str], base: VideoPerceptionConfig | None = None,
                      option: str = "perception setting") -> VideoPerceptionConfig:
    """``base`` (default: the defaults) with ``KEY=VALUE`` settings applied (``nesy eval clevrer --perception-set``).

    Keys are :class:`VideoPerceptionConfig` fields (numbers; ``none`` for the ones that may be None),
    split by the one ``KEY=VALUE`` parser (:func:`physics.settings.parse_settings`); ``option``
    names them in its messages (``--perception-set`` from the command line).  ``struck_partner=0`` turns
    the rule off with its two guards (``struck_distinct``, ``struck_floor``) when they are left at their
    default (None), as the config decides for a Python caller.

    Raises:
        ConfigError: an unknown key, a setting not of the form KEY=VALUE, a key given twice, a value
            that is not a finite number of the field's kind, or one the config refuses (a guard of
            ``struck_partner`` set on while the rule is off among them; each names the setting).
    """
    base = base if base is not None else VideoPerceptionConfig()
    items = [str(item) for item in settings]
    texts = parse_settings(items, option=option, known=_SETTABLE)
    changes: dict[str, int | float | None] = {}
    for item, (key, text) in zip(items, texts.items(), strict=True):
        where = f"{option} {item!r}"
        if text.strip().lower() == "none":
            if not _SETTABLE[key]:
                raise ConfigError(f"{where}: {key} cannot be none; expected a number")
            changes[key] = None
            continue
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{where}: {text!r} is not a number") from None
        if not np.isfinite(value):
            raise ConfigError(f"{where}: the value must be finite")
        if key in _WHOLE:
            if value != int(value):
                raise ConfigError(f"{where}: {key} takes a whole number")
            value = int(value)
        changes[key] = value
    try:
        return replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{option} {' '.join(items)}: {exc}") from None


def video_index(frames_dir: str | Path) -> int:
    """The index in a video folder's name (``video_00012`` -> 12; 0 when the name holds none)."""
    found = re.findall(r"\d+", Path(frames_dir).name)
    return int(found[-1]) if found else 0


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(x), _DIGITS) + 0.0 for x in values)  # +0.0: no -0.0


def _track_states(
    track: Track,
    height: float,
    span: tuple[int, int],
    camera: Camera,
    image_hw: tuple[int, int],
    config: VideoPerceptionConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frames [N], location [N, 3], velocity [N, 3], inside [N], coasted [N]) over the track's span in the video ``span``.

    ``coasted`` marks the frames ``coast_frames`` put on a lost track's line (all False when it is off).
    """
    observed = np.asarray(track.frames)
    pixels = np.stack(track.pixels)
    points = ground_backproject(camera, pixels, np.full(len(pixels), height), image_hw)
    first = span[0] if not at_edge(pixels[0], image_hw, config.border) else observed[0]
    last = span[1] if not at_edge(pixels[-1], image_hw, config.border) else observed[-1]
    frames = np.arange(min(first, observed[0]), max(last, observed[-1]) + 1)
    location = np.stack([np.interp(frames, observed, points[:, k]) for k in range(3)], 1)
    coasted = np.zeros(len(frames), bool)
    if config.coast_frames and observed[-1] < frames[-1]:
        areas = np.asarray(track.areas, float) if len(track.areas) == len(observed) else np.full(len(observed), np.nan)
        held = location
        location = coast_lost_track(frames, location, observed, points, areas, config)
        changed = np.flatnonzero(np.any(location != held, axis=1))
        if len(changed):
            coasted[changed[0]:] = True
    k = config.velocity_span
    ahead = np.minimum(np.arange(len(frames)) + k, len(frames) - 1)
    behind = np.maximum(np.arange(len(frames)) - k, 0)
    span = np.maximum(ahead - behind, 1)[:, None]
    velocity = (location[ahead] - location[behind]) / span * config.fps
    velocity[:, 2] = 0.0
    if config.area_tolerance is None:
        rest = at_rest(location, config.rest_window, config.rest_radius)
        if config.excursion_frames:
            rest = settle_excursions(location, rest, 2 * config.rest_window + config.excursion_frames, config.rest_radius)
        if config.drift_window:
            drift = slow_drift(location, rest, config.drift_window, config.drift_speed / config.fps, config.rest_radius / 2.0)
            rest = rest & ~np.isfinite(drift[:, 0])
            velocity[np.isfinite(drift[:, 0]), :2] = drift[np.isfinite(drift[:, 0])] * config.fps
        velocity[rest] = 0.0
    else:
        steady = np.zeros(len(frames), bool)  # frames between observations (interpolated) are not steady
        steady[observed - frames[0]] = steady_areas(observed, track.areas, config.rest_window, config.area_tolerance) \
            if len(track.areas) == len(observed) else True
        rest = at_rest(location, config.rest_window, config.rest_radius, steady)
        velocity[rest] = 0.0
        w = config.rest_window
        for i in np.flatnonzero(rest & ~steady):  # a resting object whose mask was cut or swollen stays where it rests
            lo, hi = max(0, i - w), i + w + 1
            location[i, :2] = np.median(location[lo:hi, :2][steady[lo:hi]], axis=0)
    return frames, location, velocity, _in_view(location, camera, image_hw), coasted


def _in_view(location: np.ndarray, camera: Camera, image_hw: tuple[int, int]) -> np.ndarray:
    """bool [N]: each location [N, 3] projects inside the image (the annotations' ``inside_camera_view`` rule)."""
    h, w = image_hw
    u, v, depth = camera.with_size(w, h).project(location).T
    return (depth > camera.near) & (u >= 0) & (u < w) & (v >= 0) & (v < h)


def slow_drift(location: np.ndarray, rest: np.ndarray, window: int, min_step: float, max_residual: float) -> np.ndarray:
    """Per-frame ground-plane drift (units per frame) of resting frames that creep: float [N, 2], NaN elsewhere.

    For each frame ``i`` with ``rest[i]``, a straight line is fitted (least squares) to the
    centres ``location[i - window .. i + window, :2]`` (cut at the ends; at least
    ``window + 1`` frames); where its slope is at least ``min_step`` per frame and the
    centres lie within ``max_residual`` of it (root mean square), the slope is the frame's
    drift.  Frames not resting, or whose line is flatter or noisier, get NaN.
    """
    n = len(location)
    out = np.full((n, 2), np.nan)
    xy = np.asarray(location, float)[:, :2]
    for i in np.flatnonzero(np.asarray(rest, bool)):
        lo, hi = max(0, i - window), min(n, i + window + 1)
        if hi - lo < window + 1:
            continue
        t = np.arange(lo, hi, dtype=float) - i
        fit = np.polyfit(t, xy[lo:hi], 1)  # [2 (slope, intercept), 2 (x, y)]
        residual = xy[lo:hi] - (fit[0][None] * t[:, None] + fit[1][None])
        if np.hypot(*fit[0]) >= min_step and np.sqrt((residual ** 2).sum(1).mean()) <= max_residual:
            out[i] = fit[0]
    return out


def coast_lost_track(
    frames: np.ndarray,
    location: np.ndarray,
    observed: np.ndarray,
    points: np.ndarray,
    areas: np.ndarray,
    config: VideoPerceptionConfig,
) -> np.ndarray:
    """``location`` [N, 3] over ``frames`` [N] with a moving track's lost end carried on at constant velocity.

    ``observed`` [M] are the frames the track was seen in, ``points`` [M, 3] its ground-plane
    centres there and ``areas`` [M] its mask areas (NaN: unknown; all steady).  The last
    steady observation is the last one whose area is at least ``config.coast_area`` of the
    median area of the last ``2 * rest_window`` observations (an object going behind another
    shrinks to a sliver whose centre is not the object's).  Its velocity is the least-squares
    slope of the centres seen in the ``2 * velocity_span`` frames up to it.  Where that
    observation is not at rest (:func:`at_rest` on the centres up to it) and its speed is at
    least the executor's moving speed (0.05 units/s), every frame after it, up to
    ``config.coast_frames`` frames past the last observation, is put on the straight line
    through it at that velocity (ground plane only), and later frames are held at the line's
    end.  Otherwise ``location`` is returned unchanged.  The caller applies this only to a
    track lost inside the image before the video's end; a copy is returned.
    """
    observed = np.asarray(observed)
    xy = np.asarray(points, float)[:, :2]
    a = np.asarray(areas, float)
    recent = a[-max(2 * config.rest_window, 1):]
    recent = recent[~np.isnan(recent)]
    steady = np.isnan(a) | (a >= config.coast_area * (np.median(recent) if len(recent) else 0.0))
    if not steady.any():
        return location
    i0 = int(np.flatnonzero(steady)[-1])
    f0 = observed[i0]
    near = (observed >= f0 - 2 * config.velocity_span) & (observed <= f0)
    if near.sum() < 2:
        return location
    t = observed[near] - f0
    slope = np.array([np.polyfit(t, xy[near, k], 1) for k in range(2)])  # [2, (slope, intercept)]
    v, p0 = slope[:, 0], slope[:, 1]
    if np.linalg.norm(v) * config.fps < 0.05 or at_rest(xy[: i0 + 1], config.rest_window, config.rest_radius)[-1]:
        return location
    out = np.array(location, float, copy=True)
    end = min(int(observed[-1]) + config.coast_frames, int(frames[-1]))
    later = frames > f0
    steps = np.minimum(frames[later], end) - f0
    out[later, :2] = p0[None] + steps[:, None] * v[None]
    return out


def stop_coasts_at_contact(states: list, shapes: Mapping[int, str], config: VideoPerceptionConfig) -> list:
    """Each coasted track held from the first coasted frame its centre touches another object's (``coast_stop``).

    ``states`` holds one ``(frames [N], location [N, 3], velocity [N, 3], inside [N], orient, coasted [N])``
    per object (id = position), as ``_track_states`` gives them.  A track's coasted frames
    (``coasted``) are checked in order against every other object present in that frame: at
    the first where the ground-plane centre distance is under ``contact_distance`` (less
    ``cube_inset`` per cube), the track is held there to its end, velocity zero from that frame:
    a lost object carried on at constant velocity stops where it meets the object it vanished
    beside (objects weigh the same, so a striker that meets a resting object head-on stops), and
    the collision rule finds the touch.  With ``config.coast_ride`` the track is not held but rides with
    the nearest object it touches there: from that frame on, its centre keeps its offset from that
    object's and its velocity is that object's, in every frame that object is present (in later frames
    it is held where the ride ended, velocity zero).  Tracks are stopped in id order, each against the
    others' locations as they stand; new lists are returned, the inputs are not changed.
    """
    out = list(states)
    for i, (frames, location, velocity, inside, orient, coasted) in enumerate(states):
        if not coasted.any():
            continue
        where = [{int(f): k for k, f in enumerate(s[0])} for s in out]
        for k in np.flatnonzero(coasted):
            f = int(frames[k])
            others = [j for j in range(len(out)) if j != i and f in where[j]]
            reach = [config.contact_distance - config.cube_inset * ((shapes[i] == "cube") + (shapes[j] == "cube"))
                     for j in others]
            gaps = [np.linalg.norm(location[k, :2] - out[j][1][where[j][f], :2]) for j in others]
            met = [(g, j) for g, j, r in zip(gaps, others, reach, strict=True) if g < r]
            if met:
                location, velocity = np.array(location, float, copy=True), np.array(velocity, float, copy=True)
                location[k:, :2] = location[k, :2]
                velocity[k:] = 0.0
                if config.coast_ride:
                    j = min(met)[1]
                    lj, vj = out[j][1], out[j][2]
                    offset = location[k, :2] - lj[where[j][f], :2]
                    for m in range(k, len(frames)):
                        at = where[j].get(int(frames[m]))
                        if at is None:  # the object ridden with is gone: held where the ride ended
                            location[m:, :2] = location[m - 1, :2]
                            velocity[m:] = 0.0
                            break
                        location[m, :2] = lj[at, :2] + offset
                        velocity[m, :2] = vj[at, :2]
                out[i] = (frames, location, velocity, inside, orient, coasted)
                break
    return out


def at_rest(location: np.ndarray, window: int, radius: float, steady: np.ndarray | None = None) -> np.ndarray:
    """Frames at which a track rests: bool [N] for ground-plane centres ``location`` [N, >=2].

    Frame ``i`` rests when every centre of frames ``i - window .. i + window``
    (cut at the ends) lies within ``radius`` of their median; ``window`` 0: none rests.
    With bool [N] ``steady``, only the steady frames' centres are looked at, and
    frame ``i`` (steady or not) rests only when the window holds ``window`` steady
    frames (all of them when the track is shorter), one on each side of ``i`` at
    least (a side cut off by the track's end needs none).
    """
    n = len(location)
    rest = np.zeros(n, bool)
    if window < 1:
        return rest
    xy = np.asarray(location, float)[:, :2]
    ok = np.ones(n, bool) if steady is None else np.asarray(steady, bool)
    for i in range(n):
        lo, hi = max(0, i - window), min(n, i + window + 1)
        before, after = ok[lo:i], ok[i + 1 : hi]
        if (i > 0 and not before.any()) or (i < n - 1 and not after.any()) or ok[lo:hi].sum() < min(window, n):
            continue
        part = xy[lo:hi][ok[lo:hi]]
        rest[i] = bool(np.linalg.norm(part - np.median(part, axis=0), axis=1).max() < radius)
    return rest


def settle_excursions(location: np.ndarray, rest: np.ndarray, max_frames: int, radius: float) -> np.ndarray:
    """Rest frames, with short excursions of a resting track that end where they began: bool [N].

    A run of at most ``max_frames`` frames not at rest (``rest``, bool [N]) between
    two resting stretches whose median centres lie within ``radius`` of each other
    is an object that never moved: a passing object cut its mask or the proposal
    network gave it some of the passer's pixels, and its centre moved by up to 0.2
    units for a few frames.  Such a run's centres are put at the two stretches'
    mean place (``location`` [N, >=2] is changed in place, ground plane only) and
    its frames returned as resting.  A struck object does not come back to the
    same place, so real motion is left as it is.  The stretches compared are the
    ``max_frames`` resting frames on each side (fewer where the track is shorter).
    """
    rest = np.asarray(rest, bool).copy()
    n = len(rest)
    k = 0
    while k < n:
        if rest[k]:
            k += 1
            continue
        end = k
        while end < n and not rest[end]:
            end += 1
        if k > 0 and end < n and end - k <= max_frames:
            before = location[max(0, k - max_frames) : k, :2][rest[max(0, k - max_frames) : k]]
            after = location[end : end + max_frames, :2][rest[end : end + max_frames]]
            a, b = np.median(before, axis=0), np.median(after, axis=0)
            if np.linalg.norm(a - b) < radius:
                location[k:end, :2] = (a + b) / 2.0
                rest[k:end] = True
        k = end
    return rest


def steady_areas(frames: Sequence[int], areas: Sequence[float], window: int, tolerance: float) -> np.ndarray:
    """Observations whose mask is not cut or swollen by a neighbour: bool [N].

    Observation ``i`` (at ``frames[i]``, mask of ``areas[i]`` pixels) is steady when
    its area lies within ``tolerance`` (a fraction) of the median area of the
    track's observations within ``window`` frames either side; an unknown (NaN)
    area is steady.  An object passing in front of another cuts its mask, and the
    proposal network sometimes gives it part of a touching neighbour's pixels;
    either way the centre read from the mask moves while the object does not.
    """
    f = np.asarray(frames)
    a = np.asarray(areas, float)
    out = np.ones(len(a), bool)
    if window < 1:
        return out
    for i in range(len(a)):
        if np.isnan(a[i]):
            continue
        near = a[(np.abs(f - f[i]) <= window) & ~np.isnan(a)]
        out[i] = abs(a[i] / np.median(near) - 1.0) <= tolerance
    return out


def voted_attributes(track: Track, image_hw: tuple[int, int], config: VideoPerceptionConfig) -> dict[str, str]:
    """A track's colour, material and shape: the largest weighted sum of its observations' probabilities.

    Weights (``config``): an observation whose centre lies within ``border`` of the image's
    width from its edge weighs ``edge_weight``, any other 1; where the track has at least
    ``rest_votes`` (> 0) observations at rest (:func:`at_rest` on its observed centres,
    ``rest_window`` and ``rest_radius``) away from the edge, only those vote.  Where every
    weight is zero, every observation votes.  With the defaults this is ``track.attributes()``.
    """
    totals = attribute_votes(track, image_hw, config)
    return {a: ATTRIBUTES[a][int(np.argmax(totals[a]))] for a in VIDEO_ATTRIBUTES}


def attribute_votes(track: Track, image_hw: tuple[int, int], config: VideoPerceptionConfig) -> dict[str, np.ndarray]:
    """Each attribute's weighted sum of the track's observed probabilities (:func:`voted_attributes`'s
    weights), one entry per value of ``ATTRIBUTES[a]``."""
    n = len(track)
    inner = np.array([not at_edge(np.asarray(px), image_hw, config.border) for px in track.pixels], bool)
    weight = np.where(inner, 1.0, config.edge_weight)
    if config.rest_votes and n:
        rest = at_rest(np.stack(track.locations), config.rest_window, config.rest_radius) & inner
        if rest.sum() >= config.rest_votes:
            weight = rest.astype(float)
    if not weight.any():
        weight = np.ones(n)
    return {a: np.asarray(sum(w * track.obs_probs[i][a] for i, w in enumerate(weight) if w > 0), float)
            for a in VIDEO_ATTRIBUTES}


# The misreads distinct_looks may undo: the detector's only confusions among 7,875 perceived objects of the seven tune
# pools matched to the truth (shape cylinder <-> sphere 20, material metal <-> rubber 13; colours and cubes never),
# docs/results/clevrer.md, thirty-first session, nsdr19.
LOOKS_MISREADS = {"shape": {"sphere": "cylinder", "cylinder": "sphere"}, "material": {"metal": "rubber", "rubber": "metal"}}
LOOKS_SHARED = 5  # frames two alike tracks must share to be two objects (one frame is a track handed over)
LOOKS_DOUBT = 0.9  # a reading ahead of the other by this share of the vote or more (95% to 5%) is not undone


def distinct_looks(tracks: Sequence[Track], votes: Sequence[Mapping[str, np.ndarray]], apart: float) -> list[dict[str, str]]:
    """Each track's attributes, no two tracks that are two objects alike (``distinct_looks``).

    Two tracks are two objects when they share ``LOOKS_SHARED`` or more observed frames and their
    observed ground centres stay ``apart`` or more apart (median over the shared frames); voted
    alike, one of them is misread.  Of the two tracks' attributes that the detector misreads
    (``LOOKS_MISREADS``: a shape sphere or cylinder, a material), the one whose other reading
    trails the vote by the least share of the track's total weight takes that reading, unless the
    new looks would equal a third track's, and unless it trails by ``LOOKS_DOUBT`` or more (a read
    with no doubt); this repeats until no such pair is left (each track changes at most once).

    Args:
        tracks: The video's tracks.
        votes: Per track, :func:`attribute_votes`'s sums.
        apart: Scene units (> 0).

    Returns:
        Per track, its colour, material and shape.
    """
    if apart <= 0:
        raise ConfigError(f"distinct_looks needs a distance > 0, got {apart}")
    looks = [{a: ATTRIBUTES[a][int(np.argmax(v[a]))] for a in VIDEO_ATTRIBUTES} for v in votes]

    def key(k: int) -> tuple[str, ...]:
        return tuple(looks[k][a] for a in VIDEO_ATTRIBUTES)

    def two_objects(i: int, j: int) -> bool:
        at_i = {f: loc for f, loc in zip(tracks[i].frames, tracks[i].locations, strict=True)}
        gaps = [float(np.linalg.norm(np.asarray(at_i[f])[:2] - np.asarray(loc)[:2]))
                for f, loc in zip(tracks[j].frames, tracks[j].locations, strict=True) if f in at_i]
        return len(gaps) >= LOOKS_SHARED and float(np.median(gaps)) >= apart

    changed: set[int] = set()
    while True:
        pair = next(((i, j) for i in range(len(looks)) for j in range(i + 1, len(looks))
                     if key(i) == key(j) and not {i, j} <= changed and two_objects(i, j)), None)
        if pair is None:
            return looks
        options = []
        for k in pair:
            if k in changed:
                continue
            for a, swap in LOOKS_MISREADS.items():
                if looks[k][a] in swap:
                    v, other = votes[k][a], swap[looks[k][a]]
                    trail = v[ATTRIBUTES[a].index(looks[k][a])] - v[ATTRIBUTES[a].index(other)]
                    share = float(trail) / max(float(v.sum()), 1e-12)
                    if share < LOOKS_DOUBT:
                        options.append((share, k, a, other))
        for _, k, a, value in sorted(options, key=lambda o: o[0]):
            new = tuple(value if b == a else looks[k][b] for b in VIDEO_ATTRIBUTES)
            if not any(key(m) == new for m in range(len(looks)) if m != k):
                looks[k][a] = value
                changed.add(k)
                break
        else:  # no change keeps the pair apart from every other track: leave both as voted
            changed.update(pair)


def _yaw_fits(detections: Sequence[FrameDetections] | None) -> dict[tuple[int, float, float], tuple[float, float]]:
    """(frame, u, v) of each detection -> (yaw, fit); a track's observation keeps its detection's pixel."""
    if detections is None or any(d.yaw is None for d in detections):
        raise ConfigError("cube_yaw is on but the detections carry no yaw fits (detect with cube_yaw=True, "
                          "or use a perception cache made with it)")
    return {(d.frame, float(p[0]), float(p[1])): (float(y), float(q))
            for d in detections for p, y, q in zip(d.pixel, d.yaw, d.yaw_fit, strict=True)}


def _footprints(detections: Sequence[FrameDetections] | None) -> dict[tuple[int, float, float], np.ndarray]:
    """(frame, u, v) of each detection -> its mask's bounding box (a track's observation keeps its detection's pixel)."""
    if detections is None or any(d.foot is None for d in detections):
        raise ConfigError("split_merged is on but the detections carry no mask footprints (detect them again, "
                          "or use a perception cache written with footprints)")
    return {(d.frame, float(p[0]), float(p[1])): np.asarray(b, float)
            for d in detections for p, b in zip(d.pixel, d.foot, strict=True)}


MERGE_WINDOW = 8  # frames: a changed mask is read against the track's own box at most this many frames before
MERGE_EDGE_TOL = 3.0  # pixels: a box edge this close to where the track's own edge was going is the track's


def split_merged_masks(tracks: Sequence[Track], feet: Mapping[tuple[int, float, float], np.ndarray],
                       image_hw: tuple[int, int], config: VideoPerceptionConfig) -> list[Track]:
    """Tracks whose masks swelled over a hidden object, split by the box edges that are still their own (``split_merged``).

    The proposal network often reads two touching objects as one mask: the one behind vanishes
    into it and its track is lost, and the attribute network's centre of the joined mask lies
    between the two (``docs/results/clevrer.md``, twenty-seventh session, nsdr7).  An observation
    ``i`` of track T is swollen when its mask area exceeds ``R`` times T's median area
    (``R = config.split_merged``).  Its expected box is T's box at its last unswollen
    observation ``j`` at most ``MERGE_WINDOW`` frames before, moved by T's box motion per frame
    up to ``j``; box edges more than ``MERGE_EDGE_TOL`` pixels outside the expected ones moved
    out.  Where some edge moved out and a track H not observed at that frame has its latest
    observation (at most ``MERGE_WINDOW`` frames before) inside the box, H is the object hidden
    in the mask, and the observation is split: T's centre moves with the edges that stayed
    within ``MERGE_EDGE_TOL`` of the expected ones (u with the left or right edge, v with the
    top or bottom; both kept: their mean shift; none: the detection's coordinate), and H gets an
    observation there, each axis placed from the outward edge on H's side of T at H's own
    centre-to-edge offset (from its last observation with a footprint), or held at its latest
    coordinate; a split that would move H further than the tracker's gate is not made.
    Observations are handled in frame order, so a hidden object is followed through a run of
    swollen masks.  With ``config.split_hidden`` 0, H gets no observation (the split moves T
    only, where H would have been placed).  A cut mask (area under the median) is left as it is.

    Args:
        tracks: The tracks (not changed).
        feet: (frame, u, v) of each detection -> its mask's box (left, top, right, bottom), pixels.
        image_hw: (H, W) of the frames.
        config: ``split_merged``, the camera and the tracker's gate.

    Returns:
        New tracks in the same order (observations re-placed or added; ``reentries`` left empty;
        an added observation has area NaN and the hidden track's mean probabilities).
    """
    ratio = float(config.split_merged)
    tol = MERGE_EDGE_TOL
    obs = []  # per track: {frame: [pixel, location, probs, area, foot]}
    for t in tracks:
        obs.append({f: [np.asarray(p, float), np.asarray(loc, float), pr, a,
                        feet.get((f, float(p[0]), float(p[1])), np.full(4, np.nan))]
                    for f, p, loc, pr, a in zip(t.frames, t.pixels, t.locations, t.obs_probs, t.areas, strict=True)})
    events = []
    swollen: set[tuple[int, int]] = set()  # (track, frame) of each swollen observation, and of each one added
    for ti, t in enumerate(tracks):
        areas = np.asarray(t.areas, float)
        if len(areas) != len(t) or not np.isfinite(areas).any():
            continue
        median = float(np.nanmedian(areas))
        changed = areas > ratio * median
        events += [(t.frames[i], ti) for i in np.flatnonzero(changed)]
        swollen.update((ti, t.frames[i]) for i in np.flatnonzero(changed))

    def footed(k: int) -> list[int]:
        """Frames of track ``k``'s observations neither swollen nor added, with a footprint."""
        return sorted(f for f, o in obs[k].items() if (k, f) not in swollen and np.isfinite(o[4]).all())

    unchanged = [footed(k) for k in range(len(obs))]
    camera = config.camera.with_size(image_hw[1], image_hw[0])

    def place(pixel: np.ndarray, z: float) -> np.ndarray:
        return ground_backproject(camera, pixel[None], np.array([z]), image_hw)[0]

    for f, ti in sorted(events):
        refs = [g for g in unchanged[ti] if f - MERGE_WINDOW <= g < f]
        box = obs[ti][f][4]
        if not refs or not np.isfinite(box).all():
            continue
        j = refs[-1]
        ref_box, ref_px = obs[ti][j][4], obs[ti][j][0]
        earlier = [g for g in unchanged[ti] if j - MERGE_WINDOW <= g < j]
        step = (ref_box - obs[ti][earlier[-1]][4]) / (j - earlier[-1]) if earlier else np.zeros(4)
        expect = ref_box + step * (f - j)
        kept = np.abs(box - expect) <= tol
        outward = np.array([box[0] < expect[0] - tol, box[1] < expect[1] - tol,
                            box[2] > expect[2] + tol, box[3] > expect[3] + tol])
        if not outward.any():
            continue
        best = None  # the hidden object: the nearest lost track last seen inside the swollen box
        for h, ob in enumerate(obs):
            before = [g for g in ob if f - MERGE_WINDOW <= g < f]
            if h == ti or f in ob or not before:
                continue
            u, v = ob[max(before)][0]
            if box[0] - tol <= u <= box[2] + tol and box[1] - tol <= v <= box[3] + tol:
                gap = float(np.hypot(u - (box[0] + box[2]) / 2, v - (box[1] + box[3]) / 2))
                if best is None or gap < best[0]:
                    best = (gap, h, max(before))
        if best is None:
            continue
        _, h, g = best
        seen = [k for k in footed(h) if k < f]
        if not seen:
            continue
        own = obs[ti][f][0].copy()
        for axis, (lo, hi) in enumerate(((0, 2), (1, 3))):
            shifts = [box[k] - ref_box[k] for k in (lo, hi) if kept[k]]
            if shifts:
                own[axis] = ref_px[axis] + float(np.mean(shifts))
        h_box, h_px = obs[h][seen[-1]][4], obs[h][seen[-1]][0]
        hidden = obs[h][g][0].copy()
        for axis, (lo, hi) in enumerate(((0, 2), (1, 3))):
            side = hi if hidden[axis] > own[axis] else lo
            if outward[side]:
                hidden[axis] = box[side] + (h_px[axis] - h_box[side])
        location = place(hidden, float(obs[h][g][1][2]))
        if np.linalg.norm(location[:2] - obs[h][g][1][:2]) > config.track.max_distance * (f - g):
            continue
        obs[ti][f][0] = own
        obs[ti][f][1] = place(own, float(obs[ti][f][1][2]))
        if config.split_hidden:
            mean = {a: tracks[h].mean_probs(a) for a in VIDEO_ATTRIBUTES}
            obs[h][f] = [hidden, location, mean, float("nan"), np.full(4, np.nan)]
            swollen.add((h, f))
    out = []
    for ob in obs:
        t = Track()
        for f in sorted(ob):
            pixel, location, probs, area, _ = ob[f]
            t.add(f, pixel, location, probs, area)
        out.append(t)
    return out


def tracks_to_annotation(
    tracks: Sequence[Track],
    frame_ids: Sequence[int],
    image_hw: tuple[int, int],
    heights: dict[str, float],
    config: VideoPerceptionConfig = VideoPerceptionConfig(),
    *,
    scene_index: int = 0,
    video_filename: str = "",
    detections: Sequence[FrameDetections] | None = None,
) -> VideoAnnotation:
    """The official annotation of a video from its object tracks (rules in the module docstring).

    Args:
        tracks: Object tracks, in the order their ids are given (0, 1, ...).
        frame_ids: Every frame of the video, in order.
        image_hw: (H, W) of the frames.
        heights: Resting height of each shape's centre (``{"cube": 0.2475, ...}``).
        config: Frame rate, velocity span, collision rule, camera.
        scene_index: Recorded as ``scene_index``.
        video_filename: Recorded as ``video_filename``.
        detections: The per-frame detections the tracks were built from; with
            ``config.cube_yaw`` on they must carry yaw fits (a cube's orientation is read from them).

    Raises:
        ConfigError: ``config.cube_yaw`` on without detections that carry yaw fits.
    """
    fits = _yaw_fits(detections) if config.cube_yaw else {}
    if config.split_merged:
        tracks = split_merged_masks(tracks, _footprints(detections), image_hw, config)
    per_frame: dict[int, list[ObjectState]] = {f: [] for f in frame_ids}
    props = []
    states = []
    zero = (0.0, 0.0, 0.0)
    if config.distinct_looks > 0:
        voted = distinct_looks(tracks, [attribute_votes(t, image_hw, config) for t in tracks], config.distinct_looks)
    else:
        voted = [voted_attributes(t, image_hw, config) for t in tracks]
    for oid, (track, attrs) in enumerate(zip(tracks, voted, strict=True)):
        props.append(ObjectProperty(oid, attrs["color"], attrs["material"], attrs["shape"]))
        frames, location, velocity, inside, coasted = _track_states(
            track, heights[attrs["shape"]], (frame_ids[0], frame_ids[-1]), config.camera, image_hw, config
        )
        orient = [zero] * len(frames)
        if config.cube_yaw and attrs["shape"] == "cube":
            obs = [fits.get((f, float(px[0]), float(px[1])), (np.nan, np.nan)) for f, px in zip(track.frames, track.pixels, strict=True)]
            yaws = track_yaw(track.frames, [o[0] for o in obs], [o[1] for o in obs], frames.tolist(),
                             window=config.yaw_window, min_iou=config.yaw_min_iou)
            if np.isfinite(yaws).all():
                orient = [_rounded(np.array([0.0, 0.0, y])) for y in yaws]
        states.append((frames, location, velocity, inside, orient, coasted))
    shapes = {p.object_id: p.shape for p in props}
    if config.coast_stop:
        states = stop_coasts_at_contact(states, shapes, config)
    if config.coast_ride:  # a ride moves the track: whether it is in view follows
        states = [(fr, loc, vel, _in_view(loc, config.camera, image_hw) if co.any() else ins, ori, co)
                  for fr, loc, vel, ins, ori, co in states]
    for oid, (frames, location, velocity, inside, orient, _) in enumerate(states):
        for f, loc, vel, ins, ori in zip(frames.tolist(), location, velocity, inside.tolist(), orient, strict=True):
            if f in per_frame:
                per_frame[f].append(ObjectState(oid, _rounded(loc), ori, _rounded(vel), zero, bool(ins)))
    trajectory = tuple(FrameStates(f, tuple(per_frame[f])) for f in frame_ids)
    collisions = touch_collisions(trajectory, shapes, config.contact_distance, config.cube_inset, config.collision_gap,
                                  cube_settle=config.cube_settle, release=config.collision_release)
    if config.second_partner > 0:
        collisions = second_partners(trajectory, shapes, collisions, config.contact_distance + config.second_partner,
                                     config.cube_inset, config.collision_gap)
    if config.unchanged_pass > 0:
        collisions = drop_unchanged_passes(trajectory, collisions, config.unchanged_pass)
    if config.struck_partner > 0:
        looks = {p.object_id: (p.color, p.material, p.shape) for p in props} if config.applied_struck_distinct else None
        collisions = struck_partners(trajectory, shapes, collisions, config.contact_distance + config.struck_partner,
                                     config.cube_inset, config.collision_gap, looks=looks,
                                     floor=config.applied_struck_floor)
    if config.unstruck_frames > 0:
        collisions = drop_unstruck(trajectory, collisions, config.unstruck_frames)
    if config.closing_end_frames > 0:
        collisions = drop_closing_at_end(trajectory, collisions, config.closing_end_frames)
    if config.end_slide > 0:
        trajectory = _slide_to_end(trajectory, collisions, shapes, config)
    if config.struck_end > 0:
        trajectory = struck_at_end(trajectory, collisions, config.struck_end)
    return VideoAnnotation(scene_index, video_filename, tuple(props), trajectory, collisions)


def end_slide_velocity(centres: np.ndarray, deceleration: float, fps: float) -> np.ndarray:
    """Velocity (units/s, ground plane) at the last of ``centres`` [N, >=2] (consecutive frames) of an object
    sliding on a straight path at constant ``deceleration`` (units/s^2), by least squares.

    The direction is the path's (last centre less first); taking the deceleration's term off
    the centres leaves a straight line whose slope is the end velocity.  A slope against the
    direction (the object stopped inside the window) is a stop: zeros.  ``deceleration`` 0 is
    a straight line through the centres.

    >>> t = np.arange(10) / 25.0                      # a slide from 1 unit/s at 2.415 units/s^2
    >>> x = 1.0 * t - 0.5 * 2.415 * t ** 2
    >>> v = end_slide_velocity(np.c_[x, 0 * x], 2.415, 25)
    >>> round(float(v[0]), 3), round(float(1.0 - 2.415 * t[-1]), 3)
    (0.131, 0.131)
    >>> end_slide_velocity(np.c_[np.minimum(x, 0.15), 0 * x], 2.415, 25).tolist()   # stopped inside the window
    [0.0, 0.0]
    """
    u, speed = _slide_fit(centres, deceleration, fps)
    return u * speed if speed > 0 else np.zeros(2)


def _slide_fit(centres: np.ndarray, deceleration: float, fps: float) -> tuple[np.ndarray, float]:
    """(direction [2], signed end speed) of :func:`end_slide_velocity` (speed < 0: stopped that long before)."""
    xy = np.asarray(centres, float)[:, :2]
    path = xy[-1] - xy[0]
    length = float(np.hypot(*path))
    if len(xy) < 2 or length == 0.0:
        return np.zeros(2), 0.0
    u = path / length
    t = (np.arange(len(xy)) - (len(xy) - 1)) / float(fps)  # seconds, 0 at the last centre
    slope = np.polyfit(t, xy + 0.5 * deceleration * u[None, :] * t[:, None] ** 2, 1)[0]
    return u, float(slope @ u)


def _slide_to_end(trajectory: tuple[FrameStates, ...], collisions: Sequence[Collision], shapes: Mapping[int, str],
                  config: VideoPerceptionConfig) -> tuple[FrameStates, ...]:
    """``trajectory`` with the moving velocities of the video's last ``velocity_span`` frames read by
    :func:`end_slide_velocity` (``VideoPerceptionConfig.end_slide``)."""
    n, fps, k = len(trajectory), config.fps, min(config.velocity_span, len(trajectory))
    last_collision: dict[int, int] = {}
    for c in collisions:
        for o in c.object_ids:
            last_collision[o] = max(last_collision.get(o, -1), c.frame_id)
    frames = [fr.by_id() for fr in trajectory]
    changed: dict[tuple[int, int], tuple[float, ...]] = {}
    for oid in frames[-1]:
        # the object's centres in consecutive frames up to the last, after its last collision (+1)
        after = last_collision.get(oid, -10**9) + 1
        run: list[np.ndarray] = []
        for i in range(n - 1, -1, -1):
            s = frames[i].get(oid)
            if s is None or trajectory[i].frame_id <= after or len(run) == config.end_slide:
                break
            run.append(np.asarray(s.location[:2], float))
        if len(run) < END_SLIDE_MIN:
            continue
        centres = np.array(run[::-1])
        decel = SLIDE_DECELERATION.get(shapes.get(oid, ""), 0.0)
        u, speed = _slide_fit(centres, decel, fps)
        before = frames[n - 1 - k].get(oid) if n > k else None
        moving_before = before is not None and any(before.velocity[:2])
        for back in range(k):
            s = frames[n - 1 - back].get(oid)
            if s is None or not (moving_before or any(s.velocity[:2])):
                continue  # at rest by the rest test, and before these frames too: stays so
            # back frames before the end the slide was faster by decel x back / fps (not moving: stopped by then)
            at = speed + decel * back / fps
            v = u * at if at > 0 else np.zeros(2)
            changed[(n - 1 - back, oid)] = _rounded(np.r_[v, 0.0])
    if not changed:
        return trajectory
    out = list(trajectory)
    for i in {i for i, _ in changed}:
        fr = trajectory[i]
        out[i] = replace(fr, objects=tuple(replace(o, velocity=changed[(i, o.object_id)]) if (i, o.object_id) in changed
                                           else o for o in fr.objects))
    return tuple(out)


def struck_at_end(trajectory: tuple[FrameStates, ...], collisions: Sequence[Collision], frames: int) -> tuple[FrameStates, ...]:
    """``trajectory`` with objects struck in its last ``frames`` frames and read resting since set moving.

    For each collision dated after the last frame less ``frames``, an object of the pair with
    zero velocity at every frame from the collision's to the last, whose partner's velocity two
    frames before the collision (the frame before when there is none; the collision's frame at
    the start) has a component of at least ``STRUCK_MIN_SPEED`` along the line from the
    partner's centre to the object's at the collision, gets that component times
    ``(1 + STRUCK_RESTITUTION) / 2`` along that line as its velocity at every frame after the
    collision (its locations are kept).  ``frames`` 0 returns ``trajectory`` unchanged.
    """
    if frames <= 0 or not trajectory:
        return trajectory
    index = {fr.frame_id: i for i, fr in enumerate(trajectory)}
    last = trajectory[-1].frame_id
    set_moving: dict[tuple[int, int], tuple[float, ...]] = {}
    for c in collisions:
        i = index.get(c.frame_id)
        if i is None or c.frame_id <= last - frames:
            continue
        at = trajectory[i].by_id()
        for x in c.object_ids:
            (y,) = [o for o in c.object_ids if o != x] or (x,)
            if y == x or x not in at or y not in at:
                continue
            after = [fr.by_id().get(x) for fr in trajectory[i:]]
            if any(s is None or any(s.velocity[:2]) for s in after):
                continue
            partner = trajectory[max(i - 2, 0)].by_id().get(y) or trajectory[max(i - 1, 0)].by_id().get(y) or at[y]
            line = np.asarray(at[x].location[:2], float) - np.asarray(at[y].location[:2], float)
            norm = float(np.hypot(*line))
            if norm == 0.0:
                continue
            n = line / norm
            closing = float(np.asarray(partner.velocity[:2], float) @ n)
            if closing < STRUCK_MIN_SPEED:
                continue
            v = _rounded(np.r_[n * closing * (1.0 + STRUCK_RESTITUTION) / 2.0, 0.0])
            for j in range(i + 1, len(trajectory)):
                set_moving.setdefault((j, x), v)  # the earliest strike's
    if not set_moving:
        return trajectory
    out = list(trajectory)
    for j in sorted({j for j, _ in set_moving}):
        fr = trajectory[j]
        out[j] = replace(fr, objects=tuple(replace(o, velocity=set_moving[(j, o.object_id)])
                                           if (j, o.object_id) in set_moving else o for o in fr.objects))
    return tuple(out)


def touch_collisions(
    trajectory: Sequence[FrameStates],
    shapes: Mapping[int, str],
    contact_distance: float,
    cube_inset: float,
    gap: int,
    *,
    cube_settle: int = 0,
    release: float = 0.0,
) -> tuple[Collision, ...]:
    """Collisions from per-frame object centres (the rule in the module docstring).

    Args:
        trajectory: Frames in order, consecutive; objects may be absent from some.
        shapes: Each object's shape (``object_id -> "cube"``, ...).
        contact_distance: Ground-plane centre distance under which two round objects touch.
        cube_inset: Subtracted from ``contact_distance`` per cube in the pair.
        gap: A touch is a new collision when the pair did not touch in the previous ``gap`` frames.
        cube_settle: For a pair with a cube, the collision is dated at the first frame, at most
            this many after the touch, from which the centre distance closes by less than half
            its closing over the frame before the touch (the pair stopped closing in), or at
            the touch where it never does so.  Unturned, a cube's face is 0.2475 from its
            centre and its corner 0.35: the contact distance (less ``cube_inset``) is reached
            at a corner's reach, so a slow approach face first read so touches up to 0.1 units,
            3-5 frames, early (``docs/results/clevrer.md``).  0: no change.
        release: A pair that touched in the frame before still touches (for ``gap``) while its
            centres come closer than the contact distance plus ``release`` (a hysteresis: the
            contact lasts from the touch until the pair first parts beyond the looser distance):
            a pair side by side after a collision, its perceived distance wobbling about the
            contact distance, makes no new collision per dip, while a pair that parted and
            closes in again is not held in contact before it touches.  0: only the contact
            distance counts (the annotations' rule).

    Returns:
        Collisions in frame order, ``object_ids`` sorted.
    """
    out: list[Collision] = []
    last_touch: dict[tuple[int, int], int] = {}
    history: list[dict[int, np.ndarray]] = [{}, {}, {}]  # centres (x, y) three, two and one frame before
    for index, fr in enumerate(trajectory):
        now = {o.object_id: np.asarray(o.location[:2], float) for o in fr.objects}
        previous = trajectory[index - 1].frame_id if index else None
        ids = sorted(now)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                reach = contact_distance - cube_inset * ((shapes.get(a) == "cube") + (shapes.get(b) == "cube"))
                approach = _closest_approach(a, b, now, *history)
                if approach >= reach:
                    if release > 0 and approach < reach + release and index and last_touch.get((a, b)) == previous:
                        last_touch[(a, b)] = fr.frame_id  # still side by side since the touch: the same contact
                    continue
                last = last_touch.get((a, b))
                if last is None or fr.frame_id - last > gap:
                    at = index
                    if cube_settle and "cube" in (shapes.get(a), shapes.get(b)):
                        at = _settled(trajectory, index, a, b, cube_settle)
                    there = trajectory[at]
                    both = {o.object_id: np.asarray(o.location[:2], float) for o in there.objects}
                    mid = np.r_[(both[a] + both[b]) / 2.0, (_z(there, a) + _z(there, b)) / 2.0]
                    out.append(Collision((a, b), there.frame_id, _rounded(mid)))
                last_touch[(a, b)] = fr.frame_id
        history = [*history[1:], now]
    return tuple(sorted(out, key=lambda c: (c.frame_id, c.object_ids)))


REST_SHIFT = 0.03  # scene units: an object whose centre moved less over the 3 frames before a collision rested
STRUCK_SHIFT = 0.05  # scene units: ... and one whose centre moved more over the 4 frames after it was set moving
CLOSING = 0.02  # scene units: a partner closed in by at least this over the 2 frames before the collision


def second_partners(
    trajectory: Sequence[FrameStates],
    shapes: Mapping[int, str],
    collisions: Sequence[Collision],
    loose_distance: float,
    cube_inset: float,
    gap: int,
) -> tuple[Collision, ...]:
    """``collisions`` with the second partners of struck resting objects (the rule in the module docstring).

    For each collision at trajectory index ``i`` and each of its two objects X whose centre
    moved less than ``REST_SHIFT`` from index ``i - 4`` to ``i - 1`` and more than
    ``STRUCK_SHIFT`` from ``i - 1`` to ``i + 3``, every other object C present at
    ``i - 3 .. i + 1`` with no X-C collision within ``gap`` frames of it collides with X at
    the same frame when C closed in on X by at least ``CLOSING`` from ``i - 3`` to ``i - 1``
    (indices below 0 are read at 0; a collision before index 2 has none)
    and the X-C centre distance came below ``loose_distance`` (less ``cube_inset`` per cube)
    on the straight paths from ``i - 1`` to ``i + 1``.

    Args:
        trajectory: Frames in order, consecutive.
        shapes: Each object's shape.
        collisions: The collisions found so far (:func:`touch_collisions`).
        loose_distance: Centre distance under which a closing partner touches.
        cube_inset: Subtracted from ``loose_distance`` per cube in the pair.
        gap: A collision of the same pair within this many frames is the same one.

    Returns:
        All collisions in frame order, ``object_ids`` sorted.
    """
    index = {fr.frame_id: k for k, fr in enumerate(trajectory)}
    centres = [{o.object_id: np.asarray(o.location[:2], float) for o in fr.objects} for fr in trajectory]

    def at(k: int, oid: int) -> np.ndarray | None:
        return centres[k].get(oid) if 0 <= k < len(centres) else None

    def present(oid: int, ks: range) -> bool:
        return all(at(k, oid) is not None for k in ks)

    found = list(collisions)
    for c in collisions:
        i = index.get(c.frame_id)
        if i is None:
            continue
        early, back = max(i - 4, 0), max(i - 3, 0)  # a collision in the first frames looks back as far as there are frames
        if i < 2:
            continue
        for x in c.object_ids:
            if not present(x, range(early, i + 4)):
                continue
            if np.linalg.norm(at(i - 1, x) - at(early, x)) >= REST_SHIFT or \
                    np.linalg.norm(at(i + 3, x) - at(i - 1, x)) <= STRUCK_SHIFT:
                continue
            for other in sorted(centres[i]):
                if other in c.object_ids or not present(other, range(back, i + 2)):
                    continue
                pair = tuple(sorted((x, other)))
                if any(d.object_ids == pair and abs(d.frame_id - c.frame_id) <= gap for d in found):
                    continue
                closing = np.linalg.norm(at(back, other) - at(back, x)) - np.linalg.norm(at(i - 1, other) - at(i - 1, x))
                if closing < CLOSING:
                    continue
                reach = loose_distance - cube_inset * sum(shapes.get(o) == "cube" for o in pair)
                offsets = [at(k, x) - at(k, other) for k in (i - 1, i, i + 1)]
                least = min(_segment_distance(offsets[0], offsets[1]), _segment_distance(offsets[1], offsets[2]))
                if least < reach:
                    there = trajectory[i]
                    mid = np.r_[(at(i, x) + at(i, other)) / 2.0, (_z(there, x) + _z(there, other)) / 2.0]
                    found.append(Collision(pair, c.frame_id, _rounded(mid)))
    return tuple(sorted(found, key=lambda c: (c.frame_id, c.object_ids)))


START_KICK = 0.03  # scene units a frame (0.75 units/s at 25 fps): the change of mean velocity that a strike makes
START_BEFORE = 5  # frames before index s over which the old velocity is read (s - 6 .. s - 1)
START_SKIP = 3  # frames after s left out (the masks of a pair in contact merge, so their centres wobble there)
START_AHEAD = 9  # the new velocity is read from s + START_SKIP to s + START_AHEAD
START_FRICTION = 0.06  # scene units a frame: a slowing along the old velocity up to this is friction's (a sliding
# object loses about 3.4 units/s a second, 0.05 units a frame over the 9.5 frames between the two reads)
START_QUIET = 6  # frames either side of the start: a perceived collision of the object there explains the start


def _velocity_kick(centres: list[dict[int, np.ndarray]], oid: int, s: int) -> tuple[np.ndarray, np.ndarray] | None:
    """An object's velocity before frame index ``s`` and its change across it (the kick), from its centres.

    The velocity over ``START_BEFORE`` frames before ``s`` and over the frames ``s + START_SKIP .. s + START_AHEAD``
    after it; friction's slowing along the old velocity (up to ``START_FRICTION``) is no kick.  ``None`` when the
    object is missing from a frame of the window or the window leaves the video.
    """
    ks = (s - 1 - START_BEFORE, s - 1, s + START_SKIP, s + START_AHEAD)
    if min(ks) < 0 or max(ks) >= len(centres) or any(oid not in centres[k] for k in ks):
        return None
    path = [centres[k][oid] for k in ks]
    old = (path[1] - path[0]) / START_BEFORE
    change = (path[3] - path[2]) / (START_AHEAD - START_SKIP) - old
    speed = float(np.linalg.norm(old))
    if speed > 0:  # friction's slowing along the old velocity is no kick
        along = float(change @ old) / speed
        change = change - (along - min(0.0, along + START_FRICTION)) * old / speed if along < 0 else change
    return old, change


def struck_partners(
    trajectory: Sequence[FrameStates],
    shapes: Mapping[int, str],
    collisions: Sequence[Collision],
    loose_distance: float,
    cube_inset: float,
    gap: int,
    looks: Mapping[int, Hashable] | None = None,
    floor: float = 0.0,
) -> tuple[Collision, ...]:
    """``collisions`` with a collision for every pair of kicks that none explains (``struck_partner``).

    In these videos an object's velocity changes abruptly only at a collision (friction slows it
    smoothly), and every object weighs the same, so a strike kicks both objects, the opposite
    ways.  Object X's kick at trajectory index ``s`` is its mean velocity from ``s + START_SKIP``
    to ``s + START_AHEAD`` less that over the ``START_BEFORE`` frames to ``s - 1``, a slowing
    along the old velocity up to ``START_FRICTION`` taken off (friction's).  The frames between
    are left out: a pair passing close by occludes and merges masks there, which moves their
    perceived centres and back, while a strike changes the velocities for good.  A kick above
    ``START_KICK`` units a frame is explained when the object takes part in a collision from
    ``START_QUIET`` frames before ``s`` to ``START_AHEAD`` after it.  When X's is not: among the
    other objects with an unexplained kick above ``START_KICK`` at ``s`` whose dot product with
    X's is negative, and which closed in on X from ``s - 3`` to ``s - 1`` by at least
    ``CLOSING``, the one whose centre came closest to X's over ``s - 3 .. s + START_AHEAD``
    collides with X, at the frame of that closest approach, when it came below
    ``loose_distance`` (less ``cube_inset`` per cube) and the pair has no collision within
    ``gap`` frames of it.  Once X's kick is explained (or a partner found) the next is looked
    for after ``s + START_AHEAD``, else at ``s + 1``; a kick is read only where all its frames
    are there.  At a fast contact the two masks merge, the struck object's track is held or
    coasted, and the perceived centres stay 0.1-0.2 units further apart than the true ones, so
    the contact rule misses it (``docs/results/clevrer.md``, twenty-ninth session, nsdr13).

    Args:
        trajectory: Frames in order, consecutive.
        shapes: Each object's shape.
        collisions: The collisions found so far.
        loose_distance: Centre distance under which the closing object struck X.
        cube_inset: Subtracted from ``loose_distance`` per cube in the pair.
        gap: A collision of the same pair within this many frames is the same one.
        looks: With it (``struck_distinct``), never a pair of two objects that look alike (equal
            values, e.g. colour, material and shape): one object's doubled track.
        floor: Above 0 (``struck_floor``), never a pair whose centres come closer than this at any
            index of the kick's window ``s - 1 - START_BEFORE .. s + START_AHEAD``: merged tracks
            or a swap, not two objects side by side.

    Returns:
        All collisions in frame order, ``object_ids`` sorted.
    """
    centres = [{o.object_id: np.asarray(o.location[:2], float) for o in fr.objects} for fr in trajectory]
    n = len(trajectory)
    found = list(collisions)

    def at(k: int, oid: int) -> np.ndarray | None:
        return centres[k].get(oid) if 0 <= k < n else None

    def kick(oid: int, s: int) -> np.ndarray | None:
        read = _velocity_kick(centres, oid, s)
        return None if read is None else read[1]

    ids = sorted({o for c in centres for o in c})
    for x in ids:
        s = START_BEFORE + 1
        while s + START_AHEAD < n:
            kx = kick(x, s)
            if kx is None or np.linalg.norm(kx) <= START_KICK:
                s += 1
                continue
            frame = trajectory[s].frame_id

            def explained(oid: int, frame: int = frame) -> bool:
                return any(oid in c.object_ids and -START_QUIET <= c.frame_id - frame <= START_AHEAD for c in found)

            done = explained(x)
            if not done:
                best: tuple[float, int, int] | None = None
                for other in ids:
                    kc = None if other == x or explained(other) else kick(other, s)
                    if kc is None or np.linalg.norm(kc) <= START_KICK or float(kc @ kx) >= 0.0:
                        continue  # equal masses: the partner is kicked too, the other way
                    if looks is not None and looks.get(x) == looks.get(other):
                        continue  # no two objects alike: one object's two tracks
                    if floor > 0 and any(float(np.linalg.norm(at(k, other) - at(k, x))) < floor
                                         for k in range(s - 1 - START_BEFORE, s + START_AHEAD + 1)
                                         if at(k, other) is not None and at(k, x) is not None):
                        continue  # centres closer than two objects can be: merged tracks or a swap
                    if at(s - 3, x) is None or at(s - 3, other) is None:
                        continue
                    closing = np.linalg.norm(at(s - 3, other) - at(s - 3, x)) - np.linalg.norm(at(s - 1, other) - at(s - 1, x))
                    if closing < CLOSING:
                        continue
                    d, k = min((float(np.linalg.norm(at(k, other) - at(k, x))), k)
                               for k in range(s - 3, s + START_AHEAD + 1)
                               if at(k, other) is not None and at(k, x) is not None)
                    reach = loose_distance - cube_inset * sum(shapes.get(o) == "cube" for o in (x, other))
                    pair = tuple(sorted((x, other)))
                    if any(c.object_ids == pair and abs(c.frame_id - trajectory[k].frame_id) <= gap for c in found):
                        continue
                    if d < reach and (best is None or d < best[0]):
                        best = (d, other, k)
                if best is not None:
                    _, other, k = best
                    there = trajectory[k]
                    mid = np.r_[(at(k, x) + at(k, other)) / 2.0, (_z(there, x) + _z(there, other)) / 2.0]
                    found.append(Collision(tuple(sorted((x, other))), there.frame_id, _rounded(mid)))
                    done = True
            s += START_AHEAD + 1 if done else 1
    return tuple(sorted(found, key=lambda c: (c.frame_id, c.object_ids)))


PASS_WINDOW = 3  # frames: the kicks are read at every index from i - PASS_WINDOW to i + 1 of a collision at i
PASS_FLOOR = 0.01  # scene units a frame (0.25 units/s): a slower relative speed is read as this (centres jitter)


def drop_unchanged_passes(trajectory: Sequence[FrameStates], collisions: Sequence[Collision],
                          ratio: float) -> tuple[Collision, ...]:
    """``collisions`` less those through which the pair's relative velocity keeps (``unchanged_pass``).

    For a collision of objects A and B at trajectory index ``i``, each object's kick at index ``s``
    is read as :func:`struck_partners` reads it: its mean velocity from ``s + START_SKIP`` to
    ``s + START_AHEAD`` less that over the ``START_BEFORE`` frames to ``s - 1``, a slowing along the
    old velocity up to ``START_FRICTION`` taken off (friction's; the contact frames between, where
    merged masks move the centres and back, left out).  At the ``s`` from ``i - PASS_WINDOW`` to
    ``i + 1`` where the pair's relative kick ``|kick_A - kick_B|`` is largest, the collision is
    dropped when that kick is below ``ratio`` times the pair's relative speed before it
    (``|old_A - old_B|``, at least ``PASS_FLOOR``): every object weighs the same, so a collision
    turns back the pair's closing along the line of centres, while a near miss read as a touch
    leaves both velocities as they were.  A collision whose kicks cannot be read at any such ``s``
    (an object missing, or the trajectory ending, within the window) is kept.

    Args:
        trajectory: Frames in order, consecutive.
        collisions: The collisions found (:func:`touch_collisions`, :func:`second_partners`).
        ratio: R in (0, 1].

    Returns:
        The collisions kept, in their order.

    Raises:
        ConfigError: ``ratio`` outside (0, 1].
    """
    if not 0.0 < ratio <= 1.0:
        raise ConfigError(f"drop_unchanged_passes needs a ratio in (0, 1], got {ratio}")
    index = {fr.frame_id: k for k, fr in enumerate(trajectory)}
    centres = [{o.object_id: np.asarray(o.location[:2], float) for o in fr.objects} for fr in trajectory]

    def kick(oid: int, s: int) -> tuple[np.ndarray, np.ndarray] | None:
        return _velocity_kick(centres, oid, s)

    kept = []
    for c in collisions:
        i = index.get(c.frame_id)
        best: tuple[float, float] | None = None
        for s in range(i - PASS_WINDOW, i + 2) if i is not None else ():
            ka, kb = kick(c.object_ids[0], s), kick(c.object_ids[1], s)
            if ka is None or kb is None:
                continue
            change = float(np.linalg.norm(ka[1] - kb[1]))
            if best is None or change > best[0]:
                best = (change, float(np.linalg.norm(ka[0] - kb[0])))
        if best is None or best[0] >= ratio * max(best[1], PASS_FLOOR):
            kept.append(c)
    return tuple(kept)


UNSTRUCK_SPEED = 0.05  # units/s: the executor's moving speed; an object below it at every frame around a collision was not struck


def drop_unstruck(trajectory: Sequence[FrameStates], collisions: Sequence[Collision], frames: int) -> tuple[Collision, ...]:
    """``collisions`` less those that left one of their objects resting (the rule of ``unstruck_frames``).

    A collision at trajectory index ``i`` is dropped when one of its two objects is present at
    every index ``i - frames .. i + frames`` (indices below 0 read from 0) with a ground-plane
    speed below ``UNSTRUCK_SPEED`` at each: every object weighs the same, so a struck resting
    object is set moving (by about three quarters of the striker's speed along the line of
    centres) and a moving one changes course; an object that rests throughout was not touched.
    A collision with fewer than ``frames`` frames after it in the trajectory is kept (what
    follows it is not seen), as is one whose frame is not in the trajectory.

    Args:
        trajectory: Frames in order, consecutive, with the perceived velocities (zero at rest).
        collisions: The collisions found (:func:`touch_collisions`, :func:`second_partners`).
        frames: The window's half-width W (> 0).

    Returns:
        The collisions kept, in their order.

    Raises:
        ConfigError: ``frames`` below 1.
    """
    if frames < 1:
        raise ConfigError(f"drop_unstruck needs a window of at least 1 frame, got {frames}")
    index = {fr.frame_id: k for k, fr in enumerate(trajectory)}
    speeds = [{o.object_id: float(np.hypot(o.velocity[0], o.velocity[1])) for o in fr.objects} for fr in trajectory]

    def rests(oid: int, i: int) -> bool:
        window = speeds[max(i - frames, 0) : i + frames + 1]
        return all(oid in s and s[oid] < UNSTRUCK_SPEED for s in window)

    kept = []
    for c in collisions:
        i = index.get(c.frame_id)
        if i is None or i + frames >= len(trajectory) or not any(rests(o, i) for o in c.object_ids):
            kept.append(c)
    return tuple(kept)


def drop_closing_at_end(trajectory: Sequence[FrameStates], collisions: Sequence[Collision],
                        frames: int) -> tuple[Collision, ...]:
    """``collisions`` less the touches at the video's end that no bounce follows (``closing_end_frames``).

    A collision at one of the last ``frames`` indices of ``trajectory`` is dropped when both its
    objects are present from the index before it to the last one and their ground-plane centre
    distance shrinks at every step over those indices: the pair has not parted (nor stopped
    closing in) after the touch, so the touch the perceiver read, a frame or two early as it
    reads every touch, has not happened by the video's last frame.  Earlier collisions, and
    those whose pair is missing at any of those indices, are kept.

    Args:
        trajectory: Frames in order, consecutive.
        collisions: The collisions found.
        frames: How many of the last frames (W > 0) the rule looks at.

    Returns:
        The collisions kept, in their order.

    Raises:
        ConfigError: ``frames`` below 1.
    """
    if frames < 1:
        raise ConfigError(f"drop_closing_at_end needs at least 1 frame, got {frames}")
    index = {fr.frame_id: k for k, fr in enumerate(trajectory)}
    last = len(trajectory) - 1
    centres = [{o.object_id: np.asarray(o.location[:2], float) for o in fr.objects} for fr in trajectory]

    def closing(a: int, b: int, i: int) -> bool:
        if i < 1 or any(a not in centres[k] or b not in centres[k] for k in range(i - 1, last + 1)):
            return False
        gaps = [float(np.linalg.norm(centres[k][a] - centres[k][b])) for k in range(i - 1, last + 1)]
        return all(later < earlier for earlier, later in zip(gaps[:-1], gaps[1:], strict=True))

    kept = []
    for c in collisions:
        i = index.get(c.frame_id)
        if i is None or i <= last - frames or not closing(*c.object_ids, i):
            kept.append(c)
    return tuple(kept)


def _settled(trajectory: Sequence[FrameStates], index: int, a: int, b: int, frames: int) -> int:
    """Index of the frame, at most ``frames`` after ``index``, at which pair a-b stops closing in."""
    def gap(i: int) -> float | None:
        if not 0 <= i < len(trajectory):
            return None
        here = {o.object_id: o.location for o in trajectory[i].objects}
        return float(np.linalg.norm(np.subtract(here[a][:2], here[b][:2]))) if a in here and b in here else None

    before, touch = gap(index - 1), gap(index)
    if before is None or touch is None or before - touch <= 0:
        return index
    closing = before - touch
    for i in range(index, min(index + frames, len(trajectory) - 1) + 1):
        now, then = gap(i), gap(i + 1)
        if now is None or then is None:
            return index
        if now - then < closing / 2.0:
            return i
    return index


def _z(frame: FrameStates, object_id: int) -> float:
    return next(o.location[2] for o in frame.objects if o.object_id == object_id)


def _closest_approach(a: int, b: int, now: dict, earlier: dict, before: dict, previous: dict) -> float:
    """Least distance of the a-b centre offset during the last frame: along the straight path
    from the previous frame, or carried on at the velocity it had over the two frames before
    (a bounce inside one frame; two frames average out the noise of perceived centres)."""
    offset = now[a] - now[b]
    if a not in previous or b not in previous:
        return float(np.linalg.norm(offset))
    start = previous[a] - previous[b]
    least = _segment_distance(start, offset)
    past = earlier if a in earlier and b in earlier else before
    steps = 2 if past is earlier else 1
    if a in past and b in past:
        least = min(least, _segment_distance(start, start + (start - (past[a] - past[b])) / steps))
    return least


def _segment_distance(start: np.ndarray, end: np.ndarray) -> float:
    """Distance from the origin to the segment ``start`` -> ``end``."""
    step = end - start
    length2 = float(step @ step)
    s = 1.0 if length2 == 0.0 else min(1.0, max(0.0, -float(start @ step) / length2))
    return float(np.linalg.norm(start + s * step))

