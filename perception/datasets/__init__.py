"""Data sets for perception: CLEVR-format folders, rendered scenes and instance masks."""

from perception.datasets.clevr import ClevrDataset, collate_clevr, find_layout
from perception.datasets.clevr_render import generate_scene
from perception.datasets.instance_masks import (
    colorize_mask,
    decode_mask_png,
    encode_mask_png,
    read_mask_png,
)

__all__ = [
    "ClevrDataset",
    "collate_clevr",
    "find_layout",
    "generate_scene",
    "encode_mask_png",
    "decode_mask_png",
    "read_mask_png",
    "colorize_mask",
]
