"""The cell discriminator (fully convolutional, per-cell projection of the condition) and its GAN options."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from perception.generative.autoencoder import CodecConfig, ConvEncoder
from perception.generative.cell_discriminator import CellDiscriminator
from perception.generative.gan import GAN, fit_gan
from perception.generative.scenes import SHAPES
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CELLS = CodecConfig(height=16, width=24, latent=4, channels=4, encoder_norm="spectral", conditions=3,
                    discriminator="cells")
MAPS = replace(CELLS, discriminator_maps=True)
bce = F.binary_cross_entropy_with_logits


def test_the_cell_discriminator_gives_each_cell_of_the_quarter_grid_outputs_that_see_only_nearby_pixels():
    torch.manual_seed(0)
    net = CellDiscriminator(48, 64, 5, "batch", width=2).eval()
    x = torch.rand(1, 3, 48, 64)
    out = net(x)
    assert out.shape == (1, 5, 12, 16)
    y = x.clone()
    y[0, :, 0, 0] += 1.0  # one corner pixel: cells within the 29-pixel receptive field move, the far corner does not
    moved = (net(y) - out).abs().amax(1)[0]
    assert moved[0, 0] > 0 and moved[11, 15] == 0 and moved[0, 8] == 0
    with pytest.raises(StateError, match="48, 64"):
        net(torch.rand(1, 3, 16, 24))
    for bad in ({"norm": "layer"}, {"outputs": 0}):
        with pytest.raises(ConfigError, match="CellDiscriminator"):
            CellDiscriminator(48, 64, **{"outputs": 1, **bad})


def test_the_discriminator_options_are_validated_and_off_by_default():
    assert CodecConfig().discriminator == "encoder" and not CodecConfig().discriminator_maps
    assert isinstance(GAN(replace(CELLS, discriminator="encoder"), torch.eye(3)).discriminator, ConvEncoder)
    with pytest.raises(ConfigError, match="discriminator must be one of"):
        CodecConfig(discriminator="patch")
    with pytest.raises(ConfigError, match="got 'classifier'"):
        replace(CELLS, condition_head="classifier", condition_blocks=3)
    with pytest.raises(ConfigError, match="discriminator_image"):
        CodecConfig(discriminator_image=True)  # the encoder already gives one whole-image logit
    with pytest.raises(ConfigError, match="discriminator_image"):
        replace(CELLS, discriminator_image="yes")
    assert not CodecConfig().discriminator_image
    with pytest.raises(ConfigError, match="discriminator_maps"):
        CodecConfig(discriminator_maps=True)  # the encoder has no cells to label
    with pytest.raises(ConfigError, match="discriminator_maps"):
        replace(CELLS, discriminator_maps=1)
    CodecConfig(discriminator="cells")  # an unconditional PatchGAN is allowed


def test_the_condition_is_projected_in_every_cell_and_each_player_keeps_its_own_gradient():
    torch.manual_seed(0)
    gan = GAN(CELLS, torch.eye(3))
    gan.discriminator.eval()  # no power iteration: the same weights for every read
    images, y = torch.rand(4, 3, 16, 24), torch.eye(3)[[0, 1, 2, 1]]
    out = gan.discriminator(images * 2 - 1)
    assert out.shape == (4, 4, 4, 6)
    want = (out[:, 0] + (out[:, 1:] * y[:, :, None, None]).sum(1)).flatten(1)
    assert torch.allclose(gan.critic(images, y), want) and gan.critic(images, y).shape == (4, 24)
    assert not torch.allclose(gan.critic(images, y), gan.critic(images, torch.eye(3)[[1, 2, 0, 0]]))
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    z = torch.randn(4, CELLS.latent)
    loss = gan.losses(images, z, y)
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    grads = torch.autograd.grad(loss["loss"], d_params + g_params)
    gan.load_state_dict(state)
    fake = gan.generator(torch.cat([z, y], 1))
    d_real, d_fake = gan.critic(images, y), gan.critic(fake.detach(), y)
    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))  # mean over cells
    g_loss = bce(gan.critic(fake, y), torch.ones_like(d_fake))
    for got, w in zip(grads, torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params), strict=True):
        assert torch.allclose(got, w, atol=1e-6)


def test_the_shape_map_head_adds_its_cross_entropy_on_real_maps_to_the_discriminator_only():
    torch.manual_seed(0)
    gan = GAN(MAPS, torch.eye(3))
    gan.discriminator.eval()
    images, y = torch.rand(4, 3, 16, 24), torch.eye(3)[[0, 1, 2, 1]]
    maps = torch.randint(0, 1 + len(SHAPES), (4, 16, 24))
    out = gan.discriminator(images * 2 - 1)
    assert out.shape == (4, 1 + 3 + 1 + len(SHAPES), 4, 6)
    z = torch.randn(4, MAPS.latent)
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    with_maps = gan.losses(images, z, y, maps)
    gan.load_state_dict(state)
    want = F.cross_entropy(F.interpolate(out[:, 4:], size=(16, 24), mode="bilinear", align_corners=False), maps)
    assert torch.allclose(with_maps["d_maps"], want)
    gan.load_state_dict(state)
    g_params = list(gan.generator.parameters())
    g_with = torch.autograd.grad(gan.losses(images, z, y, maps)["loss"], g_params)
    gan.load_state_dict(state)
    plain = GAN(CELLS, torch.eye(3))  # the same discriminator without the map head reads no maps
    with pytest.raises(ConfigError, match="discriminator_maps"):
        plain.losses(images, z, y, maps)
    with pytest.raises(ConfigError, match="missing"):
        gan.losses(images, z, y)
    # the map loss is on real images: the generator's gradient is the adversarial term's alone
    fake = gan.generator(torch.cat([z, y], 1))
    g_loss = bce(gan.critic(fake, y), torch.ones(4, 24))
    for got, w in zip(g_with, torch.autograd.grad(g_loss, g_params), strict=True):
        assert torch.allclose(got, w, atol=1e-6)


def test_fit_gan_trains_the_map_head_on_the_images_maps_and_refuses_missing_maps():
    gen = torch.Generator().manual_seed(2)
    maps = torch.zeros(8, 16, 24, dtype=torch.long)
    maps[:, 4:12, 6:14] = 1 + torch.arange(8)[:, None, None] % 3  # a square of the class's shape in each image
    images = torch.rand(8, 3, 16, 24, generator=gen) * 0.2 + 0.3 * (maps > 0)[:, None] * (1 + maps[:, None] % 2)
    conds = torch.eye(3)[torch.arange(8) % 3]
    kw = {"batch": 8, "lr": 1e-2, "seed": 5, "per_round": 1, "conditions": conds}

    def map_loss(gan: GAN) -> float:
        gan.discriminator.eval()
        with torch.no_grad():
            logits = gan.discriminator(images * 2 - 1)[:, 4:]
            return float(F.cross_entropy(F.interpolate(logits, size=(16, 24), mode="bilinear", align_corners=False), maps))

    torch.manual_seed(5)
    first = map_loss(GAN(MAPS, conds))
    gan, _ = fit_gan(images, MAPS, steps=30, shape_maps=maps, **kw)
    assert map_loss(gan) < 0.7 * first
    with pytest.raises(ConfigError, match="shape_maps"):
        fit_gan(images, MAPS, steps=1, **kw)
    with pytest.raises(ConfigError, match="shape_maps"):
        fit_gan(images, CELLS, steps=1, shape_maps=maps, **kw)
    with pytest.raises(ConfigError, match="shape_maps"):
        fit_gan(images, MAPS, steps=1, shape_maps=maps[:, :8], **kw)


AUX = replace(CELLS, encoder_norm="batch", condition_head="auxiliary_real", discriminator_image=True)


def test_the_image_head_sees_the_whole_image_and_is_refused_where_there_is_none():
    torch.manual_seed(0)
    net = CellDiscriminator(48, 64, 2, "batch", width=2, image=True).eval()
    x = torch.rand(1, 3, 48, 64)
    cells, image = net(x)
    assert cells.shape == (1, 2, 12, 16) and image.shape == (1, 1)
    y = x.clone()
    y[0, :, 0, 0] += 1.0  # a corner pixel moves the image logit (the far cells do not see it)
    assert net(y)[1] != image
    with pytest.raises(ConfigError, match="image must be a bool"):
        CellDiscriminator(48, 64, 1, image=1)
    with pytest.raises(ConfigError, match="discriminator_image"):
        GAN(CELLS, torch.eye(3)).image_critic(torch.rand(2, 3, 16, 24))


def test_the_cell_auxiliary_classifier_reads_the_cells_mean_learns_on_real_only_and_the_image_logit_joins_both_players():
    torch.manual_seed(0)
    gan = GAN(AUX, torch.eye(3))
    gan.discriminator.eval()  # batch statistics fixed: the same outputs for every read
    images, y = torch.rand(4, 3, 16, 24), torch.eye(3)[[0, 1, 2, 1]]
    cells, image = gan.discriminator(images * 2 - 1)
    assert cells.shape == (4, 4, 4, 6) and image.shape == (4, 1)
    assert torch.allclose(gan.critic(images, y), cells[:, 0].flatten(1))  # no projection: y is not read
    assert torch.allclose(gan.critic(images, y), gan.critic(images, torch.eye(3)[[1, 2, 0, 0]]))
    assert torch.allclose(gan.classify(images), cells[:, 1:4].mean((2, 3))[:, None])
    assert torch.allclose(gan.image_critic(images), image)
    z = torch.randn(4, AUX.latent)
    state = {k: v.clone() for k, v in gan.state_dict().items()}
    got = gan.losses(images, z, y)
    d_params, g_params = list(gan.discriminator.parameters()), list(gan.generator.parameters())
    gan.load_state_dict(state)
    grads = torch.autograd.grad(gan.losses(images, z, y)["loss"], d_params + g_params)
    gan.load_state_dict(state)
    fake = gan.generator(torch.cat([z, y], 1))

    def adv(x: torch.Tensor, target: float) -> torch.Tensor:
        c, i = gan.critic(x, y), gan.image_critic(x)
        return bce(c, torch.full_like(c, target)) + bce(i, torch.full_like(i, target))

    real_class = F.cross_entropy(gan.classify(images)[:, 0], y.argmax(1))  # on renders only ("auxiliary_real")
    assert torch.allclose(got["d_class"], real_class)
    d_loss = adv(images, 1.0) + adv(fake.detach(), 0.0) + real_class
    g_loss = adv(fake, 1.0) + F.cross_entropy(gan.classify(fake)[:, 0], y.argmax(1))
    for g, w in zip(grads, torch.autograd.grad(d_loss, d_params) + torch.autograd.grad(g_loss, g_params), strict=True):
        assert torch.allclose(g, w, atol=1e-5)


def test_fit_gan_teaches_the_cell_auxiliary_classifier_the_real_images_classes():
    gen = torch.Generator().manual_seed(2)
    cls = torch.arange(12) % 3
    images = torch.rand(12, 3, 16, 24, generator=gen) * 0.1
    images[torch.arange(12), cls] += 0.8  # the class is the image's colour channel
    conds = torch.eye(3)[cls]
    torch.manual_seed(5)
    first = GAN(AUX, conds).eval()
    gan, _ = fit_gan(images, AUX, steps=40, batch=12, lr=1e-2, seed=5, per_round=1, conditions=conds)
    gan.eval()
    with torch.no_grad():
        before = F.cross_entropy(first.classify(images)[:, 0], cls)
        after = F.cross_entropy(gan.classify(images)[:, 0], cls)
        assert after < 0.5 * before and (gan.classify(images)[:, 0].argmax(1) == cls).all()
