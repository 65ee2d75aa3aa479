"""Per-frame object detection for videos: the derenderer's two networks, batched over frames.

Every frame of a CLEVRER-style video goes through the NS-VQA derenderer
(:class:`~perception.derender.derenderer.Derenderer`): its proposal network
gives instance masks, its attribute network each mask's colour, material,
shape and the image position of the object's centre.  Frames go through the
proposal network ``batch`` at a time and all crops of a batch through the
attribute network at once.

Masks: an object's mask is one connected region, so each predicted mask keeps
its largest connected part only.  The shadow of an object waiting outside the
view falls into the image, and the CLEVR-trained proposal network (CLEVR has
no such shadows) sometimes gives its pixels to a nearby object's mask; the
crop of the joined mask then reads wrong attributes and a wrong centre.

Small masks: a mask of less than ``min_area`` of the frame (about 200 pixels at
480x320) is dropped by :func:`drop_small`.  An object in view covers 600-2,800
pixels at 480x320 (an object half out of the image still 200 or more); the
masks below that are slivers of shadows cast into the image by objects waiting
outside it, which the CLEVR-trained proposal network (CLEVR has no such
shadows) reads as a small gray object.  Kept, such a sliver lasts as a track
for as long as its object waits, and the object's own detections join that
track when it enters (same place), so the object takes the sliver's colour
and shape, or the sliver stays an object of its own.

3-D position: the ray through the predicted centre pixel, from the video's
known fixed camera (:class:`physics.worlds.camera.Camera`), meets the plane
z = h(shape), the resting height of a small object's centre (CLEVRER objects
all have CLEVR's ``small`` size and slide on the floor).  The size head is not
read: CLEVRER has one size.

Shapes (K detections in one frame)::

    pixel     float [K, 2]   (u, v) image position of the centre, pixels
    location  float [K, 3]   ground-plane back-projection (scene units)
    probs     {attribute: float [K, n_values]}  softmax over CLEVR's vocabulary
    area      int   [K]      mask pixels
    yaw       float [K]      cube yaw fitted to the mask, modulo a quarter turn (NaN: not fitted;
                             the whole field None when the detections were made without fits)
    yaw_fit   float [K]      that fit's intersection over union with the mask
    foot      float [K, 4]   the mask's footprint in the image: its bounding box (left, top, right,
                             bottom) in pixel edges (a mask of columns 3-5 spans 3.0-6.0); None
                             when the detections were read from a cache made before footprints

Footprints: every detection made now keeps its mask's bounding box, so the
annotation rules can tell which edges of a mask that swelled (two objects read
as one mask at a contact) are still the tracked object's own
(:func:`perception.video.annotate.split_merged_masks`).  A cache file written
before footprints reads with ``foot`` None; nothing mixes the two silently (the
rule that needs footprints re-detects such a video, as ``cube_yaw`` does).

Cube yaw (``detect_frames(..., cube_yaw=True)``, off by default): each mask whose
cube probability is at least ``CUBE_FIT_PROB`` is fitted by
:func:`perception.video.yaw.fit_cube_yaw` (the projected upright cube whose
outline best overlaps it), centred where the centre pixel's ray meets the plane
z = the cube's resting height.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from perception.derender.attributes import crop_objects
from perception.derender.derenderer import Derenderer, image_to_tensor
from perception.derender.proposals import predict_masks
from perception.image_io import load_image
from perception.video.yaw import fit_cube_yaw
from physics.errors import DataError, StateError
from physics.io import PathLike, atomic_open, npz_failure
from physics.worlds.camera import Camera
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = [
    "VIDEO_ATTRIBUTES",
    "CUBE_FIT_PROB",
    "FrameDetections",
    "frame_paths",
    "iter_frames",
    "ground_backproject",
    "largest_parts",
    "mask_boxes",
    "detect_frames",
    "drop_small",
    "at_height",
    "save_detections",
    "load_detections",
]

VIDEO_ATTRIBUTES = ("color", "material", "shape")  # what CLEVRER's object_property lists; one size
VIDEO_SIZE = "small"  # CLEVRER's one object size (CLEVR's small)
CUBE_FIT_PROB = 0.1  # masks whose cube probability is at least this get a yaw fit (cube_yaw=True)


@dataclass(frozen=True)
class FrameDetections:
    """The objects found in one frame (shapes in the module docstring)."""

    frame: int
    pixel: np.ndarray
    location: np.ndarray
    probs: dict[str, np.ndarray]
    area: np.ndarray
    yaw: np.ndarray | None = None
    yaw_fit: np.ndarray | None = None
    foot: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pixel)

    def names(self, attribute: str) -> list[str]:
        """The most probable value of ``attribute`` for each detection."""
        return [ATTRIBUTES[attribute][int(i)] for i in self.probs[attribute].argmax(1)]

    def keep(self, mask: np.ndarray) -> FrameDetections:
        """The detections where bool [K] ``mask`` is true."""
        return FrameDetections(self.frame, self.pixel[mask], self.location[mask],
                               {a: p[mask] for a, p in self.probs.items()}, self.area[mask],
                               None if self.yaw is None else self.yaw[mask],
                               None if self.yaw_fit is None else self.yaw_fit[mask],
                               None if self.foot is None else self.foot[mask])

    @classmethod
    def empty(cls, frame: int, fitted: bool = False, footed: bool = False) -> FrameDetections:
        """No detection in ``frame`` (``fitted``: with empty yaw fields rather than None;
        ``footed``: with an empty footprint field rather than None)."""
        none = np.zeros(0) if fitted else None
        return cls(frame, np.zeros((0, 2)), np.zeros((0, 3)),
                   {a: np.zeros((0, len(ATTRIBUTES[a]))) for a in VIDEO_ATTRIBUTES}, np.zeros(0, dtype=np.int64),
                   none, none, np.zeros((0, 4)) if footed else None)


def frame_paths(frames_dir: PathLike) -> list[Path]:
    """The PNG frames of a video folder (``<f:04d>.png``), in frame order.

    Raises:
        DataError: not a folder, no PNG frame in it, or a gap in the numbers (a frame lost in the middle
            shifted nothing but left the perceiver a frame with no object, and the answers changed in silence).
    """
    root = Path(frames_dir)
    if not root.is_dir():
        raise DataError(f"video frames folder not found: {root}")
    paths = sorted((p for p in root.glob("*.png") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not paths:
        raise DataError(f"no numbered PNG frame (0000.png, ...) in {root}")
    numbers = [int(p.stem) for p in paths]
    for expected, (number, path) in enumerate(zip(numbers, paths, strict=True), start=numbers[0]):
        if number != expected:
            what = f"frame {expected:04d}.png is missing" if number > expected else f"{path.name} repeats frame {number}"
            raise DataError(f"{root}: {what} (frames {numbers[0]:04d}..{numbers[-1]:04d}); a video's frames are "
                            "numbered without gaps")
    return paths


def iter_frames(frames_dir: PathLike) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, RGB uint8 [H, W, 3]) of each frame of a video folder; frames must share one size."""
    size = None
    for path in frame_paths(frames_dir):
        rgb = load_image(path)
        if size is None:
            size = rgb.shape
        elif rgb.shape != size:
            raise DataError(f"{path}: frame of size {rgb.shape[:2]} in a video of {size[:2]} frames")
        yield int(path.stem), rgb


def ground_backproject(camera: Camera, pixel: np.ndarray, heights: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Where the rays through pixels ``(u, v)`` meet the planes z = ``heights``.

    Args:
        camera: The fixed camera (its own image size is ignored: ``image_hw`` is used,
            the same field of view at another resolution).
        pixel: float [K, 2] continuous pixel coordinates (pixel centres at i + 0.5,
            as :meth:`Camera.project` gives them).
        heights: float [K] plane heights.
        image_hw: (H, W) of the frames.

    Returns:
        float [K, 3] world points (a ray that never goes down meets its plane at the horizon: clipped).
    """
    rays = camera.rays_through(pixel[:, 0], pixel[:, 1], image_hw)
    eye = np.asarray(camera.eye, float)
    down = np.minimum(rays[:, 2], -1e-3)  # a ray at or above the horizon: the far clip instead
    t = np.minimum((np.asarray(heights, float) - eye[2]) / down, camera.far)
    return eye + t[:, None] * rays


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """float [K, 4] bounding box (left, top, right, bottom; pixel edges) of each mask of bool [K, H, W].

    >>> mask_boxes(np.pad(np.ones((1, 2, 3), bool), ((0, 0), (1, 0), (4, 0))))
    array([[4., 1., 7., 3.]])
    """
    out = np.zeros((len(masks), 4))
    for k, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if len(rows):
            out[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return out


def largest_parts(masks: Tensor) -> Tensor:
    """Each mask of bool [K, H, W] cut down to its largest 4-connected part."""
    out = masks.clone()
    for k, mask in enumerate(masks.numpy()):
        labels, n = ndimage.label(mask)
        if n > 1:
            sizes = np.bincount(labels.ravel())[1:]
            out[k] = torch.from_numpy(labels == 1 + int(np.argmax(sizes)))
    return out


@torch.no_grad()
def detect_frames(
    derenderer: Derenderer,
    frames: Sequence[tuple[int, np.ndarray]],
    camera: Camera,
    *,
    batch: int = 16,
    cube_yaw: bool = False,
) -> list[FrameDetections]:
    """Detect the objects of each frame (proposal masks, attributes, centre, 3-D position).

    Args:
        derenderer: The trained networks.
        frames: (frame index, RGB uint8 [H, W, 3]) pairs.
        camera: The videos' fixed camera.
        batch: Frames per forward pass of the proposal network.
        cube_yaw: Fit a cube's yaw to each mask that may be a cube (module docstring);
            False: ``yaw`` and ``yaw_fit`` are None.

    Returns:
        One :class:`FrameDetections` per frame, in the given order.
    """
    if batch < 1:
        raise StateError(f"detect_frames: batch must be >= 1, got {batch}")
    out: list[FrameDetections] = []
    heights = {s: derenderer.height(s, VIDEO_SIZE) for s in ATTRIBUTES["shape"]}
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        images = [image_to_tensor(rgb) for _, rgb in chunk]
        masks = [largest_parts(m) for m in predict_masks(derenderer.proposal_net, images)]
        crops, boxes, counts = [], [], []
        for image, m in zip(images, masks, strict=True):
            c, b = crop_objects(image, m, derenderer.attribute_net.config)
            crops.append(c)
            boxes.append(b)
            counts.append(len(m))
        if sum(counts) == 0:
            out += [FrameDetections.empty(f, cube_yaw, footed=True) for f, _ in chunk]
            continue
        logits, centre = derenderer.attribute_net(torch.cat(crops), torch.cat(boxes))
        probs = {a: torch.softmax(logits[a], 1).numpy() for a in VIDEO_ATTRIBUTES}
        box = torch.cat(boxes)
        offset = 0
        for (f, rgb), m, k in zip(chunk, masks, counts, strict=True):
            sl = slice(offset, offset + k)
            offset += k
            h, w = rgb.shape[:2]
            side = box[sl, 2] * w
            u = (box[sl, 0] * w + centre[sl, 0] * side).numpy()
            v = (box[sl, 1] * h + centre[sl, 1] * side).numpy()
            pixel = np.stack([u, v], 1).astype(float)
            p = {a: probs[a][sl] for a in VIDEO_ATTRIBUTES}
            z = np.array([heights[ATTRIBUTES["shape"][i]] for i in p["shape"].argmax(1)], dtype=float)
            location = ground_backproject(camera, pixel, z, (h, w))
            yaw = fit = None
            if cube_yaw:
                yaw, fit = np.full(k, np.nan), np.full(k, np.nan)
                cube = ATTRIBUTES["shape"].index("cube")
                centres = ground_backproject(camera, pixel, np.full(k, heights["cube"]), (h, w))
                for j in np.flatnonzero(p["shape"][:, cube] >= CUBE_FIT_PROB):
                    yaw[j], fit[j] = fit_cube_yaw(m[j].numpy(), camera, centres[j], heights["cube"])
            out.append(FrameDetections(f, pixel, location, p, m.flatten(1).sum(1).numpy().astype(np.int64), yaw, fit,
                                       mask_boxes(m.numpy())))
    return out


def at_height(detections: Sequence[FrameDetections], camera: Camera, image_hw: tuple[int, int],
              height: float) -> list[FrameDetections]:
    """The detections with every ``location`` back-projected onto the one plane z = ``height``.

    Each detection's own location lies at its read shape's resting height, so a
    shape misread for one frame (a metal cylinder read as a cube, 0.1 lower)
    moves it by up to 0.4 units on the ground; the tracker, which predicts at
    constant velocity, then takes that for a jump and loses the object.  On one
    plane the locations of a track move only with the object (an object's offset
    from its true place is the same in every frame).  Pixels and attributes are
    kept.
    """
    out = []
    for d in detections:
        location = ground_backproject(camera, d.pixel, np.full(len(d), float(height)), image_hw) if len(d) else d.location
        out.append(FrameDetections(d.frame, d.pixel, location, d.probs, d.area, d.yaw, d.yaw_fit, d.foot))
    return out


def save_detections(path: PathLike, detections: Sequence[FrameDetections], image_hw: tuple[int, int]) -> None:
    """Write one video's detections to ``path`` (``.npz``, written atomically; :func:`load_detections` reads it)."""
    path = Path(path)
    counts = np.array([len(d) for d in detections], dtype=np.int64)
    arrays = {
        "frames": np.array([d.frame for d in detections], dtype=np.int64),
        "counts": counts,
        "image_hw": np.array(image_hw, dtype=np.int64),
        "pixel": np.concatenate([d.pixel.reshape(-1, 2) for d in detections]) if detections else np.zeros((0, 2)),
        "location": np.concatenate([d.location.reshape(-1, 3) for d in detections]) if detections else np.zeros((0, 3)),
        "area": np.concatenate([d.area for d in detections]).astype(np.int64) if detections else np.zeros(0, np.int64),
    }
    if detections and all(d.yaw is not None for d in detections):
        arrays["yaw"] = np.concatenate([d.yaw for d in detections]).astype(float)
        arrays["yaw_fit"] = np.concatenate([d.yaw_fit for d in detections]).astype(float)
    if detections and all(d.foot is not None for d in detections):
        arrays["foot"] = np.concatenate([d.foot.reshape(-1, 4) for d in detections]).astype(float)
    for a in VIDEO_ATTRIBUTES:
        arrays[f"probs_{a}"] = (np.concatenate([d.probs[a] for d in detections]) if detections
                                else np.zeros((0, len(ATTRIBUTES[a]))))
    with atomic_open(path, "wb") as f:  # OutputError naming the path if it cannot be written
        np.savez(f, **arrays)


def load_detections(path: PathLike) -> tuple[list[FrameDetections], tuple[int, int]]:
    """(detections, image (H, W)) written by :func:`save_detections`.

    A file written before footprints (no ``foot`` array) reads with every ``foot`` None.

    Raises:
        DataError: the file is unreadable or not a detections file (named).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        counts, frames = data["counts"], data["frames"]
        ends = np.cumsum(counts)
        out = []
        fitted = "yaw" in data
        footed = "foot" in data
        for f, lo, hi in zip(frames.tolist(), (ends - counts).tolist(), ends.tolist(), strict=True):
            out.append(FrameDetections(int(f), data["pixel"][lo:hi], data["location"][lo:hi],
                                       {a: data[f"probs_{a}"][lo:hi] for a in VIDEO_ATTRIBUTES}, data["area"][lo:hi],
                                       data["yaw"][lo:hi] if fitted else None,
                                       data["yaw_fit"][lo:hi] if fitted else None,
                                       data["foot"][lo:hi] if footed else None))
        hw = tuple(int(x) for x in data["image_hw"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # zlib: damaged bytes
        raise DataError(f"{path}: not a readable detections file ({type(exc).__name__}: {npz_failure(exc)})") from None
    return out, (hw[0], hw[1])


def drop_small(detections: Sequence[FrameDetections], min_area: float, image_hw: tuple[int, int]) -> list[FrameDetections]:
    """The detections whose mask covers at least ``min_area`` of the ``image_hw`` frame (a fraction; 0 keeps all)."""
    least = min_area * image_hw[0] * image_hw[1]
    return [d.keep(d.area >= least) for d in detections]
