"""``nesy data clevr --renderer blender``: the switch through the CLI, its errors, and a tiny real build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr, scenes_path
from benchmarks.datasets.clevr_grid import save_sample_grid
from perception import load_scenes
from perception.datasets import read_mask_png
from physics.errors import ConfigError, DataError
from physics.worlds import clevr_blender
from tests.physics.test_clevr_blender import ASSETS, requires_blender

TINY = ["--width", "120", "--height", "80", "--min-pixels", "10", "--samples", "2", "--quiet"]


@pytest.fixture
def only_this_command(monkeypatch):
    """Build the CLI with this command alone (other commands' heavy imports are not under test)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("data_clevr",))


def test_renderer_switch_errors_are_one_line(tmp_path, capsys, monkeypatch, only_this_command):
    out = str(tmp_path / "out")
    assert main(["data", "clevr", "--n", "1", "--out", out, "--renderer", "blender", *TINY]) == 2
    assert "--renderer blender needs --assets DIR" in capsys.readouterr().err
    assert main(["data", "clevr", "--n", "1", "--out", out, "--renderer", "blender", "--assets", out, *TINY]) == 2
    assert "no such folder" in capsys.readouterr().err
    if (ASSETS / "base_scene.blend").is_file():
        bad = ["data", "clevr", "--n", "1", "--out", out, "--renderer", "blender", "--assets", str(ASSETS), *TINY]
        for flag, value, least in (("--scenes-per-process", "0", 1), ("--bounces", "-1", 0)):  # refused as parsed
            with pytest.raises(SystemExit):
                main([*bad, flag, value])
            assert f"argument {flag}: must be an integer >= {least}" in capsys.readouterr().err
    monkeypatch.setattr(clevr_blender.shutil, "which", lambda name: None)  # a machine without Blender
    if (ASSETS / "base_scene.blend").is_file():
        args = ["data", "clevr", "--n", "1", "--out", out, "--renderer", "blender", "--assets", str(ASSETS), *TINY]
        assert main(args) == 2
        assert "apt-get install blender" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses unknown renderers
        main(["data", "clevr", "--n", "1", "--out", out, "--renderer", "povray"])
    assert not (tmp_path / "out" / "images").exists()


def test_pybullet_builds_keep_their_info_and_ignore_blender_options(tmp_path):
    cfg = ClevrDataConfig(n=1, out=str(tmp_path), samples=999, questions_per_scene=0, width=120, height=80,
                          min_pixels=10)
    build_clevr(cfg, progress=False)
    info = json.loads(scenes_path(tmp_path, "train").read_text())["info"]
    assert "renderer" not in info and info["generator"] == "nesy-physics (pybullet TinyRenderer)"


def test_side_by_side_figure_refuses_builds_of_other_scene_graphs(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        build_clevr(ClevrDataConfig(n=2, out=str(tmp_path / name), seed=seed, questions_per_scene=0, width=120,
                                    height=80, min_pixels=10), progress=False)
    figure = save_sample_grid(tmp_path / "a", "train", tmp_path / "ab.png", count=2, beside=tmp_path / "b")
    assert figure["width"] == 6 * 60 + 5 * 4  # columns of (other image, image, mask), two scenes a row
    with pytest.raises(DataError, match="different objects for CLEVR_train_000000.png"):
        save_sample_grid(tmp_path / "a", "train", tmp_path / "ac.png", count=2, beside=tmp_path / "c")


def _blender_args(out: Path) -> list[str]:
    return ["data", "clevr", "--n", "2", "--out", str(out), "--seed", "4", "--renderer", "blender",
            "--assets", str(ASSETS), "--questions-per-scene", "2", *TINY]


@requires_blender
def test_cli_renders_a_split_with_blender_and_resumes(tmp_path, capsys, only_this_command):
    out = tmp_path / "blender"
    args = _blender_args(out)
    pybullet = tmp_path / "pybullet"
    build_clevr(ClevrDataConfig(n=2, out=str(pybullet), seed=4, questions_per_scene=0, width=120, height=80,
                                min_pixels=10), progress=False)
    figure = ["--grid", str(tmp_path / "both.png"), "--grid-beside", str(pybullet)]
    assert main(args + figure) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated"] == 2 and summary["questions"] == 4 and summary["grid"]["bytes"] > 0
    info = json.loads(scenes_path(out, "train").read_text())["info"]
    assert info["renderer"] == "blender" and info["samples"] == 2 and "Blender" in info["generator"]
    for scene in load_scenes(scenes_path(out, "train")):
        mask = read_mask_png(out / "masks" / scene.image_filename)
        assert set(np.unique(mask).tolist()) == {-1, *range(len(scene))}
        assert "lamp_offsets" in scene.extra
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["generated"] == 0  # finished: nothing redone
    (out / "images" / "CLEVR_train_000001.png").write_bytes(b"broken")
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["generated"] == 1  # repaired, same record
    with pytest.raises(ConfigError, match="samples=2"):
        build_clevr(ClevrDataConfig(n=2, out=str(out), seed=4, renderer="blender", assets=str(ASSETS), samples=3,
                                    questions_per_scene=2, width=120, height=80, min_pixels=10), progress=False)
    with pytest.raises(ConfigError, match="bounces="):  # fewer bounces change the images: another build
        build_clevr(ClevrDataConfig(n=2, out=str(out), seed=4, renderer="blender", assets=str(ASSETS), samples=2,
                                    bounces=4, questions_per_scene=2, width=120, height=80, min_pixels=10),
                    progress=False)
    assert Path(out / "images" / "CLEVR_train_000000.png").is_file()


@pytest.mark.slow
@requires_blender
def test_blender_builds_are_byte_identical_whatever_workers_and_threads(tmp_path, capsys, only_this_command):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_blender_args(one)) == 0
    assert main([*_blender_args(two), "--workers", "2", "--threads", "2"]) == 0
    capsys.readouterr()
    for rel in ("CLEVR_train_scenes.json", "CLEVR_train_questions.json", "masks/CLEVR_train_000001.png",
                "images/CLEVR_train_000001.png"):
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
