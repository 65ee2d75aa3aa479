"""Joint image / scene-description embeddings, global-only against pyramid (object, pair, scene) alignment.

Two papers give the two halves.  Recipe1M+ (Marin, Biswas, Ofli, Hynes,
Salvador, Aytar, Weber and Torralba, TPAMI 2019, arXiv 1810.06553) trains an
image encoder and a structured-text encoder (ingredients and instructions)
into one space, so that an image retrieves its own description among
thousands; the description encoder there reads a list of items, as ours
reads a scene's objects.  PyramidCLIP (Gao et al., NeurIPS 2022, arXiv
2204.14095) aligns images and text at several semantic levels rather than
only globally: here the levels are the scene graph's own, **objects**
(the region of each object against its attribute words), **pairs** (two
regions against "A is left of / in front of B") and the **scene**.

Image encoder: a four-layer CNN with coordinate channels; the scene
embedding pools the whole feature map, an object's pools it under the
object's mask (the renderer's, used for training only), a pair's reads two
objects' pooled features.  Description encoder: each object's four attribute
words are embedded and mixed into an object vector; a pair's vector mixes two
objects' and their two relation words; the scene vector mixes the mean of the
objects' and of the pairs'.  Every level is aligned with InfoNCE at a fixed
temperature (identical descriptions in a batch all count as positives).
The ablation (``levels=("scene",)``) is the same two encoders, data, steps and
seed with the scene-level loss only: retrieval always uses the scene
embeddings, so the pyramid acts only through training.

Data: CLEVR-CoGenT scenes of 2-4 objects rendered at 64 x 48
(:data:`perception.generative.scenes.SMALL_WORLD`); training and the first
test in condition A (cubes gray/blue/brown/yellow, cylinders
red/green/purple/cyan), the second test in condition B (palettes swapped),
whose cube and cylinder colours were never seen in training.

Shapes (N scenes, at most M = 4 objects and P = 6 pairs)::

    images     float [N, 3, 48, 64]
    attributes int64 [N, M, 4]       size, color, material, shape indices (CLEVR vocabulary)
    present    bool  [N, M]
    masks      float [N, M, 12, 16]  fraction of each feature cell the object covers
    relations  int64 [N, P, 2]       (0 left / 1 right, 0 behind / 1 front): where object j of pair (i, j) stands
    embeddings float [N, D]          unit vectors, one per image and one per description
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.audiovisual.vatt import nce_loss
from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.model_stats import count_parameters
from perception.scene_graph import SceneGraph
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.worlds.clevr_properties import ATTRIBUTES, COGENT_CONDITIONS

__all__ = ["DESCRIPTION_ATTRIBUTES", "LEVELS", "EmbeddingConfig", "SceneBatch", "describe_scenes",
           "render_cogent", "JointEmbedding", "pyramid_loss", "retrieval_ranks", "train_joint"]

DESCRIPTION_ATTRIBUTES = ("size", "color", "material", "shape")
LEVELS = ("object", "pair", "scene")
MAX_OBJECTS = 4
PAIRS = tuple(itertools.combinations(range(MAX_OBJECTS), 2))
FEATURE_HW = (12, 16)  # the image encoder's feature map for 48 x 64 images (stride 4)


@dataclass(frozen=True)
class EmbeddingConfig:
    """Architecture and training signal of :class:`JointEmbedding`.

    Args:
        dim: Size of the joint space.
        width: Channels of the image encoder.
        levels: Aligned levels: ``LEVELS`` (pyramid) or ``("scene",)`` (global only, the ablation).
        temperature: InfoNCE temperature (fixed).
    """

    dim: int = 64
    width: int = 64
    levels: tuple[str, ...] = LEVELS
    temperature: float = 0.07

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if "scene" not in self.levels or not set(self.levels) <= set(LEVELS):
            raise ConfigError(f"EmbeddingConfig.levels must include 'scene' and come from {LEVELS}, "
                              f"got {self.levels!r}")


@dataclass(frozen=True)
class SceneBatch:
    """Scenes as tensors (shapes in the module docstring)."""

    images: Tensor
    attributes: Tensor
    present: Tensor
    masks: Tensor
    relations: Tensor

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: Tensor) -> SceneBatch:
        return SceneBatch(*(t[idx] for t in (self.images, self.attributes, self.present, self.masks,
                                               self.relations)))


def describe_scenes(scenes: Sequence[SceneGraph]) -> tuple[Tensor, Tensor, Tensor]:
    """Scene descriptions as tokens: (attributes [N, M, 4], present [N, M], relations [N, P, 2]).

    Relations are read from each scene's camera directions, as CLEVR's: object
    j of pair (i, j) is right of i when (p_j - p_i) . right > 0, in front when
    (p_j - p_i) . front > 0.
    """
    n = len(scenes)
    attributes = torch.zeros(n, MAX_OBJECTS, len(DESCRIPTION_ATTRIBUTES), dtype=torch.long)
    present = torch.zeros(n, MAX_OBJECTS, dtype=torch.bool)
    relations = torch.zeros(n, len(PAIRS), 2, dtype=torch.long)
    for s, scene in enumerate(scenes):
        if not 1 <= len(scene) <= MAX_OBJECTS:
            raise StateError(f"describe_scenes: {scene.name} has {len(scene)} objects, at most {MAX_OBJECTS} allowed")
        for k, obj in enumerate(scene.objects):
            attributes[s, k] = torch.tensor([ATTRIBUTES[a].index(obj.attribute(a)) for a in DESCRIPTION_ATTRIBUTES])
            present[s, k] = True
        right, front = np.asarray(scene.directions["right"]), np.asarray(scene.directions["front"])
        for p, (i, j) in enumerate(PAIRS):
            if j < len(scene):
                delta = np.asarray(scene.objects[j].position) - np.asarray(scene.objects[i].position)
                relations[s, p] = torch.tensor([int(delta @ right > 0), int(delta @ front > 0)])
    return attributes, present, relations


def render_cogent(seeds: range, condition: str) -> SceneBatch:
    """Render CoGenT ``condition`` ("A" or "B") scenes of 2-4 objects, one per seed, at 64 x 48."""
    from perception.datasets.clevr_render import generate_scene
    from perception.generative.scenes import SMALL_WORLD

    if condition not in COGENT_CONDITIONS:
        raise ConfigError(f"render_cogent: condition must be one of {tuple(COGENT_CONDITIONS)}, got {condition!r}")
    world = replace(SMALL_WORLD, layout=replace(SMALL_WORLD.layout, shape_colors=COGENT_CONDITIONS[condition]))
    scenes, images, masks = [], [], []
    for seed in seeds:
        scene, rgb, _depth, mask = generate_scene(seed, world)
        ids = torch.from_numpy(mask.astype("int64"))
        one_hot = torch.stack([(ids == k).float() for k in range(MAX_OBJECTS)])
        masks.append(F.adaptive_avg_pool2d(one_hot, FEATURE_HW))
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
        scenes.append(scene)
    attributes, present, relations = describe_scenes(scenes)
    return SceneBatch(torch.stack(images), attributes, present, torch.stack(masks), relations)


def _mlp(cin: int, cout: int, hidden: int = 128) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, cout))


def _masked_mean(x: Tensor, present: Tensor) -> Tensor:
    """Mean over dim 1 of x [N, K, C] where present [N, K] (at least one per row)."""
    w = present.float().unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


class JointEmbedding(nn.Module):
    """Image encoder and description encoder into one space, with object, pair and scene heads on each side.

    ``forward(batch) -> {level: (image [K, D], text [K, D], keys [K] int64)}`` for the three levels
    (K = scenes, present objects or present pairs); ``embed_images`` and ``embed_descriptions`` give the
    scene level alone.
    """

    def __init__(self, config: EmbeddingConfig = EmbeddingConfig()) -> None:
        super().__init__()
        self.config = config
        w, d = config.width, config.dim
        self.cnn = nn.Sequential(
            nn.Conv2d(5, w // 2, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(w // 2, w, 3, 2, 1), nn.GroupNorm(8, w), nn.ReLU(),
            nn.Conv2d(w, w, 3, 1, 1), nn.GroupNorm(8, w), nn.ReLU(),
            nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(),
        )
        feat = w + 2  # features and the cell's coordinates
        self.image_scene = _mlp(2 * feat, d)
        self.image_object = _mlp(feat, d)
        self.image_pair = _mlp(2 * feat, d)
        self.words = nn.ModuleList([nn.Embedding(len(ATTRIBUTES[a]), 32) for a in DESCRIPTION_ATTRIBUTES])
        self.relation_words = nn.ModuleList([nn.Embedding(2, 32) for _ in range(2)])
        self.text_object_hidden = _mlp(32 * len(DESCRIPTION_ATTRIBUTES), 128)
        self.text_pair_hidden = _mlp(2 * 128 + 64, 128)
        self.text_object, self.text_pair = nn.Linear(128, d), nn.Linear(128, d)
        self.text_scene = _mlp(2 * 128, d)

    @staticmethod
    def _coords(n: int, h: int, w: int, like: Tensor) -> Tensor:
        ys, xs = torch.linspace(-1, 1, h, dtype=like.dtype), torch.linspace(-1, 1, w, dtype=like.dtype)
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(n, -1, -1, -1)

    def _feature_map(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1:] != (3, 48, 64):
            raise StateError(f"JointEmbedding expects images [N, 3, 48, 64], got {tuple(images.shape)}")
        n = len(images)
        x = self.cnn(torch.cat([images, self._coords(n, 48, 64, images)], 1))
        return torch.cat([x, self._coords(n, *FEATURE_HW, x)], 1)  # [N, w + 2, 12, 16]

    def embed_images(self, images: Tensor) -> Tensor:
        """Scene-level image embeddings: [N, 3, 48, 64] -> unit [N, D]."""
        f = self._feature_map(images)
        return F.normalize(self.image_scene(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)), dim=-1)

    def _text_hidden(self, attributes: Tensor, present: Tensor, relations: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        words = torch.cat([emb(attributes[..., k]) for k, emb in enumerate(self.words)], -1)
        obj = self.text_object_hidden(words)  # [N, M, 128]
        i, j = (torch.tensor([p[k] for p in PAIRS]) for k in (0, 1))
        rel = torch.cat([emb(relations[..., k]) for k, emb in enumerate(self.relation_words)], -1)
        pair = self.text_pair_hidden(torch.cat([obj[:, i], obj[:, j], rel], -1))  # [N, P, 128]
        pair_present = present[:, i] & present[:, j]
        scene = self.text_scene(torch.cat([_masked_mean(obj, present), _masked_mean(pair, pair_present)], -1))
        return obj, pair, scene

    def embed_descriptions(self, attributes: Tensor, present: Tensor, relations: Tensor) -> Tensor:
        """Scene-level description embeddings -> unit [N, D]."""
        return F.normalize(self._text_hidden(attributes, present, relations)[2], dim=-1)

    def forward(self, batch: SceneBatch) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        f = self._feature_map(batch.images)
        n = len(f)
        image_scene = self.image_scene(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1))
        area = batch.masks.sum((2, 3)).clamp(min=1e-6)  # [N, M]
        pooled = torch.einsum("nmhw,nchw->nmc", batch.masks, f) / area.unsqueeze(-1)  # [N, M, C]
        i, j = (torch.tensor([p[k] for p in PAIRS]) for k in (0, 1))
        obj_h, pair_h, text_scene = self._text_hidden(batch.attributes, batch.present, batch.relations)
        pair_present = batch.present[:, i] & batch.present[:, j]
        # keys: identical descriptions at a level are positives of each other
        obj_keys = _keys(batch.attributes)
        pair_keys = _keys(torch.cat([batch.attributes[:, i], batch.attributes[:, j], batch.relations], -1))
        scene_keys = torch.arange(n)
        norm = lambda t: F.normalize(t, dim=-1)  # noqa: E731
        return {
            "scene": (norm(image_scene), norm(text_scene), scene_keys),
            "object": (norm(self.image_object(pooled[batch.present])), norm(self.text_object(obj_h[batch.present])),
                       obj_keys[batch.present]),
            "pair": (norm(self.image_pair(torch.cat([pooled[:, i], pooled[:, j]], -1)[pair_present])),
                     norm(self.text_pair(pair_h[pair_present])), pair_keys[pair_present]),
        }


def _keys(tokens: Tensor) -> Tensor:
    """One int64 per row of the last dim (equal rows, equal keys): [..., T] -> [...] (base-8 digits)."""
    base = 8 ** torch.arange(tokens.shape[-1], dtype=torch.long)
    return (tokens * base).sum(-1)


def multi_positive_nce(image: Tensor, text: Tensor, keys: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE where every pair with equal ``keys`` is a positive: -log(sum_pos e^s / sum_all e^s)."""
    logits = image @ text.T / temperature
    positive = keys.view(-1, 1) == keys.view(1, -1)
    pos = logits.masked_fill(~positive, float("-inf"))
    i2t = (torch.logsumexp(logits, 1) - torch.logsumexp(pos, 1)).mean()
    t2i = (torch.logsumexp(logits, 0) - torch.logsumexp(pos, 0)).mean()
    return 0.5 * (i2t + t2i)


def pyramid_loss(model: JointEmbedding, batch: SceneBatch) -> dict[str, Tensor]:
    """The training loss: scene-level InfoNCE plus, for the pyramid, the object and pair levels (weight 1 each)."""
    out = model(batch)
    t = model.config.temperature
    terms = {"scene": nce_loss(out["scene"][0], out["scene"][1], t)}
    for level in model.config.levels:
        if level != "scene":
            terms[level] = multi_positive_nce(*out[level], t)
    return {"loss": sum(terms.values()), **{k: v.detach() for k, v in terms.items()}}


@torch.no_grad()
def retrieval_ranks(model: JointEmbedding, data: SceneBatch) -> Tensor:
    """Image-to-description rank (1 = first) of each scene's own description among all of ``data``'s: int64 [N]."""
    model.eval()
    images = torch.cat([model.embed_images(x) for x in data.images.split(256)])
    texts = model.embed_descriptions(data.attributes, data.present, data.relations)
    sims = images @ texts.T
    own = sims.diagonal().unsqueeze(1)
    return (sims > own).sum(1) + 1


def train_joint(config: EmbeddingConfig, data: SceneBatch, steps: int, batch: int, lr: float,
                seed: int) -> tuple[JointEmbedding, list[float]]:
    """Train with the shared loop; returns the model (eval mode) and its per-round losses."""
    torch.manual_seed(seed)
    model = JointEmbedding(config)
    history = train_steps(model, lambda idx: pyramid_loss(model, data.take(idx)), items=len(data), steps=steps,
                          batch=batch, lr=lr, seed=seed, desc=f"joint embedding {'+'.join(config.levels)}")
    return model.eval(), [float(h["loss"]) for h in history]


def _summary(ranks: Tensor) -> dict[str, float]:
    r = ranks.float()
    return {"median_rank": float(r.median()), "recall_at_1": float((r <= 1).float().mean()),
            "recall_at_5": float((r <= 5).float().mean()), "recall_at_10": float((r <= 10).float().mean()),
            "scenes": len(r)}


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=3000, test=1000, steps=2000, batch=32, lr=1e-3)
_QUICK = BenchSize(train=16, test=8, steps=3, batch=8, lr=1e-3)


@register_perception_bench(
    "joint-embedding",
    paper="Marin et al., Recipe1M+, arXiv 1810.06553; Gao et al., PyramidCLIP, arXiv 2204.14095",
    check="image-to-description median rank <= 5 over 1,000 held-out scenes; "
          "CoGenT B recall@1 >= global-only + 5 points",
    ablation="global-only alignment (scene level alone)",
)
def bench_joint_embedding(quick: bool, seed: int) -> BenchOutcome:
    """Train pyramid and global-only embeddings on CoGenT A scenes of ``seed``; test on other A and on B scenes."""
    bench = _QUICK if quick else _FULL
    base = 3_000_000 + seed * 100_000  # scene seeds: train, test A, test B disjoint
    train = render_cogent(range(base, base + bench.train), "A")
    test_a = render_cogent(range(base + 50_000, base + 50_000 + bench.test), "A")
    test_b = render_cogent(range(base + 70_000, base + 70_000 + bench.test), "B")
    results = {}
    for name, levels in (("pyramid", LEVELS), ("global", ("scene",))):
        model, losses = train_joint(EmbeddingConfig(levels=levels), train, bench.steps, bench.batch, bench.lr, seed)
        results[name] = {"A": _summary(retrieval_ranks(model, test_a)), "B": _summary(retrieval_ranks(model, test_b)),
                         "params": count_parameters(model), "loss_first_last": [losses[0], losses[-1]]}
    ours, abl = results["pyramid"], results["global"]
    checks = (
        Check("image-to-description median rank, held-out CoGenT A", f"rank among {bench.test}, lower is better",
              ours["A"]["median_rank"], abl["A"]["median_rank"], "<= 5", ours["A"]["median_rank"] <= 5),
        Check("image-to-description recall@1, CoGenT B (unseen shape-colour pairs)",
              f"fraction of {bench.test} scenes, higher is better", ours["B"]["recall_at_1"],
              abl["B"]["recall_at_1"], ">= ablation + 0.05", ours["B"]["recall_at_1"] >= abl["B"]["recall_at_1"] + 0.05),
    )
    figures = {"train_scenes": bench.train, "test_scenes": bench.test, "steps": bench.steps, "batch": bench.batch,
               "image": "64x48 pybullet CLEVR renders, 2-4 objects", "train_condition": "CoGenT A",
               "models": results}
    return BenchOutcome(checks, figures)
