"""Tracking: per-frame detections -> object tracks (online Hungarian matching, then merging).

Online step, frame by frame (the "tracking by detection" of SORT, Bewley et
al., 2016, with the objects' attributes as the appearance cue):

1. every open track predicts its ground-plane position at the frame (constant
   velocity from its last two observations);
2. the cost of giving detection ``j`` to track ``i`` is the ground-plane
   distance from the prediction plus ``attribute_weight`` times the attribute
   disagreement (one minus the mean, over colour, material and shape, of the
   inner product of the track's mean probabilities and the detection's);
3. the Hungarian algorithm (scipy's ``linear_sum_assignment``) matches them;
   pairs further than the gate (``max_distance`` per frame since the track was
   last seen, at most ``max_gap_distance``) are not matched;
4. unmatched detections open new tracks (objects entering the view, or seen
   again); tracks not seen for ``max_missing`` frames close (objects leaving,
   or hidden for long).

Merging: CLEVRER never shows two identical objects in one video (no two share
colour, material and shape), so two tracks with the same attributes that never
coexist are one object seen twice (hidden behind another, or leaving and
coming back); they are joined.  Tracks seen in fewer than ``min_length``
frames are dropped as spurious.

Re-entries: CLEVRER objects leave across the image border and rarely come
back, while another may enter at the same place a few frames later; the
online step's gate grows with the frames a track went unseen, so it may give
the entrant to the track of the object that left.  With the image size given,
a track whose last observation before a gap lay within ``border`` of the
image's edge (the object left the view) is cut where the gap ends, and the two
parts stay apart when each is at least ``min_length`` observations long and
they read other attributes (colour, material or shape by their mean
probabilities); otherwise they are joined again.

Swaps: before merging, two tracks that traded objects at a contact (each reads
one object's colour, material and shape for ``swap_run`` observations, then
the other's from about the same frame on) get their tails exchanged (the
striker stops where the tracker expected it to go on, and the struck object
moves into that place).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.video.detect import VIDEO_ATTRIBUTES, FrameDetections
from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["TrackConfig", "Track", "track_detections", "at_edge"]


@dataclass(frozen=True)
class TrackConfig:
    """Tracking parameters (scene units and frames).

    Args:
        max_distance: Gate per frame since a track was last seen: CLEVRER objects
            move at most about 0.32 units a frame (8 units/s at 25 fps).
        max_gap_distance: The gate never grows past this.
        attribute_weight: Cost of full attribute disagreement, in scene units.
        max_missing: Frames a track may go unseen (hidden behind another) before it closes.
        min_length: Tracks seen in fewer frames are dropped.
        swap_run: Two tracks whose observations read one object's attributes for at least this
            many observations and then, from about the same frame on, the other's for as many
            swapped identities there: their tails are exchanged (0: never).
        swap_slack: Frames apart the two switches of a swap may lie, and observations of
            neither reading a switch may hold between its two runs.
        join_short: 0 (the default): tracks shorter than ``min_length`` are dropped before
            merging.  1: a short track that one kept track continues, or that continues one
            (:func:`_continues`: same attributes, no shared frame, within reach), is joined to
            it first; only the short tracks left alone are dropped.  An object struck while its
            mask merges with its striker's is often seen for a few frames only before it
            vanishes into the merged mask; dropped, its track starts where it comes out, and the
            annotation holds that first place back to the video's start, far from the contact
            (``docs/results/clevrer.md``, twenty-sixth session, nsdr5).
    """

    max_distance: float = 0.6
    max_gap_distance: float = 2.5
    attribute_weight: float = 1.0
    max_missing: int = 12
    min_length: int = 6
    swap_run: int = 5
    swap_slack: int = 3
    join_short: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.max_distance <= 0 or self.max_gap_distance < self.max_distance:
            raise ConfigError(f"TrackConfig needs 0 < max_distance <= max_gap_distance, got "
                              f"{self.max_distance}, {self.max_gap_distance}")
        if self.attribute_weight < 0 or self.max_missing < 0 or self.min_length < 1:
            raise ConfigError(f"TrackConfig needs attribute_weight >= 0, max_missing >= 0 and min_length >= 1, got "
                              f"{self.attribute_weight}, {self.max_missing}, {self.min_length}")
        if self.join_short not in (0, 1):
            raise ConfigError(f"TrackConfig.join_short must be 0 (off) or 1 (on), got {self.join_short}")


@dataclass
class Track:
    """One object's detections over time.

    Attributes:
        frames: Frame of each observation, increasing.
        pixels: float [2] image centre per observation.
        locations: float [3] ground-plane position per observation.
        probs: Per attribute, the summed probabilities over observations.
        areas: Mask pixels per observation (NaN where not known).
        labels: The most probable (colour, material, shape) of each observation.
        obs_probs: Per observation, the probabilities of each attribute.
        reentries: List positions of observations that continued the track after a gap
            that began at the image's edge (filled by :func:`track_detections` when it is
            given the image size; cut and absorbed tracks start without any).
    """

    frames: list[int] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    locations: list[np.ndarray] = field(default_factory=list)
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    areas: list[float] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    obs_probs: list[dict[str, np.ndarray]] = field(default_factory=list)
    reentries: list[int] = field(default_factory=list)

    def add(self, frame: int, pixel: np.ndarray, location: np.ndarray, probs: dict[str, np.ndarray],
            area: float = float("nan")) -> None:
        self.frames.append(frame)
        self.areas.append(float(area))
        self.pixels.append(np.asarray(pixel, float))
        self.locations.append(np.asarray(location, float))
        own = {a: np.asarray(probs[a], float) for a in VIDEO_ATTRIBUTES}
        self.obs_probs.append(own)
        self.labels.append(tuple(ATTRIBUTES[a][int(np.argmax(own[a]))] for a in VIDEO_ATTRIBUTES))
        for a in VIDEO_ATTRIBUTES:
            self.probs[a] = self.probs.get(a, 0.0) + own[a]

    def __len__(self) -> int:
        return len(self.frames)

    def mean_probs(self, attribute: str) -> np.ndarray:
        """The mean probabilities of ``attribute`` over the track's observations."""
        return self.probs[attribute] / max(len(self), 1)

    def attributes(self) -> dict[str, str]:
        """The track's colour, material and shape: the most probable value on average."""
        return {a: ATTRIBUTES[a][int(np.argmax(self.probs[a]))] for a in VIDEO_ATTRIBUTES}

    def predict(self, frame: int) -> np.ndarray:
        """Ground-plane (x, y) expected at ``frame``: constant velocity from the last two observations."""
        last = self.locations[-1][:2]
        if len(self) < 2:
            return last
        velocity = (last - self.locations[-2][:2]) / (self.frames[-1] - self.frames[-2])
        return last + velocity * (frame - self.frames[-1])

    def absorb(self, other: Track) -> None:
        """Append ``other``'s observations (it must start after this track's last frame)."""
        self.frames += other.frames
        self.pixels += other.pixels
        self.locations += other.locations
        self.areas += other.areas
        self.labels += other.labels
        self.obs_probs += other.obs_probs
        for a in VIDEO_ATTRIBUTES:
            self.probs[a] = self.probs[a] + other.probs[a]

    def cut(self, start: int, stop: int | None = None) -> Track:
        """A new track of observations ``start:stop`` (list positions)."""
        out = Track()
        for k in range(start, len(self) if stop is None else stop):
            out.add(self.frames[k], self.pixels[k], self.locations[k], self.obs_probs[k], self.areas[k])
        return out


def _disagreement(track: Track, probs: dict[str, np.ndarray]) -> np.ndarray:
    """One minus the mean attribute agreement of ``track`` with each detection: float [K]."""
    agree = [probs[a] @ track.mean_probs(a) for a in VIDEO_ATTRIBUTES]
    return 1.0 - np.mean(agree, axis=0)


def track_detections(detections: Sequence[FrameDetections], config: TrackConfig = TrackConfig(), *,
                     image_hw: tuple[int, int] | None = None, border: float = 0.05) -> list[Track]:
    """Link per-frame detections into tracks (the rules in the module docstring).

    Args:
        detections: One :class:`FrameDetections` per frame, in frame order.
        config: Gates and weights.
        image_hw: (H, W) of the frames: with it, re-entries are split (module docstring);
            None: not.
        border: A pixel within this fraction of the image's width from its edge is at the edge.

    Returns:
        Tracks ordered by their first frame, then by image column of their first observation.
    """
    open_tracks: list[Track] = []
    closed: list[Track] = []
    for det in detections:
        f = det.frame
        still_open = []
        for t in open_tracks:
            (closed if f - t.frames[-1] > config.max_missing + 1 else still_open).append(t)
        open_tracks = still_open
        matched: set[int] = set()
        if open_tracks and len(det):
            cost = np.empty((len(open_tracks), len(det)))
            gate = np.empty(len(open_tracks))
            for i, t in enumerate(open_tracks):
                distance = np.linalg.norm(det.location[:, :2] - t.predict(f)[None], axis=1)
                cost[i] = distance + config.attribute_weight * _disagreement(t, det.probs)
                gate[i] = min(config.max_distance * (f - t.frames[-1]), config.max_gap_distance)
                cost[i, distance > gate[i]] = np.inf
            finite = np.where(np.isfinite(cost), cost, 1e9)
            for i, j in zip(*linear_sum_assignment(finite), strict=True):
                if np.isfinite(cost[i, j]):
                    if (image_hw is not None and f - open_tracks[i].frames[-1] > 1
                            and at_edge(open_tracks[i].pixels[-1], image_hw, border)):
                        open_tracks[i].reentries.append(len(open_tracks[i]))
                    open_tracks[i].add(f, det.pixel[j], det.location[j], {a: det.probs[a][j] for a in VIDEO_ATTRIBUTES},
                                          float(det.area[j]))
                    matched.add(int(j))
        for j in range(len(det)):
            if j not in matched:
                t = Track()
                t.add(f, det.pixel[j], det.location[j], {a: det.probs[a][j] for a in VIDEO_ATTRIBUTES}, float(det.area[j]))
                open_tracks.append(t)
    tracks = [part for t in [*closed, *open_tracks] for part in _split_reentries(t, config)]
    short = [t for t in tracks if len(t) < config.min_length]
    tracks = [t for t in tracks if len(t) >= config.min_length]
    tracks = _unswap(tracks, config)
    tracks = _merge_same_object(tracks, config)
    if config.join_short:
        tracks = _join_short(tracks, short, config)
    return sorted(tracks, key=lambda t: (t.frames[0], float(t.pixels[0][0])))


def at_edge(pixel: np.ndarray, image_hw: tuple[int, int], border: float) -> bool:
    """Whether image point ``pixel`` (u, v) lies within ``border`` of the image's width from its edge."""
    h, w = image_hw
    margin = border * w
    return not (margin <= pixel[0] < w - margin and margin <= pixel[1] < h - margin)


def _split_reentries(track: Track, config: TrackConfig) -> list[Track]:
    """``track`` cut at its re-entries where the parts read other attributes (module docstring).

    Each part is compared with the track built so far before it; a part that reads the
    same attributes, or either of which is shorter than ``min_length``, is joined to it.
    """
    if not track.reentries:
        return [track]
    cuts = [0, *track.reentries, len(track)]
    out = [track.cut(cuts[0], cuts[1])]
    for start, stop in zip(cuts[1:], cuts[2:], strict=False):
        part = track.cut(start, stop)
        if min(len(part), len(out[-1])) >= config.min_length and part.attributes() != out[-1].attributes():
            out.append(part)
        else:
            out[-1].absorb(part)
    return out


def _merge_same_object(tracks: list[Track], config: TrackConfig) -> list[Track]:
    """Join tracks with the same colour, material and shape that never share a frame.

    The later track must start where the earlier could have got to: within
    ``max_distance`` per frame between them (a leaving object does not come back elsewhere).
    """
    tracks = sorted(tracks, key=lambda t: t.frames[0])
    kept: list[Track] = []
    for t in tracks:
        host = next((k for k in kept if _continues(k, t, config)), None)
        if host is None:
            kept.append(t)
        else:
            host.absorb(t)
    return kept


def _join_short(tracks: list[Track], short: list[Track], config: TrackConfig) -> list[Track]:
    """``tracks`` with each track of ``short`` that continues one of them, or that one continues, joined to it.

    Short tracks are taken in frame order, each joined to the first kept track it fits
    (:func:`_continues` either way round); the others are left out.
    """
    out = list(tracks)
    for s in sorted(short, key=lambda t: t.frames[0]):
        for i, t in enumerate(out):
            if _continues(t, s, config):
                t.absorb(s)
                break
            if _continues(s, t, config):
                joined = s.cut(0)
                joined.absorb(t)
                out[i] = joined
                break
    return out


def _continues(first: Track, later: Track, config: TrackConfig) -> bool:
    """Whether ``later`` can be ``first`` seen again: same attributes, after it, within reach."""
    if first.attributes() != later.attributes() or first.frames[-1] >= later.frames[0]:
        return False
    reach = config.max_distance * (later.frames[0] - first.frames[-1])
    return bool(np.linalg.norm(later.locations[0][:2] - first.locations[-1][:2]) <= reach)


def _switches(track: Track, run: int, slack: int) -> list[tuple[int, tuple[str, ...], tuple[str, ...]]]:
    """(list position, labels before, labels after) where a track's reading changes for good.

    A change counts when a run of at least ``run`` observations reading one
    (colour, material, shape) is followed, after at most ``slack`` other
    observations, by a run of at least ``run`` reading another; its position is
    the later run's first observation.
    """
    runs: list[tuple[int, int, tuple[str, ...]]] = []  # (first, past-the-end, labels)
    for k, lab in enumerate(track.labels):
        if runs and runs[-1][2] == lab and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1, lab)
        else:
            runs.append((k, k + 1, lab))
    long = [r for r in runs if r[1] - r[0] >= run]
    return [(b[0], a[2], b[2]) for a, b in zip(long, long[1:], strict=False) if a[2] != b[2] and b[0] - a[1] <= slack]


def _unswap(tracks: list[Track], config: TrackConfig) -> list[Track]:
    """Exchange the tails of two tracks that swapped objects (see ``TrackConfig.swap_run``).

    Two objects that touch can trade tracks: the tracker predicts each at constant
    velocity, and a collision moves the struck object where the striker was
    expected.  Each track then reads one object's attributes before the contact
    and the other's after, in mirror image; cutting both there and exchanging the
    tails gives each object its own.
    """
    if config.swap_run < 1:
        return tracks
    tracks = list(tracks)
    while (swap := _find_swap(tracks, config)) is not None:
        i, j, frame = swap
        ti, tj = tracks[i], tracks[j]
        ki = int(np.searchsorted(ti.frames, frame))
        kj = int(np.searchsorted(tj.frames, frame))
        tracks[i], tracks[j] = ti.cut(0, ki), tj.cut(0, kj)
        tracks[i].absorb(tj.cut(kj))
        tracks[j].absorb(ti.cut(ki))
    return tracks


def _find_swap(tracks: list[Track], config: TrackConfig) -> tuple[int, int, int] | None:
    """(track i, track j, frame) of the first mirror-image pair of switches, or None.

    Both tracks are cut at the later of the two switches' frames (observations
    between them, read while the two objects touch, stay before the cut).
    """
    found = [_switches(t, config.swap_run, config.swap_slack) for t in tracks]
    for i, j in combinations(range(len(tracks)), 2):
        for ki, a, b in found[i]:
            for kj, c, d in found[j]:
                fi, fj = tracks[i].frames[ki], tracks[j].frames[kj]
                if (a, b) == (d, c) and abs(fi - fj) <= config.swap_slack:
                    return i, j, max(fi, fj)
    return None
