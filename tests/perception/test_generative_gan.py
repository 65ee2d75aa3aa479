"""Small renders, the shape segmenter, the AE / VAE codecs and the DCGAN: shapes, gradients, training."""

from __future__ import annotations

import pytest
import torch

from perception.generative.autoencoder import (
    VAE,
    Autoencoder,
    CodecConfig,
    reconstruction_mse,
    train_codec,
)
from perception.generative.gan import GAN, ValidObjectJudge, object_confidence, train_gan
from perception.generative.scenes import SHAPES, SMALL_WORLD, render_scenes
from perception.generative.segmenter import ShapeSegmenter, object_masks, segment
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = CodecConfig(height=16, width=24, latent=4, channels=4)


def test_renders_carry_consistent_shape_maps_and_are_cached():
    data = render_scenes(range(2))
    assert data.images.shape == (2, 3, SMALL_WORLD.height, SMALL_WORLD.width)
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert ((data.shapes > 0) == (data.instances >= 0)).all()
    assert int(data.shapes.max()) <= len(SHAPES)
    assert len(data.attributes["shape"]) == int(data.counts.sum())
    first = data.attributes["shape"][: int(data.counts[0])]
    assert int(data.largest[0]) in first.tolist()
    assert render_scenes(range(2)) is data  # rendered once per process


def test_object_masks_split_components_and_drop_speckle():
    labels = torch.zeros(10, 12, dtype=torch.long)
    labels[1:4, 1:4] = 1
    labels[5:9, 6:10] = 2
    labels[0, 11] = 3  # one stray pixel
    masks = object_masks(labels, min_pixels=4)
    assert masks.shape == (2, 10, 12) and masks.sum().item() == 9 + 16
    assert object_masks(torch.zeros(4, 4, dtype=torch.long)).shape == (0, 4, 4)
    with pytest.raises(StateError):
        object_masks(labels[None])


def test_segmenter_labels_every_pixel():
    seg = ShapeSegmenter(4)
    assert seg(torch.rand(2, 3, 16, 24)).shape == (2, 1 + len(SHAPES), 16, 24)
    labels = segment(seg, torch.rand(3, 3, 16, 24))
    assert labels.shape == (3, 16, 24) and labels.dtype == torch.long
    with pytest.raises(StateError):
        seg(torch.rand(1, 3, 15, 24))


def test_codecs_reconstruct_images_of_the_same_shape_and_training_lowers_the_error():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 16, 24) * 0.2 + 0.4
    for cls in (Autoencoder, VAE):
        torch.manual_seed(0)
        model = cls(TINY)
        out = model(images)
        assert out["recon"].shape == images.shape and out["loss"].dim() == 0
        before = reconstruction_mse(model, images)
        train_codec(model, images, steps=30, batch=6, lr=1e-2, seed=0)
        assert reconstruction_mse(model, images) < before
    vae = VAE(TINY).eval()
    assert torch.equal(vae.reconstruct(images), vae.reconstruct(images))  # the posterior mean in evaluation
    assert vae.sample(3, torch.Generator().manual_seed(0)).shape == (3, 3, 16, 24)
    with pytest.raises(ConfigError):
        CodecConfig(height=20)
    with pytest.raises(StateError):
        Autoencoder(TINY)(torch.rand(1, 3, 16, 16))


def test_vae_kl_is_zero_at_the_prior_and_positive_elsewhere():
    vae = VAE(TINY)
    with torch.no_grad():
        vae.encoder.head.weight.zero_()
        vae.encoder.head.bias.zero_()
    assert float(vae(torch.rand(2, 3, 16, 24))["kl"].detach()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        vae.encoder.head.bias[:TINY.latent] = 1.0
    assert float(vae(torch.rand(2, 3, 16, 24))["kl"].detach()) == pytest.approx(0.5 * TINY.latent, rel=1e-5)


def test_gan_trains_deterministically_for_a_seed():
    images = torch.rand(8, 3, 16, 24)
    a = train_gan(images, TINY, steps=4, batch=4, lr=1e-3, seed=3, per_round=2)
    b = train_gan(images, TINY, steps=4, batch=4, lr=1e-3, seed=3, per_round=2)
    g = torch.Generator().manual_seed(0)
    sample = a.sample(2, g)
    assert sample.shape == (2, 3, 16, 24) and 0 <= float(sample.min()) and float(sample.max()) <= 1
    assert torch.equal(sample, b.sample(2, torch.Generator().manual_seed(0)))


class _FixedNet(torch.nn.Module):
    """An 'attribute network' whose probabilities are fixed: shape 0.9 max, colour 0.6 max."""

    def forward(self, crops, boxes):
        k = len(crops)
        shape = torch.tensor([0.9, 0.05, 0.05]).log().expand(k, 3)
        color = torch.tensor([0.6, 0.4]).log().expand(k, 2)
        return {"shape": shape, "color": color}, torch.zeros(k, 2)


def test_object_confidence_is_the_weakest_attributes_top_probability():
    images = torch.rand(2, 3, 16, 24)
    labels = torch.zeros(2, 16, 24, dtype=torch.long)
    labels[0, 2:8, 2:8] = 1
    labels[0, 10:15, 14:20] = 2
    conf = object_confidence(_FixedNet(), images, labels, crop_size=8)
    assert conf[0].tolist() == pytest.approx([0.6, 0.6]) and len(conf[1]) == 0


def test_the_judge_counts_images_with_a_confident_object():
    class _AllObject(ShapeSegmenter):
        def forward(self, images):
            logits = torch.zeros(len(images), 4, *images.shape[-2:])
            logits[:, 1, 4:10, 4:10] = 5.0
            return logits

    judge = ValidObjectJudge(_AllObject(4), _FixedNet(), 8, threshold=0.5)
    assert judge.rates(torch.rand(3, 3, 16, 24)) == {"images_valid": 1.0, "objects_valid": 1.0,
                                                     "objects_per_image": 1.0}
    strict = ValidObjectJudge(_AllObject(4), _FixedNet(), 8, threshold=0.7)
    assert strict.rates(torch.rand(3, 3, 16, 24))["images_valid"] == 0.0


def test_decoder_widths_set_each_stage_and_default_to_the_channel_ladder():
    plain = GAN(TINY).generator
    assert [b[0].out_channels for b in plain.blocks] == [8, 4] and TINY.decoder_channels == (16, 8, 4)
    wide = GAN(CodecConfig(height=16, width=24, latent=4, channels=4, decoder_widths=(6, 30, 5)))
    assert [b[0].out_channels for b in wide.generator.blocks] == [30, 5]
    assert wide.generator(torch.randn(2, 4)).shape == (2, 3, 16, 24)
    assert wide.discriminator.features[0].out_channels == 4  # the encoder keeps ``channels``
    for bad in ((6, 30), (6, 0, 5), (6.0, 30, 5)):
        with pytest.raises(ConfigError, match="decoder_widths"):
            CodecConfig(decoder_widths=bad)


def test_the_default_decoder_keeps_the_transposed_convolutions_and_its_checkpoint_layout():
    assert CodecConfig().upsample == "transposed"
    from perception.generative.gan import GAN_CODEC

    assert GAN_CODEC.upsample == "transposed"  # the gan bench's (and dissection entry's) GAN is unchanged
    shapes = {k: tuple(v.shape) for k, v in GAN(TINY).generator.state_dict().items() if v.dim()}
    expected = {"project.0.weight": (16 * 2 * 3, 4), "project.0.bias": (16 * 2 * 3,),
                "project.2.weight": (16,), "project.2.bias": (16,), "project.2.running_mean": (16,),
                "project.2.running_var": (16,),
                "blocks.0.0.weight": (16, 8, 4, 4), "blocks.0.1.weight": (8,), "blocks.0.1.bias": (8,),
                "blocks.0.1.running_mean": (8,), "blocks.0.1.running_var": (8,),
                "blocks.1.0.weight": (8, 4, 4, 4), "blocks.1.1.weight": (4,), "blocks.1.1.bias": (4,),
                "blocks.1.1.running_mean": (4,), "blocks.1.1.running_var": (4,),
                "to_rgb.weight": (4, 3, 4, 4), "to_rgb.bias": (3,)}
    assert shapes == expected  # the key layout the earlier autoencoder / VAE / GAN checkpoints were saved with
    assert all(isinstance(b[0], torch.nn.ConvTranspose2d) for b in GAN(TINY).generator.blocks)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_resize_upsampling_gives_the_same_shapes_without_a_checkerboard(mode):
    cfg = CodecConfig(height=16, width=24, latent=4, channels=4, upsample=mode)
    torch.manual_seed(0)
    gen = GAN(cfg).generator.eval()
    for block in gen.blocks:
        assert isinstance(block[0], torch.nn.Upsample) and block[0].mode == mode
        assert isinstance(block[1], torch.nn.Conv2d) and block[1].kernel_size == (3, 3)
    images = gen(torch.randn(3, 4)).detach()
    assert images.shape == (3, 3, 16, 24) and 0 <= float(images.min()) and float(images.max()) <= 1
    # a constant grid stays constant away from the border after resize + convolution; a transposed
    # 4x4 stride-2 convolution stamps a period-2 pattern on it (the checkerboard)
    flat = torch.ones(1, 16, 4, 6)
    resized = gen.blocks[0][:2](flat)[0, :, 1:-1, 1:-1]
    assert torch.allclose(resized, resized[:, :1, :1].expand_as(resized), atol=1e-5)
    torch.manual_seed(0)
    stamped = GAN(TINY).generator.blocks[0][0](flat)[0, :, 1:-1, 1:-1]
    assert not torch.allclose(stamped, stamped[:, :1, :1].expand_as(stamped), atol=1e-3)


def test_a_resize_gan_checkpoint_round_trips_and_does_not_load_into_the_default_layout():
    import io

    cfg = CodecConfig(height=16, width=24, latent=4, channels=4, upsample="nearest")
    torch.manual_seed(1)
    gan = GAN(cfg).eval()
    buf = io.BytesIO()
    torch.save({"gan": gan.state_dict()}, buf)
    buf.seek(0)
    back = GAN(cfg)
    back.load_state_dict(torch.load(buf, weights_only=True)["gan"])
    back.eval()
    z = torch.randn(2, 4)
    assert torch.equal(gan.generator(z), back.generator(z))
    with pytest.raises(RuntimeError):
        GAN(TINY).load_state_dict(gan.state_dict())
    with pytest.raises(ConfigError, match="upsample"):
        CodecConfig(upsample="cubic")


SPECTRAL = CodecConfig(height=16, width=24, latent=4, channels=4, encoder_norm="spectral")


def test_a_spectral_discriminator_has_no_batch_norm_and_unit_spectral_norms():
    disc = GAN(SPECTRAL).discriminator
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())
    layers = [m for m in disc.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 4 and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    disc.train()
    for _ in range(30):  # one power iteration per training forward
        disc(torch.rand(2, 3, 16, 24))
    disc.eval()
    for m in layers:
        assert float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) == pytest.approx(1.0, abs=2e-2)
    plain = GAN(TINY).discriminator
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 2  # the default is DCGAN's
    assert CodecConfig().encoder_norm == "batch"
    with pytest.raises(ConfigError, match="encoder_norm"):
        CodecConfig(encoder_norm="layer")


@pytest.mark.parametrize("config", [TINY, SPECTRAL], ids=["batch", "spectral"])
def test_each_player_gets_its_own_gradient_with_either_discriminator(config):
    torch.manual_seed(0)
    gan = GAN(config)
    real, z = torch.rand(4, 3, 16, 24), torch.randn(4, config.latent)
    state = {k: v.clone() for k, v in gan.state_dict().items()}  # spectral norm's power-iteration vectors too
    out = gan.losses(real, z)
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    grads = torch.autograd.grad(out["loss"], d_params + g_params)
    gan.load_state_dict(state)
    fake = gan.generator(z)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    d_real, d_fake = gan.discriminator(real * 2 - 1), gan.discriminator(fake.detach() * 2 - 1)
    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    g_loss = bce(gan.discriminator(fake * 2 - 1), torch.ones_like(d_fake))
    want = torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params)
    for got, w in zip(grads, want, strict=True):
        assert torch.allclose(got, w, atol=1e-6)


def test_generator_averages_follow_the_weights_and_leave_training_unchanged():
    from perception.generative.gan import fit_gan

    images = torch.rand(8, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    kw = {"steps": 2, "batch": 4, "lr": 1e-2, "seed": 5, "per_round": 1}
    weights = []
    for steps in (0, 1, 2):
        if steps == 0:
            from physics.training import seed_everything

            seed_everything(5)
            weights.append([p.detach().clone() for p in GAN(TINY).generator.parameters()])
        else:
            gan, _ = fit_gan(images, TINY, **{**kw, "steps": steps})
            weights.append([p.detach().clone() for p in gan.generator.parameters()])
    gan, (avg,) = fit_gan(images, TINY, **kw, emas=(0.75,))
    for a, w0, w1, w2 in zip(avg.parameters(), *weights, strict=True):
        want = 0.75 * (0.75 * w0 + 0.25 * w1) + 0.25 * w2
        assert torch.allclose(a, want, atol=1e-6)
    plain = train_gan(images, TINY, **kw)  # tracking averages does not change the run
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), gan.state_dict().values(), strict=True))
    averaged = train_gan(images, TINY, **kw, ema=0.75)
    assert all(torch.equal(a, b) for a, b in zip(averaged.generator.parameters(), avg.parameters(), strict=True))
    with pytest.raises(ConfigError, match="ema"):
        train_gan(images, TINY, **kw, ema=1.0)


def test_snapshots_are_the_generator_after_their_step_and_leave_training_unchanged():
    from perception.generative.gan import fit_gan

    images = torch.rand(8, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    kw = {"batch": 4, "lr": 1e-2, "seed": 5, "per_round": 2}
    one, _ = fit_gan(images, TINY, steps=1, **kw)
    plain, _ = fit_gan(images, TINY, steps=3, **kw)
    snaps = {1: None, 3: None}
    gan, _ = fit_gan(images, TINY, steps=3, snapshots=snaps, **kw)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), gan.state_dict().values(), strict=True))
    for step, want in ((1, one.generator), (3, gan.generator)):
        assert not snaps[step].training
        got = snaps[step].state_dict()
        assert all(torch.equal(got[k], v) for k, v in want.state_dict().items())
    assert snaps[1] is not gan.generator and snaps[3] is not gan.generator  # copies, not the live generator
    with pytest.raises(ConfigError, match="snapshot steps"):
        fit_gan(images, TINY, steps=3, snapshots={4: None}, **kw)


def test_batch_norm_recalibration_takes_the_mean_of_the_generators_own_batch_statistics():
    from perception.generative.gan import recalibrate_batch_norm

    torch.manual_seed(0)
    gen = GAN(TINY).generator
    bn = gen.project[2]
    bn.running_mean.fill_(7.0)
    recalibrate_batch_norm(gen, batch=5, batches=2, seed=4)
    g = torch.Generator().manual_seed(4)
    z = [torch.randn(5, TINY.latent, generator=g) for _ in range(2)]
    with torch.no_grad():
        pre = [gen.project[:2](x) for x in z]  # the batch norm's inputs [5, C, h, w]
    want = torch.stack([p.mean((0, 2, 3)) for p in pre]).mean(0)
    assert torch.allclose(bn.running_mean, want, atol=1e-5)
    assert bn.momentum == 0.1 and not gen.training


COND = CodecConfig(height=16, width=24, latent=4, channels=4, encoder_norm="spectral", conditions=3)


def test_shape_conditions_are_each_shapes_count_one_hot():
    from perception.generative.scenes import MAX_OBJECTS, SHAPE_CONDITIONS, shape_conditions

    data = render_scenes(range(3))
    code = shape_conditions(data)
    assert code.shape == (3, SHAPE_CONDITIONS) == (3, len(SHAPES) * (MAX_OBJECTS + 1))
    counts = code.view(3, len(SHAPES), MAX_OBJECTS + 1).argmax(2)
    assert (code.view(3, len(SHAPES), -1).sum(2) == 1).all()  # one count per shape
    assert counts.sum(1).tolist() == data.counts.tolist()
    first = data.attributes["shape"][: int(data.counts[0])]
    assert counts[0].tolist() == torch.bincount(first, minlength=len(SHAPES)).tolist()
    with pytest.raises(ConfigError, match="max_objects"):
        shape_conditions(data, max_objects=1)


def test_one_object_renders_hold_one_object_and_their_class_code_is_its_shape():
    from perception.generative.scenes import ONE_OBJECT_WORLD, shape_classes

    data = render_scenes(range(4), ONE_OBJECT_WORLD)
    assert data.counts.tolist() == [1] * 4
    code = shape_classes(data)
    assert code.shape == (4, len(SHAPES)) and (code.sum(1) == 1).all()
    assert code.argmax(1).tolist() == data.attributes["shape"].tolist() == data.largest.tolist()
    for i in range(4):  # the shape map shows that one shape
        assert set((data.shapes[i].unique() - 1).tolist()) == {-1, int(data.attributes["shape"][i])}
    with pytest.raises(ConfigError, match="one object"):
        shape_classes(render_scenes(range(3)))  # SMALL_WORLD: 2-4 objects


def test_bench_conditions_follow_the_scenes_and_bad_choices_are_refused():
    from dataclasses import replace

    from perception.generative.gan import run_classifier, run_conditions
    from perception.generative.scenes import (
        ONE_OBJECT_WORLD,
        SHAPE_CONDITIONS,
        shape_classes,
        shape_conditions,
    )
    from perception.interpret.gan_dissection import (
        CONDITIONAL_CODEC,
        FROZEN_CLASSIFIER_CODEC,
        ONE_OBJECT_CODEC,
    )

    one, many = render_scenes(range(3), ONE_OBJECT_WORLD), render_scenes(range(3))
    assert torch.equal(run_conditions(ONE_OBJECT_CODEC, one, "one_object"), shape_classes(one))
    assert torch.equal(run_conditions(CONDITIONAL_CODEC, many), shape_conditions(many))  # the default scenes
    assert run_conditions(replace(ONE_OBJECT_CODEC, conditions=0), one, "one_object") is None
    with pytest.raises(ConfigError, match="shape_classes"):
        run_conditions(CONDITIONAL_CODEC, one, "one_object")  # 15 wide for a 3-class condition
    with pytest.raises(ConfigError, match=f"{SHAPE_CONDITIONS} wide"):
        run_conditions(ONE_OBJECT_CODEC, many)
    with pytest.raises(ConfigError, match="scenes must be one of"):
        run_conditions(ONE_OBJECT_CODEC, one, "one-object")
    with pytest.raises(ConfigError, match="shape_classes"):  # a reader of scene counts for one-object scenes
        run_classifier(True, 0, FROZEN_CLASSIFIER_CODEC, "one_object")


def test_a_one_object_class_code_asks_for_its_shape_alone_and_other_widths_are_refused():
    from perception.generative.condition_classifier import asked_presence

    code = torch.eye(3)[[2, 0]]
    assert torch.equal(asked_presence(code, 3), code)
    with pytest.raises(ConfigError, match="one-object shape classes"):
        asked_presence(torch.zeros(2, 4), 3)


def test_a_conditional_gan_needs_its_pool_and_draws_conditions_from_it():
    pool = torch.eye(3)[[0, 2]]
    with pytest.raises(ConfigError, match="pool"):
        GAN(COND)
    with pytest.raises(ConfigError, match="pool"):
        GAN(COND, torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="unconditional"):
        GAN(TINY, pool)
    with pytest.raises(ConfigError, match="conditions"):
        CodecConfig(conditions=-1)
    with pytest.raises(ConfigError, match="conditions"):
        Autoencoder(COND)
    gan = GAN(COND, pool)
    assert gan.generator.project[0].in_features == COND.latent + 3
    codes = gan.codes(50, torch.Generator().manual_seed(3))
    assert codes.shape == (50, COND.latent + 3)
    assert {tuple(c) for c in codes[:, COND.latent:].tolist()} == {(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)}
    again = gan.codes(50, torch.Generator().manual_seed(3))
    assert torch.equal(codes, again)
    # unconditional codes are exactly the noise the dissection drew before conditions existed
    assert torch.equal(GAN(TINY).codes(5, torch.Generator().manual_seed(3)),
                       torch.randn(5, TINY.latent, generator=torch.Generator().manual_seed(3)))
    torch.manual_seed(0)
    gen = gan.generator.eval()
    z = torch.randn(1, COND.latent)
    with torch.no_grad():  # the generator reads its condition
        a, b = (gen(torch.cat([z, pool[i:i + 1]], 1)) for i in (0, 1))
    assert not torch.allclose(a, b)


def test_the_projection_discriminator_adds_the_conditions_inner_product_and_players_keep_their_gradients():
    torch.manual_seed(0)
    gan = GAN(COND, torch.eye(3))
    gan.discriminator.eval()  # no power iteration: the same weights for both reads
    images, y = torch.rand(4, 3, 16, 24), torch.eye(3)[[0, 1, 2, 1]]
    out = gan.discriminator(images * 2 - 1)
    assert out.shape == (4, 4)
    assert torch.allclose(gan.critic(images, y), out[:, :1] + (out[:, 1:] * y).sum(1, keepdim=True))
    assert not torch.allclose(gan.critic(images, y), gan.critic(images, torch.eye(3)[[1, 2, 0, 0]]))
    gan.train()
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    z = torch.randn(4, COND.latent)
    loss = gan.losses(images, z, y)
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    grads = torch.autograd.grad(loss["loss"], d_params + g_params)
    gan.load_state_dict(state)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    fake = gan.generator(torch.cat([z, y], 1))
    d_real, d_fake = gan.critic(images, y), gan.critic(fake.detach(), y)
    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    g_loss = bce(gan.critic(fake, y), torch.ones_like(d_fake))
    want = torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params)
    for got, w in zip(grads, want, strict=True):
        assert torch.allclose(got, w, atol=1e-6)
    with pytest.raises(ConfigError, match="missing"):
        gan.losses(images, z)
    with pytest.raises(ConfigError, match="conditions"):
        GAN(TINY).losses(images, z, y)


def test_a_conditional_gan_trains_on_its_images_conditions():
    from perception.generative.gan import fit_gan

    images = torch.rand(8, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    conds = torch.eye(3)[torch.arange(8) % 3]
    kw = {"steps": 2, "batch": 4, "lr": 1e-2, "seed": 5, "per_round": 1}
    gan, _ = fit_gan(images, COND, conditions=conds, **kw)
    assert torch.equal(gan.condition_pool, conds)
    before = GAN(COND, conds)
    assert not torch.equal(gan.generator.project[0].weight, before.generator.project[0].weight)
    with pytest.raises(ConfigError, match="conditions"):
        fit_gan(images, COND, conditions=conds[:5], **kw)
    with pytest.raises(ConfigError, match="averages"):
        fit_gan(images, COND, conditions=conds, emas=(0.5,), **kw)
    assert gan.sample(3, torch.Generator().manual_seed(0)).shape == (3, 3, 16, 24)


AUX = CodecConfig(height=16, width=24, latent=4, channels=4, encoder_norm="spectral", conditions=6,
                  condition_head="auxiliary", condition_blocks=2)


def test_condition_head_and_blocks_are_validated():
    with pytest.raises(ConfigError, match="condition_head"):
        CodecConfig(conditions=6, condition_head="softmax")
    with pytest.raises(ConfigError, match="condition_blocks"):
        CodecConfig(conditions=6, condition_blocks=4)
    with pytest.raises(ConfigError, match="condition_blocks"):
        CodecConfig(conditions=6, condition_blocks=0)
    assert CodecConfig().condition_head == "projection" and CodecConfig().condition_blocks == 1
    with pytest.raises(ConfigError, match="auxiliary"):
        GAN(COND, torch.eye(3)).classify(torch.rand(2, 3, 16, 24))


@pytest.mark.parametrize("head", ["auxiliary", "auxiliary_real"])
def test_the_auxiliary_classifier_adds_its_cross_entropy_to_both_players_and_keeps_their_gradients(head):
    import dataclasses

    torch.manual_seed(0)
    y = torch.cat([torch.eye(3)[[0, 1, 2, 1]], torch.eye(3)[[2, 2, 0, 1]]], 1)  # two one-hot blocks of 3
    gan = GAN(dataclasses.replace(AUX, condition_head=head), y)
    images = torch.rand(4, 3, 16, 24)
    gan.discriminator.eval()  # no power iteration: the same weights for every read
    out = gan.discriminator(images * 2 - 1)
    assert out.shape == (4, 7)
    assert torch.equal(gan.critic(images, y), out[:, :1])  # the logit does not read the condition
    assert torch.equal(gan.critic(images, y), gan.critic(images, y.flip(0)))
    assert torch.equal(gan.classify(images), out[:, 1:].view(4, 2, 3))
    gan.train()
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    z = torch.randn(4, AUX.latent)
    loss = gan.losses(images, z, y)
    assert {"d_class", "g_class"} <= set(loss)
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    grads = torch.autograd.grad(loss["loss"], d_params + g_params)
    gan.load_state_dict(state)
    bce, ce = torch.nn.functional.binary_cross_entropy_with_logits, torch.nn.functional.cross_entropy
    target = y.view(4, 2, 3).argmax(2).flatten()

    def cls(o):  # mean over the two blocks
        return ce(o[:, 1:].reshape(8, 3), target)

    fake = gan.generator(torch.cat([z, y], 1))
    o_real, o_fake = gan.discriminator(images * 2 - 1), gan.discriminator(fake.detach() * 2 - 1)
    d_class = cls(o_real) + (cls(o_fake) if head == "auxiliary" else 0.0)  # auxiliary_real: renders only
    d_loss = bce(o_real[:, :1], torch.ones(4, 1)) + bce(o_fake[:, :1], torch.zeros(4, 1)) + d_class
    o_g = gan.discriminator(fake * 2 - 1)
    g_loss = bce(o_g[:, :1], torch.ones(4, 1)) + cls(o_g)
    want = torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params)
    for got, w in zip(grads, want, strict=True):
        assert torch.allclose(got, w, atol=1e-6)
    assert torch.allclose(loss["d_class"], d_class, atol=1e-6)


def test_an_auxiliary_classifier_gan_learns_to_classify_its_conditions():
    from perception.generative.gan import fit_gan

    # two classes that differ in brightness: the auxiliary classifier must learn to tell them apart
    g = torch.Generator().manual_seed(1)
    cls = torch.arange(32) % 2
    images = (0.2 + 0.6 * cls[:, None, None, None] + 0.05 * torch.rand(32, 3, 16, 24, generator=g)).clamp(0, 1)
    one = CodecConfig(height=16, width=24, latent=4, channels=4, encoder_norm="spectral", conditions=2,
                      condition_head="auxiliary")
    conds = torch.eye(2)[cls]
    gan, _ = fit_gan(images, one, conditions=conds, steps=60, batch=16, lr=5e-3, seed=0, per_round=20)
    with torch.no_grad():
        acc = float((gan.classify(images)[:, 0].argmax(1) == cls).float().mean())
    assert acc >= 0.9



FROZEN = CodecConfig(height=16, width=24, latent=4, channels=4, encoder_norm="spectral", conditions=6,
                     condition_head="classifier", condition_blocks=2)
TWO_SHAPES = torch.cat([torch.eye(3)[[0, 1, 2, 1]], torch.eye(3)[[2, 2, 0, 1]]], 1)  # two count blocks of 0..2


def _reader(seed: int = 0):
    from perception.generative.condition_classifier import ShapePresenceNet

    torch.manual_seed(seed)
    return ShapePresenceNet(2, width=4).eval()


def test_the_presence_reader_gives_grid_logits_and_a_shapes_presence_is_its_best_cell():
    from perception.generative.condition_classifier import asked_presence, presence_accuracy

    net = _reader()
    images = torch.rand(4, 3, 16, 24)
    logits = net(images)
    assert logits.shape == (4, 3, 4, 6)  # background + 2 shapes on the H/4 x W/4 grid
    p = net.presence(images)
    assert p.shape == (4, 2) and torch.equal(p, logits.softmax(1)[:, 1:].amax((2, 3)))
    asked = asked_presence(TWO_SHAPES, 2)
    assert asked.tolist() == [[0, 1], [1, 1], [1, 0], [1, 1]]  # count > 0
    bce = torch.nn.functional.binary_cross_entropy
    assert torch.allclose(net.condition_loss(images, TWO_SHAPES), bce(p, asked), atol=1e-6)
    acc = presence_accuracy(net, images, TWO_SHAPES)
    assert acc["present_set"] == float(((p > 0.5) == (asked > 0.5)).all(1).float().mean())
    with pytest.raises(ConfigError, match="conditions"):
        asked_presence(TWO_SHAPES[:, :5], 2)
    with pytest.raises(ConfigError, match="multiples of 4"):
        net(torch.rand(1, 3, 10, 24))


def test_a_presence_reader_learns_where_shapes_are_from_shape_maps_and_comes_back_frozen():
    from perception.generative.condition_classifier import presence_accuracy, train_presence_net

    g = torch.Generator().manual_seed(1)
    n = 32
    images = 0.1 * torch.rand(n, 3, 16, 24, generator=g)
    maps = torch.zeros(n, 16, 24, dtype=torch.long)
    has = torch.stack([torch.arange(n) % 2, torch.arange(n) // 2 % 2], 1)  # shape 0: a red square, 1: a blue one
    for i in range(n):
        for s, (ch, x0) in enumerate(((0, 2), (2, 14))):
            if has[i, s]:
                images[i, ch, 4:10, x0:x0 + 6] = 1.0
                maps[i, 4:10, x0:x0 + 6] = s + 1
    conds = torch.cat([torch.eye(3)[has[:, 0]], torch.eye(3)[has[:, 1]]], 1)
    net = train_presence_net(images, maps, conds, 2, steps=80, batch=16, lr=1e-2, seed=0, width=4)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert presence_accuracy(net, images, conds)["present_set"] >= 0.9
    with pytest.raises(ConfigError, match="same renders"):
        train_presence_net(images, maps[:5], conds, 2, steps=1, batch=4, lr=1e-3, seed=0)


def _two_squares(n: int = 32):
    """Dark images with a red square on the left (shape 0) and / or a blue one on the right (shape 1)."""
    g = torch.Generator().manual_seed(1)
    images = 0.1 * torch.rand(n, 3, 16, 24, generator=g)
    maps = torch.zeros(n, 16, 24, dtype=torch.long)
    has = torch.stack([torch.arange(n) % 2, torch.arange(n) // 2 % 2], 1)
    for i in range(n):
        for s, (ch, x0) in enumerate(((0, 2), (2, 14))):
            if has[i, s]:
                images[i, ch, 4:10, x0:x0 + 6] = 1.0
                maps[i, 4:10, x0:x0 + 6] = s + 1
    return images, maps, torch.cat([torch.eye(3)[has[:, 0]], torch.eye(3)[has[:, 1]]], 1)


def test_the_frozen_classifier_head_adds_the_readers_loss_to_the_generator_only():
    torch.manual_seed(0)
    y = TWO_SHAPES
    clf = _reader()
    with pytest.raises(ConfigError, match="ShapePresenceNet"):
        GAN(FROZEN, y)
    with pytest.raises(ConfigError, match="condition_head"):
        GAN(AUX, y, clf)
    gan = GAN(FROZEN, y, clf)
    images = torch.rand(4, 3, 16, 24)
    gan.discriminator.eval()
    out = gan.discriminator(images * 2 - 1)
    assert out.shape == (4, 1)  # the discriminator does not read or predict the condition
    assert torch.equal(gan.critic(images, y), out) and torch.equal(gan.critic(images, y.flip(0)), out)
    gan.train()
    assert not gan.classifier.training and gan.generator.training  # the reader's batch norm stays frozen
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    z = torch.randn(4, FROZEN.latent)
    loss = gan.losses(images, z, y)
    assert set(loss) == {"loss", "d_loss", "g_loss", "g_class"}
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    grads = torch.autograd.grad(loss["loss"], d_params + g_params)
    gan.load_state_dict(state)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    fake = gan.generator(torch.cat([z, y], 1))
    o_real, o_fake = gan.discriminator(images * 2 - 1), gan.discriminator(fake.detach() * 2 - 1)
    d_loss = bce(o_real, torch.ones(4, 1)) + bce(o_fake, torch.zeros(4, 1))
    g_class = clf.condition_loss(fake, y)
    g_loss = bce(gan.discriminator(fake * 2 - 1), torch.ones(4, 1)) + g_class
    want = torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params)
    for got, w in zip(grads, want, strict=True):
        assert torch.allclose(got, w, atol=1e-6)
    assert torch.allclose(loss["g_class"], g_class, atol=1e-6)


def test_fit_gan_with_a_frozen_reader_changes_the_generator_not_the_reader():
    from perception.generative.gan import fit_gan

    images = torch.rand(8, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    y = torch.cat([torch.eye(3)[torch.arange(8) % 3], torch.eye(3)[torch.arange(8) // 3 % 3]], 1)
    clf = _reader(3)
    before = {k: v.clone() for k, v in clf.state_dict().items()}  # weights and batch-norm statistics
    gan, _ = fit_gan(images, FROZEN, conditions=y, classifier=clf, steps=3, batch=4, lr=1e-2, seed=5, per_round=1)
    for k, v in gan.classifier.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(gan.generator.project[0].weight, GAN(FROZEN, y, _reader()).generator.project[0].weight)


def _grey_scene(n: int = 6):
    """Grey images whose brightness is their shape map (0 floor, 1 or 2 a square), and the maps."""
    maps = torch.zeros(n, 16, 24, dtype=torch.long)
    for i in range(n):
        maps[i, 4 + i % 3:10 + i % 3, 3 + 2 * i:9 + 2 * i] = 1 + i % 2
    return (0.2 + 0.3 * maps.float())[:, None].expand(n, 3, 16, 24).clone(), maps


def test_diff_augment_moves_images_and_shape_maps_together_and_keeps_gradients():
    from perception.generative.condition_classifier import diff_augment

    images, maps = _grey_scene()
    x, m = diff_augment(images, torch.Generator().manual_seed(0), maps)
    assert x.shape == images.shape and m.shape == maps.shape and m.dtype == maps.dtype
    assert not torch.equal(m, maps)  # translated
    for i in range(len(x)):  # colour jitter is affine per image on grey pixels (contrast >= 0.7), noise sd 0.03
        inside, outside = x[i, 0][m[i] > 0], x[i, 0][m[i] == 0]
        assert len(inside) and float(inside.min()) > float(outside.max())  # the square stayed under its map
    again, m2 = diff_augment(images, torch.Generator().manual_seed(0), maps)
    assert torch.equal(again, x) and torch.equal(m2, m)  # the draws are the generator's
    assert diff_augment(images, torch.Generator().manual_seed(0))[1] is None
    leaf = images.clone().requires_grad_(True)
    grad, = torch.autograd.grad(diff_augment(leaf, torch.Generator().manual_seed(1))[0].sum(), leaf)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="shape maps"):
        diff_augment(images, torch.Generator(), maps[:, :8])
    with pytest.raises(ConfigError, match="images"):
        diff_augment(images[:, :1], torch.Generator())


def test_a_reader_ensemble_averages_its_members_and_augments_only_its_condition_loss():
    from perception.generative.condition_classifier import ReaderEnsemble, ShapePresenceNet

    a, b = _reader(0), _reader(1)
    images = torch.rand(4, 3, 16, 24)
    plain = ReaderEnsemble([a, b], augment=False, seed=0)
    assert torch.allclose(plain.presence(images), (a.presence(images) + b.presence(images)) / 2)
    want = (a.condition_loss(images, TWO_SHAPES) + b.condition_loss(images, TWO_SHAPES)) / 2
    assert torch.allclose(plain.condition_loss(images, TWO_SHAPES), want, atol=1e-6)
    aug, aug2 = ReaderEnsemble([a, b], augment=True, seed=3), ReaderEnsemble([a, b], augment=True, seed=3)
    assert torch.equal(aug.presence(images), plain.presence(images))  # reading is not augmented
    first = aug.condition_loss(images, TWO_SHAPES)
    assert not torch.allclose(first, want) and torch.equal(first, aug2.condition_loss(images, TWO_SHAPES))
    assert not torch.equal(aug.condition_loss(images, TWO_SHAPES), first)  # a fresh draw each call
    with pytest.raises(ConfigError, match="same shapes"):
        ReaderEnsemble([a, ShapePresenceNet(3, width=4)], augment=False, seed=0)
    gan = GAN(FROZEN, TWO_SHAPES, aug)  # a condition_head="classifier" GAN takes an ensemble
    z = torch.randn(4, FROZEN.latent)
    assert set(gan.losses(images, z, TWO_SHAPES)) == {"loss", "d_loss", "g_loss", "g_class"}
    g_params = list(gan.generator.parameters())
    fake = gan.generator(torch.cat([z, TWO_SHAPES], 1))
    grads = torch.autograd.grad(gan.classifier.condition_loss(fake, TWO_SHAPES), g_params)
    assert any(g.abs().sum() > 0 for g in grads)  # the augmented loss reaches the generator
    assert not any(p.requires_grad for p in a.parameters())


def test_the_reader_options_are_classifier_only_and_an_augmented_reader_still_learns():
    from perception.generative.condition_classifier import presence_accuracy, train_presence_net

    with pytest.raises(ConfigError, match="classifier_members"):
        CodecConfig(conditions=6, condition_blocks=2, classifier_augment=True)
    with pytest.raises(ConfigError, match="classifier_members"):
        CodecConfig(conditions=6, condition_blocks=2, condition_head="classifier", classifier_members=0)
    images, maps, conds = _two_squares()
    plain = train_presence_net(images, maps, conds, 2, steps=2, batch=8, lr=1e-2, seed=0, width=4)
    aug = train_presence_net(images, maps, conds, 2, steps=2, batch=8, lr=1e-2, seed=0, width=4, augment=True)
    assert not torch.equal(plain.head.weight, aug.head.weight)  # the augmentation changes what it trains on
    net = train_presence_net(images, maps, conds, 2, steps=80, batch=16, lr=1e-2, seed=0, width=4, augment=True)
    assert presence_accuracy(net, images, conds)["present_set"] >= 0.9


def test_the_minibatch_std_channel_is_the_batchs_mean_feature_spread_and_zero_for_a_batch_of_copies():
    from perception.generative.autoencoder import MBSTD_EPS, minibatch_std

    x = torch.randn(5, 3, 2, 4)
    out = minibatch_std(x)
    assert out.shape == (5, 4, 2, 4) and torch.equal(out[:, :3], x)
    want = (x.var(0, unbiased=False) + MBSTD_EPS).sqrt().mean()
    assert torch.allclose(out[:, 3], want.expand(5, 2, 4))
    copies = minibatch_std(x[:1].expand(5, -1, -1, -1))  # no spread: only the epsilon, and a batch of one the same
    assert torch.allclose(copies[:, 3], torch.tensor(MBSTD_EPS).sqrt()) and not minibatch_std(x[:1]).isnan().any()


def test_a_minibatch_std_discriminator_reads_the_rest_of_its_batch_and_the_default_does_not():
    torch.manual_seed(0)
    mb = CodecConfig(height=16, width=24, latent=4, channels=4, upsample="nearest", minibatch_std=True)
    gan, plain = GAN(mb).eval(), GAN(TINY).eval()
    assert gan.discriminator.head.in_features == (4 * 4 + 1) * 2 * 3  # one more channel on the 2 x 3 grid
    assert plain.discriminator.head.in_features == 4 * 4 * 2 * 3 and not CodecConfig().minibatch_std
    image, varied = torch.rand(1, 3, 16, 24), torch.rand(3, 3, 16, 24)
    same = image.expand(4, -1, -1, -1)
    with torch.no_grad():  # the same first image scores differently beside copies of itself and beside other images
        assert not torch.allclose(gan.critic(same, None)[0], gan.critic(torch.cat([image, varied]), None)[0])
        assert torch.allclose(plain.critic(same, None)[0], plain.critic(torch.cat([image, varied]), None)[0])
    out = gan.train().losses(torch.rand(4, 3, 16, 24), torch.randn(4, 4))  # both players train through it
    head = gan.discriminator.head.weight
    grads = torch.autograd.grad(out["loss"], [head, *gan.generator.parameters()])
    assert all(g.isfinite().all() for g in grads) and grads[0][:, -2 * 3:].abs().sum() > 0  # the new channel's weights learn
    with pytest.raises(ConfigError, match="minibatch_std is for discriminator='encoder'"):
        CodecConfig(minibatch_std=True, discriminator="cells")
    for model in (Autoencoder, VAE):
        with pytest.raises(ConfigError, match="minibatch_std is the GAN discriminator's"):
            model(mb)


def _shape_reader(seed: int = 0):
    """A tiny untrained presence reader of every shape (what a shape_balance GAN reads its fakes with)."""
    from perception.generative.condition_classifier import ShapePresenceNet

    torch.manual_seed(seed)
    return ShapePresenceNet(len(SHAPES), width=4).eval()


def test_the_balance_loss_is_zero_at_the_renders_mix_and_raises_a_dropped_shape():
    from perception.generative.condition_classifier import balance_loss

    target = torch.tensor([0.3, 0.35, 0.35])
    matched = target.expand(6, 3).clone()  # each fake reads the renders' mean presence
    assert float(balance_loss(matched, target)) == pytest.approx(0.0, abs=1e-7)
    dropped = torch.tensor([[0.9, 0.05, 0.05]] * 4 + [[0.02, 0.02, 0.02]] * 2, requires_grad=True)  # cubes and empties
    loss = balance_loss(dropped, target)
    assert float(loss.detach()) > 0.5
    (grad,) = torch.autograd.grad(loss, dropped)
    assert (grad[:, 0] > 0).all() and (grad[:, 1:] < 0).all()  # descent lowers cubes and raises spheres, cylinders
    assert balance_loss(torch.zeros(2, 3), target).isfinite()  # a batch of empty fakes: large, not infinite
    with pytest.raises(ConfigError, match="balance_loss: presence must be"):
        balance_loss(dropped, torch.ones(2))


def test_a_shape_balance_gan_adds_the_readers_balance_term_to_the_generator_only():
    from perception.generative.condition_classifier import balance_loss, mean_presence

    torch.manual_seed(0)
    cfg = CodecConfig(height=16, width=24, latent=4, channels=4, upsample="nearest", shape_balance=0.7)
    clf, images = _shape_reader(), torch.rand(4, 3, 16, 24)
    target = mean_presence(clf, images)
    assert target.shape == (3,) and ((0 <= target) & (target <= 1)).all()
    for wrong in (None, _reader()):  # none, or a reader of two shapes
        with pytest.raises(ConfigError, match="needs a ShapePresenceNet"):
            GAN(cfg, None, wrong, target)
    with pytest.raises(ConfigError, match="needs balance_target"):
        GAN(cfg, None, clf)
    with pytest.raises(ConfigError, match="needs balance_target"):
        GAN(cfg, None, clf, torch.tensor([0.5, float("nan"), 0.2]))
    with pytest.raises(ConfigError, match="balance_target is given but"):
        GAN(TINY, None, None, target)
    gan = GAN(cfg, None, clf, target).train()
    assert not gan.balance_reader.training and not gan.frozen_classifier  # no condition loss, and the reader stays frozen
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    z = torch.randn(4, 4)
    out = gan.losses(images, z)
    assert set(out) == {"loss", "d_loss", "g_loss", "g_balance"}
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    grads = torch.autograd.grad(out["loss"], d_params + g_params)
    gan.load_state_dict(state)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    fake = gan.generator(z)
    d_loss = bce(gan.discriminator(images * 2 - 1), torch.ones(4, 1)) + bce(gan.discriminator(fake.detach() * 2 - 1),
                                                                           torch.zeros(4, 1))
    g_balance = balance_loss(clf.presence(fake), target)
    g_loss = bce(gan.discriminator(fake * 2 - 1), torch.ones(4, 1)) + 0.7 * g_balance
    want = torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params)
    for got, w in zip(grads, want, strict=True):
        assert torch.allclose(got, w, atol=1e-6)
    assert torch.allclose(out["g_balance"], g_balance, atol=1e-6) and float(g_balance) > 0


def test_shape_balance_is_validated_and_refused_where_it_has_no_meaning():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="shape_balance must be a finite weight"):
            CodecConfig(shape_balance=bad)
    with pytest.raises(ConfigError, match="shape_balance is for an unconditional GAN"):
        CodecConfig(conditions=3, shape_balance=1.0)
    cfg = CodecConfig(height=16, width=24, latent=4, channels=4, shape_balance=1.0)
    for model in (Autoencoder, VAE):
        with pytest.raises(ConfigError, match="shape_balance is the GAN generator's"):
            model(cfg)
    assert CodecConfig().shape_balance == 0.0


def test_fit_gan_with_shape_balance_measures_the_renders_mix_with_the_frozen_reader():
    from dataclasses import replace

    from perception.generative.condition_classifier import mean_presence
    from perception.generative.gan import fit_gan

    images = torch.rand(8, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    cfg = CodecConfig(height=16, width=24, latent=4, channels=4, upsample="nearest", shape_balance=1.0)
    clf = _shape_reader(3)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    gan, _ = fit_gan(images, cfg, classifier=clf, steps=3, batch=4, lr=1e-2, seed=5, per_round=1)
    assert torch.equal(gan.balance_target, mean_presence(clf, images))  # the renders' mix, read once before training
    for k, v in gan.balance_reader.state_dict().items():
        assert torch.equal(v, before[k]), k
    plain, _ = fit_gan(images, replace(cfg, shape_balance=0.0), steps=3, batch=4, lr=1e-2, seed=5, per_round=1)
    assert not torch.equal(gan.generator.project[0].weight, plain.generator.project[0].weight)  # the term moved it
