"""The derenderer: one RGB image -> a SceneGraph (NS-VQA's perception stage).

Pipeline (Yi et al., 2018, Sec. 3.1, with the proposal network of
:mod:`perception.derender.proposals` in place of Mask R-CNN):

1. :class:`~perception.derender.proposals.ProposalNet` on the image resized to
   its input size; :func:`~perception.derender.proposals.decode_instances`
   gives instance masks, upsampled to the image.
2. :class:`~perception.derender.attributes.AttributeNet` on each mask's crop:
   shape, colour, material, size, and the image position of the centre.
3. 3D position: the ray through that pixel meets the plane z = h(shape, size),
   the resting height of the object's centre measured on training scenes
   (objects stand on the ground; a cube's centre is lower than a sphere's of
   the same size class), with the camera calibrated from training scenes
   (:mod:`perception.derender.camera`).  ``directions``
   are that camera's ground axes; relationships follow CLEVR's rule.
4. Optionally (``min_gap``: on in ``derender-blender``, off in ``derender`` and
   ``derender-blender-plain``): detections that would overlap another on the ground
   are dropped, the larger mask kept (:mod:`perception.derender.overlap`); with
   ``keep_score``, detections with a confident centre peak are spared.

>>> derenderer = load_default_derenderer()          # doctest: +SKIP
>>> scene = derenderer(load_image("CLEVR_val_000000.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from perception.derender.attributes import AttributeConfig, AttributeNet, read_attributes
from perception.derender.camera import backproject_to_plane, ground_directions, project
from perception.derender.outline import (
    OUTLINE_CHECKPOINT,
    OutlineNet,
    fuse_shape,
    load_outline,
    read_outline,
)
from perception.derender.overlap import keep_apart
from perception.derender.proposals import ProposalConfig, ProposalNet, predict_scored_masks
from perception.registry import Perceiver, register_perceiver
from perception.scene_graph import SceneGraph, SceneObject
from physics.errors import CheckpointError, ConfigError, DataError, StateError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from physics.worlds.clevr_properties import ATTRIBUTES, SIZE_RADIUS

__all__ = [
    "Derenderer",
    "BlenderDerenderer",
    "BlenderDerendererPlain",
    "BlenderDerendererTTA",
    "BlenderDerendererRecall",
    "BlenderDerendererStrict",
    "BlenderDerendererFlip",
    "BlenderDerendererOutline",
    "DEFAULT_CHECKPOINT",
    "BLENDER_CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "load_derenderer",
    "load_default_derenderer",
    "save_derenderer",
    "mask_to_rle",
    "rle_to_mask",
    "image_to_tensor",
]

CHECKPOINT_FORMAT = "nesy-derender-v1"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "derender.pt"
BLENDER_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "derender_blender.pt"
MIN_IMAGE_SIDE = 16  # pixels: the smallest scene image (a 1 x 1 image was "perceived" as a scene of 0 objects)
BLENDER_R15_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "derender_blender_r15.pt"


def image_to_tensor(rgb: np.ndarray | Tensor) -> Tensor:
    """uint8 [H, W, 3] (numpy or torch) or float [3, H, W] in [0, 1] -> float [3, H, W]."""
    t = torch.from_numpy(np.array(rgb)) if isinstance(rgb, np.ndarray) else rgb
    channels_last = t.dim() == 3 and t.shape[-1] == 3 and (t.dtype == torch.uint8 or t.shape[0] != 3)
    if channels_last:
        t = t.permute(2, 0, 1)
    if t.dim() != 3 or t.shape[0] != 3:
        raise StateError(f"expected an RGB image uint8 [H, W, 3] or float [3, H, W], got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    t = t.float()
    if not torch.isfinite(t).all():
        raise StateError("image holds NaN or inf values")
    return t


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed run-length encoding (column-major runs, starting with 0s)."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    # run boundaries: where the value changes; a leading run of 0s may be empty
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.r_[0, change, flat.size]
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`mask_to_rle`: bool [H, W]."""
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for c in rle["counts"]:
        flat[pos : pos + c] = value
        pos += c
        value = not value
    return flat.reshape((h, w), order="F")


class Derenderer(Perceiver):
    """Image -> SceneGraph with a proposal network, an attribute network and a camera.

    The NS-VQA perceiver, registered as ``derender``; :meth:`from_checkpoint`
    loads a file written by ``nesy train derender``.

    Args:
        proposal_net: trained :class:`ProposalNet`.
        attribute_net: trained :class:`AttributeNet`.
        projection: float [3, 4] camera calibrated at ``image_size``.
        image_size: (H, W) of the images the camera was calibrated on; images of
            another size are treated as rescaled views of the same camera.
        heights: ``{"shape/size": z}`` resting height of each kind of object's
            centre; a missing kind rests at its size's radius.
        with_masks: put each object's run-length mask in the scene.
        metadata: how the networks were trained (command, seed, metrics).
        min_gap: drop detections whose ground footprint comes closer than this to a
            larger detection's (:func:`~perception.derender.overlap.keep_apart`; 0 forbids
            overlap); None (default: the class's :attr:`min_gap`) keeps every detection.
        test_scales: crop scales whose attribute probabilities are averaged with the plain
            crop's (:func:`~perception.derender.attributes.read_attributes`), replacing the
            checkpoint's own ``AttributeConfig.test_scales``; None (default: the class's
            :attr:`test_scales`) keeps the checkpoint's.
        keep_score: with ``min_gap``, detections whose centre score (heat-map peak) is at
            least this are kept even when they overlap a larger one; None (default: the
            class's :attr:`keep_score`) spares none.
        vote_min: the proposal decoder's vote centres (``ProposalConfig.vote_min``, 0 off),
            replacing the checkpoint's; None (default: the class's :attr:`vote_min`) keeps
            the checkpoint's.
        test_flip: also read each crop mirrored left to right and average the class
            probabilities (``AttributeConfig.test_flip``), replacing the checkpoint's; None
            (default: the class's :attr:`test_flip`) keeps the checkpoint's.
    """

    name = "derender"
    default_checkpoint = DEFAULT_CHECKPOINT
    min_gap: float | None = None  # the test-time overlap rule: None = off
    keep_score: float | None = None  # the overlap rule spares centre peaks at least this; None = none
    test_scales: tuple[float, ...] | None = None  # test-time crop scales; None: the checkpoint's own
    vote_min: int | None = None  # decode-time vote centres; None: the checkpoint's own (0, off)
    test_flip: bool | None = None  # test-time mirrored crops; None: the checkpoint's own

    def __init__(
        self,
        proposal_net: ProposalNet,
        attribute_net: AttributeNet,
        projection: np.ndarray,
        image_size: tuple[int, int],
        heights: dict[str, float] | None = None,
        *,
        with_masks: bool = False,
        metadata: dict[str, Any] | None = None,
        min_gap: float | None = None,
        test_scales: tuple[float, ...] | None = None,
        keep_score: float | None = None,
        vote_min: int | None = None,
        test_flip: bool | None = None,
    ) -> None:
        if vote_min is not None:
            self.vote_min = vote_min
        if self.vote_min is not None and self.vote_min != proposal_net.config.vote_min:
            # decode_scored reads the network's config (ProposalConfig checks the value); a shallow copy
            # (the same weights) carries this perceiver's setting, so a network the caller shares is untouched
            config = dataclasses.replace(proposal_net.config, vote_min=self.vote_min)
            proposal_net = copy.copy(proposal_net)
            proposal_net.config = config
        self.proposal_net = proposal_net.eval()
        if test_scales is not None:
            self.test_scales = tuple(test_scales)
        if test_flip is not None:
            self.test_flip = bool(test_flip)
        reading = {}
        if self.test_scales is not None:
            reading["test_scales"] = tuple(self.test_scales)
        if self.test_flip is not None:
            reading["test_flip"] = self.test_flip
        if reading:
            # AttributeConfig checks the values (scales in [0.5, 2]) and read_attributes uses them; as for
            # vote_min, a shallow copy (the same weights) carries them, so a network the caller shares is untouched
            config = dataclasses.replace(attribute_net.config, **reading)
            attribute_net = copy.copy(attribute_net)
            attribute_net.config = config
        self.attribute_net = attribute_net.eval()
        self.projection = np.asarray(projection, dtype=np.float64)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.heights = dict(heights or {})
        self.with_masks = with_masks
        self.metadata = dict(metadata or {})
        self.directions = ground_directions(self.projection)
        if min_gap is not None:
            self.min_gap = float(min_gap)
        if self.min_gap is not None and not np.isfinite(self.min_gap):
            raise ConfigError(f"{type(self).__name__}: min_gap must be a finite number or None, got {self.min_gap!r}")
        if keep_score is not None:
            self.keep_score = float(keep_score)
        if self.keep_score is not None and not np.isfinite(self.keep_score):
            raise ConfigError(
                f"{type(self).__name__}: keep_score must be a finite number or None, got {self.keep_score!r}"
            )

    @classmethod
    def from_checkpoint(cls, path: PathLike) -> Derenderer:
        """Load a checkpoint written by :func:`save_derenderer` (see :func:`load_derenderer`)."""
        return load_derenderer(path, kind=cls)

    def height(self, shape: str, size: str) -> float:
        """Resting height of the centre of a ``shape`` of ``size`` (scene units)."""
        return self.heights.get(f"{shape}/{size}", SIZE_RADIUS[size])

    def instance_masks(self, image: Tensor) -> Tensor:
        """Instance masks of one image: float [3, H, W] -> bool [K, H, W] (no empty ones)."""
        return self.detect(image)[0]

    def detect(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Instance masks of one image and their centre scores: (bool [K, H, W], float [K])."""
        return predict_scored_masks(self.proposal_net, [image])[0]

    @torch.no_grad()
    def __call__(
        self, rgb: np.ndarray | Tensor, *, image_index: int | None = None, image_filename: str | None = None
    ) -> SceneGraph:
        """Derender one image: uint8 [H, W, 3] or float [3, H, W] -> SceneGraph.

        Objects carry the predicted attributes, ``position`` (3D), ``pixel_coords``
        (u, v, depth), rotation 0 (not predicted) and, with ``with_masks``, a
        run-length mask; ``directions`` are the calibrated camera's and the
        relationships follow CLEVR's rule.  With :attr:`min_gap` set, detections that
        would overlap a larger one on the ground are dropped first.  ``image_index`` /
        ``image_filename`` are recorded in the scene.

        Raises:
            DataError: an image under :data:`MIN_IMAGE_SIDE` pixels a side (named by ``image_filename``).
        """
        meta = {"image_index": image_index, "image_filename": image_filename}
        image = image_to_tensor(rgb)
        h, w = image.shape[1:]
        if min(h, w) < MIN_IMAGE_SIDE:
            raise DataError(f"{image_filename or 'the image'} is {w}x{h} pixels; a scene image needs at least "
                            f"{MIN_IMAGE_SIDE} a side")
        masks, scores = self.detect(image)
        if len(masks) == 0:
            return SceneGraph(objects=(), directions=dict(self.directions), **meta)
        probs, centre, boxes = read_attributes(self.attribute_net, image, masks)
        probs = self.refine(image, masks, probs)
        names = {a: [ATTRIBUTES[a][int(i)] for i in probs[a].argmax(1)] for a in probs}
        side = boxes[:, 2] * w
        u = (boxes[:, 0] * w + centre[:, 0] * side).numpy()
        v = (boxes[:, 1] * h + centre[:, 1] * side).numpy()
        objects = self.place_objects(names, u, v, (h, w), masks if self.with_masks else None)
        if self.min_gap is not None and len(objects) > 1:
            keep = keep_apart(
                [o.position[:2] for o in objects],
                [SIZE_RADIUS[o.size] for o in objects],
                masks.flatten(1).sum(1).tolist(),
                min_gap=self.min_gap,
                scores=scores.tolist(),
                keep_score=self.keep_score,
            )
            objects = tuple(objects[k] for k in keep)
        return SceneGraph(objects=objects, directions=dict(self.directions), **meta)

    def refine(self, image: Tensor, masks: Tensor, probs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Hook: the attribute probabilities ``{attribute: float [K, n]}`` of the K masks, revised.

        The base class keeps them; a subclass may join another reader's (``derender-blender-outline``).
        """
        return probs

    def place_objects(
        self,
        names: dict[str, list[str]],
        u: np.ndarray,
        v: np.ndarray,
        image_hw: tuple[int, int],
        masks: Tensor | None = None,
    ) -> tuple[SceneObject, ...]:
        """Objects with attributes ``names`` whose centres show at pixels (u, v), placed in 3D.

        The ray through each centre meets the plane at the object's resting height
        (:meth:`height`); ``image_hw`` is the image's size (the camera was calibrated
        at :attr:`image_size`). With ``masks`` each object carries its run-length mask.
        """
        h, w = image_hw
        sy, sx = self.image_size[0] / h, self.image_size[1] / w
        z = np.array([self.height(sh, sz) for sh, sz in zip(names["shape"], names["size"], strict=True)])
        xyz = backproject_to_plane(self.projection, np.c_[u * sx, v * sy], z)
        depth = project(self.projection, xyz)[:, 2]
        return tuple(
            SceneObject(
                shape=names["shape"][i],
                color=names["color"][i],
                material=names["material"][i],
                size=names["size"][i],
                position=tuple(float(c) for c in xyz[i]),  # type: ignore[arg-type]
                rotation=0.0,
                pixel_coords=(float(u[i]), float(v[i]), float(depth[i])),
                mask=mask_to_rle(masks[i].numpy()) if masks is not None else None,
            )
            for i in range(len(u))
        )


# ---------------------------------------------------------------------- checkpoints
def save_derenderer(
    path: PathLike,
    proposal_net: ProposalNet,
    attribute_net: AttributeNet,
    projection: np.ndarray,
    image_size: tuple[int, int],
    heights: dict[str, float] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write the three parts and ``metadata`` (command, seed, metrics) atomically.

    Everything is tensors or plain Python values, so the file loads with
    ``torch.load(..., weights_only=True)``.
    """
    atomic_torch_save(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "proposal": {"config": _config_dict(proposal_net.config), "state_dict": proposal_net.state_dict()},
            "attribute": {"config": _config_dict(attribute_net.config), "state_dict": attribute_net.state_dict()},
            "camera": {
                "projection": torch.tensor(projection, dtype=torch.float64),
                "image_size": list(image_size),
                "heights": {k: float(v) for k, v in (heights or {}).items()},
            },
            "metadata": dict(metadata or {}),
        },
    )


def load_derenderer(path: PathLike, *, with_masks: bool = False, kind: type[Derenderer] | None = None) -> Derenderer:
    """Load a derenderer checkpoint written by :func:`save_derenderer`.

    ``kind`` is the registered class to build (default :class:`Derenderer`).

    Raises:
        CheckpointError: missing, corrupt, damaged (weights not matching their digest),
            of another format or structure (each entry's type is checked), or not
            fitting the networks.
    """
    ckpt = torch_load(path, "derenderer checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a derenderer checkpoint (format {got!r}, expected {CHECKPOINT_FORMAT!r})")
    what = "derenderer checkpoint"
    require_fields(ckpt, path, what, {"proposal": dict, "attribute": dict, "camera": dict, "metadata": dict})
    for part in ("proposal", "attribute"):
        require_fields(ckpt[part], path, f"{what} ({part} network)", {"config": dict, "state_dict": dict})
    require_fields(ckpt["camera"], path, f"{what} (camera)", {"projection": torch.Tensor, "image_size": (list, tuple),
                                                               "heights": dict})
    try:
        pnet = ProposalNet(_config_from(ProposalConfig, ckpt["proposal"]["config"]))
        pnet.load_state_dict(ckpt["proposal"]["state_dict"])
        anet = AttributeNet(_config_from(AttributeConfig, ckpt["attribute"]["config"]))
        anet.load_state_dict(ckpt["attribute"]["state_dict"])
        projection = ckpt["camera"]["projection"].numpy()
        if projection.shape != (3, 4):
            raise ValueError(f"camera projection has shape {projection.shape}, expected (3, 4)")
        image_size = tuple(int(v) for v in ckpt["camera"]["image_size"])
        heights = {str(k): float(v) for k, v in ckpt["camera"]["heights"].items()}
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: derenderer checkpoint does not fit the networks: {exc}") from None
    return (kind or Derenderer)(pnet, anet, projection, image_size, heights, with_masks=with_masks,
                                metadata=ckpt.get("metadata"))


def load_default_derenderer(*, with_masks: bool = False) -> Derenderer:
    """The shipped derenderer (``perception/derender/checkpoints/derender.pt``).

    Reproduce it with the command stored in ``derenderer.metadata["command"]``.
    """
    return load_derenderer(DEFAULT_CHECKPOINT, with_masks=with_masks)


def _config_dict(config: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def _config_from(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


register_perceiver(Derenderer, help="NS-VQA derenderer: object proposals, attributes, 3D position (Yi et al. 2018)")


class BlenderDerenderer(Derenderer):
    """The derenderer fine-tuned for Blender (Cycles) renders of the official CLEVR assets.

    Same networks and interface as :class:`Derenderer`; its shipped checkpoint
    (``checkpoints/derender_blender.pt``; its ``metadata`` records the round and the
    command chain) was fine-tuned with ``--look-augment`` on Blender and pybullet renders
    together, then round by round on more Blender scenes rendered by ``nesy data clevr
    --renderer blender`` (docs/results/derender.md, "Blender renders"). It reads Blender
    renders far better than ``derender`` and our pybullet renders slightly worse, so
    ``derender`` stays the default.

    How it reads an image (each part's figures: docs/results/derender.md, the section named):

    * detections whose ground footprint overlaps a larger detection's are dropped
      (:attr:`min_gap` = 0, :func:`~perception.derender.overlap.keep_apart`): floor shadows
      read as small objects beside their caster, and second detections on half-hidden objects
      ("Seventeenth session");
    * unless their centre peak is at least 0.7 (:attr:`keep_score`), and the proposal decoder
      adds vote centres (:attr:`vote_min` = 80) ("Twentieth session");
    * each object's crop is also read mirrored left to right and the class probabilities are
      averaged (:attr:`test_flip`; the centre stays the plain crop's), two attribute-network
      passes per object ("Twenty-second session").

    Its checkpoint: the attribute network of round 15 (round 10's recipe on 2,148 crowded Blender
    and pybullet scenes with synthetic occluders) and a proposal network fine-tuned with
    ``nesy train derender --close-weight 4`` (objects touching a neighbour weigh 4x in the
    heat-map and offset losses) on Blender seed 57078 and crowded pybullet scenes
    ("Twenty-fourth session").

    The readings registered below leave parts out: ``derender-blender-recall`` the mirror,
    ``derender-blender-strict`` the mirror, sparing and vote centres, ``derender-blender-plain``
    all three and the overlap rule, ``derender-blender-r15`` the fine-tuned proposal network
    (round 15's instead); tta, flip, outline and votes are variants of their own, on the same
    checkpoint.
    """

    name = "derender-blender"
    default_checkpoint = BLENDER_CHECKPOINT
    min_gap = 0.0
    keep_score = 0.7
    vote_min = 80
    test_flip = True


register_perceiver(BlenderDerenderer, help="the derenderer fine-tuned on Blender (Cycles) renders of CLEVR's assets")


class BlenderDerendererPlain(BlenderDerenderer):
    """``derender-blender`` keeping every detection: no overlap rule, no vote centres, no mirror.

    The same checkpoint and networks; the reading of the figures of rounds 1-12 in
    docs/results/derender.md.
    """

    name = "derender-blender-plain"
    test_flip = False  # the reading of its measurements: no mirrored crops
    min_gap = None
    keep_score = None  # the detection of its measurements: no overlap rule, no vote centres
    vote_min = 0


register_perceiver(
    BlenderDerendererPlain, help="derender-blender keeping every detection (without its overlap rule)"
)


class BlenderDerendererTTA(BlenderDerenderer):
    """``derender-blender`` with test-time crop scales: attribute probabilities averaged over 3 crops.

    The same checkpoint, networks and overlap rule; each object's class probabilities are
    the mean over its plain crop and the crops re-cut at 0.92x and 1.08x its side (the
    ``--attribute-augment`` range the network was trained on), so reading costs three
    attribute-network passes per object. An option, not the default: what it gains on
    development questions it loses on fresh ones (docs/results/derender.md, "Eighteenth session").
    """

    name = "derender-blender-tta"
    test_flip = False  # the reading of its measurements: no mirrored crops
    test_scales = (0.92, 1.08)
    keep_score = None  # the detection of its measurements: no spared detections, no vote centres
    vote_min = 0


register_perceiver(
    BlenderDerendererTTA, help="derender-blender averaging attribute probabilities over crops at 1, 0.92 and 1.08x"
)


class BlenderDerendererStrict(BlenderDerenderer):
    """``derender-blender`` with its overlap rule but no sparing, no vote centres and no mirror.

    The same checkpoint and networks; the reading (with round 10's checkpoint) of the
    ``derender-blender`` figures in docs/results/derender.md's sections older than "Twentieth session".
    """

    name = "derender-blender-strict"
    test_flip = False  # the reading of its measurements: no mirrored crops
    keep_score = None
    vote_min = 0


register_perceiver(
    BlenderDerendererStrict, help="derender-blender with its overlap rule only (no sparing, vote centres or mirror)"
)


class BlenderDerendererRecall(BlenderDerenderer):
    """``derender-blender`` with two decode-time changes for recall (no training; same checkpoint).

    * The overlap rule spares confident detections (:attr:`keep_score` = 0.7): a detection
      whose centre peak is at least 0.7 is kept even when it overlaps a larger one on the
      ground. The floor shadows and second detections the rule is for have lower peaks than
      the real objects it dropped (docs/results/derender.md, "Twentieth session").
    * Vote centres (:attr:`vote_min` = 80, ``ProposalConfig.vote_min``): where at least 80
      foreground pixels' votes land in a 3 x 3 window at least 4 output pixels from every
      heat-map peak, there is an object too (one whose heat blob is merged into its
      neighbour's while its pixels still point at their own centre).

    This is ``derender-blender`` without the mirror (:attr:`test_flip`); figures in
    docs/results/derender.md, "Twentieth session".
    """

    name = "derender-blender-recall"
    test_flip = False  # the reading of its measurements: no mirrored crops
    keep_score = 0.7
    vote_min = 80


register_perceiver(
    BlenderDerendererRecall,
    help="derender-blender sparing confident detections from its overlap rule, with vote centres (recall)",
)


class BlenderDerendererFlip(BlenderDerenderer):
    """``derender-blender`` reading each object's crop and its mirror image (no training; same checkpoint).

    The class probabilities are the mean over the plain crop and the crop mirrored left to
    right (:attr:`test_flip`; CLEVR's attributes look the same in a mirror, only the light
    comes from the other side); the centre, and so placement and the overlap rule, stay the
    plain crop's. Two attribute-network passes per object. ``derender-blender`` reads the same
    way; this name keeps the figures of docs/results/derender.md, "Twenty-first session".
    """

    name = "derender-blender-flip"
    test_flip = True


register_perceiver(
    BlenderDerendererFlip, help="derender-blender averaging each crop's attribute probabilities with its mirror's"
)


class BlenderDerendererOutline(BlenderDerenderer):
    """``derender-blender`` whose shape read also sees each proposal mask's silhouette (an option, off by default).

    The same checkpoint, detection and attribute reading (with the mirror); then an
    :class:`~perception.derender.outline.OutlineNet` (``checkpoints/outline_blender.pt``,
    trained by ``nesy train outline`` on pybullet renders' proposal masks: a silhouette does
    not depend on the renderer's look) reads each detection's mask and the other detections'
    beside it, and its shape probabilities join the attribute network's as a product of
    experts (:func:`~perception.derender.outline.fuse_shape`; :attr:`outline_weight`, None:
    the outline checkpoint's own weight).  Against the cube/cylinder swaps on partly hidden
    objects (docs/results/derender.md, "Twenty-third session").

    Args (beyond :class:`Derenderer`'s): ``outline_net`` (default: loaded from
    :attr:`outline_checkpoint`) and ``outline_weight``.
    """

    name = "derender-blender-outline"
    outline_checkpoint = OUTLINE_CHECKPOINT
    # chosen on the development seed 33190 by the rule in docs/results/derender.md ("Twenty-third session"):
    # of 0, 0.25, ..., 2 the weight with the fewest misread matched objects, then the smaller; None: the checkpoint's
    outline_weight: float | None = 0.25

    def __init__(self, *args: Any, outline_net: OutlineNet | None = None, outline_weight: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outline_net = (outline_net if outline_net is not None else load_outline(self.outline_checkpoint)).eval()
        weight = outline_weight if outline_weight is not None else self.outline_weight
        if weight is None:
            weight = self.outline_net.config.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
            raise ConfigError(f"{type(self).__name__}: outline_weight must be a finite number >= 0, got {weight!r}")
        self.outline_weight = float(weight)

    def refine(self, image: Tensor, masks: Tensor, probs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The shape probabilities times the outline network's to the power :attr:`outline_weight`, renormalised."""
        if self.outline_weight == 0 or len(masks) == 0:
            return probs
        return {**probs, "shape": fuse_shape(probs["shape"], read_outline(self.outline_net, masks), self.outline_weight)}


register_perceiver(
    BlenderDerendererOutline,
    help="derender-blender whose shape read joins a silhouette network's (proposal-mask outlines; an option)",
)


class BlenderDerendererVotes(BlenderDerenderer):
    """``derender-blender`` taking vote centres from 60 votes instead of 80 (an option, off by default).

    The same checkpoint, mirror and overlap rule; only :attr:`vote_min` (``ProposalConfig.vote_min``)
    is lower, so a smaller object whose heat blob the proposal network merged into a neighbour's,
    while its pixels still vote for their own centre (at least 4 output pixels from every peak),
    gets its own instance: most wrong answers fall on merged instances, and a vote pile just
    under 80 is one the decoder can undo (docs/results/derender.md, "Twenty-third session").
    """

    name = "derender-blender-votes"
    vote_min = 60


register_perceiver(
    BlenderDerendererVotes,
    help="derender-blender with vote centres from 60 votes (80 by default): objects merged into a neighbour (an option)",
)


class BlenderDerendererR15(BlenderDerenderer):
    """``derender-blender`` with round 15's proposal network, not fine-tuned with ``--close-weight 4``.

    The same attribute network, camera and reading (overlap rule, vote centres, mirror); its
    checkpoint (``checkpoints/derender_blender_r15.pt``) holds round 15's proposal network, the
    baseline of the ``--close-weight 4`` fine-tune (docs/results/derender.md, "Twenty-fourth session").
    """

    name = "derender-blender-r15"
    default_checkpoint = BLENDER_R15_CHECKPOINT


register_perceiver(
    BlenderDerendererR15,
    help="derender-blender with round 15's proposal network (not fine-tuned on objects touching a neighbour)",
)
