"""scikit-learn's shipped digits: scaled to [0, 1], split by a seed into disjoint parts."""

from __future__ import annotations

import pytest
import torch

from perception.datasets.digits import load_digit_split
from physics.errors import ConfigError

pytest.importorskip("sklearn", reason="the digits ship with scikit-learn (the [tools] extra)")


def test_split_is_seeded_disjoint_and_scaled():
    a, b, c = load_digit_split(0), load_digit_split(0), load_digit_split(1)
    assert torch.equal(a.test_images, b.test_images) and not torch.equal(a.test_images, c.test_images)
    assert a.train_images.shape[1:] == (1, 8, 8) and len(a.val_labels) == 300 and len(a.test_labels) == 500
    assert len(a.train_labels) + 800 == 1797
    assert a.train_images.min() >= 0 and a.train_images.max() <= 1 and set(a.train_labels.tolist()) == set(range(10))
    with pytest.raises(ConfigError):
        load_digit_split(0, val=1000, test=1000)
