"""Meaningful perturbations: masks in [0, 1] of the right shape, the objective falls, the mask finds the evidence."""

from __future__ import annotations

import pytest
import torch

from perception.interpret.perturbation import (
    PerturbationConfig,
    class_term,
    constant_replacement,
    deletion_masks,
    gaussian_blur,
    perturb,
    pointing_hits,
    total_variation,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _evidence_score(y):
    """Class 0 iff the 6 x 6 square at rows/cols 4..9 is bright: logit 0 = its mean brightness - 0.3."""
    bright = y[:, :, 4:10, 4:10].mean((1, 2, 3))
    return torch.stack([10 * (bright - 0.3), torch.zeros_like(bright)], 1)


def test_deletion_mask_is_in_unit_range_falls_and_deletes_the_evidence():
    x = torch.full((3, 4, 16, 16), 0.1)
    x[:, :, 4:10, 4:10] = 0.9
    target = torch.zeros(3, dtype=torch.long)
    config = PerturbationConfig(mask_side=8, steps=80, area=0.5, tv=0.1)
    keep, losses = deletion_masks(_evidence_score, x, target, config, seed=0, replacement=constant_replacement(x, 1))
    assert keep.shape == (3, 1, 16, 16) and keep.min() >= 0 and keep.max() <= 1
    assert losses[-1] < 0.5 * losses[0]
    deleted = 1 - keep[:, 0]
    assert deleted[:, 4:10, 4:10].mean() > 3 * deleted.mean() - 1e-6
    assert (_evidence_score(perturb(x, keep, constant_replacement(x, 1))).argmax(1) != 0).all()
    own = torch.zeros(3, 16, 16, dtype=torch.bool)
    own[:, 4:10, 4:10] = True
    assert pointing_hits(deleted, own, torch.zeros_like(own)).all()


def test_pointing_game_counts_a_peak_on_another_object_as_a_miss():
    own = torch.zeros(2, 8, 8, dtype=torch.bool)
    own[:, 1:3, 1:3] = True
    others = torch.zeros_like(own)
    others[:, 3:6, 3:6] = True
    sal = torch.zeros(2, 8, 8)
    sal[0, 2, 2] = 1.0  # on the object
    sal[1, 3, 3] = 1.0  # within one pixel of it, but on the other object
    assert pointing_hits(sal, own, others, tolerance=1).tolist() == [True, False]


def test_helpers_keep_shapes_and_identities():
    x = torch.rand(2, 4, 12, 12)
    assert torch.equal(perturb(x, torch.ones(2, 1, 12, 12), torch.zeros_like(x)), x)
    flat = torch.full((1, 3, 12, 12), 0.4)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    assert gaussian_blur(x, 1.5).shape == x.shape
    rep = constant_replacement(x, zero_channels=1)
    assert (rep[:, 3] == 0).all() and torch.allclose(rep[:, 0, 5, 5], x[:, 0].mean((1, 2)))
    assert total_variation(torch.ones(2, 1, 4, 4), 3.0).tolist() == [0.0, 0.0]
    logits = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    assert class_term(logits, torch.tensor([0, 0]), 1.0).tolist() == [4.0, 0.0]
    assert torch.allclose(class_term(logits, torch.tensor([0, 1]), None), logits.softmax(1).diagonal())
    with pytest.raises(ConfigError):
        deletion_masks(_evidence_score, x, torch.zeros(2, dtype=torch.long), PerturbationConfig(steps=1),
                       replacement=torch.zeros(2, 3, 12, 12))
