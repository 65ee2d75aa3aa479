"""AutoLink: self-supervised keypoints linked by a learned graph, from masked-image reconstruction.

He, Wandt and Rhodin, "AutoLink: Self-supervised Learning of Human Skeletons
and Object Outlines by Linking Keypoints", NeurIPS 2022 (arXiv 2205.10636).
A detector turns an image into K keypoints (a heatmap per keypoint, then its
soft arg-max).  Every pair of keypoints is linked by an edge whose weight
``w_ij`` is one learned number shared by all images (Sec. 3.2; a softplus
whose parameter learns faster than the networks'); the edge map
draws each link as a Gaussian line of thickness ``sigma`` between its two
keypoints, scaled by its weight, and keeps the maximum over all links (Eq. 2).
A decoder reconstructs the image from the edge map and a copy of the image
with most of its patches masked out (Sec. 3.3): the masked copy gives the
appearance, the edge map must say where the body is.  Links that do not lie
on the body draw where the image is background and the reconstruction loss
turns their weights down; the links that stay form the graph, exported to
networkx by :func:`link_graph`.

The ablation (``links=False``) is the same detector and decoder with each
keypoint drawn as a Gaussian blob of the same ``sigma`` (no links): the
keypoint-heatmap bottleneck of Jakab et al. (NeurIPS 2018) that AutoLink
replaces.

Shapes (N images of side S, K keypoints)::

    images      float [N, 3, S, S] in [0, 1]
    keypoints   float [N, K, 2]   (x, y) in [-1, 1], pixel centres at -1 + (2i + 1) / S
    weights     float [K, K]      symmetric link weights >= 0, zero diagonal
    edge map    float [N, 1, S, S] in [0, 1]
    recon       float [N, 3, S, S]

Data: articulated pybullet chains (:mod:`physics.worlds.articulated`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.model_stats import count_parameters
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = [
    "AutoLinkConfig",
    "AutoLink",
    "soft_argmax",
    "edge_map",
    "blob_map",
    "mask_patches",
    "link_graph",
    "LINK_THRESHOLD",
    "detect",
    "fit_linear_regressor",
    "apply_regressor",
    "evaluate_keypoints",
    "train_autolink",
    "match_keypoints",
    "edge_f1",
]


@dataclass(frozen=True)
class AutoLinkConfig:
    """Architecture and training choices of :class:`AutoLink`.

    Args:
        keypoints: K, keypoints the detector finds.
        width: Channels of the first stage of the detector and the decoder (doubled at each down-sampling).
        sigma: Thickness of a link (and radius of a blob) in normalised [-1, 1] image units.
        links: True: keypoints linked by learned edges (AutoLink); False: Gaussian blobs (the ablation).
        mask_ratio: Fraction of the image patches the decoder does not see (the paper's 0.8).
        patch: Side of a masked patch in pixels.
    """

    keypoints: int = 5
    width: int = 8
    sigma: float = 0.08
    links: bool = True
    mask_ratio: float = 0.8
    patch: int = 8

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.keypoints < 2:
            raise ConfigError(f"AutoLinkConfig.keypoints must be >= 2 to link, got {self.keypoints}")
        if self.width < 1 or self.sigma <= 0 or self.patch < 1:
            raise ConfigError("AutoLinkConfig width, sigma and patch must be positive")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"AutoLinkConfig.mask_ratio must be in [0, 1), got {self.mask_ratio}")


# softplus(-1) = 0.31: every link starts partly on, so every keypoint gets a gradient from the start
# (measured on seed 0: starting nearly off, at softplus(-4) as the authors' release does, left a keypoint unused)
_LINK_START = -1.0
LINK_THRESHOLD = 0.25  # a link belongs to the graph when its weight is >= this fraction of the largest
_LINK_RATE = 25.0  # the link parameters move 25x faster than the networks' (a per-parameter rate, by scaling)


def _grid(side: int, device: torch.device | None = None) -> Tensor:
    """Pixel centres in normalised coordinates: [side, side, 2] as (x, y)."""
    c = (torch.arange(side, dtype=torch.float32, device=device) * 2 + 1) / side - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x, y], -1)


def soft_argmax(heatmaps: Tensor) -> Tensor:
    """Expected position under each map's spatial softmax: [N, K, H, W] -> [N, K, 2] (x, y) in [-1, 1]."""
    n, k, h, w = heatmaps.shape
    if h != w:
        raise StateError(f"soft_argmax expects square maps, got {h}x{w}")
    prob = heatmaps.flatten(2).softmax(-1)  # [N, K, HW]
    return prob @ _grid(h, heatmaps.device).view(h * w, 2)


def _pairs(k: int) -> tuple[Tensor, Tensor]:
    i, j = torch.triu_indices(k, k, 1)
    return i, j


def edge_map(keypoints: Tensor, weights: Tensor, side: int, sigma: float) -> Tensor:
    """AutoLink's edge map (Eq. 2): max over links of ``w_ij exp(-d_ij(p)^2 / sigma^2)``.

    Args:
        keypoints: float [N, K, 2] in [-1, 1].
        weights: float [K, K] link weights (only the upper triangle is read).
        side: S, the output's side in pixels.
        sigma: Link thickness in normalised units.

    Returns:
        float [N, 1, S, S]; ``d_ij(p)`` is the distance from pixel ``p`` to the segment from keypoint i to j.
    """
    i, j = _pairs(keypoints.shape[1])
    a, b = keypoints[:, i], keypoints[:, j]  # [N, E, 2]
    p = _grid(side, keypoints.device).view(1, 1, side * side, 2)
    ab = (b - a).unsqueeze(2)  # [N, E, 1, 2]
    ap = p - a.unsqueeze(2)  # [N, E, P, 2]
    t = ((ap * ab).sum(-1) / (ab.pow(2).sum(-1) + 1e-8)).clamp(0, 1)
    d2 = (ap - t.unsqueeze(-1) * ab).pow(2).sum(-1)  # [N, E, P]
    heat = weights[i, j].view(1, -1, 1) * torch.exp(-d2 / sigma**2)
    return heat.amax(1).view(-1, 1, side, side)


def blob_map(keypoints: Tensor, side: int, sigma: float) -> Tensor:
    """The ablation's map: max over keypoints of a Gaussian blob, [N, K, 2] -> [N, 1, S, S]."""
    p = _grid(side, keypoints.device).view(1, 1, side * side, 2)
    d2 = (p - keypoints.unsqueeze(2)).pow(2).sum(-1)
    return torch.exp(-d2 / sigma**2).amax(1).view(-1, 1, side, side)


def mask_patches(images: Tensor, ratio: float, patch: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero a random ``ratio`` of the ``patch`` x ``patch`` patches of each image (same shape back)."""
    n, _, h, w = images.shape
    if h % patch or w % patch:
        raise StateError(f"mask_patches: image {h}x{w} is not a whole number of {patch}-pixel patches")
    cells = (h // patch) * (w // patch)
    hidden = round(ratio * cells)
    order = torch.rand(n, cells, generator=generator).argsort(1).to(images.device)
    keep = (order >= hidden).float().view(n, 1, h // patch, w // patch)
    return images * F.interpolate(keep, scale_factor=patch, mode="nearest")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(4, cout), cout), nn.LeakyReLU(0.2))


class _Detector(nn.Module):
    """Image [N, 3, S, S] -> keypoint heatmaps [N, K, S/2, S/2] (a two-level hourglass)."""

    def __init__(self, k: int, w: int) -> None:
        super().__init__()
        self.stem = _conv(3, w)
        self.down1 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.down2 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        self.up = nn.Sequential(_conv(6 * w, 2 * w), nn.Conv2d(2 * w, k, 1))

    def forward(self, x: Tensor) -> Tensor:
        f1 = self.down1(self.stem(x))
        f2 = F.interpolate(self.down2(f1), scale_factor=2, mode="bilinear", align_corners=False)
        return self.up(torch.cat([f1, f2], 1))


class _Decoder(nn.Module):
    """(masked image, map) [N, 4, S, S] -> image [N, 3, S, S] (a small U-Net)."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.e1 = nn.Sequential(_conv(4, w), _conv(w, w))
        self.e2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.e3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        self.d2 = _conv(6 * w, 2 * w)
        self.d1 = nn.Sequential(_conv(3 * w, w), nn.Conv2d(w, 3, 1))

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        d2 = self.d2(torch.cat([e2, F.interpolate(e3, scale_factor=2, mode="bilinear", align_corners=False)], 1))
        d1 = self.d1(torch.cat([e1, F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)], 1))
        return torch.sigmoid(d1)


class AutoLink(nn.Module):
    """Keypoint detector, learned link weights and the decoder that reconstructs from masked images."""

    def __init__(self, config: AutoLinkConfig = AutoLinkConfig()) -> None:
        super().__init__()
        self.config = config
        k = config.keypoints
        self.detector = _Detector(k, config.width)
        self.decoder = _Decoder(config.width)
        # one parameter per pair, shared by all images; the links that do not help the reconstruction fade
        pairs = k * (k - 1) // 2
        self.link_logits = nn.Parameter(torch.full((pairs,), _LINK_START / _LINK_RATE)) if config.links else None

    def keypoints(self, images: Tensor) -> Tensor:
        """[N, 3, S, S] -> [N, K, 2] in [-1, 1]."""
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] != images.shape[-2]:
            raise StateError(f"AutoLink expects images [N, 3, S, S], got {tuple(images.shape)}")
        if images.shape[-1] % 4:
            raise StateError(f"AutoLink needs a side that is a multiple of 4, got {images.shape[-1]}")
        return soft_argmax(self.detector(images))

    def weights(self) -> Tensor:
        """Symmetric link weights [K, K], positive (softplus), with a zero diagonal (all zero for the ablation)."""
        k = self.config.keypoints
        w = torch.zeros(k, k, device=self.detector.stem[0].weight.device)
        if self.link_logits is None:
            return w
        i, j = _pairs(k)
        w = w.index_put((i, j), F.softplus(self.link_logits * _LINK_RATE))
        return w + w.T

    def draw(self, keypoints: Tensor, side: int) -> Tensor:
        """The decoder's map: links (AutoLink) or blobs (ablation), [N, K, 2] -> [N, 1, S, S]."""
        if self.config.links:
            return edge_map(keypoints, self.weights(), side, self.config.sigma)
        return blob_map(keypoints, side, self.config.sigma)

    def forward(self, images: Tensor, masked: Tensor) -> dict[str, Tensor]:
        """Reconstruct ``images`` [N, 3, S, S] from their keypoints and ``masked`` [N, 3, S, S].

        Returns:
            ``keypoints`` [N, K, 2], ``map`` [N, 1, S, S], ``recon`` [N, 3, S, S].
        """
        kp = self.keypoints(images)
        drawn = self.draw(kp, images.shape[-1])
        return {"keypoints": kp, "map": drawn, "recon": self.decoder(torch.cat([masked, drawn], 1))}

    def loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean squared reconstruction error from a freshly masked copy of ``images``."""
        masked = mask_patches(images, self.config.mask_ratio, self.config.patch, generator)
        return F.mse_loss(self(images, masked)["recon"], images)


def link_graph(model: AutoLink, threshold: float = LINK_THRESHOLD, positions: Tensor | None = None):  # -> networkx.Graph
    """The learned graph as networkx: keypoints as nodes, links of weight >= ``threshold`` x the largest as edges.

    Args:
        model: A trained AutoLink (with links).
        threshold: Fraction of the largest link weight a link needs to be kept.
        positions: Optional float [K, 2] mean keypoint positions stored as the nodes' ``pos``.

    Returns:
        An undirected ``networkx.Graph``; each edge carries its ``weight``.
    """
    import networkx as nx

    if not model.config.links:
        raise ConfigError("link_graph needs an AutoLink trained with links=True; the ablation has no links")
    w = model.weights().detach().cpu()
    graph = nx.Graph()
    for k in range(model.config.keypoints):
        graph.add_node(k, **({"pos": tuple(positions[k].tolist())} if positions is not None else {}))
    top = float(w.max())
    for i, j in zip(*_pairs(model.config.keypoints), strict=True):
        if float(w[i, j]) >= threshold * top:
            graph.add_edge(int(i), int(j), weight=float(w[i, j]))
    return graph


@torch.no_grad()
def detect(model: AutoLink, images: Tensor, batch: int = 256) -> Tensor:
    """Keypoints of ``images`` [N, 3, S, S] in pixel coordinates (u right, v down): [N, K, 2]."""
    model.eval()
    kp = torch.cat([model.keypoints(x) for x in images.split(batch)])
    return (kp + 1) * images.shape[-1] / 2


def fit_linear_regressor(keypoints: Tensor, targets: Tensor) -> Tensor:
    """Least-squares linear map (with bias) from flattened keypoints to flattened targets.

    Args:
        keypoints: float [N, K, 2].
        targets: float [N, P, 2].

    Returns:
        float [2K + 1, 2P]; apply as ``[kp.flatten(1), 1] @ map``.
    """
    x = torch.cat([keypoints.flatten(1), torch.ones(len(keypoints), 1)], 1).double()
    return torch.linalg.lstsq(x, targets.flatten(1).double()).solution.float()


def apply_regressor(mapping: Tensor, keypoints: Tensor, points: int) -> Tensor:
    """Apply :func:`fit_linear_regressor`'s map: [N, K, 2] -> [N, P, 2]."""
    x = torch.cat([keypoints.flatten(1), torch.ones(len(keypoints), 1)], 1)
    return (x @ mapping).view(len(keypoints), points, 2)


def match_keypoints(keypoints: Tensor, points: Tensor) -> dict[int, int]:
    """One-to-one keypoint -> true point assignment minimising their mean pixel distance (Hungarian).

    Args:
        keypoints: float [N, K, 2] pixel coordinates.
        points: float [N, P, 2] pixel coordinates of the true points.

    Returns:
        ``{keypoint: point}`` for min(K, P) keypoints.
    """
    from scipy.optimize import linear_sum_assignment

    cost = (keypoints.unsqueeze(2) - points.unsqueeze(1)).norm(dim=-1).mean(0)  # [K, P]
    rows, cols = linear_sum_assignment(cost.numpy())
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def edge_f1(graph, matching: dict[int, int], tree_edges: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Precision, recall and F1 of ``graph``'s edges, mapped through ``matching``, against ``tree_edges``.

    An edge with an end that matches no true point counts as a false positive.
    """
    truth = {frozenset(e) for e in tree_edges}
    found = {frozenset((matching.get(a, -1 - a), matching.get(b, -1 - b))) for a, b in graph.edges}
    hits = len(found & truth)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=2000, test=500, steps=1000, batch=16, lr=2e-3)
_QUICK = BenchSize(train=16, test=8, steps=6, batch=4)


def _as_tensor(images: np.ndarray) -> Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).contiguous()


def train_autolink(config: AutoLinkConfig, images: Tensor, size: BenchSize, seed: int) -> AutoLink:
    """Train :class:`AutoLink` on ``images`` [N, 3, S, S] with the shared loop; masks drawn from ``seed``."""
    torch.manual_seed(seed)
    model = AutoLink(config)
    masks = torch.Generator().manual_seed(seed + 1)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": model.loss(images[idx], masks)}

    train_steps(model, step, items=len(images), steps=size.steps, batch=size.batch, lr=size.lr, seed=seed,
                desc=f"autolink links={config.links}")
    return model.eval()


def evaluate_keypoints(model: AutoLink, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> dict:
    """Linear-regression error of the true points from the keypoints (fitted on train, measured on test).

    Args:
        train, test: (images [N, 3, S, S], true points [N, P, 2] in pixels).

    Returns:
        ``error`` (mean Euclidean error over test points, as a fraction of the image side), ``error_px``,
        the test keypoints in pixels and the fitted map.
    """
    side = train[0].shape[-1]
    kp_train, kp_test = detect(model, train[0]), detect(model, test[0])
    mapping = fit_linear_regressor(kp_train, train[1])
    err = (apply_regressor(mapping, kp_test, test[1].shape[1]) - test[1]).norm(dim=-1).mean()
    return {"error": float(err) / side, "error_px": float(err), "keypoints": kp_test, "map": mapping}


@register_perception_bench(
    "autolink",
    paper="He, Wandt and Rhodin, AutoLink, NeurIPS 2022, arXiv 2205.10636",
    check="linear keypoint->joint error < 5% of image side; learned graph edge F1 >= 0.8 against the kinematic tree",
    ablation="keypoints drawn as blobs, no links (Jakab et al.)",
)
def bench_autolink(quick: bool, seed: int) -> BenchOutcome:
    """Train AutoLink and the blob ablation on pybullet chains; regress joints and read the graph on held-out poses."""
    import networkx as nx

    from physics.worlds.articulated import ChainConfig, render_chains

    cpu0 = time.process_time()
    size = _QUICK if quick else _FULL
    world = ChainConfig(image_size=32 if quick else 64)
    base = 2_000_000 + seed * 10_000  # pose seeds: train then test, disjoint
    data = {}
    for split, start, n in (("train", base, size.train), ("test", base + 5_000, size.test)):
        s = render_chains(range(start, start + n), world)
        data[split] = (_as_tensor(s.images), torch.from_numpy(s.points))
    config = AutoLinkConfig(keypoints=world.num_points, width=4 if quick else 8)
    models = {links: train_autolink(AutoLinkConfig(**{**config.__dict__, "links": links}), data["train"][0], size,
                                    seed) for links in (True, False)}
    found = {links: evaluate_keypoints(m, data["train"], data["test"]) for links, m in models.items()}
    ours = models[True]
    matching = match_keypoints(found[True]["keypoints"], data["test"][1])
    offsets = {k: float((found[True]["keypoints"][:, k] - data["test"][1][:, p]).norm(dim=-1).mean())
               for k, p in matching.items()}
    graph = link_graph(ours, positions=found[True]["keypoints"].mean(0))
    scores = edge_f1(graph, matching, world.tree_edges)
    # a graph with no learning: the minimum spanning tree of the keypoints' mean pairwise distances
    dist = (found[True]["keypoints"].unsqueeze(2) - found[True]["keypoints"].unsqueeze(1)).norm(dim=-1).mean(0)
    complete = nx.Graph()
    complete.add_weighted_edges_from((i, j, float(dist[i, j])) for i, j in zip(*_pairs(len(dist)), strict=True))
    nearest = edge_f1(nx.minimum_spanning_tree(complete), matching, world.tree_edges)
    graph_all = link_graph(ours, threshold=0.0)  # every link, with its weight
    strongest = edge_f1(nx.maximum_spanning_tree(graph_all), matching, world.tree_edges)
    err = {links: f["error"] for links, f in found.items()}
    checks = (
        Check("keypoint->joint linear error", "mean error / image side, held-out poses, lower is better",
              err[True], err[False], "< 0.05", err[True] < 0.05),
        Check("learned graph edge F1", f"F1 of the links kept (>= {LINK_THRESHOLD} x the top weight), kinematic tree",
              scores["f1"], nearest["f1"], ">= 0.8", scores["f1"] >= 0.8),
    )
    figures = {
        "train_images": size.train, "test_images": size.test, "steps": size.steps, "batch": size.batch,
        "image": f"{world.image_size}x{world.image_size} TinyRenderer, chain of {len(world.parents)} links",
        "keypoints": config.keypoints, "error_px": {str(k): f["error_px"] for k, f in found.items()},
        "edge_scores": scores, "maximum_spanning_tree_f1": strongest["f1"],
        "ablation_graph": "minimum spanning tree of mean keypoint distances",
        "graph_edges": [[a, b, round(d["weight"], 4)] for a, b, d in graph.edges(data=True)],
        "link_weights": ours.weights().detach().round(decimals=4).tolist(), "matching": matching,
        "matched_distance_px": offsets, "cpu_seconds": time.process_time() - cpu0,
        "tree_edges": [list(e) for e in world.tree_edges],
        "params_ours": count_parameters(ours), "params_ablation": count_parameters(models[False]),
    }
    return BenchOutcome(checks, figures)
