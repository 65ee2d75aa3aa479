"""SceneGraph: CLEVR scene JSON round trip, CLEVR's relation rule, networkx export, validation."""

from __future__ import annotations

import copy
import json

import pytest

from perception import SceneError, SceneGraph, load_scenes, save_scenes
from perception.synthetic import sample_scene_graphs
from physics.errors import DataError

DIRS = {
    "left": [-0.66, -0.75, 0.0],
    "right": [0.66, 0.75, 0.0],
    "behind": [-0.75, 0.66, 0.0],
    "front": [0.75, -0.66, 0.0],
    "above": [0.0, 0.0, 1.0],
    "below": [0.0, 0.0, -1.0],
}


def _obj(shape="cube", color="red", material="metal", size="large", xyz=(0.0, 0.0, 0.7), **kw):
    return {"shape": shape, "color": color, "material": material, "size": size,
            "3d_coords": list(xyz), "rotation": 10.0, "pixel_coords": [1, 2, 3.5], **kw}


def _scene(objects, **kw):
    return {"image_index": 7, "image_filename": "CLEVR_val_000007.png", "split": "val",
            "objects": objects, "directions": DIRS, **kw}


def test_relationships_follow_clevr_dot_product_rule_with_eps_0_2():
    # object 1 is 0.1 along "right" of object 0 (below eps), object 2 is 1.0 along it
    right = DIRS["right"]
    objs = [
        _obj(xyz=(0, 0, 0.7)),
        _obj(xyz=(0.1 * right[0], 0.1 * right[1], 0.7)),
        _obj(xyz=(1.0 * right[0], 1.0 * right[1], 0.7)),
    ]
    sg = SceneGraph.from_clevr(_scene(objs))
    assert sg.relationships["right"][0] == [2]
    assert sg.relationships["left"][2] == [0, 1]
    assert "above" not in sg.relationships and "below" not in sg.relationships


def test_given_relationships_are_used_verbatim():
    objs = [_obj(xyz=(0, 0, 0.7)), _obj(xyz=(3, 3, 0.7))]
    rel = {"left": [[1], []], "right": [[], [0]], "front": [[], []], "behind": [[], []]}
    sg = SceneGraph.from_clevr(_scene(objs, relationships=rel))
    assert sg.relationships["left"] == [[1], []]  # geometrically wrong, but given


def test_clevr_json_round_trip_is_lossless(tmp_path):
    scenes = sample_scene_graphs(5, seed=3)
    path = tmp_path / "scenes.json"
    save_scenes(path, scenes, info={"split": "val"})
    loaded = load_scenes(path)
    assert [s.to_clevr() for s in loaded] == [s.to_clevr() for s in scenes]
    raw = json.loads(path.read_text())
    assert set(raw) == {"info", "scenes"}
    first = raw["scenes"][0]["objects"][0]
    assert {"shape", "color", "material", "size", "3d_coords", "rotation"} <= set(first)


def test_single_scene_file_and_unknown_fields_survive(tmp_path):
    data = _scene([_obj(extra_field=5)], custom="kept")
    path = tmp_path / "one.json"
    path.write_text(json.dumps(data))
    (sg,) = load_scenes(path)
    out = sg.to_clevr()
    assert out["custom"] == "kept" and out["objects"][0]["extra_field"] == 5


def test_networkx_export_has_attributes_and_typed_edges():
    objs = [_obj(xyz=(0, 0, 0.7)), _obj(shape="sphere", color="blue", xyz=(2, 2, 0.35), size="small")]
    g = SceneGraph.from_clevr(_scene(objs)).to_networkx()
    assert g.nodes[1]["shape"] == "sphere" and g.nodes[1]["color"] == "blue"
    relations = {(u, v, d["relation"]) for u, v, d in g.edges(data=True)}
    assert (0, 1, "right") in relations and (1, 0, "left") in relations


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda s: s["objects"][1].pop("color"), "object 1: missing field 'color'"),
        (lambda s: s["objects"][0].update(color="pink"), "unknown color 'pink'"),
        (lambda s: s["objects"][1].update(shape=3), "'shape' must be a string"),
        (lambda s: s["objects"][0].update({"3d_coords": [0, 0]}), "'3d_coords' must be a list of 3"),
        (lambda s: s["objects"][0].update({"3d_coords": [0, float("nan"), 0]}), "finite"),
        (lambda s: s.pop("objects"), "missing field 'objects'"),
        (lambda s: s.update(relationships={"left": [[5], []]}), "relationships.left"),
        (lambda s: s.update(directions={"left": [1, 0, 0]}), "'directions' lacks"),
    ],
)
def test_validation_errors_name_scene_object_and_field(mutate, fragment):
    data = _scene([_obj(), _obj(shape="sphere", xyz=(2, 2, 0.7))])
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(SceneError) as err:
        SceneGraph.from_clevr(bad, where="scenes.json: scene 4")
    assert fragment in str(err.value)
    assert "scenes.json: scene 4" in str(err.value)


def test_scene_error_is_a_value_error_and_data_error():
    with pytest.raises(ValueError):
        SceneGraph.from_clevr([])
    with pytest.raises(DataError):
        SceneGraph.from_clevr({"objects": "no"})


def test_malformed_json_file_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"scenes": [\n  {"objects": [}\n]}')
    with pytest.raises(DataError, match=r"broken.json.*line 2"):
        load_scenes(path)
    with pytest.raises(DataError, match="not found"):
        load_scenes(tmp_path / "missing.json")
