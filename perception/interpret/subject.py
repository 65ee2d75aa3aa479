"""The network the interpretability tools look inside, and held-out crops whose every pixel has its truth.

Every tool of :mod:`perception.interpret` (Net2Vec, meaningful perturbations,
adversarial promotion and suppression, learning to scaffold) is applied to the
derenderer's attribute network (:class:`~perception.derender.attributes.AttributeNet`,
NS-VQA's crop-and-mask classifier).  :func:`train_subject` trains a small one
on crops of pybullet CLEVR renders exactly as the selective-prediction
benchmark does (:func:`perception.datasets.object_crops.render_object_crops`,
the shared training loop), and renders two more sets of scenes with the
*instance map* of each crop: which object every crop pixel shows.  The tools
fit whatever they learn on the ``probe`` scenes and are judged on the ``test``
scenes; neither set was seen by the network.

The crops are wider than the derenderer's and not centred on their object,
so that an explanation has to *find* the object: each scene's objects are
cropped with a margin of one mask box on each side (a ``1.5 S`` crop three box
sides wide), then an ``S`` window is cut from it at a seeded random offset
(:func:`random_windows`); the object's box always lies inside the window but
anywhere in it, and neighbouring objects fall inside many windows.  The network
trains on such windows too.

Shapes (K crops, crop side S)::

    crops      float [K, 4, S, S]   RGB in [0, 1] and the object's mask channel (the network's input)
    boxes      float [K, 4]
    object_map int64 [K, S, S]      row (in the same ObjectCrops) of the object each pixel shows, -1 background
    own        bool  [K, S, S]      the classified object's exact pixels
    others     bool  [K, S, S]      pixels of every other object inside the crop
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from perception.benchmark import train_steps
from perception.datasets.object_crops import ObjectCrops, render_object_crops
from perception.derender.attributes import AttributeConfig, AttributeNet
from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevr_world import ClevrWorldConfig

__all__ = [
    "SubjectConfig",
    "Subject",
    "QUICK_SUBJECT",
    "FULL_SUBJECT",
    "train_subject",
    "object_map",
    "own_mask",
    "other_mask",
    "concept_mask",
    "rgb_logits",
    "random_windows",
    "bench_subject",
    "block_output",
]

_WORLD = dict(width=240, height=160, min_pixels=60)  # CLEVR's 480 x 320 at half size, as the other crop benches


@dataclass(frozen=True)
class SubjectConfig:
    """How the subject network is trained and how many probe and test scenes are rendered.

    Attributes:
        train_scenes: Scenes whose crops train the network.
        probe_scenes: Scenes the tools fit on (concept weights, concept units, explainers).
        test_scenes: Held-out scenes every check is measured on.
        steps, batch, lr: The network's training (Adam, the shared loop).
        crop_size: S, the side of the network's input window.
        width: Channels of the network's first block.
    """

    train_scenes: int
    probe_scenes: int
    test_scenes: int
    steps: int
    batch: int
    lr: float = 2e-3
    crop_size: int = 32
    width: int = 16

    @property
    def attribute_config(self) -> AttributeConfig:
        """The network's: windows of side S."""
        return AttributeConfig(crop_size=self.crop_size, width=self.width)

    @property
    def render_config(self) -> AttributeConfig:
        """The rendered crops: 1.5 S pixels for three mask-box sides (margin 1), so an S window holds the box."""
        return AttributeConfig(crop_size=self.crop_size * 3 // 2, margin=1.0, width=self.width)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


QUICK_SUBJECT = SubjectConfig(train_scenes=4, probe_scenes=2, test_scenes=2, steps=10, batch=16)
FULL_SUBJECT = SubjectConfig(train_scenes=150, probe_scenes=40, test_scenes=60, steps=1500, batch=64)


@dataclass(frozen=True)
class Subject:
    """A trained attribute network (in eval mode) with its training, probe and test crops.

    Attributes:
        net: The network.
        config: How it was made.
        seed: The seed of its scenes and its training.
        train: Its training crops (1.5 S wide: the network saw a fresh random S window of them at each step).
        probe: Crops of other scenes, with ``instances`` (tools fit here).
        test: Crops of yet other scenes, with ``instances`` (checks are measured here).
        accuracy: Test accuracy of each attribute head.
    """

    net: AttributeNet
    config: SubjectConfig
    seed: int
    train: ObjectCrops
    probe: ObjectCrops
    test: ObjectCrops
    accuracy: dict[str, float]


@lru_cache(maxsize=4)
def train_subject(config: SubjectConfig, seed: int) -> Subject:
    """Render the scenes and train the network from ``seed`` (cached: the tools of one run share it).

    Scene seeds: training ``5_000_000 + 10_000 * seed + i``, probe ``+ 3_000 + i``,
    test ``+ 6_000 + i`` (disjoint for every seed below 100).
    """
    if seed < 0:
        raise ConfigError(f"train_subject: seed must be >= 0, got {seed}")
    world, crop, s = ClevrWorldConfig(**_WORLD), config.render_config, config.crop_size
    base = 5_000_000 + seed * 10_000
    train = render_object_crops(range(base, base + config.train_scenes), world, crop)  # windows drawn per step
    probe = random_windows(render_object_crops(range(base + 3_000, base + 3_000 + config.probe_scenes), world, crop,
                                               instances=True), s, seed + 1)
    test = random_windows(render_object_crops(range(base + 6_000, base + 6_000 + config.test_scenes), world, crop,
                                              instances=True), s, seed + 2)
    torch.manual_seed(seed)
    net = AttributeNet(config.attribute_config)

    draws = iter(range(seed * 1_000_000 + 10, seed * 1_000_000 + 10 + config.steps))

    def step(idx: Tensor) -> dict[str, Tensor]:
        batch = random_windows(train.subset(idx), s, next(draws))  # a new window of each crop at every step
        logits, _ = net(batch.crops, batch.boxes)
        return {"loss": sum(F.cross_entropy(logits[a], batch.labels[a]) for a in ATTRIBUTES)}

    train_steps(net, step, items=len(train), steps=config.steps, batch=config.batch, lr=config.lr, seed=seed,
                desc="interpret subject")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        logits, _ = net(test.crops, test.boxes)
    accuracy = {a: float((logits[a].argmax(1) == test.labels[a]).float().mean()) for a in ATTRIBUTES}
    return Subject(net, config, seed, train, probe, test, accuracy)


def bench_subject(quick: bool, seed: int) -> Subject:
    """The subject of a benchmark entry: :data:`QUICK_SUBJECT` or :data:`FULL_SUBJECT`, trained from ``seed``."""
    return train_subject(QUICK_SUBJECT if quick else FULL_SUBJECT, seed)


def block_output(net: AttributeNet, crops: Tensor, layer: int) -> Tensor:
    """float [K, C, h, w]: the output of conv block ``layer`` of ``net.features`` on crops [K, 4, S, S]."""
    if not 0 <= layer < len(net.features):
        raise ConfigError(f"layer {layer} out of range: AttributeNet has blocks 0..{len(net.features) - 1}")
    return net.features[: layer + 1](crops)


def random_windows(crops: ObjectCrops, size: int, seed: int) -> ObjectCrops:
    """An S = ``size`` window of each crop at a random offset in [0, side - S] per axis (drawn from ``seed``).

    The boxes follow the windows (centre moved, side scaled), so the network
    still knows where each window lies in the image.  With crops of
    ``1.5 S`` pixels and margin 1 the object's mask box always lies inside the window.
    """
    side = crops.crops.shape[-1]
    if not 0 < size <= side:
        raise ConfigError(f"random_windows: window {size} must be in 1..{side} (the crop side)")
    g = torch.Generator().manual_seed(seed)
    off = torch.randint(side - size + 1, (len(crops), 2), generator=g)  # (x, y) of each window's corner
    rows = off[:, 1, None] + torch.arange(size)  # [K, S]
    cols = off[:, 0, None] + torch.arange(size)
    k = torch.arange(len(crops))[:, None, None]
    window = crops.crops[k[..., None], torch.arange(crops.crops.shape[1])[None, :, None, None],
                         rows[:, None, :, None], cols[:, None, None, :]]
    instances = None if crops.instances is None else crops.instances[k, rows[:, :, None], cols[:, None, :]]
    boxes = crops.boxes.clone()
    shift = (off.float() + size / 2) / side - 0.5  # window centre - crop centre, in crop sides
    boxes[:, 0] += shift[:, 0] * crops.boxes[:, 2]
    boxes[:, 1] += shift[:, 1] * crops.boxes[:, 3]
    boxes[:, 2:] *= size / side
    return ObjectCrops(window, boxes, crops.labels, crops.rotation, crops.scene, crops.scenes, instances)


def object_map(crops: ObjectCrops) -> Tensor:
    """int64 [K, S, S]: the row (in ``crops``) of the object each pixel shows, -1 for background.

    ``crops`` must hold every object of its scenes (as rendered, not a subset).
    """
    if crops.instances is None:
        raise ConfigError("object_map needs crops rendered with instances=True")
    counts = torch.bincount(crops.scene, minlength=len(crops.scenes)).tolist()
    if crops.scenes and counts != [len(s.objects) for s in crops.scenes]:
        raise ConfigError("object_map needs every object of each scene (crops as rendered, not a subset)")
    # row of object j of scene s = first row of scene s + j (render_object_crops keeps scene order)
    first = torch.zeros(int(crops.scene.max()) + 1, dtype=torch.long)
    for s in crops.scene.unique().tolist():
        first[s] = int(torch.nonzero(crops.scene == s)[0, 0])
    inst = crops.instances
    rows = first[crops.scene][:, None, None] + inst
    return torch.where(inst >= 0, rows, torch.full_like(inst, -1))


def own_mask(crops: ObjectCrops) -> Tensor:
    """bool [K, S, S]: the pixels of the object each crop classifies."""
    return object_map(crops) == torch.arange(len(crops))[:, None, None]


def other_mask(crops: ObjectCrops) -> Tensor:
    """bool [K, S, S]: the pixels of every other object inside each crop."""
    m = object_map(crops)
    return (m >= 0) & (m != torch.arange(len(crops))[:, None, None])


def concept_mask(crops: ObjectCrops, attribute: str, value: str | None = None) -> Tensor:
    """bool [K, S, S]: pixels of any object whose ``attribute`` is ``value`` (``value`` None: any object)."""
    m = object_map(crops)
    if value is None:
        return m >= 0
    if attribute not in ATTRIBUTES or value not in ATTRIBUTES[attribute]:
        raise ConfigError(f"concept_mask: unknown concept {attribute}={value!r}; attributes: {dict(ATTRIBUTES)}")
    has = crops.labels[attribute] == ATTRIBUTES[attribute].index(value)
    return (m >= 0) & has[m.clamp(min=0)]


def rgb_logits(net: AttributeNet, rgb: Tensor, mask: Tensor, boxes: Tensor, attribute: str) -> Tensor:
    """Logits of one attribute head for (possibly perturbed) RGB with the object's mask channel kept.

    Args:
        rgb: float [K, 3, S, S]; mask: float [K, 1, S, S]; boxes: float [K, 4].

    Returns:
        float [K, n_values].
    """
    logits, _ = net(torch.cat([rgb, mask], 1), boxes)
    return logits[attribute]
