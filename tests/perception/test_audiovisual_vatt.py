"""VATT: tokens, DropToken, NCE and MIL-NCE, frozen features, and the contrastive losses fall."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from perception.audiovisual.clips import Vocabulary
from perception.audiovisual.vatt import (
    VATT,
    VATTConfig,
    clip_step_nce,
    drop_tokens,
    mil_nce_loss,
    nce_loss,
    onset_strength,
    step_means,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = VATTConfig(frames=4, height=16, width=16, tubelet=(2, 8, 8), samples=256, chunk=32, vocab=12, dim=16,
                  depth=1, heads=2, va_dim=8, vt_dim=8)


def _batch(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(n, 4, 3, 16, 16, generator=g)
    audio = torch.randn(n, 256, generator=g)
    text = torch.randint(1, 12, (n, 3, 4), generator=g)
    text[:, 2] = 0  # a missing phrase
    return video, audio, text


def test_tokens_have_one_per_tubelet_and_chunk():
    video, audio, _ = _batch()
    torch.manual_seed(0)
    net = VATT(TINY)
    assert net.video_tokens(video).shape == (4, 2 * 2 * 2, 16)
    assert net.audio_tokens(audio).shape == (4, 8, 16)
    assert net.video_features(video).shape == (4, 32)
    per_time = net.video_features(video, per_time=True)  # [AGG] beside the mean of each of the 2 time steps
    assert per_time.shape == (4, 48)
    assert torch.allclose(per_time[:, 16:].view(4, 2, 16).mean(1), net.video_features(video)[:, 16:], atol=1e-6)


def test_drop_token_keeps_the_asked_share_in_order_and_only_in_training():
    tokens = torch.arange(10, dtype=torch.float32).view(1, 10, 1).expand(3, 10, 2)
    kept = drop_tokens(tokens, 0.5, torch.Generator().manual_seed(0))
    assert kept.shape == (3, 5, 2)
    assert (kept[:, 1:, 0] > kept[:, :-1, 0]).all()  # order kept, no repeats
    video, _, _ = _batch()
    torch.manual_seed(0)
    net = VATT(TINY)
    assert net.train().encode_video(video)[1].shape[1] == 4  # 8 tokens, half dropped
    assert net.eval().encode_video(video)[1].shape[1] == 8


def test_video_features_are_deterministic_and_leave_the_mode_alone():
    video, _, _ = _batch()
    torch.manual_seed(0)
    net = VATT(TINY).train()
    a, b = net.video_features(video), net.video_features(video)
    assert torch.equal(a, b) and net.training


def test_nce_is_low_for_matched_pairs_and_log_n_for_uninformative_ones():
    e = torch.eye(5)
    assert float(nce_loss(e, e, 0.07)) < 1e-3
    assert math.isclose(float(nce_loss(torch.ones(5, 5) / 5**0.5, torch.ones(5, 5) / 5**0.5, 0.07)), math.log(5),
                        rel_tol=1e-5)


def test_extra_negatives_only_enter_the_video_to_audio_direction():
    a = F.normalize(torch.randn(4, 6, generator=torch.Generator().manual_seed(0)), dim=1)
    assert float(nce_loss(a, a, 0.1, extra=-a)) < float(nce_loss(a, a, 0.1, extra=a))  # a copy of the positive
    far = nce_loss(a, a, 0.1, extra=torch.zeros(0, 6))
    assert torch.allclose(far, nce_loss(a, a, 0.1))


def test_sync_negatives_are_the_clip_audio_out_of_time():
    video, audio, text = _batch()
    cfg = dataclasses.replace(TINY, drop_token=0.0)
    torch.manual_seed(0)
    plain = VATT(cfg)
    torch.manual_seed(0)
    synced = VATT(dataclasses.replace(cfg, sync_negatives=True))
    assert float(synced.losses(video, audio, text)["nce_va"]) > float(plain.losses(video, audio, text)["nce_va"])
    # audio whose two halves are equal is its own roll: the negative ties with the positive, so the
    # video-to-audio cross-entropy is at least log 2 and the symmetric NCE at least half of that
    still = audio[:, :128].repeat(1, 2)
    assert float(synced.losses(video, still, text)["nce_va"]) >= 0.5 * math.log(2) - 1e-5


def test_drop_tokens_can_say_which_tokens_it_kept():
    tokens = torch.randn(3, 10, 2)
    kept, index = drop_tokens(tokens, 0.5, torch.Generator().manual_seed(0), return_index=True)
    assert torch.equal(kept, tokens.gather(1, index[..., None].expand(3, 5, 2)))
    whole, index = drop_tokens(tokens, 0.0, return_index=True)
    assert torch.equal(whole, tokens) and index.tolist() == [list(range(10))] * 3


def test_step_means_average_each_time_step_and_give_zero_to_an_empty_one():
    tokens = torch.tensor([[[1.0], [3.0], [10.0], [7.0]]])
    assert step_means(tokens, torch.tensor([[0, 0, 2, 2]]), 3).flatten().tolist() == [2.0, 0.0, 8.5]


def test_temporal_nce_is_weighted_into_the_loss_and_reads_tokens_by_time_step():
    # the per-step NCE is reported, added to the loss by its weight and off by default; video tokens belong
    # to their tubelet's time step, audio chunks to the step whose span holds them
    video, audio, text = _batch()
    cfg = dataclasses.replace(TINY, drop_token=0.0, temporal_nce=1.0)
    torch.manual_seed(0)
    net = VATT(cfg)
    out = net.losses(video, audio, text)
    assert torch.allclose(out["loss"], out["nce_va"] + out["mil_nce_vt"] + out["nce_steps"])
    assert "nce_steps" not in VATT(TINY).losses(video, audio, text)
    steps = cfg.video_grid[0]  # 2 steps: chunks 0-3 belong to step 0, 4-7 to step 1
    agg, tokens, step = net._audio(audio)
    assert step[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and net._video(video)[2][0].tolist() == [0] * 4 + [1] * 4
    assert step_means(tokens, step, steps).shape == (4, steps, cfg.dim)
    with pytest.raises(ConfigError, match="temporal_nce"):
        VATTConfig(temporal_nce=float("nan"))
    with pytest.raises(ConfigError, match="temporal_nce"):
        VATTConfig(temporal_nce=-1.0)


def _timed_clips(seed, audio_scale, mark):
    """Eight clips of 4 frames and 256 samples with random text; ``mark(video, audio, step)`` puts each
    clip's event in its step (0 or 1, drawn from ``seed``), so only the timing pairs sight and sound."""
    g = torch.Generator().manual_seed(seed)
    on = torch.randint(0, 2, (8,), generator=g)
    video = torch.rand(8, 4, 3, 16, 16, generator=g) * 0.1
    audio = torch.randn(8, 256, generator=g) * audio_scale
    for i, s in enumerate(on.tolist()):
        mark(video[i], audio[i], s)
    return video, audio, torch.randint(1, 12, (8, 1, 4), generator=g)


def test_temporal_nce_falls_when_the_sound_follows_the_video_in_time():
    # each clip: a bright patch in one time step and a loud waveform in the same step; only the timing pairs them
    def mark(video, audio, s):
        video[2 * s : 2 * s + 2, :, :8, :8] += 1.0
        audio[128 * s : 128 * s + 128] *= 10.0

    video, audio, text = _timed_clips(1, 0.1, mark)
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, drop_token=0.0, temporal_nce=1.0, temperature=0.2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        out = net.losses(video, audio, text)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = out["nce_steps"].item() if first is None else first
    assert out["nce_steps"].item() < 0.8 * first


def test_mil_nce_counts_every_phrase_of_a_clip_as_positive_and_ignores_missing_ones():
    video = torch.eye(3)
    phrases = torch.zeros(3, 2, 3)
    phrases[:, 0] = torch.eye(3)  # each clip's first phrase matches it
    phrases[:, 1] = torch.eye(3)[[1, 2, 0]]  # the second is another clip's direction
    present = torch.tensor([[True, False]] * 3)
    low = mil_nce_loss(video, phrases, present, 0.1)
    both = mil_nce_loss(video, phrases, torch.ones(3, 2, dtype=torch.bool), 0.1)
    assert float(low) < 1e-3 < float(both)
    with pytest.raises(StateError, match="at least one phrase"):
        mil_nce_loss(video, phrases, torch.zeros(3, 2, dtype=torch.bool), 0.1)


def test_vocabulary_pads_and_marks_unknown_words():
    v = Vocabulary(["red", "cube", "red"])
    assert len(v) == 4
    assert v.encode(["Red cube hits", "sphere"], words=2).tolist() == [[2, 3], [1, 0]]


def test_bad_sizes_are_refused_by_name():
    with pytest.raises(ConfigError, match="tubelets"):
        VATTConfig(frames=5)
    with pytest.raises(ConfigError, match="drop_token"):
        VATTConfig(drop_token=1.0)
    torch.manual_seed(0)
    with pytest.raises(StateError, match="video must be"):
        VATT(TINY).video_tokens(torch.zeros(2, 4, 3, 8, 8))


def test_contrastive_losses_fall_on_paired_clips():
    # each clip's video, waveform and first phrase are its own; only pairing them lowers the losses
    n = 8
    g = torch.Generator().manual_seed(0)
    video, audio = torch.rand(n, 4, 3, 16, 16, generator=g), torch.randn(n, 256, generator=g)
    text = torch.zeros(n, 2, 4, dtype=torch.long)
    text[:, 0, 0] = 2 + torch.arange(n)
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, temperature=0.2))  # DropToken at 0.5 stays on
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        out = net.losses(video, audio, text)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3
    assert sum(losses[-3:]) / 3 < 2 * math.log(n) - 1.0  # chance is log n per loss
    assert F.normalize(net.video_features(video), dim=1).isfinite().all()


@pytest.mark.parametrize("front", ["waveform", "stft", "conv"])
def test_every_audio_front_gives_one_token_per_chunk_and_trains(front):
    video, audio, text = _batch()
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, audio_front=front, drop_token=0.0))
    assert net.audio_tokens(audio).shape == (4, TINY.audio_tokens, TINY.dim)
    net.losses(video, audio, text)["loss"].backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in net.chunk.parameters())


def test_stft_front_hears_only_its_chunk_and_the_samples_before_it():
    # the columns are causal: a click in chunk 5 changes tokens 5 and 6 (the 2-chunk window reaches one chunk
    # back, so token 6 still hears it) and no token before 5
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, audio_front="stft"))
    quiet = torch.zeros(1, TINY.samples)
    click = quiet.clone()
    click[0, 5 * TINY.chunk + 3] = 1.0
    changed = (net.audio_tokens(click) - net.audio_tokens(quiet)).abs().amax(-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [5, 6]


def test_stft_front_reads_an_onset_whatever_its_phase():
    # the same tone burst shifted by a few samples inside its chunk: raw chunks differ a lot, the STFT tokens
    # little, because the log-magnitude drops the phase
    t = torch.arange(TINY.samples, dtype=torch.float32)
    burst = lambda shift: torch.sin(2 * math.pi * 0.2 * (t - shift)) * ((t >= 128) & (t < 192))  # noqa: E731
    torch.manual_seed(0)
    stft_net = VATT(dataclasses.replace(TINY, audio_front="stft"))
    torch.manual_seed(0)
    raw_net = VATT(TINY)

    @torch.no_grad()
    def change(net):
        a, b = net.audio_tokens(burst(0)[None]), net.audio_tokens(burst(2)[None])
        return float((a - b).norm() / (a - net.audio_tokens(torch.zeros(1, TINY.samples))).norm())

    assert change(stft_net) < 0.5 * change(raw_net)


def test_an_unknown_audio_front_is_refused_by_name():
    with pytest.raises(ConfigError, match="audio_front must be one of waveform, stft, conv"):
        VATTConfig(audio_front="mel")
    with pytest.raises(ConfigError, match="chunk divisible by 8"):
        VATTConfig(samples=260, chunk=20, audio_front="conv")


def test_clip_step_nce_compares_steps_within_each_clip_only():
    e = torch.eye(3).expand(2, 3, 3)  # two clips of three orthogonal steps
    assert float(clip_step_nce(e, e, 0.05)) < 1e-3
    shuffled = e[:, [1, 2, 0]]
    assert float(clip_step_nce(e, shuffled, 0.05)) > 10.0
    # another clip's identical steps do not count as negatives: a batch of copies loses nothing
    assert math.isclose(float(clip_step_nce(e, e, 0.5)), float(clip_step_nce(e[:1], e[:1], 0.5)), rel_tol=1e-6)
    video, audio, text = _batch()
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, drop_token=0.0, temporal_nce=1.0, temporal_negatives="clip"))
    out = net.losses(video, audio, text)
    assert torch.allclose(out["loss"], out["nce_va"] + out["mil_nce_vt"] + out["nce_steps"])
    with pytest.raises(ConfigError, match="temporal_negatives must be 'batch' or 'clip'"):
        VATTConfig(temporal_negatives="all")


def test_audio_features_pool_the_audio_tower_like_the_video_features():
    _, audio, _ = _batch()
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, audio_front="stft")).train()
    whole, per_time = net.audio_features(audio), net.audio_features(audio, per_time=True)
    assert whole.shape == (4, 32) and per_time.shape == (4, 48) and net.training
    assert torch.allclose(per_time[:, 16:].view(4, 2, 16).mean(1), whole[:, 16:], atol=1e-6)  # 4 chunks a step


def test_diff_input_adds_motion_channels_that_a_still_video_leaves_silent():
    # the diff half of the tubelet projection sees (frame - previous frame): zero for a still video, so
    # changing those weights leaves a still video's tokens alone and changes a moving video's
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, video_input="diff"))
    assert net.patch.in_channels == 6
    still = torch.rand(1, 1, 3, 16, 16).expand(2, 4, 3, 16, 16).contiguous()
    moving = still.clone()
    moving[:, 1, :, :8, :8] += 0.5  # a patch changes in frame 1 only
    before = net.video_tokens(still), net.video_tokens(moving)
    with torch.no_grad():
        net.patch.weight[:, 3:] += 1.0
    assert torch.allclose(net.video_tokens(still), before[0], atol=1e-5)
    assert not torch.allclose(net.video_tokens(moving), before[1], atol=1e-3)
    with pytest.raises(ConfigError, match="video_input must be one of rgb, diff"):
        VATTConfig(video_input="flow")


def test_onset_strength_peaks_in_the_step_of_a_click_over_a_steady_tone():
    t = torch.arange(1024, dtype=torch.float32)
    tone = 0.3 * torch.sin(2 * math.pi * 0.05 * t)[None]
    click = tone.clone()
    click[0, 2 * 256 + 100] += 1.0  # step 2 of 4
    quiet, loud = onset_strength(tone, 4, 64), onset_strength(click, 4, 64)
    assert quiet.shape == (1, 4, 2)
    assert float(loud[0, 2, 1]) > 3 * float(loud[0, 1, 1]) and float(loud[0, 2, 1]) > 3 * float(loud[0, 3, 1])
    assert float(loud[0, 2, 1]) > 3 * float(quiet[0, 2, 1])  # the tone alone has no onset in step 2
    with pytest.raises(StateError, match="onset_strength"):
        onset_strength(tone, 3, 64)


def test_onset_band_hears_a_click_but_not_a_low_tone_swelling():
    # a low tone swelling six-fold over step 1 rises in its own bins; a click in step 2 rings every bin
    t = torch.arange(1024, dtype=torch.float32)
    envelope = 0.05 + 0.25 * ((t - 256) / 256).clamp(0, 1)
    swell = (torch.sin(2 * math.pi * t / 16) * envelope)[None]  # 0.125 of the Nyquist frequency, on a bin
    click = swell.clone()
    click[0, 2 * 256 + 100] += 1.0
    every, high = onset_strength(swell, 4, 64), onset_strength(swell, 4, 64, band=0.5)
    assert float(every[0, 1, 1]) > 2.0 and float(high[0, 1, 1]) < 0.3 * float(every[0, 1, 1])
    high_click = onset_strength(click, 4, 64, band=0.5)
    assert float(high_click[0, 2, 1]) > 5 * float(high_click[0, 1, 1])  # the click, not the swell
    assert torch.equal(onset_strength(click, 4, 64, band=0.0), onset_strength(click, 4, 64))
    with pytest.raises(StateError, match="band"):
        onset_strength(click, 4, 64, band=1.0)
    for bad in (float("nan"), -0.1, 1.0):
        with pytest.raises(ConfigError, match="onset_band"):
            VATTConfig(onset_target=1.0, onset_band=bad)
    with pytest.raises(ConfigError, match="onset_band"):
        VATTConfig(onset_band=0.5)  # a band of no target


def test_onset_band_sets_the_onset_target_of_the_loss():
    video, audio, text = _batch()
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(TINY, drop_token=0.0, onset_target=1.0, onset_band=0.5))
    torch.manual_seed(0)
    every = VATT(dataclasses.replace(TINY, drop_token=0.0, onset_target=1.0))
    guess = net.video_to_onset(step_means(*net._video(video)[1:], 2))
    target = onset_strength(audio, 2, 32, 0.5)
    target = (target - target.mean((0, 1))) / (target.std((0, 1)) + 1e-6)
    assert torch.allclose(net.losses(video, audio, text)["onset_mse"], F.mse_loss(guess, target), atol=1e-6)
    assert not torch.allclose(net.losses(video, audio, text)["onset_mse"], every.losses(video, audio, text)["onset_mse"])


def test_onset_target_is_weighted_into_the_loss_and_falls_when_the_video_shows_the_click():
    # each clip: a bright patch flashes in the time step where the audio clicks; only that timing lets the
    # video predict the onset strength
    def mark(video, audio, s):
        video[2 * s + 1, :, :8, :8] += 1.0
        audio[128 * s + 40] += 1.0

    video, audio, text = _timed_clips(2, 0.01, mark)
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, drop_token=0.0, video_input="diff", onset_target=2.0)
    net = VATT(cfg)
    out = net.losses(video, audio, text)
    assert torch.allclose(out["loss"], out["nce_va"] + out["mil_nce_vt"] + 2.0 * out["onset_mse"])
    assert "onset_mse" not in VATT(TINY).losses(video, audio, text)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = out["onset_mse"].item()
    for _ in range(40):
        out = net.losses(video, audio, text)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["onset_mse"].item() < 0.5 * first
    for bad in (float("nan"), -1.0):
        with pytest.raises(ConfigError, match="onset_target"):
            VATTConfig(onset_target=bad)


def test_audio_tower_without_positions_sees_the_same_sound_alike_at_any_step():
    # with audio_positions=False two identical chunks give identical tokens wherever they sit, so no audio
    # step can be told from another by its position; with positions (VATT's default) they differ
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, drop_token=0.0)
    blind, placed = VATT(dataclasses.replace(cfg, audio_positions=False)), VATT(cfg)
    blind.chunk.load_state_dict(placed.chunk.state_dict())
    audio = torch.randn(1, TINY.chunk).repeat(1, TINY.audio_tokens)  # the same chunk everywhere
    a, b = blind.audio_tokens(audio)[0], placed.audio_tokens(audio)[0]
    assert torch.allclose(a[1:], a[1:2].expand_as(a[1:]), atol=1e-6)
    assert not torch.allclose(b[1:], b[1:2].expand_as(b[1:]), atol=1e-4)
    agg, tokens = blind.eval().encode_audio(audio)
    assert torch.allclose(tokens, tokens[:, :1].expand_as(tokens), atol=1e-5)  # the whole tower stays blind


def test_video_without_time_positions_cannot_tell_its_time_steps_apart():
    # a still video: with video_time_positions=False its two time steps give the same tokens (height and width
    # positions stay), with VATT's time positions they differ
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, drop_token=0.0)
    timeless, timed = VATT(dataclasses.replace(cfg, video_time_positions=False)), VATT(cfg)
    timeless.load_state_dict(timed.state_dict())
    still = torch.rand(1, 1, 3, 16, 16).expand(1, 4, 3, 16, 16)
    a, b = timeless.video_tokens(still)[0].view(2, 4, -1), timed.video_tokens(still)[0].view(2, 4, -1)
    assert torch.allclose(a[0], a[1], atol=1e-6) and not torch.allclose(b[0], b[1], atol=1e-4)
    assert not torch.allclose(a[0, 0], a[0, 1], atol=1e-4)  # the places inside a step are still told apart


CONV = dataclasses.replace(TINY, video_stem="conv", stem_width=4)


def test_conv_stem_gives_one_token_per_tubelet_from_that_tubelet_alone():
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(CONV, drop_token=0.0, video_time_positions=False))
    video = torch.rand(2, 4, 3, 16, 16)
    tokens = net.video_tokens(video)
    assert tokens.shape == (2, 8, 16) and not hasattr(net, "patch")
    moved = video.clone()
    moved[0, 2:, :, 9, 3] = 1.0 - moved[0, 2:, :, 9, 3]  # one pixel of time step 1, row 1, column 0
    diff = (net.video_tokens(moved) - tokens).abs().amax(2)  # [2, 8]
    assert diff[0, 6] > 1e-4  # tubelet (t=1, h=1, w=0) in time-height-width order sees its own single pixel
    assert torch.equal(diff[0, torch.arange(8) != 6], torch.zeros(7)) and torch.equal(diff[1], torch.zeros(8))


def test_conv_stem_keeps_positions_and_evaluates_as_the_full_token_path():
    torch.manual_seed(0)
    net = VATT(CONV).eval()
    video = torch.rand(3, 4, 3, 16, 16)
    agg, out, step = net._video(video)  # eval: the kept-tubelets path keeps all of them
    ref_agg, ref_out = net.video_encoder(net.video_tokens(video))
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(agg, ref_agg, atol=1e-6)
    assert step.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]] * 3
    still = torch.rand(1, 1, 3, 16, 16).expand(1, 4, 3, 16, 16)
    t = net.video_tokens(still)[0].view(2, 4, -1)
    assert not torch.allclose(t[0], t[1], atol=1e-4)  # time positions (VATT's default) tell the steps apart


def test_drop_token_runs_the_conv_stem_on_the_kept_tubelets_only():
    # with an identity encoder, each training token must be the full path's token of the tubelet it stands for,
    # half of the tubelets kept, in order, with the right time step; and the stem sees only those half
    torch.manual_seed(0)
    net = VATT(CONV).train()
    class Identity(torch.nn.Module):
        def forward(self, tokens):
            return tokens[:, 0], tokens

    net.video_encoder = Identity()
    seen = []
    net.stem.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    video = torch.rand(3, 4, 3, 16, 16)
    full = net.video_tokens(video)  # [3, 8, 16]
    seen.clear()
    _, out, step = net._video(video)
    assert out.shape == (3, 4, 16) and seen == [3 * 4]
    for i in range(3):
        match = (out[i][:, None] - full[i][None]).abs().amax(2).argmin(1)  # which tubelet each token is
        assert torch.allclose(out[i], full[i, match], atol=1e-6)
        assert (match[1:] > match[:-1]).all() and torch.equal(step[i], match // 4)


def test_conv_stem_trains_and_bad_stems_are_refused_by_name():
    video, audio, text = _batch()
    torch.manual_seed(0)
    net = VATT(CONV)
    net.losses(video, audio, text)["loss"].backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in net.stem.parameters())
    with pytest.raises(ConfigError, match="video_stem"):
        VATTConfig(video_stem="resnet")
    with pytest.raises(ConfigError, match="conv stem"):
        VATTConfig(video_stem="conv", tubelet=(2, 7, 8), height=63)


def test_a_bench_variant_names_its_overrides_and_refuses_unknown_fields():
    from perception.audiovisual.vatt import run_vatt_bench

    with pytest.raises(ConfigError, match="stem_size are not VATTConfig fields"):
        run_vatt_bench(True, 0, stem_size=4)


@pytest.mark.parametrize("bad", [5, True, 12.5, 600_000])
def test_pretrain_clips_below_the_labelled_clips_or_not_an_integer_is_refused_by_name(bad):
    from perception.audiovisual.vatt import run_vatt_bench

    with pytest.raises(ConfigError, match="pretrain_clips must be an integer from 12"):
        run_vatt_bench(True, 0, pretrain_clips=bad)


@pytest.mark.slow
def test_pretrain_clips_widen_the_pretraining_only_and_the_probes_keep_the_labelled_clips():
    from perception.audiovisual.vatt import run_vatt_bench

    plain = run_vatt_bench(True, 0)
    wide = run_vatt_bench(True, 0, pretrain_clips=16)
    assert wide.figures["pretrain_clips"] == 16 and "pretrain_clips" not in plain.figures
    assert wide.figures["train_clips"] == plain.figures["train_clips"] == 12
    # the untrained encoder is the same network read on the same 12 labelled clips: the same probe
    assert wide.figures["probe_accuracy"]["random"] == plain.figures["probe_accuracy"]["random"]
    assert wide.figures["audio_probe_accuracy_per_time"]["random"] == plain.figures["audio_probe_accuracy_per_time"]["random"]


@pytest.mark.slow
def test_the_quick_bench_runs_a_conv_stem_variant():
    from perception.audiovisual.vatt import run_vatt_bench

    out = run_vatt_bench(True, 0, video_stem="conv", stem_width=4, video_time_positions=False)
    assert out.figures["config_overrides"] == {"video_stem": "conv", "stem_width": 4, "video_time_positions": False}
    assert 0.0 <= out.figures["probe_accuracy"]["drop_token"] <= 1.0


def test_vatt_variants_reach_run_vatt_bench_from_the_command_line_form(monkeypatch):
    """``--set variant=NAME`` runs the named configuration: exactly the held-out reads' arguments, refused by name
    otherwise; the registered entry runs with no overrides."""
    import perception.audiovisual.vatt as vatt
    from perception.benchmark import bench_options

    calls = []
    monkeypatch.setattr(vatt, "run_vatt_bench", lambda quick, seed, **kw: calls.append((quick, seed, kw)) or "ran")
    kwargs = bench_options("vatt", {"variant": "depth-onset-frames"})
    assert vatt.bench_vatt(False, 50706, **kwargs) == "ran"
    quick, seed, kw = calls[-1]
    assert (quick, seed, kw["lr"], kw["pretrain_clips"]) == (False, 50706, 1e-3, 3000)
    assert (kw["object_ground"], kw["onset_target"], kw["onset_band"], kw["drop_token_mode"]) == ("depth", 4, 0.67, "frames")
    assert kw["tubelet"] == (4, 8, 8) and kw["pair_tokens"] == "learned" and kw["frames"] == 16
    assert "drop_token_mode" not in vatt.VATT_VARIANTS["depth-onset"]  # that variant drops random tokens
    vatt.bench_vatt(False, 3)  # the entry's default variant, as above, at another seed
    assert calls[-1] == calls[-2][:1] + (3,) + calls[-2][2:]
    vatt.bench_vatt(True, 3)  # the quick run takes the variant but keeps its own clip count
    assert calls[-1][2]["pretrain_clips"] is None and calls[-1][2]["drop_token_mode"] == "frames"
    vatt.bench_vatt(True, 3, variant="patches")  # the plain variant: no keywords beyond the run's own
    assert calls[-1] == (True, 3, {"lr": None, "pretrain_clips": None})
    assert vatt.VATTOptions().variant == vatt.DEFAULT_VATT_VARIANT == "depth-onset-frames"
    names = {f.name for f in dataclasses.fields(vatt.VATTConfig)} | {"lr", "pretrain_clips"}
    assert all(set(v) <= names for v in vatt.VATT_VARIANTS.values())
    with pytest.raises(ConfigError, match="option 'variant' must be one of"):
        bench_options("vatt", {"variant": "nope"})


@pytest.mark.parametrize(("field", "bad"), [("onset_band", "0.67"), ("onset_band", None), ("onset_target", "4"),
                                            ("onset_target", None)])
def test_an_onset_setting_that_is_no_number_is_named_not_a_type_error(field, bad):
    """Text or None was math.isfinite's TypeError ("must be real number, not str"), naming no field."""
    settings = {"onset_target": 4.0, "onset_band": 0.5, field: bad}
    with pytest.raises(ConfigError, match=f"VATTConfig.{field} must be a number, got {bad!r}"):  # physics.config_types
        VATTConfig(**settings)
