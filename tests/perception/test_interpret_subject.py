"""The interpretability subject: instance maps of the crops agree with the renderer's masks; the net is frozen."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.datasets.object_crops import render_object_crops
from perception.interpret.subject import (
    QUICK_SUBJECT,
    concept_mask,
    object_map,
    other_mask,
    own_mask,
    random_windows,
    train_subject,
)
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevr_world import ClevrWorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def wide():
    return render_object_crops(range(2), ClevrWorldConfig(width=240, height=160, min_pixels=60),
                               QUICK_SUBJECT.render_config, instances=True)


@pytest.fixture(scope="module")
def crops(wide):
    return random_windows(wide, QUICK_SUBJECT.crop_size, seed=0)


def test_windows_hold_the_whole_object_and_their_boxes_recrop_the_same_pixels(wide, crops):
    from perception.datasets.clevr_render import generate_scene
    from perception.derender.attributes import crop_grid

    assert crops.crops.shape == (len(wide), 4, 32, 32)
    assert torch.equal(own_mask(crops).sum((1, 2)), own_mask(wide).sum((1, 2)))  # never cut by the window
    assert len(set(map(tuple, crops.boxes[:, :2].tolist()))) == len(crops)
    _, rgb, _, _ = generate_scene(0, ClevrWorldConfig(width=240, height=160, min_pixels=60))
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    n = int((crops.scene == 0).sum())
    again = F.grid_sample(image.expand(n, -1, -1, -1), crop_grid(crops.boxes[:n], 32), align_corners=False)
    assert torch.allclose(again, crops.crops[:n, :3], atol=1e-4)


def test_own_mask_is_the_crop_mask_channel_and_others_are_disjoint(crops):
    own, others = own_mask(crops), other_mask(crops)
    assert crops.instances.shape == (len(crops), 32, 32) and crops.instances.min() >= -1
    assert ((crops.crops[:, 3] > 0.5) == own).float().mean() > 0.98  # nearest vs bilinear sampling at the rim
    assert not (own & others).any()
    assert own.any((1, 2)).all()


def test_concept_masks_partition_the_objects(crops):
    objects = concept_mask(crops, "object")
    union = torch.zeros_like(objects)
    for value in ATTRIBUTES["shape"]:
        m = concept_mask(crops, "shape", value)
        assert not (m & union).any()
        union |= m
    assert torch.equal(union, objects)
    assert torch.equal(objects, object_map(crops) >= 0)
    with pytest.raises(ConfigError):
        concept_mask(crops, "shape", "pyramid")


def test_object_map_refuses_a_subset(crops):
    with pytest.raises(ConfigError):
        object_map(crops.subset(torch.arange(1, len(crops))))


def test_subject_is_trained_frozen_and_cached():
    a = train_subject(QUICK_SUBJECT, 0)
    assert a is train_subject(QUICK_SUBJECT, 0)
    assert not a.net.training and not any(p.requires_grad for p in a.net.parameters())
    assert set(a.accuracy) == set(ATTRIBUTES) and a.probe.instances is not None and a.test.instances is not None
