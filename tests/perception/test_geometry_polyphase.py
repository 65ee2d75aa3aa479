"""Learnable polyphase sampling: exact circular-shift invariance in evaluation, trainable, seeded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.geometry.polyphase import (
    CROP_ATTRIBUTES,
    PolyphaseAttributeNet,
    PolyphaseConfig,
    polyphase_components,
    predict,
    shift_consistency,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_components_are_the_four_stride_two_grids():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    parts = polyphase_components(x)
    assert parts.shape == (1, 4, 1, 2, 2)
    assert parts[0, 3, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    with pytest.raises(StateError):
        polyphase_components(torch.zeros(1, 1, 3, 4))


def test_lps_network_is_invariant_to_every_circular_shift_and_plain_is_not():
    torch.manual_seed(0)
    crops = torch.rand(6, 4, 16, 16)
    lps, plain = PolyphaseAttributeNet(PolyphaseConfig(width=8)).eval(), PolyphaseAttributeNet(
        PolyphaseConfig(width=8, down="plain")).eval()
    with torch.no_grad():
        ref = lps(crops)
        for shift in [(1, 0), (0, 3), (5, 7)]:
            moved = lps(crops.roll(shift, (2, 3)))
            assert all(torch.allclose(ref[a], moved[a], atol=1e-4) for a in CROP_ATTRIBUTES)
        odd = plain(crops.roll((1, 1), (2, 3)))
        assert not torch.allclose(plain(crops)["color"], odd["color"], atol=1e-4)
    assert shift_consistency(lps, crops, seed=0) == 1.0
    assert predict(lps, crops).shape == (6, len(CROP_ATTRIBUTES))


def _train(seed: int) -> tuple[list[float], dict]:
    g = torch.Generator().manual_seed(1)
    crops = torch.rand(12, 4, 16, 16, generator=g)
    labels = {a: torch.randint(2, (12,), generator=g) for a in CROP_ATTRIBUTES}
    torch.manual_seed(seed)
    model = PolyphaseAttributeNet(PolyphaseConfig(width=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        out = model(crops)
        loss = sum(F.cross_entropy(out[a], labels[a]) for a in CROP_ATTRIBUTES)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


def test_tiny_lps_loss_falls_and_is_deterministic_for_a_seed():
    losses, w = _train(0)
    again, w2 = _train(0)
    assert losses[-1] < losses[0]
    assert losses == again and all(torch.equal(w[k], w2[k]) for k in w)


def test_unknown_down_sampling_is_refused():
    with pytest.raises(ConfigError, match="lps"):
        PolyphaseConfig(down="max")
