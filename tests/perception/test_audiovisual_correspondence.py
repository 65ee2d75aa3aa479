"""L3-Net, AVE-Net, AVOL-Net: shapes, the AVE distance and AVOL max pooling, negatives, metrics, losses fall."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from perception.audiovisual.clips import SPEC_BINS, clip_bank
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


def test_an_avol_checkpoint_lacking_an_entry_says_what_it_lacks(tmp_path):
    # it said "does not fit the network ('config')", a KeyError's bare text
    path = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"other.pt does not fit the network \(it lacks 'config'\)"):
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


def test_l3_from_ave_copies_towers_and_time_heads_and_refuses_other_configs():
    from perception.audiovisual.correspondence import l3_from_ave

    g = torch.Generator().manual_seed(4)
    frames, spec = torch.rand(3, 15, 16, 16, generator=g), torch.randn(3, 1, SPEC_BINS, 20, generator=g)
    torch.manual_seed(1)
    ave = AVENet(TEMPORAL).eval()
    torch.manual_seed(2)
    l3 = L3Net(TEMPORAL).eval()
    fusion = [p.clone() for p in l3.fusion.parameters()]
    towers = l3_from_ave(l3, ave)
    assert towers == (l3.vision[0], l3.audio[0])
    with torch.no_grad():
        v, a = l3.encode(frames, spec)
        # L3-Net's codes are AVE-Net's embeddings before their normalisation
        assert torch.allclose(F.normalize(v, dim=1), ave.embed_frames(frames), atol=1e-6)
        assert torch.allclose(F.normalize(a, dim=1), ave.embed_audio(spec), atol=1e-6)
    assert all(torch.equal(p, q) for p, q in zip(fusion, l3.fusion.parameters(), strict=True))  # fusion fresh
    with pytest.raises(ConfigError, match="same temporal configuration"):
        l3_from_ave(L3Net(SMALL), AVENet(SMALL))
    with pytest.raises(ConfigError, match="same temporal configuration"):
        l3_from_ave(L3Net(TEMPORAL), AVENet(replace(TEMPORAL, embed=16)))


@pytest.fixture(scope="module")
def tiny_bank():
    return clip_bank(990_100, 8)  # eight real clips (about a second to make)


def test_train_synchrony_keeps_frozen_towers_and_their_statistics_and_trains_the_rest(tiny_bank):
    from perception.audiovisual.correspondence import Window, l3_from_ave, train_synchrony
    from perception.benchmark import BenchSize

    torch.manual_seed(0)
    ave, l3 = AVENet(TEMPORAL), L3Net(TEMPORAL)
    towers = l3_from_ave(l3, ave)
    before = {k: v.clone() for k, v in l3.state_dict().items()}
    window = Window(offsets=tuple(range(-3, 2)), before=4, after=4)  # audio averaged into the 4 steps
    history = train_synchrony(l3, tiny_bank, window, BenchSize(train=8, test=0, steps=4, batch=6), 0, "t",
                              frozen=towers)
    assert history and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    after = l3.state_dict()
    frozen = [k for k in before if k.startswith(("vision.0.", "audio.0."))]
    assert frozen and any("running_mean" in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # weights and batch-norm statistics kept
    assert not torch.equal(before["fusion.0.weight"], after["fusion.0.weight"])
    assert not torch.equal(before["vision.1.fc.weight"], after["vision.1.fc.weight"])  # time heads still learn
    with pytest.raises(ConfigError, match="every parameter is frozen"):
        train_synchrony(l3, tiny_bank, window, BenchSize(train=8, test=0, steps=1, batch=6), 0, "t", frozen=(l3,))


def test_train_steps_follows_a_given_schedule_step_by_step():
    from perception.benchmark import train_steps
    from physics.training import WarmupCosine

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    rates = WarmupCosine(1e-2, 6, 0.1)
    history = train_steps(model, lambda idx: {"loss": model(torch.ones(len(idx), 2)).pow(2).mean()}, items=4,
                          steps=6, batch=2, lr=1e-2, seed=0, desc="t", per_round=1, schedule=rates)
    assert [h["lr"] for h in history] == pytest.approx([rates.lr(0, s) for s in range(6)])
    lrs = [h["lr"] for h in history]
    assert lrs[1] == pytest.approx(1e-2) and all(a > b > 1e-3 for a, b in zip(lrs[1:-1], lrs[2:], strict=True))  # decays towards the floor


def test_train_synchrony_cosine_decay_trains_and_bad_fractions_or_temperatures_are_refused(tiny_bank):
    from perception.audiovisual.correspondence import Window, train_synchrony
    from perception.benchmark import BenchSize

    window = Window(offsets=tuple(range(-3, 2)), before=4, after=4)
    size = BenchSize(train=8, test=0, steps=3, batch=6)
    nets = []
    for cosine in (None, 0.0):
        torch.manual_seed(0)
        ave = AVENet(TEMPORAL)
        history = train_synchrony(ave, tiny_bank, window, size, 0, "t", cosine=cosine)
        assert history and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
        nets.append(ave.state_dict())
    # the same start and batches; only the rates differ after the warm-up step
    assert not torch.equal(nets[0]["audio_head.fc.weight"], nets[1]["audio_head.fc.weight"])
    for bad in (float("nan"), -0.1, 1.5, "0.1", True):
        with pytest.raises(ConfigError, match="cosine must be a fraction"):
            train_synchrony(AVENet(TEMPORAL), tiny_bank, window, size, 0, "t", cosine=bad)
    for bad in (0.0, -0.05, float("nan"), float("inf"), "0.05", True):
        with pytest.raises(ConfigError, match="temperature must be a positive number"):
            train_synchrony(AVENet(TEMPORAL), tiny_bank, window, size, 0, "t", temperature=bad)


@pytest.mark.slow  # a fresh interpreter imports torch: 5-18 s on the shared machine
def test_keep_freed_memory_applies_under_glibc_in_its_own_process():
    import os
    import platform
    import subprocess
    import sys

    # a process of its own: the setting lasts for the life of the process that makes it
    code = "from perception.audiovisual.correspondence import keep_freed_memory as k; print(k())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == str(platform.libc_ver()[0] == "glibc")


def test_the_benchmarks_l3_net_starts_from_its_ave_net_and_keeps_its_towers_frozen():
    from perception.audiovisual.correspondence import L3_WARM, trained_networks

    trained = trained_networks(True, 3, ("l3", "ave"))  # the quick configuration: 12 clips, a few steps
    assert list(trained.nets) == ["l3", "ave"] and set(trained.cpu_seconds) == {"l3", "ave"}
    l3, ave = trained.nets["l3"][0], trained.nets["ave"][0]
    assert L3_WARM[1]  # the benchmark freezes the towers it takes from AVE-Net
    for mine, theirs in ((l3.vision[0], ave.vision), (l3.audio[0], ave.audio)):
        assert all(torch.equal(p, q) for p, q in zip(mine.state_dict().values(), theirs.state_dict().values(),
                                                     strict=True))
    untrained = trained.nets["l3"][1]  # the ablation stays a randomly initialised L3-Net
    assert not torch.equal(untrained.vision[0].tower.net[0].weight, l3.vision[0].tower.net[0].weight)


def test_train_synchrony_learns_its_temperature_from_the_start_value_and_refuses_it_for_l3(tiny_bank):
    from perception.audiovisual.correspondence import MAX_NCE_SCALE, Window, train_synchrony
    from perception.benchmark import BenchSize

    window = Window(offsets=tuple(range(-3, 2)), before=4, after=4)
    size = BenchSize(train=8, test=0, steps=4, batch=6)
    torch.manual_seed(0)
    history = train_synchrony(AVENet(TEMPORAL), tiny_bank, window, size, 0, "t", temperature=0.1,
                              learn_temperature=True)
    taus = [h["temperature"] for h in history]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    # Adam moves log(1 / tau) by about the rate (2e-3 by default) a step: it moved, not far, and stays clamped
    assert taus[0] != pytest.approx(0.1, abs=1e-7) and taus[-1] == pytest.approx(0.1, rel=0.05)
    assert min(taus) >= 1.0 / MAX_NCE_SCALE
    fixed = train_synchrony(AVENet(TEMPORAL), tiny_bank, window, size, 0, "t", temperature=0.1)
    assert "temperature" not in fixed[-1]
    with pytest.raises(ConfigError, match="learn_temperature is for AVE-Net"):
        train_synchrony(L3Net(TEMPORAL), tiny_bank, window, size, 0, "t", learn_temperature=True)


def test_a_learned_temperature_changes_the_loss_gradient_it_gets(tiny_bank):
    from perception.audiovisual.correspondence import synchrony_loss

    torch.manual_seed(0)
    net = AVENet(TEMPORAL)
    idx, t = torch.arange(6), torch.full((6,), 6)
    window_frames = tiny_bank.frame_stack(idx, t, tuple(range(-3, 2)))
    spec = tiny_bank.audio_window(idx, t, 4, 4)
    shifted = tiny_bank.audio_window(idx, t - 2, 4, 4)
    net.eval()  # batch statistics kept, so both calls see the same network
    tau = torch.tensor(0.1, requires_grad=True)
    torch.manual_seed(1)  # the same mismatched partner for the calibrated-distance term
    loss = synchrony_loss(net, window_frames, spec, shifted, idx, tau)
    loss.backward()
    assert tau.grad is not None and torch.isfinite(tau.grad) and tau.grad != 0
    torch.manual_seed(1)
    assert loss.item() == pytest.approx(synchrony_loss(net, window_frames, spec, shifted, idx, 0.1).item(), rel=1e-5)


def test_train_synchrony_flip_mirrors_about_half_the_windows(tiny_bank, monkeypatch):
    from perception.audiovisual import correspondence as module
    from perception.audiovisual.correspondence import Window, train_synchrony
    from perception.benchmark import BenchSize

    seen = []
    real = module.synchrony_loss

    def spy(model, frames, *args):
        seen.append(frames.detach().clone())
        return real(model, frames, *args)

    monkeypatch.setattr(module, "synchrony_loss", spy)
    window = Window(offsets=tuple(range(-3, 2)), before=4, after=4)
    size = BenchSize(train=8, test=0, steps=1, batch=16)
    for flip in (False, True):
        torch.manual_seed(0)
        train_synchrony(AVENet(TEMPORAL), tiny_bank, window, size, 0, "t", flip=flip)
    plain, flipped = seen  # the first step: the same clips and centres (the flips draw after them)
    mirrored = (flipped == plain.flip(3)).flatten(1).all(1) & ~(flipped == plain).flatten(1).all(1)
    same = (flipped == plain).flatten(1).all(1)
    assert bool((mirrored | same).all()) and 0.2 < float(mirrored.float().mean()) < 0.8


def test_the_benchmark_trains_the_size_and_settings_measured_on_held_out_seed_12884():
    from perception.audiovisual.correspondence import FULL_SIZE, L3_WARM, SYNC_TEMPERATURE

    # round 7 (docs/results/perception.md): recall@10 0.514 and L3 0.9115 with exactly these; a change needs its
    # own held-out measurement
    assert (FULL_SIZE.train, FULL_SIZE.test, FULL_SIZE.steps, FULL_SIZE.batch) == (2400, 1000, 1400, 32)
    assert SYNC_TEMPERATURE == 0.1 and L3_WARM == (0.25, True)
