"""``nesy data stats``: scene sizes and program depths of a split, and the bounds of a template set."""

from __future__ import annotations

import json

import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from physics.errors import DataError
from reasoning.dsl import from_clevr
from reasoning.questions import DEFAULT_TEMPLATES

REGISTERED = cli.COMMAND_MODULES
DEEP = str(DEFAULT_TEMPLATES.with_name("templates_deep"))


@pytest.fixture
def only_this_command(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("data_stats",))


@pytest.fixture(scope="module")
def deep_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("deep")
    build_clevr(ClevrDataConfig(n=2, out=str(out), seed=3, split="test", questions_per_scene=4, templates=DEEP,
                                width=240, height=160, min_pixels=30, min_objects=6, max_objects=7), progress=False)
    return out


def test_stats_count_scene_sizes_and_program_depths_and_template_bounds(deep_split, capsys, only_this_command):
    assert "data_stats" in REGISTERED
    assert main(["data", "stats", "--data", str(deep_split), "--split", "test",
                 "--templates", "default", "--templates", DEEP]) == 0
    stats = json.loads(capsys.readouterr().out)
    scenes = json.loads((deep_split / "CLEVR_test_scenes.json").read_text())["scenes"]
    questions = json.loads((deep_split / "CLEVR_test_questions.json").read_text())["questions"]
    sizes = [len(s["objects"]) for s in scenes]
    assert stats["scenes"] == 2 and (stats["objects"]["min"], stats["objects"]["max"]) == (min(sizes), max(sizes))
    depths = [from_clevr(q["program"]).depth() for q in questions]
    assert stats["questions"] == len(questions) > 0
    assert stats["program_depth"]["max"] == max(depths)
    assert sum(stats["program_depth"]["histogram"].values()) == len(questions)
    default, deep = stats["template_bounds"]
    assert (default["count"], default["max_depth"]) == (90, 25)
    assert deep["min_max_depth"] > default["max_depth"]  # every deep template can go beyond the default set
    assert main(["data", "stats", "--data", str(deep_split), "--split", "val"]) == 2  # no such split
    assert "val" in capsys.readouterr().err


def test_a_split_without_scenes_is_named(tmp_path):
    from benchmarks.commands.data_stats import split_stats

    with pytest.raises(DataError):
        split_stats(str(tmp_path), "test")


def test_a_bad_question_is_reported_and_skipped_not_fatal(deep_split, tmp_path):
    from benchmarks.commands.data_stats import split_stats

    for name in ("CLEVR_test_scenes.json", "CLEVR_test_questions.json"):
        (tmp_path / name).write_text((deep_split / name).read_text())
    qfile = tmp_path / "CLEVR_test_questions.json"
    data = json.loads(qfile.read_text())
    good = len(data["questions"])
    data["questions"] += [{"question": "no program"}, {"program": [{"function": "count", "inputs": [3]}]}]
    qfile.write_text(json.dumps(data))
    stats = split_stats(str(tmp_path), "test")
    assert stats["questions"] == good + 2
    assert sum(stats["program_depth"]["histogram"].values()) == good
    assert stats["skipped"]["count"] == 2
    assert f"question {good}" in stats["skipped"]["first"][0] and "references node 3" in stats["skipped"]["first"][1]
