"""The AVOL-Net localiser: registered by name, one object under each active frame's peak, used by nesy answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import cli
from perception.audio.localise import SOUNDING_LOCALISERS, localiser_for
from perception.audiovisual.correspondence import AVNetConfig, AVOLNet, save_avol
from perception.audiovisual.localiser import avol_maps
from physics.errors import ConfigError
from physics.worlds.audiovisual import AudioVisualConfig, make_clip, write_clip

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


def test_nesy_answer_asks_the_avol_localiser_which_object_is_making_the_sound(clip, checkpoint, tmp_path, capsys):
    folder = tmp_path / "clip"
    write_clip(clip, folder)
    assert cli.main(["answer", "--video", str(folder), "--question", "Which object is making the sound?",
                     "--localiser", "avol", "--localiser-checkpoint", checkpoint, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    marked = localiser_for("avol", checkpoint)(clip).sounding_objects()
    names = " and ".join(f"{clip.objects[k].color} {clip.objects[k].material} {clip.objects[k].shape}"
                         for k in marked) or "nothing"
    assert out["valid"] and out["answer"] == names


def test_without_a_shipped_checkpoint_the_localiser_says_how_to_make_one(monkeypatch, tmp_path):
    import perception.audiovisual.localiser as module

    monkeypatch.setattr(module, "CHECKPOINT", tmp_path / "absent.pt")
    with pytest.raises(ConfigError, match="train_localiser"):
        localiser_for("avol")


def test_the_shipped_checkpoint_loads_by_default_and_marks_the_sounding_instrument():
    from perception.audiovisual.correspondence import ONE_INSTRUMENT
    from perception.audiovisual.localiser import CHECKPOINT

    assert CHECKPOINT.is_file() and CHECKPOINT.stat().st_size < 2_000_000
    localise = localiser_for("avol")
    hits = frames = 0
    for seed in range(990_000, 990_004):  # one-instrument clips no benchmark uses
        one = make_clip(seed, ONE_INSTRUMENT)
        k = next(o.index for o in one.objects if o.is_sounding)
        sounds = one.objects[k].sounding_frames.astype(bool)
        hits += int(localise(one).sounding[sounds, k].sum())
        frames += int(sounds.sum())
    assert frames > 0 and hits / frames >= 0.7  # measured 55 of 64 frames (0.86) when it shipped
