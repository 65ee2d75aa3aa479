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

The crops have a wider margin than the derenderer's (0.5 of the mask box on
each side instead of 0.25) so that neighbouring objects fall inside many of
them: an explanation must then find *the* object among several.

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
        crop_size, width, margin: :class:`~perception.derender.attributes.AttributeConfig`.
    """

    train_scenes: int
    probe_scenes: int
    test_scenes: int
    steps: int
    batch: int
    lr: float = 2e-3
    crop_size: int = 32
    width: int = 16
    margin: float = 0.5

    @property
    def attribute_config(self) -> AttributeConfig:
        return AttributeConfig(crop_size=self.crop_size, margin=self.margin, width=self.width)


QUICK_SUBJECT = SubjectConfig(train_scenes=4, probe_scenes=2, test_scenes=2, steps=10, batch=16)
FULL_SUBJECT = SubjectConfig(train_scenes=150, probe_scenes=40, test_scenes=60, steps=500, batch=64)


@dataclass(frozen=True)
class Subject:
    """A trained attribute network (in eval mode) with its training, probe and test crops.

    Attributes:
        net: The network.
        config: How it was made.
        seed: The seed of its scenes and its training.
        train: Its training crops.
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
    world, crop = ClevrWorldConfig(**_WORLD), config.attribute_config
    base = 5_000_000 + seed * 10_000
    train = render_object_crops(range(base, base + config.train_scenes), world, crop)
    probe = render_object_crops(range(base + 3_000, base + 3_000 + config.probe_scenes), world, crop, instances=True)
    test = render_object_crops(range(base + 6_000, base + 6_000 + config.test_scenes), world, crop, instances=True)
    torch.manual_seed(seed)
    net = AttributeNet(crop)

    def step(idx: Tensor) -> dict[str, Tensor]:
        logits, _ = net(train.crops[idx], train.boxes[idx])
        return {"loss": sum(F.cross_entropy(logits[a], train.labels[a][idx]) for a in ATTRIBUTES)}

    train_steps(net, step, items=len(train), steps=config.steps, batch=config.batch, lr=config.lr, seed=seed,
                desc="interpret subject")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        logits, _ = net(test.crops, test.boxes)
    accuracy = {a: float((logits[a].argmax(1) == test.labels[a]).float().mean()) for a in ATTRIBUTES}
    return Subject(net, config, seed, train, probe, test, accuracy)


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
