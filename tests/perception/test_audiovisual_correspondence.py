"""L3-Net, AVE-Net, AVOL-Net: shapes, the AVE distance and AVOL max pooling, negatives, metrics, losses fall."""

from __future__ import annotations

import pytest
import torch

from perception.audiovisual.clips import SPEC_BINS
from perception.audiovisual.correspondence import (
    AVENet,
    AVNetConfig,
    AVOLNet,
    L3Net,
    correspondence_logits,
    correspondence_loss,
    load_avol,
    mismatched_partners,
    peak_hits,
    recall_at_k,
    save_avol,
)
from physics.errors import CheckpointError, ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = AVNetConfig(widths=(4, 8, 8), embed=8, fusion=8)


def _pairs(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randn(n, 1, 24, 16, generator=g)


def test_networks_return_the_documented_shapes():
    frames, spec = _pairs()
    torch.manual_seed(0)
    assert L3Net(SMALL)(frames, spec).shape == (6, 2)
    assert AVENet(SMALL)(frames, spec).shape == (6, 2)
    score, grid = AVOLNet(SMALL)(frames, spec)
    assert score.shape == (6,) and grid.shape == (6, 8, 8)  # 32 / 2^(3 - 1)
    assert AVNetConfig(convs=2).convs == 2 and len(L3Net(AVNetConfig(convs=2)).vision.net) > len(L3Net().vision.net)
    maps = AVOLNet(SMALL).localise(frames, spec)
    assert maps.shape == (6, 32, 32) and 0 <= float(maps.min()) and float(maps.max()) <= 1


def test_ave_net_embeddings_are_unit_and_its_logits_depend_only_on_their_distance():
    frames, spec = _pairs()
    torch.manual_seed(0)
    net = AVENet(SMALL).eval()
    with torch.no_grad():
        v, a = net.embed_frames(frames), net.embed_audio(spec)
        assert torch.allclose(v.norm(dim=1), torch.ones(6)) and torch.allclose(a.norm(dim=1), torch.ones(6))
        dist = (v - a).norm(dim=1, keepdim=True)
        assert torch.allclose(net(frames, spec), net.calibrate(dist))


def test_avol_score_is_the_maximum_of_its_map():
    frames, spec = _pairs()
    torch.manual_seed(0)
    net = AVOLNet(SMALL).eval()
    with torch.no_grad():
        score, grid = net(frames, spec)
    assert torch.equal(score, grid.flatten(1).amax(1))


def test_wrong_shapes_and_configs_are_refused_by_name():
    frames, spec = _pairs()
    with pytest.raises(StateError, match="frames must be"):
        L3Net(SMALL)(frames[:, :1], spec)
    with pytest.raises(StateError, match="pairs need one of each"):
        AVENet(SMALL)(frames, spec[:3])
    with pytest.raises(ConfigError, match="widths"):
        AVNetConfig(widths=())


def test_mismatched_partners_never_pair_a_row_with_itself_and_same_clip_partners_count_as_corresponding():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        partner = mismatched_partners(torch.arange(5), g)
        assert (partner != torch.arange(5)).all() and sorted(partner.tolist()) == list(range(5))
    with pytest.raises(StateError, match="at least 2"):
        mismatched_partners(torch.arange(1))
    frames, spec = _pairs(4)
    torch.manual_seed(0)
    logits, labels = correspondence_logits(L3Net(SMALL), frames, spec, torch.tensor([7, 7, 7, 7]), g)
    assert logits.shape == (8, 2) and labels.tolist() == [1] * 8  # every partner is the same clip


def test_recall_at_k_counts_the_own_item_among_the_k_nearest():
    items = torch.eye(4)
    queries = torch.eye(4)[[0, 2, 1, 3]]  # queries 1 and 2 are nearest to each other's item
    assert recall_at_k(queries, items, 1) == 0.5
    assert recall_at_k(queries, items, 2) == 1.0
    with pytest.raises(StateError, match="1 <= k"):
        recall_at_k(queries, items, 5)


def test_peak_hits_reads_the_target_under_each_maximum():
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 2] = 1.0
    maps[1, 3, 3] = 1.0
    targets = torch.zeros(2, 4, 4, dtype=torch.bool)
    targets[0, 1, 2] = True
    targets[1, 0, 0] = True
    assert peak_hits(maps, targets).tolist() == [True, False]


@pytest.mark.parametrize("cls", [L3Net, AVENet, AVOLNet])
def test_each_network_learns_a_planted_correspondence(cls):
    # the clip's identity is a colour in the frame and a frequency band in the spectrogram
    n = 16
    ids = torch.arange(n) % 4
    frames = torch.zeros(n, 3, 16, 16)
    frames[torch.arange(n), ids % 3, 4:12, 4:12] = 1.0
    frames[ids == 3] = 0.5
    spec = torch.zeros(n, 1, 16, 8)
    for row in range(n):
        spec[row, 0, 4 * ids[row] : 4 * ids[row] + 4] = 1.0
    torch.manual_seed(0)
    net = cls(AVNetConfig(widths=(8, 8, 16), embed=8, fusion=16))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(80):
        logits, labels = correspondence_logits(net, frames, spec, ids, g)
        loss = correspondence_loss(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_avol_checkpoint_round_trips_and_a_damaged_one_is_refused(tmp_path):
    torch.manual_seed(0)
    net = AVOLNet(SMALL).eval()
    path = tmp_path / "avol.pt"
    save_avol(net, path, height=32, width=32, sample_rate=11025, command="test")
    back, meta = load_avol(path)
    frames, spec = _pairs()
    with torch.no_grad():
        assert torch.equal(back.similarity_map(frames, spec), net.similarity_map(frames, spec))
    assert meta["height"] == 32 and meta["sample_rate"] == 11025 and meta["command"] == "test"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_avol(path)


LOCAL = AVNetConfig(widths=(4, 8, 8), embed=8, kernels=(3, 1, 1), profile=True, cosine=True)


def test_avol_options_keep_the_map_shape_and_bound_the_cosine_map_by_its_scale():
    g = torch.Generator().manual_seed(1)
    frames, spec = torch.rand(5, 3, 32, 32, generator=g), torch.randn(5, 1, SPEC_BINS, 16, generator=g)
    torch.manual_seed(0)
    net = AVOLNet(LOCAL).eval()
    with torch.no_grad():
        score, grid = net(frames, spec)
        assert grid.shape == (5, 8, 8) and torch.equal(score, grid.flatten(1).amax(1))
        assert float((grid - net.bias).abs().max()) <= float(net.scale.abs()) + 1e-5  # |cos| <= 1
        louder = spec.clone()
        louder[:, :, 10] += 3.0  # one frequency bin louder throughout: the profile (and the map) change
        assert not torch.allclose(net(frames, louder)[1], grid)
    with pytest.raises(StateError, match="bins"):
        net(frames, torch.randn(5, 1, 24, 16))
    with pytest.raises(ConfigError, match="kernels"):
        AVNetConfig(widths=(4, 8), kernels=(3, 2))


def test_avol_checkpoint_keeps_its_options(tmp_path):
    torch.manual_seed(0)
    net = AVOLNet(LOCAL).eval()
    save_avol(net, tmp_path / "avol.pt", height=32, width=32, sample_rate=11025, command="test")
    back, _ = load_avol(tmp_path / "avol.pt")
    assert back.config == LOCAL
    frames, spec = torch.rand(2, 3, 32, 32), torch.randn(2, 1, SPEC_BINS, 16)
    with torch.no_grad():
        assert torch.equal(back.similarity_map(frames, spec), net.similarity_map(frames, spec))


@pytest.mark.parametrize("cls", [L3Net, AVENet])
def test_l3_and_ave_with_the_spectral_profile_hear_a_louder_bin_and_refuse_other_bin_counts(cls):
    g = torch.Generator().manual_seed(2)
    frames, spec = torch.rand(4, 3, 32, 32, generator=g), torch.randn(4, 1, SPEC_BINS, 16, generator=g)
    config = AVNetConfig(widths=(4, 8, 8), embed=8, fusion=8, profile=True)
    torch.manual_seed(0)
    net = cls(config).eval()
    with torch.no_grad():
        out = net(frames, spec)
        assert out.shape == (4, 2)
        louder = spec.clone()
        louder[:, :, 10] += 3.0  # one bin louder throughout: the profile, hence the logits, change
        assert not torch.allclose(net(frames, louder), out)
    with pytest.raises(StateError, match=f"{cls.__name__}: the spectral profile needs {SPEC_BINS} bins"):
        net(frames, torch.randn(4, 1, 24, 16))


TEMPORAL = AVNetConfig(image_channels=3 * 5, widths=(4, 8, 8), embed=8, fusion=16, steps=4)


def test_temporal_networks_keep_time_and_check_their_window():
    from perception.audiovisual.correspondence import FrameMotionTower, SpectralTimeTower

    g = torch.Generator().manual_seed(3)
    frames, spec = torch.rand(3, 15, 16, 16, generator=g), torch.randn(3, 1, SPEC_BINS, 20, generator=g)
    assert FrameMotionTower((4, 8))(frames).shape == (3, 16, 4)  # max and mean of 8 channels, 4 steps
    assert SpectralTimeTower(SPEC_BINS, 8, 4)(spec).shape == (3, 8, 4)
    torch.manual_seed(0)
    for cls in (L3Net, AVENet):
        assert cls(TEMPORAL).eval()(frames, spec).shape == (3, 2)
    net = AVENet(TEMPORAL).eval()
    with torch.no_grad():
        still = frames.view(3, 5, 3, 16, 16)[:, :1].expand(3, 5, 3, 16, 16).reshape(3, 15, 16, 16)
        moved = still.clone()
        moved[:, 9:12] = still[:, 9:12].roll(2, -1)  # the fourth frame moves: its difference and the next one's
        assert not torch.allclose(net.embed_frames(moved), net.embed_frames(still))
    with pytest.raises(ConfigError, match="steps = 4 needs image_channels = 3"):
        AVNetConfig(image_channels=12, steps=4)


def test_shifted_centres_stay_in_range_and_move_two_frames_or_more():
    from perception.audiovisual.correspondence import shifted_centres

    t = torch.arange(4, 13).repeat(50)
    s = shifted_centres(t, 4, 12, torch.Generator().manual_seed(0))
    assert int(s.min()) >= 4 and int(s.max()) <= 12 and int((s - t).abs().min()) >= 2
    with pytest.raises(StateError, match="no shift"):
        shifted_centres(t, 4, 6)


@pytest.mark.parametrize("cls", [L3Net, AVENet])
def test_synchrony_loss_falls_when_the_clips_differ_only_in_timing(cls):
    from perception.audiovisual.correspondence import synchrony_loss

    # every clip shows the same square; it moves in the steps where the audio is loud, which differ per clip
    n, steps = 8, 4
    g = torch.Generator().manual_seed(0)
    loud = torch.rand(n, steps, generator=g) > 0.5
    loud[torch.arange(n), torch.arange(n) % steps] = True
    frames = torch.zeros(n, steps + 1, 3, 16, 16)
    x = torch.zeros(n, dtype=torch.long) + 2
    for k in range(steps + 1):
        if k:
            x = x + 3 * loud[:, k - 1].long()
        for i in range(n):
            frames[i, k, 0, 6:10, int(x[i]) : int(x[i]) + 3] = 1.0
    spec = torch.zeros(n, 1, SPEC_BINS, 4 * steps)
    spec[:, 0, 10:20] = loud.repeat_interleave(4, 1)[:, None].float()
    shifted = spec.roll(4, -1)
    torch.manual_seed(0)
    net = cls(TEMPORAL)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    ids = torch.arange(n)
    losses = []
    for _ in range(60):
        loss = synchrony_loss(net, frames.flatten(1, 2), spec, shifted, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    with pytest.raises(ConfigError, match="temporal towers"):
        synchrony_loss(cls(SMALL), torch.rand(2, 3, 16, 16), torch.randn(2, 1, 16, 8), torch.randn(2, 1, 16, 8),
                       torch.arange(2))
