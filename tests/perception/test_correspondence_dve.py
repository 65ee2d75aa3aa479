"""Critters carry exact dense correspondence; DVE's warps, loss, matching and PCK do what they say; it trains."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.benchmark import PERCEPTION_BENCHES, BenchSize
from perception.correspondence.critters import CritterConfig, correspond, render_critters
from perception.correspondence.dve import (
    DescriptorNet,
    DVEConfig,
    WarpRange,
    colour_jitter,
    dense_matching_loss,
    match_points,
    pck_between,
    random_warps,
    train_dve,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = CritterConfig(size=32)


def test_critters_are_deterministic_per_seed_and_shaped():
    a, b = render_critters([3, 4], SMALL), render_critters([3, 4], SMALL)
    assert a.images.shape == (2, 3, 32, 32) and a.coords.shape == (2, 2, 32, 32) and a.masks.shape == (2, 32, 32)
    assert torch.equal(a.images, b.images) and torch.equal(a.coords, b.coords)
    assert not torch.equal(a.images[0], a.images[1])
    assert 0 <= float(a.images.min()) and float(a.images.max()) <= 1
    inside = a.coords.permute(0, 2, 3, 1)[a.masks > 0.5]
    assert len(inside) > 100 and float(inside.norm(dim=1).max()) <= 1.05  # the head is the canonical unit disc


def test_correspondence_of_a_critter_with_itself_is_the_identity_and_across_critters_keeps_the_meaning():
    c = render_critters([10, 11], CritterConfig())
    ys, xs = torch.nonzero(c.masks[0] > 0.5, as_tuple=True)
    pts = torch.stack([xs, ys], 1)[::37]
    same, gap = correspond(c.coords[0], pts, c.coords[0], c.masks[0])
    assert torch.equal(same, pts.float()) and float(gap.max()) == 0.0
    other, gap = correspond(c.coords[0], pts, c.coords[1], c.masks[1])
    seen = gap < 0.05
    assert seen.float().mean() > 0.8
    # the matched pixel of the other critter carries (nearly) the same canonical coordinates
    got = c.coords[1][:, other[seen, 1].long(), other[seen, 0].long()].T
    want = c.coords[0][:, pts[seen, 1], pts[seen, 0]].T
    assert float((got - want).norm(dim=1).max()) < 0.05
    with pytest.raises(StateError):
        correspond(c.coords[0][0], pts, c.coords[1], c.masks[1])
    with pytest.raises(ConfigError):
        CritterConfig(size=8)


def test_a_zero_warp_is_the_identity_and_a_warp_moves_pixels_where_its_grid_says():
    g = torch.Generator().manual_seed(0)
    still = random_warps(2, 16, g, WarpRange(rotation=0, scale=(1, 1), shift=0, flow=0))
    img = torch.rand(2, 3, 16, 16, generator=g)
    assert torch.allclose(F.grid_sample(img, still, align_corners=False), img, atol=1e-5)
    # a grid shifted by 0.25 half-sides in x (two pixels of 16): x2(q) = x1(q + 2 px)
    grid = still[:1] + torch.tensor([0.25, 0.0])
    moved = F.grid_sample(img[:1], grid, align_corners=False)
    assert torch.allclose(moved[..., :, :14], img[:1, ..., :, 2:], atol=1e-5)


def test_colour_jitter_changes_colours_not_geometry_and_repeats_for_a_seed():
    images = render_critters([5, 6], SMALL).images
    assert colour_jitter(images, torch.Generator().manual_seed(0), 0.0) is images
    a = colour_jitter(images, torch.Generator().manual_seed(0), 0.5)
    b = colour_jitter(images, torch.Generator().manual_seed(0), 0.5)
    assert torch.equal(a, b) and a.shape == images.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert (a - images).abs().mean() > 0.02
    # a per-pixel colour map: pixels of equal colour stay equal, so every edge stays where it was
    flat = images[0].flatten(1).T
    twin = (flat[:, None] == flat[None]).all(-1)
    out = a[0].flatten(1).T
    assert (out[:, None] == out[None]).all(-1)[twin].all()


def _positional(h: int, dim: int = 64) -> torch.Tensor:
    """Descriptors that name each location of an h x h map (random unit codes): [1, dim, h, h]."""
    g = torch.Generator().manual_seed(1)
    return F.normalize(torch.randn(1, dim, h, h, generator=g), dim=1)


def test_the_loss_is_near_zero_for_descriptors_that_match_and_high_for_ones_that_do_not():
    f = _positional(8)
    target = random_warps(1, 8, torch.Generator(), WarpRange(rotation=0, scale=(1, 1), shift=0, flow=0))
    good = dense_matching_loss(f, f, target, tau=0.02)
    bad = dense_matching_loss(f, f.flip(-1), target, tau=0.02)
    assert float(good) < 0.01 < 0.3 < float(bad)
    # exchanging through an identical third image changes nothing when matches are exact
    assert float(dense_matching_loss(f, f, target, tau=0.02, aux=f)) < 0.01
    # a subset of the queries: the same value for exact matches
    assert float(dense_matching_loss(f, f, target, tau=0.02, queries=torch.arange(10))) < 0.01
    with pytest.raises(StateError):
        dense_matching_loss(f, f[..., :4], target, tau=0.02)


def test_matching_and_pck_are_exact_with_oracle_descriptors_made_from_the_true_coordinates():
    c = render_critters(range(20, 26), CritterConfig())
    centres = torch.stack(torch.meshgrid(torch.linspace(-1.4, 1.4, 15), torch.linspace(-1.4, 1.4, 15),
                                         indexing="ij"), -1).reshape(-1, 2)
    uv = c.coords.permute(0, 2, 3, 1)  # [N, S, S, 2]
    oracle = torch.exp(-((uv[..., None, :] - centres) ** 2).sum(-1) / (2 * 0.06**2))
    desc = F.normalize(oracle.permute(0, 3, 1, 2), dim=1)
    pts = torch.tensor([[30, 30], [28, 36]])
    assert torch.equal(match_points(desc[0], pts, desc[0]), pts.float())
    pairs = torch.tensor([[0, 3], [1, 4], [2, 5]])
    pck, scored = pck_between(desc, c, pairs, 30, 5.0, torch.Generator().manual_seed(0))
    assert scored > 60 and pck >= 0.95
    shuffled = desc[torch.randperm(6, generator=torch.Generator().manual_seed(0))].flip(-1)
    assert pck_between(shuffled, c, pairs, 30, 5.0, torch.Generator().manual_seed(0))[0] < 0.5


def test_the_descriptor_net_returns_unit_descriptors_on_the_half_grid():
    net = DescriptorNet(DVEConfig(dim=8, width=4))
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 8, 16, 16)
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)
    with pytest.raises(StateError):
        net(torch.rand(2, 1, 32, 32))
    with pytest.raises(ConfigError):
        DVEConfig(tau=0)


def _fit(exchange: bool, seed: int) -> tuple[list[float], dict]:
    images = render_critters(range(6), SMALL).images
    torch.manual_seed(seed)
    model = DescriptorNet(DVEConfig(dim=8, width=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    grid = random_warps(6, 32, g)
    x2 = F.grid_sample(images, grid, align_corners=False)
    target = F.avg_pool2d(grid.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    losses = []
    for _ in range(12):
        f = model(torch.cat([images, x2]))
        f1, f2 = f[:6], f[6:]
        loss = dense_matching_loss(f1, f2, target, 0.05, f1.roll(1, 0) if exchange else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


@pytest.mark.parametrize("exchange", [True, False])
def test_both_losses_fall_and_training_is_deterministic_for_a_seed(exchange):
    losses, w = _fit(exchange, 0)
    again, w2 = _fit(exchange, 0)
    assert sum(losses[-3:]) < sum(losses[:3])
    assert losses == again and all(torch.equal(w[k], w2[k]) for k in w)


def test_train_dve_uses_the_shared_loop_and_repeats_for_a_seed():
    images = render_critters(range(4), SMALL).images
    size = BenchSize(train=4, test=0, steps=3, batch=2)
    (m1, h1), (m2, h2) = (train_dve(DVEConfig(dim=4, width=4), images, size, 5) for _ in range(2))
    assert len(h1) == 1 and h1[0]["loss"] == h2[0]["loss"]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))


def test_dve_is_registered_as_a_perception_benchmark():
    assert "dve" in PERCEPTION_BENCHES.names()
