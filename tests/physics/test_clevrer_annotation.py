"""CLEVRER annotation and truth files: official examples read, ours round-trip, bad fields named."""

from __future__ import annotations

import json

import pytest

from physics.errors import DataError
from physics.worlds.clevrer_annotation import (
    VideoAnnotation,
    annotation_files,
    read_annotation,
    write_annotation,
)
from physics.worlds.clevrer_truth import read_truth, simulate_video, write_truth
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld

# the shape of an official file (FORMAT.md): integer coordinates, quaternion orientation, extra keys
OFFICIAL = {
    "scene_index": 10000,
    "video_filename": "video_10000.mp4",
    "object_property": [
        {"object_id": 0, "color": "red", "material": "metal", "shape": "cube"},
        {"object_id": 1, "color": "blue", "material": "rubber", "shape": "sphere"},
    ],
    "motion_trajectory": [
        {"frame_id": f, "objects": [
            {"object_id": 0, "location": [f, 0, 0.2], "orientation": [0, 0, 0, 1], "velocity": [1, 0, 0],
             "angular_velocity": [0, 0, 0], "inside_camera_view": True},
            {"object_id": 1, "location": [3, 0, 0.2], "orientation": [0, 0, 0], "velocity": [0, 0, 0],
             "angular_velocity": [0, 0, 0], "inside_camera_view": f > 0},
        ]}
        for f in range(3)
    ],
    "collision": [{"object_ids": [0, 1], "frame_id": 2, "location": [2.5, 0, 0.2]}],
    "description": "kept as it is",
}


@pytest.fixture(scope="module")
def video():
    with ClevrerWorld(ClevrerConfig(width=96, height=64, frames=8, future_frames=4)) as world:
        return simulate_video(world, (4, 0, 0), 0, "video_00000.mp4")


def test_an_official_annotation_reads_into_typed_objects(tmp_path):
    path = tmp_path / "annotation_10000.json"
    path.write_text(json.dumps(OFFICIAL))
    ann = read_annotation(path)
    assert ann.scene_index == 10000 and ann.num_frames == 3
    assert [p.shape for p in ann.object_property] == ["cube", "sphere"]
    assert ann.motion_trajectory[2].by_id()[0].location == (2.0, 0.0, 0.2)
    assert ann.motion_trajectory[0].by_id()[0].orientation == (0.0, 0.0, 0.0, 1.0)
    assert ann.collision[0].object_ids == (0, 1) and ann.collision[0].frame_id == 2
    assert ann.extra == {"description": "kept as it is"}
    assert json.loads(json.dumps(ann.to_json())) == OFFICIAL  # same values, official key order


def test_our_annotation_and_truth_round_trip_byte_for_byte(tmp_path, video):
    ann, truth = video
    write_annotation(tmp_path / "a.json", ann)
    write_truth(tmp_path / "t.json", truth)
    ann2, truth2 = read_annotation(tmp_path / "a.json"), read_truth(tmp_path / "t.json")
    assert ann2 == ann and truth2 == truth
    write_annotation(tmp_path / "a2.json", ann2)
    write_truth(tmp_path / "t2.json", truth2)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "a2.json").read_bytes()
    assert (tmp_path / "t.json").read_bytes() == (tmp_path / "t2.json").read_bytes()
    assert set(ann.to_json()) == {"scene_index", "video_filename", "object_property", "motion_trajectory", "collision"}
    assert ann.num_frames == 8 and len(truth.future_trajectory) == 4
    assert [f.frame_id for f in truth.future_trajectory] == [8, 9, 10, 11]


def _broken(mutate):
    data = json.loads(json.dumps(OFFICIAL))
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("object_property"), "missing field 'object_property'"),
        (lambda d: d["motion_trajectory"][1]["objects"][0].pop("velocity"), r"motion_trajectory\[1\]\.objects\[0\]: missing field 'velocity'"),
        (lambda d: d["motion_trajectory"][2]["objects"][1].update(location=[1, 2]), r"motion_trajectory\[2\]\.objects\[1\]\.location"),
        (lambda d: d["motion_trajectory"][0]["objects"][0].update(inside_camera_view="yes"), "inside_camera_view"),
        (lambda d: d["motion_trajectory"][0]["objects"][0].update(object_id=7), r"object_id: 7 is not in object_property"),
        (lambda d: d["motion_trajectory"][2].update(frame_id=0), r"motion_trajectory\[2\]\.frame_id"),
        (lambda d: d["collision"][0].update(object_ids=[1, 1]), r"collision\[0\]\.object_ids"),
        (lambda d: d.update(scene_index="10000"), "scene_index: expected an integer"),
        (lambda d: d["motion_trajectory"][1]["objects"][0]["location"].__setitem__(0, float("nan")),
         r"motion_trajectory\[1\]\.objects\[0\]\.location: must hold finite numbers"),
        (lambda d: d["motion_trajectory"][2]["objects"][1]["velocity"].__setitem__(2, float("inf")),
         r"motion_trajectory\[2\]\.objects\[1\]\.velocity: must hold finite numbers"),
        (lambda d: d["collision"][0]["location"].__setitem__(1, float("nan")), r"collision\[0\]\.location: must hold finite"),
        # a colour outside the vocabulary is refused by name (taken, no question could name it and its
        # questions would count wrong)
        (lambda d: d["object_property"][0].update(color="plaid"),
         r"object_property\[0\]\.color: unknown color 'plaid'; allowed: gray, red"),
        (lambda d: d["object_property"][1].update(shape="cone"), r"object_property\[1\]\.shape: unknown shape 'cone'"),
    ],
)
def test_a_malformed_annotation_names_the_file_and_the_field(tmp_path, mutate, field):
    path = tmp_path / "annotation_10000.json"
    path.write_text(json.dumps(_broken(mutate)))
    with pytest.raises(DataError, match=field) as info:
        read_annotation(path)
    assert str(path) in str(info.value)


def test_unreadable_files_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_annotation(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_annotation(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_truth(tmp_path / "list.json")
    with pytest.raises(DataError, match="expected a JSON object"):
        VideoAnnotation.from_json([], where="x")


def test_annotation_files_finds_the_official_layout_and_ours_in_index_order(tmp_path):
    official = tmp_path / "official" / "annotation_validation"
    for k in (10001, 10000, 11000):
        folder = official / f"annotation_{k // 1000 * 1000}-{k // 1000 * 1000 + 1000}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"annotation_{k}.json").write_text(json.dumps({**OFFICIAL, "scene_index": k}))
    ours = tmp_path / "ours" / "annotation_val"
    ours.mkdir(parents=True)
    for k in (1, 0):
        (ours / f"annotation_{k:05d}.json").write_text(json.dumps({**OFFICIAL, "scene_index": k}))
    assert [read_annotation(p).scene_index for p in annotation_files(tmp_path / "official")] == [10000, 10001, 11000]
    assert [p.name for p in annotation_files(tmp_path / "ours")] == ["annotation_00000.json", "annotation_00001.json"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no annotation"):
        annotation_files(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        annotation_files(tmp_path / "missing")
