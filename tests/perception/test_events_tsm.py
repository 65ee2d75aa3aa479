"""TSM: the shift moves channels between frames, only the shifted network sees frame order, it trains."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.events.tsm import EVENT_CLASSES, TSMConfig, TSMNet, event_clips, temporal_shift
from perception.model_stats import count_macs, count_parameters
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_temporal_shift_moves_one_eighth_back_and_one_eighth_forward():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8, 1, 1).transpose(1, 2).reshape(6, 8, 1, 1)
    # x: 2 clips x 3 frames, channel c of frame t holds a distinct number
    y = temporal_shift(x, frames=3, shift_div=8).view(2, 3, 8)
    v = x.view(2, 3, 8)
    assert torch.equal(y[:, :-1, 0], v[:, 1:, 0]) and (y[:, -1, 0] == 0).all()  # from the future
    assert torch.equal(y[:, 1:, 1], v[:, :-1, 1]) and (y[:, 0, 1] == 0).all()  # from the past
    assert torch.equal(y[:, :, 2:], v[:, :, 2:])


def test_a_shift_that_would_move_no_channel_is_refused():
    with pytest.raises(ConfigError, match="shift_div"):
        TSMConfig(width=4, shift_div=8)
    with pytest.raises(StateError, match="channels"):
        temporal_shift(torch.zeros(8, 4, 2, 2), frames=8, shift_div=8)


def test_clips_have_the_documented_shapes_and_reversed_classes_share_frames():
    clips, labels = event_clips(8, seed=3, noise=0.0)
    assert clips.shape == (8, 8, 3, 32, 32) and labels.shape == (8,)
    assert 0 <= float(clips.min()) and float(clips.max()) <= 1
    assert sorted(labels.tolist()) == sorted(list(range(len(EVENT_CLASSES))) * 2)
    again, _ = event_clips(8, seed=3, noise=0.0)
    assert torch.equal(clips, again)


def test_without_shift_a_reversed_clip_gets_the_same_logits_with_shift_it_does_not():
    clips, _ = event_clips(4, seed=0)
    torch.manual_seed(0)
    plain, shifted = TSMNet(TSMConfig(shift_div=0)).eval(), TSMNet(TSMConfig()).eval()
    with torch.no_grad():
        blind = (plain(clips) - plain(clips.flip(1))).abs().max()
        seeing = (shifted(clips) - shifted(clips.flip(1))).abs().max()
    assert blind < 1e-6 < 1e-5 < seeing
    assert count_parameters(plain) == count_parameters(shifted)
    assert count_macs(plain, clips[:1]) == count_macs(shifted, clips[:1])


def _train(seed: int, steps: int = 6) -> tuple[list[float], dict]:
    clips, labels = event_clips(16, seed=1, frames=8, size=16)
    torch.manual_seed(seed)
    model = TSMNet(TSMConfig(width=8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(clips), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


def test_tiny_tsm_loss_falls_and_training_is_deterministic_for_a_seed():
    losses, weights = _train(0)
    again, weights2 = _train(0)
    assert losses[-1] < losses[0]
    assert losses == again and all(torch.equal(weights[k], weights2[k]) for k in weights)
