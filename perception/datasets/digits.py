"""scikit-learn's shipped 8x8 digits as tensors, split by a seed: the data of the training-method and robustness tools.

The 1,797 handwritten digits of ``sklearn.datasets.load_digits`` (UCI optical
recognition, 16 grey levels) ship inside scikit-learn, so nothing is
downloaded.  :func:`load_digit_split` scales them to [0, 1] and splits them by
a seeded permutation into train, validation and test: tune on seed 0's split,
report on another seed's.

Shapes (N images)::

    images  float [N, 1, 8, 8] in [0, 1]
    labels  int64 [N] in 0..9
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from physics.errors import ConfigError

__all__ = ["DigitSplit", "load_digit_split", "N_CLASSES"]

N_CLASSES = 10
_GREY_LEVELS = 16.0  # the shipped images hold integers 0..16


@dataclass(frozen=True)
class DigitSplit:
    """Train / validation / test digits of one seed (shapes in the module docstring)."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


@lru_cache(maxsize=1)
def _all_digits() -> tuple[Tensor, Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("the digits data set needs scikit-learn: pip install 'nesy-physics[tools]'") from None
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / _GREY_LEVELS
    return images, torch.tensor(data.target, dtype=torch.int64)


def load_digit_split(seed: int, val: int = 300, test: int = 500) -> DigitSplit:
    """The digits split by a permutation drawn from ``seed``: ``val`` and ``test`` images held out.

    Raises:
        ConfigError: scikit-learn is missing, or the held-out sizes leave no training images.
    """
    images, labels = _all_digits()
    if val < 0 or test < 1 or val + test >= len(images):
        raise ConfigError(f"load_digit_split: val={val} and test={test} must leave training images of {len(images)}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    te, va, tr = order[:test], order[test:test + val], order[test + val:]
    return DigitSplit(images[tr], labels[tr], images[va], labels[va], images[te], labels[te])
