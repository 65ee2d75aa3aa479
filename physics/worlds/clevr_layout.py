"""CLEVR's placement rules: which objects a scene holds and where they stand.

Follows the CLEVR generator's rules (Johnson et al., 2017): 3 to 10 objects with
random shape, colour, material and size; x, y uniform in [-3, 3]; every pair at
least ``min_dist`` apart (centre distance minus both radii); and every pair at
least ``margin`` apart along each cardinal camera direction, so that
left/right/front/behind between any two objects is unambiguous.  A layout that
cannot be completed after ``max_retries`` placements is restarted.

This module is pure numpy: the pybullet world (:mod:`physics.worlds.clevr_world`)
turns a layout into bodies, settles and renders it; tests and speed benchmarks
use layouts directly as scene graphs without rendering.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds.clevr_properties import (
    COLORS,
    DEFAULT_DIRECTIONS,
    MATERIALS,
    SHAPES,
    SIZE_RADIUS,
    SIZES,
)

__all__ = ["LayoutConfig", "ObjectSpec", "sample_layout", "MAX_RESTARTS"]

MAX_RESTARTS = 10_000  # whole-layout restarts before the rules are declared unsatisfiable


@dataclass(frozen=True)
class LayoutConfig:
    """Placement parameters (CLEVR's defaults)."""

    min_objects: int = 3
    max_objects: int = 10
    extent: float = 3.0  # x, y in [-extent, extent]
    min_dist: float = 0.25  # minimum gap between object surfaces (CLEVR: 0.25)
    margin: float = 0.4  # minimum separation along each cardinal direction (CLEVR: 0.4)
    max_retries: int = 50  # placements tried per object before the layout restarts
    # shape -> allowed colours (CoGenT conditions); None allows every colour
    shape_colors: Mapping[str, Sequence[str]] | None = None

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )


@dataclass(frozen=True)
class ObjectSpec:
    """One placed object: attributes, position (z = resting height) and rotation in degrees."""

    shape: str
    color: str
    material: str
    size: str
    position: tuple[float, float, float]
    rotation: float


def sample_layout(
    rng: np.random.Generator,
    config: LayoutConfig = LayoutConfig(),
    directions: Mapping[str, Sequence[float]] = DEFAULT_DIRECTIONS,
    num_objects: int | None = None,
) -> list[ObjectSpec]:
    """Sample one layout that satisfies CLEVR's distance and margin rules.

    As in CLEVR, the number of objects is drawn once and kept when a layout has
    to restart, so scene sizes stay uniform over ``min_objects..max_objects``
    (drawing it again on every restart would favour small scenes).

    Args:
        rng: Source of randomness (the caller seeds it; same seed, same layout).
        config: Placement parameters.
        directions: Camera directions used for the margin rule (ground-plane part).
        num_objects: Objects to place (default: drawn uniformly from the config's range).

    Returns:
        Objects in placement order.

    Raises:
        ConfigError: ``num_objects`` outside the config's range, or no layout
            found after ``MAX_RESTARTS`` restarts (the rules cannot be met).
    """
    cardinal = [
        np.asarray(directions[name][:2], dtype=float) for name in ("left", "right", "front", "behind")
    ]
    n = int(rng.integers(config.min_objects, config.max_objects + 1)) if num_objects is None else num_objects
    if not config.min_objects <= n <= config.max_objects:
        raise ConfigError(f"num_objects must lie in {config.min_objects}..{config.max_objects}, got {n}")
    for _ in range(MAX_RESTARTS):
        objects = _try_layout(rng, config, n, cardinal)
        if objects is not None:
            return objects
    raise ConfigError(
        f"no layout of {n} objects met the distance and margin rules after {MAX_RESTARTS} restarts; "
        f"lower max_objects, min_dist or margin, or raise extent"
    )


def _try_layout(
    rng: np.random.Generator, config: LayoutConfig, n: int, cardinal: list[np.ndarray]
) -> list[ObjectSpec] | None:
    placed: list[tuple[float, float, float]] = []  # x, y, radius
    objects: list[ObjectSpec] = []
    for _ in range(n):
        size = SIZES[int(rng.integers(len(SIZES)))]
        r = SIZE_RADIUS[size]
        for _attempt in range(config.max_retries):
            x, y = rng.uniform(-config.extent, config.extent, size=2)
            if all(_fits(x, y, r, px, py, pr, config, cardinal) for px, py, pr in placed):
                break
        else:
            return None
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        palette = COLORS if config.shape_colors is None else tuple(config.shape_colors[shape])
        color = palette[int(rng.integers(len(palette)))]
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        # CLEVR scales cubes down by sqrt(2) so that a rotated cube keeps its footprint
        height = r / math.sqrt(2) if shape == "cube" else r
        rotation = float(rng.uniform(0.0, 360.0))
        placed.append((float(x), float(y), r))
        objects.append(ObjectSpec(shape, color, material, size, (float(x), float(y), height), rotation))
    return objects


def _fits(x, y, r, px, py, pr, config: LayoutConfig, cardinal: list[np.ndarray]) -> bool:
    dx, dy = x - px, y - py
    if math.hypot(dx, dy) - r - pr < config.min_dist:
        return False
    return all(abs(dx * d[0] + dy * d[1]) >= config.margin for d in cardinal)
