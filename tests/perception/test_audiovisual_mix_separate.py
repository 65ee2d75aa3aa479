"""Mix-and-separate parts: clip pools, partners, the U-Net's shapes, the mask loss, separation and SDR."""

from __future__ import annotations

import math

import pytest
import torch

from perception.audiovisual.mix_separate import (
    SPECTROGRAM,
    AudioUNet,
    SeparationClips,
    clip_config,
    draw_partners,
    mask_loss,
    mixture_batch,
    pool_seeds,
    sdr,
    separate,
    separation_clips,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATE = 11025


def _tones(length: int = 8000) -> torch.Tensor:
    """Two sources [1, 2, L]: a 220 Hz and a 1,500 Hz tone (apart in frequency, so binary masks separate them)."""
    t = torch.arange(length) / RATE
    return torch.stack([0.4 * torch.sin(2 * math.pi * 220 * t), 0.3 * torch.sin(2 * math.pi * 1500 * t)])[None]


def _fake_clips(category: list[int], look: list[int]) -> SeparationClips:
    n = len(category)
    return SeparationClips(torch.zeros(n, 2, 3, 8, 8, dtype=torch.uint8), torch.zeros(n, 2, 8, 8, dtype=torch.bool),
                           torch.zeros(n, 4000), torch.tensor(category), torch.tensor(look), tuple(range(n)), ())


def test_mixture_batch_has_the_documented_shapes_and_sums_the_sources():
    sources = _tones()
    batch = mixture_batch(sources)
    n = SPECTROGRAM.frames(8000)
    assert batch.mixture.shape == (1, SPECTROGRAM.bins, n) and batch.frames == n
    assert batch.log_mix.shape == (1, 1, SPECTROGRAM.bins - 1, n + (-n % 16))
    assert batch.source_mag.shape == (1, 2, SPECTROGRAM.bins, n)
    with pytest.raises(StateError, match="sources"):
        mixture_batch(sources[0])


def test_unet_maps_spectrogram_channels_to_k_channels_of_the_same_size():
    net = AudioUNet(cin=3, out=4, width=4)
    assert net(torch.randn(2, 3, 64, 32)).shape == (2, 4, 64, 32)
    with pytest.raises(StateError, match="multiples of 16"):
        net(torch.randn(2, 3, 64, 30))


def test_ideal_masks_separate_two_tones_and_score_far_above_the_mixture():
    pytest.importorskip("torchmetrics", reason="SDR comes from torchmetrics (the [audio] extra)")
    sources = _tones()
    batch = mixture_batch(sources)
    target = (batch.source_mag >= batch.source_mag.flip(1)).float()[..., :-1, :]  # drop the Nyquist bin
    ideal = torch.nn.functional.pad((target * 2 - 1) * 20.0, (0, batch.log_mix.shape[-1] - batch.frames))
    waves = separate(ideal, batch)
    assert waves.shape == sources.shape
    est, mix = sdr(waves, sources), sdr(sources.sum(1, keepdim=True).expand_as(sources), sources)
    assert (est > 20).all() and (est > mix + 15).all()
    assert mask_loss(ideal, batch) < 0.01 < 0.5 < mask_loss(torch.zeros_like(ideal), batch)


def test_partners_are_of_another_category_or_of_the_same_look_and_never_the_clip_itself():
    clips = _fake_clips([0, 0, 1, 1, 2, 2], [0, 0, 5, 6, 9, 9])
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(6).repeat(5)
    other = draw_partners(clips, idx, "different", g)
    assert (clips.category[other] != clips.category[idx]).all()
    same = draw_partners(clips, idx, "same-look", g)
    assert (same != idx).all()
    twins = torch.tensor([0, 1, 4, 5]).repeat(5)
    assert (clips.look[draw_partners(clips, twins, "same-look", g)] == clips.look[twins]).all()
    # clip 2 has no twin: a clip of its category stands in
    assert (draw_partners(clips, torch.tensor([2] * 5), "same-look", g) == 3).all()
    with pytest.raises(ConfigError, match="partner mode"):
        draw_partners(clips, idx, "any", g)


def test_separation_clips_hold_one_instrument_each_deterministically():
    config = clip_config(frames=4, height=32, width=48)
    seeds = pool_seeds(0, 3, 3)
    clips = separation_clips(seeds, config)
    assert clips.frames.shape[:3] == (len(clips), 4, 3) and clips.frames.dtype == torch.uint8
    assert clips.masks.shape == (len(clips), 4, 32, 48) and clips.masks.any()
    assert clips.waves.shape == (len(clips), config.samples)
    separation_clips.cache_clear()
    again = separation_clips(seeds, config)
    assert torch.equal(again.waves, clips.waves) and torch.equal(again.frames, clips.frames)
    assert set(pool_seeds(0, 0, 10)).isdisjoint(pool_seeds(0, 1, 10))
    with pytest.raises(ConfigError, match="n_sounding=1"):
        separation_clips(seeds, clip_config(impacts=True))
