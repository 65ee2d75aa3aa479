"""Proposal and attribute networks: targets, decoding, crops and their jitter, training that lowers the loss and resumes exactly."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from perception.derender import trainers, training
from perception.derender.attributes import (
    AttributeConfig,
    AttributeNet,
    attribute_loss,
    crop_objects,
    jitter_crops,
)
from perception.derender.occlusion import occlude_crops
from perception.derender.proposals import (
    ProposalConfig,
    ProposalNet,
    ProposalOutput,
    close_weights,
    decode_instances,
    decode_scored,
    proposal_loss,
    proposal_targets,
)
from perception.derender.training import train_attribute_net
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one torch thread

SMALL = ProposalConfig(input_size=(32, 48), width=8, heat_sigma=1.5, nms_kernel=3, min_area=2)


def _toy_masks(batch: int, seed: int) -> torch.Tensor:
    """Instance masks [B, 16, 24] with 1-3 non-touching rectangles each."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch, 16, 24, dtype=torch.long)
    for b in range(batch):
        n = int(torch.randint(1, 4, (1,), generator=g))
        for k in range(n):  # objects in separate columns of width 8
            y = int(torch.randint(0, 10, (1,), generator=g))
            h = int(torch.randint(3, 6, (1,), generator=g))
            masks[b, y : y + h, 8 * k + 1 : 8 * k + 6] = k + 1
    return masks


def _paint(masks: torch.Tensor) -> torch.Tensor:
    """Images [B, 3, 32, 48]: grey ground, instance k painted in a fixed colour."""
    colours = torch.tensor([[0.5, 0.5, 0.5], [0.8, 0.1, 0.1], [0.1, 0.2, 0.9], [0.1, 0.7, 0.1]])
    big = masks.repeat_interleave(2, 1).repeat_interleave(2, 2)
    return colours[big].permute(0, 3, 1, 2).contiguous()


def test_targets_put_heat_peak_and_offsets_on_the_mask_centroid():
    masks = torch.zeros(1, 9, 9, dtype=torch.long)
    masks[0, 2:5, 3:8] = 1  # centroid (row 3, col 5)
    t = proposal_targets(masks, SMALL)
    assert t["heatmap"][0, 0].argmax().item() == 3 * 9 + 5
    assert t["heatmap"][0, 0, 3, 5].item() == pytest.approx(1.0)
    # every foreground pixel's offset points at the centroid, background has none
    assert t["offsets"][0, 0, 2, 3].item() == pytest.approx(1.0)
    assert t["offsets"][0, 1, 2, 3].item() == pytest.approx(2.0)
    assert t["offsets"][0, :, 0, 0].abs().sum().item() == 0.0
    assert t["foreground"].sum().item() == 15


def test_instance_weights_average_each_image_over_its_objects():
    masks = torch.zeros(2, 9, 9, dtype=torch.long)
    masks[0, 0:6, 0:6] = 1  # 36 pixels
    masks[0, 7:9, 7:9] = 2  # 4 pixels
    w = proposal_targets(masks, SMALL)["instance_weight"]
    assert w[0].sum().item() == pytest.approx(1.0)  # one per image with objects ...
    assert w[1].sum().item() == 0.0  # ... none in an empty one
    assert w[0, 0, 0, 0].item() == pytest.approx(1 / (2 * 36))
    assert w[0, 0, 8, 8].item() == pytest.approx(1 / (2 * 4))


def test_instance_balanced_offset_loss_weighs_a_small_object_like_a_large_one():
    masks = torch.zeros(1, 9, 9, dtype=torch.long)
    masks[0, 0:6, 0:6] = 1  # large object, 36 pixels
    masks[0, 7:9, 7:9] = 2  # small object, 4 pixels
    t = proposal_targets(masks, SMALL)
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731

    def offset_loss(wrong: int, balance: float) -> float:
        offsets = t["offsets"].clone()
        offsets[0, 0][masks[0] == wrong] += 1.0  # every pixel of one object off by one row
        out = ProposalOutput(logit(t["foreground"]), logit(t["heatmap"]), offsets)
        return proposal_loss(out, t, instance_balance=balance)["offsets"].item()

    # per pixel (the default), the small object's error counts 4/36 of the large one's
    assert offset_loss(2, 0.0) == pytest.approx(offset_loss(1, 0.0) * 4 / 36)
    # averaged per instance, both count the same: half of a one-pixel error, times the 0.1 weight
    assert offset_loss(2, 1.0) == pytest.approx(offset_loss(1, 1.0)) == pytest.approx(0.05)
    # the default is the plain per-pixel loss
    out = ProposalOutput(logit(t["foreground"]), logit(t["heatmap"]), t["offsets"] + 0.5)
    assert proposal_loss(out, t)["loss"].item() == proposal_loss(out, t, instance_balance=0.0)["loss"].item()
    with pytest.raises(ConfigError, match="instance_balance"):
        proposal_loss(out, t, instance_balance=1.5)
    with pytest.raises(ConfigError, match="offset_balance"):
        training.DerenderTrainConfig(data="d", offset_balance=-0.1)


def _close_pair_and_loner() -> torch.Tensor:
    """Masks [1, 12, 16]: objects 1 and 2 side by side (touching), object 3 on its own."""
    masks = torch.zeros(1, 12, 16, dtype=torch.long)
    masks[0, 1:5, 1:5] = 1
    masks[0, 1:5, 5:8] = 2  # shares an edge with object 1
    masks[0, 8:11, 11:15] = 3  # two pixels or more from everything
    return masks


def test_close_weights_mark_only_objects_touching_a_neighbour():
    masks = _close_pair_and_loner()
    heat_w, off_w = close_weights(masks, SMALL, 3.0)
    assert off_w[0, 0][masks[0] == 1].eq(3.0).all() and off_w[0, 0][masks[0] == 2].eq(3.0).all()
    assert off_w[0, 0][masks[0] == 3].eq(1.0).all() and off_w[0, 0][masks[0] == 0].eq(1.0).all()
    assert heat_w[0, 0, 2, 2].item() == 3.0 and heat_w[0, 0, 2, 6].item() == 3.0  # at the pair's centres
    assert heat_w[0, 0, 9, 12].item() == 1.0  # the loner's centre keeps the plain weight
    # off by default: the targets are exactly the ones before the option
    plain = proposal_targets(masks, SMALL)
    assert "heat_weight" not in plain and "offset_weight" not in plain
    weighted = proposal_targets(masks, SMALL, close_weight=3.0)
    assert weighted["offset_weight"].equal(off_w) and weighted["heatmap"].equal(plain["heatmap"])
    for bad in (0.5, float("nan"), float("inf"), True):
        with pytest.raises(ConfigError, match="close_weight"):
            proposal_targets(masks, SMALL, close_weight=bad)
    with pytest.raises(ConfigError, match="close_weight"):
        training.DerenderTrainConfig(data="d", close_weight=0.9)


def test_close_weight_makes_errors_on_touching_objects_cost_more():
    masks = _close_pair_and_loner()
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731

    def parts(t: dict, wrong: int) -> dict:
        offsets = t["offsets"].clone()
        offsets[0, 0][masks[0] == wrong] += 1.0  # one object's offsets off by one row ...
        heat = t["heatmap"].clone()
        heat[0, 0][masks[0] == wrong] = 0.0  # ... and no heat on it
        out = ProposalOutput(logit(t["foreground"]), logit(heat), offsets)
        return {k: v.item() for k, v in proposal_loss(out, t, instance_balance=0.5).items()}

    plain, weighted = proposal_targets(masks, SMALL), proposal_targets(masks, SMALL, close_weight=4.0)
    # the same mistake costs more on a touching object than on the loner once weighted ...
    close, loner = parts(weighted, 2), parts(weighted, 3)
    assert close["offsets"] > loner["offsets"] and close["heatmap"] > loner["heatmap"]
    # ... and against the plain loss the loner's mistake costs less, the touching one's more
    assert loner["offsets"] < parts(plain, 3)["offsets"] and close["offsets"] > parts(plain, 2)["offsets"]
    assert loner["heatmap"] < parts(plain, 3)["heatmap"] and close["heatmap"] > parts(plain, 2)["heatmap"]
    # the shared (torchrun) form gives the same loss when the shares are the whole batch
    out = ProposalOutput(logit(weighted["foreground"]), logit(weighted["heatmap"] * 0.5), weighted["offsets"] + 0.3)
    whole = proposal_loss(out, weighted, instance_balance=0.5)
    shared = proposal_loss(out, weighted, instance_balance=0.5, sum_over=lambda x: x)
    for k in whole:
        assert shared[k].item() == pytest.approx(whole[k].item(), rel=1e-5)


def test_decoding_perfect_maps_recovers_every_instance():
    masks = _toy_masks(6, seed=1)
    t = proposal_targets(masks, SMALL)
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731
    labels = decode_instances(ProposalOutput(logit(t["foreground"]), logit(t["heatmap"]), t["offsets"]), SMALL)
    for mask, label in zip(masks, labels, strict=True):
        n = int(mask.max())
        assert int(label.max()) == n
        # the decoded instances are the true ones up to renumbering
        for k in range(1, n + 1):
            found = label[mask == k].unique()
            assert len(found) == 1 and found.item() > 0
            assert torch.equal(label == found.item(), mask == k)


def test_vote_centres_find_an_object_without_a_heat_peak_whose_pixels_vote_for_their_own_centre():
    masks = torch.zeros(1, 24, 24, dtype=torch.long)
    masks[0, 2:11, 2:11] = 1  # 81 pixels, centroid (6, 6): one peak
    masks[0, 14:22, 12:22] = 2  # 80 pixels, centroid (17.5, 16.5)
    t = proposal_targets(masks, SMALL)
    heat = proposal_targets((masks == 1).long(), SMALL)["heatmap"].clamp(min=0.05)  # only the first one's blob
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731
    out = ProposalOutput(logit(t["foreground"]), logit(heat), t["offsets"])
    # the plain decoder gives every pixel to the one peak
    (label, scores), = decode_scored(out, SMALL)
    assert int(label.max()) == 1 and len(scores) == 1 and scores[0].item() == pytest.approx(1.0, abs=1e-3)
    assert torch.equal(decode_instances(out, SMALL)[0], label)
    # 80 votes land on (17.5, 16.5): a 3 x 3 window there holds all of them, 14-17 px from the peak
    for vote_min, found in ((80, 2), (81, 1)):
        cfg = dataclasses.replace(SMALL, vote_min=vote_min)
        (label, scores), = decode_scored(out, cfg)
        assert int(label.max()) == found and len(scores) == found, vote_min
    cfg = dataclasses.replace(SMALL, vote_min=80)
    (label, scores), = decode_scored(out, cfg)
    assert torch.equal(label == 2, masks[0] == 2) and torch.equal(label == 1, masks[0] == 1)
    assert scores[1].item() < 0.1  # a vote centre's score is the (low) heat there
    # too close to the peak: vote_far 20 px (the pile is 14-17 px from it) leaves the second object to it
    (label, _), = decode_scored(out, dataclasses.replace(cfg, vote_far=20.0))
    assert int(label.max()) == 1
    for bad in ({"vote_min": -1}, {"vote_min": 1.5}, {"vote_far": 0.0}, {"vote_far": float("inf")}):
        with pytest.raises(ConfigError, match="vote_"):
            dataclasses.replace(SMALL, **bad)


def test_proposal_training_lowers_the_loss():
    torch.manual_seed(0)
    masks = _toy_masks(8, seed=2)
    images, targets = _paint(masks), proposal_targets(masks, SMALL)
    net = ProposalNet(SMALL)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = proposal_loss(net(images), targets)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_proposal_net_output_shapes_and_bad_input():
    net = ProposalNet(SMALL).eval()
    out = net(torch.rand(2, 3, 32, 48))
    assert out.foreground.shape == (2, 1, 16, 24)
    assert out.offsets.shape == (2, 2, 16, 24)
    with pytest.raises(StateError, match=r"\[B, 3, H, W\]"):
        net(torch.rand(3, 32, 48))
    with pytest.raises(ConfigError, match="multiples of 8"):
        ProposalConfig(input_size=(30, 48))


def test_crop_boxes_follow_the_mask():
    image = torch.zeros(3, 40, 60)
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 10:20, 30:40] = True
    masks[1, 0:4, 0:4] = True  # at the corner: the crop runs off the image
    cfg = AttributeConfig(crop_size=16, margin=0.25, min_side=6.0)
    crops, boxes = crop_objects(image, masks, cfg)
    assert crops.shape == (2, 4, 16, 16)
    assert boxes[0].tolist() == pytest.approx([35 / 60, 15 / 40, 15 / 60, 15 / 40])
    # the mask channel covers the middle of its crop (side 15 px, mask 10 px)
    assert crops[0, 3, 8, 8].item() == pytest.approx(1.0)
    assert crops[0, 3, 0, 0].item() == pytest.approx(0.0)
    assert boxes[1, 2].item() * 60 == pytest.approx(6.0)  # min_side
    with pytest.raises(StateError, match="empty"):
        crop_objects(image, torch.zeros(1, 40, 60), cfg)


def test_jittered_crops_keep_the_centre_target_on_the_object():
    k, size = 64, 48
    g = torch.Generator().manual_seed(0)
    centre = torch.rand(k, 2, generator=g) * 0.4 - 0.2  # crop units, (x, y)
    pix = (torch.arange(size) + 0.5) / size - 0.5  # pixel centres in crop units
    d2 = (pix.view(1, 1, size) - centre[:, 0].view(k, 1, 1)) ** 2 + (pix.view(1, size, 1) - centre[:, 1].view(k, 1, 1)) ** 2
    blob = torch.exp(-d2 / (2 * 0.04**2))
    crops = torch.stack([blob, blob, blob, (d2 < 0.15**2).float()], 1)
    boxes = torch.rand(k, 4, generator=g) * 0.2 + torch.tensor([0.4, 0.4, 0.1, 0.15])
    out, new_boxes, new_centre = jitter_crops(crops, boxes, centre, torch.Generator().manual_seed(1),
                                              p_geometry=0.75, p_mask=0.3)
    assert out.shape == crops.shape and new_boxes.shape == boxes.shape and new_centre.shape == centre.shape
    moved = (new_centre - centre).abs().sum(1) > 1e-6
    assert 30 < int(moved.sum()) < k  # about 3 in 4 crops re-cropped, the rest unchanged
    assert torch.equal(out[~moved, :3], crops[~moved, :3]) and torch.equal(new_boxes[~moved], boxes[~moved])
    # the blob's centroid in the new crop is where the new centre target says
    w = out[:, 0] ** 4
    found = torch.stack([(w * pix.view(1, 1, size)).sum((1, 2)), (w * pix.view(1, size, 1)).sum((1, 2))], 1)
    found = found / w.sum((1, 2)).unsqueeze(1)
    assert torch.allclose(found, new_centre, atol=0.01)
    # the object stays where it is in the image: box centre + centre * side is unchanged
    for axis in (0, 1):
        before = boxes[:, axis] + centre[:, axis] * boxes[:, 2 + axis]
        after = new_boxes[:, axis] + new_centre[:, axis] * new_boxes[:, 2 + axis]
        assert torch.allclose(before, after, atol=1e-6)
    # masks grow or shrink by one pixel in about 30% of crops each: compare with the re-cropped mask alone
    scale = new_boxes[:, 2] / boxes[:, 2]
    shift = centre - new_centre * scale.unsqueeze(1)
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = 2 * shift
    grid = torch.nn.functional.affine_grid(theta, [k, 1, size, size], align_corners=False)
    recropped = torch.nn.functional.grid_sample(crops[:, 3:4], grid, align_corners=False)[:, 0]
    area = out[:, 3].sum((1, 2)) - recropped.sum((1, 2))
    assert int((area > 1).sum()) > 5 and int((area < -1).sum()) > 5 and int((area.abs() < 1e-4).sum()) > 10


def _disc_crops(k: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K crops of one bright disc each (radius 0.15 crop sides about its centre), boxes and centres."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(k, 2, generator=g) * 0.1 - 0.05
    pix = (torch.arange(size) + 0.5) / size - 0.5
    d2 = (pix.view(1, 1, size) - centre[:, 0].view(k, 1, 1)) ** 2 + (pix.view(1, size, 1) - centre[:, 1].view(k, 1, 1)) ** 2
    disc = (d2 < 0.15**2).float()
    colour = torch.rand(k, 3, 1, 1, generator=g) * 0.5 + 0.5
    crops = torch.cat([disc.unsqueeze(1) * colour, disc.unsqueeze(1)], 1)
    boxes = torch.rand(k, 4, generator=g) * 0.1 + torch.tensor([0.4, 0.4, 0.1, 0.15])
    return crops, boxes, centre


def test_occluded_crops_hide_part_of_the_mask_and_are_recut_around_the_rest():
    k, size = 64, 48
    crops, boxes, centre = _disc_crops(k, size, 0)
    out, new_boxes, new_centre, _ = occlude_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=0.75)
    assert out.shape == crops.shape and new_boxes.shape == boxes.shape and new_centre.shape == centre.shape
    hit = (new_boxes - boxes).abs().sum(1) > 1e-7
    assert 5 < int(hit.sum()) < 0.75 * k + 8  # some of the 3 in 4 offered crops keep their occluder
    assert torch.equal(out[~hit], crops[~hit]) and torch.equal(new_centre[~hit], centre[~hit])
    # the object stays where it is in the image: box centre + centre * side is unchanged
    for axis in (0, 1):
        before = boxes[:, axis] + centre[:, axis] * boxes[:, 2 + axis]
        after = new_boxes[:, axis] + new_centre[:, axis] * new_boxes[:, 2 + axis]
        assert torch.allclose(before, after, atol=1e-6)
    # a share of the mask within `hidden` is gone: the area, measured in image units (crop px x side^2)
    scale = new_boxes[:, 2] / boxes[:, 2]
    left = out[:, 3].sum((1, 2)) * scale**2 / crops[:, 3].sum((1, 2))
    assert bool(((left[hit] > 0.3) & (left[hit] < 0.9)).all())
    assert bool((scale[hit] <= 1 + 1e-6).all() and (scale[hit] >= 0.5 - 1e-6).all())
    # the occluder's colour shows where the mask is gone: the crop's pixels are no longer its own disc's alone
    assert bool(((out[hit, :3] - crops[hit, :3]).abs().flatten(1).amax(1) > 0.05).all())
    same = occlude_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=0.0)
    assert all(a is b for a, b in zip(same[:3], (crops, boxes, centre), strict=True)) and not same[3].any()
    with pytest.raises(ConfigError, match="p must"):
        occlude_crops(crops, boxes, centre, torch.Generator(), p=1.5)


def test_occluded_crops_are_marked_and_can_leave_the_centre_loss():
    k, size = 64, 48
    crops, boxes, centre = _disc_crops(k, size, 0)
    out, new_boxes, new_centre, kept = occlude_crops(crops, boxes, centre, torch.Generator().manual_seed(1), p=0.75)
    hit = (new_boxes - boxes).abs().sum(1) > 1e-7
    assert kept.dtype == torch.bool and torch.equal(kept, hit) and int(kept.sum()) > 5
    # the weighted centre term: all ones is the plain mean; a zero weight drops that crop's error
    g = torch.Generator().manual_seed(2)
    logits = {"shape": torch.randn(4, 3, generator=g)}
    labels = {"shape": torch.tensor([0, 1, 2, 0])}
    pred, target = torch.zeros(4, 2), torch.zeros(4, 2)
    target[3] = 0.5  # only crop 3 is off
    plain_loss = attribute_loss(logits, pred, labels, target)
    assert torch.allclose(attribute_loss(logits, pred, labels, target, torch.ones(4))["centre"], plain_loss["centre"])
    dropped = attribute_loss(logits, pred, labels, target, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    assert float(plain_loss["centre"]) > 0 and float(dropped["centre"]) == 0.0
    assert torch.allclose(dropped["shape"], plain_loss["shape"])  # the labels still count


def _crop_arrays(n: int) -> dict[str, torch.Tensor]:
    """``n`` random 16 x 16 training crops with labels and centres, as train_attribute_net reads them (seed 5)."""
    g = torch.Generator().manual_seed(5)
    return {
        "crops": torch.randint(0, 256, (n, 4, 16, 16), generator=g, dtype=torch.uint8),
        "boxes": torch.rand(n, 4, generator=g) * 0.2 + 0.1,
        "labels": torch.stack([torch.randint(0, k, (n,), generator=g) for k in (3, 8, 2, 2)], 1),
        "centre": torch.rand(n, 2, generator=g) * 0.2 - 0.1,
    }


def test_training_without_the_occluded_centres_differs_only_by_the_centre_loss(tmp_path):
    arrays = _crop_arrays(16)
    cfg = AttributeConfig(crop_size=16, width=8)
    common = dict(epochs=1, batch_size=8, lr=3e-3, seed=2, occlude=1.0, progress=False)
    with_centre, _ = train_attribute_net(arrays, cfg, out=tmp_path / "a", **common)
    without, hist = train_attribute_net(arrays, cfg, out=tmp_path / "b", occlude_centre=False, **common)
    changed = [name for (name, a), b in zip(with_centre.state_dict().items(), without.state_dict().values(),
                                            strict=True) if not torch.equal(a, b)]
    assert changed  # the occluded crops' centres no longer pull on the network
    assert hist[-1]["epoch"] == 1


@pytest.mark.parametrize("occlude", [0.0, 0.5])
def test_augmented_attribute_training_resumes_exactly(tmp_path, monkeypatch, occlude):
    arrays = _crop_arrays(24)  # 3 batches of 8 per epoch
    cfg = AttributeConfig(crop_size=16, width=8)
    common = dict(epochs=3, batch_size=8, lr=3e-3, seed=2, augment=True, occlude=occlude, progress=False)
    whole, _ = train_attribute_net(arrays, cfg, out=tmp_path / "whole", **common)

    calls = []

    def interrupted(*args, **kwargs):  # stop at the first batch of epoch 2 (Ctrl-C)
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return jitter_crops(*args, **kwargs)

    monkeypatch.setattr(trainers, "jitter_crops", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_attribute_net(arrays, cfg, out=tmp_path / "parts", **common)
    monkeypatch.setattr(trainers, "jitter_crops", jitter_crops)
    resumed, hist = train_attribute_net(arrays, cfg, out=tmp_path / "parts", **common)
    assert [h["epoch"] for h in hist] == [1, 2, 3]  # epoch 1 came from the checkpoint
    lines = (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_attribute_training_lowers_the_loss():
    torch.manual_seed(0)
    cfg = AttributeConfig(crop_size=16, width=8)
    g = torch.Generator().manual_seed(3)
    crops = torch.rand(32, 4, 16, 16, generator=g)
    labels = {
        "shape": torch.randint(0, 3, (32,), generator=g),
        "color": torch.randint(0, 8, (32,), generator=g),
        "material": torch.randint(0, 2, (32,), generator=g),
        "size": torch.randint(0, 2, (32,), generator=g),
    }
    crops[:, 0] += labels["color"].float().view(-1, 1, 1) / 4  # make the labels learnable
    crops[:, 1] += labels["shape"].float().view(-1, 1, 1) / 2
    crops[:, 2] += labels["material"].float().view(-1, 1, 1)
    crops[:, 3] += labels["size"].float().view(-1, 1, 1)
    boxes, centre = torch.rand(32, 4, generator=g), torch.rand(32, 2, generator=g) * 0.2 - 0.1
    net = AttributeNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        logits, pred = net(crops, boxes)
        loss = attribute_loss(logits, pred, labels, centre)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_derender_blender_votes_is_the_shipped_reading_with_vote_centres_from_60_votes():
    from perception.derender.derenderer import BlenderDerenderer, BlenderDerendererVotes
    from perception.registry import load_perceiver

    shipped, votes = load_perceiver("derender-blender"), load_perceiver("derender-blender-votes")
    assert type(shipped) is BlenderDerenderer and type(votes) is BlenderDerendererVotes
    assert (shipped.proposal_net.config.vote_min, votes.proposal_net.config.vote_min) == (80, 60)
    assert (votes.min_gap, votes.keep_score, votes.attribute_net.config.test_flip) == (
        shipped.min_gap, shipped.keep_score, shipped.attribute_net.config.test_flip)
    assert dataclasses.replace(votes.proposal_net.config, vote_min=80) == shipped.proposal_net.config
    for a, b in zip(votes.proposal_net.state_dict().values(), shipped.proposal_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # a pile of 70 votes 14-17 px from the one heat peak: an object at 60, left to the peak at 80
    masks = torch.zeros(1, 24, 24, dtype=torch.long)
    masks[0, 2:11, 2:11] = 1
    masks[0, 14:21, 12:22] = 2  # 70 pixels
    t = proposal_targets(masks, SMALL)
    heat = proposal_targets((masks == 1).long(), SMALL)["heatmap"].clamp(min=0.05)
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731
    out = ProposalOutput(logit(t["foreground"]), logit(heat), t["offsets"])
    for vote_min, found in ((votes.vote_min, 2), (shipped.vote_min, 1)):
        (label, _), = decode_scored(out, dataclasses.replace(SMALL, vote_min=vote_min))
        assert int(label.max()) == found, vote_min


def test_derender_blender_ships_the_close_weight_proposal_network_and_r15_keeps_the_one_before():
    from perception.derender.derenderer import BlenderDerenderer, BlenderDerendererR15
    from perception.registry import load_perceiver

    shipped, r15 = load_perceiver("derender-blender"), load_perceiver("derender-blender-r15")
    assert type(shipped) is BlenderDerenderer and type(r15) is BlenderDerendererR15
    assert (r15.min_gap, r15.keep_score, r15.vote_min, r15.attribute_net.config.test_flip) == (
        shipped.min_gap, shipped.keep_score, shipped.vote_min, shipped.attribute_net.config.test_flip)
    assert r15.proposal_net.config == shipped.proposal_net.config
    for a, b in zip(r15.attribute_net.state_dict().values(), shipped.attribute_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the attribute network is round 15's in both ...
    assert any(not torch.equal(a, b) for a, b in zip(  # ... the proposal networks differ
        r15.proposal_net.state_dict().values(), shipped.proposal_net.state_dict().values(), strict=True))
    assert "--close-weight 4" in shipped.metadata["command"] and "--close-weight" not in r15.metadata["command"]
