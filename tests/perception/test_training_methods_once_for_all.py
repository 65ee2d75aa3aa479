"""Once-for-All: elastic kernel, depth, width and resolution run; channel sorting keeps the function; shrinking trains."""

from __future__ import annotations

import random

import pytest
import torch

from perception.training_methods.curveball import attribute_loss
from perception.training_methods.once_for_all import (
    OFAConfig,
    OFANet,
    ShrinkSchedule,
    SubNet,
    largest,
    progressive_shrinking,
    recalibrate_batchnorm,
    smallest,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = OFAConfig(stem=4, widths=(6, 8, 8), resolutions=(8, 16))


def test_every_sub_network_runs_and_the_extremes_differ_in_size():
    torch.manual_seed(0)
    net = OFANet(TINY).eval()
    x = torch.rand(2, 4, 16, 16)
    rng = random.Random(0)
    for _ in range(5):
        assert net(x, net.sample(rng, True, True, True)).shape == (2, 13)
    small, big = smallest(TINY), largest(TINY)
    assert small.kernels[0] == 3 and small.depths == (1, 1, 1) and big.expands[0] == 4 and big.resolution == 16
    partial = net.minimum(kernel=True, depth=False, width=False)  # the sandwich's small end in the kernel phase
    assert set(partial.kernels) == {3} and set(partial.expands) == {4} and partial.depths == (3, 3, 3)
    assert net.minimum(True, True, True) == small
    with pytest.raises(ConfigError):
        OFAConfig(kernels=(3, 4))


def test_smaller_kernel_is_the_centre_of_the_larger_at_initialisation():
    torch.manual_seed(0)
    block = OFANet(TINY).blocks[0]
    w7, w3 = block.kernel(7, 8), block.kernel(3, 8)
    assert w3.shape == (8, 1, 3, 3) and torch.allclose(w3, w7[..., 2:5, 2:5])


def test_sorting_channels_keeps_the_largest_network_unchanged():
    torch.manual_seed(0)
    net = OFANet(TINY)
    recalibrate_batchnorm(net, largest(TINY), torch.rand(32, 4, 16, 16), batches=2, batch=16)
    x = torch.rand(3, 4, 16, 16)
    with torch.no_grad():
        before = net(x)
        for block in net.blocks:
            block.sort_channels()
        assert torch.allclose(before, net(x), atol=1e-5)


def test_progressive_shrinking_lowers_the_loss_of_the_smallest_sub_network():
    g = torch.Generator().manual_seed(1)
    crops = torch.rand(48, 4, 8, 8, generator=g)
    labels = {"shape": torch.arange(48) % 3, "color": torch.arange(48) % 8, "material": torch.arange(48) % 2}
    crops[:, 0] += labels["color"].view(-1, 1, 1) * 0.2
    torch.manual_seed(0)
    config = OFAConfig(stem=4, widths=(6, 8, 8), resolutions=(6, 8))
    net = OFANet(config)
    sub = smallest(config)

    def loss() -> float:
        recalibrate_batchnorm(net, sub, crops, batches=2, batch=24)
        with torch.no_grad():
            return float(attribute_loss(net(crops, sub), labels))

    before = loss()
    progressive_shrinking(net, crops, labels, ShrinkSchedule(12, 6, 6, 12), batch=16, lr=1e-2, seed=0)
    assert loss() < before
    assert isinstance(sub, SubNet)
