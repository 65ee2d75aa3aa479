"""``nesy data clevr``: official files, exact masks, determinism across workers, resume, CoGenT."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets.clevr_builder import (
    PARTIAL,
    ClevrDataConfig,
    _job,
    build_clevr,
    image_name,
    questions_path,
    scenes_path,
)
from perception import load_scenes
from perception.datasets import read_mask_png
from perception.scene_graph import compute_relationships
from physics.errors import ConfigError
from physics.worlds.clevr_properties import COGENT_CONDITIONS

N = 3
REGISTERED = cli.COMMAND_MODULES  # as shipped, before the fixture below narrows it


@pytest.fixture
def only_this_command(monkeypatch):
    """Build the CLI with this command alone (other commands' heavy imports are not under test)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("data_clevr",))


def test_data_clevr_is_registered():
    assert "data_clevr" in REGISTERED


@pytest.fixture(scope="module")
def templates(shared_clevr) -> str:
    return str(shared_clevr / "templates")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory, templates) -> ClevrDataConfig:
    out = tmp_path_factory.mktemp("clevr") / "serial"
    return ClevrDataConfig(n=N, out=str(out), seed=11, split="val", questions_per_scene=3, templates=templates)


@pytest.fixture(scope="module")
def built(cfg):
    return build_clevr(cfg, progress=False)


def _files(out: str) -> dict[str, bytes]:
    root = Path(out)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_the_official_file_layout(cfg, built):
    out = Path(cfg.out)
    assert built["scenes"] == N and built["generated"] == N and built["questions"] > 0
    for k in range(N):
        assert (out / "images" / image_name("val", k)).is_file()
        assert (out / "masks" / image_name("val", k)).is_file()
    assert scenes_path(out, "val").is_file() and questions_path(out, "val").is_file()
    assert not (out / PARTIAL).exists()  # shards merged and removed


def test_scene_json_loads_and_relationships_match_clevr_rule(cfg, built):
    raw = json.loads(scenes_path(cfg.out, "val").read_text())
    assert raw["info"]["split"] == "val" and raw["info"]["num_images"] == N
    scenes = load_scenes(scenes_path(cfg.out, "val"))
    for k, (scene, rec) in enumerate(zip(scenes, raw["scenes"], strict=True)):
        assert scene.image_index == k and scene.image_filename == image_name("val", k) and scene.split == "val"
        for o in rec["objects"]:
            assert set(o) >= {"3d_coords", "pixel_coords", "rotation", "shape", "color", "material", "size"}
        recomputed = compute_relationships(scene.objects, scene.directions)
        assert {r: recomputed[r] for r in ("left", "right", "front", "behind")} == rec["relationships"]


def test_every_object_mask_has_200_pixels_and_its_centroid_near_pixel_coords(cfg, built):
    for scene in load_scenes(scenes_path(cfg.out, "val")):
        mask = read_mask_png(Path(cfg.out) / "masks" / scene.image_filename)
        assert mask.shape == (cfg.height, cfg.width)
        assert set(np.unique(mask).tolist()) == {-1, *range(len(scene))}
        for k, o in enumerate(scene.objects):
            rows, cols = np.nonzero(mask == k)
            assert len(rows) >= 200
            u, v, _ = o.pixel_coords
            # the centre projects inside the object's visible extent
            assert cols.min() - 2 <= u <= cols.max() + 2 and rows.min() - 2 <= v <= rows.max() + 2
        # the largest fully visible object: centroid within 3 px
        k = int(np.argmax(np.bincount(mask.ravel() + 1)[1:]))
        rows, cols = np.nonzero(mask == k)
        u, v, _ = scene.objects[k].pixel_coords
        assert math.hypot(cols.mean() + 0.5 - u, rows.mean() + 0.5 - v) <= 6.0


def test_questions_are_official_records_for_each_image(cfg, built):
    data = json.loads(questions_path(cfg.out, "val").read_text())
    qs = data["questions"]
    assert [q["question_index"] for q in qs] == list(range(len(qs)))
    assert {q["image_index"] for q in qs} <= set(range(N))
    for q in qs:
        assert q["image_filename"] == image_name("val", q["image_index"]) and q["split"] == "val"
        assert isinstance(q["question"], str) and isinstance(q["answer"], str) and q["program"]


def test_two_workers_give_byte_identical_files(cfg, built):
    other = replace(cfg, out=str(Path(cfg.out).parent / "two_workers"), workers=2)
    build_clevr(other, progress=False)
    assert _files(other.out) == _files(cfg.out)


def test_resume_after_a_kill_skips_done_scenes_and_cleans_up(cfg, built):
    out = Path(cfg.out).parent / "resumed"
    killed = replace(cfg, out=str(out))
    for sub in ("images", "masks", PARTIAL):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cfg_dict = {f: getattr(killed, f) for f in killed.__dataclass_fields__}
    _job((cfg_dict, 0))
    _job((cfg_dict, 2))
    (out / "images" / f".{image_name('val', 1)}.x1.tmp").write_bytes(b"half a png")  # killed mid-write
    (out / PARTIAL / "CLEVR_val_000001.json").write_text('{"scene": ')  # corrupt shard
    summary = build_clevr(killed, progress=False)
    assert summary["resumed"] == 2 and summary["generated"] == 1
    assert summary["stale_temporaries_removed"] == 1
    assert _files(str(out)) == _files(cfg.out)
    again = build_clevr(killed, progress=False)  # complete: nothing to do
    assert again["generated"] == 0 and _files(str(out)) == _files(cfg.out)
    assert not (out / PARTIAL).exists()


def test_cogent_condition_b_swaps_cube_and_cylinder_palettes(tmp_path):
    cfg = ClevrDataConfig(n=2, out=str(tmp_path), split="val", cogent="B", questions_per_scene=0,
                          width=240, height=160, min_pixels=50)
    build_clevr(cfg, progress=False)
    allowed = COGENT_CONDITIONS["B"]
    for scene in load_scenes(scenes_path(tmp_path, "val")):
        for o in scene.objects:
            assert o.color in allowed[o.shape]
    assert not questions_path(tmp_path, "val").exists()


def test_crowding_options_set_the_object_count_and_are_recorded(tmp_path, cfg, built):
    crowded = ClevrDataConfig(n=3, out=str(tmp_path / "crowded"), split="val", questions_per_scene=0,
                              width=240, height=160, min_pixels=30, min_objects=8, max_objects=9, min_dist=0.2,
                              margin=0.3)
    build_clevr(crowded, progress=False)
    data = json.loads(scenes_path(crowded.out, "val").read_text())
    assert all(8 <= len(scene["objects"]) <= 9 for scene in data["scenes"])
    assert {k: data["info"][k] for k in ("min_objects", "max_objects", "min_dist", "margin")} == {
        "min_objects": 8, "max_objects": 9, "min_dist": 0.2, "margin": 0.3}
    with pytest.raises(ConfigError, match="min_objects=8"):  # a finished crowded build is not mixed with others
        build_clevr(replace(crowded, min_objects=3, max_objects=10, min_dist=0.25), progress=False)
    default_info = json.loads(scenes_path(cfg.out, "val").read_text())["info"]
    assert not {"min_objects", "max_objects", "min_dist", "margin"} & set(default_info)  # CLEVR's defaults: files as before
    with pytest.raises(ConfigError, match="--min-objects <= --max-objects"):
        ClevrDataConfig(n=1, out=str(tmp_path), min_objects=5, max_objects=4)
    with pytest.raises(ConfigError, match="--min-dist"):
        ClevrDataConfig(n=1, out=str(tmp_path), min_dist=-0.1)
    with pytest.raises(ConfigError, match="--margin"):
        ClevrDataConfig(n=1, out=str(tmp_path), margin=-0.1)
    for bad in (float("nan"), float("inf")):  # would pass a `< 0` test and fail only when build.json is written
        with pytest.raises(ConfigError, match="--margin must be a finite number"):
            ClevrDataConfig(n=1, out=str(tmp_path), margin=bad)
        with pytest.raises(ConfigError, match="--min-dist must be a finite number"):
            ClevrDataConfig(n=1, out=str(tmp_path), min_dist=bad)


def test_cli_builds_and_prints_json(tmp_path, capsys, templates, only_this_command):
    out = tmp_path / "cli"
    rc = main(["data", "clevr", "--n", "1", "--out", str(out), "--split", "test", "--width", "240",
               "--height", "160", "--min-pixels", "50", "--templates", templates,
               "--questions-per-scene", "2", "--quiet", "--grid", str(tmp_path / "grid.png")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scenes"] == 1 and summary["grid"]["bytes"] > 0
    assert (out / "images" / "CLEVR_test_000000.png").is_file() and (tmp_path / "grid.png").is_file()


def test_bad_options_are_one_line_errors(tmp_path, capsys, only_this_command):
    with pytest.raises(SystemExit):  # a count >= 1, refused as argparse parses it
        main(["data", "clevr", "--n", "0", "--out", str(tmp_path)])
    assert "argument --n: must be an integer >= 1, got '0'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--n must be a positive"):  # the library refuses it too
        ClevrDataConfig(n=0, out=str(tmp_path))
    with pytest.raises(ConfigError, match="no such file"):
        ClevrDataConfig(n=1, out=str(tmp_path), templates=str(tmp_path / "missing"))
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_folder_built_with_other_options_is_refused(cfg, built):
    with pytest.raises(ConfigError, match="seed=11"):
        build_clevr(replace(cfg, seed=12), progress=False)
    partial = Path(cfg.out).parent / "partial_other"
    _job(({f: getattr(replace(cfg, out=str(partial)), f) for f in cfg.__dataclass_fields__}, 0))
    build_clevr(replace(cfg, out=str(partial), n=1), progress=False)  # records nothing foreign: fine
    (partial / PARTIAL).mkdir()
    (partial / PARTIAL / "build.json").write_text(json.dumps({"seed": 1}))
    (partial / PARTIAL / f"{Path(image_name(cfg.split, 1)).stem}.json").write_text("{}")  # a scene made with seed 1
    with pytest.raises(ConfigError, match="partial build"):
        build_clevr(replace(cfg, out=str(partial), n=2), progress=False)


def test_a_record_of_a_run_that_made_nothing_gives_way_to_the_options_given_now(cfg, tmp_path):
    # a first run that failed before any scene (no layout for --max-objects 500) left its record, and the
    # corrected rerun was refused ("holds a partial build with max_objects=500; rerun with the same options")
    out = tmp_path / "c"
    (out / PARTIAL).mkdir(parents=True)
    (out / PARTIAL / "build.json").write_text(json.dumps({"seed": 11, "max_objects": 500}))
    small = replace(cfg, out=str(out), n=1, questions_per_scene=0, width=96, height=64, min_pixels=10)
    assert build_clevr(small, progress=False)["generated"] == 1
    assert len(load_scenes(scenes_path(out, cfg.split))) == 1


def test_question_chunks_are_pure_functions_of_their_scenes_and_resume(cfg, built, monkeypatch):
    import benchmarks.datasets.clevr_builder as builder

    monkeypatch.setattr(builder, "QUESTION_CHUNK", 2)  # chunks [0, 2) and [2, 3)
    full = replace(cfg, out=str(Path(cfg.out).parent / "chunked"))
    build_clevr(full, progress=False)
    head = replace(cfg, out=str(Path(cfg.out).parent / "chunked_head"), n=2)
    build_clevr(head, progress=False)
    qs_full = json.loads(questions_path(full.out, "val").read_text())["questions"]
    qs_head = json.loads(questions_path(head.out, "val").read_text())["questions"]
    assert [q for q in qs_full if q["image_index"] < 2] == qs_head  # chunk [0, 2) does not see scene 2
    # a run killed after the first chunk's questions resumes with the second chunk only
    killed = replace(cfg, out=str(Path(cfg.out).parent / "chunked_killed"))
    cfg_dict = {f: getattr(killed, f) for f in killed.__dataclass_fields__}
    for sub in ("images", "masks", PARTIAL):
        (Path(killed.out) / sub).mkdir(parents=True, exist_ok=True)
    for k in range(N):
        _job((cfg_dict, k))
    builder._questions_job((cfg_dict, 0, 2))
    summary = build_clevr(killed, progress=False)
    assert summary["generated"] == 0 and _files(killed.out) == _files(full.out)


def test_clevr_dataset_reads_the_built_folder(cfg, built):
    from perception.datasets import ClevrDataset

    ds = ClevrDataset(cfg.out, "val")
    assert len(ds) == N
    qs = json.loads(questions_path(cfg.out, "val").read_text())["questions"]
    for k in range(N):
        item = ds[k]
        assert item["image"].shape == (3, cfg.height, cfg.width)
        assert int(item["mask"].max()) + 1 == len(item["scene"])
        assert item["questions"] == [q for q in qs if q["image_index"] == k]


def test_a_grid_figure_it_cannot_write_is_refused_before_any_render(tmp_path, capsys, only_this_command):
    # the scenes were rendered, then the figure failed
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "c"
    assert main(["data", "clevr", "--n", "1", "--out", str(out), "--grid", str(tmp_path / "a_file" / "g.png"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a file is in the way" in err, err
    assert not out.exists()
