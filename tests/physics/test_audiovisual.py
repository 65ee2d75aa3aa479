"""Audio-visual clips: determinism, sources and mixture, onsets at collisions, loudness, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physics.errors import ConfigError, DataError
from physics.worlds.audiovisual import (
    AudioVisualConfig,
    make_clip,
    mix,
    read_clip,
    write_clip,
)
from physics.worlds.sound import INSTRUMENTS

CFG = AudioVisualConfig(frames=8, fps=8, width=48, height=32)


@pytest.fixture(scope="module")
def clips():
    return [make_clip(s, CFG) for s in range(4)]


def test_a_clip_has_the_contract_shapes(clips):
    c = clips[0]
    length = CFG.samples
    assert length == round(CFG.seconds * CFG.sample_rate) == c.frame_start(CFG.frames)
    assert c.frames.shape == (8, 32, 48, 3) and c.frames.dtype == np.uint8
    assert c.masks.shape == (8, 32, 48) and c.masks.dtype == np.int16
    assert c.sources.shape == (CFG.n_sources, length) and c.sources.dtype == np.float32
    assert c.mixture.shape == (length,) and c.mixture.dtype == np.float32
    assert c.source_kind == ("instrument",) * CFG.n_sounding + ("impact",)
    assert c.source_object[-1] == -1 and list(c.source_object[:-1]) == sorted(c.sounding)
    assert len(c.sounding) == CFG.n_sounding
    assert set(np.unique(c.masks)) <= {-1, *range(len(c.objects))}
    assert np.abs(c.mixture).max() <= CFG.peak + 1e-6


def test_same_seed_same_clip_and_other_seeds_differ(clips):
    again = make_clip(0, CFG)
    for name in ("frames", "masks", "sources", "mixture"):
        np.testing.assert_array_equal(getattr(again, name), getattr(clips[0], name))
    assert again.metadata() == clips[0].metadata()
    assert not np.array_equal(clips[1].mixture, clips[0].mixture)


def test_sources_sum_to_the_mixture(clips):
    for c in clips:
        np.testing.assert_allclose(c.sources.sum(0), c.mixture, atol=1e-6)


def test_instruments_look_like_their_class_and_each_tone_sits_at_its_pitch(clips):
    for c in clips:
        for o in c.objects:
            if o.category is None:
                assert (o.shape, o.color) not in {(i.shape, i.color) for i in INSTRUMENTS.values()}
                continue
            assert (o.shape, o.color) == (INSTRUMENTS[o.category].shape, INSTRUMENTS[o.category].color)
            wave = c.sources[c.source_object.index(o.index)]
            spectrum = np.abs(np.fft.rfft(wave))
            freqs = np.fft.rfftfreq(len(wave), 1.0 / c.sample_rate)
            harmonics = [k * o.pitch for k in range(1, 9)]
            peak = freqs[spectrum.argmax()]
            assert min(abs(peak - h) for h in harmonics) < 2.0


def test_impact_onsets_fall_in_their_collision_frames(clips):
    seen = 0
    for c in clips:
        impact = c.sources[c.source_kind.index("impact")]
        for col in c.collisions:
            seen += 1
            assert c.frame_start(col.frame) <= col.onset < c.frame_start(col.frame + 1)
            before = impact[max(0, col.onset - 40):col.onset]
            after = impact[col.onset:col.onset + 40]
            assert np.abs(after).max() > 0 and (len(before) == 0 or np.abs(after).max() > np.abs(before).max())
        if not c.collisions:
            assert not impact.any()
        first = min((col.onset for col in c.collisions), default=len(impact))
        assert not impact[:first].any()  # nothing before the first collision
    assert seen >= 3


def test_instrument_loudness_follows_speed(clips):
    for c in clips:
        for col in c.collisions:
            metal = "metal" in {c.objects[i].material for i in col.objects}
            assert col.sound == ("ring" if metal else "thud")
        for o in c.objects:
            mean_velocity = np.linalg.norm(o.velocities, axis=1)
            assert (mean_velocity <= o.speeds + 1e-4).all()  # |mean v| <= mean |v|
            assert np.median(mean_velocity - o.speeds) > -0.1 * max(o.speeds.max(), 1e-3)
            if o.is_sounding:
                assert np.corrcoef(o.speeds, o.loudness)[0, 1] > 0.9
                assert (o.loudness[o.speeds < 1e-3] < 1e-3).all()
            else:
                assert not o.loudness.any() and not o.sounding_frames.any()


def test_same_category_instruments_look_identical():
    c = make_clip(3, AudioVisualConfig(frames=4, fps=8, width=48, height=32, same_category=True))
    looks = {(o.shape, o.color, o.material, o.size, o.category) for o in c.objects if o.is_sounding}
    pitches = [o.pitch for o in c.objects if o.is_sounding]
    assert len(looks) == 1 and len(set(pitches)) == 2


def test_mix_adds_mixtures_and_refuses_other_lengths(clips):
    np.testing.assert_allclose(mix(clips[0], clips[1]), clips[0].mixture + clips[1].mixture, atol=1e-7)
    other = make_clip(0, AudioVisualConfig(frames=4, fps=8, width=48, height=32))
    with pytest.raises(ConfigError, match="lengths"):
        mix(clips[0], other)


def test_write_read_round_trip(tmp_path, clips):
    c = clips[1]
    write_clip(c, tmp_path / "clip")
    back = read_clip(tmp_path / "clip")
    np.testing.assert_array_equal(back.frames, c.frames)
    np.testing.assert_array_equal(back.masks, c.masks)
    assert np.abs(back.sources - c.sources).max() < 1e-8 and np.abs(back.mixture - c.mixture).max() < 1e-8
    np.testing.assert_allclose(back.sources.sum(0), back.mixture, atol=1e-6)
    assert back.metadata() == json.loads(json.dumps(c.metadata()))
    assert back.config == c.config and back.sounding == c.sounding and back.collisions == c.collisions


@pytest.mark.parametrize("name", ["clip.json", "frames.npz", "mixture.wav", "source_0.wav"])
def test_a_corrupt_file_is_a_data_error_naming_it(tmp_path, clips, name):
    folder = write_clip(clips[0], tmp_path / "clip")
    (folder / name).write_bytes(b"\x00not what it should be")
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        read_clip(folder)


def test_a_clip_json_with_a_missing_field_is_a_data_error(tmp_path, clips):
    folder = write_clip(clips[0], tmp_path / "clip")
    meta = json.loads((folder / "clip.json").read_text())
    del meta["objects"][0]["speeds"]
    (folder / "clip.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"clip\.json.*speeds"):
        read_clip(folder)


def test_a_nan_frame_rate_or_random_frames_bytes_are_named_plainly(tmp_path, clips):
    # a NaN fps was read as the clip's frame rate; random frames bytes gave numpy's allow_pickle advice
    folder = write_clip(clips[0], tmp_path / "clip")
    text = (folder / "clip.json").read_text()
    meta = json.loads(text)
    (folder / "clip.json").write_text(text.replace(f'"fps": {json.dumps(meta["fps"])}', '"fps": NaN', 1))
    with pytest.raises(DataError, match=r"clip\.json: 'fps' and 'sample_rate' must be positive numbers, got nan"):
        read_clip(folder)
    (folder / "clip.json").write_text(text)
    (folder / "frames.npz").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"frames\.npz: not a readable frames file \(not a NumPy \.npz archive\)"):
        read_clip(folder)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="sample_rate"):
        AudioVisualConfig(sample_rate=44100)
    with pytest.raises(ConfigError, match="n_sounding"):
        AudioVisualConfig(n_objects=(1, 2), n_sounding=2)
    with pytest.raises(ConfigError, match="at most 4"):
        AudioVisualConfig(n_objects=(5, 6), n_sounding=5, same_category=True)
    with pytest.raises(ConfigError, match="seed"):
        make_clip(-1, CFG)


def test_docstring_examples_run():
    import doctest

    import physics.worlds.audiovisual as audiovisual
    import physics.worlds.sound as sound

    assert doctest.testmod(audiovisual).failed == 0 and doctest.testmod(sound).failed == 0


def test_a_clip_reads_as_a_clevrer_annotation(clips):
    c = clips[0]
    ann = c.annotation(scene_index=3)
    assert ann.scene_index == 3 and ann.num_frames == CFG.frames
    assert [p.object_id for p in ann.object_property] == [o.index for o in c.objects]
    assert [(x.object_ids, x.frame_id) for x in ann.collision] == [(x.objects, x.frame) for x in c.collisions]
    state = ann.motion_trajectory[2].by_id()[1]
    np.testing.assert_allclose(state.location, c.objects[1].positions[2], atol=1e-6)
    from physics.worlds.clevrer_annotation import VideoAnnotation

    assert VideoAnnotation.from_json(ann.to_json()) == ann  # a valid annotation: it round-trips


def test_events_carry_a_sound_that_round_trips_and_plays_no_part_in_equality():
    from physics.worlds.clevrer_events import Event, events_json, parse_events

    ring, plain = Event(3, "collision", (0, 1), "ring"), Event(3, "collision", (0, 1))
    assert ring == plain and hash(ring) == hash(plain) and sorted([ring, Event(1, "start")])[1] is ring
    assert parse_events(events_json([ring, plain]), "events") == [ring, plain]
    assert [e.sound for e in parse_events(events_json([ring, plain]), "events")] == ["ring", None]
    assert "sound" not in plain.to_json()
    with pytest.raises(DataError, match=r"events\[0\]\.sound"):
        parse_events([{"type": "collision", "frame_id": 3, "object_ids": [0, 1], "sound": 5}], "events")
