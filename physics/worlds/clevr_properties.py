"""The CLEVR attribute vocabulary and its physical meaning.

Facts from the CLEVR dataset generator (Johnson et al., CVPR 2017): three shapes,
eight colours with fixed RGB values, two materials, two sizes whose numbers are
the object "radius" in scene units, and four spatial relations computed from
camera directions.  Every layer that needs the vocabulary imports it from here.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = [
    "SHAPES",
    "COLORS",
    "COLOR_RGB",
    "MATERIALS",
    "SIZES",
    "SIZE_RADIUS",
    "RELATIONS",
    "ATTRIBUTES",
    "DEFAULT_DIRECTIONS",
    "RELATION_EPS",
    "COGENT_CONDITIONS",
]

SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")

COLOR_RGB = MappingProxyType(
    {
        "gray": (87, 87, 87),
        "red": (173, 35, 35),
        "blue": (42, 75, 215),
        "green": (29, 105, 20),
        "brown": (129, 74, 25),
        "purple": (129, 38, 192),
        "cyan": (41, 208, 208),
        "yellow": (255, 238, 51),
    }
)
COLORS: tuple[str, ...] = tuple(COLOR_RGB)

MATERIALS: tuple[str, ...] = ("rubber", "metal")

SIZE_RADIUS = MappingProxyType({"large": 0.7, "small": 0.35})  # half-extent in scene units
SIZES: tuple[str, ...] = ("small", "large")

RELATIONS: tuple[str, ...] = ("left", "right", "behind", "front")

# attribute name -> allowed values, in the order the CLEVR metadata lists them
ATTRIBUTES = MappingProxyType(
    {"shape": SHAPES, "color": COLORS, "material": MATERIALS, "size": SIZES}
)

# Object j is R of object i when dot(coords_j - coords_i, direction_R) > RELATION_EPS,
# exactly as CLEVR's render_images.py computes `relationships`.
RELATION_EPS = 0.2

# Unit directions of a camera looking along +y from behind the origin, used when a
# scene file carries neither `directions` nor `relationships`.
DEFAULT_DIRECTIONS = MappingProxyType(
    {
        "left": (-1.0, 0.0, 0.0),
        "right": (1.0, 0.0, 0.0),
        "behind": (0.0, 1.0, 0.0),
        "front": (0.0, -1.0, 0.0),
        "above": (0.0, 0.0, 1.0),
        "below": (0.0, 0.0, -1.0),
    }
)

# CLEVR-CoGenT: in condition A cubes are gray/blue/brown/yellow and cylinders
# red/green/purple/cyan; condition B swaps the two palettes; spheres take any colour.
_PALETTE_1 = ("gray", "blue", "brown", "yellow")
_PALETTE_2 = ("red", "green", "purple", "cyan")
COGENT_CONDITIONS = MappingProxyType(
    {
        "A": MappingProxyType({"cube": _PALETTE_1, "cylinder": _PALETTE_2, "sphere": COLORS}),
        "B": MappingProxyType({"cube": _PALETTE_2, "cylinder": _PALETTE_1, "sphere": COLORS}),
    }
)
