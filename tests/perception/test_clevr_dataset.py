"""ClevrDataset: our folder layout and the official release layout, masks, questions, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perception.datasets import (
    ClevrDataset,
    collate_clevr,
    encode_mask_png,
    find_layout,
    generate_scene,
)
from physics.errors import DataError
from physics.worlds.clevr_world import ClevrWorldConfig

CFG = ClevrWorldConfig(width=120, height=80, min_pixels=20)


def _write(root: Path, split: str, n: int, *, official: bool) -> list:
    """The synthetic twin: render n scenes and lay them out like a CLEVR folder."""
    scenes, rendered = [], []
    img_dir = root / "images" / split if official else root / "images"
    img_dir.mkdir(parents=True)
    if not official:
        (root / "masks").mkdir()
    for k in range(n):
        name = f"CLEVR_{split}_{k:06d}.png"
        scene, rgb, _, mask = generate_scene((5, k), CFG, image_index=k, image_filename=name, split=split)
        Image.fromarray(rgb).save(img_dir / name)
        if not official:
            (root / "masks" / name).write_bytes(encode_mask_png(mask))
        scenes.append(scene.to_clevr())
        rendered.append((rgb, mask))
    questions = [
        {"question": "How many things are there?", "answer": str(len(s["objects"])), "image_index": k,
         "image_filename": s["image_filename"], "split": split, "question_index": k, "program": []}
        for k, s in enumerate(scenes)
    ]
    if official:
        (root / "scenes").mkdir()
        (root / "questions").mkdir()
        (root / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps({"info": {}, "scenes": scenes}))
        (root / "questions" / f"CLEVR_{split}_questions.json").write_text(json.dumps({"info": {}, "questions": questions}))
    else:
        (root / f"CLEVR_{split}_scenes.json").write_text(json.dumps({"info": {}, "scenes": scenes}))
        (root / f"CLEVR_{split}_questions.json").write_text(json.dumps({"info": {}, "questions": questions}))
    return rendered


def test_nesy_layout_gives_image_mask_scene_and_questions(tmp_path):
    rendered = _write(tmp_path, "val", 2, official=False)
    ds = ClevrDataset(tmp_path, "val")
    assert ds.layout.name == "nesy" and len(ds) == 2
    item = ds[1]
    rgb, mask = rendered[1]
    assert item["image"].shape == (3, 80, 120) and item["image"].dtype == torch.float32
    assert torch.allclose(item["image"], torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["mask"], torch.from_numpy(mask.astype(np.int64)))
    assert item["scene"].image_index == 1 and len(item["scene"]) == int(mask.max()) + 1
    assert [q["question_index"] for q in item["questions"]] == [1]
    assert item["image_filename"] == "CLEVR_val_000001.png"


def test_official_layout_is_read_without_masks(tmp_path):
    _write(tmp_path, "train", 2, official=True)
    ds = ClevrDataset(tmp_path, "train")
    assert ds.layout.name == "official"
    item = ds[0]
    assert item["mask"] is None and item["scene"] is not None and len(item["questions"]) == 1


def test_official_test_split_without_scenes_lists_images(tmp_path):
    _write(tmp_path, "test", 2, official=True)
    (tmp_path / "scenes" / "CLEVR_test_scenes.json").unlink()
    ds = ClevrDataset(tmp_path, "test")
    assert len(ds) == 2 and ds[1]["scene"] is None and ds[1]["image_index"] == 1


def test_collate_stacks_images_and_masks_and_keeps_scenes_as_a_list(tmp_path):
    _write(tmp_path, "val", 2, official=False)
    ds = ClevrDataset(tmp_path, "val")
    batch = collate_clevr([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 80, 120) and batch["mask"].shape == (2, 80, 120)
    assert len(batch["scene"]) == 2 and batch["image_index"] == [0, 1]


def test_missing_and_corrupt_images_raise_data_error_naming_the_file(tmp_path):
    _write(tmp_path, "val", 2, official=False)
    ds = ClevrDataset(tmp_path, "val")
    (tmp_path / "images" / "CLEVR_val_000000.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="CLEVR_val_000000.png"):
        ds[0]
    (tmp_path / "images" / "CLEVR_val_000001.png").unlink()
    with pytest.raises(DataError, match="not found: .*CLEVR_val_000001.png"):
        ds[1]


def test_two_scenes_sharing_an_image_index_are_refused_in_one_line_by_every_reader(tmp_path):
    """Both got that index's questions (NS-CL learnt them twice); the parser's data kept the last scene."""
    from reasoning.parser.data import load_parser_data

    _write(tmp_path, "val", 2, official=False)
    path = tmp_path / "CLEVR_val_scenes.json"
    data = json.loads(path.read_text())
    data["scenes"][1]["image_index"] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"^CLEVR_val_scenes.json: scenes 1 and an earlier one share image_index 0$"):
        ClevrDataset(tmp_path, "val")
    with pytest.raises(DataError, match="scenes 1 and an earlier one share image_index 0"):
        load_parser_data(tmp_path)


def test_unknown_folder_names_both_layouts(tmp_path):
    with pytest.raises(DataError, match="official CLEVR layout"):
        find_layout(tmp_path, "val")


@pytest.mark.parametrize("where", ["CLEVR_val_scenes.json", "CLEVR_val_questions.json",
                                   "scenes/CLEVR_val_scenes.json", "questions/CLEVR_val_questions.json"])
def test_a_folder_where_a_split_file_is_read_is_named(tmp_path, where):
    _write(tmp_path, "val", 1, official=where.startswith(("scenes/", "questions/")))
    target = tmp_path / where
    if target.exists():
        target.unlink()
    target.mkdir(parents=True)
    with pytest.raises(DataError, match=f"{where.split('/')[-1]} is a folder, not a file"):
        find_layout(tmp_path, "val")


def test_transform_sees_each_item(tmp_path):
    _write(tmp_path, "val", 1, official=False)
    ds = ClevrDataset(tmp_path, "val", transform=lambda it: {**it, "image": it["image"][:, :8, :8]})
    assert ds[0]["image"].shape == (3, 8, 8)


def test_generate_scene_docstring_example_runs():
    import doctest

    import perception.datasets.clevr_render as module

    assert doctest.testmod(module).failed == 0
