"""The outline shape reader (``derender-blender-outline``, ``nesy train outline``): silhouettes of proposal masks."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.cli import build_parser, main
from perception.derender.outline import (
    OutlineConfig,
    OutlineNet,
    augment_outlines,
    fuse_shape,
    load_outline,
    outline_crops,
    read_outline,
    save_outline,
)
from perception.derender.outline_training import OutlineTrainConfig, train_outline
from physics.errors import CheckpointError, ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one torch thread


def _masks() -> torch.Tensor:
    masks = torch.zeros(3, 40, 60, dtype=torch.bool)
    masks[0, 10:20, 30:42] = True
    masks[1, 15:30, 42:50] = True  # touches the first (proposal masks never overlap)
    masks[2, 30:38, 2:8] = True
    return masks


def test_outline_crops_hold_the_own_mask_and_the_other_detections_masks():
    masks = _masks()
    crops, boxes = outline_crops(masks, OutlineConfig(crop_size=32, margin=0.0))
    assert crops.shape == (3, 2, 32, 32) and boxes.shape == (3, 4)
    # margin 0: the first mask's box is 12 x 10 px, square side 12, centred at (36, 15)
    torch.testing.assert_close(boxes[0], torch.tensor([36 / 60, 15 / 40, 12 / 60, 12 / 40]))
    assert crops[0, 0].mean() > 0.7  # the object fills most of its own crop
    assert crops[0, 1].sum() > 0 and crops[2, 1].sum() == 0  # its neighbour shows; the lone object has none
    # the other channel is the other masks' union, never the object itself
    assert float((crops[:, 0] * crops[:, 1]).max()) < 0.5
    with pytest.raises(StateError, match="mask 1 is empty"):
        outline_crops(torch.stack([masks[0], torch.zeros_like(masks[0])]))
    assert outline_crops(masks[:0])[0].shape == (0, 2, 64, 64)


@pytest.mark.parametrize("field,value", [("crop_size", 8), ("margin", -0.1), ("width", 0), ("weight", -1.0),
                                         ("weight", float("nan")), ("weight", True)])
def test_bad_outline_config_values_are_refused_by_name(field, value):
    with pytest.raises(ConfigError, match=f"OutlineConfig.{field}"):
        OutlineConfig(**{field: value})


def test_fuse_shape_is_a_renormalised_product_of_experts():
    p_attr = torch.tensor([[0.55, 0.05, 0.40], [0.2, 0.6, 0.2]])
    p_out = torch.tensor([[0.10, 0.10, 0.80], [1 / 3, 1 / 3, 1 / 3]])
    assert torch.equal(fuse_shape(p_attr, p_out, 0.0), p_attr)
    fused = fuse_shape(p_attr, p_out, 1.0)
    torch.testing.assert_close(fused.sum(1), torch.ones(2))
    assert fused[0].argmax() == 2  # a close call goes the outline's way
    torch.testing.assert_close(fused[1], p_attr[1])  # an outline that cannot tell changes nothing
    half = fuse_shape(p_attr, p_out, 0.5)
    assert fused[0, 2] > half[0, 2] > p_attr[0, 2]  # the weight is the outline's say


def test_read_outline_averages_the_mirror_and_a_mirrored_image_reads_the_same():
    masks = _masks()
    torch.manual_seed(0)
    net = OutlineNet(OutlineConfig(crop_size=16, width=4)).eval()
    probs = read_outline(net, masks)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    torch.testing.assert_close(read_outline(net, masks.flip(-1)), probs, atol=1e-5, rtol=0)
    plain = OutlineNet(OutlineConfig(crop_size=16, width=4, test_flip=False)).eval()
    plain.load_state_dict(net.state_dict())
    assert not torch.allclose(read_outline(plain, masks), probs)


def test_augment_outlines_mirrors_and_changes_only_the_own_mask_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    crops = (torch.rand(100, 2, 8, 8, generator=g) > 0.5).float()
    boxes = torch.rand(100, 4, generator=g)
    out, out_boxes = augment_outlines(crops, boxes, torch.Generator().manual_seed(1))
    again = augment_outlines(crops, boxes, torch.Generator().manual_seed(1))
    assert torch.equal(out, again[0]) and torch.equal(out_boxes, again[1])
    flipped = (out_boxes[:, 0] - boxes[:, 0]).abs() > 0
    assert 30 < int(flipped.sum()) < 70
    torch.testing.assert_close(out_boxes[flipped, 0], 1 - boxes[flipped, 0])
    torch.testing.assert_close(out[flipped, 1], crops[flipped, 1].flip(-1))  # the others channel is only mirrored
    assert torch.equal(out[~flipped, 1], crops[~flipped, 1])
    none = augment_outlines(crops, boxes, torch.Generator().manual_seed(1), p_flip=0.0, p_mask=0.0)
    assert torch.equal(none[0], crops) and torch.equal(none[1], boxes)


def test_outline_checkpoint_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    net = OutlineNet(OutlineConfig(crop_size=16, width=4, weight=0.5)).eval()
    save_outline(tmp_path / "o.pt", net, metadata={"command": "nesy train outline --data x"})
    loaded = load_outline(tmp_path / "o.pt")
    assert loaded.config == net.config and loaded.metadata["command"] == "nesy train outline --data x"
    torch.testing.assert_close(read_outline(loaded, _masks()), read_outline(net, _masks()))
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not an outline checkpoint"):
        load_outline(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError):
        load_outline(tmp_path / "missing.pt")


def test_the_outline_network_learns_squares_from_discs_on_the_shared_loop(tmp_path):
    from perception.derender.trainers import train_outline_net

    g = torch.Generator().manual_seed(0)
    n, s = 96, 16
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    crops, labels = torch.zeros(n, 2, s, s), torch.zeros(n, dtype=torch.int64)
    for i in range(n):
        r = 4 + int(torch.randint(0, 3, (1,), generator=g))
        if i % 2:  # a disc: label 2 (sphere), a square: label 0 (cube)
            crops[i, 0] = (((yy - 8) ** 2 + (xx - 8) ** 2) <= r * r).float()
            labels[i] = 2
        else:
            crops[i, 0] = (((yy - 8).abs() <= r) & ((xx - 8).abs() <= r)).float()
    arrays = {"crops": (crops * 255).to(torch.uint8), "boxes": torch.rand(n, 4, generator=g), "shape": labels}
    net, hist = train_outline_net(arrays, OutlineConfig(crop_size=s, width=4), epochs=10, batch_size=16, lr=1e-2,
                                  seed=0, out=tmp_path, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 11)) and lines[-1]["loss"] < lines[0]["loss"]
    with torch.no_grad():
        accuracy = (net.eval()(crops, arrays["boxes"]).argmax(1) == labels).float().mean()
    assert accuracy > 0.9


def test_train_outline_on_generated_scenes_and_derender_blender_outline_reads_with_it(tmp_path):
    from perception.derender.derenderer import (
        BlenderDerenderer,
        BlenderDerendererOutline,
        save_derenderer,
    )
    from perception.derender.proposals import ProposalConfig, ProposalNet
    from perception.registry import PERCEIVERS
    from tests.perception.test_derender_pipeline import _tiny_data, _tiny_derenderer

    data = _tiny_data(tmp_path, n=2, seed=5)
    torch.manual_seed(0)  # an untrained proposal network that proposes everywhere: every true object gets a mask
    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8, peak_threshold=0.0, fg_threshold=0.0,
                                      nms_kernel=3, min_area=1))
    tiny = _tiny_derenderer()
    save_derenderer(tmp_path / "d.pt", pnet, tiny.attribute_net, tiny.projection, (64, 96))
    cfg = OutlineTrainConfig(data=str(data), out=str(tmp_path / "run"), perceiver="derender",
                             checkpoint=str(tmp_path / "d.pt"), epochs=2, batch_size=4, crop_size=16, width=4,
                             match_distance=1000.0, weight=0.5)
    summary = train_outline(cfg, progress=False)
    counts = summary["counts"]
    assert counts["matched"] == counts["true_objects"] == counts["gt_crops"] > 0
    assert summary["n_train_crops"] == 2 * counts["matched"]  # mixed: true masks and proposal masks
    outline = load_outline(tmp_path / "run" / "outline.pt")
    assert outline.config.weight == 0.5 and outline.metadata["command"].startswith("nesy train outline --data ")
    assert build_parser().parse_args(outline.metadata["command"].split()[1:]).weight == 0.5
    # the perceiver: the Blender reading with the outline joined; weight 0 reads exactly as derender-blender
    assert PERCEIVERS.get("derender-blender-outline") is BlenderDerendererOutline
    parts = (tiny.proposal_net, tiny.attribute_net, tiny.projection, (320, 480), tiny.heights)
    rgb = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(1))
    base = BlenderDerenderer(*parts)(rgb)
    off = BlenderDerendererOutline(*parts, outline_net=outline, outline_weight=0.0)(rgb)
    assert [o.shape for o in off.objects] == [o.shape for o in base.objects]
    assert BlenderDerendererOutline(*parts, outline_net=outline).outline_weight == 0.25  # the class's (chosen on dev)
    own = type("OwnWeight", (BlenderDerendererOutline,), {"outline_weight": None})
    assert own(*parts, outline_net=outline).outline_weight == 0.5  # None: the checkpoint's weight
    with pytest.raises(ConfigError, match="outline_weight"):
        BlenderDerendererOutline(*parts, outline_net=outline, outline_weight=-1.0)


def test_bad_train_outline_options_are_refused_with_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="OutlineTrainConfig.masks"):
        OutlineTrainConfig(data="x", masks="all")
    with pytest.raises(ConfigError, match="OutlineConfig.weight"):
        OutlineTrainConfig(data="x", weight=9.0)
    code = main(["train", "outline", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2 and "nowhere" in capsys.readouterr().err


def test_derender_blender_outline_ships_its_network_and_reads_as_derender_blender_otherwise():
    from perception.derender.outline import OUTLINE_CHECKPOINT
    from perception.registry import load_perceiver

    outline, shipped = load_perceiver("derender-blender-outline"), load_perceiver("derender-blender")
    assert outline.outline_weight == 0.25 and load_outline(OUTLINE_CHECKPOINT).config.crop_size == 64
    assert (outline.min_gap, outline.keep_score, outline.proposal_net.config.vote_min) == (
        shipped.min_gap, shipped.keep_score, shipped.proposal_net.config.vote_min)
    assert outline.attribute_net.config.test_flip is True
    for a, b in zip(outline.attribute_net.state_dict().values(), shipped.attribute_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not hasattr(shipped, "outline_net")  # the shipped reading does not read outlines
