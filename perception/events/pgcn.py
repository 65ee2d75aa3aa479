"""P-GCN: a graph over temporal proposals, localising collision events in CLEVRER-style videos.

Zeng, Huang, Tan, Rong, Zhao, Huang and Gan, "Graph Convolutional Networks
for Temporal Action Localization", ICCV 2019 (arXiv 1909.03252).  The
proposals of one video are the nodes of a graph with two kinds of edge:

* *contextual* edges join overlapping proposals (temporal IoU above
  ``ctx_iou``, the paper's 0.7): they share what each sees of the same event;
* *surrounding* edges join disjoint proposals whose centres are close
  (``|c_i - c_j| / U(p_i, p_j) < sur_dist``, U the total length of the two,
  the paper's 1): they bring in the neighbouring events.

Each node keeps at most ``neighbours`` edges of each kind (the paper samples
four): its most overlapping contextual partners and its most similar
surrounding ones, each edge weighted by the cosine similarity of the two
proposals' features (negative similarities cut to zero).  A graph convolution
(:class:`ProposalConv`, a PyG ``MessagePassing``) adds to the node's own
transformed feature one cosine-weighted mean of its neighbours per edge kind
(the paper's ``A X W`` averages self and neighbours in one sum, which measured
worse here: docs/results/perception.md).  As in the paper (its section
3.4), two GCNs of two layers read the proposals: one on the proposal's own
feature classifies it into K event classes or background, the other on the
*extended* feature (the proposal and half its length on each side) scores
its completeness per class and regresses its boundaries (SSN's heads, Zhao
et al. 2017); ``class_feature="extended"`` swaps the two features, as this
entry's first rounds did.  A proposal's score for class k is
``softmax(class)[k] * sigmoid(completeness[k])``; per-class NMS follows.

The ablation (``edges=False``) is the same network on the same proposal
features without the edges: every layer then transforms each proposal alone
(the same parameters).

Proposals are sliding windows of :data:`SCALES` frames (stride a quarter of
the length; S-CNN's multi-scale windows); a proposal's feature is SSN's
structured pooling of the per-frame features (mean over each third).

With ``proposals="pairs"`` (the benchmark's setting) the
proposals are per object pair instead, what the CLEVRER pipeline's tracks give:
each pair's (noisy) contact is smoothed, its peaks give windows of every scale
around them (:func:`pair_proposals`), and a proposal's features are pooled
from that pair's own features only (contact, closing speed, each object's
speed and visibility: ``collision_videos.pair_features``).  Which pair touched
then separates proposals, and what a proposal cannot see is what happened to
its objects elsewhere: a chained collision needs to know that one of its
objects was set moving by, or goes on to, another collision.  The graph
(:func:`pair_graph`) keeps the paper's contextual edges (same pair, tIoU > 0.7)
and reads its surrounding edges as "near in the scene": each proposal hears
the peaks of the pairs that share one of its objects, one edge kind for each
direction in time and position of the shared object in either pair (8 kinds).
The ablation is the same network on the same proposals and features without
any edge.

Shapes (P proposals of one video, T frames, D per-frame features, K classes)::

    features     float [T, D]                      (perception.events.collision_videos)
    pair feats   float [T, 28, 6]                  (proposals="pairs": D = 6 per pair)
    proposals    int64 [P, 2]   start, end (exclusive); group int64 [P], each proposal's pair (pairs only)
    x_own        float [P, 3D]   x_ext float [P, 5D]
    edge_index   int64 [2, E]   edge_weight float [E]
    outputs      class logits [P, K + 1], completeness logits [P, K], regression [P, K, 2]
    detections   per video, (class, start, end, score) with float boundaries
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.events.collision_videos import (
    COLLISION_CLASSES,
    PAIR_DIM,
    PAIRS,
    CollisionVideos,
    VideoConfig,
    collision_videos,
)
from perception.model_stats import count_parameters
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = [
    "SCALES",
    "PGCNConfig",
    "ProposalConv",
    "PGCN",
    "sliding_proposals",
    "temporal_iou",
    "proposal_graph",
    "video_graph",
    "video_graphs",
    "pair_proposals",
    "pair_graph",
    "video_pair_graph",
    "detect",
    "mean_average_precision",
]

SCALES = (6, 8, 10, 13, 16, 20, 25, 32)  # window lengths in frames: neighbouring scales overlap at tIoU ~0.8
SMOOTH = 5  # frames of the box filter over a pair's contact before its peaks are picked
PEAK_GAP = 4  # a peak is the highest smoothed contact within this many frames either side
REPRESENTATIVE = 13  # length (frames) of the window that stands for a peak in the object-sharing edges
Event = tuple[int, int, int]  # class, start, end (exclusive)


@dataclass(frozen=True)
class PGCNConfig:
    """The proposal graph and the network.

    Args:
        classes: K event classes (background is added).
        feature_dim: D, per-frame features.
        hidden: Width of the graph convolutions.
        edges: False gives the ablation (each proposal transformed alone).
        ctx_iou: Contextual edge when tIoU > this (the paper's 0.7).
        sur_dist: Surrounding edge when disjoint and centre distance / total length < this (the paper's 1).
        neighbours: Edges of each kind kept per node (the most overlapping / the most similar; the paper samples 4).
        surrounding: ``"similar"`` keeps a node's most similar surrounding partners; ``"random"`` keeps
            ``neighbours`` of them drawn uniformly (a fixed draw, seeded by ``edge_seed``), as the paper samples.
        edge_seed: Seed of the ``"random"`` draw.
        dropout: Dropout after each graph convolution (the paper's 0.8 keep-probability is for I3D's 1024-d).
        class_feature: Which pooled feature the classification GCN reads: ``"own"`` (the paper's
            section 3.4: classification on the proposal's own feature, completeness and boundaries on the
            extended one) or ``"extended"`` (the split the other way round, this entry's first rounds).
        proposals: ``"windows"``: sliding windows over the per-frame features (``feature_dim`` of them);
            ``"pairs"``: proposals per object pair around the peaks of that pair's contact, on the pair's
            own features (``feature_dim`` = :data:`~perception.events.collision_videos.PAIR_DIM`), with the
            object-sharing edges of :func:`pair_graph` (module docstring).
        peak: ``"pairs"``: least height of a pair's smoothed contact for a peak to give proposals.
    """

    classes: int = len(COLLISION_CLASSES)
    feature_dim: int = VideoConfig().feature_dim
    hidden: int = 128
    edges: bool = True
    ctx_iou: float = 0.7
    sur_dist: float = 1.0
    neighbours: int = 4
    surrounding: str = "similar"
    edge_seed: int = 0
    dropout: float = 0.2
    class_feature: str = "own"
    proposals: str = "windows"
    peak: float = 0.4

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.classes < 1 or self.feature_dim < 1 or self.hidden < 1 or self.neighbours < 0:
            raise ConfigError(f"PGCNConfig needs classes, feature_dim, hidden >= 1 and neighbours >= 0, got {self}")
        if not (0 <= self.ctx_iou < 1 and self.sur_dist > 0 and 0 <= self.dropout < 1):
            raise ConfigError(f"PGCNConfig needs 0 <= ctx_iou < 1, sur_dist > 0, 0 <= dropout < 1, got {self}")
        if self.surrounding not in ("similar", "random"):
            raise ConfigError(f"PGCNConfig.surrounding must be 'similar' or 'random', got {self.surrounding!r}")
        if self.class_feature not in ("own", "extended"):
            raise ConfigError(f"PGCNConfig.class_feature must be 'own' or 'extended', got {self.class_feature!r}")
        if self.proposals not in ("windows", "pairs"):
            raise ConfigError(f"PGCNConfig.proposals must be 'windows' or 'pairs', got {self.proposals!r}")
        if not 0 < self.peak < 1:
            raise ConfigError(f"PGCNConfig.peak must be in (0, 1), got {self.peak}")

    @property
    def edge_kinds(self) -> int:
        """Edge kinds: contextual and surrounding (windows); contextual and 8 object-sharing kinds (pairs)."""
        return 2 if self.proposals == "windows" else 1 + 8


# ---------------------------------------------------------------------- proposals and their graph
def sliding_proposals(frames: int, scales: Sequence[int] = SCALES) -> Tensor:
    """Multi-scale sliding windows inside ``frames``: int64 [P, 2] (start, end exclusive)."""
    out = [(s, s + length) for length in scales if length <= frames
           for s in range(0, frames - length + 1, max(1, length // 4))]
    if not out:
        raise ConfigError(f"sliding_proposals: no window of {tuple(scales)} fits in {frames} frames")
    return torch.tensor(out, dtype=torch.int64)


def temporal_iou(a: Tensor, b: Tensor) -> Tensor:
    """Temporal IoU of segments a [P, 2] and b [Q, 2] (start, end): float [P, Q]."""
    a, b = a.double(), b.double()
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp_min(0)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return inter / union.clamp_min(1e-9)


def _pool(features: Tensor, proposals: Tensor) -> tuple[Tensor, Tensor]:
    """SSN's structured pooling: own feature [P, 3D] (thirds) and extended feature [P, 5D] (+ half a length each side)."""
    t = features.shape[0]
    csum = torch.cat([features.new_zeros(1, features.shape[1]), features.cumsum(0)])

    def mean(s: Tensor, e: Tensor) -> Tensor:
        s, e = s.clamp(0, t), e.clamp(0, t)
        return (csum[e] - csum[s]) / (e - s).clamp_min(1)[:, None]

    s, e = proposals[:, 0], proposals[:, 1]
    length = e - s
    cuts = [s, s + length // 3, s + (2 * length) // 3, e]
    own = torch.cat([mean(a, b) for a, b in zip(cuts, cuts[1:], strict=False)], 1)
    half = (length + 1) // 2
    ext = torch.cat([mean(s - half, s), own, mean(e, e + half)], 1)
    return own, ext


def proposal_graph(proposals: Tensor, own: Tensor, config: PGCNConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Contextual and surrounding edges (module docstring), no self-loops.

    Each node keeps its ``neighbours`` most overlapping contextual partners and
    its ``neighbours`` most similar (cosine of the own features) surrounding ones.

    Returns:
        ``edge_index`` int64 [2, E] (source, target), ``edge_weight`` float [E] (cosine similarity, >= 0),
        ``edge_kind`` int64 [E] (0 contextual, 1 surrounding).
    """
    empty = torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    if not config.edges or config.neighbours == 0:
        return empty
    iou = temporal_iou(proposals, proposals)
    iou.fill_diagonal_(-1)  # a proposal is not its own neighbour of either kind
    centre = proposals.double().mean(1)
    length = (proposals[:, 1] - proposals[:, 0]).double()
    dist = (centre[:, None] - centre[None, :]).abs() / (length[:, None] + length[None, :])
    unit = F.normalize(own, dim=1)
    cosine = (unit @ unit.T).clamp_min(0).double()
    k = config.neighbours
    ctx_score = torch.where(iou > config.ctx_iou, iou, torch.full_like(iou, -1.0))
    pick = cosine if config.surrounding == "similar" else torch.rand(
        cosine.shape, generator=torch.Generator().manual_seed(config.edge_seed), dtype=torch.float64)
    sur_score = torch.where((iou == 0) & (dist < config.sur_dist), pick, torch.full_like(dist, -1.0))
    src, dst, kind = [], [], []
    for t, score in enumerate((ctx_score, sur_score)):
        top, idx = score.topk(min(k, score.shape[1]), dim=1)  # per target node i, its best neighbours j
        keep = top > -1
        dst.append(torch.arange(len(proposals))[:, None].expand_as(idx)[keep])
        src.append(idx[keep])
        kind.append(torch.full((int(keep.sum()),), t, dtype=torch.int64))
    edge_index = torch.stack([torch.cat(src), torch.cat(dst)])
    return edge_index, cosine[edge_index[0], edge_index[1]].float(), torch.cat(kind)


def pair_proposals(contact: Tensor, peak: float, scales: Sequence[int] = SCALES) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Proposals per object pair around the peaks of each pair's contact.

    The contact of each pair is smoothed over :data:`SMOOTH` frames; a peak is a frame where it is
    the highest within :data:`PEAK_GAP` frames either side and at least ``peak`` (the video's highest
    one when none is).  Each peak gives windows of every length in ``scales`` centred on it and a
    quarter of the length before and after it (clipped into the video).

    Args:
        contact: float [T, P], each pair's (noisy) contact feature.
        peak: Least smoothed contact of a peak.

    Returns:
        ``proposals`` int64 [N, 2], ``group`` int64 [N] (the pair), ``node_peak`` int64 [N] (index into
        ``peaks``), ``peaks`` int64 [Q, 3] (pair, frame, the node standing for the peak: its centred
        window of about :data:`REPRESENTATIVE` frames).
    """
    t, _ = contact.shape
    smooth = F.avg_pool1d(contact.T[:, None], SMOOTH, 1, SMOOTH // 2, count_include_pad=False)[:, 0]  # [P, T]
    local = F.max_pool1d(smooth[:, None], 2 * PEAK_GAP + 1, 1, PEAK_GAP)[:, 0]
    found = []
    for pair, frame in ((smooth >= local) & (smooth >= peak)).nonzero().tolist():  # by pair, then frame
        if found and found[-1][0] == pair and frame - found[-1][1] <= PEAK_GAP:
            continue  # a flat top: its first frame stands for it
        found.append([pair, frame])
    if not found:
        found = [list(divmod(int(smooth.argmax()), t))]
    lengths = [length for length in scales if length <= t]
    rep_len = min(lengths, key=lambda length: abs(length - REPRESENTATIVE))
    props, group, node_peak, peaks = [], [], [], []
    for q, (pair, frame) in enumerate(found):
        seen: set[tuple[int, int]] = set()
        rep = -1
        for length in lengths:
            for shift in (0, -(length // 4), length // 4):
                start = min(max(frame + shift - length // 2, 0), t - length)
                if (start, start + length) in seen:
                    continue
                seen.add((start, start + length))
                if length == rep_len and shift == 0:
                    rep = len(props)
                props.append((start, start + length))
                group.append(pair)
                node_peak.append(q)
        peaks.append((pair, frame, rep))
    return tuple(torch.tensor(x, dtype=torch.int64).view(len(x), -1).squeeze(1) if x and isinstance(x[0], int)
                 else torch.tensor(x, dtype=torch.int64) for x in (props, group, node_peak, peaks))


def pair_graph(proposals: Tensor, group: Tensor, node_peak: Tensor, peaks: Tensor, own: Tensor,
               config: PGCNConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Edges of the per-pair proposal graph, no self-loops.

    * kind 0, *contextual* (the paper's): proposals of the same pair with tIoU > ``ctx_iou``, each node's
      ``neighbours`` most overlapping, weighted by the cosine similarity of their own features;
    * kinds 1-8, *object-sharing* (the paper's surrounding edges, with "near" read as "about one of
      the same objects"): to every proposal of a peak, from the peak node of each other peak whose pair
      shares exactly one object with its pair; the kind is 1 + 4 * later + 2 * (the shared object is
      the target pair's second) + (it is the source pair's second), ``later`` when the source peak is
      not before the target's; each proposal keeps the ``neighbours`` nearest in time of each kind, weight 1.

    Returns ``edge_index`` [2, E] (source, target), ``edge_weight`` [E], ``edge_kind`` [E].
    """
    empty = torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    if not config.edges or config.neighbours == 0:
        return empty
    k = config.neighbours
    iou = temporal_iou(proposals, proposals)
    iou.fill_diagonal_(-1)
    iou[group[:, None] != group[None, :]] = -1
    unit = F.normalize(own, dim=1)
    cosine = (unit @ unit.T).clamp_min(0)
    score = torch.where(iou > config.ctx_iou, iou, torch.full_like(iou, -1.0))
    top, idx = score.topk(min(k, score.shape[1]), dim=1)
    keep = top > -1
    dst = [torch.arange(len(proposals))[:, None].expand_as(idx)[keep]]
    src = [idx[keep]]
    weight = [cosine[src[0], dst[0]]]
    kind = [torch.zeros(int(keep.sum()), dtype=torch.int64)]
    objects = [PAIRS[int(p)] for p in peaks[:, 0]]
    for r, (_, frame_r, _) in enumerate(peaks.tolist()):
        targets = (node_peak == r).nonzero().flatten()
        chosen: dict[int, list[tuple[int, int]]] = {}
        for q, (_, frame_q, rep_q) in enumerate(peaks.tolist()):
            shared = set(objects[q]) & set(objects[r])
            if q == r or len(shared) != 1:
                continue
            obj = shared.pop()
            kd = 1 + 4 * int(frame_q >= frame_r) + 2 * objects[r].index(obj) + objects[q].index(obj)
            chosen.setdefault(kd, []).append((abs(frame_q - frame_r), rep_q))
        for kd, partners in chosen.items():
            for _, rep_q in sorted(partners)[:k]:
                src.append(torch.full((len(targets),), rep_q, dtype=torch.int64))
                dst.append(targets)
                weight.append(torch.ones(len(targets)))
                kind.append(torch.full((len(targets),), kd, dtype=torch.int64))
    edge_index = torch.stack([torch.cat(src), torch.cat(dst)])
    return edge_index, torch.cat(weight).float(), torch.cat(kind)


def _targets(proposals: Tensor, events: Sequence[Event]) -> dict[str, Tensor]:
    """SSN-style targets of each proposal from the true events of its video."""
    p = len(proposals)
    cls = torch.full((p,), -100, dtype=torch.int64)
    comp = torch.full((p,), -1.0)
    comp_cls = torch.zeros(p, dtype=torch.int64)
    reg = torch.zeros(p, 2)
    if not events:
        cls[:] = 0
        return {"cls": cls, "comp": comp, "comp_cls": comp_cls, "reg": reg}
    truth = torch.tensor([[s, e] for _, s, e in events], dtype=torch.int64)
    classes = torch.tensor([c for c, _, _ in events])
    iou = temporal_iou(proposals, truth)
    best_iou, best = iou.max(1)
    inter = (torch.minimum(proposals[:, None, 1], truth[None, :, 1])
             - torch.maximum(proposals[:, None, 0], truth[None, :, 0])).clamp_min(0)
    coverage = (inter.double() / (proposals[:, 1] - proposals[:, 0])[:, None]).amax(1)
    positive = best_iou >= 0.5
    cls[positive] = classes[best[positive]] + 1
    cls[coverage < 0.2] = 0  # background: (almost) no event inside
    comp_cls = classes[best]
    comp[best_iou >= 0.6] = 1.0
    comp[(best_iou < 0.3) & (coverage >= 0.2)] = 0.0  # incomplete: part of an event, or an event and much else
    length = (proposals[:, 1] - proposals[:, 0]).float()
    g = truth[best].float()
    reg[:, 0] = (g.mean(1) - proposals.float().mean(1)) / length
    reg[:, 1] = torch.log((g[:, 1] - g[:, 0]) / length)
    reg[~positive] = float("nan")
    return {"cls": cls, "comp": comp, "comp_cls": comp_cls, "reg": reg}


def video_graph(features: Tensor, config: PGCNConfig, events: Sequence[Event] | None = None) -> Data:
    """The proposal graph of one video's features [T, D] as a PyG ``Data`` (proposals, pooled features,
    edges), with the training targets when its true ``events`` are given."""
    if features.dim() != 2 or features.shape[1] != config.feature_dim:
        raise StateError(f"video_graph expects features [T, {config.feature_dim}], got {tuple(features.shape)}")
    proposals = sliding_proposals(features.shape[0])
    own, ext = _pool(features, proposals)
    edge_index, edge_weight, edge_kind = proposal_graph(proposals, own, config)
    targets = _targets(proposals, events) if events is not None else {}
    return Data(x_own=own, x_ext=ext, edge_index=edge_index, edge_weight=edge_weight, edge_kind=edge_kind,
                proposals=proposals, num_nodes=len(proposals), **targets)


def video_pair_graph(pair_features: Tensor, config: PGCNConfig, events: Sequence[Event] | None = None,
                     event_pairs: Sequence[int] | None = None) -> Data:
    """The per-pair proposal graph of one video's pair features [T, P, PAIR_DIM] (:func:`pair_proposals`,
    :func:`pair_graph`) as a PyG ``Data`` with ``group`` (each node's pair), and the training targets when
    the true ``events`` and their ``event_pairs`` are given (a proposal's truth is its own pair's events)."""
    if pair_features.dim() != 3 or pair_features.shape[2] != config.feature_dim:
        raise StateError(f"video_pair_graph expects pair features [T, P, {config.feature_dim}], "
                         f"got {tuple(pair_features.shape)}")
    proposals, group, node_peak, peaks = pair_proposals(pair_features[:, :, 0], config.peak)
    own = torch.zeros(len(proposals), 3 * config.feature_dim)
    ext = torch.zeros(len(proposals), 5 * config.feature_dim)
    for p in group.unique().tolist():
        rows = group == p
        own[rows], ext[rows] = _pool(pair_features[:, p], proposals[rows])
    edge_index, edge_weight, edge_kind = pair_graph(proposals, group, node_peak, peaks, own, config)
    targets: dict[str, Tensor] = {}
    if events is not None:
        if event_pairs is None or len(event_pairs) != len(events):
            raise StateError("video_pair_graph: events need their pairs (event_pairs, one per event)")
        parts = [_targets(proposals[group == p], [e for e, q in zip(events, event_pairs, strict=True) if q == p])
                 for p in group.unique().tolist()]
        targets = {key: torch.zeros_like(parts[0][key]).new_empty((len(proposals),) + parts[0][key].shape[1:])
                   for key in parts[0]}
        for p, part in zip(group.unique().tolist(), parts, strict=True):
            for key, value in part.items():
                targets[key][group == p] = value
    return Data(x_own=own, x_ext=ext, edge_index=edge_index, edge_weight=edge_weight, edge_kind=edge_kind,
                proposals=proposals, group=group, num_nodes=len(proposals), **targets)


def video_graphs(videos: CollisionVideos, config: PGCNConfig) -> list[Data]:
    """One graph with targets per video (:func:`video_graph`, or :func:`video_pair_graph` for ``proposals="pairs"``)."""
    if config.proposals == "pairs":
        if videos.pair_features is None:
            raise StateError("video_graphs: proposals='pairs' needs videos with pair_features")
        return [video_pair_graph(f, config, ev, pairs) for f, ev, pairs
                in zip(videos.pair_features, videos.events, videos.event_pairs, strict=True)]
    return [video_graph(f, config, ev) for f, ev in zip(videos.features, videos.events, strict=True)]


# ---------------------------------------------------------------------- the network
class ProposalConv(MessagePassing):
    """``h_i' = W_0 h_i + sum_r W_r (sum_{j in N_r(i)} a_ij h_j / sum_{j in N_r(i)} a_ij)``.

    The node's own term and one cosine-weighted mean per edge kind r (contextual,
    surrounding), as GraphSAGE's and R-GCN's self/neighbour split; a node with no
    edges of kind r gets nothing from it.

    Args:
        inp, out: Feature widths.
        kinds: Number of edge kinds.
    """

    def __init__(self, inp: int, out: int, kinds: int = 2) -> None:
        super().__init__(aggr="add")
        self.self_lin = nn.Linear(inp, out)
        self.kind_lins = nn.ModuleList([nn.Linear(inp, out, bias=False) for _ in range(kinds)])

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor, edge_kind: Tensor) -> Tensor:
        """x [P, inp], edge_index [2, E], edge_weight [E], edge_kind [E] -> [P, out]."""
        n = x.shape[0]
        out = self.self_lin(x)
        for r, lin in enumerate(self.kind_lins):
            mask = edge_kind == r
            if not bool(mask.any()):
                continue
            ei, w = edge_index[:, mask], edge_weight[mask]
            w = w / scatter(w, ei[1], 0, dim_size=n, reduce="sum").clamp_min(1e-6)[ei[1]]
            out = out + lin(self.propagate(ei, x=x, weight=w))
        return out

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return weight[:, None] * x_j


class _Branch(nn.Module):
    """Two graph convolutions with ReLU and dropout."""

    def __init__(self, inp: int, config: PGCNConfig) -> None:
        super().__init__()
        kinds = config.edge_kinds
        self.convs = nn.ModuleList([ProposalConv(inp, config.hidden, kinds), ProposalConv(config.hidden, config.hidden, kinds)])
        self.dropout = config.dropout

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor, edge_kind: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.dropout(F.relu(conv(x, edge_index, edge_weight, edge_kind)), self.dropout, self.training)
        return x


class PGCN(nn.Module):
    """``forward(graph) -> (class logits [P, K+1], completeness logits [P, K], regression [P, K, 2])``.

    ``graph`` is a PyG ``Data`` or ``Batch`` from :func:`video_graphs` (fields ``x_own``,
    ``x_ext``, ``edge_index``, ``edge_weight``).
    """

    def __init__(self, config: PGCNConfig = PGCNConfig()) -> None:
        super().__init__()
        self.config = config
        d, k = config.feature_dim, config.classes
        own_cls = config.class_feature == "own"
        self.cls_branch = _Branch((3 if own_cls else 5) * d, config)
        self.loc_branch = _Branch((5 if own_cls else 3) * d, config)
        self.cls_head = nn.Linear(config.hidden, k + 1)
        self.comp_head = nn.Linear(config.hidden, k)
        self.reg_head = nn.Linear(config.hidden, 2 * k)

    def forward(self, graph: Data) -> tuple[Tensor, Tensor, Tensor]:
        d = self.config.feature_dim
        if graph.x_own.dim() != 2 or graph.x_own.shape[1] != 3 * d or graph.x_ext.shape[1] != 5 * d:
            raise StateError(f"PGCN expects x_own [P, {3 * d}] and x_ext [P, {5 * d}], "
                             f"got {tuple(graph.x_own.shape)} and {tuple(graph.x_ext.shape)}")
        edges = (graph.edge_index, graph.edge_weight, graph.edge_kind)
        if not self.config.edges:
            edges = (edges[0][:, :0], edges[1][:0], edges[2][:0])
        x_cls, x_loc = (graph.x_own, graph.x_ext) if self.config.class_feature == "own" else (graph.x_ext, graph.x_own)
        h_cls = self.cls_branch(x_cls, *edges)
        h_loc = self.loc_branch(x_loc, *edges)
        reg = self.reg_head(h_loc).view(-1, self.config.classes, 2)
        return self.cls_head(h_cls), self.comp_head(h_loc), reg


def pgcn_loss(model: PGCN, graph: Data, reg_weight: float = 0.5) -> dict[str, Tensor]:
    """Classification cross-entropy + completeness BCE + boundary smooth L1 (on positives), as in SSN / P-GCN."""
    cls, comp, reg = model(graph)
    loss_cls = F.cross_entropy(cls, graph.cls, ignore_index=-100)
    rows = torch.arange(len(comp))
    known = graph.comp >= 0
    loss_comp = F.binary_cross_entropy_with_logits(comp[rows, graph.comp_cls][known], graph.comp[known]) \
        if bool(known.any()) else comp.sum() * 0
    pos = graph.cls > 0
    loss_reg = F.smooth_l1_loss(reg[rows, graph.comp_cls][pos], graph.reg[pos]) if bool(pos.any()) else reg.sum() * 0
    loss = loss_cls + loss_comp + reg_weight * loss_reg
    return {"loss": loss, "cls": loss_cls.detach(), "comp": loss_comp.detach(), "reg": loss_reg.detach()}


# ---------------------------------------------------------------------- detection and scoring
@torch.no_grad()
def detect(model: PGCN, graph: Data, nms_iou: float = 0.4, top: int = 20) -> list[tuple[int, float, float, float]]:
    """Scored detections of one video: (class, start, end, score), per-class NMS at ``nms_iou`` (per class and
    pair when the graph has ``group``: two pairs' collisions at once are two events); ``top`` per class."""
    model.eval()
    cls, comp, reg = model(graph)
    score = cls.softmax(1)[:, 1:] * comp.sigmoid()  # [P, K]
    prop = graph.proposals.float()
    centre, length = prop.mean(1, keepdim=True), (prop[:, 1] - prop[:, 0])[:, None]
    c = centre + reg[..., 0] * length
    ln = length * reg[..., 1].clamp(-2, 2).exp()
    group = graph.group if "group" in graph else torch.zeros(len(prop), dtype=torch.int64)
    out = []
    for k in range(score.shape[1]):
        segs = torch.stack([c[:, k] - ln[:, k] / 2, c[:, k] + ln[:, k] / 2], 1)
        order = score[:, k].argsort(descending=True)
        kept: list[int] = []
        for i in order.tolist():
            if len(kept) == top:
                break
            same = [j for j in kept if group[j] == group[i]]
            if not same or float(temporal_iou(segs[i : i + 1], segs[same]).max()) <= nms_iou:
                kept.append(i)
        out += [(k, float(segs[i, 0]), float(segs[i, 1]), float(score[i, k])) for i in kept]
    return out


def mean_average_precision(detections: Sequence[Sequence[tuple[int, float, float, float]]],
                           events: Sequence[Sequence[Event]], classes: int, iou: float = 0.5) -> tuple[float, list[float]]:
    """mAP at temporal IoU ``iou`` over videos (ActivityNet's interpolated AP per class, then the mean).

    Each detection matches at most one unmatched true event of its class and video (the best-overlapping
    one at or above ``iou``), in order of falling score.

    Returns:
        (mAP, [AP per class]); a class with no true event has AP 0 and counts in the mean.
    """
    if len(detections) != len(events):
        raise StateError(f"mean_average_precision: {len(detections)} detection lists for {len(events)} videos")
    aps = []
    for k in range(classes):
        truth = [torch.tensor([[s, e] for c, s, e in ev if c == k], dtype=torch.float64).view(-1, 2) for ev in events]
        n_true = sum(len(t) for t in truth)
        found = sorted(((sc, v, s, e) for v, dets in enumerate(detections) for c, s, e, sc in dets if c == k),
                       key=lambda d: -d[0])
        used = [torch.zeros(len(t), dtype=torch.bool) for t in truth]
        hits = []
        for _, v, s, e in found:
            ok = False
            if len(truth[v]):
                ious = temporal_iou(torch.tensor([[s, e]]), truth[v])[0].masked_fill(used[v], -1)
                j = int(ious.argmax())
                if float(ious[j]) >= iou:
                    used[v][j], ok = True, True
            hits.append(ok)
        aps.append(_average_precision(hits, n_true))
    return sum(aps) / len(aps), aps


def _average_precision(hits: Sequence[bool], n_true: int) -> float:
    """Area under the interpolated precision-recall curve of ranked ``hits`` (ActivityNet / VOC 2010+)."""
    if n_true == 0 or not hits:
        return 0.0
    tp = torch.tensor(hits, dtype=torch.float64).cumsum(0)
    precision = tp / torch.arange(1, len(hits) + 1)
    recall = tp / n_true
    precision = torch.cummax(precision.flip(0), 0).values.flip(0)  # the envelope
    steps = torch.cat([recall.new_zeros(1), recall]).diff()
    return float((precision * steps).sum())


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=400, test=300, steps=600, batch=8, lr=1e-3)
_QUICK = BenchSize(train=6, test=4, steps=3, batch=2, lr=1e-3)
_QUICK_VIDEO = VideoConfig(frames=48)
_TOP = 40  # detections kept per class and video (per-pair suppression keeps one per pair and peak)
_INITS = 3  # training seeds per network: the edges' gain moved 9.6-16.7 points between seeds with one each


def train_pgcn(config: PGCNConfig, graphs: Sequence[Data], bench: BenchSize, seed: int) -> PGCN:
    """Train :class:`PGCN` on per-video graphs with the shared loop (``bench.batch`` videos a step)."""
    torch.manual_seed(seed)
    model = PGCN(config)

    def step(idx: Tensor) -> dict[str, Tensor]:
        model.train()
        return pgcn_loss(model, Batch.from_data_list([graphs[i] for i in idx.tolist()]))

    train_steps(model, step, items=len(graphs), steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed,
                desc=f"pgcn edges={config.edges}")
    return model.eval()


@register_perception_bench(
    "pgcn",
    paper="Zeng et al., P-GCN, ICCV 2019, arXiv 1909.03252",
    check="collision-event mAP at tIoU 0.5 >= no-edge ablation + 10 points",
    ablation="the same per-pair proposal features and network with no edges (each proposal alone)",
)
def bench_pgcn(quick: bool, seed: int) -> BenchOutcome:
    """Train P-GCN and its edge-free twin on the same videos and steps, each from the same three
    training seeds (``seed``, ``seed + 1``, ``seed + 2``); test on another seed's videos; compare mean mAP."""
    bench, video = (_QUICK, _QUICK_VIDEO) if quick else (_FULL, VideoConfig())
    ours_cfg = PGCNConfig(feature_dim=PAIR_DIM, proposals="pairs")
    train = collision_videos(bench.train, seed=2 * seed, config=video)
    test = collision_videos(bench.test, seed=2 * seed + 1, config=video)
    train_graphs, test_graphs = video_graphs(train, ours_cfg), video_graphs(test, ours_cfg)
    inits = [seed + i for i in range(_INITS)]  # the same training seeds (initialisation, batch order) for both
    results = {}
    for name, cfg in (("ours", ours_cfg), ("ablation", replace(ours_cfg, edges=False))):
        per_init = []
        for init in inits:
            model = train_pgcn(cfg, train_graphs, bench, init)
            dets = [detect(model, g, top=_TOP) for g in test_graphs]
            per_init.append({f"{t:.1f}": mean_average_precision(dets, test.events, cfg.classes, t) for t in (0.3, 0.5, 0.7)})
        results[name] = {
            "model": model,
            "per_init": [m["0.5"][0] for m in per_init],
            "map": {t: (sum(m[t][0] for m in per_init) / len(per_init),
                        [sum(col) / len(per_init) for col in zip(*(m[t][1] for m in per_init), strict=True)])
                    for t in per_init[0]},
        }
    ours, abl = results["ours"]["map"]["0.5"][0], results["ablation"]["map"]["0.5"][0]
    checks = (
        Check(f"collision-event mAP at tIoU 0.5 (mean of {_INITS} training seeds)", "mean AP over the 3 classes, higher is better",
              ours, abl, ">= ablation + 0.10", ours >= abl + 0.10),
    )
    counts = [0] * ours_cfg.classes
    for ev in test.events:
        for c, _, _ in ev:
            counts[c] += 1
    figures = {
        **{f"{name}_map_at_{t}": r["map"][t][0] for name, r in results.items() for t in r["map"]},
        **{f"{name}_ap_per_class_at_0.5": r["map"]["0.5"][1] for name, r in results.items()},
        **{f"{name}_map_at_0.5_per_training_seed": r["per_init"] for name, r in results.items()},
        "training_seeds": inits,
        "classes": list(COLLISION_CLASSES), "test_events_per_class": counts,
        "params": {name: count_parameters(r["model"]) for name, r in results.items()},
        "proposals": "per object pair, around the peaks of its contact",
        "proposals_per_video": sum(g.num_nodes for g in test_graphs) / max(len(test_graphs), 1),
        "edges_per_video": sum(g.edge_index.shape[1] for g in test_graphs) / max(len(test_graphs), 1),
        "train_videos": bench.train, "test_videos": bench.test, "steps": bench.steps, "batch": bench.batch,
        "frames": video.frames,
        "data": "2-D CLEVRER-style collision videos simulated in torch (train seed 2*seed, test 2*seed+1)",
    }
    return BenchOutcome(checks, figures)

