"""Masks swollen over a hidden object at a contact: footprints in the detection cache and ``split_merged``."""

from __future__ import annotations

import numpy as np
import pytest

from perception.video.annotate import (
    VideoPerceptionConfig,
    perception_config,
    split_merged_masks,
    tracks_to_annotation,
)
from perception.video.detect import (
    VIDEO_ATTRIBUTES,
    FrameDetections,
    ground_backproject,
    load_detections,
    mask_boxes,
    save_detections,
)
from perception.video.track import Track
from physics.errors import ConfigError
from physics.worlds.camera import CLEVR_CAMERA
from physics.worlds.clevr_properties import ATTRIBUTES

HW = (320, 480)
HEIGHTS = {"cube": 0.2475, "sphere": 0.35, "cylinder": 0.35}
Z = 0.35


def _probs(color: str, shape: str) -> dict[str, np.ndarray]:
    names = {"color": color, "material": "rubber", "shape": shape}
    return {a: np.eye(len(ATTRIBUTES[a]))[ATTRIBUTES[a].index(names[a])] for a in VIDEO_ATTRIBUTES}


def _scene() -> tuple[list[Track], dict, list[FrameDetections]]:
    """A resting red cylinder T (frames 0-9) and a blue sphere H beside it, to its left, seen in frames 0-5 only:
    from frame 6 H is hidden in T's mask, whose box swells 30 px to the left (area 900 -> 1,400) and whose
    detected centre is pulled 12 px left."""
    t, h, feet, dets = Track(), Track(), {}, []
    for f in range(10):
        swollen = f >= 6
        px_t = np.array([228.0 if swollen else 240.0, 200.0])
        box_t = np.array([195.0 if swollen else 225.0, 180.0, 255.0, 215.0])
        area_t = 1400.0 if swollen else 900.0
        t.add(f, px_t, ground_backproject(CLEVR_CAMERA, px_t[None], np.array([Z]), HW)[0], _probs("red", "cylinder"), area_t)
        feet[(f, float(px_t[0]), float(px_t[1]))] = box_t
        pixels, areas, boxes = [px_t], [area_t], [box_t]
        if not swollen:
            px_h, box_h = np.array([205.0, 198.0]), np.array([193.0, 182.0, 217.0, 212.0])
            h.add(f, px_h, ground_backproject(CLEVR_CAMERA, px_h[None], np.array([Z]), HW)[0], _probs("blue", "sphere"), 600.0)
            feet[(f, float(px_h[0]), float(px_h[1]))] = box_h
            pixels, areas, boxes = [px_t, px_h], [area_t, 600.0], [box_t, box_h]
        pixel = np.stack(pixels)
        probs = [_probs("red", "cylinder"), _probs("blue", "sphere")][: len(pixels)]
        dets.append(FrameDetections(f, pixel, ground_backproject(CLEVR_CAMERA, pixel, np.full(len(pixel), Z), HW),
                                    {a: np.stack([p[a] for p in probs]) for a in VIDEO_ATTRIBUTES},
                                    np.array(areas, dtype=np.int64), foot=np.stack(boxes)))
    return [t, h], feet, dets


def test_mask_boxes_are_pixel_edges_of_each_mask():
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:3, 4:7] = True
    assert mask_boxes(masks).tolist() == [[4.0, 1.0, 7.0, 3.0], [0.0, 0.0, 0.0, 0.0]]


def test_footprints_round_trip_through_the_cache_and_an_old_cache_reads_without_them(tmp_path):
    _, _, dets = _scene()
    save_detections(tmp_path / "v.npz", dets, HW)
    back, _ = load_detections(tmp_path / "v.npz")
    assert all(np.array_equal(a.foot, b.foot) for a, b in zip(dets, back, strict=True))
    old = [FrameDetections(d.frame, d.pixel, d.location, d.probs, d.area) for d in dets]  # written before footprints
    save_detections(tmp_path / "old.npz", old, HW)
    assert all(d.foot is None for d in load_detections(tmp_path / "old.npz")[0])
    assert back[3].keep(np.array([False, True])).foot.tolist() == [[193.0, 182.0, 217.0, 212.0]]


def test_split_merged_puts_the_hidden_object_at_the_edge_the_mask_swelled_to_and_the_track_at_its_own_edges():
    tracks, feet, _ = _scene()
    out = split_merged_masks(tracks, feet, HW, VideoPerceptionConfig(split_merged=1.3))
    t, h = out
    assert t.frames == list(range(10)) and h.frames == list(range(10))  # H followed through the swollen frames
    for k in range(6, 10):
        assert t.pixels[k].tolist() == [240.0, 200.0]  # the kept right, top and bottom edges hold T in place
        assert h.pixels[k].tolist() == [207.0, 198.0]  # left edge 195 + H's centre-to-left offset 12; v held
        assert np.isnan(h.areas[k])
    assert h.attributes() == {"color": "blue", "material": "rubber", "shape": "sphere"}
    # without a hidden track nothing is split: the swollen mask is left as detected
    alone = split_merged_masks(tracks[:1], feet, HW, VideoPerceptionConfig(split_merged=1.3))[0]
    assert [p.tolist() for p in alone.pixels] == [p.tolist() for p in tracks[0].pixels]
    # a ratio the swelling does not reach changes nothing
    high = split_merged_masks(tracks, feet, HW, VideoPerceptionConfig(split_merged=1.7))
    assert high[1].frames == list(range(6))


def test_split_hidden_0_moves_the_track_back_to_its_own_edges_and_places_no_hidden_object():
    tracks, feet, _ = _scene()
    t, h = split_merged_masks(tracks, feet, HW, VideoPerceptionConfig(split_merged=1.3, split_hidden=0))
    assert [p.tolist() for p in t.pixels[6:]] == [[240.0, 200.0]] * 4
    assert h.frames == list(range(6))
    with pytest.raises(ConfigError, match="split_hidden"):
        perception_config(["split_hidden=2"])


def test_split_merged_reaches_the_annotation_and_needs_footprints():
    tracks, _, dets = _scene()
    off = tracks_to_annotation(tracks, list(range(10)), HW, HEIGHTS, VideoPerceptionConfig(coast_frames=0), detections=dets)
    on = tracks_to_annotation(tracks, list(range(10)), HW, HEIGHTS, VideoPerceptionConfig(coast_frames=0, split_merged=1.3),
                              detections=dets)
    x_off = [o.location[0] for o in off.motion_trajectory[8].objects if o.object_id == 0]
    x_on = [o.location[0] for o in on.motion_trajectory[8].objects if o.object_id == 0]
    assert x_off != x_on  # the red cylinder is no longer pulled toward the hidden sphere
    plain = [FrameDetections(d.frame, d.pixel, d.location, d.probs, d.area) for d in dets]
    with pytest.raises(ConfigError, match="footprints"):
        tracks_to_annotation(tracks, list(range(10)), HW, HEIGHTS, VideoPerceptionConfig(split_merged=1.3), detections=plain)


def test_split_merged_is_off_by_default_settable_and_refuses_ratios_up_to_1():
    assert VideoPerceptionConfig().split_merged == 0.0
    assert perception_config(["split_merged=1.3"]).split_merged == 1.3
    for bad in ("split_merged=1", "split_merged=0.5", "split_merged=-2"):
        with pytest.raises(ConfigError, match="split_merged"):
            perception_config([bad])


@pytest.mark.parametrize("bad", [float("inf"), "1.3", None])
def test_split_merged_refuses_an_infinite_ratio_and_a_value_that_is_no_number_by_name(bad):
    """An infinite ratio was taken and split nothing; text or None was a TypeError naming nothing."""
    says = "0 .off. or an area ratio > 1" if bad == float("inf") else "a number"  # text, None: physics.config_types
    with pytest.raises(ConfigError, match=f"VideoPerceptionConfig.split_merged must be {says}, got {bad!r}"):
        VideoPerceptionConfig(split_merged=bad)


def test_split_hidden_off_without_split_merged_is_refused_as_a_setting_that_does_nothing():
    """``split_hidden=0`` alone was taken and changed nothing (probe ev_sh_alone: the run went through)."""
    with pytest.raises(ConfigError, match="split_hidden 0 needs split_merged > 1"):
        perception_config(["split_hidden=0"])
    assert perception_config(["split_merged=1.3", "split_hidden=0"]).split_hidden == 0
