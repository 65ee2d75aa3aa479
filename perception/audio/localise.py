"""Sounding-object localisers: a clip's frames and sound in, which objects are sounding in each frame out.

A *localiser* answers "which object is making the sound?" for an audio-visual
clip (:class:`~physics.worlds.audiovisual.AudioVisualClip`).  Every localiser is
registered in :data:`SOUNDING_LOCALISERS` as a factory ``factory(checkpoint) ->
localise``, where ``localise(clip) -> SoundingEstimate``; the question-answering
path (``nesy answer --video CLIP --localiser NAME``) picks one by name, as it picks
dynamics and parsers.  ``gt`` reads the clip's truth.  A learned localiser (e.g.
AVOL-Net's localisation map) registers itself in its own module (added to the
registry's ``modules``); :func:`sounding_from_maps` turns per-frame localisation
maps into object indices through the instance masks.

:class:`SoundingEstimate` shapes: ``sounding`` bool ``[T, N]`` (frame, object
index; object indices are the clip's, i.e. the values of its masks), ``sounds``
one word per object (its instrument class) or None (silent, or not known).
:func:`scene_graph_at` puts an estimate on a frame's scene graph (each object's
``sound`` and ``is_sounding``).

>>> from physics.worlds.audiovisual import AudioVisualConfig, make_clip
>>> clip = make_clip(0, AudioVisualConfig(frames=4, fps=8, width=48, height=32))
>>> est = localiser_for("gt")(clip)
>>> est.sounding.shape == (4, len(clip.objects)), est.sounding_objects() == clip.sounding
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from perception.scene_graph import SceneGraph, SceneObject
from physics.errors import ConfigError, StateError
from physics.registry import Registry

if TYPE_CHECKING:  # the registry stays light to import (the CLI lists it); clips arrive made
    from physics.worlds.audiovisual import AudioVisualClip

__all__ = [
    "SoundingEstimate",
    "Localise",
    "SOUNDING_LOCALISERS",
    "register_localiser",
    "localiser_for",
    "sounding_from_maps",
    "scene_graph_at",
]


@dataclass(frozen=True, eq=False)
class SoundingEstimate:
    """Which objects sound, frame by frame, and what sound each makes.

    Attributes:
        sounding: bool ``[T, N]``: object ``n`` is audible in frame ``t``.
        sounds: Per object, the word for its sound (an instrument class) or None.
        source: Who made the estimate (the localiser's name), for traces and reports.
    """

    sounding: np.ndarray
    sounds: tuple[str | None, ...]
    source: str = ""

    def __post_init__(self) -> None:
        s = np.asarray(self.sounding)
        if s.ndim != 2 or s.dtype != bool:
            raise StateError(f"SoundingEstimate.sounding must be bool [T, N], got {s.dtype} {s.shape}")
        if len(self.sounds) != s.shape[1]:
            raise StateError(f"SoundingEstimate: {len(self.sounds)} sounds for {s.shape[1]} objects")

    @property
    def frames(self) -> int:
        return int(self.sounding.shape[0])

    def sounding_objects(self, frame: int | None = None) -> tuple[int, ...]:
        """Objects audible in ``frame`` (None: in some frame), in index order."""
        rows = self.sounding.any(axis=0) if frame is None else self.sounding[frame]
        return tuple(int(k) for k in np.flatnonzero(rows))


Localise = Callable[["AudioVisualClip"], SoundingEstimate]

SOUNDING_LOCALISERS: Registry[Callable[[str | None], Localise]] = Registry(
    "sounding-object localiser", modules=("perception.audio.localise",)
)


def register_localiser(name: str, factory: Callable[[str | None], Localise], *, help: str = "") -> None:
    """Register ``factory(checkpoint) -> localise`` under ``name`` (``--localiser NAME``)."""
    SOUNDING_LOCALISERS.register(name, factory, help=help)


def localiser_for(name: str, checkpoint: str | None = None) -> Localise:
    """The localiser ``name`` of :data:`SOUNDING_LOCALISERS` (ConfigError naming the choices if unknown)."""
    return SOUNDING_LOCALISERS.get(name)(checkpoint)


def _gt(checkpoint: str | None) -> Localise:
    if checkpoint is not None:
        raise ConfigError(f"the ground-truth localiser takes no checkpoint, got {checkpoint!r}")

    def localise(clip: AudioVisualClip) -> SoundingEstimate:
        sounding = np.stack([o.sounding_frames for o in clip.objects], axis=1) if clip.objects else \
            np.zeros((clip.frames.shape[0], 0), dtype=bool)
        return SoundingEstimate(sounding.astype(bool), tuple(o.category for o in clip.objects), "gt")

    return localise


register_localiser("gt", _gt, help="the clip's truth: an instrument sounds in the frames its tone is audible")


def sounding_from_maps(maps: np.ndarray, masks: np.ndarray, n_objects: int, *, active: np.ndarray | None = None,
                       sounds: Sequence[str | None] | None = None, source: str = "") -> SoundingEstimate:
    """An estimate from localisation maps: in each frame, the object under the map's peak sounds.

    Args:
        maps: float ``[T, H', W']`` localisation scores (any resolution; the peak is scaled to the masks').
        masks: int ``[T, H, W]`` instance masks (-1 background, else the object index).
        n_objects: Objects in the clip (``N``).
        active: Optional bool ``[T]``: frames in which anything sounds (False: no object sounds there).
        sounds: Optional word per object for its sound.
        source: The localiser's name.

    Returns:
        The estimate; a frame whose peak falls on the background marks no object.
    """
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.ndim != 3 or masks.ndim != 3 or maps.shape[0] != masks.shape[0]:
        raise StateError(f"maps [T, H', W'] and masks [T, H, W] must agree in T, got {maps.shape} and {masks.shape}")
    t, h, w = masks.shape
    sounding = np.zeros((t, n_objects), dtype=bool)
    for f in range(t):
        if active is not None and not active[f]:
            continue
        i, j = np.unravel_index(int(np.argmax(maps[f])), maps.shape[1:])
        y = min(int((i + 0.5) * h / maps.shape[1]), h - 1)
        x = min(int((j + 0.5) * w / maps.shape[2]), w - 1)
        k = int(masks[f, y, x])
        if 0 <= k < n_objects:
            sounding[f, k] = True
    return SoundingEstimate(sounding, tuple(sounds) if sounds is not None else (None,) * n_objects, source)


def scene_graph_at(clip: AudioVisualClip, frame: int, estimate: SoundingEstimate) -> SceneGraph:
    """The scene graph of ``frame`` with each object's ``sound`` and ``is_sounding`` from ``estimate``."""
    if not 0 <= frame < clip.frames.shape[0]:
        raise ConfigError(f"frame {frame} is not a frame of the clip (0..{clip.frames.shape[0] - 1})")
    objects = tuple(
        SceneObject(o.shape, o.color, o.material, o.size, tuple(float(x) for x in o.positions[frame]),
                    sound=estimate.sounds[o.index], is_sounding=bool(estimate.sounding[frame, o.index]))
        for o in clip.objects
    )
    return SceneGraph(objects, image_index=frame, image_filename=f"clip_{clip.seed}@{frame}")
