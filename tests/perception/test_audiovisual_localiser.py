"""The AVOL-Net localiser: registered by name, one object under each active frame's peak, checkpoints by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.audio.localise import SOUNDING_LOCALISERS, localiser_for
from perception.audiovisual.correspondence import AVNetConfig, AVOLNet, save_avol
from perception.audiovisual.localiser import avol_maps
from physics.errors import ConfigError
from physics.worlds.audiovisual import AudioVisualConfig, make_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = AVNetConfig(widths=(4, 8, 8), embed=8)


@pytest.fixture(scope="module")
def clip():
    return make_clip(11, AudioVisualConfig(frames=6, height=32, width=48))


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "avol.pt"
    save_avol(AVOLNet(SMALL).eval(), path, height=24, width=32, sample_rate=11025, command="test")
    return str(path)


def test_avol_is_a_registered_localiser():
    assert "avol" in SOUNDING_LOCALISERS.names()


def test_each_active_frame_marks_at_most_the_object_under_the_maps_peak(clip, checkpoint):
    estimate = localiser_for("avol", checkpoint)(clip)
    assert estimate.sounding.shape == (6, len(clip.objects)) and estimate.source == "avol"
    assert (estimate.sounding.sum(1) <= 1).all()
    from perception.audiovisual.correspondence import load_avol

    model, _ = load_avol(checkpoint)
    maps = avol_maps(model, clip, (24, 32))  # a clip shorter than the window is padded with silence
    assert maps.shape == (6, 6, 8) and 0 < maps.min() and maps.max() < 1  # 24 x 32 frames, two poolings
    for f in range(6):
        i, j = np.unravel_index(int(np.argmax(maps[f])), maps.shape[1:])
        k = int(clip.masks[f, min(int((i + 0.5) * 32 / 6), 31), min(int((j + 0.5) * 48 / 8), 47)])
        marked = tuple(np.flatnonzero(estimate.sounding[f]))
        assert marked in ((k,), ()) if k >= 0 else marked == ()


def test_a_clip_at_another_sample_rate_is_refused(checkpoint):
    other = make_clip(11, AudioVisualConfig(frames=4, height=32, width=48, sample_rate=16000))
    with pytest.raises(ConfigError, match="11025 Hz"):
        localiser_for("avol", checkpoint)(other)

