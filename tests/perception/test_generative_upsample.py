"""nearest2x: the same tensors and gradients as F.interpolate's nearest 2x, bit for bit, where the models use it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.generative.autoencoder import CodecConfig, ConvDecoder
from perception.generative.segmenter import ShapeSegmenter
from perception.generative.upsample import Nearest2x, nearest2x


def _reference(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


@pytest.mark.parametrize("shape", [(32, 96, 6, 8), (7, 48, 12, 16), (5, 24, 24, 32), (3, 5, 7, 9), (1, 1, 1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_equal_the_interpolate_kernel_bit_for_bit(shape, dtype):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen, dtype=dtype, requires_grad=True)
    grad_out = torch.randn(shape[0], shape[1], 2 * shape[2], 2 * shape[3], generator=gen, dtype=dtype)
    ours, ref = nearest2x(x), _reference(x)
    assert ours.is_contiguous() and torch.equal(ours, ref)
    # random output gradients: a plain expand's backward sums each 2x2 block in another order (differs in the last bit)
    (g_ours,) = torch.autograd.grad(ours, x, grad_out, create_graph=True)
    (g_ref,) = torch.autograd.grad(ref, x, grad_out, create_graph=True)
    assert torch.equal(g_ours, g_ref)
    weight = torch.randn(shape, generator=gen, dtype=dtype)  # double backward: d<g, weight>/d grad_out
    go = grad_out.clone().requires_grad_(True)
    (gg_ours,) = torch.autograd.grad(torch.autograd.grad(nearest2x(x), x, go, create_graph=True)[0], go, weight)
    (gg_ref,) = torch.autograd.grad(torch.autograd.grad(_reference(x), x, go, create_graph=True)[0], go, weight)
    assert torch.equal(gg_ours, gg_ref)


def test_a_channels_last_input_keeps_the_interpolate_path_and_layout():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    ours, ref = nearest2x(x), _reference(x)
    assert torch.equal(ours, ref) and ours.stride() == ref.stride()


def test_the_module_is_an_upsample_with_the_same_settings_and_no_state():
    module = Nearest2x()
    plain = torch.nn.Upsample(scale_factor=2, mode="nearest")
    assert isinstance(module, torch.nn.Upsample) and module.extra_repr() == plain.extra_repr() and not module.state_dict()
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(module(x), plain(x))


def _with_plain_upsample(decoder: ConvDecoder) -> ConvDecoder:
    """The same decoder with ``nn.Upsample`` modules in place of :class:`Nearest2x` (the kernel before)."""
    for seq in [*decoder.blocks, decoder.to_rgb]:
        for i, m in enumerate(seq):
            if isinstance(m, Nearest2x):
                seq[i] = torch.nn.Upsample(scale_factor=2, mode="nearest")
    return decoder


def test_the_resize_generator_uses_it_and_trains_bit_for_bit_as_with_interpolate():
    cfg = CodecConfig(height=24, width=32, latent=6, channels=4, upsample="nearest")
    torch.manual_seed(3)
    ours = ConvDecoder(cfg)
    assert all(type(b[0]) is Nearest2x for b in ours.blocks) and type(ours.to_rgb[0]) is Nearest2x
    plain = _with_plain_upsample(ConvDecoder(cfg))
    plain.load_state_dict(ours.state_dict())  # same keys: Nearest2x holds no state
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (ours, plain)]
    z = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(0))
    for step in range(3):  # three Adam steps: equal images, gradients and weights at every step
        outs = []
        for model, opt in zip((ours, plain), opts, strict=True):
            opt.zero_grad()
            images = model(z[step])
            (images - 0.5).pow(2).mean().backward()
            opt.step()
            outs.append((images.detach(), [p.grad.clone() for p in model.parameters()]))
        assert torch.equal(outs[0][0], outs[1][0])
        assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), plain.state_dict().values(), strict=True))


def test_the_segmenter_decoder_gives_the_interpolate_logits_and_gradients_bit_for_bit():
    torch.manual_seed(1)
    seg = ShapeSegmenter(width=6)
    images = torch.rand(3, 3, 16, 20)

    def reference_forward(x: torch.Tensor) -> torch.Tensor:  # ShapeSegmenter.forward with F.interpolate
        e1 = seg.enc1(x)
        e2 = seg.enc2(e1)
        m = seg.mid(e2)
        d2 = seg.dec2(torch.cat([_reference(m), e2], 1))
        return seg.out(seg.dec1(torch.cat([_reference(d2), e1], 1)))

    ours, ref = seg(images), reference_forward(images)
    assert torch.equal(ours, ref)
    g_ours = torch.autograd.grad(ours.square().sum(), list(seg.parameters()))
    g_ref = torch.autograd.grad(ref.square().sum(), list(seg.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g_ours, g_ref, strict=True))
