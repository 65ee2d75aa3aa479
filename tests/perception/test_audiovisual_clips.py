"""Clip banks: tensors agree with the clips' truth, windows line up with frames, a bad clip is skipped."""

from __future__ import annotations

import pytest
import torch

import perception.audiovisual.clips as clips_module
from perception.audiovisual.clips import (
    CLIP_CONFIG,
    SPECTROGRAM,
    VOCABULARY,
    _bank,
    describe,
    spectrogram,
)
from perception.audiovisual.correspondence import FRAME_STACK, SINGLE_FRAME, Window
from physics.errors import DataError, StateError
from physics.worlds.audiovisual import AudioVisualConfig, make_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = AudioVisualConfig(frames=10, height=32, width=48)


@pytest.fixture(scope="module")
def bank():
    return _bank([3, 4], SMALL)


def test_bank_holds_each_clips_frames_masks_truth_and_sound(bank):
    clip = make_clip(4, SMALL)
    assert bank.seeds == (3, 4) and len(bank) == 2
    assert bank.frames.shape == (2, 10, 3, 32, 48) and bank.frames.dtype == torch.uint8
    assert torch.equal(bank.frames[1].permute(0, 2, 3, 1), torch.from_numpy(clip.frames))
    assert torch.equal(bank.masks[1].long(), torch.from_numpy(clip.masks).long())
    for f in range(10):
        assert tuple(torch.nonzero(bank.sounding[1, f])[:, 0].tolist()) == clip.sounding_at(f)
    assert int(bank.collisions[1].sum()) == len(clip.collisions)
    assert torch.allclose(bank.spec[1], spectrogram(torch.from_numpy(clip.mixture)))
    assert bank.spec.shape[1] == SPECTROGRAM.n_fft // 4
    words = [VOCABULARY.words[i] for i in bank.text[1, 0] if i]
    assert " ".join(words) == describe(clip)[0]


def test_windows_take_the_frames_and_the_second_of_audio_around_a_centre(bank):
    idx, t = torch.tensor([0, 1]), torch.tensor([4, 6])
    frames, spec = SINGLE_FRAME.pairs(bank, idx, t)
    assert frames.shape == (2, 3, 32, 48) and torch.equal(frames[1], bank.frames[1, 6].float() / 255)
    assert spec.shape == (2, 1, 64, bank.spec_frame(8))
    assert torch.equal(spec[1, 0], bank.spec[1, :, bank.spec_frame(2) : bank.spec_frame(2) + spec.shape[-1]])
    stacked, _ = FRAME_STACK.pairs(bank, idx, t)
    assert stacked.shape == (2, 12, 32, 48)
    with pytest.raises(StateError, match="leave the clip"):
        Window(before=4, after=8).pairs(bank, idx, t)


def test_a_clip_that_cannot_be_made_is_reported_and_skipped(monkeypatch):
    real = clips_module.make_clip

    def flaky(seed, config):
        if seed == 6:
            raise DataError("clip 6: the simulation blew up")
        return real(seed, config)

    monkeypatch.setattr(clips_module, "make_clip", flaky)
    bank = _bank([5, 6, 7], AudioVisualConfig(frames=4, height=16, width=24))
    assert bank.seeds == (5, 7) and bank.skipped == ((6, "clip 6: the simulation blew up"),)
    with pytest.raises(StateError, match="only 0 of 1 clips"):
        _bank([6], SMALL)


def test_the_default_bank_config_is_the_documented_one():
    assert (CLIP_CONFIG.frames, CLIP_CONFIG.fps, CLIP_CONFIG.height, CLIP_CONFIG.width) == (16, 8, 48, 64)
