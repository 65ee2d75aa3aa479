"""GAN dissection: IoU of units with the segmenter's concepts, ablation and insertion by forward hooks."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from perception.generative.autoencoder import CodecConfig, ConvDecoder
from perception.generative.scenes import SHAPES
from perception.generative.segmenter import ShapeSegmenter, segment
from perception.interpret.gan_dissection import (
    BENCH_RULE,
    LAYER,
    QUANTILES,
    RESIZE_CODEC,
    SPECTRAL_CODEC,
    UNITS,
    WIDE_CODEC,
    LabelRule,
    ObjectShapeLabeller,
    _intervention_figures,
    ablate,
    balanced_snapshot,
    bench_gan_dissection,
    dissect,
    edited,
    insert,
    judges_agreement,
    labeller_iou_on_renders,
    layer_activations,
    sample_shape_shares,
    shape_shares,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = CodecConfig(height=16, width=24, latent=4, channels=4)


class _RedIsCube(ShapeSegmenter):
    """A segmenter that calls a pixel 'cube' where red exceeds 0.5."""

    def forward(self, images):
        logits = torch.zeros(len(images), 1 + len(SHAPES), *images.shape[-2:])
        logits[:, 1] = (images[:, 0] > 0.5).float() * 10 - 5
        return logits


class _RedCubeGreenSphere(ShapeSegmenter):
    """'sphere' where green exceeds 0.5, 'cube' where red does and green does not."""

    def forward(self, images):
        logits = torch.zeros(len(images), 1 + len(SHAPES), *images.shape[-2:])
        logits[:, 1] = (images[:, 0] > 0.5).float() * 10 - 5
        logits[:, 2] = (images[:, 1] > 0.5).float() * 20 - 10
        return logits


def _generator() -> ConvDecoder:
    torch.manual_seed(0)
    return ConvDecoder(TINY).eval()


def test_activations_and_iou_have_one_row_per_unit_within_zero_and_one():
    gen, z = _generator(), torch.randn(6, TINY.latent, generator=torch.Generator().manual_seed(0))
    acts, images = layer_activations(gen, z, 0)
    assert acts.shape == (6, 2 * TINY.channels, 4, 6) and images.shape == (6, 3, 16, 24)
    result = dissect(gen, _RedIsCube(4), z, 0)
    assert result.iou.shape == (2 * TINY.channels, len(SHAPES))
    assert float(result.iou.min()) >= 0 and float(result.iou.max()) <= 1
    assert float(result.iou[:, 1:].max()) == 0.0  # no sphere or cylinder pixels at all
    assert result.best_units(0, 3).tolist() == result.iou[:, 0].argsort(descending=True)[:3].tolist()
    assert result.specific_units(0, 3).tolist() == result.best_units(0, 3).tolist()  # the other concepts are empty
    with pytest.raises(ConfigError):
        layer_activations(gen, z, 5)


def _painting_generator() -> ConvDecoder:
    """Unit 3 of block 0 lights the red channel where it is active, unit 5 the green one; nothing else draws."""
    gen = _generator()
    with torch.no_grad():
        for p in gen.blocks[1].parameters():
            p.zero_()
        gen.to_rgb.weight.zero_()
        gen.to_rgb.bias.fill_(-3.0)
        gen.blocks[1][0].weight[3, 0] = 1.0  # unit 3 -> channel 0 of block 1
        gen.blocks[1][1].weight.fill_(1.0)
        gen.blocks[1][1].running_var.fill_(1.0)
        gen.blocks[1][1].running_mean.zero_()
        gen.to_rgb.weight[0, 0] = 4.0
        gen.blocks[1][0].weight[5, 1] = 1.0  # unit 5 -> channel 1 of block 1 -> green
        gen.to_rgb.weight[1, 1] = 4.0
    return gen


def test_a_unit_that_paints_the_concept_is_found_first():
    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    result = dissect(gen, _RedIsCube(4), z, 0)
    assert int(result.best_units(0, 1)) == 3 and float(result.iou[3, 0]) > 0.3


def test_ablation_and_insertion_edit_only_the_chosen_units_and_the_hook_is_removed():
    gen, z = _generator(), torch.randn(3, TINY.latent, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = gen(z)
    none = torch.tensor([], dtype=torch.long)
    assert torch.allclose(ablate(gen, z, 0, none), plain)
    assert not torch.allclose(ablate(gen, z, 0, torch.arange(8)), plain)
    units = torch.tensor([0, 1])
    out = insert(gen, z, 0, units, torch.tensor([5.0, 5.0]), (0, 1, 0, 1))
    changed = (out - plain).abs().sum((0, 1)) > 1e-6
    assert changed[:8, :8].any() and not changed[10:, 14:].any()  # a patch of the 4x6 grid touches its corner only
    with edited(gen, 0, lambda out: out * 0):
        pass
    with torch.no_grad():
        assert torch.allclose(gen(z), plain)


def test_ablating_the_cube_unit_removes_cubes_and_leaves_spheres_pixel_for_pixel():
    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    seg = _RedCubeGreenSphere(4)
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    args = (cube, sphere, [(0, 0)], 1, 4, 0)
    ours = _intervention_figures(gen, seg, z, torch.tensor([3]), torch.tensor([5.0]), *args)
    assert ours["cube_pixels_before"] > 0 and ours["sphere_pixels_before"] > 0
    assert ours["cube_removed"] == 1.0 and ours["cube_pixels_after"] == 0
    assert ours["sphere_change"] == 0.0 and ours["sphere_pixels_lost"] == 0.0
    both = _intervention_figures(gen, seg, z, torch.tensor([3, 5]), torch.tensor([5.0, 5.0]), *args)
    assert both["sphere_change"] == 1.0 and both["sphere_pixels_lost"] == 1.0  # the sphere unit went too
    # pixel by pixel never below the count's loss: losses elsewhere are not offset by gains
    assert both["sphere_pixels_lost"] >= 1 - both["sphere_pixels_after"] / both["sphere_pixels_before"]


def test_with_no_cube_pixels_to_begin_with_nothing_counts_as_removed():
    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        gen.to_rgb.weight[0, 0] = 0.0  # nothing red: no cubes
    out = _intervention_figures(gen, _RedCubeGreenSphere(4), z, torch.tensor([5]), torch.tensor([5.0]),
                                SHAPES.index("cube"), SHAPES.index("sphere"), [(0, 0)], 1, 4, 0)
    assert out["cube_pixels_before"] == 0 and math.isnan(out["cube_removed"])
    assert not out["cube_removed"] >= 0.5  # the check's comparison fails


class _GreenMeansCylinder(torch.nn.Module):
    """An attribute network stub: 'cylinder' when the crop's object is green, else 'sphere'."""

    def forward(self, crops, boxes):
        inside = crops[:, 3] > 0.5
        green = (crops[:, 1] * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)
        logits = torch.zeros(len(crops), len(SHAPES))
        logits[:, SHAPES.index("sphere")] = 0.5
        logits[:, SHAPES.index("cylinder")] = green
        return {"shape": logits}, torch.zeros(len(crops), 2)


def test_object_labeller_gives_each_segmented_object_the_attribute_networks_shape():
    images = torch.zeros(2, 3, 16, 24)
    images[0, 0, 2:6, 2:6] = 1.0  # red square: the segmenter says cube, the stub sphere
    images[0, :2, 9:14, 15:20] = 1.0  # yellow square: cube per pixel, cylinder per object
    images[1, 0, 0, 0:2] = 1.0  # a 2-pixel speck: not an object
    labels = ObjectShapeLabeller(_RedIsCube(4), _GreenMeansCylinder(), crop_size=16)(images)
    assert labels.shape == (2, 16, 24) and labels.dtype == torch.int64
    assert (labels[0, 2:6, 2:6] == 1 + SHAPES.index("sphere")).all()
    assert (labels[0, 9:14, 15:20] == 1 + SHAPES.index("cylinder")).all()
    assert int((labels[0] > 0).sum()) == 16 + 25 and int(labels[1].sum()) == 0
    assert not ObjectShapeLabeller(_RedIsCube(4), _GreenMeansCylinder(), 16)(torch.zeros(1, 3, 16, 24)).any()


def test_label_rules_split_touching_objects_by_the_segmenters_labels_and_let_it_vote():
    images = torch.zeros(1, 3, 16, 24)
    images[0, 0, 2:6, 2:6] = 1.0  # red 4x4: cube per pixel
    images[0, 1, 2:6, 6:12] = 1.0  # green 4x6 touching it: sphere per pixel
    cube, sphere, cylinder = (1 + SHAPES.index(s) for s in ("cube", "sphere", "cylinder"))
    seg, attr = _RedCubeGreenSphere(4), _GreenMeansCylinder()
    merged = ObjectShapeLabeller(seg, attr, 16)(images)[0]  # one component, 60% green: cylinder throughout
    assert (merged[2:6, 2:12] == cylinder).all() and int((merged > 0).sum()) == 40
    split = ObjectShapeLabeller(seg, attr, 16, rule=LabelRule(per_label=True))(images)[0]
    assert (split[2:6, 2:6] == sphere).all() and (split[2:6, 6:12] == cylinder).all()  # two objects, two calls
    voted = ObjectShapeLabeller(seg, attr, 16, rule=LabelRule(per_label=True, segmenter_vote=True))(images)[0]
    assert (voted[2:6, 2:6] == cube).all() and (voted[2:6, 6:12] == sphere).all()  # the segmenter's sure calls win
    assert torch.equal(voted, segment(seg, images)[0])
    assert ObjectShapeLabeller(seg, attr, 16, rule=BENCH_RULE)(images).shape == (1, 16, 24)


def test_labeller_iou_on_renders_compares_with_the_renderers_shape_maps():
    images = torch.zeros(1, 3, 16, 24)
    images[0, 0, 2:6, 2:6] = 1.0
    truth = torch.zeros(1, 16, 24, dtype=torch.int64)
    truth[0, 2:6, 2:8] = 1 + SHAPES.index("cube")  # 24 true cube pixels, 16 of them found
    truth[0, 10:12, 10:12] = 1 + SHAPES.index("sphere")  # never found
    iou = labeller_iou_on_renders(_RedIsCube(4), images, truth)
    assert iou[SHAPES.index("cube")] == pytest.approx(16 / 24) and iou[SHAPES.index("sphere")] == 0.0
    assert math.isnan(iou[SHAPES.index("cylinder")])  # neither side has cylinders


def test_dissection_and_interventions_take_any_labeller_as_the_segmenter_would_give():
    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    seg = _RedCubeGreenSphere(4)
    by_callable = dissect(gen, lambda images: segment(seg, images), z, 0)
    assert torch.equal(by_callable.iou, dissect(gen, seg, z, 0).iou)
    args = (z, torch.tensor([3]), torch.tensor([5.0]), SHAPES.index("cube"), SHAPES.index("sphere"), [(0, 0)], 1, 4, 0)
    assert _intervention_figures(gen, lambda images: segment(seg, images), *args) == _intervention_figures(gen, seg, *args)


def _naive_iou(maps: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The definition read literally: every (unit, concept, quantile) mask compared with every concept's mask."""
    flat = maps.transpose(0, 1).reshape(maps.shape[1], -1)
    q = torch.tensor(QUANTILES)
    pick = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))[:200_000]
    cuts = torch.quantile(flat[:, pick], q, dim=1).T
    iou, threshold, high = (torch.zeros(flat.shape[0], len(SHAPES)) for _ in range(3))
    for u in range(flat.shape[0]):
        on = flat[u][None, :] > cuts[u][:, None]
        for c in range(len(SHAPES)):
            s = (labels == c + 1).flatten()[None, :]
            scores = (on & s).sum(1).float() / (on | s).sum(1).float().clamp(min=1)
            best = int(scores.argmax())
            iou[u, c], threshold[u, c] = scores[best], cuts[u, best]
            high[u, c] = flat[u][on[best]].mean() if on[best].any() else flat[u].max()
    return iou, threshold, high


def test_counted_iou_equals_the_literal_definition_on_a_wide_layer():
    cfg = CodecConfig(height=16, width=24, latent=4, channels=4, decoder_widths=(8, 40, 4))
    torch.manual_seed(0)
    gen = ConvDecoder(cfg).eval()
    z = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))

    def labeller(images):  # three concepts of different sizes from the colour channels
        out = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.int64)
        m = images.mean((0, 2, 3))
        for c, margin in enumerate((0.002, 0.004, 0.006)):
            out[images[:, c] > m[c] + margin] = c + 1
        return out

    result = dissect(gen, labeller, z, 0)
    acts, images = layer_activations(gen, z, 0)
    assert acts.shape[1] == 40 and result.iou.shape == (40, len(SHAPES))
    maps = torch.stack([F.interpolate(acts[:, u:u + 1], size=images.shape[-2:], mode="bilinear",
                                      align_corners=False)[:, 0] for u in range(40)], 1)
    labels = labeller(images)
    assert all(int((labels == c + 1).sum()) > 0 for c in range(len(SHAPES)))
    iou, threshold, high = _naive_iou(maps, labels)
    assert float(iou.max()) > 0.05  # not a comparison of zeros
    torch.testing.assert_close(result.iou, iou, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.threshold, threshold, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.high, high, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="ascending"):
        dissect(gen, labeller, z, 0, quantiles=(0.9, 0.8))


def test_the_wide_option_has_hundreds_of_units_in_its_middle_layer():
    gen = ConvDecoder(WIDE_CODEC)
    acts, images = layer_activations(gen, torch.randn(2, WIDE_CODEC.latent), LAYER)
    assert acts.shape[1] == WIDE_CODEC.decoder_channels[1] >= 256
    assert images.shape == (2, 3, WIDE_CODEC.height, WIDE_CODEC.width)
    assert UNITS / acts.shape[1] <= 0.04  # 10 units are a few per cent of the layer, as 20 of 512 in the paper


@pytest.mark.slow
def test_the_entry_dissects_the_resize_generator_and_the_options_the_transposed_and_wide_ones():
    from perception.generative.gan import GAN_CODEC, train_gan_run

    plain = bench_gan_dissection(True, 0)
    hits = train_gan_run.cache_info().hits
    assert train_gan_run(True, 0, RESIZE_CODEC).gan.config.upsample == "nearest"
    assert train_gan_run.cache_info().hits == hits + 1  # the entry trained RESIZE_CODEC's GAN
    wide = bench_gan_dissection(True, 0, WIDE_CODEC)
    assert plain.figures["generator_widths"] == list(GAN_CODEC.decoder_channels)
    assert plain.figures["units_in_layer"] == GAN_CODEC.decoder_channels[1] == 48
    assert wide.figures["units_in_layer"] == 256 and len(wide.checks) == len(plain.checks) == 6
    transposed = bench_gan_dissection(True, 0, GAN_CODEC)
    assert transposed.figures["units_in_layer"] == 48 and len(transposed.checks) == 6
    spectral = bench_gan_dissection(True, 0, SPECTRAL_CODEC)  # the spectral-norm encoder option
    assert spectral.figures["units_in_layer"] == 48 and len(spectral.checks) == 6
    assert SPECTRAL_CODEC == RESIZE_CODEC.__class__(**{**RESIZE_CODEC.__dict__, "encoder_norm": "spectral"})
    averaged = bench_gan_dissection(True, 0, SPECTRAL_CODEC, ema=0.5)
    assert len(averaged.checks) == 6
    last, mean = (train_gan_run(True, 0, SPECTRAL_CODEC, e).gan.generator for e in (0.0, 0.5))
    assert not torch.equal(last.blocks[0][1].weight, mean.blocks[0][1].weight)  # ema reaches the dissected GAN
    assert plain.figures["label_rule"] == {"per_label": BENCH_RULE.per_label, "segmenter_vote": BENCH_RULE.segmenter_vote}
    truth = plain.figures["labeller_iou_on_real_renders"]
    assert set(truth) == {"class masks", "one shape per foreground component", "per-pixel segmenter"}
    assert all(set(v) == set(SHAPES) for v in truth.values())


@pytest.mark.slow
def test_the_balanced_option_dissects_the_snapshot_nearest_the_renders_shape_balance():
    from perception.generative.gan import _QUICK, _renders_and_judges, fit_gan
    from perception.interpret.gan_dissection import balanced_gan_run

    run, pick, dist = balanced_gan_run(True, 0, SPECTRAL_CODEC)
    assert set(dist) == {2, 3} and pick in dist and dist[pick] == min(dist.values())  # quick: 3 steps, snapshots 2 and 3
    train = _renders_and_judges(True, 0)[0]
    snaps = {pick: None}
    fit_gan(train.images, SPECTRAL_CODEC, steps=_QUICK.gan_steps, batch=_QUICK.batch, lr=_QUICK.lr, seed=0, snapshots=snaps)
    assert all(torch.equal(a, b) for a, b in zip(run.gan.generator.state_dict().values(),
                                                  snaps[pick].state_dict().values(), strict=True))
    outcome = bench_gan_dissection(True, 0, SPECTRAL_CODEC, balanced=True)
    assert len(outcome.checks) == 6 and outcome.figures["snapshot"]["step"] == pick
    with pytest.raises(ConfigError, match="balanced"):
        bench_gan_dissection(True, 0, SPECTRAL_CODEC, ema=0.5, balanced=True)


class _BlueMeansCube(torch.nn.Module):
    """An attribute network stub: 'cube' when the crop's object is blue, else 'sphere'."""

    def forward(self, crops, boxes):
        inside = crops[:, 3] > 0.5
        blue = (crops[:, 2] * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)
        logits = torch.zeros(len(crops), len(SHAPES))
        logits[:, SHAPES.index("sphere")] = 0.5
        logits[:, SHAPES.index("cube")] = blue
        return {"shape": logits}, torch.zeros(len(crops), 2)


def test_judges_agreement_counts_objects_whose_two_shape_calls_match():
    images = torch.zeros(2, 3, 16, 24)
    images[0, 0, 1:5, 1:5] = 1.0  # red: segmenter cube, stub sphere -> disagree
    images[0, 1, 1:5, 10:14] = 1.0  # green: segmenter sphere, stub sphere -> agree
    images[0, 0, 9:14, 15:20] = images[0, 2, 9:14, 15:20] = 1.0  # magenta: cube and cube -> agree
    images[1, 0, 0, 0:2] = 1.0  # a 2-pixel speck: not an object
    assert judges_agreement(_RedCubeGreenSphere(4), _BlueMeansCube(), images, 16) == (2 / 3, 3)
    assert judges_agreement(_RedCubeGreenSphere(4), _BlueMeansCube(), images[1:], 16) == (0.0, 0)


def test_the_resize_option_is_the_gan_benchs_generator_with_resize_up_sampling():
    from perception.generative.gan import GAN_CODEC

    assert RESIZE_CODEC.upsample == "nearest" and RESIZE_CODEC.decoder_channels == GAN_CODEC.decoder_channels
    gen = ConvDecoder(RESIZE_CODEC)
    acts, images = layer_activations(gen, torch.randn(2, RESIZE_CODEC.latent), LAYER)
    plain, _ = layer_activations(ConvDecoder(GAN_CODEC), torch.randn(2, GAN_CODEC.latent), LAYER)
    assert acts.shape == plain.shape and images.shape == (2, 3, RESIZE_CODEC.height, RESIZE_CODEC.width)


class _Painter(torch.nn.Module):
    """A stand-in generator: every sample is the same image, a red square of ``red`` pixels per side and a green one."""

    def __init__(self, red: int, green: int) -> None:
        super().__init__()
        self.image = torch.zeros(3, 16, 24)
        self.image[0, 1:1 + red, 1:1 + red] = 1.0
        self.image[1, 8:8 + green, 12:12 + green] = 1.0

    def forward(self, z):
        return self.image.expand(len(z), -1, -1, -1)


def test_shape_shares_are_each_shapes_fraction_of_the_labelled_object_pixels():
    seg = _RedCubeGreenSphere(4)
    shares = shape_shares(seg, _Painter(4, 2)(torch.zeros(3, 1)))  # 16 cube and 4 sphere pixels per image
    assert shares.tolist() == pytest.approx([0.8, 0.2, 0.0])
    assert shape_shares(seg, torch.zeros(2, 3, 16, 24)).tolist() == [0.0, 0.0, 0.0]  # no objects: zeros, no NaN


def test_sample_shape_shares_count_each_sample_once_by_its_largest_shape_and_the_empty_ones_apart():
    seg = _RedCubeGreenSphere(4)
    images = torch.cat([_Painter(4, 2)(torch.zeros(3, 1)),  # 16 cube, 4 sphere pixels: three cube samples
                        _Painter(2, 4)(torch.zeros(1, 1)),  # 4 cube, 16 sphere pixels: one sphere sample
                        torch.zeros(4, 3, 16, 24)])  # four samples with no object
    shares = sample_shape_shares(seg, images)
    assert shares == pytest.approx({"cube": 0.75, "sphere": 0.25, "cylinder": 0.0, "empty": 0.5})
    # pixels would say otherwise: a shape drawn small weighs as much as one drawn large
    assert shape_shares(seg, images[:4]).tolist() == pytest.approx([52 / 80, 28 / 80, 0.0])
    assert sample_shape_shares(seg, torch.zeros(2, 3, 16, 24)) == {"cube": 0.0, "sphere": 0.0, "cylinder": 0.0, "empty": 1.0}


def test_the_balanced_snapshot_is_the_one_whose_shape_shares_match_the_renders():
    seg, z = _RedCubeGreenSphere(4), torch.zeros(2, 1)
    real = _Painter(3, 3)(torch.zeros(4, 1))  # renders: half cube, half sphere
    gens = {100: _Painter(4, 0), 200: _Painter(3, 3), 300: _Painter(2, 4)}  # cube only, balanced, mostly sphere
    pick, dist = balanced_snapshot(gens, seg, real, z)
    assert pick == 200 and dist[200] == pytest.approx(0.0)
    assert dist[100] == pytest.approx(1.0) and dist[300] == pytest.approx(2 * abs(4 / 20 - 0.5))
    assert balanced_snapshot({1: _Painter(3, 3), 2: _Painter(3, 3)}, seg, real, z)[0] == 2  # ties: the later step
    with pytest.raises(ConfigError, match="no generators"):
        balanced_snapshot({}, seg, real, z)


class _SquareGenerator(torch.nn.Module):
    """A stand-in generator: z[:, 0] in {0, 1, 2} is a shape, z[:, 1] a column; ``blocks[0]`` holds 3 units on a
    4 x 6 grid: unit s fires on a 1 x 2 patch at the column for shape s (``by_shape``), or all three everywhere
    whatever the shape (units without shape)."""

    def __init__(self, by_shape: bool) -> None:
        super().__init__()
        self.by_shape = by_shape
        self.blocks = torch.nn.ModuleList([torch.nn.Identity()])

    def forward(self, z):
        acts = torch.zeros(len(z), 3, 4, 6)
        for i, (s, col) in enumerate(z[:, :2].long().tolist()):
            if self.by_shape:
                acts[i, s, 1:2, col:col + 2] = 1.0
            else:
                acts[i] = 1.0
        acts = self.blocks[0](acts)
        image = torch.zeros(len(z), 3, 16, 24)
        for i, (s, col) in enumerate(z[:, :2].long().tolist()):
            image[i, s, 4:8, 4 * col:4 * col + 8] = 1.0  # the channel is the shape (for the labeller)
        return image


def _channel_labeller(images):
    """Labels: 1 + the lit channel where a pixel is lit, 0 elsewhere."""
    lit = images.max(1)
    return torch.where(lit.values > 0.5, lit.indices + 1, torch.zeros_like(lit.indices))


def test_the_shape_probe_reads_shape_units_and_not_object_units():
    from perception.interpret.gan_dissection import shape_probe

    g = torch.Generator().manual_seed(0)
    z = torch.stack([torch.randint(0, 3, (60,), generator=g), torch.randint(0, 4, (60,), generator=g)], 1).float()
    z[:30, 0] = torch.tensor([0, 0, 1, 2] * 7 + [0, 0])  # train half: cubes the majority
    shape = shape_probe(_SquareGenerator(True), _channel_labeller, z, 0, chunk=7)
    assert shape["accuracy"] == 1.0 and shape["objects"] == 60
    assert shape["objects_per_shape"] == torch.bincount(z[:, 0].long(), minlength=3).tolist()
    objects = shape_probe(_SquareGenerator(False), _channel_labeller, z, 0)
    test = z[30:, 0].long()
    assert objects["majority"] == float(torch.bincount(test).max()) / 30
    assert objects["accuracy"] == float((test == 0).float().mean()) <= objects["majority"]  # the train majority's rate
    with pytest.raises(ConfigError, match="objects"):
        shape_probe(_SquareGenerator(True), _channel_labeller, z[:3], 0)


@pytest.mark.slow
def test_the_conditional_option_trains_a_shape_conditioned_gan_and_dissects_it():
    from perception.generative.gan import _renders_and_judges, train_gan_run
    from perception.generative.scenes import SHAPE_CONDITIONS, shape_conditions
    from perception.interpret.gan_dissection import CONDITIONAL_CODEC

    assert CONDITIONAL_CODEC == SPECTRAL_CODEC.__class__(**{**SPECTRAL_CODEC.__dict__, "conditions": SHAPE_CONDITIONS})
    outcome = bench_gan_dissection(True, 0, CONDITIONAL_CODEC)
    assert len(outcome.checks) == 6 and outcome.figures["conditions"] == SHAPE_CONDITIONS
    assert {"accuracy", "majority"} <= set(outcome.figures["shape_probe"])
    gan = train_gan_run(True, 0, CONDITIONAL_CODEC).gan
    assert torch.equal(gan.condition_pool, shape_conditions(_renders_and_judges(True, 0)[0]))
    assert bench_gan_dissection(True, 0).figures["conditions"] == 0  # the entry stays unconditional
    with pytest.raises(ConfigError, match="shape_conditions"):
        train_gan_run(True, 0, CodecConfig(channels=24, conditions=3))


def test_condition_match_counts_each_shapes_objects_against_the_asked_counts():
    from perception.generative.scenes import MAX_OBJECTS
    from perception.interpret.gan_dissection import condition_match

    images = torch.zeros(3, 3, 12, 12)
    images[0, 0, 1:4, 1:4] = 1.0  # image 0: two cubes (channel 0) and a sphere (channel 1)
    images[0, 0, 1:4, 8:11] = 1.0
    images[0, 1, 8:11, 1:4] = 1.0
    images[1, 2, 1:4, 1:4] = 1.0  # image 1: one cylinder
    images[2, 0, 5:6, 5:6] = 1.0  # image 2: one lit pixel, under min_pixels: nothing

    def code(counts):
        return torch.cat([F.one_hot(torch.tensor(c), MAX_OBJECTS + 1) for c in counts]).float()

    asked = torch.stack([code([2, 1, 0]), code([0, 1, 1]), code([0, 0, 0])])
    got = condition_match(_channel_labeller, images, asked)
    assert got["counts_equal"] == pytest.approx(2 / 3)  # image 1 lacks its sphere
    assert got["present_set_equal"] == pytest.approx(2 / 3)
    assert got["per_shape_present"] == pytest.approx([1.0, 2 / 3, 1.0])
    asked[0] = code([1, 1, 0])  # one cube asked, two drawn: the set agrees, the counts do not
    got = condition_match(_channel_labeller, images, asked)
    assert got["present_set_equal"] == pytest.approx(2 / 3) and got["counts_equal"] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="conditions"):
        condition_match(_channel_labeller, images, asked[:2])


def test_condition_match_reads_one_object_shape_classes_as_one_object_of_that_shape():
    from perception.interpret.gan_dissection import condition_match

    images = torch.zeros(4, 3, 12, 12)
    images[0, 0, 1:4, 1:4] = 1.0  # a cube
    images[1, 1, 1:4, 1:4] = 1.0  # a sphere
    images[2, 2, 1:4, 1:4] = 1.0  # a cylinder and a cube
    images[2, 0, 8:11, 8:11] = 1.0
    images[3, 2, 1:4, 1:4] = 1.0  # a cylinder
    asked = torch.eye(3)[[0, 2, 2, 2]]  # cube, cylinder, cylinder, cylinder
    got = condition_match(_channel_labeller, images, asked)
    assert got["present_set_equal"] == pytest.approx(2 / 4)  # image 1 shows the wrong shape, image 2 one too many
    assert got["counts_equal"] == pytest.approx(2 / 4)
    assert got["per_shape_present"] == pytest.approx([3 / 4, 3 / 4, 3 / 4])


@pytest.mark.slow
def test_the_one_object_option_conditions_on_the_objects_shape_and_the_entry_stays_as_it_was():
    from perception.generative.gan import _renders_and_judges, train_gan_run
    from perception.generative.scenes import shape_classes
    from perception.interpret.gan_dissection import (
        CONDITIONAL_CODEC,
        ONE_OBJECT_AUXILIARY_CODEC,
        ONE_OBJECT_CODEC,
    )

    assert ONE_OBJECT_CODEC == CONDITIONAL_CODEC.__class__(**{**CONDITIONAL_CODEC.__dict__, "conditions": len(SHAPES)})
    assert ONE_OBJECT_AUXILIARY_CODEC.condition_head == "auxiliary" and ONE_OBJECT_AUXILIARY_CODEC.condition_blocks == 1
    outcome = bench_gan_dissection(True, 0, ONE_OBJECT_CODEC, scenes="one_object")
    assert len(outcome.checks) == 6 and outcome.figures["conditions"] == len(SHAPES)
    assert outcome.figures["objects_per_render"] == [1]
    train = _renders_and_judges(True, 0, "one_object")[0]
    assert torch.equal(train_gan_run(True, 0, ONE_OBJECT_CODEC, 0.0, "one_object").gan.condition_pool, shape_classes(train))
    aux = train_gan_run(True, 0, ONE_OBJECT_AUXILIARY_CODEC, scenes="one_object").gan
    assert aux.auxiliary and aux.classify(aux.sample(2)).shape == (2, 1, len(SHAPES))
    default = bench_gan_dissection(True, 0)
    assert default.figures["conditions"] == 0 and default.figures["objects_per_render"] != [1]
    with pytest.raises(ConfigError, match="scenes must be one of"):
        bench_gan_dissection(True, 0, ONE_OBJECT_CODEC, scenes="single")


@pytest.mark.slow
def test_the_one_object_reader_option_trains_its_reader_on_one_object_renders_and_their_classes():
    from perception.generative.condition_classifier import ShapePresenceNet
    from perception.generative.gan import run_classifier, train_gan_run
    from perception.interpret.gan_dissection import FROZEN_CLASSIFIER_CODEC, ONE_OBJECT_READER_CODEC

    assert ONE_OBJECT_READER_CODEC.condition_head == "classifier" and ONE_OBJECT_READER_CODEC.conditions == len(SHAPES)
    reader = run_classifier(True, 0, ONE_OBJECT_READER_CODEC, "one_object")
    assert isinstance(reader, ShapePresenceNet) and reader.shapes == len(SHAPES) and not reader.training
    assert reader is not run_classifier(True, 0, FROZEN_CLASSIFIER_CODEC)  # the scenes' reader is its own
    gan = train_gan_run(True, 0, ONE_OBJECT_READER_CODEC, scenes="one_object").gan
    assert gan.frozen_classifier and gan.classifier is reader
    outcome = bench_gan_dissection(True, 0, ONE_OBJECT_READER_CODEC, scenes="one_object")
    assert len(outcome.checks) == 6 and outcome.figures["objects_per_render"] == [1]


@pytest.mark.slow
def test_the_auxiliary_classifier_option_trains_and_dissects_and_stays_off_by_default():
    from perception.generative.gan import train_gan_run
    from perception.generative.scenes import SHAPE_CONDITIONS
    from perception.interpret.gan_dissection import AUXILIARY_CODEC, CONDITIONAL_CODEC

    assert AUXILIARY_CODEC.condition_head == "auxiliary" and AUXILIARY_CODEC.condition_blocks == len(SHAPES)
    assert CONDITIONAL_CODEC.condition_head == "projection"  # the projection option keeps its head
    outcome = bench_gan_dissection(True, 0, AUXILIARY_CODEC)
    assert len(outcome.checks) == 6 and outcome.figures["conditions"] == SHAPE_CONDITIONS
    gan = train_gan_run(True, 0, AUXILIARY_CODEC).gan
    assert gan.auxiliary and gan.classify(gan.sample(2)).shape == (2, len(SHAPES), SHAPE_CONDITIONS // len(SHAPES))
    assert not train_gan_run(True, 0).gan.auxiliary  # the entry stays unconditional


@pytest.mark.slow
def test_the_frozen_classifier_option_trains_the_classifier_first_and_dissects_and_stays_off_by_default():
    from perception.generative.gan import run_classifier, train_gan_run
    from perception.generative.scenes import SHAPE_CONDITIONS
    from perception.interpret.gan_dissection import (
        AUXILIARY_CODEC,
        FROZEN_CLASSIFIER_CODEC,
        RESIZE_CODEC,
    )

    assert FROZEN_CLASSIFIER_CODEC.condition_head == "classifier"
    assert FROZEN_CLASSIFIER_CODEC.condition_blocks == len(SHAPES)
    outcome = bench_gan_dissection(True, 0, FROZEN_CLASSIFIER_CODEC)
    assert len(outcome.checks) == 6 and outcome.figures["conditions"] == SHAPE_CONDITIONS
    gan = train_gan_run(True, 0, FROZEN_CLASSIFIER_CODEC).gan
    clf = run_classifier(True, 0, FROZEN_CLASSIFIER_CODEC)
    assert gan.frozen_classifier and gan.classifier is clf and not clf.training  # trained once per seed, frozen
    assert clf.presence(gan.sample(2)).shape == (2, len(SHAPES))
    assert run_classifier(True, 0, RESIZE_CODEC) is None and run_classifier(True, 0, AUXILIARY_CODEC) is None
    assert not train_gan_run(True, 0).gan.frozen_classifier  # the entry stays unconditional


def test_the_augmented_reader_option_builds_an_augmented_ensemble_and_the_plain_reader_stays_as_it_was():
    from dataclasses import replace

    from perception.generative.condition_classifier import ReaderEnsemble, ShapePresenceNet
    from perception.generative.gan import GAN, run_classifier, train_gan_run
    from perception.interpret.gan_dissection import (
        AUGMENTED_CLASSIFIER_CODEC,
        FROZEN_CLASSIFIER_CODEC,
    )

    assert AUGMENTED_CLASSIFIER_CODEC == replace(FROZEN_CLASSIFIER_CODEC, classifier_augment=True)
    assert FROZEN_CLASSIFIER_CODEC.classifier_members == 1 and not FROZEN_CLASSIFIER_CODEC.classifier_augment
    plain = run_classifier(True, 0, FROZEN_CLASSIFIER_CODEC)
    assert isinstance(plain, ShapePresenceNet)  # the fourteenth look's reader, unchanged
    aug = run_classifier(True, 0, AUGMENTED_CLASSIFIER_CODEC)
    assert isinstance(aug, ReaderEnsemble) and aug.augment and len(aug.members) == 1
    assert not torch.equal(aug.members[0].head.weight, plain.head.weight)  # trained on augmented renders, same seed
    two = run_classifier(True, 0, replace(FROZEN_CLASSIFIER_CODEC, classifier_members=2))
    assert not two.augment and two.members[0] is plain  # member 0 is the plain reader; member 1 a new seed
    assert not torch.equal(two.members[1].head.weight, plain.head.weight)
    gan = train_gan_run(True, 0, AUGMENTED_CLASSIFIER_CODEC).gan
    assert isinstance(gan, GAN) and isinstance(gan.classifier, ReaderEnsemble) and gan.classifier.augment
    assert gan.classifier.presence(gan.sample(2)).shape == (2, len(SHAPES))


def test_the_cell_discriminator_options_train_on_one_object_renders_and_their_maps_and_are_dissected():
    from dataclasses import replace

    from perception.generative.cell_discriminator import CellDiscriminator
    from perception.generative.gan import GAN, train_gan_run
    from perception.interpret.gan_dissection import (
        ONE_OBJECT_CELL_BATCH_CODEC,
        ONE_OBJECT_CELL_BATCH_MAPS_CODEC,
        ONE_OBJECT_CELL_CODEC,
        ONE_OBJECT_CELL_MAPS_CODEC,
        ONE_OBJECT_CODEC,
    )

    assert ONE_OBJECT_CELL_CODEC == ONE_OBJECT_CODEC.__class__(**{**ONE_OBJECT_CODEC.__dict__, "discriminator": "cells"})
    assert ONE_OBJECT_CELL_MAPS_CODEC.discriminator_maps and not ONE_OBJECT_CELL_CODEC.discriminator_maps
    assert ONE_OBJECT_CODEC.discriminator == "encoder"  # the earlier options keep their discriminator
    assert ONE_OBJECT_CELL_BATCH_CODEC.encoder_norm == ONE_OBJECT_CELL_BATCH_MAPS_CODEC.encoder_norm == "batch"
    assert ONE_OBJECT_CELL_BATCH_MAPS_CODEC == replace(ONE_OBJECT_CELL_MAPS_CODEC, encoder_norm="batch")
    batch_norms = GAN(ONE_OBJECT_CELL_BATCH_CODEC, torch.eye(len(SHAPES))).discriminator.modules()
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in batch_norms) == 5  # after every convolution but the first
    gan = train_gan_run(True, 0, ONE_OBJECT_CELL_MAPS_CODEC, scenes="one_object").gan
    assert isinstance(gan.discriminator, CellDiscriminator)
    assert gan.discriminator(torch.rand(2, 3, 48, 64)).shape == (2, 1 + len(SHAPES) + 1 + len(SHAPES), 12, 16)
    outcome = bench_gan_dissection(True, 0, ONE_OBJECT_CELL_MAPS_CODEC, scenes="one_object")
    assert len(outcome.checks) == 6 and outcome.figures["objects_per_render"] == [1]


def test_the_cell_auxiliary_option_trains_on_one_object_renders_with_an_image_logit_and_is_dissected():
    from dataclasses import replace

    from perception.generative.gan import train_gan_run
    from perception.interpret.gan_dissection import (
        ONE_OBJECT_CELL_AUX_CODEC,
        ONE_OBJECT_CELL_BATCH_CODEC,
    )

    assert ONE_OBJECT_CELL_AUX_CODEC == replace(ONE_OBJECT_CELL_BATCH_CODEC, condition_head="auxiliary_real",
                                                discriminator_image=True)
    assert not ONE_OBJECT_CELL_BATCH_CODEC.discriminator_image  # the batch-norm cell codec judges cells only
    gan = train_gan_run(True, 0, ONE_OBJECT_CELL_AUX_CODEC, scenes="one_object").gan
    images = torch.rand(2, 3, 48, 64)
    assert gan.classify(images).shape == (2, 1, len(SHAPES)) and gan.image_critic(images).shape == (2, 1)
    outcome = bench_gan_dissection(True, 0, ONE_OBJECT_CELL_AUX_CODEC, scenes="one_object")
    assert len(outcome.checks) == 6 and outcome.figures["objects_per_render"] == [1]


def test_the_projected_grid_is_dissected_and_edited_like_a_block_and_other_layers_are_refused():
    from perception.interpret.gan_dissection import PROJECTED

    gen, z = _generator(), torch.randn(4, TINY.latent, generator=torch.Generator().manual_seed(3))
    acts, images = layer_activations(gen, z, PROJECTED)
    assert acts.shape == (4, 4 * TINY.channels, 2, 3) and images.shape == (4, 3, 16, 24)  # H/8 x W/8
    result = dissect(gen, _RedIsCube(4), z, PROJECTED)
    assert result.iou.shape == (4 * TINY.channels, len(SHAPES))
    with torch.no_grad():
        plain = gen(z)
    assert not torch.allclose(ablate(gen, z, PROJECTED, torch.arange(4 * TINY.channels)), plain)
    with torch.no_grad():
        assert torch.allclose(gen(z), plain)  # the hook is gone
    for bad in (-2, 2):
        with pytest.raises(ConfigError, match="layer must be"):
            layer_activations(gen, z, bad)


def test_causal_units_rank_first_the_unit_whose_ablation_removes_the_concept_and_give_drawing_nothing_zero():
    from perception.interpret.gan_dissection import causal_units

    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    cube = SHAPES.index("cube")
    units, effect = causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, 2)
    assert int(units[0]) == 3 and float(effect[3]) == 1.0  # the red-painting unit carries every cube pixel
    others = [u for u in range(2 * TINY.channels) if u not in (3, 5)]
    assert effect[others].abs().max() == 0.0  # units that draw nothing have no causal effect, whatever their IoU
    assert float(effect[5]) <= 0.0  # removing the green unit can only uncover red (cube) pixels
    assert effect.shape == (2 * TINY.channels,) and len(units) == 2


def test_the_reading_options_are_refused_by_name_before_anything_trains():
    from perception.generative.gan import train_gan_run

    before = train_gan_run.cache_info().currsize
    with pytest.raises(ConfigError, match="ranking must be one of"):
        bench_gan_dissection(True, 0, ranking="specific")
    with pytest.raises(ConfigError, match="layer must be"):
        bench_gan_dissection(True, 0, layer=2)
    assert train_gan_run.cache_info().currsize == before


def test_the_projected_grid_with_causal_units_is_dissected_on_one_object_renders_and_the_entry_stays_iou():
    from perception.generative.gan import train_gan_run
    from perception.interpret.gan_dissection import PROJECTED, causal_units, dissection_outcome

    outcome = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", layer=PROJECTED, ranking="causal")
    fig = outcome.figures
    assert len(outcome.checks) == 6 and fig["layer"] == "generator.project" and fig["ranking"] == "causal"
    assert fig["units_in_layer"] == RESIZE_CODEC.decoder_channels[0] == 96
    assert fig["insert_patch"].endswith("of the 6x8 grid at 9 places")
    effects = fig["causal_effect_of_cube_units"]
    assert len(fig["cube_units"]) == UNITS and effects == sorted(effects, reverse=True)
    run = train_gan_run(True, 0, RESIZE_CODEC, 0.0, "one_object")  # cached: the same run
    from perception.generative.gan import CROP

    z = run.gan.codes(8, torch.Generator().manual_seed(21))
    units, _ = causal_units(run.gan.generator, ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP), z,
                            PROJECTED, SHAPES.index("cube"), UNITS)
    assert fig["cube_units"] == units.tolist()  # the figures' units are the causal ranking on the dissection samples
    entry = dissection_outcome(run, True, 0, LAYER)
    assert entry.figures["ranking"] == "iou" and entry.figures["cube_units"] == entry.figures["iou_cube_units"]
    assert entry.figures["layer"] == "generator.blocks[0]" and entry.figures["causal_effect_of_cube_units"] is None


def test_the_cli_options_name_every_codec_and_reading_and_refuse_bad_ones_by_name(capsys):
    from benchmarks.cli import main
    from perception.benchmark import bench_options
    from perception.generative.gan import GAN_CODEC, SCENES
    from perception.interpret.gan_dissection import (
        CODECS,
        RANKINGS,
        GanDissectionOptions,
        codec_named,
    )

    defaults = bench_options("gan-dissection")
    # the entry's defaults (docs/results/perception.md, GAN dissection), as bench_gan_dissection's keywords
    assert defaults == {"codec": "resize", "scenes": "one_object", "layer": LAYER, "ranking": "iou", "balanced": True,
                        "ema": 0.0, "harmless": 0, "causal_samples": 150, "cache_ablations": False,
                        "gan_steps": 0, "snapshots": 5, "entry_snapshots": False, "sphere_guard": 0.08,
                        "guard_samples": 300}
    assert bench_options("gan-dissection", {"scenes": "scenes", "balanced": "false", "ema": "0.5"})["ema"] == 0.5
    fields = {f.name: f for f in GanDissectionOptions.__dataclass_fields__.values()}
    assert fields["scenes"].metadata["choices"] == tuple(SCENES) and fields["ranking"].metadata["choices"] == RANKINGS
    assert codec_named("resize") is RESIZE_CODEC and codec_named("transposed") is GAN_CODEC
    assert codec_named("spectral") is SPECTRAL_CODEC and all(codec_named(n) is not None for n in CODECS)
    with pytest.raises(ConfigError, match="codec must be one of resize, transposed"):
        codec_named("dcgan")
    assert bench_options("gan-dissection", {"scenes": "one_object", "balanced": "true", "layer": "-1"})["layer"] == -1
    for setting, says in (("codec=dcgan", "option 'codec' must be one of resize, transposed"),
                          ("layer=2", "option 'layer' must be one of -1, 0, 1, got 2"),
                          ("ema=1.5", "option 'ema' must be in [0, 1), got 1.5")):
        assert main(["bench", "perception", "--model", "gan-dissection", "--set", setting]) == 2
        assert says in capsys.readouterr().err
    assert main(["bench", "perception", "--model", "gan-dissection", "--set", "ema=0.5"]) == 2  # balanced by default
    assert "'balanced' and 'ema' exclude each other" in capsys.readouterr().err


@pytest.mark.slow
def test_the_balanced_one_object_candidate_runs_from_the_cli_and_reports_its_collapse(tmp_path):
    from benchmarks.cli import main

    out = tmp_path / "r.json"
    main(["bench", "perception", "--model", "gan-dissection", "--quick", "--threads", "1", "--set", "scenes=one_object",
          "--set", "balanced=true", "--out", str(out)])
    import json

    result = json.loads(out.read_text())
    assert result["options"]["scenes"] == "one_object" and result["options"]["balanced"] is True
    assert len(result["checks"]) == 6 and result["figures"]["objects_per_render"] == [1]
    shares = result["figures"]["sample_shape_shares"]
    assert set(shares) == {*SHAPES, "empty"} and 0.0 <= shares["empty"] <= 1.0
    assert sum(shares[s] for s in SHAPES) == pytest.approx(1.0) or shares["empty"] == 1.0
    assert set(result["figures"]["snapshot"]["l1_to_renders_shape_shares"]) == {"2", "3"}  # quick: 3 steps
    direct = bench_gan_dissection(True, 0, RESIZE_CODEC, balanced=True, scenes="one_object")  # the library's call
    assert direct.figures["snapshot"]["step"] == result["figures"]["snapshot"]["step"]
    written = [math.nan if c["ours"] is None else c["ours"] for c in result["checks"]]  # the JSON writes NaN as null
    assert [c.ours for c in direct.checks] == pytest.approx(written, nan_ok=True)


def test_greedy_net_selection_passes_over_object_units_for_units_that_leave_the_other_concept():
    from perception.interpret.gan_dissection import greedy_net_selection

    single = {0: (0.6, -0.6), 1: (0.4, 0.0), 2: (0.3, 0.02), 3: (0.0, 0.0)}  # 0 draws every object, 1 and 2 cubes only

    def additive(units):
        return sum(single[u][0] for u in units), sum(single[u][1] for u in units)

    chosen, trace = greedy_net_selection(additive, [0, 1, 2, 3], 2)
    assert chosen == [1, 2] and trace[-1] == pytest.approx((0.7, 0.02))  # the causal ranking would take unit 0 first
    chosen, trace = greedy_net_selection(additive, [3, 2, 1, 0], 4)
    assert chosen == [1, 2, 0, 3] and trace[2] == pytest.approx((1.3, -0.58))  # 0.72 net beats unit 3's 0.68
    with pytest.raises(ConfigError, match="k must be in 1..4"):
        greedy_net_selection(additive, [0, 1, 2, 3], 5)


def test_net_causal_units_take_the_cube_painting_unit_and_never_the_sphere_painting_one():
    from perception.interpret.gan_dissection import net_causal_units

    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    units, trace = net_causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, sphere, 3, pool=2 * TINY.channels)
    assert int(units[0]) == 3 and trace[0] == (1.0, 0.0)  # every cube pixel goes, the spheres stay
    assert 5 not in units.tolist() and len(units) == len(trace) == 3  # the green unit would remove every sphere
    assert all(change == 0.0 for _, change in trace)  # the spheres are untouched at every step


def test_the_causal_net_ranking_is_an_option_of_the_cli_and_its_units_are_measured_on_the_edit_samples():
    from perception.benchmark import bench_options
    from perception.generative.gan import CROP, train_gan_run
    from perception.interpret.gan_dissection import CAUSAL_SAMPLES, net_causal_units

    assert bench_options("gan-dissection", {"ranking": "causal-net"})["ranking"] == "causal-net"
    assert bench_options("gan-dissection")["ranking"] == "iou"  # off by default
    outcome = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", ranking="causal-net")
    fig = outcome.figures
    assert len(outcome.checks) == 6 and fig["ranking"] == "causal-net" and fig["layer"] == "generator.blocks[0]"
    net = fig["net_selection"]
    assert net["pool"] == 16 and [s["unit"] for s in net["steps"]] == fig["cube_units"]
    assert len(fig["cube_units"]) == UNITS and len(set(fig["cube_units"])) == UNITS
    run = train_gan_run(True, 0, RESIZE_CODEC, 0.0, "one_object")  # cached: the same run
    z = run.gan.codes(8, torch.Generator().manual_seed(21))[:CAUSAL_SAMPLES]
    units, _ = net_causal_units(run.gan.generator, ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP), z,
                                LAYER, SHAPES.index("cube"), SHAPES.index("sphere"), UNITS)
    assert fig["cube_units"] == units.tolist()  # chosen on the dissection samples, not the edit samples
    entry = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object")
    assert entry.figures["ranking"] == "iou" and entry.figures["net_selection"] is None


def test_the_unit_scan_gives_each_units_effect_on_every_shape_and_harmless_units_move_no_other_shape():
    from perception.interpret.gan_dissection import causal_units, harmless_units, unit_scan

    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    removed, changed = unit_scan(gen, _RedCubeGreenSphere(4), z, 0)
    assert removed.shape == changed.shape == (2 * TINY.channels, len(SHAPES))
    _, effect = causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, 1)
    assert torch.equal(removed[:, cube], effect)  # the scan's cube column is causal_units' effect
    assert float(removed[3, cube]) == 1.0 and float(changed[3, sphere]) == 0.0  # the red unit draws cubes only
    assert float(removed[5, sphere]) == 1.0 and float(changed[5, sphere]) == 1.0  # the green unit draws every sphere
    assert float(changed[5, cube]) > 0.0  # ... and hides red pixels that become cube without it
    assert harmless_units(changed, cube, 3, exclude=[3]) == [0, 1, 2]  # nothing drawn by them; never unit 5
    assert 5 not in harmless_units(changed, cube, 2 * TINY.channels - 2, exclude=[3])
    assert harmless_units(changed, sphere, 2)[0] == 0  # harm is over the shapes other than the one asked


def test_harmless_candidates_fill_the_causal_net_set_without_the_sphere_unit():
    from perception.interpret.gan_dissection import net_causal_units

    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    with pytest.raises(ConfigError, match="k must be in 1..1"):  # one cube unit in the pool cannot name three
        net_causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, sphere, 3, pool=1)
    candidates: list[int] = []
    units, trace = net_causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, sphere, 3, pool=1, harmless=2,
                                    candidates_out=candidates)
    assert candidates == [3, 0, 1] and units.tolist() == [3, 0, 1]
    assert trace == [(1.0, 0.0)] * 3  # every cube pixel goes at the first step and the spheres stay at every step
    with pytest.raises(ConfigError, match="harmless must be >= 0"):
        net_causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, sphere, 3, pool=1, harmless=-1)


def test_the_harmless_and_causal_samples_options_reach_the_reading_and_are_refused_by_name(capsys):
    from benchmarks.cli import main
    from perception.benchmark import bench_options
    from perception.generative.gan import CROP, train_gan_run
    from perception.interpret.gan_dissection import net_causal_units

    assert bench_options("gan-dissection", {"ranking": "causal-net", "harmless": "8", "causal_samples": "300"}) == {
        **bench_options("gan-dissection"), "ranking": "causal-net", "harmless": 8, "causal_samples": 300}
    for setting, says in ((["harmless=2"], "option 'harmless' must be >= 0, and above 0 only with ranking=causal-net"),
                          (["ranking=causal-net", "harmless=-1"], "option 'harmless' must be >= 0"),
                          (["ranking=causal", "causal_samples=0"], "option 'causal_samples' must be in 1..600"),
                          (["ranking=causal", "causal_samples=601"], "option 'causal_samples' must be in 1..600"),
                          (["causal_samples=300"], "other than 150 only with ranking=causal or causal-net")):
        argv = ["bench", "perception", "--model", "gan-dissection"]
        for one in setting:
            argv += ["--set", one]
        assert main(argv) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(ConfigError, match="harmless must be >= 0, and above 0 only with ranking=causal-net"):
        bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", harmless=3)
    outcome = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", ranking="causal-net", harmless=4,
                                   causal_samples=6)
    fig = outcome.figures
    net = fig["net_selection"]
    assert fig["causal_samples"] == 6 and net["harmless"] == 4 and len(net["harmless_candidates"]) == 4
    run = train_gan_run(True, 0, RESIZE_CODEC, 0.0, "one_object")  # cached: the same run
    z = run.gan.codes(8, torch.Generator().manual_seed(21))[:6]
    candidates: list[int] = []
    units, _ = net_causal_units(run.gan.generator, ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP), z,
                                LAYER, SHAPES.index("cube"), SHAPES.index("sphere"), UNITS, harmless=4,
                                candidates_out=candidates)
    assert fig["cube_units"] == units.tolist() and net["harmless_candidates"] == candidates[16:]
    assert net["harmless_chosen"] == sum(u in candidates[16:] for u in units.tolist())
    assert len(set(candidates)) == 20  # the harmless ones are outside the cube pool


class _CountingLabeller(_RedCubeGreenSphere):
    """:class:`_RedCubeGreenSphere` that counts the images it labels."""

    def __init__(self) -> None:
        super().__init__(4)
        self.images = 0

    def forward(self, images):
        self.images += len(images)
        return super().forward(images)


def _drawing_generator(upsample: str) -> ConvDecoder:
    """A random TINY generator whose samples hold both red ('cube') and green ('sphere') pixels."""
    from dataclasses import replace

    torch.manual_seed(3)
    gen = ConvDecoder(replace(TINY, upsample=upsample)).eval()
    rgb = gen.to_rgb[-1] if isinstance(gen.to_rgb, torch.nn.Sequential) else gen.to_rgb  # resize, then the conv
    with torch.no_grad():
        rgb.weight.mul_(8.0)  # sharper colours: both concepts cover a good share of the pixels
    return gen


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_cached_ablations_give_the_hooked_ablations_images_bit_for_bit_at_every_layer(upsample):
    from perception.interpret.gan_dissection import PROJECTED, ablate, ablation_images

    gen = _drawing_generator(upsample)
    z = torch.randn(6, TINY.latent, generator=torch.Generator().manual_seed(2))
    for layer in (PROJECTED, 0, 1):
        cached, plain = ablation_images(gen, z, layer, cache=True), ablation_images(gen, z, layer)
        for units in ([0], [1, 3], [3, 1, 2]):
            expected = ablate(gen, z, layer, torch.tensor(units))
            assert torch.equal(cached(units), expected) and torch.equal(plain(units), expected)
        assert not torch.equal(cached([0, 1]), gen(z))  # it does ablate
    assert len(gen._forward_hooks) == 0 and all(not b._forward_hooks for b in gen.blocks)

    class _Other(ConvDecoder):
        pass

    with pytest.raises(ConfigError, match="cache needs a ConvDecoder"):
        ablation_images(_Other(TINY), z, 0, cache=True)


def test_cached_causal_choices_pick_the_same_units_and_trace_with_fewer_labelled_images():
    from perception.interpret.gan_dissection import causal_units, net_causal_units, unit_scan

    gen = _drawing_generator("nearest")
    z = torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(4))
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    base = segment(_RedCubeGreenSphere(4), gen(z))
    assert int((base == cube + 1).sum()) > 0 and int((base == sphere + 1).sum()) > 0  # the choice has work to do
    for harmless in (0, 3):
        plain_lab, cached_lab = _CountingLabeller(), _CountingLabeller()
        plain_cands: list[int] = []
        cached_cands: list[int] = []
        plain = net_causal_units(gen, plain_lab, z, 0, cube, sphere, 3, pool=3, harmless=harmless,
                                 candidates_out=plain_cands)
        cached = net_causal_units(gen, cached_lab, z, 0, cube, sphere, 3, pool=3, harmless=harmless,
                                  candidates_out=cached_cands, cache=True)
        assert torch.equal(plain[0], cached[0]) and plain[1] == cached[1] and plain_cands == cached_cands
        saved = len(plain_cands) * len(z) if harmless else 0  # the first step's one-unit sets come from the scan
        assert plain_lab.images - cached_lab.images == saved
    scans = [unit_scan(gen, _RedCubeGreenSphere(4), z, 1, cache=c) for c in (False, True)]
    assert all(torch.equal(a, b) for a, b in zip(*scans, strict=True))
    ranks = [causal_units(gen, _RedCubeGreenSphere(4), z, 0, cube, 3, cache=c) for c in (False, True)]
    assert torch.equal(ranks[0][0], ranks[1][0]) and torch.equal(ranks[0][1], ranks[1][1])


def test_the_cache_ablations_option_changes_no_figure_and_is_refused_by_name_without_a_causal_ranking(capsys):
    from benchmarks.cli import main
    from perception.benchmark import bench_options

    assert bench_options("gan-dissection")["cache_ablations"] is False  # off by default
    assert bench_options("gan-dissection", {"ranking": "causal-net", "cache_ablations": "true"})["cache_ablations"]
    assert main(["bench", "perception", "--model", "gan-dissection", "--set", "cache_ablations=true"]) == 2
    assert "option 'cache_ablations' only speeds up ranking=causal or causal-net" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cache_ablations only speeds up"):
        bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", cache_ablations=True)
    reading = dict(scenes="one_object", ranking="causal-net", harmless=4, causal_samples=6)
    plain = bench_gan_dissection(True, 0, RESIZE_CODEC, **reading)
    cached = bench_gan_dissection(True, 0, RESIZE_CODEC, cache_ablations=True, **reading)
    assert cached.figures["cache_ablations"] and not plain.figures["cache_ablations"]
    assert json.dumps({**cached.figures, "cache_ablations": False}, sort_keys=True) == json.dumps(
        plain.figures, sort_keys=True)  # text, so that NaN figures compare equal
    assert [c.ours for c in cached.checks] == pytest.approx([c.ours for c in plain.checks], nan_ok=True)


def test_the_minibatch_std_codec_is_an_option_of_the_cli_that_trains_and_is_dissected_and_stays_off(tmp_path, capsys):
    from dataclasses import replace

    from benchmarks.cli import main
    from perception.interpret.gan_dissection import MBSTD_CODEC, codec_named

    assert codec_named("resize-mbstd") is MBSTD_CODEC and MBSTD_CODEC.minibatch_std
    assert MBSTD_CODEC == replace(RESIZE_CODEC, minibatch_std=True) and not RESIZE_CODEC.minibatch_std
    out = tmp_path / "r.json"
    assert main(["bench", "perception", "--model", "gan-dissection", "--quick", "--threads", "1", "--set",
                 "codec=resize-mbstd", "--set", "ranking=causal-net", "--set", "harmless=2", "--set",
                 "cache_ablations=true", "--out", str(out)]) in (0, 1)
    result = json.loads(out.read_text())
    assert result["options"]["codec"] == "resize-mbstd" and len(result["checks"]) == 6
    assert result["figures"]["objects_per_render"] == [1] and "step" in result["figures"]["snapshot"]
    assert main(["bench", "perception", "--model", "gan-dissection", "--set", "codec=mbstd"]) == 2
    assert "option 'codec' must be one of" in capsys.readouterr().err


def test_the_shape_balance_codec_is_an_option_of_the_cli_that_trains_and_is_dissected_and_stays_off(tmp_path):
    from dataclasses import replace

    from benchmarks.cli import main
    from perception.interpret.gan_dissection import BALANCE_CODEC, GanDissectionOptions, codec_named

    assert codec_named("resize-balance") is BALANCE_CODEC and BALANCE_CODEC == replace(RESIZE_CODEC, shape_balance=1.0)
    assert not RESIZE_CODEC.shape_balance and GanDissectionOptions().codec == "resize"  # the entry's GAN has no term
    out = tmp_path / "r.json"
    assert main(["bench", "perception", "--model", "gan-dissection", "--quick", "--threads", "1", "--set",
                 "codec=resize-balance", "--out", str(out)]) in (0, 1)
    result = json.loads(out.read_text())
    assert result["options"]["codec"] == "resize-balance" and len(result["checks"]) == 6
    assert "step" in result["figures"]["snapshot"]


def test_snapshot_steps_spread_from_half_the_run_to_its_end_and_the_default_is_the_entrys_five():
    from perception.interpret.gan_dissection import SNAPSHOTS, snapshot_steps

    assert SNAPSHOTS == 5 and snapshot_steps(2000) == [1000, 1250, 1500, 1750, 2000]  # the entry's snapshots
    assert snapshot_steps(3) == [2, 3]  # quick: rounded, repeats dropped
    assert snapshot_steps(3000) == [1500, 1875, 2250, 2625, 3000] and snapshot_steps(2000, 1) == [2000]
    assert snapshot_steps(3000, 9) == [1500, 1688, 1875, 2062, 2250, 2438, 2625, 2812, 3000]
    for steps, count in ((0, 5), (2000, 0), (2.5, 5), (2000, True)):
        with pytest.raises(ConfigError, match="snapshot_steps: (steps|count) must be an int >= 1"):
            snapshot_steps(steps, count)


def test_the_gan_steps_and_snapshots_options_train_longer_and_pick_among_more_snapshots_and_stay_off(capsys):
    from benchmarks.cli import main
    from perception.benchmark import bench_options
    from perception.generative.gan import _QUICK, _renders_and_judges, fit_gan
    from perception.interpret.gan_dissection import balanced_gan_run

    assert bench_options("gan-dissection")["gan_steps"] == 0 and bench_options("gan-dissection")["snapshots"] == 5
    run, pick, dist = balanced_gan_run(True, 0, RESIZE_CODEC, "one_object", gan_steps=5, snapshots=4)
    assert sorted(dist) == [2, 3, 4, 5] and dist[pick] == min(dist.values())  # snapshot_steps(5, 4)
    train = _renders_and_judges(True, 0, "one_object")[0]
    snaps = {3: None, pick: None}
    fit_gan(train.images, RESIZE_CODEC, steps=5, batch=_QUICK.batch, lr=_QUICK.lr, seed=0, snapshots=snaps)
    assert all(torch.equal(a, b) for a, b in zip(run.gan.generator.state_dict().values(),
                                                  snaps[pick].state_dict().values(), strict=True))
    default = balanced_gan_run(True, 0, RESIZE_CODEC, "one_object")[0]  # 3 steps: a longer run goes on from it
    assert all(torch.equal(a, b) for a, b in zip(default.gan.generator.state_dict().values(),
                                                  snaps[3].state_dict().values(), strict=True))
    outcome = bench_gan_dissection(True, 0, RESIZE_CODEC, balanced=True, scenes="one_object", gan_steps=5, snapshots=4)
    assert outcome.figures["snapshot"]["gan_steps"] == 5 and outcome.figures["snapshot"]["step"] == pick
    for setting, says in (("gan_steps=-1", "option 'gan_steps' must be an int >= 0, got -1"),
                          ("snapshots=0", "option 'snapshots' must be an int >= 1, got 0"),
                          ("gan_steps=2.5", "option 'gan_steps'")):
        assert main(["bench", "perception", "--model", "gan-dissection", "--set", setting]) == 2
        assert says in capsys.readouterr().err
    assert main(["bench", "perception", "--model", "gan-dissection", "--set", "balanced=false", "--set",
                 "scenes=scenes", "--set", "gan_steps=3000"]) == 2
    err = capsys.readouterr().err  # names what was given, once
    assert "'gan-dissection': gan_steps=3000 set the balanced run's training and snapshots; they need balanced=true" in err
    assert err.count("gan-dissection") == 1 and "entry_snapshots" not in err
    with pytest.raises(ConfigError, match="they need balanced=true"):
        bench_gan_dissection(True, 0, RESIZE_CODEC, snapshots=9)
    with pytest.raises(ConfigError, match="they need balanced=true"):
        bench_gan_dissection(True, 0, RESIZE_CODEC, entry_snapshots=True)


def test_entry_snapshots_add_the_default_runs_steps_so_a_longer_runs_pick_is_never_less_balanced():
    from perception.benchmark import bench_options
    from perception.interpret.gan_dissection import balanced_gan_run

    assert bench_options("gan-dissection")["entry_snapshots"] is False  # off: the entry's own five steps only
    _, pick8, dist8 = balanced_gan_run(True, 0, RESIZE_CODEC, "one_object", gan_steps=8, snapshots=2)
    assert sorted(dist8) == [4, 8]  # snapshot_steps(8, 2)
    _, pick, dist = balanced_gan_run(True, 0, RESIZE_CODEC, "one_object", gan_steps=8, snapshots=2, entry_snapshots=True)
    _, entry_pick, entry_dist = balanced_gan_run(True, 0, RESIZE_CODEC, "one_object")  # quick: steps 2 and 3 of 3
    assert sorted(dist) == [2, 3, 4, 8] and dist[pick] == min(dist.values()) <= min(entry_dist[entry_pick], dist8[pick8])
    assert {k: dist[k] for k in entry_dist} == entry_dist and {k: dist[k] for k in dist8} == dist8  # the same generators
    _, _, short = balanced_gan_run(True, 0, RESIZE_CODEC, "one_object", gan_steps=2, snapshots=1, entry_snapshots=True)
    assert sorted(short) == [2]  # the entry's step 3 is past a 2-step run


def test_guarded_selection_keeps_the_order_but_passes_over_units_that_move_the_other_concept():
    from perception.interpret.gan_dissection import guarded_selection

    single = {0: (0.6, -0.6), 1: (0.4, 0.0), 2: (0.3, 0.02), 3: (0.0, 0.0)}  # 0 draws every object, 1 and 2 cubes only

    def additive(units):
        return sum(single[u][0] for u in units), sum(single[u][1] for u in units)

    chosen, tried, filled = guarded_selection(additive, [0, 1, 2, 3], 2, 0.05)
    assert chosen == [1, 2] and filled == 0  # the plain ranking would take unit 0 first
    assert [t[:2] for t in tried] == [(0, False), (1, True), (2, True)]  # the walk stops once 2 are kept
    assert tried[2][2:] == pytest.approx((0.7, 0.02))  # each try is the kept set with the unit, ablated together
    chosen, tried, filled = guarded_selection(additive, [2, 1, 0], 3, 0.01)
    assert chosen == [1, 2, 0] and filled == 2  # only unit 1 passes; the units passed over fill the set in order
    assert [t[:2] for t in tried] == [(2, False), (1, True), (0, False)]
    for k, order, guard, says in ((0, [0, 1], 0.1, "k must be in 1..2"), (3, [0, 1], 0.1, "k must be in 1..2"),
                                  (1, [0, 0], 0.1, "names a unit twice"), (1, [0, 1], -0.1, "guard must be a finite"),
                                  (1, [0, 1], float("nan"), "guard must be a finite"),
                                  (1, [0, 1], float("inf"), "guard must be a finite")):
        with pytest.raises(ConfigError, match=says):
            guarded_selection(additive, order, k, guard)


def test_guarded_iou_units_pass_over_the_sphere_painting_unit_and_keep_the_cube_one():
    from perception.interpret.gan_dissection import guarded_iou_units

    gen, z = _painting_generator(), torch.randn(8, TINY.latent, generator=torch.Generator().manual_seed(1))
    cube, sphere = SHAPES.index("cube"), SHAPES.index("sphere")
    units, tried, filled = guarded_iou_units(gen, _RedCubeGreenSphere(4), z, 0, cube, sphere, [5, 3, 0, 1], 2, 0.0)
    assert units.tolist() == [3, 0] and filled == 0  # unit 5 draws every sphere: ablating it moves them all
    assert tried[0][:2] == (5, False) and tried[0][3] == -1.0
    assert tried[1] == (3, True, 1.0, 0.0)  # every cube pixel goes and the spheres stay
    units, _, filled = guarded_iou_units(gen, _RedCubeGreenSphere(4), z, 0, cube, sphere, [5, 3], 2, 0.0)
    assert units.tolist() == [3, 5] and filled == 1  # the order ran out: the unit passed over fills the set


def test_the_iou_guarded_ranking_is_an_option_of_the_cli_chosen_on_the_guard_samples_and_refused_by_name(capsys):
    from benchmarks.cli import main
    from perception.benchmark import bench_options
    from perception.generative.gan import CROP, train_gan_run
    from perception.interpret.gan_dissection import GUARD_SAMPLES, SPHERE_GUARD, guarded_iou_units

    assert bench_options("gan-dissection")["ranking"] == "iou"  # off by default
    assert bench_options("gan-dissection", {"ranking": "iou-guarded", "sphere_guard": "0.05", "guard_samples": "6"}) == {
        **bench_options("gan-dissection"), "ranking": "iou-guarded", "sphere_guard": 0.05, "guard_samples": 6}
    for setting, says in ((["sphere_guard=0.05"], "other than 0.08 only with ranking=iou-guarded"),
                          (["guard_samples=100"], "other than 300 only with ranking=iou-guarded"),
                          (["ranking=iou-guarded", "sphere_guard=-1"], "option 'sphere_guard' must be a finite number"),
                          (["ranking=iou-guarded", "sphere_guard=nan"], "option 'sphere_guard' must be a finite number"),
                          (["ranking=iou-guarded", "guard_samples=0"], "option 'guard_samples' must be in 1..600"),
                          (["ranking=iou-guarded", "causal_samples=300"], "only with ranking=causal or causal-net"),
                          (["ranking=iou-guarded", "cache_ablations=true"], "iou-guarded and iou-net always run from the cached")):
        argv = ["bench", "perception", "--model", "gan-dissection"]
        for one in setting:
            argv += ["--set", one]
        assert main(argv) == 2
        assert says in capsys.readouterr().err
    outcome = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", ranking="iou-guarded", sphere_guard=0.05,
                                   guard_samples=6)
    fig = outcome.figures
    guard = fig["guarded_selection"]
    assert len(outcome.checks) == 6 and fig["ranking"] == "iou-guarded"
    assert guard["samples"] == 6 and guard["sphere_guard"] == 0.05 and len(fig["cube_units"]) == UNITS
    assert [t["unit"] for t in guard["tried"] if t["kept"]] == fig["cube_units"][:UNITS - guard["filled"]]
    assert all(abs(t["sphere_change"]) <= 0.05 for t in guard["tried"] if t["kept"])
    run = train_gan_run(True, 0, RESIZE_CODEC, 0.0, "one_object")  # cached: the same run
    labeller = ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP)
    z = run.gan.codes(8, torch.Generator().manual_seed(21))
    order = dissect(run.gan.generator, labeller, z, LAYER).best_units(SHAPES.index("cube"), 48).tolist()
    assert [t["unit"] for t in guard["tried"]] == order[:len(guard["tried"])]  # the walk goes down the IoU ranking
    units, _, _ = guarded_iou_units(run.gan.generator, labeller, z[:6], LAYER, SHAPES.index("cube"),
                                    SHAPES.index("sphere"), order, UNITS, 0.05)
    assert fig["cube_units"] == units.tolist()  # chosen on the first guard samples, not the edit samples
    entry = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object")
    assert entry.figures["ranking"] == "iou" and entry.figures["guarded_selection"] is None
    assert (SPHERE_GUARD, GUARD_SAMPLES) == (0.08, 300)


def test_the_net_walk_keeps_a_unit_when_cubes_removed_net_of_the_sphere_change_rise():
    from perception.interpret.gan_dissection import guarded_selection

    single = {0: (0.6, 0.5), 1: (0.4, -0.3), 2: (0.1, 0.3), 3: (0.3, 0.0)}  # 0 and 1 offset each other's spheres

    def additive(units):
        return sum(single[u][0] for u in units), sum(single[u][1] for u in units)

    chosen, tried, filled = guarded_selection(additive, [0, 1, 2, 3], 3, 0.0, net=True)
    assert chosen == [0, 1, 3] and filled == 0  # the guard at 0.0 would keep only unit 3
    assert [t[:2] for t in tried] == [(0, True), (1, True), (2, False), (3, True)]  # 2 lowers the net score
    assert tried[1][2:] == pytest.approx((1.0, 0.2)) and tried[3][2:] == pytest.approx((1.3, 0.2))
    assert guarded_selection(additive, [0, 1, 2, 3], 3, 0.0)[0] == [3, 0, 1]  # the guard: 3, then the fill


def test_the_iou_net_ranking_is_an_option_of_the_cli_that_walks_the_iou_order_on_the_guard_samples(capsys):
    from benchmarks.cli import main
    from perception.benchmark import bench_options
    from perception.generative.gan import CROP, train_gan_run
    from perception.interpret.gan_dissection import guarded_iou_units

    assert bench_options("gan-dissection", {"ranking": "iou-net", "guard_samples": "6"})["guard_samples"] == 6
    assert main(["bench", "perception", "--model", "gan-dissection", "--set", "ranking=iou-net", "--set",
                 "sphere_guard=0.05"]) == 2
    assert "other than 0.08 only with ranking=iou-guarded" in capsys.readouterr().err
    outcome = bench_gan_dissection(True, 0, RESIZE_CODEC, scenes="one_object", ranking="iou-net", guard_samples=6)
    fig = outcome.figures
    guard = fig["guarded_selection"]
    assert len(outcome.checks) == 6 and fig["ranking"] == "iou-net" and guard["sphere_guard"] is None
    run = train_gan_run(True, 0, RESIZE_CODEC, 0.0, "one_object")  # cached: the same run
    labeller = ObjectShapeLabeller(run.segmenter, run.attribute_net, CROP)
    z = run.gan.codes(8, torch.Generator().manual_seed(21))
    order = dissect(run.gan.generator, labeller, z, LAYER).best_units(SHAPES.index("cube"), 48).tolist()
    units, tried, _ = guarded_iou_units(run.gan.generator, labeller, z[:6], LAYER, SHAPES.index("cube"),
                                        SHAPES.index("sphere"), order, UNITS, 0.08, net=True)
    assert fig["cube_units"] == units.tolist() and tried[0][:2] == (order[0], True)  # the IoU ranking's first is kept
    scores = [r - abs(c) for _, kept, r, c in tried if kept]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)  # each kept unit raised the net score
