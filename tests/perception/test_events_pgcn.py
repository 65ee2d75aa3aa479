"""P-GCN: proposals, their graph, the edge-free ablation, mAP read right, the network trains, seeded."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch_geometric.data import Batch

from perception.events.collision_videos import PAIR_DIM, PAIRS, VideoConfig, collision_videos
from perception.events.pgcn import (
    PGCN,
    PGCNConfig,
    _pool,
    detect,
    mean_average_precision,
    pair_graph,
    pair_proposals,
    pgcn_loss,
    proposal_graph,
    sliding_proposals,
    temporal_iou,
    video_graphs,
    video_pair_graph,
)
from perception.model_stats import count_parameters
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VIDEO = VideoConfig(frames=40)
CONFIG = PGCNConfig(feature_dim=VIDEO.feature_dim, hidden=16)


@pytest.fixture(scope="module")
def graphs():
    return video_graphs(collision_videos(4, seed=1, config=VIDEO), CONFIG), collision_videos(4, seed=1, config=VIDEO)


def test_proposals_and_temporal_iou():
    props = sliding_proposals(40, scales=(8, 16))
    assert props.shape[1] == 2 and int(props[:, 1].max()) <= 40 and bool((props[:, 1] - props[:, 0] >= 8).all())
    assert props[:3].tolist() == [[0, 8], [2, 10], [4, 12]]  # stride: a quarter of the length
    iou = temporal_iou(torch.tensor([[0, 10], [5, 15]]), torch.tensor([[0, 10], [20, 30]]))
    assert iou.tolist() == [[1.0, 0.0], [pytest.approx(1 / 3), 0.0]]
    with pytest.raises(ConfigError, match="no window"):
        sliding_proposals(4, scales=(8,))


def test_structured_pooling_reads_thirds_and_half_a_length_each_side():
    features = torch.arange(30, dtype=torch.float32)[:, None]
    own, ext = _pool(features, torch.tensor([[9, 15]]))
    assert own.tolist() == [[9.5, 11.5, 13.5]]
    assert ext.tolist() == [[7.0, 9.5, 11.5, 13.5, 16.0]]  # frames 6-8 before, 15-17 after


def test_graph_edges_follow_the_contextual_and_surrounding_rules():
    props = sliding_proposals(60)
    own = torch.rand(len(props), 6, generator=torch.Generator().manual_seed(0))
    edge_index, weight, kind = proposal_graph(props, own, CONFIG)
    assert bool((edge_index[0] != edge_index[1]).all()) and bool((weight >= 0).all())
    iou = temporal_iou(props, props)[edge_index[0], edge_index[1]]
    assert bool((iou[kind == 0] > 0.7).all()) and bool((iou[kind == 1] == 0).all())
    src, dst = props[edge_index[0, kind == 1]].double(), props[edge_index[1, kind == 1]].double()
    dist = (src.mean(1) - dst.mean(1)).abs() / ((src[:, 1] - src[:, 0]) + (dst[:, 1] - dst[:, 0]))
    assert bool((dist < 1).all())
    for r in (0, 1):
        assert int(torch.bincount(edge_index[1, kind == r]).max()) <= CONFIG.neighbours
    assert proposal_graph(props, own, replace(CONFIG, edges=False))[0].shape == (2, 0)


def _with_and_without_edges(config, data):
    """P-GCN and its no-edge ablation from the same seed (same parameter count, checked), and ``data`` with no edges."""
    torch.manual_seed(0)
    ours = PGCN(config).eval()
    torch.manual_seed(0)
    ablation = PGCN(replace(config, edges=False)).eval()
    assert count_parameters(ours) == count_parameters(ablation)
    cut = data.clone()
    cut.edge_index, cut.edge_weight, cut.edge_kind = data.edge_index[:, :0], data.edge_weight[:0], data.edge_kind[:0]
    return ours, ablation, cut


def test_the_ablation_ignores_edges_and_has_the_same_parameters(graphs):
    data = graphs[0][0]
    ours, ablation, cut = _with_and_without_edges(CONFIG, data)
    with torch.no_grad():
        cls, comp, reg = ours(data)
        p, k = data.num_nodes, CONFIG.classes
        assert cls.shape == (p, k + 1) and comp.shape == (p, k) and reg.shape == (p, k, 2)
        assert not torch.allclose(ours(data)[0], ours(cut)[0])
        assert torch.equal(ablation(data)[0], ablation(cut)[0]) and torch.equal(ablation(data)[0], ours(cut)[0])
    with pytest.raises(StateError, match="x_own"):
        bad = data.clone()
        bad.x_own = bad.x_own[:, :5]
        ours(bad)


def _train(graphs, edges: bool, seed: int, config=None):
    torch.manual_seed(seed)
    model = PGCN(replace(config or CONFIG, edges=edges, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = Batch.from_data_list(graphs)
    losses = []
    for _ in range(8):
        loss = pgcn_loss(model, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model


def test_both_networks_loss_falls_and_is_deterministic_for_a_seed(graphs):
    for edges in (True, False):
        losses, model = _train(graphs[0], edges, 0)
        again, model2 = _train(graphs[0], edges, 0)
        assert losses[-1] < losses[0], edges
        assert losses == again
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True))


def test_detections_are_suppressed_per_class(graphs):
    torch.manual_seed(0)
    dets = detect(PGCN(CONFIG), graphs[0][0], nms_iou=0.4, top=5)
    for k in range(CONFIG.classes):
        segs = torch.tensor([[s, e] for c, s, e, _ in dets if c == k])
        assert 0 < len(segs) <= 5
        iou = temporal_iou(segs, segs).fill_diagonal_(0)
        assert float(iou.max()) <= 0.4 + 1e-9


def test_map_of_perfect_wrong_and_ranked_detections():
    events = [((0, 0, 10), (1, 20, 30)), ((0, 5, 15),)]
    perfect = [[(c, float(s), float(e), 1.0) for c, s, e in ev] for ev in events]
    assert mean_average_precision(perfect, events, 2) == (1.0, [1.0, 1.0])
    wrong = [[(1 - c, float(s), float(e), 1.0) for c, s, e in ev] for ev in events]
    assert mean_average_precision(wrong, events, 2)[0] == 0.0
    # class 0: a false detection ranked first, then both true ones: precision 1/2 at recall 1/2, 2/3 at 1
    ranked = [[(0, 40.0, 50.0, 0.9), (0, 0.0, 10.0, 0.8)], [(0, 6.0, 15.0, 0.7)]]
    assert mean_average_precision(ranked, events, 1)[0] == pytest.approx(0.5 * 2 / 3 + 0.5 * 2 / 3)
    with pytest.raises(StateError, match="detection lists"):
        mean_average_precision([[]], events, 2)


def test_classification_reads_the_own_feature_as_in_the_paper_and_the_other_split_swaps_them(graphs):
    data = graphs[0][0]
    torch.manual_seed(0)
    paper = PGCN(replace(CONFIG, edges=False)).eval()
    torch.manual_seed(0)
    swapped = PGCN(replace(CONFIG, edges=False, class_feature="extended")).eval()
    d = CONFIG.feature_dim
    assert paper.cls_branch.convs[0].self_lin.in_features == 3 * d
    assert swapped.cls_branch.convs[0].self_lin.in_features == 5 * d
    changed = data.clone()
    changed.x_ext = data.x_ext + 1.0  # only the extended feature changes
    with torch.no_grad():
        assert torch.equal(paper(data)[0], paper(changed)[0])  # classification: own feature only
        assert not torch.allclose(paper(data)[1], paper(changed)[1])  # completeness: the extended one
        assert not torch.allclose(swapped(data)[0], swapped(changed)[0])
    with pytest.raises(ConfigError, match="class_feature"):
        replace(CONFIG, class_feature="both")



def test_random_surrounding_partners_follow_the_same_rules_and_are_a_fixed_draw():
    props = sliding_proposals(60)
    own = torch.rand(len(props), 6, generator=torch.Generator().manual_seed(0))
    similar = proposal_graph(props, own, CONFIG)
    drawn = proposal_graph(props, own, replace(CONFIG, surrounding="random"))
    again = proposal_graph(props, own, replace(CONFIG, surrounding="random"))
    assert all(torch.equal(a, b) for a, b in zip(drawn, again, strict=True))
    index, _, kind = drawn
    assert bool((temporal_iou(props, props)[index[0], index[1]][kind == 1] == 0).all())
    assert torch.equal(index[:, kind == 0], similar[0][:, similar[2] == 0])  # contextual edges unchanged
    assert not torch.equal(index[:, kind == 1], similar[0][:, similar[2] == 1])
    with pytest.raises(ConfigError, match="surrounding"):
        replace(CONFIG, surrounding="all")


# ---------------------------------------------------------------------- proposals per object pair
PAIR_CONFIG = PGCNConfig(feature_dim=PAIR_DIM, hidden=16, proposals="pairs")


@pytest.fixture(scope="module")
def pair_graphs():
    videos = collision_videos(4, seed=1, config=VideoConfig(frames=60))
    return video_graphs(videos, PAIR_CONFIG), videos


def test_pair_proposals_sit_on_the_peaks_of_each_pairs_contact():
    contact = torch.zeros(60, len(PAIRS))
    contact[18:23, 3] = 1.0  # pair 3 touches around frame 20
    contact[39:44, 7] = torch.tensor([0.5, 0.8, 0.9, 0.8, 0.5])
    proposals, group, node_peak, peaks = pair_proposals(contact, peak=0.4)
    assert sorted(peaks[:, :2].tolist()) == [[3, 20], [7, 41]]
    assert set(group.tolist()) == {3, 7} and len(proposals) == len(group) == len(node_peak)
    assert bool((proposals[:, 0] >= 0).all()) and bool((proposals[:, 1] <= 60).all())
    first = proposals[node_peak == 0]
    assert bool(((first[:, 0] <= 20) & (first[:, 1] > 20)).all())  # every window of a peak holds it
    for pair, frame, rep in peaks.tolist():
        s, e = proposals[rep].tolist()
        assert group[rep] == pair and e - s == 13 and s <= frame < e
    quiet = pair_proposals(torch.zeros(60, len(PAIRS)), peak=0.4)[3]
    assert len(quiet) == 1  # no peak above the level: the highest frame stands in


def test_pair_edges_join_proposals_that_share_one_object():
    contact = torch.zeros(60, len(PAIRS))
    ab, bc, de = PAIRS.index((0, 1)), PAIRS.index((1, 2)), PAIRS.index((3, 4))
    contact[10:13, ab] = contact[30:33, bc] = contact[30:33, de] = 1.0
    proposals, group, node_peak, peaks = pair_proposals(contact, peak=0.4)
    own = torch.rand(len(proposals), 3 * PAIR_DIM, generator=torch.Generator().manual_seed(0))
    index, weight, kind = pair_graph(proposals, group, node_peak, peaks, own, PAIR_CONFIG)
    assert bool((index[0] != index[1]).all()) and bool((weight >= 0).all())
    ctx = kind == 0
    assert bool((group[index[0, ctx]] == group[index[1, ctx]]).all())
    assert bool((temporal_iou(proposals, proposals)[index[0, ctx], index[1, ctx]] > 0.7).all())
    sharing = index[:, ~ctx]
    pairs = {(int(group[s]), int(group[d])) for s, d in sharing.T.tolist()}
    assert pairs == {(ab, bc), (bc, ab)}  # (3, 4) shares no object with either
    # a (0, 1) proposal hears (1, 2) later: shared object 1 is its second and the source's first
    into_ab = kind[(~ctx) & (group[index[1]] == ab)]
    assert set(into_ab.tolist()) == {1 + 4 + 2 + 0}
    into_bc = kind[(~ctx) & (group[index[1]] == bc)]
    assert set(into_bc.tolist()) == {1 + 0 + 0 + 1}
    assert bool((sharing[0][:, None] == peaks[:, 2][None]).any(1).all())  # sources are the peaks' own nodes
    assert pair_graph(proposals, group, node_peak, peaks, own, replace(PAIR_CONFIG, edges=False))[0].shape == (2, 0)


def test_pair_mode_targets_ablation_and_training(pair_graphs):
    graphs, videos = pair_graphs
    data = graphs[0]
    assert data.x_own.shape == (data.num_nodes, 3 * PAIR_DIM) and data.x_ext.shape == (data.num_nodes, 5 * PAIR_DIM)
    for g, events, pairs in zip(graphs, videos.events, videos.event_pairs, strict=True):
        positive = g.cls > 0
        for i in positive.nonzero().flatten().tolist():  # a positive proposal overlaps an event of its own pair
            own = [(s, e) for (_, s, e), p in zip(events, pairs, strict=True) if p == int(g.group[i])]
            assert own and float(temporal_iou(g.proposals[i : i + 1], torch.tensor(own)).max()) >= 0.5
    ours, ablation, cut = _with_and_without_edges(PAIR_CONFIG, data)
    with torch.no_grad():
        assert not torch.allclose(ours(data)[0], ours(cut)[0])
        assert torch.equal(ablation(data)[0], ours(cut)[0])
    for edges in (True, False):
        losses, _ = _train(graphs, edges, 0, PAIR_CONFIG)
        assert losses[-1] < losses[0], edges
    with pytest.raises(ConfigError, match="proposals"):
        replace(PAIR_CONFIG, proposals="objects")
    with pytest.raises(StateError, match="pair features"):
        video_pair_graph(videos.features[0], PAIR_CONFIG)


def test_pair_detections_are_suppressed_per_class_and_pair(pair_graphs):
    graphs, _ = pair_graphs
    torch.manual_seed(0)
    data = graphs[0]
    dets = detect(PGCN(PAIR_CONFIG), data, nms_iou=0.4, top=200)
    assert dets
    # two pairs' windows on the same frames are both kept: suppression is within a pair
    by_class = {}
    for c, s, e, _ in dets:
        by_class.setdefault(c, []).append((s, e))
    overlapping = any(float(temporal_iou(torch.tensor(v), torch.tensor(v)).fill_diagonal_(0).max()) > 0.4
                      for v in by_class.values() if len(v) > 1)
    assert overlapping == (len(data.group.unique()) > 1)
