"""Mirrored attribute crops: ``--attribute-flip`` (training) and ``--test-flip`` (reading)."""

from __future__ import annotations

import pytest
import torch

from perception.derender.attributes import (
    AttributeConfig,
    AttributeNet,
    crop_objects,
    flip_crops,
    mirror_crops,
    read_attributes,
)
from tests.perception.test_derender_test_scales import _image_and_masks

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one torch thread


def test_a_mirrored_crop_is_the_crop_of_the_mirrored_image_and_the_centre_stays_on_the_object():
    image, masks = _image_and_masks()
    cfg = AttributeConfig(crop_size=16)
    crops, boxes = crop_objects(image, masks, cfg)
    centre = torch.tensor([[0.1, -0.05], [-0.2, 0.15]])
    m_crops, m_boxes, m_centre = mirror_crops(crops, boxes, centre)
    f_crops, f_boxes = crop_objects(image.flip(-1), masks.flip(-1), cfg)
    torch.testing.assert_close(m_crops, f_crops, atol=1e-5, rtol=0)
    torch.testing.assert_close(m_boxes, f_boxes)
    # the object's image x, mirrored: W - (cx + dx * side) == (1 - cx) * W + (-dx) * side
    w = 60
    before = boxes[:, 0] * w + centre[:, 0] * boxes[:, 2] * w
    after = m_boxes[:, 0] * w + m_centre[:, 0] * m_boxes[:, 2] * w
    torch.testing.assert_close(after, w - before)
    torch.testing.assert_close(m_centre[:, 1], centre[:, 1])
    assert torch.equal(boxes, crop_objects(image, masks, cfg)[1])  # inputs untouched


def test_flip_crops_mirrors_about_its_share_is_seeded_and_off_at_zero():
    g = torch.Generator().manual_seed(0)
    k = 200
    crops, boxes, centre = torch.rand(k, 4, 8, 8, generator=g), torch.rand(k, 4, generator=g), torch.rand(k, 2, generator=g)
    out, out_boxes, out_centre = flip_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=0.5)
    again = flip_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=0.5)
    assert torch.equal(out, again[0]) and torch.equal(out_boxes, again[1]) and torch.equal(out_centre, again[2])
    flipped = (out_boxes[:, 0] - boxes[:, 0]).abs() > 0
    assert 70 < int(flipped.sum()) < 130
    torch.testing.assert_close(out[flipped], crops[flipped].flip(-1))
    assert torch.equal(out[~flipped], crops[~flipped]) and torch.equal(out_centre[~flipped], centre[~flipped])
    torch.testing.assert_close(out_centre[flipped, 0], -centre[flipped, 0])
    none = flip_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=0.0)
    assert torch.equal(none[0], crops) and torch.equal(none[1], boxes) and torch.equal(none[2], centre)
    all_ = flip_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=1.0)
    assert torch.equal(all_[0], crops.flip(-1))
    assert flip_crops(crops[:0], boxes[:0], centre[:0], torch.Generator(), p=0.5)[0].shape == (0, 4, 8, 8)


@pytest.mark.parametrize("scales", [(), (0.9,)])
def test_test_flip_averages_each_view_with_its_mirror_and_keeps_the_plain_centre(scales):
    image, masks = _image_and_masks()
    torch.manual_seed(0)
    plain = AttributeNet(AttributeConfig(crop_size=16, width=8, test_scales=scales)).eval()
    flip = AttributeNet(AttributeConfig(crop_size=16, width=8, test_scales=scales, test_flip=True)).eval()
    flip.load_state_dict(plain.state_dict())
    p_probs, p_centre, p_boxes = read_attributes(plain, image, masks)
    f_probs, f_centre, f_boxes = read_attributes(flip, image, masks)
    torch.testing.assert_close(f_centre, p_centre)
    torch.testing.assert_close(f_boxes, p_boxes)
    # the mirrored image read the same way: its plain views are this image's mirrored views
    m_probs, _, _ = read_attributes(plain, image.flip(-1), masks.flip(-1))
    for a in p_probs:
        torch.testing.assert_close(f_probs[a], (p_probs[a] + m_probs[a]) / 2, atol=1e-5, rtol=0)
        torch.testing.assert_close(f_probs[a].sum(1), torch.ones(2))
        assert not torch.allclose(f_probs[a], p_probs[a])


def test_derenderer_test_flip_replaces_the_checkpoints_and_derender_blender_flip_turns_it_on(tmp_path):
    from perception.derender import DEFAULT_CHECKPOINT
    from perception.derender.derenderer import (
        BlenderDerenderer,
        BlenderDerendererFlip,
        Derenderer,
        load_derenderer,
        save_derenderer,
    )
    from perception.derender.proposals import ProposalConfig, ProposalNet
    from perception.registry import load_perceiver
    from physics.io import torch_load

    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8)).eval()
    projection = torch_load(DEFAULT_CHECKPOINT)["camera"]["projection"].numpy()
    plain = AttributeNet(AttributeConfig(crop_size=16, width=8)).eval()
    save_derenderer(tmp_path / "plain.pt", pnet, plain, projection, (40, 60))
    flipped = AttributeNet(AttributeConfig(crop_size=16, width=8, test_flip=True)).eval()
    save_derenderer(tmp_path / "flip.pt", pnet, flipped, projection, (40, 60))
    # the checkpoint's setting travels; the class setting replaces it; the keyword replaces the class's
    assert load_derenderer(tmp_path / "flip.pt").attribute_net.config.test_flip is True
    assert Derenderer.from_checkpoint(tmp_path / "flip.pt").attribute_net.config.test_flip is True
    assert Derenderer.from_checkpoint(tmp_path / "plain.pt").attribute_net.config.test_flip is False
    assert BlenderDerendererFlip.from_checkpoint(tmp_path / "plain.pt").attribute_net.config.test_flip is True
    assert BlenderDerenderer.from_checkpoint(tmp_path / "plain.pt").attribute_net.config.test_flip is True  # shipped on
    net = AttributeNet(AttributeConfig(crop_size=16, width=8, test_flip=True)).eval()
    assert Derenderer(pnet, net, projection, (40, 60), test_flip=False).attribute_net.config.test_flip is False
    # the registered perceiver: the shipped Blender weights and reading, with the mirror
    flip, shipped = load_perceiver("derender-blender-flip"), load_perceiver("derender-blender")
    assert type(flip) is BlenderDerendererFlip
    assert (flip.min_gap, flip.keep_score, flip.vote_min) == (shipped.min_gap, shipped.keep_score, shipped.vote_min)
    assert flip.attribute_net.config.test_flip is True
    for a, b in zip(flip.attribute_net.state_dict().values(), shipped.attribute_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_derender_blender_reads_with_the_mirror_and_recall_keeps_the_reading_before():
    from perception.derender.derenderer import BlenderDerendererRecall
    from perception.registry import load_perceiver

    # the mirror is on in derender-blender (its rule: docs/results/derender.md, twenty-second session);
    # derender-blender-recall is the same weights and detection without it
    shipped, recall = load_perceiver("derender-blender"), load_perceiver("derender-blender-recall")
    assert shipped.attribute_net.config.test_flip is True
    assert isinstance(recall, BlenderDerendererRecall) and recall.attribute_net.config.test_flip is False
    assert (recall.min_gap, recall.keep_score, recall.proposal_net.config.vote_min) == (
        shipped.min_gap, shipped.keep_score, shipped.proposal_net.config.vote_min)
    for a, b in zip(recall.attribute_net.state_dict().values(), shipped.attribute_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # the options measured without the mirror keep reading without it, and so does the pybullet default
    for name in ("derender", "derender-blender-plain", "derender-blender-tta", "derender-blender-strict"):
        assert load_perceiver(name).attribute_net.config.test_flip is False, name


def test_a_shared_attribute_network_keeps_its_own_reading_settings():
    from perception.derender import DEFAULT_CHECKPOINT
    from perception.derender.derenderer import Derenderer
    from perception.derender.proposals import ProposalConfig, ProposalNet
    from physics.io import torch_load

    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8)).eval()
    projection = torch_load(DEFAULT_CHECKPOINT)["camera"]["projection"].numpy()
    net = AttributeNet(AttributeConfig(crop_size=16, width=8)).eval()
    flipped = Derenderer(pnet, net, projection, (40, 60), test_flip=True, test_scales=(0.9,))
    plain = Derenderer(pnet, net, projection, (40, 60))
    assert flipped.attribute_net.config.test_flip is True and flipped.attribute_net.config.test_scales == (0.9,)
    assert net.config.test_flip is False and net.config.test_scales == ()  # the caller's network is untouched
    assert plain.attribute_net is net and plain.attribute_net.config.test_flip is False
    assert flipped.attribute_net.heads is net.heads  # the same weights, not a copy
