"""NS-CL: learns from images, masks, questions and answers only; trains, resumes, refuses bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from benchmarks.cli import main
from physics.errors import CheckpointError, ConfigError
from reasoning.nscl import (
    ConceptLearner,
    NSCLTrainConfig,
    evaluate_nscl,
    load_nscl,
    load_split,
    train_nscl,
)
from reasoning.nscl.data import join_sets, match_proposals
from reasoning.nscl.model import recolour, rescale
from reasoning.nscl.train import (
    _image_batches,
    _load_init,
    question_weight,
    stage_of,
    training_legs,
)


@pytest.fixture(scope="module")
def split(tiny_clevr):
    return tiny_clevr(12)


def _scrambled_copy(src, dst):
    """The same split with every object's attributes rotated to other values."""
    shutil.copytree(src, dst)
    path = dst / "CLEVR_train_scenes.json"
    data = json.loads(path.read_text())
    swap = {"red": "blue", "blue": "green", "green": "red", "cube": "sphere", "sphere": "cylinder",
            "cylinder": "cube", "large": "small", "small": "large", "metal": "rubber", "rubber": "metal"}
    for scene in data["scenes"]:
        for obj in scene["objects"]:
            for key in ("color", "shape", "size", "material"):
                obj[key] = swap.get(obj[key], obj[key])
    path.write_text(json.dumps(data))


def test_attribute_labels_are_never_read(split, tmp_path):
    _scrambled_copy(split, tmp_path / "scrambled")
    a = load_split(split, "train", progress=False)
    b = load_split(tmp_path / "scrambled", "train", progress=False)
    assert len(a) == len(b) == 120 and a.answers == b.answers and a.programs == b.programs
    assert all(torch.equal(x, y) for x, y in zip(a.crops, b.crops, strict=True))
    config = NSCLTrainConfig(epochs=1, batch_size=32, curriculum="0:0")
    ma, _ = train_nscl(a, config, tmp_path / "a.pt", progress=False)
    mb, _ = train_nscl(b, config, tmp_path / "b.pt", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True))


def test_proposals_replace_the_true_masks_they_match_and_nothing_else():
    masks = torch.zeros(2, 20, 20, dtype=torch.bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 12:18, 12:18] = True
    proposals = torch.zeros(3, 20, 20, dtype=torch.bool)
    proposals[0, 0:2, 15:20] = True  # matches nothing: left out
    proposals[1, 3:8, 2:8] = True  # object 0, IoU 30/36
    proposals[2, 12:14, 12:14] = True  # object 1, IoU 4/36: too small, the true mask stays
    out, used = match_proposals(masks, proposals, min_iou=0.5)
    assert used.tolist() == [True, False]
    assert torch.equal(out[0], proposals[1]) and torch.equal(out[1], masks[1])
    assert torch.equal(match_proposals(masks, proposals[:0])[0], masks)  # no proposal: every true mask stays
    assert match_proposals(masks, proposals, min_iou=0.1)[1].tolist() == [True, True]


def test_proposal_crops_keep_the_questions_and_read_no_attribute(split, tmp_path):
    a = load_split(split, "train", limit_images=4, progress=False)
    b = load_split(split, "train", limit_images=4, progress=False, objects="proposals")
    assert a.programs == b.programs and a.answers == b.answers and a.image == b.image
    assert [len(x) for x in a.boxes] == [len(x) for x in b.boxes]  # the objects the answers are about
    assert b.from_proposals + b.from_masks == a.from_masks == sum(len(x) for x in a.boxes)
    assert b.from_proposals > 0.9 * a.from_masks  # the shipped proposals find nearly every object
    assert not all(torch.equal(x, y) for x, y in zip(a.crops, b.crops, strict=True))
    _scrambled_copy(split, tmp_path / "scrambled")
    c = load_split(tmp_path / "scrambled", "train", limit_images=4, progress=False, objects="proposals")
    assert all(torch.equal(x, y) for x, y in zip(b.crops, c.crops, strict=True))
    with pytest.raises(ConfigError, match="objects"):
        load_split(split, "train", objects="boxes")


def test_a_short_run_raises_accuracy_and_a_resume_keeps_the_run_flags(split, tmp_path):
    data = load_split(split, "train", progress=False)
    torch.manual_seed(0)
    before = evaluate_nscl(ConceptLearner(), data)["accuracy"]
    config = NSCLTrainConfig(epochs=6, batch_size=24, learning_rate=3e-3, curriculum="0:0")
    model, meta = train_nscl(data, config, tmp_path / "full.pt", progress=False)
    after = evaluate_nscl(model, data)["accuracy"]
    assert after >= before + 0.1, (before, after)
    assert meta["history"][-1]["loss"] < meta["history"][0]["loss"]

    # a checkpoint of a 3-epoch run does not continue as a 6-epoch one
    train_nscl(data, NSCLTrainConfig(epochs=3, batch_size=24, learning_rate=3e-3, curriculum="0:0"),
               tmp_path / "part.pt", progress=False)
    with pytest.raises(ConfigError, match="epochs 3 \\(now 6\\)"):
        train_nscl(data, config, tmp_path / "part.pt", progress=False)  # the flags must be the run's


def test_checkpoints_round_trip_and_bad_files_are_named(split, tmp_path):
    data = load_split(split, "train", limit_images=3, progress=False)
    model, _ = train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "m.pt", progress=False)
    loaded, meta = load_nscl(tmp_path / "m.pt")
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))
    assert "no attribute label" in meta["trained_on"]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_nscl(tmp_path / "bad.pt")


def test_flips_and_the_cosine_schedule_are_seeded_and_used(split, tmp_path):
    data = load_split(split, "train", limit_images=6, progress=False)
    config = NSCLTrainConfig(epochs=2, batch_size=16, curriculum="0:0", schedule="cosine", flip=True)
    a, meta = train_nscl(data, config, tmp_path / "a.pt", progress=False)
    b, _ = train_nscl(data, config, tmp_path / "b.pt", progress=False)
    plain, _ = train_nscl(data, dataclasses.replace(config, flip=False), tmp_path / "c.pt", progress=False)
    weights = [list(m.state_dict().values()) for m in (a, b, plain)]
    assert all(torch.equal(x, y) for x, y in zip(weights[0], weights[1], strict=True))  # same seed, same flips
    assert not all(torch.equal(x, y) for x, y in zip(weights[0], weights[2], strict=True))  # flips change training
    assert meta["history"][-1]["lr"] < meta["history"][0]["lr"]  # cosine decays
    with pytest.raises(ConfigError, match="schedule"):
        NSCLTrainConfig(schedule="linear")
    # fine-tuning starts from a finished model's weights
    tuned, _ = train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0", learning_rate=1e-9, init=str(tmp_path / "a.pt")),
                          tmp_path / "d.pt", progress=False)
    assert all(torch.allclose(x, y, atol=1e-5)  # parameters; batch-norm statistics move on
               for x, y in zip(a.parameters(), tuned.parameters(), strict=True))


def test_larger_crops_train_from_a_32_pixel_model_and_a_mismatch_is_refused(split, tmp_path):
    small = load_split(split, "train", limit_images=3, progress=False)
    base, _ = train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    large = load_split(split, "train", limit_images=3, crop_size=48, progress=False)
    assert large.crops[0].shape[-2:] == (48, 48)
    with pytest.raises(ConfigError, match="cut at 48 pixels"):
        train_nscl(large, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "b.pt", progress=False)
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", crop_size=48, learning_rate=1e-9, init=str(tmp_path / "a.pt"))
    tuned, _ = train_nscl(large, config, tmp_path / "c.pt", progress=False)
    assert all(torch.allclose(x, y, atol=1e-5)  # the CNN pools adaptively: the same weights fit 48-pixel crops
               for x, y in zip(base.parameters(), tuned.parameters(), strict=True))
    assert load_nscl(tmp_path / "c.pt")[0].config.crop_size == 48
    out = tmp_path / "cli.pt"  # the command cuts both splits at the size and records it
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--crop-size", "48",
                 "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.crop_size == 48 and "--crop-size 48" in meta["command"]


def test_a_deeper_encoder_starts_as_the_model_it_grows_from_and_learns(split, tmp_path):
    data = load_split(split, "train", limit_images=3, progress=False)
    base, _ = train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", residual=2, init=str(tmp_path / "a.pt"), learning_rate=1e-2)
    deep = ConceptLearner(dataclasses.replace(base.config, residual=2)).eval()
    _load_init(deep, base, "a.pt")
    crops, boxes = data.objects([0, 1, 2])
    before, after = base.eval()(crops, boxes), deep(crops, boxes)
    for group in before.attributes:  # the new blocks are the identity until trained
        assert torch.equal(before.attributes[group], after.attributes[group])
    tuned, _ = train_nscl(data, config, tmp_path / "b.pt", progress=False)
    assert tuned.config.residual == 2 and len(tuned.cnn[2]) == 5  # conv, norm, relu and two blocks per stage
    assert tuned.cnn[2][4].body[4].weight.abs().sum() > 0  # the zero-started scales moved: gradients reach them
    with pytest.raises(ConfigError, match="fewer residual blocks: it has 2, this run 1"):
        train_nscl(data, dataclasses.replace(config, residual=1, init=str(tmp_path / "b.pt")), tmp_path / "c.pt",
                   progress=False)
    with pytest.raises(ConfigError, match="residual"):
        NSCLTrainConfig(residual=-1)


def _assert_train_flag_refused(flag, bads, word, tmp_path, capsys):
    """Each bad value of a `nesy train nscl` flag is a one-line error naming it, before any data is read."""
    for bad in bads:
        capsys.readouterr()
        try:
            code = main(["train", "nscl", "--data", str(tmp_path / "none"), flag, bad, "--out", str(tmp_path / "x.pt"),
                         "--quiet"])
        except SystemExit as exc:  # argparse: not an integer
            code = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and word in err[-1] and bad in err[-1], (flag, bad, err)


def test_a_detail_cnn_on_larger_crops_starts_as_the_model_it_grows_from_and_learns(split, tmp_path, capsys):
    small = load_split(split, "train", limit_images=3, progress=False)
    base, _ = train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    large = load_split(split, "train", limit_images=3, crop_size=48, progress=False)
    grown = ConceptLearner(dataclasses.replace(base.config, detail_size=48)).eval()
    _load_init(grown, base, "a.pt")
    assert all(torch.equal(x, y) for x, y in zip(grown.detail_cnn.parameters(), base.cnn.parameters(), strict=True))
    crops, boxes = large.objects([0, 1, 2])
    resized = [torch.nn.functional.interpolate(c, size=(32, 32), mode="bilinear", align_corners=False) for c in crops]
    before, after = base.eval()(resized, boxes), grown(crops, boxes)
    for group in before.attributes:  # zero columns read the detail CNN until trained
        assert torch.allclose(before.attributes[group], after.attributes[group], atol=1e-5)
    with pytest.raises(ConfigError, match="crop size 48, but the training data is cut at 32"):  # cut at the detail size
        train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48), tmp_path / "x.pt",
                   progress=False)
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, init=str(tmp_path / "a.pt"),
                             learning_rate=1e-2, batch_size=8)  # the CNN learns from the second step on
    tuned, _ = train_nscl(large, config, tmp_path / "b.pt", progress=False)
    width = 4 * base.config.width
    assert tuned.object_mlp[0].weight[:, width + 4:].abs().sum() > 0  # gradients reach the zero columns
    assert not all(torch.equal(x, y) for x, y in zip(tuned.detail_cnn.parameters(), base.cnn.parameters(), strict=True))
    assert load_nscl(tmp_path / "b.pt")[0].config.input_size == 48
    with pytest.raises(ConfigError, match="lack the detail CNN: its detail size 48, this run's 0"):
        train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0", init=str(tmp_path / "b.pt")),
                   tmp_path / "c.pt", progress=False)
    for bad in (32, 20, -1):
        with pytest.raises(ConfigError, match="detail size"):
            NSCLTrainConfig(detail_size=bad)
    out = tmp_path / "cli.pt"  # the command cuts the crops at the detail size and records it
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--detail-size", "48",
                 "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.detail_size == 48 and "--detail-size 48" in meta["command"]
    _assert_train_flag_refused("--detail-size", ("-3", "nan", "x", "1.5"), "detail", tmp_path, capsys)


def test_a_context_cnn_over_the_whole_image_starts_as_the_model_it_grows_from_and_learns(split, tmp_path, capsys):
    from reasoning.nscl.data import context_image
    from reasoning.nscl.model import context_shape
    from reasoning.registry import QAParts, load_qa_model

    small = load_split(split, "train", limit_images=3, progress=False)
    assert small.contexts == [] and small.context_images([0]) is None  # read only when asked for
    base, _ = train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    whole = load_split(split, "train", limit_images=3, context_size=16, progress=False)
    assert [tuple(c.shape) for c in whole.contexts] == [(3, *context_shape(16))] * 3 == [(3, 16, 24)] * 3
    assert all(torch.equal(x, y) for x, y in zip(whole.crops, small.crops, strict=True))  # the objects unchanged
    grown = ConceptLearner(dataclasses.replace(base.config, context_size=16)).eval()
    _load_init(grown, base, "a.pt")
    crops, boxes = small.objects([0, 1, 2])
    before, after = base.eval()(crops, boxes), grown(crops, boxes, images=whole.context_images([0, 1, 2]))
    for group in before.attributes:  # zero columns read the context CNN until trained
        assert torch.allclose(before.attributes[group], after.attributes[group], atol=1e-5)
    with pytest.raises(ValueError, match="one \\[3, H, W\\] image per scene, got none for 3 scenes"):
        grown(crops, boxes)
    with pytest.raises(ConfigError, match="context size 16, but the training data's whole images are not read"):
        train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0", context_size=16), tmp_path / "x.pt",
                   progress=False)
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", context_size=16, init=str(tmp_path / "a.pt"),
                             learning_rate=1e-2, batch_size=8, flip=True)  # flips: an image and its crops together
    tuned, _ = train_nscl(whole, config, tmp_path / "b.pt", progress=False)
    columns = 4 * base.config.width + 4
    assert tuned.object_mlp[0].weight[:, columns:].abs().sum() > 0  # gradients reach the zero columns
    assert not all(torch.equal(x, y) for x, y in zip(tuned.context_cnn.parameters(), grown.context_cnn.parameters(),
                                                     strict=True))  # and the context CNN behind them
    assert load_nscl(tmp_path / "b.pt")[0].config.context_size == 16
    with pytest.raises(ConfigError, match="or the context CNN: its context size 16, this run's 0"):
        train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0", init=str(tmp_path / "b.pt")),
                   tmp_path / "c.pt", progress=False)
    with pytest.raises(ConfigError, match="its context CNN reads 16-pixel images, this run 32"):
        train_nscl(load_split(split, "train", limit_images=3, context_size=32, progress=False),
                   NSCLTrainConfig(epochs=1, curriculum="0:0", context_size=32, init=str(tmp_path / "b.pt")),
                   tmp_path / "c.pt", progress=False)
    with pytest.raises(ConfigError, match="some splits were read with whole images"):
        join_sets([whole, small])
    for bad in (8, -1):
        with pytest.raises(ConfigError, match="context size"):
            NSCLTrainConfig(context_size=bad)
    # the perceiver gives the whole image to the model, as training read it, and the QA model answers
    model = load_qa_model("nscl", QAParts(perceiver="nscl", perceiver_checkpoint=str(tmp_path / "b.pt"), parser=False))
    from perception.datasets import ClevrDataset

    item = ClevrDataset(split, "train")[0]
    rgb = (item["image"].permute(1, 2, 0) * 255).round().byte().numpy()
    scores = model.derenderer.scores_of(model.perceive(rgb))
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    assert torch.equal(context_image(image, 16), whole.contexts[0])
    assert scores is not None and scores.num_objects > 0
    out = tmp_path / "cli.pt"  # the command reads the whole images and records the flag
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--context-size", "16",
                 "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.context_size == 16 and "--context-size 16" in meta["command"]
    _assert_train_flag_refused("--context-size", ("-3", "nan", "x", "8"), "context", tmp_path, capsys)


def test_whole_image_batches_keep_each_image_whole_and_train(split, tmp_path):
    data = load_split(split, "train", limit_images=8, progress=False)
    admitted = [q for q in range(len(data)) if q % 3]  # as a curriculum stage would leave them
    batches = _image_batches(data, admitted, 25, torch.Generator().manual_seed(1))
    assert sorted(q for b in batches for q in b) == admitted  # every admitted question once
    owner = {data.image[q]: k for k, b in enumerate(batches) for q in b}
    assert all(owner[data.image[q]] == k for k, b in enumerate(batches) for q in b)  # no image split
    assert all(len(b) >= 25 for b in batches[:-1]) and len(batches) < len(admitted) / 20
    config = NSCLTrainConfig(epochs=1, batch_size=25, curriculum="0:0", whole_images=True)
    a, meta = train_nscl(data, config, tmp_path / "a.pt", progress=False)
    b, _ = train_nscl(data, config, tmp_path / "b.pt", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert meta["history"][0]["loss"] > 0


def test_the_object_cache_is_reused_only_for_the_same_read(split, tmp_path):
    cache = tmp_path / "cache"
    a = load_split(split, "train", limit_images=4, progress=False, objects="proposals", cache=cache)
    (written,) = cache.iterdir()
    first = written.stat().st_mtime_ns
    b = load_split(split, "train", limit_images=4, progress=False, objects="proposals", cache=cache)
    assert written.stat().st_mtime_ns == first  # read from the cache, not written again
    assert a.programs == b.programs and a.answers == b.answers and a.image == b.image
    assert all(torch.equal(x, y) for x, y in zip(a.crops, b.crops, strict=True))
    assert (a.from_proposals, a.from_masks) == (b.from_proposals, b.from_masks)
    load_split(split, "train", limit_images=4, progress=False, cache=cache)  # true masks: another entry
    assert len(list(cache.iterdir())) == 2
    written.write_bytes(b"damaged")  # a damaged entry is read again from the images
    c = load_split(split, "train", limit_images=4, progress=False, objects="proposals", cache=cache)
    assert all(torch.equal(x, y) for x, y in zip(a.crops, c.crops, strict=True))
    both = join_sets([a, c])
    assert len(both) == 2 * len(a) and len(both.crops) == 8 and both.image[len(a):] == [i + 4 for i in a.image]


def test_group_weights_weigh_the_questions_about_their_groups(split, tmp_path):
    data = load_split(split, "train", limit_images=4, progress=False)
    weights = NSCLTrainConfig(group_weights="material:3,shape:2").weights
    assert weights == {"material": 3.0, "shape": 2.0}
    seen = {question_weight(p, weights) for p in data.programs}
    for p in data.programs:
        names = {c.function for c in p.nodes()} | {v for c in p.nodes() for v in c.values}
        about = {"material": {"filter_material", "query_material", "same_material", "equal_material", "rubber", "metal"},
                 "shape": {"filter_shape", "query_shape", "same_shape", "equal_shape", "cube", "sphere", "cylinder"}}
        expect = 3.0 if names & about["material"] else 2.0 if names & about["shape"] else 1.0
        assert question_weight(p, weights) == expect, p
    assert 1.0 in seen and 3.0 in seen
    config = NSCLTrainConfig(epochs=1, batch_size=20, curriculum="0:0", group_weights="material:3")
    a, _ = train_nscl(data, config, tmp_path / "a.pt", progress=False)
    b, _ = train_nscl(data, dataclasses.replace(config, group_weights=""), tmp_path / "b.pt", progress=False)
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    for bad in ("texture:2", "shape:0", "shape"):
        with pytest.raises(ConfigError, match="group weights"):
            NSCLTrainConfig(group_weights=bad)


def test_recolour_moves_hue_saturation_and_brightness_and_keeps_the_mask():
    red = torch.zeros(64, 4, 6, 6)
    red[:, 0], red[:, 3] = 0.8, (torch.rand(6, 6) > 0.5).float()
    out = recolour(red, torch.Generator().manual_seed(1))
    assert torch.equal(out, recolour(red, torch.Generator().manual_seed(1)))  # seeded
    assert torch.equal(out[:, 3], red[:, 3]) and out.min() >= 0 and out.max() <= 1
    strongest = out[:, :3, 0, 0].argmax(1)  # the red object turns green or blue in some crops
    assert {0, 1, 2} <= set(strongest.tolist())
    gray = torch.full((64, 4, 6, 6), 0.5)
    out = recolour(gray, torch.Generator().manual_seed(2))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)
    assert out[:, 0].std() > 0.05  # brightness differs between crops, the gray stays gray
    assert recolour(torch.zeros(0, 4, 6, 6)).shape == (0, 4, 6, 6)


def test_colour_jitter_feeds_the_named_groups_the_recoloured_crops(split, tmp_path):
    torch.manual_seed(0)
    model = ConceptLearner().eval()  # batch normalisation from running statistics: each crop on its own
    crops, boxes = [torch.rand(3, 4, 32, 32), torch.rand(2, 4, 32, 32)], [torch.rand(3, 4), torch.rand(2, 4)]
    other = [recolour(c, torch.Generator().manual_seed(3)) for c in crops]
    with torch.no_grad():
        mixed, plain, recoloured = model(crops, boxes, other, ("shape",)), model(crops, boxes), model(other, boxes)
    assert torch.allclose(mixed.attributes["shape"], recoloured.attributes["shape"], atol=1e-5)
    for group in ("color", "material", "size"):
        assert torch.allclose(mixed.attributes[group], plain.attributes[group], atol=1e-5)
    assert torch.allclose(mixed.relations, plain.relations)

    data = load_split(split, "train", limit_images=4, progress=False)
    config = NSCLTrainConfig(epochs=1, batch_size=20, curriculum="0:0", colour_jitter="shape,material")
    a, _ = train_nscl(data, config, tmp_path / "a.pt", progress=False)
    b, _ = train_nscl(data, config, tmp_path / "b.pt", progress=False)
    c, _ = train_nscl(data, dataclasses.replace(config, colour_jitter=""), tmp_path / "c.pt", progress=False)
    weights = [list(m.state_dict().values()) for m in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(weights[0], weights[1], strict=True))  # same seed, same colours
    assert not all(torch.equal(x, y) for x, y in zip(weights[0], weights[2], strict=True))
    assert NSCLTrainConfig(colour_jitter=" shape, size").jitter_groups == ("shape", "size")
    for bad in ("color", "shape,shape", "texture", ",", "nan"):
        with pytest.raises(ConfigError, match="colour jitter"):
            NSCLTrainConfig(colour_jitter=bad)


def test_rescale_reframes_each_crop_about_its_centre_within_the_spread():
    square = torch.zeros(1, 4, 48, 48)
    square[:, :, 16:32, 16:32] = 1.0  # a 16-px object (all four channels) in the middle of its crop
    crops = square.repeat(400, 1, 1, 1)
    assert torch.equal(rescale(crops, 0.0), crops)
    out = rescale(crops, 0.2, torch.Generator().manual_seed(4))
    assert torch.equal(out, rescale(crops, 0.2, torch.Generator().manual_seed(4)))  # seeded
    area = out[:, 3].sum((1, 2)) / 256.0  # the object's area over its area in the plain crop: 1 / factor^2
    assert area.min() > 1 / 1.2**2 - 0.03 and area.max() < 1 / 0.8**2 + 0.03
    assert area.min() < 0.8 and area.max() > 1.3  # both ways: the box cut larger and smaller
    centre = (out[:, 3] * torch.arange(48.0)).sum((1, 2)) / out[:, 3].sum((1, 2))
    assert torch.allclose(centre, torch.full_like(centre, 23.5), atol=1e-3)  # about the crop's centre
    assert torch.allclose(out[:, :3], out[:, 3:].expand(-1, 3, -1, -1))  # RGB and mask alike
    assert rescale(torch.zeros(0, 4, 8, 8), 0.1).shape == (0, 4, 8, 8)
    for bad in (-0.1, 0.5):
        with pytest.raises(ValueError, match="spread"):
            rescale(crops, bad)


def test_scale_jitter_changes_the_training_run_and_repeats_for_a_seed(split, tmp_path):
    data = load_split(split, "train", limit_images=4, progress=False)
    config = NSCLTrainConfig(epochs=1, batch_size=20, curriculum="0:0", scale_jitter=0.1)
    a, _ = train_nscl(data, config, tmp_path / "a.pt", progress=False)
    b, _ = train_nscl(data, config, tmp_path / "b.pt", progress=False)
    c, _ = train_nscl(data, dataclasses.replace(config, scale_jitter=0.0), tmp_path / "c.pt", progress=False)
    weights = [list(m.state_dict().values()) for m in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(weights[0], weights[1], strict=True))  # same seed, same framings
    assert not all(torch.equal(x, y) for x, y in zip(weights[0], weights[2], strict=True))
    assert a.config == c.config  # training only: the model is the same architecture, read the same way
    for bad in (-0.05, 0.5, 2.0):
        with pytest.raises(ConfigError, match="scale jitter"):
            NSCLTrainConfig(scale_jitter=bad)


def test_the_colour_jitter_flag_is_recorded_and_a_bad_one_named(split, tmp_path, capsys):
    out = tmp_path / "run" / "nscl.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "1", "--epochs", "1",
                 "--colour-jitter", "shape,material", "--out", str(out), "--quiet"]) == 0
    _, meta = load_nscl(out)
    assert "--colour-jitter shape,material" in meta["command"]
    capsys.readouterr()
    assert main(["train", "nscl", "--data", str(split), "--colour-jitter", "color", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "colour jitter" in err[-1] and "'color'" in err[-1]


def test_curriculum_stages_and_bad_flags():
    config = NSCLTrainConfig(epochs=6, curriculum="6:5,10:7,0:0")
    assert [stage_of(config, e) for e in range(6)] == [(6, 5), (6, 5), (10, 7), (10, 7), (0, 0), (0, 0)]
    with pytest.raises(ConfigError, match="curriculum"):
        NSCLTrainConfig(curriculum="6-5")


def test_train_nscl_command_writes_checkpoint_and_summary(split, tmp_path, capsys):
    out = tmp_path / "run" / "nscl.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "4", "--epochs", "1",
                 "--objects", "proposals", "--out", str(out), "--quiet"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["train_questions"] == 40 and summary["epochs"] == 1 and summary["objects"] == "proposals"
    assert summary["train_objects_from_proposals"] > 0
    assert "NS-CL training" in capsys.readouterr().out
    _, meta = load_nscl(out)
    assert meta["command"].startswith("nesy train nscl --data ") and "--epochs 1" in meta["command"]
    assert "--objects proposals" in meta["command"]


def test_the_command_trains_on_several_folders_with_a_cache(split, tmp_path):
    out, cache = tmp_path / "run" / "nscl.pt", tmp_path / "cache"
    assert main(["train", "nscl", "--data", str(split), str(split), "--limit-images", "3", "--epochs", "1",
                 "--whole-images", "--group-weights", "shape:2", "--cache", str(cache), "--out", str(out),
                 "--quiet"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["train_images"] == 6 and summary["train_questions"] == 60
    assert len(list(cache.iterdir())) == 1  # the same folder read once, then from the cache
    _, meta = load_nscl(out)
    assert f"--data {split} {split} " in meta["command"] and "--whole-images" in meta["command"]
    assert "--group-weights shape:2" in meta["command"]


def test_eval_clevr_scores_an_nscl_checkpoint_as_a_qa_model(split, tmp_path):
    ckpt = tmp_path / "nscl.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "3", "--epochs", "1",
                 "--out", str(ckpt), "--quiet"]) == 0
    report = tmp_path / "eval.json"
    assert main(["eval", "clevr", "--data", str(split), "--split", "train", "--model", "nscl", "--checkpoint",
                 str(ckpt), "--parser", "gt", "--limit", "20", "--out", str(report)]) == 0
    res = json.loads(report.read_text())
    assert res["parts"]["perceiver"] == "nscl" and res["parts"]["perceiver_checkpoint"] == str(ckpt)
    assert res["questions"] == 20 and 0.0 <= res["accuracy"]["overall"] <= 1.0
    assert res["perception"]["detection_recall"] > 0.9  # the proposals are the derenderer's


def test_eval_clevr_with_two_workers_gives_one_workers_soft_answers_and_probes_bit_for_bit(split, tmp_path, monkeypatch):
    """A scene perceived in another worker brings NS-CL's concept scores back with it, so two workers answer
    every question softly, exactly as one does (without the scores each question would fall back to the symbolic
    executor; docs/results/nscl.md, thirtieth session, holds the figures of that fallback)."""
    from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr
    from reasoning.nsvqa import NSVQA

    ckpt = tmp_path / "nscl.pt"
    data = load_split(split, "train", limit_images=3, progress=False)
    train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), ckpt, progress=False)

    def no_fallback(*args, **kwargs):
        raise AssertionError("an NS-CL scene was answered by the symbolic fallback: its concept scores were lost")

    monkeypatch.setattr(NSVQA, "answer_programs", staticmethod(no_fallback))  # in this process, which answers
    common = {"data": str(split), "split": "train", "model": "nscl", "checkpoint": str(ckpt), "parser": "gt",
              "threads": 1, "limit": 60}
    one = evaluate_clevr(ClevrEvalConfig(**common), progress=False)
    two = evaluate_clevr(ClevrEvalConfig(**common, workers=2), progress=False)
    assert one["scenes"] >= 6 and one["perception"]["detection_recall"] > 0.9  # the probes ran on perceived scenes
    assert {k: v for k, v in two.items() if k not in ("seconds", "config")} == \
        {k: v for k, v in one.items() if k not in ("seconds", "config")}
    for kwargs in ({"workers": 2}, {"backend": "ray"}, {"perceiver": "nscl", "workers": 3}):  # no longer refused
        ClevrEvalConfig(data=str(split), model="nscl", **kwargs)


def test_a_scene_perceived_elsewhere_brings_its_scores_and_a_model_without_the_perceiver_refuses_them(split, tmp_path):
    import pickle

    from perception.datasets import ClevrDataset
    from reasoning.errors import ProgramError
    from reasoning.registry import QAParts, load_qa_model

    ckpt = tmp_path / "nscl.pt"
    data = load_split(split, "train", limit_images=3, progress=False)
    train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), ckpt, progress=False)
    parts = QAParts(perceiver="nscl", perceiver_checkpoint=str(ckpt), parser=False)
    worker, parent = load_qa_model("nscl", parts), load_qa_model("nscl", parts)
    item = ClevrDataset(split, "train")[0]
    rgb = (item["image"].permute(1, 2, 0) * 255).round().byte().numpy()
    scene = worker.perceive(rgb)
    state = worker.perception_state(scene)
    assert state is not None and state.num_objects == len(scene)
    scene2, state2 = pickle.loads(pickle.dumps((scene, state)))  # as a worker process sends them
    assert parent.perception_state(scene2) is None  # not perceived here
    parent.adopt_perception(scene2, state2)
    assert torch.equal(parent.perception_state(scene2).attributes["shape"], state.attributes["shape"])
    assert worker.perception_state(item["scene"]) is None  # a scene it did not perceive (the truth) has none
    parent.adopt_perception(item["scene"], None)  # nothing to take: nothing happens
    without = load_qa_model("nscl", QAParts(perceiver="derender", parser=False))
    with pytest.raises(ProgramError, match="no concept perceiver"):
        without.adopt_perception(scene2, state2)


def test_the_qa_model_answers_softly_over_what_it_perceived(split, tmp_path):
    from perception.datasets import ClevrDataset
    from reasoning.dsl import from_clevr
    from reasoning.executor import execute_batch
    from reasoning.executor.soft import soft_execute
    from reasoning.registry import QAParts, load_qa_model

    ckpt = tmp_path / "nscl.pt"
    data = load_split(split, "train", limit_images=3, progress=False)
    train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), ckpt, progress=False)
    model = load_qa_model("nscl", QAParts(perceiver="nscl", perceiver_checkpoint=str(ckpt), parser=False))
    item = ClevrDataset(split, "train")[0]
    rgb = (item["image"].permute(1, 2, 0) * 255).round().byte().numpy()
    scene = model.perceive(rgb)
    scores = model.derenderer.scores_of(scene)
    assert scores is not None and scores.num_objects == len(scene)
    programs = [from_clevr(q["program"]) for q in item["questions"]]
    soft = list(soft_execute(programs, scores, [0] * len(programs)).answers)
    assert model.answer_programs(programs, [scene], [0] * len(programs)) == soft
    # a scene graph it did not perceive (the ground truth) is answered symbolically
    truth = item["scene"]
    assert model.answer_programs(programs, [truth], [0] * len(programs)) == execute_batch(
        programs, [truth], [0] * len(programs)
    )


def test_a_scene_without_scores_is_answered_symbolically_alone_and_the_others_stay_soft(split, tmp_path):
    """A scene without concept scores (an unreadable image, one without proposals) sends only its own questions to
    the symbolic executor; every other scene's questions stay soft."""
    import dataclasses as dc

    from perception.datasets import ClevrDataset
    from reasoning.dsl import from_clevr
    from reasoning.executor import execute_batch
    from reasoning.executor.soft import soft_execute
    from reasoning.registry import QAParts, load_qa_model

    ckpt = tmp_path / "nscl.pt"
    data = load_split(split, "train", limit_images=3, progress=False)
    train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), ckpt, progress=False)
    model = load_qa_model("nscl", QAParts(perceiver="nscl", perceiver_checkpoint=str(ckpt), parser=False))
    items = [ClevrDataset(split, "train")[i] for i in (0, 1)]
    scene = model.perceive((items[0]["image"].permute(1, 2, 0) * 255).round().byte().numpy())
    scores = model.perception_state(scene)
    # scores that read every attribute as its next word: soft and symbolic answers must part somewhere
    rolled = dc.replace(scores, attributes={a: t.roll(1, dims=-1) for a, t in scores.attributes.items()})
    model.adopt_perception(scene, rolled)
    truth = items[1]["scene"]
    programs = [from_clevr(q["program"]) for q in items[0]["questions"]]
    other = [from_clevr(q["program"]) for q in items[1]["questions"]]
    soft = list(soft_execute(programs, rolled, [0] * len(programs)).answers)
    assert soft != execute_batch(programs, [scene], [0] * len(programs))  # the test can tell them apart
    got = model.answer_programs([*programs, None, *other], [scene, truth], [0] * (len(programs) + 1) + [1] * len(other))
    assert got[: len(programs)] == soft
    assert got[len(programs)] is None
    assert got[len(programs) + 1 :] == execute_batch(other, [truth], [0] * len(other))


def test_the_shipped_checkpoint_loads_and_says_how_it_was_trained():
    from reasoning.nscl.perceiver import NSCLPerceiver

    perceiver = NSCLPerceiver.load_default()
    meta = perceiver.metadata
    assert "no attribute label" in meta["trained_on"] and meta["train_questions"] == 40_000
    assert meta["command"].startswith("nesy train nscl --data ")
    assert "--init" not in meta["command"] and "previous_round" not in meta  # one command from scratch
    assert "thirty-second session" in meta["round"] and "fresh seed 50293" in meta["round"]
    assert "--detail-size 48" in meta["command"] and perceiver.model.config.detail_size == 48
    assert "--epochs 48" in meta["command"] and "--scale-jitter 0.1" in meta["command"]
    assert "--objects proposals" in meta["command"]  # on the crops it sees from pixels


def test_training_legs_read_the_shipped_file_as_one_leg_of_one_command():
    from reasoning.nscl.perceiver import NSCLPerceiver

    legs = training_legs(NSCLPerceiver.load_default().metadata)
    assert len(legs) == 1 and legs[0]["seconds"] == 2978.3  # the loop's own time; 2,788 CPU s (nscl.md)
    assert legs[0]["images"] == 4000 and legs[0]["epochs"] == 48 and not legs[0]["averaged"]
    assert "train37" in legs[0]["command"] and "train16607" in legs[0]["command"]


def test_training_legs_walk_a_chain_oldest_first_with_each_legs_cost():
    chain = {"command": "c3", "seconds": 3.0, "train_images": 30, "history": [{}, {}], "averaged_from": [{}],
             "previous_round": {"command": "c2", "seconds": 2.0, "history": [{}],
                                "previous_round": {"command": "c1"}}}
    legs = training_legs(chain)
    assert [leg["command"] for leg in legs] == ["c1", "c2", "c3"]
    assert [leg["seconds"] for leg in legs] == [None, 2.0, 3.0]  # a round that kept no loop time says None
    assert [leg["epochs"] for leg in legs] == [None, 1, 2] and legs[-1]["images"] == 30
    assert [leg["averaged"] for leg in legs] == [False, False, True]
    assert training_legs({}) == []


def test_test_flip_averages_the_crop_and_its_mirror_in_evaluation_only(split, tmp_path, capsys):
    torch.manual_seed(0)
    plain = ConceptLearner()
    flipped = ConceptLearner(dataclasses.replace(plain.config, test_flip=True))
    flipped.load_state_dict(plain.state_dict())
    crops, boxes = [torch.rand(3, 4, 32, 32), torch.rand(2, 4, 32, 32)], [torch.rand(3, 4), torch.rand(2, 4)]
    mirror = [c.flip(-1) for c in crops]
    with torch.no_grad():
        plain.eval(), flipped.eval()
        a, b, both = plain(crops, boxes), plain(mirror, boxes), flipped(crops, boxes)
        for group in a.attributes:
            assert torch.allclose(both.attributes[group], 0.5 * (a.attributes[group] + b.attributes[group]), atol=1e-5)
            assert not torch.allclose(both.attributes[group], a.attributes[group])
        assert torch.equal(both.relations, a.relations)  # relations read the boxes only
        plain.train(), flipped.train()  # training steps are those of a model without it
        assert torch.allclose(flipped(crops, boxes).attributes["shape"], plain(crops, boxes).attributes["shape"])

    data = load_split(split, "train", limit_images=3, progress=False)
    base, _ = train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    out = tmp_path / "b.pt"  # a model without it starts one with it, and the flag is recorded
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "3", "--epochs", "1", "--curriculum", "0:0",
                 "--init", str(tmp_path / "a.pt"), "--test-flip", "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.test_flip and "--test-flip" in meta["command"] and not base.config.test_flip


def test_part_lr_scales_the_step_of_a_grown_part_and_its_columns_only(split, tmp_path, capsys):
    from reasoning.nscl.train import PartScaledAdam

    torch.manual_seed(0)
    model = ConceptLearner(dataclasses.replace(ConceptLearner().config, detail_size=48))
    width = 4 * model.config.width
    scaled = model.part_parameters("detail")
    assert scaled[-1][0] is model.object_mlp[0].weight and scaled[-1][1] == slice(width + 4, 2 * width + 4)
    assert {id(p) for p, _ in scaled[:-1]} == {id(p) for p in model.detail_cnn.parameters()}
    with pytest.raises(ValueError, match="no context CNN"):
        model.part_parameters("context")
    with pytest.raises(ValueError, match="no part 'cnn'"):
        model.part_parameters("cnn")
    plain = ConceptLearner(model.config)
    plain.load_state_dict(model.state_dict())
    optimisers = (PartScaledAdam(model.parameters(), [(p, c, 10.0) for p, c in scaled], lr=1e-3),
                  torch.optim.Adam(plain.parameters(), lr=1e-3))
    crops, boxes = [torch.rand(3, 4, 48, 48)], [torch.rand(3, 4)]
    starts = [m.object_mlp[0].weight.detach().clone() for m in (model, plain)]
    for m, opt in zip((model, plain), optimisers, strict=True):
        opt.zero_grad()
        sum(v.square().sum() for v in m.train()(crops, boxes).attributes.values()).backward()
        opt.step()
    for a, b in zip(*(opt.state_dict()["state"].values() for opt in optimisers), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])  # moments kept
    fast = model.object_mlp[0].weight.detach() - starts[0]
    slow = plain.object_mlp[0].weight.detach() - starts[1]
    assert torch.allclose(fast[:, width + 4:], 10 * slow[:, width + 4:], rtol=1e-3, atol=1e-7)  # the detail columns
    assert torch.allclose(fast[:, :width + 4], slow[:, :width + 4], rtol=1e-3, atol=1e-7)  # the others as Adam's
    assert slow[:, width + 4:].abs().sum() > 0
    moved = [(a - b).abs().max() for a, b in zip(model.cnn.parameters(), plain.cnn.parameters(), strict=True)]
    assert max(moved) < 1e-5  # the crop CNN steps as plain Adam's
    for bad in ("detail:0", "detail:nan", "detail", "cnn:2", "detail:2,detail:3", ","):
        with pytest.raises(ConfigError, match="part lr"):
            NSCLTrainConfig(part_lr=bad)
    small = load_split(split, "train", limit_images=2, progress=False)
    with pytest.raises(ConfigError, match="no detail CNN"):  # a model without the part is refused by name
        train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0", part_lr="detail:10"), tmp_path / "x.pt",
                   progress=False)
    out = tmp_path / "cli.pt"  # the command records the flag
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--detail-size", "48",
                 "--part-lr", "detail:10", "--out", str(out), "--quiet"]) == 0
    assert "--part-lr detail:10" in load_nscl(out)[1]["command"]
    _assert_train_flag_refused("--part-lr", ("detail:-1", "x:2"), "part lr", tmp_path, capsys)


class _Stopped(Exception):
    """Stands in for a kill in the middle of an epoch."""


def test_the_10_percent_recipe_stopped_mid_epoch_resumes_bit_identically(split, tmp_path, monkeypatch):
    """P70 (the 10% line's 70-epoch run) was stopped and resumed twice; a user's one uninterrupted command must give
    the same weights. Its flags here: curriculum stages, cosine, whole-image batches, flips, scale jitter, detail CNN."""
    import reasoning.nscl.train as train_module

    data = load_split(split, "train", limit_images=4, crop_size=48, progress=False)
    config = NSCLTrainConfig(epochs=3, batch_size=16, curriculum="8:6,12:8,0:0", schedule="cosine", flip=True,
                             whole_images=True, scale_jitter=0.1, detail_size=48)
    real, calls = train_module._batch_loss, {"n": 0, "stop": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["stop"]:
            raise _Stopped
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "_batch_loss", counted)
    straight, _ = train_nscl(data, config, tmp_path / "a.pt", progress=False)
    steps = calls["n"]
    calls.update(n=0, stop=steps - 1)  # in the last epoch, after two checkpoints
    with pytest.raises(_Stopped):
        train_nscl(data, config, tmp_path / "b.pt", progress=False)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["train_state"]["round"] == 2
    calls.update(n=0, stop=0)
    resumed, _ = train_nscl(data, config, tmp_path / "b.pt", progress=False)
    assert calls["n"] < steps  # it went on from the checkpoint, not from the start
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_average_nscl_takes_the_mean_of_the_weights_and_refuses_other_architectures(split, tmp_path):
    from reasoning.nscl.train import average_nscl, save_nscl

    small = load_split(split, "train", limit_images=2, progress=False)
    a, _ = train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    b, _ = train_nscl(small, NSCLTrainConfig(epochs=1, curriculum="0:0", seed=1), tmp_path / "b.pt", progress=False)
    mean, meta = average_nscl([tmp_path / "a.pt", tmp_path / "b.pt"], [1.0, 3.0])
    for k, v in mean.state_dict().items():
        x, y = a.state_dict()[k], b.state_dict()[k]
        assert torch.allclose(v, 0.25 * x + 0.75 * y) if v.is_floating_point() else torch.equal(v, x)
    assert [s["weight"] for s in meta["averaged_from"]] == [1.0, 3.0] and "command" in meta["averaged_from"][0]
    save_nscl(tmp_path / "m.pt", mean, meta)
    assert "averaged_from" in load_nscl(tmp_path / "m.pt")[1]
    large = load_split(split, "train", limit_images=2, crop_size=48, progress=False)
    train_nscl(large, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48), tmp_path / "c.pt", progress=False)
    with pytest.raises(ConfigError, match="another architecture"):
        average_nscl([tmp_path / "a.pt", tmp_path / "c.pt"])
    for paths, weights in (([tmp_path / "a.pt"], None), ([tmp_path / "a.pt", tmp_path / "b.pt"], [1.0, 0.0]),
                           ([tmp_path / "a.pt", tmp_path / "b.pt"], [1.0])):
        with pytest.raises(ConfigError, match="average"):
            average_nscl(paths, weights)


def _results_script(name: str):
    """The diagnosis script ``docs/results/<name>.py``, imported as a module (it is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "results" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_error_diagnosis_substitutes_truth_and_its_learned_row_is_the_evaluation(split, tmp_path):
    errors = _results_script("nscl_errors")
    ckpt = tmp_path / "nscl.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "3", "--epochs", "1",
                 "--out", str(ckpt), "--quiet"]) == 0
    out = errors.diagnose(split, "train", ckpt, limit_images=4)
    report = tmp_path / "eval.json"  # the same 4 images' 40 questions through nesy eval clevr
    assert main(["eval", "clevr", "--data", str(split), "--split", "train", "--model", "nscl", "--checkpoint",
                 str(ckpt), "--parser", "gt", "--limit", "40", "--out", str(report)]) == 0
    res = json.loads(report.read_text())
    v = out["variants"]
    assert v["learned"]["questions"] == res["questions"] == 40
    assert v["learned"]["right"] == round(res["accuracy"]["overall"] * 40)  # the learned row is the evaluation's
    # a barely trained model: the truth repairs most answers, only detection and the executor stay
    assert v["true attributes and relations"]["right"] > v["learned"]["right"]
    assert v["true attributes and relations"]["right"] >= 0.9 * 40
    assert out["detection"]["matched"] <= min(out["detection"]["proposals"], out["detection"]["objects"])
    assert sum(out["misreads"].values()) > 0


def test_the_probe_diagnosis_reads_what_the_evaluation_probes_and_fits_labelled_probes(split, tmp_path):
    from reasoning.nscl.perceiver import NSCLPerceiver

    probe = _results_script("nscl_probe")
    ckpt = tmp_path / "nscl.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "3", "--epochs", "1",
                 "--out", str(ckpt), "--quiet"]) == 0
    perceiver = NSCLPerceiver.from_checkpoint(ckpt)
    got = probe.extract(split, "train", perceiver, limit_images=4)
    n = len(got["image"])
    assert got["feature"].shape == (n, perceiver.model.config.feature_dim) and n > 0
    assert got["space:material"].shape == (n, perceiver.model.config.concept_dim)
    assert got["pooled"].shape[0] == n
    report = tmp_path / "eval.json"  # the same 4 images through nesy eval clevr: its probe is the model's read
    assert main(["eval", "clevr", "--data", str(split), "--split", "train", "--model", "nscl", "--checkpoint",
                 str(ckpt), "--parser", "gt", "--limit", "40", "--out", str(report)]) == 0
    probed = json.loads(report.read_text())["perception"]["attribute_accuracy"]
    table = probe.probe_table(got, got, perceiver.model)
    for group in probe.GROUPS:
        assert table[group]["model read"] == pytest.approx(probed[group], abs=1e-6)
        assert 0.0 <= table[group]["linear probe, object feature"] <= 1.0
    # the labelled probe itself: a separable toy is read perfectly, labels it cannot separate are not
    x = torch.cat([torch.randn(40, 3) + 4.0, torch.randn(40, 3) - 4.0])
    y = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(40, dtype=torch.long)])
    params = probe.fit_linear(x, y, 2, 1e-3)
    assert (probe.predict(params, x) == y).all()
    shuffled = y[torch.randperm(80, generator=torch.Generator().manual_seed(0))]
    assert (probe.predict(probe.fit_linear(torch.zeros(80, 3), shuffled, 2, 1e-3), x) == shuffled).float().mean() < 0.9


def test_a_max_pooled_branch_starts_as_the_model_it_grows_from_and_learns_at_its_own_step(split, tmp_path):
    large = load_split(split, "train", limit_images=3, crop_size=48, progress=False)
    base, _ = train_nscl(large, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48), tmp_path / "a.pt",
                         progress=False)
    grown = ConceptLearner(dataclasses.replace(base.config, max_pool=True)).eval()
    _load_init(grown, base, "a.pt")
    width = 4 * base.config.width
    assert grown.object_mlp[0].weight.shape[1] == 3 * width + 4 and not grown.object_mlp[0].weight[:, -width:].any()
    crops, boxes = large.objects([0, 1, 2])
    before, after = base.eval()(crops, boxes), grown(crops, boxes)
    for group in before.attributes:  # zero columns read the max-pooled feature until trained
        assert torch.allclose(before.attributes[group], after.attributes[group], atol=1e-5)
    maps = grown.detail_cnn[:-1](torch.cat(crops))  # the branch is the detail CNN's last map's maximum
    assert torch.allclose(grown._pooled(grown.detail_cnn, torch.cat(crops))[1], maps.amax(dim=(-2, -1)))
    assert grown.part_parameters("max") == [(grown.object_mlp[0].weight, slice(2 * width + 4, 3 * width + 4))]
    with pytest.raises(ValueError, match="no max-pooled branch"):
        base.part_parameters("max")
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, max_pool=True, part_lr="max:10",
                             init=str(tmp_path / "a.pt"), learning_rate=1e-2, batch_size=8)
    tuned, meta = train_nscl(large, config, tmp_path / "b.pt", progress=False)
    assert tuned.object_mlp[0].weight[:, -width:].abs().sum() > 0  # gradients reach the zero columns
    assert load_nscl(tmp_path / "b.pt")[0].config.max_pool
    with pytest.raises(ConfigError, match="its max pool True, this run's False"):  # never dropped silently
        train_nscl(large, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, init=str(tmp_path / "b.pt")),
                   tmp_path / "c.pt", progress=False)
    later = ConceptLearner(dataclasses.replace(tuned.config, context_size=16)).eval()  # a context CNN grown after it
    _load_init(later, tuned.eval(), "b.pt")  # its columns go in before the branch's, which move
    assert later.feature_columns()["max"] == slice(2 * width + 4 + 2 * base.config.width, 3 * width + 4 + 2 * base.config.width)
    images = load_split(split, "train", limit_images=3, context_size=16, progress=False).context_images([0, 1, 2])
    before, after = tuned(crops, boxes), later(crops, boxes, images=images)
    assert all(torch.allclose(before.attributes[g], after.attributes[g], atol=1e-5) for g in before.attributes)
    with pytest.raises(ConfigError, match="grow the detail CNN from a model without the branch"):
        _load_init(ConceptLearner(dataclasses.replace(ConceptLearner().config, max_pool=True, detail_size=48)),
                   ConceptLearner(dataclasses.replace(ConceptLearner().config, max_pool=True)), "m.pt")
    small = load_split(split, "train", limit_images=2, progress=False)  # without a detail CNN, the CNN's map
    plain = ConceptLearner(dataclasses.replace(ConceptLearner().config, max_pool=True)).eval()
    assert plain.object_mlp[0].weight.shape[1] == 2 * width + 4
    crops, boxes = small.objects([0, 1])
    assert plain(crops, boxes).attributes["shape"].shape[-1] == 3


def test_a_spatial_branch_keeps_the_maps_layout_starts_as_the_model_it_grows_from_and_learns(split, tmp_path, capsys):
    large = load_split(split, "train", limit_images=3, crop_size=48, progress=False)
    base, _ = train_nscl(large, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48), tmp_path / "a.pt",
                         progress=False)
    grown = ConceptLearner(dataclasses.replace(base.config, spatial=4)).eval()
    _load_init(grown, base, "a.pt")
    width, cells = 4 * base.config.width, 4 * 6 * 6  # 48-px crops: a 6 x 6 map, 4 channels per position
    assert grown.config.map_side == 6 and grown.object_mlp[0].weight.shape[1] == 2 * width + 4 + cells
    assert not grown.object_mlp[0].weight[:, -cells:].any()
    crops, boxes = large.objects([0, 1, 2])
    before, after = base.eval()(crops, boxes), grown(crops, boxes)
    for group in before.attributes:  # zero columns read the spatial branch until trained
        assert torch.allclose(before.attributes[group], after.attributes[group], atol=1e-5)
    flat = torch.cat(crops)  # the branch is the detail CNN's last map, reduced, position by position
    maps = grown.spatial_map(grown.detail_cnn[:-1](flat))
    assert maps.shape == (len(flat), 4, 6, 6)
    assert torch.allclose(grown._pooled(grown.detail_cnn, flat)[2], maps.flatten(1))
    moved = maps.clone()  # unlike the pools, the branch tells where on the crop a feature lies
    moved[..., :3, :], moved[..., 3:, :] = maps[..., 3:, :], maps[..., :3, :]
    assert moved.flatten(1).mean(1).allclose(maps.flatten(1).mean(1)) and not moved.equal(maps)
    assert grown.part_parameters("spatial")[-1] == (grown.object_mlp[0].weight, slice(2 * width + 4, 2 * width + 4 + cells))
    with pytest.raises(ValueError, match="no spatial branch"):
        base.part_parameters("spatial")
    with pytest.raises(ValueError, match="spatial branch reads crops of 48 px"):
        grown.object_features(flat[:, :, :40, :40], torch.cat(boxes))
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, spatial=4, part_lr="spatial:10",
                             init=str(tmp_path / "a.pt"), learning_rate=1e-2, batch_size=8)
    tuned, _ = train_nscl(large, config, tmp_path / "b.pt", progress=False)
    assert tuned.object_mlp[0].weight[:, -cells:].abs().sum() > 0  # gradients reach the zero columns
    assert not torch.equal(tuned.spatial_map[0].weight, grown.spatial_map[0].weight)  # and the reduction
    assert load_nscl(tmp_path / "b.pt")[0].config.spatial == 4
    for spatial in (0, 8):  # never dropped or resized silently
        with pytest.raises(ConfigError, match="its spatial 4 .at 48 px., this run's"):
            train_nscl(large, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, spatial=spatial,
                                              init=str(tmp_path / "b.pt")), tmp_path / "c.pt", progress=False)
    with pytest.raises(ConfigError, match="its spatial 2 .at 32 px., this run's 2 .at 48 px."):  # another map
        _load_init(ConceptLearner(dataclasses.replace(ConceptLearner().config, spatial=2, detail_size=48)),
                   ConceptLearner(dataclasses.replace(ConceptLearner().config, spatial=2)), "m.pt")
    with pytest.raises(ConfigError, match="grow the detail CNN from a model without the branch"):  # another CNN's
        _load_init(ConceptLearner(dataclasses.replace(ConceptLearner().config, spatial=2, crop_size=16, detail_size=32)),
                   ConceptLearner(dataclasses.replace(ConceptLearner().config, spatial=2)), "m.pt")
    both = ConceptLearner(dataclasses.replace(base.config, spatial=4, max_pool=True)).eval()  # max pool grown after it
    _load_init(both, tuned.eval(), "b.pt")  # the branch's columns stay last
    assert both.feature_columns()["spatial"] == slice(3 * width + 4, 3 * width + 4 + cells)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in
               zip(tuned(crops, boxes).attributes.values(), both(crops, boxes).attributes.values(), strict=True))
    small = load_split(split, "train", limit_images=2, progress=False)  # without a detail CNN, the CNN's 4 x 4 map
    plain = ConceptLearner(dataclasses.replace(ConceptLearner().config, spatial=2)).eval()
    assert plain.object_mlp[0].weight.shape[1] == width + 4 + 2 * 4 * 4
    crops, boxes = small.objects([0, 1])
    assert plain(crops, boxes).attributes["shape"].shape[-1] == 3
    with pytest.raises(ConfigError, match="spatial"):
        NSCLTrainConfig(spatial=-1)
    out = tmp_path / "cli.pt"  # the command records the flag
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--spatial", "2",
                 "--part-lr", "spatial:10", "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.spatial == 2 and "--spatial 2" in meta["command"]
    _assert_train_flag_refused("--spatial", ("-3", "x", "1.5"), "spatial", tmp_path, capsys)


def test_mask_crop_hides_what_lies_outside_the_object_and_can_start_from_a_model_without_it(split, tmp_path, capsys):
    from perception.datasets import ClevrDataset
    from reasoning.nscl.data import image_objects
    from reasoning.nscl.model import mask_outside
    from reasoning.nscl.perceiver import NSCLPerceiver

    crop = torch.rand(2, 4, 8, 8)
    crop[:, 3] = 0.0
    crop[0, 3, 2:5, 3:6] = 1.0  # a 3 x 3 object
    crop[1, 3] = 1.0  # all object
    out = mask_outside(crop)
    inside = crop[0, 3] > 0
    assert torch.equal(out[:, 3], crop[:, 3]) and torch.equal(out[1], crop[1])  # mask kept; all object: unchanged
    assert torch.equal(out[0, :3][:, inside], crop[0, :3][:, inside])
    fill = crop[0, :3][:, ~inside].mean(1)  # outside: the mean colour there
    assert torch.allclose(out[0, :3][:, ~inside], fill[:, None].expand(3, int((~inside).sum())))
    assert len(mask_outside(torch.zeros(0, 4, 8, 8))) == 0

    data = load_split(split, "train", limit_images=3, progress=False)
    base, _ = train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    masked = ConceptLearner(dataclasses.replace(base.config, mask_crop=True)).eval()
    _load_init(masked, base.eval(), "a.pt")  # the same weights: the option changes the input only
    crops, boxes = data.objects([0, 1, 2])
    moved = []  # the pixels outside every mask shuffled within each crop (their mean kept)
    for c in crops:
        c = c.clone()
        for k in range(len(c)):
            away = c[k, 3] == 0
            rgb = c[k, :3][:, away]
            c[k, :3][:, away] = rgb[:, torch.randperm(rgb.shape[1], generator=torch.Generator().manual_seed(k))]
        moved.append(c)
    with torch.no_grad():
        a, b = masked(crops, boxes), masked(moved, boxes)
        plain_a, plain_b = base(crops, boxes), base(moved, boxes)
        same = base([mask_outside(c) for c in crops], boxes)
    for g in a.attributes:  # a neighbour's pixels do not reach the masked model
        assert torch.allclose(a.attributes[g], b.attributes[g], atol=1e-5)
        assert torch.allclose(a.attributes[g], same.attributes[g], atol=1e-5)
    assert not torch.allclose(plain_a.attributes["material"], plain_b.attributes["material"], atol=1e-5)
    out = tmp_path / "b.pt"  # from pixels the perceiver's model masks as training did; the flag is recorded
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "3", "--epochs", "1", "--curriculum", "0:0",
                 "--init", str(tmp_path / "a.pt"), "--mask-crop", "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.mask_crop and "--mask-crop" in meta["command"] and not base.config.mask_crop
    assert any((x - y).abs().max() > 0 for x, y in zip(model.parameters(), base.parameters(), strict=True))
    assert not load_nscl(tmp_path / "a.pt")[0].config.mask_crop  # a file written before the option reads it off
    perceiver = NSCLPerceiver.from_checkpoint(out)
    item = ClevrDataset(split, "train")[0]
    scene = perceiver(item["image"])
    found = perceiver.proposals.instance_masks(item["image"])
    c, b = image_objects(item["image"], found, model.config.input_size)
    unmasked = ConceptLearner(dataclasses.replace(model.config, mask_crop=False))
    unmasked.load_state_dict(model.state_dict())
    with torch.no_grad():
        want = unmasked.eval()([mask_outside(c.float().div(255.0))], [b])
    assert torch.allclose(perceiver.scores_of(scene).attributes["material"], want.attributes["material"], atol=1e-5)


def test_mask_dilate_keeps_the_rim_a_proposal_mask_missed_and_hides_what_lies_beyond(split, tmp_path):
    from reasoning.nscl.model import ConceptConfig, mask_outside

    crop = torch.rand(1, 4, 9, 9)
    crop[:, 3] = 0.0
    crop[0, 3, 3:6, 3:6] = 1.0  # a 3 x 3 mask
    out = mask_outside(crop, 1)
    kept = torch.zeros(9, 9, dtype=torch.bool)
    kept[2:7, 2:7] = True  # the mask grown by one pixel
    assert torch.equal(out[0, 3], crop[0, 3])  # the mask channel as it came
    assert torch.equal(out[0, :3][:, kept], crop[0, :3][:, kept])  # the rim is kept
    fill = crop[0, :3][:, ~kept].mean(1)  # beyond it: the mean colour there
    assert torch.allclose(out[0, :3][:, ~kept], fill[:, None].expand(3, int((~kept).sum())))
    assert torch.equal(mask_outside(crop, 0), mask_outside(crop))
    rim = kept & (crop[0, 3] == 0)
    assert not torch.allclose(mask_outside(crop)[0, :3][:, rim], crop[0, :3][:, rim])  # undilated, the rim is hidden
    with pytest.raises(ValueError, match="dilate"):
        mask_outside(crop, -1)
    with pytest.raises(ValueError, match="mask_crop"):
        ConceptConfig(mask_dilate=2)
    for bad in (["--mask-dilate", "2"], ["--mask-crop", "--mask-dilate", "-1"]):  # refused by name
        with pytest.raises(ConfigError, match="mask dilate"):
            NSCLTrainConfig(**{"mask_crop": "--mask-crop" in bad, "mask_dilate": int(bad[-1])})

    data = load_split(split, "train", limit_images=2, progress=False)
    base, _ = train_nscl(data, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "a.pt", progress=False)
    grown = ConceptLearner(dataclasses.replace(base.config, mask_crop=True, mask_dilate=2)).eval()
    _load_init(grown, base.eval(), "a.pt")
    crops, boxes = data.objects([0, 1])
    with torch.no_grad():  # the model reads exactly the dilated masking of its crops
        got = grown(crops, boxes)
        want = base([mask_outside(c, 2) for c in crops], boxes)
    for g in got.attributes:
        assert torch.allclose(got.attributes[g], want.attributes[g], atol=1e-5)
    out = tmp_path / "b.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--curriculum", "0:0",
                 "--init", str(tmp_path / "a.pt"), "--mask-crop", "--mask-dilate", "2", "--out", str(out), "--quiet"]) == 0
    model, meta = load_nscl(out)
    assert model.config.mask_crop and model.config.mask_dilate == 2 and "--mask-dilate 2" in meta["command"]
    assert load_nscl(tmp_path / "a.pt")[0].config.mask_dilate == 0  # a file written before the option reads it 0


def test_other_masks_are_the_union_of_every_other_mask():
    from reasoning.nscl.data import other_masks

    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, 0, :2] = masks[1, 0, 1:3] = masks[2, 3, 3] = True  # 0 and 1 share pixel (0, 1)
    out = other_masks(masks)
    assert torch.equal(out[0], masks[1] | masks[2]) and torch.equal(out[2], masks[0] | masks[1])
    assert out[0, 0, 1] and out[1, 0, 1]  # a shared pixel is the other's too
    assert other_masks(masks[:1]).sum() == 0 and other_masks(masks[:0]).shape == (0, 4, 4)


def test_an_others_mask_channel_marks_the_neighbours_starts_as_the_model_it_grows_from_and_learns(
        split, tmp_path, capsys):
    from perception.derender.attributes import recrop
    from reasoning.nscl.data import image_objects, other_masks
    from reasoning.nscl.model import mask_outside

    plain = load_split(split, "train", limit_images=3, crop_size=48, progress=False)
    large = load_split(split, "train", limit_images=3, crop_size=48, progress=False, others_mask=True)
    assert all(c.shape[1] == 5 and torch.equal(c[:, :4], p) for c, p in zip(large.crops, plain.crops, strict=True))
    assert any(c[:, 4].any() for c in large.crops) and large.programs == plain.programs
    image, masks = torch.rand(3, 40, 60), torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 10:20, 10:20] = masks[1, 15:25, 18:30] = True  # 1 overlaps the right of 0
    crops, boxes = image_objects(image, masks, 32, others=True)
    theirs = recrop(image, other_masks(masks).float(), boxes, 1.0, 32)  # the others' masks cut with each own box
    assert crops.shape == (2, 5, 32, 32) and crops[0, 4, :, -8:].any() and not crops[0, 4, :, :8].any()
    assert torch.equal(crops[:, 4], theirs[:, 3].mul(255).round().to(torch.uint8))
    assert image_objects(image, masks[:0], 32, others=True)[0].shape == (0, 5, 32, 32)
    hidden = mask_outside(large.crops[0].float() / 255)  # mask_crop hides by the object's own mask, keeps the channel
    assert torch.equal(hidden[:, 3:], large.crops[0][:, 3:].float() / 255)

    base, _ = train_nscl(plain, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48), tmp_path / "a.pt",
                         progress=False)
    grown = ConceptLearner(dataclasses.replace(base.config, others_mask=True)).eval()
    _load_init(grown, base, "a.pt")
    for cnn in (grown.cnn, grown.detail_cnn):  # the new channel read by zero weights
        assert cnn[0][0].weight.shape[1] == 5 and not cnn[0][0].weight[:, 4].any()
    crops5, boxes = large.objects([0, 1, 2])
    crops4, _ = plain.objects([0, 1, 2])
    before, after = base.eval()(crops4, boxes), grown(crops5, boxes)
    for group in before.attributes:
        assert torch.allclose(before.attributes[group], after.attributes[group], atol=1e-5)
    with pytest.raises(ValueError, match="reads crops of 5 channels"):
        grown(crops4, boxes)
    assert [cols for _, cols in grown.part_parameters("others")] == [slice(4, 5)] * 2
    with pytest.raises(ValueError, match="no others' mask channel"):
        base.part_parameters("others")
    with pytest.raises(ConfigError, match="others mask True, but the training data's crops have 4 channels"):
        train_nscl(plain, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, others_mask=True),
                   tmp_path / "x.pt", progress=False)
    config = NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, others_mask=True, part_lr="others:10",
                             init=str(tmp_path / "a.pt"), learning_rate=1e-2, batch_size=8)
    tuned, _ = train_nscl(large, config, tmp_path / "b.pt", progress=False)
    assert tuned.cnn[0][0].weight[:, 4].abs().sum() > 0 and tuned.detail_cnn[0][0].weight[:, 4].abs().sum() > 0
    assert load_nscl(tmp_path / "b.pt")[0].config.others_mask
    with pytest.raises(ConfigError, match="its others mask True, this run's False"):  # never dropped silently
        train_nscl(plain, NSCLTrainConfig(epochs=1, curriculum="0:0", detail_size=48, init=str(tmp_path / "b.pt")),
                   tmp_path / "c.pt", progress=False)
    out, cache = tmp_path / "cli.pt", tmp_path / "cache"  # the command reads the channel, caches it apart, records it
    for others, to in (([], tmp_path / "plain.pt"), (["--others-mask"], out)):
        assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", *others,
                     "--cache", str(cache), "--out", str(to), "--quiet"]) == 0
    assert len(list(cache.iterdir())) == 2
    model, meta = load_nscl(out)
    assert model.config.others_mask and "--others-mask" in meta["command"]
    report = tmp_path / "eval.json"  # from pixels: the perceiver cuts the other proposals' masks too
    assert main(["eval", "clevr", "--data", str(split), "--split", "train", "--model", "nscl", "--checkpoint",
                 str(out), "--parser", "gt", "--limit", "10", "--out", str(report)]) == 0
    assert json.loads(report.read_text())["questions"] == 10
    _assert_train_flag_refused("--part-lr", ("others:0", "other:2"), "part lr", tmp_path, capsys)


def test_a_question_whose_program_names_an_unknown_function_is_skipped_when_read(split, tmp_path):
    # it was admitted, and the soft executor would have stopped training at its first batch
    bad = tmp_path / "bad"
    shutil.copytree(split, bad)
    path = bad / "CLEVR_train_questions.json"
    data = json.loads(path.read_text())
    first = next(q for q in data["questions"] if q["image_index"] == 0)
    first["program"][1]["function"] = "teleport"
    path.write_text(json.dumps(data))
    good, read = load_split(split, "train", limit_images=1, progress=False), load_split(bad, "train", limit_images=1,
                                                                                        progress=False)
    assert len(read.programs) == len(good.programs) - 1 and len(read.skipped) == len(good.skipped) + 1
    assert "node 1: unknown function 'teleport'" in read.skipped[-1]


@pytest.mark.parametrize("programs", ["gt", "none"])
def test_a_repeated_question_and_a_non_string_answer_are_skipped_when_read_and_reported_by_the_command(
        split, tmp_path, capsys, programs):
    """A question given twice was learnt twice and an answer of NaN was learnt as the word 'nan', without a word."""
    bad = tmp_path / "bad"
    shutil.copytree(split, bad)
    path = bad / "CLEVR_train_questions.json"
    data = json.loads(path.read_text())
    first = [k for k, q in enumerate(data["questions"]) if q["image_index"] == 0]
    data["questions"].append(dict(data["questions"][first[0]]))
    data["questions"][first[1]]["answer"] = float("nan")
    data["questions"][first[2]]["question_index"] = "x"
    path.write_text(json.dumps(data))
    good, read = (load_split(d, "train", limit_images=1, progress=False, programs=programs) for d in (split, bad))
    assert len(read) == len(good) - 2 and len(read.skipped) == len(good.skipped) + 3
    assert read.skipped[-3:] == [
        f"CLEVR_train_000000.png question {data['questions'][first[1]]['question_index']}: 'answer' must be a string, "
        "a count or true/false, got nan",
        "CLEVR_train_000000.png question x: question_index must be a whole number, got 'x'",
        f"CLEVR_train_000000.png question {data['questions'][first[0]]['question_index']}: question_index given "
        "twice; learnt once"]
    assert "nan" not in read.answers
    if programs == "gt":
        assert main(["train", "nscl", "--data", str(bad), "--limit-images", "1", "--epochs", "1", "--out",
                     str(tmp_path / "m.pt"), "--quiet"]) == 0
        err = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
        assert err == [f"skipped 3 question(s) of the training split, not used; first: {read.skipped[0]}"]


def test_parsed_programs_never_read_the_files_programs_and_train_the_same(split, tmp_path):
    # programs="parser": the questions file's programs deleted or scrambled change neither the data nor a step
    from reasoning.parser import load_default_parser

    parser = load_default_parser()
    for name, change in (("deleted", lambda q: q.pop("program")),
                         ("scrambled", lambda q: q.__setitem__("program", [{"function": "teleport", "inputs": []}]))):
        copy = tmp_path / name
        shutil.copytree(split, copy)
        path = copy / "CLEVR_train_questions.json"
        questions = json.loads(path.read_text())
        for q in questions["questions"]:
            change(q)
        path.write_text(json.dumps(questions))
        gt = load_split(copy, "train", limit_images=4, progress=False)
        assert len(gt) == 0 and len(gt.skipped) == 40  # the file's programs are gone for programs="gt"
    a = load_split(split, "train", limit_images=4, progress=False, programs="parser", parser=parser)
    b = load_split(tmp_path / "deleted", "train", limit_images=4, progress=False, programs="parser", parser=parser)
    c = load_split(tmp_path / "scrambled", "train", limit_images=4, progress=False, programs="parser", parser=parser)
    assert len(a) == len(b) == len(c) == 40 - len(a.skipped) and len(a) > 30
    assert a.programs == b.programs == c.programs and a.answers == b.answers == c.answers and a.image == c.image
    assert a.program_source == "parser"
    config = NSCLTrainConfig(epochs=1, batch_size=64, curriculum="0:0", programs="parser")
    ma, meta = train_nscl(a, config, tmp_path / "a.pt", progress=False)
    mc, _ = train_nscl(c, config, tmp_path / "c.pt", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mc.state_dict().values(), strict=True))
    assert meta["programs"] == "parser" and load_nscl(tmp_path / "a.pt")[1]["programs"] == "parser"


def test_a_question_the_parser_cannot_parse_is_skipped_and_counted(split):
    class Stub:  # the shipped parser's interface: None where no well-typed program was decoded
        def __init__(self):
            self.seen: list[str] = []

        def parse(self, questions):
            self.seen += questions
            return [None] + [load_split(split, "train", limit_images=1, progress=False).programs[0]] * (len(questions) - 1)

    stub = Stub()
    read = load_split(split, "train", limit_images=1, progress=False, programs="parser", parser=stub)
    assert len(stub.seen) == 10 and len(read) == 9 and len(read.skipped) == 1  # one batched parse of the 10
    assert "the parser found no well-typed program" in read.skipped[0]


def test_the_programs_switch_is_checked_against_the_data_and_a_bad_one_named(split, tmp_path, capsys):
    with pytest.raises(ConfigError, match="programs: choose one of gt, parser, none, got 'oracle'"):
        NSCLTrainConfig(programs="oracle")
    with pytest.raises(ConfigError, match="programs: choose one of gt, parser"):
        load_split(split, "train", limit_images=1, progress=False, programs="oracle")
    gt = load_split(split, "train", limit_images=1, progress=False)
    with pytest.raises(ConfigError, match="programs parser, but the training data's programs come from gt"):
        train_nscl(gt, NSCLTrainConfig(epochs=1, programs="parser"), tmp_path / "x.pt", progress=False)
    parsed = load_split(split, "train", limit_images=1, progress=False, programs="parser")
    with pytest.raises(ConfigError, match="different sources"):
        join_sets([gt, parsed])
    out = tmp_path / "run" / "nscl.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--epochs", "1", "--programs", "parser",
                 "--eval-data", str(split), "--eval-split", "train", "--out", str(out), "--quiet"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["programs"] == "parser" and summary["train_questions"] + summary["skipped_questions"] == 20
    _, meta = load_nscl(out)
    assert meta["programs"] == "parser" and "--programs parser" in meta["command"]
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["train", "nscl", "--data", str(split), "--programs", "oracle", "--out", str(out), "--quiet"])
    assert "argument --programs: invalid choice: 'oracle'" in capsys.readouterr().err
