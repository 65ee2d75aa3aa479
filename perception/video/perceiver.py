"""The registered video perceivers: ``model`` (from pixels) and ``gt`` (the annotation file).

``model`` is NS-DR's video parsing (Yi, Gan et al., ICLR 2020, Sec. 4) built on
this framework's parts: the NS-VQA derenderer on every frame
(:mod:`perception.video.detect`, frames batched through both networks),
tracking (:mod:`perception.video.track`) and the annotation rules
(:mod:`perception.video.annotate`).  Its weights are the derenderer's: the
shipped CLEVR derenderer reads CLEVRER frames as they are (its accuracy on
video frames is in ``docs/results/clevrer.md``), so no video checkpoint ships.

``gt`` returns the video's own annotation (``annotation_<split>/annotation_<k>.json``
next to ``frames_<split>/video_<k>/``), for runs that isolate the other parts.
"""

from __future__ import annotations

from pathlib import Path

from perception.derender.derenderer import Derenderer, load_default_derenderer, load_derenderer
from perception.video.annotate import (
    VideoPerceptionConfig,
    tracking_config,
    tracks_to_annotation,
    video_index,
)
from perception.video.detect import (
    VIDEO_SIZE,
    FrameDetections,
    at_height,
    detect_frames,
    drop_small,
    frame_paths,
    iter_frames,
    load_detections,
    save_detections,
)
from perception.video.registry import VideoPerceiver, register_video_perceiver
from perception.video.track import track_detections
from physics.errors import DataError
from physics.io import PathLike
from physics.worlds.clevr_properties import SHAPES
from physics.worlds.clevrer_annotation import VideoAnnotation, read_annotation

__all__ = ["PixelVideoPerceiver", "GroundTruthVideoPerceiver", "annotation_for_frames"]


class PixelVideoPerceiver(VideoPerceiver):
    """From pixels: the derenderer on every frame, tracking, velocities and collisions.

    Args:
        derenderer: The per-frame detector (default: the shipped one).
        config: Batch size, frame rate, tracking and collision parameters.
        cache: A folder for each video's per-frame detections (None: none kept).  A video
            whose detections are there is not run through the networks again, so that
            tracking and event rules can be compared on the same detections; the folder
            holds one derenderer's detections (use a new folder for another checkpoint).
    """

    name = "model"

    def __init__(self, derenderer: Derenderer | None = None, config: VideoPerceptionConfig | None = None,
                 cache: PathLike | None = None) -> None:
        self.derenderer = derenderer if derenderer is not None else load_default_derenderer()
        self.config = config if config is not None else VideoPerceptionConfig()
        self.cache = None if cache is None else Path(cache)
        self.last_detections: list[FrameDetections] = []

    @classmethod
    def load(cls, checkpoint: PathLike | None = None) -> PixelVideoPerceiver:
        """With the derenderer checkpoint ``checkpoint`` (``nesy train derender``; None: the shipped one)."""
        return cls(None if checkpoint is None else load_derenderer(checkpoint))

    def heights(self) -> dict[str, float]:
        """Resting height of each shape's centre (CLEVRER's one size), from the derenderer's calibration."""
        return {s: self.derenderer.height(s, VIDEO_SIZE) for s in SHAPES}

    def __call__(self, frames_dir: PathLike) -> VideoAnnotation:
        """The annotation of the video in ``frames_dir`` (see :mod:`perception.video.annotate` for its rules).

        The per-frame detections kept (small masks dropped) stay in :attr:`last_detections`
        (for scoring detection alone).

        Raises:
            DataError: a missing folder, no frames, or an unreadable frame (named).
        """
        detections, image_hw = self._detections(frames_dir)
        detections = drop_small(detections, self.config.min_area, image_hw)
        self.last_detections = detections
        if self.config.track_height is not None:
            detections = at_height(detections, self.config.camera, image_hw, self.config.track_height)
        tracks = track_detections(detections, tracking_config(self.config), border=self.config.border,
                                  image_hw=image_hw if self.config.split_reentries else None)
        k = video_index(frames_dir)
        return tracks_to_annotation(
            tracks,
            [d.frame for d in detections],
            image_hw,
            self.heights(),
            self.config,
            scene_index=k,
            video_filename=f"{Path(frames_dir).name}.gif",
            detections=detections,
        )


    def _detections(self, frames_dir: PathLike) -> tuple[list[FrameDetections], tuple[int, int]]:
        """Every frame's detections (all masks) and the frames' (H, W): from the cache where it has them.

        With ``config.cube_yaw`` on, cached detections made without yaw fits are made again
        (and the cache file rewritten with the fits); with ``config.split_merged`` on, so are
        cached detections made before mask footprints.
        """
        frames_dir = Path(frames_dir)
        cached = None if self.cache is None else self.cache / f"{frames_dir.parent.name}_{frames_dir.name}.npz"
        if cached is not None and cached.is_file():
            try:
                detections, image_hw = load_detections(cached)
            except DataError:  # a damaged cache entry is made again, as a stale one is, not fatal to its video
                detections = None
            if detections is not None:
                fitted = all(d.yaw is not None for d in detections)
                footed = all(d.foot is not None for d in detections)
                if ([d.frame for d in detections] == [int(p.stem) for p in frame_paths(frames_dir)]
                        and (fitted or not self.config.cube_yaw) and (footed or not self.config.split_merged)):
                    return detections, image_hw
        frames = list(iter_frames(frames_dir))
        image_hw = frames[0][1].shape[:2]
        detections = detect_frames(self.derenderer, frames, self.config.camera, batch=self.config.batch,
                                   cube_yaw=bool(self.config.cube_yaw))
        if cached is not None:
            save_detections(cached, detections, image_hw)
        return detections, (int(image_hw[0]), int(image_hw[1]))


def annotation_for_frames(frames_dir: PathLike) -> Path:
    """The annotation file of a frame folder in ``nesy data clevrer``'s layout.

    ``DIR/frames_<split>/video_<k>/`` -> ``DIR/annotation_<split>/annotation_<k>.json``.

    Raises:
        DataError: the folder is not laid out so, or the file is missing.
    """
    frames_dir = Path(frames_dir)
    split = frames_dir.parent.name.removeprefix("frames_")
    if not frames_dir.parent.name.startswith("frames_"):
        raise DataError(f"{frames_dir}: not a frames_<split>/video_<k> folder, so its annotation cannot be found")
    path = frames_dir.parent.parent / f"annotation_{split}" / f"annotation_{video_index(frames_dir):05d}.json"
    if not path.is_file():
        raise DataError(f"{frames_dir}: its annotation {path} is missing")
    return path


class GroundTruthVideoPerceiver(VideoPerceiver):
    """Ground-truth perception: the video's own annotation file."""

    name = "gt"
    reads = "annotation"

    @classmethod
    def load(cls, checkpoint: PathLike | None = None) -> GroundTruthVideoPerceiver:
        """No weights: ``checkpoint`` must be None.

        Raises:
            DataError: a checkpoint was given.
        """
        if checkpoint is not None:
            raise DataError(f"video perceiver 'gt' reads annotation files and takes no checkpoint, got {checkpoint}")
        return cls()

    def __call__(self, frames_dir: PathLike) -> VideoAnnotation:
        """The annotation file ``frames_dir`` is (a ``.json`` path), or the one next to that frames folder."""
        path = Path(frames_dir)
        return read_annotation(path if path.suffix == ".json" else annotation_for_frames(path))


register_video_perceiver(PixelVideoPerceiver, help="from pixels: derenderer on each frame, tracking, finite differences, collision rule")
register_video_perceiver(GroundTruthVideoPerceiver, help="ground truth: the video's own annotation file")
