"""``nesy answer --video CLIP``: questions about sound answered end to end on clips nesy data audiovisual wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.datasets.audiovisual_builder import (
    AudioVisualDataConfig,
    build_audiovisual,
    clip_folder,
)
from perception.audio.localise import SOUNDING_LOCALISERS, SoundingEstimate, register_localiser
from physics.worlds.audiovisual import read_clip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("av")
    cfg = AudioVisualDataConfig(n=3, out=str(out), seed=3, frames=6, width=48, height=32, backend="serial")
    assert build_audiovisual(cfg, progress=False)["generated"] == 3
    return out


def _names(clip, ids) -> str:
    return " and ".join(f"{clip.objects[k].color} {clip.objects[k].material} {clip.objects[k].shape}"
                        for k in ids) or "nothing"


def _answer(capsys, *args: str) -> dict:
    assert cli.main(["answer", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_which_object_is_making_the_sound_on_a_clip_folder(folder, capsys):
    clip = read_clip(clip_folder(folder, 0))
    out = _answer(capsys, "--video", str(clip_folder(folder, 0)), "--question", "Which object is making the sound?")
    assert out["valid"] and out["answer"] == _names(clip, clip.sounding)
    assert out["program"] == "describe_objects(filter_sounding(objects(), null()))"
    again = _answer(capsys, "--video", str(folder), "--index", "0", "--question", "which object made the sound")
    assert again["answer"] == out["answer"]


def test_what_sounds_after_a_collision_and_what_a_collision_sounds_like(folder, capsys):
    clip = read_clip(clip_folder(folder, 2))
    assert clip.collisions, "this seed's clip has a collision"
    col = clip.collisions[0]
    shape = clip.objects[col.objects[0]].shape
    first = next(c for c in clip.collisions if shape in {clip.objects[i].shape for i in c.objects})
    out = _answer(capsys, "--video", str(clip_folder(folder, 2)), "--question", f"What sounds after the {shape} collides?")
    after = [o.index for o in clip.objects if o.sounding_frames[first.frame + 1:].any()]
    assert out["answer"] == _names(clip, after)
    out = _answer(capsys, "--video", str(clip_folder(folder, 2)), "--question", "What does the first collision sound like?")
    assert out["answer"] == col.sound


def test_a_registered_localiser_is_chosen_by_name(folder, capsys):
    def factory(checkpoint):
        def localise(clip):
            sounding = np.zeros((clip.frames.shape[0], len(clip.objects)), bool)
            sounding[:, 0] = True  # says object 0, whatever the truth
            return SoundingEstimate(sounding, (None,) * len(clip.objects), "first")
        return localise

    register_localiser("test-first", factory)
    try:
        clip = read_clip(clip_folder(folder, 0))
        out = _answer(capsys, "--video", str(clip_folder(folder, 0)), "--question", "Which object is making the sound?",
                      "--localiser", "test-first")
        assert out["answer"] == _names(clip, [0])
    finally:
        SOUNDING_LOCALISERS.unregister("test-first")


def test_clip_refusals_name_what_is_wrong(folder, capsys):
    clip = str(clip_folder(folder, 0))
    assert cli.main(["answer", "--video", clip, "--question", "Which object is making the sound?",
                     "--dynamics", "propnet"]) == 2
    assert "--dynamics does not apply" in capsys.readouterr().err
    assert cli.main(["answer", "--video", str(folder), "--question", "Which object is making the sound?"]) == 2
    assert "choose one with --index" in capsys.readouterr().err
    assert cli.main(["answer", "--video", clip, "--question", "Why?", "--video-parser", "templates"]) == 2
    assert "no sound-question form" in capsys.readouterr().err
    assert cli.main(["answer", "--video", clip, "--program", "unseen_events count"]) == 2
    assert "no future frames" in capsys.readouterr().err
    (clip_folder(folder, 1) / "mixture.wav").write_bytes(b"RIFF")
    assert cli.main(["answer", "--video", str(clip_folder(folder, 1)), "--program", "objects count"]) == 2
    assert "mixture.wav" in capsys.readouterr().err
