"""``nesy answer --image/--question``: NS-VQA from pixels through the CLI, with clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import reasoning.parser as parser_pkg
from benchmarks.cli import main
from perception.synthetic import sample_scene_graph
from reasoning.dsl import parse_program


@pytest.fixture
def image(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "scene.png"
    iio.imwrite(path, np.zeros((32, 48, 3), np.uint8))
    return path


@pytest.fixture
def fake_models(monkeypatch):
    scene = sample_scene_graph(seed=4)
    seen = {}

    def derenderer(rgb, **meta):
        seen["shape"] = rgb.shape
        seen["rgb"] = rgb
        seen["meta"] = meta
        return scene

    class Parser:
        def parse(self, questions):
            seen["questions"] = questions
            return [parse_program("count(scene())") if "How many" in q else None for q in questions]

    from perception.derender import Derenderer

    monkeypatch.setattr(Derenderer, "load_default", classmethod(lambda cls: derenderer))
    monkeypatch.setattr(parser_pkg, "load_default_parser", lambda: Parser())
    return scene, seen


def test_image_and_question_go_through_derenderer_parser_and_executor(image, fake_models, capsys):
    scene, seen = fake_models
    assert main(["answer", "--image", str(image), "--question", "How many things are there?"]) == 0
    out = capsys.readouterr().out
    assert seen["shape"] == (32, 48, 3) and seen["meta"] == {"image_filename": "scene.png"}
    assert "program: count(scene())" in out
    assert f"answer: {len(scene)}" in out
    assert f"scene graph ({len(scene)} objects" in out


def test_json_output_carries_scene_and_program(image, fake_models, capsys):
    scene, _ = fake_models
    assert main(["answer", "--image", str(image), "--question", "How many things?", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == str(len(scene)) and out["program"] == "count(scene())"
    assert len(out["scene"]["objects"]) == len(scene)


def test_unparseable_question_and_unreadable_image_are_named(tmp_path, image, fake_models, capsys):
    assert main(["answer", "--image", str(image), "--question", "What color?"]) == 2
    assert "no well-typed program" in capsys.readouterr().err
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["answer", "--image", str(bad), "--program", "count(scene())"]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_an_image_too_small_for_a_scene_is_named_in_one_line(tmp_path, capsys):
    # a 1x1 image was "perceived" as a scene of 0 objects; the shipped derenderer refuses it (Derenderer.__call__)
    from PIL import Image

    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    assert main(["answer", "--image", str(tmp_path / "one.png"), "--program", "count(scene())"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one.png is 1x1 pixels; a scene image needs at least 16 a side" in err


def test_a_16_bit_image_is_read_as_8_bit(tmp_path, fake_models):
    # a 16-bit PNG reached the derenderer white
    from PIL import Image

    _, seen = fake_models
    grey = (np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) % 256).astype(np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "g16.png")
    assert main(["answer", "--image", str(tmp_path / "g16.png"), "--program", "count(scene())"]) == 0
    assert np.array_equal(seen["rgb"][..., 0], grey.astype(np.uint8))  # not clipped to 255 (white)


def test_scene_and_image_together_is_a_config_error(image, tmp_path, capsys):
    assert main(["answer", "--image", str(image), "--scene", str(tmp_path / "s.json"), "--program", "count(scene())"]) == 2
    assert "either --scene or --image" in capsys.readouterr().err


def test_help_lists_every_command_without_importing_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys; from benchmarks.cli import build_parser; build_parser(['--help']); "
        "print(sorted(m for m in ('torch', 'pybullet', 'torch_geometric') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_word_the_shipped_parser_never_saw_is_named_not_silently_dropped(tmp_path, capsys):
    # "How many plaid things" parsed to count(scene()) and answered every object, without a word
    from perception.scene_graph import save_scenes
    from perception.synthetic import sample_scene_graphs

    save_scenes(tmp_path / "s.json", sample_scene_graphs(1, seed=0))
    argv = ["answer", "--scene", str(tmp_path / "s.json"), "--index", "0", "--question"]
    assert main([*argv, "How many plaid things are there?"]) == 0
    err = capsys.readouterr().err
    assert "never saw 'plaid' in --question" in err and len(err.strip().splitlines()) == 1, err
    assert main([*argv, "How many red things are there?"]) == 0
    assert "never saw" not in capsys.readouterr().err
