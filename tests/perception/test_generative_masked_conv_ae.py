"""Masked convolutional autoencoder: masks, masked convolution that hides what is hidden, pretraining, fine-tuning."""

from __future__ import annotations

import pytest
import torch

from perception.generative.masked_conv_ae import (
    PATCH,
    ConvMAEClassifier,
    MaskedConvAE,
    MaskedConvConfig,
    MaskedConvEncoder,
    accuracy,
    finetune,
    patchify,
    pretrain,
    random_keep,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = MaskedConvConfig(height=16, width=32, conv=4, dim=16, depth=1, heads=2, decoder_dim=8, decoder_depth=1)


def test_masks_keep_a_quarter_of_the_tokens_and_patchify_is_row_major():
    keep = random_keep(5, 16, 0.75, torch.Generator().manual_seed(0))
    assert keep.shape == (5, 16) and keep.sum(1).tolist() == [4] * 5
    image = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    patches = patchify(image)
    assert patches.shape == (2, 4, PATCH * PATCH * 3)
    assert patches[1, 1, 0].item() == image[1, 0, 0, PATCH].item()  # token 1 = first row, second column


def test_visible_tokens_do_not_see_hidden_pixels():
    torch.manual_seed(0)
    enc = MaskedConvEncoder(TINY).eval()
    keep = torch.zeros(1, TINY.tokens, dtype=torch.bool)
    keep[0, [0, 5]] = True
    a = torch.rand(1, 3, 16, 32)
    b = a.clone()
    b[..., 8:, 24:] = torch.rand(1, 3, 8, 8)  # token 7 is hidden: its pixels change
    with torch.no_grad():
        out_a, out_b = enc(a, keep), enc(b, keep)
        assert out_a.shape == (1, 2, TINY.dim) and torch.allclose(out_a, out_b, atol=1e-6)
        b[..., :8, 8:16] += 0.5  # token 1 is hidden too; token 5's pixels are visible
        b[..., 8:, 8:16] += 0.5
        assert not torch.allclose(out_a, enc(b, keep), atol=1e-6)
        assert enc(a).shape == (1, TINY.tokens, TINY.dim)
    with pytest.raises(StateError):
        enc(torch.rand(1, 3, 16, 16))
    with pytest.raises(ConfigError):
        MaskedConvConfig(height=12)


def test_pretraining_loss_counts_hidden_patches_only_and_falls():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 32) * 0.3
    mae = MaskedConvAE(TINY)
    keep = random_keep(4, TINY.tokens, 0.5, torch.Generator().manual_seed(0))
    changed = images.clone()
    with torch.no_grad():
        before = float(mae.loss(images, keep)["loss"])
        assert mae.loss(images, keep)["pred"].shape == (4, TINY.tokens, PATCH * PATCH * 3)
    trained = pretrain(images, TINY, steps=30, batch=4, lr=3e-3, seed=0)
    with torch.no_grad():
        assert float(trained.loss(changed, keep)["loss"]) < before


def test_finetuning_from_the_pretrained_encoder_starts_from_its_weights_and_learns():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1] * 4)
    images = torch.rand(8, 3, 16, 32) * 0.5 + 0.5 * labels[:, None, None, None]  # class 1 is bright
    mae = MaskedConvAE(TINY)
    clf = ConvMAEClassifier(TINY, 2, mae.encoder)
    assert clf.encoder is mae.encoder and clf(images).shape == (8, 2)
    model = finetune(images, labels, 2, TINY, steps=40, batch=8, lr=3e-3, seed=0)
    assert accuracy(model, images, labels) >= 0.75
