"""``nesy answer --video CLIP --localiser avol``: AVOL-Net answers "which object is making the sound?" end to end."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import cli
from perception.audio.localise import localiser_for
from perception.audiovisual.correspondence import AVNetConfig, AVOLNet, save_avol
from physics.worlds.audiovisual import AudioVisualConfig, make_clip, write_clip


@pytest.fixture(scope="module")
def clip():
    return make_clip(11, AudioVisualConfig(frames=6, height=32, width=48))


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "avol.pt"
    save_avol(AVOLNet(AVNetConfig(widths=(4, 8, 8), embed=8)).eval(), path, height=24, width=32,
              sample_rate=11025, command="test")
    return str(path)


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
