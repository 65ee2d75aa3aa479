"""The derenderer's test-time overlap rule: detections that would overlap on the ground are dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import perception.derender.derenderer as derenderer_module
from perception.derender.attributes import AttributeConfig, AttributeNet
from perception.derender.derenderer import (
    BLENDER_CHECKPOINT,
    BlenderDerenderer,
    BlenderDerendererPlain,
    BlenderDerendererRecall,
    BlenderDerendererStrict,
    Derenderer,
)
from perception.derender.overlap import keep_apart
from perception.derender.proposals import ProposalConfig, ProposalNet
from perception.registry import load_perceiver
from physics.errors import ConfigError
from physics.io import torch_load
from physics.worlds.clevr_properties import ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_keep_apart_keeps_the_larger_of_two_overlapping_detections_and_every_separate_one():
    xy = [(0.0, 0.0), (0.9, 0.0), (3.0, 0.0), (3.0, 1.1)]
    radii = [0.7, 0.35, 0.35, 0.35]
    # 0 and 1 overlap (gap 0.9 - 1.05 < 0): the larger mask (1) wins; 2 and 3 are 0.4 apart: both stay
    assert keep_apart(xy, radii, [500, 900, 100, 100], min_gap=0.0) == [1, 2, 3]
    assert keep_apart(xy, radii, [900, 500, 100, 100], min_gap=0.0) == [0, 2, 3]
    # a wider gap asked for: 2 and 3 (gap 0.4) now clash too, the earlier one wins the tie
    assert keep_apart(xy, radii, [900, 500, 100, 100], min_gap=0.5) == [0, 2]
    assert keep_apart([], [], []) == []


def test_keep_apart_spares_detections_scoring_at_least_keep_score_and_they_still_suppress_later_ones():
    xy = [(0.0, 0.0), (0.9, 0.0), (1.5, 0.0)]
    radii = [0.7, 0.35, 0.35]
    areas = [900, 500, 100]
    # without keep_score: 1 overlaps 0 and goes; 2 (gap 1.5 - 1.05 = 0.45 from 0) stays
    assert keep_apart(xy, radii, areas, scores=[0.9, 0.85, 0.4]) == [0, 2]
    # 1 scores 0.85 >= 0.7: kept, and 2 overlaps it (gap 0.6 - 0.7 < 0) with a weak peak: dropped
    assert keep_apart(xy, radii, areas, scores=[0.9, 0.85, 0.4], keep_score=0.7) == [0, 1]
    # a strong 2 is spared too; a weak 1 is dropped as before
    assert keep_apart(xy, radii, areas, scores=[0.9, 0.6, 0.8], keep_score=0.7) == [0, 2]
    with pytest.raises(ConfigError, match="needs the detections' scores"):
        keep_apart(xy, radii, areas, keep_score=0.7)
    with pytest.raises(ConfigError, match="2 scores for 3 detections"):
        keep_apart(xy, radii, areas, scores=[0.9, 0.8], keep_score=0.7)
    with pytest.raises(ConfigError, match="keep_score"):
        keep_apart(xy, radii, areas, scores=[0.9, 0.8, 0.1], keep_score=float("nan"))


@pytest.mark.parametrize("args, message", [
    (([(0.0, 0.0)], [0.7, 0.35], [1]), "1 centres, 2 radii and 1 areas"),
    (([(0.0, 0.0)], [0.7], [1], float("nan")), "finite"),
])
def test_keep_apart_refuses_mismatched_inputs_and_a_non_finite_gap(args, message):
    xy, r, a, *gap = args
    with pytest.raises(ConfigError, match=message):
        keep_apart(xy, r, a, min_gap=gap[0] if gap else 0.0)


def _derenderer(min_gap, keep_score=None):
    cam = torch_load(BLENDER_CHECKPOINT)["camera"]
    torch.manual_seed(0)
    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8))
    anet = AttributeNet(AttributeConfig(crop_size=16, width=8))
    return Derenderer(pnet, anet, cam["projection"].numpy(), tuple(cam["image_size"]), cam["heights"], min_gap=min_gap,
                      keep_score=keep_score)


def _fake_reading(monkeypatch, model, pixels, sizes, areas, scores=None):
    """Masks of the given areas (centre scores ``scores``, default 0.5) whose objects read at ``pixels``."""
    h, w = model.image_size
    masks = torch.zeros(len(pixels), h, w, dtype=torch.bool)
    for k, area in enumerate(areas):
        masks[k].view(-1)[:area] = True
    got = torch.tensor(scores if scores is not None else [0.5] * len(pixels))
    monkeypatch.setattr(model, "detect", lambda image: (masks, got))

    def read(net, image, got_masks):
        probs = {a: torch.zeros(len(pixels), len(v)) for a, v in ATTRIBUTES.items()}
        for k, size in enumerate(sizes):
            for a, value in (("shape", "cube"), ("color", "gray"), ("material", "rubber"), ("size", size)):
                probs[a][k, ATTRIBUTES[a].index(value)] = 1.0
        boxes = torch.tensor([[u / w, v / h, 0.0, 0.0] for u, v in pixels])
        return probs, torch.zeros(len(pixels), 2), boxes

    monkeypatch.setattr(derenderer_module, "read_attributes", read)
    return np.zeros((h, w, 3), dtype=np.uint8)


def test_a_small_detection_on_a_large_objects_ground_is_dropped_only_with_min_gap(monkeypatch):
    # a large object, a small "object" 12 px beside it (a floor shadow) and one far away
    pixels, sizes, areas = [(240.0, 160.0), (228.0, 166.0), (90.0, 250.0)], ["large", "small", "small"], [2000, 90, 400]
    plain = _derenderer(None)
    image = _fake_reading(monkeypatch, plain, pixels, sizes, areas)
    assert len(plain(image).objects) == 3
    nms = _derenderer(0.0)
    image = _fake_reading(monkeypatch, nms, pixels, sizes, areas)
    scene = nms(image)
    assert [o.size for o in scene.objects] == ["large", "small"]
    assert [round(o.pixel_coords[0]) for o in scene.objects] == [240, 90]
    assert len(scene.relationships["left"]) == 2  # relations are those of the kept objects


def test_derender_blender_has_the_overlap_rule_on_and_its_plain_twin_keeps_every_detection():
    nms, plain = load_perceiver("derender-blender"), load_perceiver("derender-blender-plain")
    assert type(nms) is BlenderDerenderer and nms.min_gap == 0.0
    assert isinstance(plain, BlenderDerendererPlain) and plain.min_gap is None
    assert load_perceiver("derender").min_gap is None  # the pybullet default keeps every detection
    assert nms.metadata == plain.metadata
    for a, b in zip(plain.attribute_net.state_dict().values(), nms.attribute_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="min_gap"):
        _derenderer(float("inf"))


def test_keep_score_spares_a_confident_detection_the_overlap_rule_would_drop(monkeypatch):
    # the small detection's ground footprint overlaps the large one's (as in the shadow test above)
    pixels, sizes, areas = [(240.0, 160.0), (228.0, 166.0)], ["large", "small"], [2000, 90]
    for keep_score, scores, kept in ((None, [0.9, 0.85], 1), (0.7, [0.9, 0.85], 2), (0.7, [0.9, 0.5], 1)):
        model = _derenderer(0.0, keep_score)
        image = _fake_reading(monkeypatch, model, pixels, sizes, areas, scores)
        assert len(model(image).objects) == kept, (keep_score, scores)
    with pytest.raises(ConfigError, match="keep_score"):
        _derenderer(0.0, float("inf"))


def test_derender_blender_reads_with_keep_score_and_vote_centres_and_strict_keeps_the_reading_before():
    shipped, recall = load_perceiver("derender-blender"), load_perceiver("derender-blender-recall")
    for model in (shipped, recall):
        assert model.min_gap == 0.0 and model.keep_score == 0.7 and model.proposal_net.config.vote_min == 80
    assert isinstance(recall, BlenderDerendererRecall)
    strict = load_perceiver("derender-blender-strict")
    assert isinstance(strict, BlenderDerendererStrict) and strict.min_gap == 0.0
    # the pybullet default and the measured options keep their detection: no spared detections, no vote centres
    for name in ("derender", "derender-blender-strict", "derender-blender-plain", "derender-blender-tta"):
        model = load_perceiver(name)
        assert model.keep_score is None and model.proposal_net.config.vote_min == 0, name
    for a, b in zip(shipped.proposal_net.state_dict().values(), strict.proposal_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_perceivers_vote_centres_leave_the_network_it_was_given_untouched():
    strict = load_perceiver("derender-blender-strict")
    net = strict.proposal_net
    recall = BlenderDerendererRecall(
        net, strict.attribute_net, strict.projection, strict.image_size, strict.heights
    )
    assert recall.proposal_net.config.vote_min == 80 and net.config.vote_min == 0  # the caller's network keeps its own
    for a, b in zip(recall.proposal_net.parameters(), net.parameters(), strict=True):
        assert a is b
