"""CLEVR placement rules: object count, extent, gaps and cardinal margins, CoGenT palettes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from physics.errors import ConfigError
from physics.worlds.clevr_layout import LayoutConfig, sample_layout
from physics.worlds.clevr_properties import COGENT_CONDITIONS, DEFAULT_DIRECTIONS, SIZE_RADIUS


@pytest.mark.parametrize("seed", range(20))
def test_layouts_obey_count_extent_gap_and_margin(seed):
    cfg = LayoutConfig()
    objs = sample_layout(np.random.default_rng(seed), cfg)
    assert cfg.min_objects <= len(objs) <= cfg.max_objects
    for o in objs:
        assert all(-cfg.extent <= c <= cfg.extent for c in o.position[:2])
    for a, b in itertools.combinations(objs, 2):
        dx, dy = a.position[0] - b.position[0], a.position[1] - b.position[1]
        gap = math.hypot(dx, dy) - SIZE_RADIUS[a.size] - SIZE_RADIUS[b.size]
        assert gap >= cfg.min_dist - 1e-9
        for name in ("left", "front"):
            d = DEFAULT_DIRECTIONS[name]
            assert abs(dx * d[0] + dy * d[1]) >= cfg.margin - 1e-9


def test_same_seed_same_layout():
    a = sample_layout(np.random.default_rng(5))
    b = sample_layout(np.random.default_rng(5))
    assert a == b


@pytest.mark.parametrize("condition", ["A", "B"])
def test_cogent_palettes_are_respected(condition):
    palette = COGENT_CONDITIONS[condition]
    cfg = LayoutConfig(shape_colors=palette)
    for seed in range(10):
        for o in sample_layout(np.random.default_rng(seed), cfg):
            assert o.color in palette[o.shape]


def test_bad_object_counts_are_config_errors():
    with pytest.raises(ConfigError, match="min_objects"):
        LayoutConfig(min_objects=5, max_objects=2)


def test_object_count_is_kept_across_restarts_so_sizes_stay_uniform():
    rng = np.random.default_rng(0)
    counts = [len(sample_layout(rng)) for _ in range(400)]
    assert 6.0 < np.mean(counts) < 7.0  # uniform over 3..10 has mean 6.5
    assert counts.count(10) > 25  # ten-object scenes are as common as any other size
    assert len(sample_layout(np.random.default_rng(1), num_objects=10)) == 10


def test_out_of_range_object_count_is_a_config_error():
    with pytest.raises(ConfigError, match="num_objects"):
        sample_layout(np.random.default_rng(0), num_objects=11)
