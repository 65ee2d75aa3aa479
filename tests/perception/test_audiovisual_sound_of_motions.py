"""Sound of Motions: shapes, motion conditioning tells identical-looking clips apart, the curriculum trains."""

from __future__ import annotations

import math

import pytest
import torch

from perception.audiovisual.mix_separate import CATEGORIES, SeparationClips, mixture_batch
from perception.audiovisual.sound_of_motions import (
    SoundOfMotions,
    SoundOfMotionsConfig,
    TrajectoryNet,
    clip_tracks,
    train_separator,
)
from perception.audiovisual.sound_of_pixels import SoundOfPixels, SoundOfPixelsConfig
from perception.benchmark import PERCEPTION_BENCHES, BenchSize, run_bench
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = SoundOfMotionsConfig(SoundOfPixelsConfig(width=4, audio_width=4, frames=2), motion=2, hidden=4)
T, P = 5, 6


def _tracks(speed: float) -> torch.Tensor:
    """[T, P, 2]: P points on a row, all moving right at ``speed`` pixels per frame."""
    x = torch.arange(P, dtype=torch.float32) * 2 + 1
    return torch.stack([torch.stack([x + speed * t, torch.full((P,), 5.0)], -1) for t in range(T)])


def test_trajectory_net_gives_one_code_per_frame_step():
    net = TrajectoryNet(appearance=4, hidden=8, out=3)
    assert net(torch.rand(2, 4, P), torch.rand(2, T - 1, P, 3)).shape == (2, 3, T - 1)
    with pytest.raises(StateError, match="TrajectoryNet"):
        net(torch.rand(2, 4, P), torch.rand(2, T - 1, P + 1, 3))


def test_condition_maps_correlate_each_bin_with_the_motion_code():
    code = torch.tensor([[[0.0, 1.0, 0.0, 1.0]]])  # [1, D=1, steps=4]: on, off, on, off
    frames = 10
    per_frame = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1, 1, 1], dtype=torch.float32)  # the code on 10 frames
    log_mix = torch.zeros(1, 1, 3, 16)
    log_mix[0, 0, 0, :frames] = per_frame  # bin 0 follows the motion, bin 1 its opposite, bin 2 noise
    log_mix[0, 0, 1, :frames] = -per_frame
    log_mix[0, 0, 2, :frames] = torch.randn(frames, generator=torch.Generator().manual_seed(0))
    maps = SoundOfMotions.condition_maps(code, log_mix, frames)
    assert maps.shape == (1, 2, 3, 16)
    corr = maps[0, 1, :, 0]
    assert corr[0] > 0.7 and corr[1] < -0.7 and abs(float(corr[2])) < corr[0]
    assert torch.equal(maps[0, 1, :, 0], maps[0, 1, :, 15])  # tiled over time
    assert torch.equal(maps[0, 0, 0, :frames], maps[0, 0, 2, :frames])  # tiled over frequency


def test_identical_looking_clips_that_move_differently_get_different_masks_only_with_motion():
    torch.manual_seed(0)
    frame = torch.rand(1, 1, 1, 3, 16, 24).expand(1, 2, 2, -1, -1, -1)  # two clips, the same frames
    tracks = torch.stack([_tracks(0.0), _tracks(2.0)])[None]  # [1, 2, T, P, 2]: one still, one moving
    sources = torch.randn(1, 2, 2000) * 0.1
    batch = mixture_batch(sources)
    som = SoundOfMotions(SMALL).eval()
    sop = SoundOfPixels(SMALL.appearance).eval()
    with torch.no_grad():
        ours, vector = som(batch, frame, tracks)
        plain, _ = sop(batch.log_mix, frame)
    assert ours.shape == plain.shape == (1, 2, batch.log_mix.shape[-2], batch.log_mix.shape[-1])
    assert vector.shape == (1, 2, len(CATEGORIES))
    assert torch.equal(plain[0, 0], plain[0, 1])
    assert (ours[0, 0] - ours[0, 1]).abs().max() > 1e-4


def _clips(n: int = 8, length: int = 2000) -> SeparationClips:
    """Identical-looking clips in two looks; clip i's tone (its own pitch) is on while its square moves."""
    frames = torch.zeros(n, T, 3, 16, 24, dtype=torch.uint8)
    masks = torch.zeros(n, T, 16, 24, dtype=torch.bool)
    waves = torch.zeros(n, length)
    t = torch.arange(length) / 11025
    for i in range(n):
        on = torch.tensor([(i + k) % 2 for k in range(T - 1)], dtype=torch.float32)
        envelope = on.repeat_interleave(math.ceil(length / (T - 1)))[:length]
        waves[i] = 0.3 * envelope * torch.sin(2 * math.pi * (300 + 60 * i) * t)
        x = 2
        for k in range(T):
            masks[i, k, 4:10, x:x + 6] = True
            frames[i, k, i % 2] = masks[i, k].to(torch.uint8) * 255
            x += 3 * int(on[k]) if k < T - 1 else 0
    category = torch.arange(n) % 2
    return SeparationClips(frames, masks, waves, category, category.clone(), tuple(range(n)), ())


def test_curriculum_training_lowers_the_loss_of_both_models():
    clips = _clips()
    tracks = clip_tracks(clips, stride=4)
    assert tracks.shape == (8, T, 4 * 6, 2)
    bench = BenchSize(train=8, test=0, steps=16, batch=4, lr=1e-2)
    for model in (SoundOfMotions(SMALL), SoundOfPixels(SMALL.appearance)):
        torch.manual_seed(0)
        history = train_separator(model, clips, bench, seed=0, curriculum=0.5, tracks=tracks, desc="test",
                                  per_round=4)
        assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]
    with pytest.raises(ConfigError, match="curriculum"):
        train_separator(SoundOfPixels(SMALL.appearance), clips, bench, seed=0, curriculum=1.5, desc="test")


def test_the_bench_entry_is_registered_with_its_check():
    bench = PERCEPTION_BENCHES.get("sound-of-motions")
    assert "3 dB" in bench.check and "identical-looking" in bench.check and "1904.05979" in bench.paper


@pytest.mark.slow
def test_the_quick_bench_compares_with_the_appearance_only_model_on_identical_looks():
    pytest.importorskip("torchmetrics", reason="SDR comes from torchmetrics (the [audio] extra)")
    result = run_bench("sound-of-motions", quick=True, seed=0)
    (check,) = result["checks"]
    assert check["ours"] is not None and check["ablation"] is not None and check["threshold"] == ">= ablation + 3 dB"
