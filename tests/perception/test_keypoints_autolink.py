"""AutoLink: soft arg-max, the link map (values and gradients), masking, the graph, training and the bench."""

from __future__ import annotations

import pytest
import torch

from perception.benchmark import run_bench
from perception.keypoints import autolink
from perception.keypoints.autolink import (
    AutoLink,
    AutoLinkConfig,
    apply_regressor,
    blob_map,
    edge_f1,
    edge_map,
    fit_linear_regressor,
    link_graph,
    mask_patches,
    match_keypoints,
    soft_argmax,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_soft_argmax_finds_a_sharp_peak_at_its_pixel_centre():
    maps = torch.full((1, 2, 8, 8), -50.0)
    maps[0, 0, 2, 5] = 50.0  # row 2, column 5
    maps[0, 1, 7, 0] = 50.0
    kp = soft_argmax(maps)
    assert kp.shape == (1, 2, 2)
    assert torch.allclose(kp[0, 0], torch.tensor([(2 * 5 + 1) / 8 - 1, (2 * 2 + 1) / 8 - 1]), atol=1e-5)
    assert torch.allclose(kp[0, 1], torch.tensor([1 / 8 - 1, 15 / 8 - 1]), atol=1e-5)


def test_edge_map_draws_weighted_segments_only_between_linked_keypoints():
    kp = torch.tensor([[[-0.5, 0.0], [0.5, 0.0], [0.0, 0.9]]])
    w = torch.zeros(3, 3)
    w[0, 1] = 0.7
    drawn = edge_map(kp, w, 16, 0.15)[0, 0]
    assert drawn.shape == (16, 16) and float(drawn.max()) <= 0.7 + 1e-6
    # pixel centres of rows 7 and 8 lie at y = -+1/16, beside the segment: near-full weight along it
    assert torch.all(drawn[7:9, 5:11] > 0.7 * 0.8) and torch.allclose(drawn[7], drawn[8])
    assert float(drawn[14:, :].max()) < 1e-6  # nothing drawn towards the unlinked third keypoint
    assert float(edge_map(kp, torch.zeros(3, 3), 16, 0.15).max()) == 0.0
    blobs = blob_map(kp, 16, 0.15)[0, 0]
    assert float(blobs[7:9, 3:5].max()) > 0.5 and float(blobs[7:9, 7:9].max()) < 0.01  # blobs, no line between


def test_edge_map_gradients_match_finite_differences():
    kp = torch.tensor([[[-0.4, -0.2], [0.3, 0.25], [0.1, -0.6]]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[0, 0.8, 0.3], [0, 0, 0.6], [0, 0, 0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k, ww: edge_map(k, ww, 8, 0.3), (kp, w), eps=1e-6, atol=1e-5)


def test_mask_patches_hides_the_asked_fraction_of_whole_patches():
    x = torch.ones(3, 3, 16, 16)
    masked = mask_patches(x, 0.75, 4, torch.Generator().manual_seed(0))
    per_patch = masked[:, 0].unfold(1, 4, 4).unfold(2, 4, 4).mean((-1, -2))  # [3, 4, 4]
    assert set(per_patch.unique().tolist()) == {0.0, 1.0}
    assert torch.all(per_patch.sum((1, 2)) == 4)  # 16 patches, 12 hidden
    with pytest.raises(StateError):
        mask_patches(torch.ones(1, 3, 10, 10), 0.5, 4)


def _train(seed: int, links: bool) -> tuple[list[float], dict]:
    g = torch.Generator().manual_seed(5)
    images = torch.rand(4, 3, 16, 16, generator=g) * (torch.rand(4, 1, 16, 16, generator=g) > 0.8)
    torch.manual_seed(seed)
    model = AutoLink(AutoLinkConfig(keypoints=3, width=4, links=links, patch=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    masks = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(8):
        loss = model.loss(images, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


@pytest.mark.parametrize("links", [True, False])
def test_tiny_autolink_loss_falls_and_is_deterministic_for_a_seed(links):
    losses, w = _train(0, links)
    again, w2 = _train(0, links)
    assert losses[-1] < losses[0]
    assert losses == again and all(torch.equal(w[k], w2[k]) for k in w)


def test_forward_shapes_and_symmetric_link_weights():
    model = AutoLink(AutoLinkConfig(keypoints=4, width=4)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 16, 16), torch.zeros(2, 3, 16, 16))
    assert out["keypoints"].shape == (2, 4, 2) and out["map"].shape == (2, 1, 16, 16)
    assert out["recon"].shape == (2, 3, 16, 16) and float(out["keypoints"].abs().max()) <= 1.0
    w = model.weights().detach()
    assert torch.equal(w, w.T) and torch.all(w.diagonal() == 0) and 0.2 < float(w[0, 1]) < 0.4  # links start partly on
    with pytest.raises(StateError):
        model.keypoints(torch.rand(2, 1, 16, 16))
    with pytest.raises(ConfigError):
        AutoLinkConfig(keypoints=1)


def test_link_graph_keeps_strong_links_and_scores_them_against_the_tree():
    model = AutoLink(AutoLinkConfig(keypoints=4, width=4))
    with torch.no_grad():  # pairs in order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
        model.link_logits.copy_(torch.tensor([4.0, -4.0, -4.0, 4.0, -4.0, 3.0]) / autolink._LINK_RATE)
    graph = link_graph(model, positions=torch.zeros(4, 2))
    assert sorted(graph.edges) == [(0, 1), (1, 2), (2, 3)] and graph.nodes[0]["pos"] == (0.0, 0.0)
    assert graph[0][1]["weight"] == pytest.approx(torch.nn.functional.softplus(torch.tensor(4.0)).item())
    # keypoints 0..3 sit on points 3, 2, 1, 0: the chain read backwards is the same tree
    scores = edge_f1(graph, {0: 3, 1: 2, 2: 1, 3: 0}, [(0, 1), (1, 2), (2, 3)])
    assert scores == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert edge_f1(graph, {0: 0, 1: 2, 2: 1, 3: 3}, [(0, 1), (1, 2), (2, 3)])["f1"] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="links"):
        link_graph(AutoLink(AutoLinkConfig(keypoints=3, width=4, links=False)))


def test_linear_regressor_and_matching_recover_a_known_map_and_permutation():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(50, 3, 2, generator=g) * 32
    kp = points[:, [2, 0, 1]] + 0.01 * torch.randn(50, 3, 2, generator=g)
    assert match_keypoints(kp, points) == {0: 2, 1: 0, 2: 1}
    mapping = fit_linear_regressor(kp, points)
    assert mapping.shape == (7, 6)
    assert float((apply_regressor(mapping, kp, 3) - points).abs().max()) < 0.1


def test_quick_bench_reports_both_checks_with_figures():
    result = run_bench("autolink", quick=True, seed=0)
    names = [c["name"] for c in result["checks"]]
    assert names == ["keypoint->joint linear error", "learned graph edge F1"]
    assert all(isinstance(c["passed"], bool) for c in result["checks"])
    assert 0.0 <= result["checks"][1]["ours"] <= 1.0 and result["checks"][0]["ours"] >= 0.0
    assert result["figures"]["params_ours"] == result["figures"]["params_ablation"] + 10  # one weight per pair
