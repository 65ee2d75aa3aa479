"""Sounding-object localisers: the registry, the gt entry, maps to objects, sound on scene graphs."""

from __future__ import annotations

import numpy as np
import pytest

from perception.audio.localise import (
    SOUNDING_LOCALISERS,
    SoundingEstimate,
    localiser_for,
    register_localiser,
    scene_graph_at,
    sounding_from_maps,
)
from perception.scene_graph import SceneGraph
from physics.errors import ConfigError, StateError
from physics.worlds.audiovisual import AudioVisualConfig, make_clip

CFG = AudioVisualConfig(frames=4, fps=8, width=48, height=32)


@pytest.fixture(scope="module")
def clip():
    return make_clip(2, CFG)


def test_gt_reads_the_clips_truth(clip):
    est = localiser_for("gt")(clip)
    assert est.sounding.shape == (4, len(clip.objects)) and est.source == "gt"
    for o in clip.objects:
        assert (est.sounding[:, o.index] == o.sounding_frames).all()
        assert est.sounds[o.index] == o.category
    assert est.sounding_objects() == clip.sounding
    with pytest.raises(ConfigError, match="no checkpoint"):
        localiser_for("gt", "weights.pt")
    with pytest.raises(ConfigError, match="unknown sounding-object localiser"):
        localiser_for("nope")


def test_a_localiser_registers_from_anywhere(clip):
    def factory(checkpoint):
        return lambda c: SoundingEstimate(np.zeros((c.frames.shape[0], len(c.objects)), bool),
                                          (None,) * len(c.objects), "nobody")

    register_localiser("test-nobody", factory, help="nothing ever sounds")
    try:
        assert "test-nobody" in SOUNDING_LOCALISERS
        assert localiser_for("test-nobody")(clip).sounding_objects() == ()
    finally:
        SOUNDING_LOCALISERS.unregister("test-nobody")


def test_maps_peak_on_an_object_marks_it_sounding(clip):
    k = clip.sounding[0]
    maps = np.zeros((4, 16, 24), np.float32)  # half the masks' resolution: cell (i, j) reads pixel (2i+1, 2j+1)
    for f in range(4):
        cells = [(i, j) for i in range(16) for j in range(24) if clip.masks[f, 2 * i + 1, 2 * j + 1] == k]
        assert cells, "the object is in view"
        maps[f][cells[len(cells) // 2]] = 1.0
    est = sounding_from_maps(maps, clip.masks, len(clip.objects), active=np.array([1, 1, 1, 0], bool))
    assert est.sounding[:3, k].all() and est.sounding.sum() == 3  # the peak's object, nothing else
    assert not est.sounding[3].any()  # an inactive frame marks no object
    background = np.zeros_like(maps)
    background[:, 0, 0] = 1.0  # the top-left corner is floor
    assert clip.masks[0, 1, 1] == -1 and not sounding_from_maps(background, clip.masks, len(clip.objects)).sounding.any()
    with pytest.raises(StateError, match="agree in T"):
        sounding_from_maps(maps[:2], clip.masks, len(clip.objects))


def test_estimates_check_their_shapes():
    with pytest.raises(StateError, match="bool"):
        SoundingEstimate(np.zeros((2, 3)), (None,) * 3)
    with pytest.raises(StateError, match="2 sounds for 3 objects"):
        SoundingEstimate(np.zeros((2, 3), bool), (None, None))


def test_scene_graph_objects_carry_sound_and_round_trip(clip):
    est = localiser_for("gt")(clip)
    sg = scene_graph_at(clip, 1, est)
    assert [o.is_sounding for o in sg.objects] == [bool(est.sounding[1, k]) for k in range(len(clip.objects))]
    assert [o.sound for o in sg.objects] == [o.category for o in clip.objects]
    back = SceneGraph.from_clevr(sg.to_clevr())
    assert [(o.sound, o.is_sounding) for o in back.objects] == [(o.sound, o.is_sounding) for o in sg.objects]
    silent = SceneGraph.from_clevr({"objects": [{"shape": "cube", "color": "red", "material": "metal",
                                                 "size": "large", "3d_coords": [0, 0, 0.7]}]})
    assert silent.objects[0].sound is None and "sound" not in silent.to_clevr()["objects"][0]
    with pytest.raises(ValueError, match="is_sounding"):
        SceneGraph.from_clevr({"objects": [{"shape": "cube", "color": "red", "material": "metal", "size": "large",
                                            "3d_coords": [0, 0, 0.7], "is_sounding": "yes"}]})
    with pytest.raises(ConfigError, match="frame 9"):
        scene_graph_at(clip, 9, est)


def test_docstring_example_runs():
    import doctest

    import perception.audio.localise as localise

    assert doctest.testmod(localise).failed == 0
