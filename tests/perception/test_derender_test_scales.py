"""Test-time crop scales of the derenderer's attribute network (``--test-scales``)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.cli import main
from perception.derender import DEFAULT_CHECKPOINT
from perception.derender.attributes import (
    AttributeConfig,
    AttributeNet,
    crop_objects,
    read_attributes,
    recrop,
)
from perception.derender.derenderer import Derenderer, load_derenderer, save_derenderer
from perception.derender.proposals import ProposalConfig, ProposalNet
from perception.derender.training import DerenderTrainConfig
from physics.errors import ConfigError
from physics.io import torch_load

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one torch thread


def _image_and_masks():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 40, 60, generator=g)
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 10:20, 30:42] = True
    masks[1, 25:38, 5:15] = True
    return image, masks


def _net(scales=()):
    torch.manual_seed(0)
    return AttributeNet(AttributeConfig(crop_size=16, width=8, test_scales=scales)).eval()


def test_recrop_at_scale_one_is_the_plain_crop_and_a_larger_scale_shrinks_the_mask():
    image, masks = _image_and_masks()
    cfg = AttributeConfig(crop_size=16)
    crops, boxes = crop_objects(image, masks, cfg)
    torch.testing.assert_close(recrop(image, masks, boxes, 1.0, 16), crops)
    wider = recrop(image, masks, boxes, 1.25, 16)
    # the same mask seen from a box 25% wider covers less of the crop
    assert (wider[:, 3].sum((1, 2)) < crops[:, 3].sum((1, 2))).all()
    assert recrop(image, masks[:0], boxes[:0], 1.1, 16).shape == (0, 4, 16, 16)


def test_read_attributes_averages_the_probabilities_of_each_scale_and_keeps_the_plain_centre():
    image, masks = _image_and_masks()
    plain = _net()
    crops, boxes = crop_objects(image, masks, plain.config)
    with torch.no_grad():
        logits, centre = plain(crops, boxes)
    probs, got_centre, got_boxes = read_attributes(plain, image, masks)
    for a in logits:
        torch.testing.assert_close(probs[a], torch.softmax(logits[a], 1))
    torch.testing.assert_close(got_centre, centre)
    torch.testing.assert_close(got_boxes, boxes)

    scaled = _net((0.9, 1.1))
    scaled.load_state_dict(plain.state_dict())
    probs, got_centre, _ = read_attributes(scaled, image, masks)
    with torch.no_grad():
        views = [plain(crops, boxes)[0]] + [
            plain(recrop(image, masks, boxes, s, 16), boxes * torch.tensor([1, 1, s, s]))[0] for s in (0.9, 1.1)
        ]
    for a in logits:
        expected = sum(torch.softmax(v[a], 1) for v in views) / 3
        torch.testing.assert_close(probs[a], expected)
        torch.testing.assert_close(probs[a].sum(1), torch.ones(2))
        assert not torch.allclose(probs[a], torch.softmax(logits[a], 1))
    torch.testing.assert_close(got_centre, centre)


@pytest.mark.parametrize("scales", [(float("nan"),), (0.1,), (3.0,), (True,), ("1.1",)])
def test_attribute_config_refuses_bad_test_scales(scales):
    with pytest.raises(ConfigError, match="test_scales"):
        AttributeConfig(test_scales=scales)


def test_train_flag_parses_into_the_attribute_config_and_bad_values_are_one_line_errors(capsys):
    cfg = DerenderTrainConfig(data="d", test_scales="0.92, 1.08")
    assert cfg.attribute_config.test_scales == (0.92, 1.08)
    assert DerenderTrainConfig(data="d").attribute_config.test_scales == ()
    for bad, message in [("nan", "must lie in"), ("-1", "must lie in"), ("x", "is not a number"),
                         ("3", "must lie in"), ("1.1,,0.9", "is not a number")]:
        with pytest.raises(ConfigError, match=message):
            DerenderTrainConfig(data="d", test_scales=bad)
        assert main(["train", "derender", "--data", "d", "--test-scales", bad, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "--test-scales" in err and len(err.strip().splitlines()) == 1


def test_test_scales_travel_with_the_checkpoint(tmp_path):
    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8)).eval()
    plain, scaled = _net(), _net((0.92, 1.08))
    scaled.load_state_dict(plain.state_dict())
    projection = torch_load(DEFAULT_CHECKPOINT)["camera"]["projection"].numpy()
    save_derenderer(tmp_path / "plain.pt", pnet, plain, projection, (40, 60))
    save_derenderer(tmp_path / "scaled.pt", pnet, scaled, projection, (40, 60))
    loaded = load_derenderer(tmp_path / "scaled.pt")
    assert loaded.attribute_net.config.test_scales == (0.92, 1.08)
    assert load_derenderer(tmp_path / "plain.pt").attribute_net.config.test_scales == ()
    assert isinstance(loaded, Derenderer)


def test_derenderer_test_scales_replace_the_checkpoints_and_derender_blender_tta_turns_them_on(tmp_path):
    from perception.derender.derenderer import BlenderDerenderer, BlenderDerendererTTA
    from perception.registry import load_perceiver

    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8)).eval()
    projection = torch_load(DEFAULT_CHECKPOINT)["camera"]["projection"].numpy()
    save_derenderer(tmp_path / "plain.pt", pnet, _net(), projection, (40, 60))
    # the class setting replaces the checkpoint's (plain) scales; the keyword replaces the class's
    assert BlenderDerendererTTA.from_checkpoint(tmp_path / "plain.pt").attribute_net.config.test_scales == (0.92, 1.08)
    assert BlenderDerenderer.from_checkpoint(tmp_path / "plain.pt").attribute_net.config.test_scales == ()
    d = Derenderer(pnet, _net((0.9, 1.1)), projection, (40, 60), test_scales=(0.95,))
    assert d.attribute_net.config.test_scales == (0.95,)
    assert Derenderer(pnet, _net((0.9, 1.1)), projection, (40, 60)).attribute_net.config.test_scales == (0.9, 1.1)
    with pytest.raises(ConfigError, match="test_scales"):
        Derenderer(pnet, _net(), projection, (40, 60), test_scales=(3.0,))
    # the registered perceiver: the shipped Blender weights and overlap rule, read with three crops
    tta, shipped = load_perceiver("derender-blender-tta"), load_perceiver("derender-blender")
    assert type(tta) is BlenderDerendererTTA and tta.min_gap == shipped.min_gap == 0.0
    assert tta.attribute_net.config.test_scales == (0.92, 1.08) and shipped.attribute_net.config.test_scales == ()
    for a, b in zip(tta.attribute_net.state_dict().values(), shipped.attribute_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
