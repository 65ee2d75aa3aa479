"""The interpretability subject: instance maps of the crops agree with the renderer's masks; the net is frozen."""

from __future__ import annotations

import pytest
import torch

from perception.datasets.object_crops import render_object_crops
from perception.derender.attributes import AttributeConfig
from perception.interpret.subject import (
    QUICK_SUBJECT,
    concept_mask,
    object_map,
    other_mask,
    own_mask,
    train_subject,
)
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES
from physics.worlds.clevr_world import ClevrWorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def crops():
    return render_object_crops(range(2), ClevrWorldConfig(width=240, height=160, min_pixels=60),
                               AttributeConfig(crop_size=32, margin=0.5), instances=True)


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
