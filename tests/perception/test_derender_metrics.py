"""Matching predicted to true objects and the perception scores, on hand-made scenes."""

from __future__ import annotations

import pytest

from perception.derender.metrics import match_objects, perception_metrics
from perception.scene_graph import SceneGraph, SceneObject
from physics.errors import ConfigError, DataError


def _obj(shape="cube", color="red", material="metal", size="large", pos=(0.0, 0.0, 0.7), pix=None):
    return SceneObject(shape, color, material, size, pos, pixel_coords=pix)


def test_matching_is_one_to_one_and_ignores_order():
    a, b, c = _obj(pos=(0, 0, 0.7)), _obj(pos=(2, 0, 0.7)), _obj(pos=(-2, 1, 0.7))
    pred = SceneGraph((c, a, b))
    gt = SceneGraph((a, b, c))
    assert match_objects(pred, gt) == [(0, 2), (1, 0), (2, 1)]


def test_far_predictions_are_not_matched():
    gt = SceneGraph((_obj(pos=(0, 0, 0.7)),))
    pred = SceneGraph((_obj(pos=(0.3, 0, 0.7)), _obj(pos=(2, 2, 0.7))))
    assert match_objects(pred, gt) == [(0, 0)]
    assert match_objects(pred, gt, max_distance=0.1) == []


def test_hungarian_prefers_the_globally_best_assignment():
    # greedy nearest-first pairs pred 0 with gt 0 (total 4 + 18 px); the optimum costs 6 + 8
    gt = SceneGraph((_obj(pos=(0, 0, 0.7), pix=(100, 100, 10)), _obj(pos=(1, 0, 0.7), pix=(110, 100, 10))))
    pred = SceneGraph((_obj(pos=(0.5, 0, 0.7), pix=(104, 100, 10)), _obj(pos=(-0.5, 0, 0.7), pix=(92, 100, 10))))
    assert match_objects(pred, gt, by="pixel") == [(0, 1), (1, 0)]


def test_pixel_matching_is_used_when_every_object_has_pixel_coords():
    gt = SceneGraph((_obj(pos=(0, 0, 0.7), pix=(100, 100, 10)),))
    # 3D far off (a bad depth estimate) but the right place in the image
    pred = SceneGraph((_obj(pos=(3, 3, 0.7), pix=(105, 100, 10)),))
    assert match_objects(pred, gt) == [(0, 0)]
    assert match_objects(pred, gt, by="3d") == []
    with pytest.raises(DataError, match="pixel_coords"):
        match_objects(SceneGraph((_obj(),)), gt, by="pixel")
    with pytest.raises(ConfigError, match="'auto', 'pixel' or '3d'"):
        match_objects(pred, gt, by="mesh")


def test_metrics_count_detections_attributes_and_positions():
    gts = [
        SceneGraph((_obj(pos=(0, 0, 0.7)), _obj(color="blue", pos=(2, 0, 0.7)))),
        SceneGraph((_obj(shape="sphere", size="small", pos=(1, 1, 0.35)),)),
    ]
    preds = [
        # scene 0: both found, the second with the wrong colour, first 0.1 off
        SceneGraph((_obj(pos=(0.1, 0, 0.7)), _obj(color="green", pos=(2, 0, 0.7)))),
        # scene 1: found (wrong size) plus one extra object
        SceneGraph((_obj(shape="sphere", size="large", pos=(1, 1, 0.35)), _obj(pos=(-2, -2, 0.7)))),
    ]
    m = perception_metrics(preds, gts)
    assert m["n_gt"] == 3 and m["n_pred"] == 4 and m["n_matched"] == 3
    assert m["detection_recall"] == pytest.approx(1.0)
    assert m["detection_precision"] == pytest.approx(0.75)
    acc = m["attribute_accuracy"]
    assert acc["shape"] == pytest.approx(1.0)
    assert acc["color"] == pytest.approx(2 / 3)
    assert acc["size"] == pytest.approx(2 / 3)
    assert acc["material"] == pytest.approx(1.0)
    assert acc["all"] == pytest.approx(1 / 3)
    assert m["position_error"] == pytest.approx(0.1 / 3)
    assert m["scene_accuracy"] == 0.0
    by = m["attribute_accuracy_by_shape"]
    assert set(by) == {"cube", "sphere"}
    cubes = by["cube"]
    assert cubes["n"] == 2 and cubes["color"] == pytest.approx(0.5) and cubes["all"] == pytest.approx(0.5)
    assert m["attribute_confusion"]["color"] == {"blue": {"green": 1}, "red": {"red": 2}}
    assert m["attribute_confusion"]["size"]["small"] == {"large": 1}
    assert by["sphere"] == {"n": 1, "shape": 1.0, "color": 1.0, "material": 1.0, "size": 0.0, "all": 0.0}


def test_metrics_of_empty_predictions_and_length_mismatch():
    gts = [SceneGraph((_obj(),))]
    m = perception_metrics([SceneGraph(())], gts)
    assert m["detection_recall"] == 0.0
    assert m["detection_precision"] is None
    assert m["attribute_accuracy"]["all"] is None
    assert m["attribute_accuracy_by_shape"] == {}
    with pytest.raises(DataError, match="1 predicted scenes but 2"):
        perception_metrics([SceneGraph(())], gts * 2)
