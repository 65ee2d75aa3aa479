"""Pixels to annotation on a 2-video tiny data set, the registry, and `nesy bench video-perception`."""

from __future__ import annotations

import dataclasses
import io
import json
from contextlib import redirect_stdout

import pytest

from benchmarks import cli
from benchmarks.cli import main
from perception.video import VIDEO_PERCEIVERS, load_video_perceiver, perceive_video
from perception.video.perceiver import PixelVideoPerceiver, annotation_for_frames
from physics.errors import ConfigError, DataError
from physics.worlds.clevrer_annotation import read_annotation, write_annotation


def _nesy(args: list[str], module: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf), pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMAND_MODULES", (module,))
        assert main(args) == 0
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("clevrer_tiny")
    _nesy(["data", "clevrer", "--n", "2", "--frames", "8", "--future-frames", "0", "--width", "96", "--height", "64",
           "--seed", "3", "--split", "val", "--out", str(out), "--quiet"], "data_clevrer")
    return out


def test_registry_offers_ground_truth_and_the_pixel_model():
    assert VIDEO_PERCEIVERS.names()[:2] == ["model", "gt"]
    with pytest.raises(ConfigError, match="video perceiver"):
        load_video_perceiver("nope")


def test_pixels_to_annotation_gives_every_frame_and_round_trips(tiny, tmp_path):
    video = tiny / "frames_val" / "video_00001"
    perceiver = PixelVideoPerceiver()
    ann = perceiver(video)
    assert ann.scene_index == 1 and [fr.frame_id for fr in ann.motion_trajectory] == list(range(8))
    assert len(perceiver.last_detections) == 8
    ids = {p.object_id for p in ann.object_property}
    assert {o.object_id for fr in ann.motion_trajectory for o in fr.objects} <= ids
    assert all(set(c.object_ids) <= ids for c in ann.collision)
    write_annotation(tmp_path / "annotation_00001.json", ann)
    assert read_annotation(tmp_path / "annotation_00001.json") == dataclasses.replace(ann, extra={})


def test_ground_truth_perceiver_reads_the_videos_own_annotation(tiny):
    video = tiny / "frames_val" / "video_00000"
    assert perceive_video(video, "gt") == read_annotation(tiny / "annotation_val" / "annotation_00000.json")
    with pytest.raises(DataError, match="frames_<split>"):
        annotation_for_frames(tiny)


def test_bench_scores_ground_truth_perfectly_and_writes_the_perceived_annotations(tiny, tmp_path):
    out = tmp_path / "r.json"
    text = _nesy(["bench", "video-perception", "--data", str(tiny), "--perception", "gt", "--save", str(tmp_path / "p"),
                  "--out", str(out)], "bench_video_perception")
    assert "identity accuracy" in text
    result = json.loads(out.read_text())
    assert result["videos"] == 2 and result["frames"] == 16 and result["skipped"] == []
    assert result["identity_accuracy"] == 1.0 and result["attribute_accuracy"]["all"] == 1.0
    assert result["location_error"] == 0.0 and result["speed"]["frames"] == 16
    assert read_annotation(tmp_path / "p" / "annotation_val" / "annotation_00001.json") == read_annotation(
        tiny / "annotation_val" / "annotation_00001.json")


def test_bench_model_reports_and_skips_a_broken_video(tiny, tmp_path):
    broken = tmp_path / "data"
    (broken / "frames_val" / "video_00000").mkdir(parents=True)
    (broken / "frames_val" / "video_00000" / "0000.png").write_bytes(b"not a png")
    (broken / "annotation_val").mkdir()
    (broken / "annotation_val" / "annotation_00000.json").write_text((tiny / "annotation_val" / "annotation_00000.json").read_text())
    video = tiny / "frames_val" / "video_00001"
    (broken / "frames_val" / "video_00001").symlink_to(video)
    (broken / "annotation_val" / "annotation_00001.json").write_text((tiny / "annotation_val" / "annotation_00001.json").read_text())
    out = tmp_path / "r.json"
    text = _nesy(["bench", "video-perception", "--data", str(broken), "--out", str(out)], "bench_video_perception")
    result = json.loads(out.read_text())
    assert "skipped video_00000" in text
    assert [s["video"] for s in result["skipped"]] == ["video_00000"] and result["videos"] == 1
    assert result["speed"]["frames"] == 8 and result["speed"]["frames_per_second_cpu"] > 0


def test_cube_yaw_option_refits_a_cache_made_without_fits(tiny, tmp_path):
    from perception.video.annotate import VideoPerceptionConfig
    from perception.video.detect import load_detections

    video = tiny / "frames_val" / "video_00000"
    plain = PixelVideoPerceiver(cache=tmp_path)
    plain(video)
    cached = tmp_path / "frames_val_video_00000.npz"
    assert all(d.yaw is None for d in load_detections(cached)[0])
    fitted = PixelVideoPerceiver(plain.derenderer, VideoPerceptionConfig(cube_yaw=1), cache=tmp_path)
    fitted(video)
    dets = load_detections(cached)[0]
    assert all(d.yaw is not None and len(d.yaw) == len(d) for d in dets)
    assert [len(d) for d in dets] == [len(d) for d in plain._detections(video)[0]]


def test_a_gap_in_a_videos_frame_numbers_is_named_before_any_frame_is_read(tmp_path):
    """A frame lost in the middle of a video left the perceiver a frame with no object: answers changed, no word."""
    from perception.video.detect import frame_paths

    video = tmp_path / "video_00000"
    video.mkdir()
    for name in ("0001.png", "0002.png", "0004.png", "notes.png"):
        (video / name).write_bytes(b"")
    with pytest.raises(DataError, match=r"video_00000: frame 0003.png is missing \(frames 0001..0004\)"):
        frame_paths(video)
    (video / "0003.png").write_bytes(b"")
    assert [p.name for p in frame_paths(video)] == ["0001.png", "0002.png", "0003.png", "0004.png"]  # any first number
    (video / "3.png").write_bytes(b"")
    with pytest.raises(DataError, match="repeats frame 3"):
        frame_paths(video)


def test_bench_refuses_a_save_folder_it_cannot_write_before_perceiving(tiny, tmp_path, monkeypatch, capsys):
    from benchmarks.commands import bench_video_perception

    monkeypatch.setattr(bench_video_perception, "evaluate", lambda *a, **k: pytest.fail("perceived before the check"))
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert main(["bench", "video-perception", "--data", str(tiny), "--save", str(blocker / "saved")]) == 2
    assert f"cannot write {blocker / 'saved' / 'annotation.json'}" in capsys.readouterr().err


def test_a_damaged_detections_cache_entry_is_made_again_not_fatal_to_its_video(tiny, tmp_path):
    # its random bytes failed the video (counted wrong in eval clevrer) with numpy's allow_pickle advice
    from perception.video.detect import load_detections

    video = tiny / "frames_val" / "video_00000"
    perceiver = PixelVideoPerceiver(cache=tmp_path)
    first = perceiver(video)
    cached = tmp_path / "frames_val_video_00000.npz"
    good = cached.read_bytes()
    cached.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"not a readable detections file \(ValueError: not a NumPy .npz archive\)"):
        load_detections(cached)
    assert perceiver(video) == first and cached.read_bytes() == good  # made again, and written back whole
