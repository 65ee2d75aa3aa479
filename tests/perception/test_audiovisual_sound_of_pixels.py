"""Sound of Pixels: shapes and ranges, the disentangling loss, channel IoU, and training lowers the losses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perception.audiovisual.mix_separate import CATEGORIES, SeparationClips, mixture_batch
from perception.audiovisual.sound_of_pixels import (
    SoundOfPixels,
    SoundOfPixelsConfig,
    channel_iou,
    disentangle_loss,
    pixel_disentangle_loss,
    train_sound_of_pixels,
)
from perception.benchmark import PERCEPTION_BENCHES, BenchSize, run_bench
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = SoundOfPixelsConfig(width=4, audio_width=4, frames=2)


def _clips(n: int = 8, length: int = 2000) -> SeparationClips:
    """n clips of 4 frames 16 x 24 of categories 0, 1, 2: category c's instrument is a bright square in
    colour channel c, and its sound a tone at 300 * (c + 1) Hz."""
    g = torch.Generator().manual_seed(0)
    category = torch.arange(n) % 3
    frames = torch.zeros(n, 4, 3, 16, 24, dtype=torch.uint8)
    masks = torch.zeros(n, 4, 16, 24, dtype=torch.bool)
    t = torch.arange(length) / 11025
    waves = torch.zeros(n, length)
    for i, c in enumerate(category.tolist()):
        y, x = (int(v) for v in torch.randint(0, 8, (2,), generator=g) * 2)
        masks[i, :, y:y + 8, x:x + 8] = True
        frames[i, :, c] = masks[i].to(torch.uint8) * 255
        waves[i] = 0.3 * torch.sin(2 * math.pi * 300 * (c + 1) * t)
    return SeparationClips(frames, masks, waves, category, category.clone(), tuple(range(n)), ())


def test_forward_gives_mask_logits_per_clip_and_clip_vectors_in_unit_range():
    torch.manual_seed(0)
    model = SoundOfPixels(SMALL).eval()
    log_mix = torch.randn(2, 1, 32, 16)
    logits, vector = model(log_mix, torch.rand(2, 3, 2, 3, 16, 24))
    assert logits.shape == (2, 3, 32, 16) and vector.shape == (2, 3, len(CATEGORIES))
    assert 0 <= float(vector.detach().min()) and float(vector.detach().max()) <= 1
    assert model.pixel_features(torch.rand(5, 3, 16, 24)).shape == (5, len(CATEGORIES), 8, 12)
    with pytest.raises(StateError, match="frames"):
        model(log_mix, torch.rand(2, 3, 2, 1, 16, 24))
    with pytest.raises(ConfigError, match="channel per category"):
        SoundOfPixelsConfig(channels=2)


def test_replicate_padding_leaves_no_frame_edge_for_a_channel_to_fire_on():
    """An empty floor gives the same features everywhere, the edge included, only when the edge is padded
    with the floor; zero padding makes the edge a place of its own (where the cello channel once fired)."""
    floor = torch.full((1, 3, 16, 24), 0.6)
    torch.manual_seed(0)
    zeros = SoundOfPixels(SMALL).eval()
    torch.manual_seed(0)
    replicate = SoundOfPixels(SoundOfPixelsConfig(width=4, audio_width=4, frames=2, padding="replicate")).eval()
    with torch.no_grad():
        flat, edged = replicate.pixel_features(floor), zeros.pixel_features(floor)
    assert float((flat - flat[..., 4:5, 6:7]).abs().max()) < 1e-5
    assert float((edged - edged[..., 4:5, 6:7]).abs().max()) > 1e-3
    with pytest.raises(ConfigError, match="padding"):
        SoundOfPixelsConfig(padding="circular")


def test_the_mask_of_a_clip_is_the_synthesizer_of_its_own_vector():
    model = SoundOfPixels(SMALL)
    audio = torch.randn(1, len(CATEGORIES), 4, 5)
    onehot = torch.eye(len(CATEGORIES))[None, :2]  # two clips: channel 0, channel 1
    logits = model.synthesize(audio, onehot)
    assert torch.allclose(logits[0, 0], model.alpha[0] * audio[0, 0] + model.bias)
    assert torch.allclose(logits[0, 1], model.alpha[1] * audio[0, 1] + model.bias)


def test_disentangle_loss_is_lowest_when_each_clip_lights_only_its_category_channel():
    category = torch.tensor([0, 1, 2, 3])
    right = torch.eye(4) * 0.98 + 0.01
    wrong = right.roll(1, 1)
    assert disentangle_loss(right, category) < 0.05 < 1.0 < disentangle_loss(wrong, category)


def _maps(lit_floor: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [4, 2, 4, 4, 6] of four clips (categories 0-3) whose own channel is 0.98 on a 2 x 2 object
    and 0.01 elsewhere; with ``lit_floor`` one absent channel per clip is 0.3 over the whole floor."""
    features = torch.full((4, 2, 4, 4, 6), 0.01)
    for c in range(4):
        features[c, :, c, 1:3, 2:4] = 0.98
        if lit_floor:
            features[c, :, (c + 1) % 4] = 0.3
    return features, torch.arange(4)


def test_pixel_disentangle_loss_also_pushes_down_a_faint_wide_firing_that_pooling_would_weigh_as_one_patch():
    right, category = _maps(False)
    lit, _ = _maps(True)
    model = SoundOfPixels(SoundOfPixelsConfig(width=4, audio_width=4, frames=2, pool_top=4, negatives="pixels"))
    assert float(model.disentangle(right, category)) < 0.05
    # the pooled entry of the lit channel is 0.3 either way; the pixel term counts every lit floor pixel
    vector = model.clip_vector(lit)
    pooled_part = pixel_disentangle_loss(vector, torch.full_like(lit, 0.01), category)
    assert float(pixel_disentangle_loss(vector, lit, category)) > float(pooled_part) + 0.05
    assert float(model.disentangle(lit, category)) > float(model.disentangle(right, category)) + 0.1


def test_per_frame_pooling_asks_every_frame_to_light_its_object():
    cfg = SoundOfPixelsConfig(width=4, audio_width=4, frames=2, pool_top=4, pool_per_frame=True)
    model = SoundOfPixels(cfg)
    features, _ = _maps(False)
    one_frame = features.clone()
    one_frame[:, 1] = 0.01  # the object lit in the first frame only
    both, first = model.clip_vector(features), model.clip_vector(one_frame)
    assert torch.allclose(both.diagonal(), torch.full((4,), 0.98))
    assert torch.allclose(first.diagonal(), torch.full((4,), (0.98 + 0.01) / 2))
    # pooled over the clip, the same maps give the object's full value
    clip_pooled = SoundOfPixels(SoundOfPixelsConfig(width=4, audio_width=4, frames=2, pool_top=4))
    assert torch.allclose(clip_pooled.clip_vector(one_frame).diagonal(), torch.full((4,), 0.98))


def test_separation_warmup_keeps_the_separation_gradient_out_of_the_image_network():
    torch.manual_seed(0)
    model = SoundOfPixels(SMALL)
    log_mix, frames = torch.randn(2, 1, 32, 16), torch.rand(2, 2, 2, 3, 16, 24)
    for image_grad in (False, True):
        model.zero_grad()
        logits, features = model.separate_with_features(log_mix, frames, image_grad=image_grad)
        assert features.shape == (2, 2, 2, len(CATEGORIES), 8, 12)
        logits.square().mean().backward()
        image = sum(float(p.grad.abs().sum()) for p in model.pixels.parameters() if p.grad is not None)
        audio = sum(float(p.grad.abs().sum()) for p in model.unet.parameters())
        assert audio > 0 and (image > 0) == image_grad


def test_new_config_fields_are_checked():
    with pytest.raises(ConfigError, match="negatives"):
        SoundOfPixelsConfig(negatives="all")
    with pytest.raises(ConfigError, match="separation_warmup"):
        SoundOfPixelsConfig(separation_warmup=1.5)
    with pytest.raises(ConfigError, match="head"):
        SoundOfPixelsConfig(head="full")


def test_the_gated_head_gives_full_resolution_maps_cut_by_a_local_gate():
    torch.manual_seed(0)
    half = SoundOfPixels(SMALL).eval()
    torch.manual_seed(0)
    gated = SoundOfPixels(SoundOfPixelsConfig(width=4, audio_width=4, frames=2, head="gated")).eval()
    images = torch.rand(5, 3, 16, 24)
    with torch.no_grad():
        full, coarse = gated.pixel_features(images), half.pixel_features(images)
        assert full.shape == (5, len(CATEGORIES), 16, 24) and coarse.shape == (5, len(CATEGORIES), 8, 12)
        assert 0 <= float(full.min()) and float(full.max()) <= 1
        # the same weights below the gate (created in the same order): the gated map is the half-resolution
        # map upsampled times the gate, so closing the gate darkens every pixel and opening it gives the map
        gated.pixels.gate.weight.zero_()
        gated.pixels.gate.bias.fill_(30.0)
        up = nn.functional.interpolate(coarse, size=(16, 24), mode="bilinear", align_corners=False)
        assert torch.allclose(gated.pixel_features(images), up, atol=1e-6)
        gated.pixels.gate.bias.fill_(-30.0)
        assert float(gated.pixel_features(images).max()) < 1e-6
    assert half.pixels.gate is None


class _ColourChannels(nn.Module):
    """An oracle image network: channel c < 3 is colour channel c at half resolution, channel 3 is dark."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        half = nn.functional.avg_pool2d(images, 2)
        return torch.cat([half, torch.zeros_like(half[:, :1])], 1)


def test_channel_iou_is_one_for_a_channel_that_finds_exactly_its_category():
    clips = _clips()
    model = SoundOfPixels(SMALL)
    model.pixels = _ColourChannels()
    iou = channel_iou(model, clips, frame_step=1)
    assert iou.shape == (len(CATEGORIES), len(CATEGORIES))
    assert torch.allclose(iou.diagonal()[:3], torch.ones(3))
    assert float(iou[1, 0]) == 0.0 and float(iou[3].max()) == 0.0  # fires elsewhere / never fires


@pytest.mark.parametrize("config", [SMALL, SoundOfPixelsConfig(width=4, audio_width=4, frames=2, pool_top=4,
                                                                  pool_per_frame=True, negatives="pixels",
                                                                  separation_warmup=0.5),
                                    SoundOfPixelsConfig(width=4, audio_width=4, frames=2, pool_top=16,
                                                        pool_per_frame=True, negatives="pixels", head="gated")],
                         ids=["pooled", "per-frame-pixels-warmup", "gated"])
def test_mix_and_separate_training_lowers_both_losses(config):
    clips = _clips(8)
    torch.manual_seed(0)
    model = SoundOfPixels(config)
    history = train_sound_of_pixels(model, clips, BenchSize(train=8, test=0, steps=20, batch=4, lr=1e-2), seed=0,
                                    per_round=5)
    first, last = history[0], history[-1]
    assert last["separation"] < first["separation"] and last["disentangle"] < first["disentangle"]
    assert not model.training
    batch = mixture_batch(clips.waves[torch.tensor([[0, 1]])])
    assert batch.log_mix.shape[0] == 1


def test_the_bench_entry_is_registered_with_its_check():
    bench = PERCEPTION_BENCHES.get("sound-of-pixels")
    assert "5 dB" in bench.check and "IoU" in bench.check and "1904.09013" in bench.paper


@pytest.mark.slow
def test_the_quick_bench_reports_the_sdr_check_and_one_iou_check_per_category():
    pytest.importorskip("torchmetrics", reason="SDR comes from torchmetrics (the [audio] extra)")
    result = run_bench("sound-of-pixels", quick=True, seed=0)
    names = [c["name"] for c in result["checks"]]
    assert names[0] == "SDR of separated sources" and len(names) == 1 + len(CATEGORIES)
    assert all(c["ours"] is not None and c["ablation"] is not None for c in result["checks"])
    assert result["figures"]["test_mixtures"] == result["figures"]["test_clips"]
