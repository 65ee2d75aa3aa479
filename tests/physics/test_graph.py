"""Graph builders: radius search against brute force, hierarchy, state -> PyG graph."""

from __future__ import annotations

import pytest
import torch

from physics.errors import ConfigError, StateError
from physics.graph import (
    GraphBuilder,
    GraphConfig,
    NodeType,
    Relation,
    assign_roots,
    collate,
    hierarchy_edges,
    kmeans,
    radius_graph,
    radius_graph_brute,
    radius_graph_kdtree,
)


def _cdist_pairs(pos, r, batch):
    """Reference pairs straight from torch.cdist (independent of our brute force)."""
    d = torch.cdist(pos.double(), pos.double())
    ok = (d <= r) & (batch[:, None] == batch[None, :]) & ~torch.eye(len(pos), dtype=torch.bool)
    dst, src = ok.nonzero(as_tuple=True)
    return set(zip(src.tolist(), dst.tolist(), strict=True))


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("r", [0.07, 0.3])
def test_cell_grid_and_kdtree_match_brute_force(dim, r):
    g = torch.Generator().manual_seed(dim * 10 + int(r * 100))
    pos = torch.rand(200, dim, generator=g) * torch.tensor([1.0, 2.0, 0.5][:dim]) - 0.3
    batch = torch.sort(torch.randint(0, 3, (200,), generator=g)).values
    grid = radius_graph(pos, r, batch)
    tree = radius_graph_kdtree(pos, r, batch)
    brute = radius_graph_brute(pos, r, batch)
    assert torch.equal(grid, brute) and torch.equal(tree, brute)
    assert set(zip(*grid.tolist(), strict=True)) == _cdist_pairs(pos, r, batch)
    # sender row 0, receiver row 1, sorted by receiver
    assert torch.all(grid[1][1:] >= grid[1][:-1])


def test_max_neighbors_keeps_the_nearest_senders():
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(200, 3, generator=g)
    for fn in (radius_graph, radius_graph_kdtree):
        ei = fn(pos, 0.3, max_neighbors=4)
        assert torch.equal(ei, radius_graph_brute(pos, 0.3, max_neighbors=4))
        assert torch.bincount(ei[1], minlength=200).max() <= 4
    full = radius_graph(pos, 0.3)
    capped = radius_graph(pos, 0.3, max_neighbors=4)
    i = int(torch.bincount(full[1]).argmax())
    kept = capped[0][capped[1] == i]
    others = full[0][full[1] == i]
    dk = (pos[kept] - pos[i]).norm(dim=1).max()
    assert (pos[others] - pos[i]).norm(dim=1).sort().values[3] == pytest.approx(float(dk))


def test_radius_graph_edge_cases_and_bad_input():
    assert radius_graph(torch.zeros(0, 3), 1.0).shape == (2, 0)
    assert radius_graph(torch.zeros(1, 2), 1.0).shape == (2, 0)
    two = radius_graph(torch.tensor([[0.0, 0.0], [0.0, 0.0]]), 0.1)  # coincident points connect
    assert two.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ConfigError, match="radius must be a positive"):
        radius_graph(torch.zeros(3, 2), 0.0)
    with pytest.raises(StateError, match=r"pos must be \[N, D\]"):
        radius_graph(torch.zeros(3), 1.0)
    with pytest.raises(StateError, match="NaN"):
        radius_graph(torch.tensor([[0.0, float("nan")]]), 1.0)


def test_kmeans_is_seeded_and_uses_every_cluster():
    g = torch.Generator().manual_seed(0)
    blobs = torch.cat([torch.randn(20, 2, generator=g) * 0.05 + torch.tensor(c) for c in ([0.0, 0.0], [3.0, 0.0], [0.0, 3.0])])
    a = kmeans(blobs, 3, seed=5)
    assert torch.equal(a, kmeans(blobs, 3, seed=5))
    assert sorted(torch.bincount(a).tolist()) == [20, 20, 20]
    for blob in range(3):  # each blob lies in one cluster
        assert a[blob * 20 : blob * 20 + 20].unique().numel() == 1
    with pytest.raises(ConfigError, match="k must be in 1..60"):
        kmeans(blobs, 61)


def test_roots_per_instance_and_the_three_stages():
    pos = torch.stack([torch.arange(10.0), torch.zeros(10)], 1)
    instance = torch.tensor([0] * 8 + [1, -1])
    root_of = assign_roots(pos, instance, {0: 2, 1: 1})
    assert root_of[-1] == -1 and root_of[8] == 2
    assert root_of[:8].unique().tolist() == [0, 1]
    changes = (root_of[1:8] != root_of[:7]).sum()
    assert changes == 1  # clusters of a straight chain are two contiguous pieces
    leaf_edges = torch.tensor([[7], [8]])  # object 0 touches object 1
    lr, rr, rl, r = hierarchy_edges(root_of, instance, leaf_edges)
    assert r == 3
    assert lr.shape == (2, 9) and torch.equal(rl, lr.flip(0))
    assert lr[1].tolist() == (root_of[:9] + 10).tolist()
    pairs = set(zip(*rr.tolist(), strict=True))
    assert {(10, 11), (11, 10)} <= pairs  # roots of one object
    touching = int(root_of[7]) + 10  # the root holding leaf 7 meets object 1's root
    assert (touching, 12) in pairs and (21 - touching, 12) not in pairs


def _state(n=6, d=2, h=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        pos_hist=torch.rand(h + 1, n, d, generator=g),
        node_attr=torch.rand(n, 3, generator=g),
        action=torch.zeros(n, d),
        edges=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        edge_attr=torch.ones(3, 1),
        instance=torch.tensor([0, 0, 0, 1, 1, -1][:n]),
        observed=torch.ones(n, dtype=torch.bool),
        target_pos=torch.rand(n, d, generator=g),
    )


def test_builder_fields_relation_types_and_roots():
    cfg = GraphConfig(history=1, radius=0.5, roots_per_instance=1)
    b = GraphBuilder(cfg)
    s = _state()
    root_of = b.roots_for(s["pos_hist"][0], s["instance"])
    g = b.build(**s, root_of=root_of)
    assert g.num_nodes == 8 and g.pos_hist.shape == (8, 2, 2)
    assert g.node_type.tolist() == [NodeType.LEAF] * 6 + [NodeType.ROOT] * 2
    fixed = g.edge_index[:, g.edge_type == Relation.FIXED]
    assert fixed.shape[1] == 6  # symmetrised
    nb = g.edge_index[:, g.edge_type == Relation.NEIGHBOR]
    assert torch.equal(nb, radius_graph(s["pos_hist"][-1], 0.5))
    assert (g.edge_type == Relation.LEAF_ROOT).sum() == 5  # node 5 has no object
    # a root sits at the mean of its leaves
    assert torch.allclose(g.pos_hist[6], s["pos_hist"][:, :3].mean(1))
    assert g.edge_attr.shape == (g.edge_index.shape[1], 1)


def test_free_roots_give_the_nodes_of_no_object_a_body_of_their_own():
    pos = torch.stack([torch.arange(8.0), torch.zeros(8)], 1)
    instance = torch.tensor([-1, -1, -1, -1, -1, 0, 0, -1])  # a "fluid" of 6 nodes and one object
    alone = GraphBuilder(GraphConfig(free_roots=1)).roots_for(pos, instance)
    assert alone.tolist() == [0, 0, 0, 0, 0, -1, -1, 0]  # the object gets no root without roots_per_instance
    both = GraphBuilder(GraphConfig(roots_per_instance=1, free_roots=2)).roots_for(pos, instance, seed=3)
    assert both[5] == both[6] == 0 and set(both[instance < 0].tolist()) == {1, 2}  # numbered after the objects
    assert GraphBuilder(GraphConfig(roots_per_instance=1)).roots_for(pos, instance)[0] == -1  # default: none
    # one free root meets the object's root through a contact, and every free node sends to it
    b = GraphBuilder(GraphConfig(history=1, radius=1.5, roots_per_instance=1, free_roots=1))
    g = b.build(pos[None].expand(2, 8, 2), torch.zeros(8, 1), instance=instance,
                root_of=b.roots_for(pos, instance))
    assert g.num_nodes == 10 and (g.edge_type == Relation.LEAF_ROOT).sum() == 8
    assert set(zip(*g.edge_index[:, g.edge_type == Relation.ROOT_ROOT].tolist(), strict=True)) == {(8, 9), (9, 8)}
    with pytest.raises(ConfigError, match="free_roots"):
        GraphConfig(free_roots=-1)


def test_builder_names_the_bad_field():
    b = GraphBuilder(GraphConfig(history=1))
    s = _state()
    s["action"] = torch.zeros(5, 2)
    with pytest.raises(StateError, match=r"action must have shape \[6, 2\]"):
        b.build(**s)
    s = _state()
    with pytest.raises(StateError, match=r"pos_hist must be \[history\+1=2"):
        b.build(**{**s, "pos_hist": s["pos_hist"][:1]})
    s["pos_hist"][1, 2, 0] = float("nan")
    with pytest.raises(StateError, match="pos_hist holds NaN"):
        b.build(**s)
    with pytest.raises(StateError, match="pass root_of"):
        GraphBuilder(GraphConfig(roots_per_instance=1)).build(**_state())
    with pytest.raises(ConfigError, match="neighbor_search must be one of grid, kdtree, brute"):
        GraphConfig(neighbor_search="octree")


def test_collate_shifts_edges_per_graph():
    b = GraphBuilder(GraphConfig(history=1, radius=0.3))
    g1, g2 = b.build(**_state(seed=1)), b.build(**_state(seed=2))
    batch = collate([g1, g2])
    assert batch.num_graphs == 2 and batch.num_nodes == 12
    assert torch.equal(batch.edge_index[:, g1.num_edges :], g2.edge_index + 6)
    assert torch.equal(batch.batch, torch.tensor([0] * 6 + [1] * 6))


def test_wall_features_give_the_clipped_vector_and_distance_to_the_nearest_wall_marker():
    # two wall markers on the line x = 0 (node_attr's last column flags them) and three particles
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.1], [0.01, 0.0], [0.005, 0.1], [0.5, 0.5]])
    attr = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    hist = pos[None].expand(2, -1, -1)
    off = GraphBuilder(GraphConfig(history=1, radius=0.05)).build(hist, attr)
    assert "wall_feat" not in off  # off by default: graphs as before
    g = GraphBuilder(GraphConfig(history=1, radius=0.05, wall_clip=0.02)).build(hist, attr)
    expect = torch.tensor([[0, 0, 0], [0, 0, 0], [-0.5, 0, 0.5], [-0.25, 0, 0.25], [0, 0, 1]])
    assert torch.allclose(g.wall_feat, expect)
    # with roots the roots get zeros; copies of a scene (batch) see only their own walls
    b = GraphBuilder(GraphConfig(history=1, radius=0.05, wall_clip=0.02, free_roots=1))
    inst = torch.tensor([0, 0, -1, -1, -1])
    g = b.build(hist, attr, instance=inst, root_of=b.roots_for(pos, inst))
    assert g.wall_feat.shape == (g.num_nodes, 3) and torch.allclose(g.wall_feat[:5], expect)
    assert not g.wall_feat[5:].any()
    two = torch.cat([pos, pos + torch.tensor([0.015, 0.0])])[None].expand(2, -1, -1)
    g = GraphBuilder(GraphConfig(history=1, wall_clip=0.02)).build(two, torch.cat([attr, attr]),
                                                                    batch=torch.tensor([0] * 5 + [1] * 5))
    assert torch.allclose(g.wall_feat[:5], expect) and torch.allclose(g.wall_feat[5:], expect)
    with pytest.raises(ConfigError, match="wall_clip"):
        GraphConfig(wall_clip=-1.0)
    with pytest.raises(StateError, match="wall_column 5"):
        GraphBuilder(GraphConfig(history=1, wall_clip=0.02, wall_column=5)).build(hist, attr)


def test_box_features_tell_the_inside_of_a_wall_from_its_outside():
    from physics.graph.builder import box_distances

    # a U of wall markers: floor y = 0 from x = 0 to 1, sides up to y = 0.5; three particles:
    # inside near the left wall, past the right wall, below the floor
    marks = [[x, 0.0] for x in (0.0, 0.5, 1.0)] + [[0.0, 0.5], [1.0, 0.5]]
    pos = torch.tensor(marks + [[0.01, 0.3], [1.01, 0.3], [0.5, -0.03]])
    attr = torch.tensor([[0.0, 1.0]] * 5 + [[1.0, 0.0]] * 3)
    hist = pos[None].expand(2, -1, -1)
    assert "box_bounds" not in GraphBuilder(GraphConfig(history=1, radius=0.05)).build(hist, attr)
    g = GraphBuilder(GraphConfig(history=1, radius=0.05, wall_box=0.02)).build(hist, attr)
    feat = box_distances(g.pos_hist[:, -1], g.box_bounds, 0.02)  # [x - left, y - floor, right - x]
    expect = torch.tensor([[0.5, 1.0, 1.0], [1.0, 1.0, -0.5], [1.0, -1.0, 1.0]])
    assert torch.allclose(feat[5:], expect)
    assert torch.equal(feat[:5], torch.ones(5, 3))  # markers: no wall of their own
    # the edges cannot tell the two side cases apart: a marker lies 0.01 m to the left of both particles
    assert torch.allclose(pos[5] - pos[3], torch.tensor([0.01, -0.2])) and torch.allclose(pos[6] - pos[4], torch.tensor([0.01, -0.2]))
    # copies of a scene (batch) get their own container; a scene without markers gets none (1: far)
    two = torch.cat([pos, pos + torch.tensor([5.0, 0.0])])[None].expand(2, -1, -1)
    g = GraphBuilder(GraphConfig(history=1, wall_box=0.02)).build(two, torch.cat([attr, attr]),
                                                                   batch=torch.tensor([0] * 8 + [1] * 8))
    feat = box_distances(g.pos_hist[:, -1], g.box_bounds, 0.02)
    assert torch.allclose(feat[5:8], expect) and torch.allclose(feat[13:], expect, atol=1e-4)
    free = GraphBuilder(GraphConfig(history=1, wall_box=0.02)).build(hist[:, 5:], attr[5:])
    assert torch.equal(box_distances(free.pos_hist[:, -1], free.box_bounds, 0.02), torch.ones(3, 3))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="wall_box"):
            GraphConfig(wall_box=bad)


def test_box_features_follow_a_moving_container():
    """fluidshake's container slides: ``box_bounds`` must be the container of the input's last frame,
    not of an earlier one, so the same particle reads "inside" before the wall passes and "past it" after."""
    from physics.graph.builder import box_distances

    marks = torch.tensor([[x, 0.0] for x in (0.0, 0.5, 1.0)] + [[0.0, 0.5], [1.0, 0.5]])
    attr = torch.tensor([[0.0, 1.0]] * 5 + [[1.0, 0.0]])
    p = torch.tensor([[0.95, 0.3]])
    hist = torch.stack([torch.cat([marks, p]), torch.cat([marks - torch.tensor([0.1, 0.0]), p])])  # walls moved left
    g = GraphBuilder(GraphConfig(history=1, radius=0.05, wall_box=0.1)).build(hist, attr)
    assert torch.allclose(g.box_bounds[5], torch.tensor([[-0.1, 0.0], [0.9, float("inf")]]))
    assert torch.allclose(box_distances(g.pos_hist[:, -1], g.box_bounds, 0.1)[5], torch.tensor([1.0, 1.0, -0.5]))
    back = GraphBuilder(GraphConfig(history=1, radius=0.05, wall_box=0.1)).build(hist.flip(0), attr)
    assert torch.allclose(box_distances(back.pos_hist[:, -1], back.box_bounds, 0.1)[5], torch.tensor([1.0, 1.0, 0.5]))
