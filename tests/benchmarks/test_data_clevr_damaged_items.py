"""A damaged image or mask in a CLEVR data folder is made again on rerun, byte-identical.

Probed in issue 13: resume checked only that an item's files existed, so a
truncated or bit-flipped PNG left by a crash (or a disk) was kept for good.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from benchmarks.datasets.clevr_builder import (
    PARTIAL,
    ClevrDataConfig,
    _job,
    build_clevr,
    image_name,
)

N = 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> ClevrDataConfig:
    """An uninterrupted build (small renders, default templates)."""
    cfg = ClevrDataConfig(n=N, out=str(tmp_path_factory.mktemp("clevr") / "ref"), seed=5, split="val",
                          questions_per_scene=2, width=160, height=120, min_pixels=50, backend="serial")
    build_clevr(cfg, progress=False)
    return cfg


def _files(out: str | Path) -> dict[str, bytes]:
    root = Path(out)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    """Flip one byte in the middle of the file (inside the compressed pixels)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_resume_remakes_damaged_pngs_and_an_inconsistent_shard(reference, tmp_path):
    cfg = replace(reference, out=str(tmp_path / "killed"))
    out = Path(cfg.out)
    for sub in ("images", "masks", PARTIAL):
        (out / sub).mkdir(parents=True)
    for k in range(N):  # every scene finished, then the run was killed before questions
        _job((asdict(cfg), k))
    _truncate(out / "images" / image_name("val", 0))
    _flip(out / "masks" / image_name("val", 1))
    shard = out / PARTIAL / f"{Path(image_name('val', 2)).stem}.json"
    record = json.loads(shard.read_text())
    record["scene"]["objects"].pop()  # the mask now holds an object the record does not
    shard.write_text(json.dumps(record))
    summary = build_clevr(cfg, progress=False)
    assert summary["generated"] == 3 and summary["resumed"] == 0
    assert _files(out) == _files(reference.out)


def test_resume_keeps_intact_items(reference, tmp_path):
    cfg = replace(reference, out=str(tmp_path / "killed"))
    out = Path(cfg.out)
    for sub in ("images", "masks", PARTIAL):
        (out / sub).mkdir(parents=True)
    for k in range(N):
        _job((asdict(cfg), k))
    _flip(out / "images" / image_name("val", 1))
    summary = build_clevr(cfg, progress=False)
    assert summary["generated"] == 1 and summary["resumed"] == N - 1
    assert _files(out) == _files(reference.out)


def test_rerun_of_a_finished_folder_repairs_damaged_and_missing_items(reference, tmp_path):
    out = tmp_path / "finished"
    shutil.copytree(reference.out, out)
    cfg = replace(reference, out=str(out))
    _flip(out / "images" / image_name("val", 0))
    _truncate(out / "masks" / image_name("val", 1))
    summary = build_clevr(cfg, progress=False)
    assert summary["generated"] == 2
    assert _files(out) == _files(reference.out)
    (out / "images" / image_name("val", 2)).unlink()
    summary = build_clevr(cfg, progress=False)
    assert summary["generated"] == 1  # only the missing one, not the whole split
    assert _files(out) == _files(reference.out)
    again = build_clevr(cfg, progress=False)
    assert again["generated"] == 0 and _files(out) == _files(reference.out)
