"""`nesy train parser` end to end on a tiny data folder, and training-loop resumption."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.cli import main
from perception.scene_graph import save_scenes
from perception.synthetic import sample_scene_graphs
from reasoning.parser import (
    ParserConfig,
    generate_parser_data,
    load_parser,
    load_parser_data,
    train_parser,
)
from reasoning.questions import QuestionGenerator, save_questions


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("parser_data")
    scenes = sample_scene_graphs(12, seed=5)
    save_scenes(d / "tiny_scenes.json", scenes)
    save_questions(d / "tiny_questions.json", QuestionGenerator().generate(scenes, 4, seed=5))
    return d


TINY_FLAGS = [
    "--embedding-dim", "16", "--hidden-dim", "32", "--programs", "20", "--epochs", "3", "--batch-size", "8",
    "--reinforce-steps", "3", "--reinforce-questions", "20", "--checkpoint-every", "2", "--threads", "1",
]


def test_cli_trains_from_a_folder_and_writes_checkpoint_log_and_summary(tmp_path, folder, capsys) -> None:
    out = tmp_path / "p.pt"
    rc = main(["train", "parser", "--data", str(folder), "--eval-data", str(folder), "--out", str(out), "--quiet", *TINY_FLAGS])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["supervised_steps"] == 3 * 3  # ceil(20 / 8) steps per epoch
    assert summary["reinforce_steps"] == 3
    assert 0.0 <= summary["held_out"]["answer_accuracy"] <= 1.0
    assert json.loads(out.with_suffix(".json").read_text())["checkpoint"] == str(out)
    stages = [json.loads(line)["stage"] for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert stages.count("supervised") >= 2 and "reinforce" in stages
    parser = load_parser(out)
    assert "nesy train parser" in torch.load(out, weights_only=True)["meta"]["command"]
    assert len(parser.parse(["How many things are there?"])) == 1


def test_cli_reports_bad_folder_as_one_line_error(tmp_path, capsys) -> None:
    rc = main(["train", "parser", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.pt"), "--quiet"])
    assert rc == 2
    assert "parser data folder not found" in capsys.readouterr().err


def test_finished_checkpoint_is_not_trained_again(tmp_path, folder) -> None:
    data = load_parser_data(folder)
    cfg = ParserConfig(embedding_dim=16, hidden_dim=32, programs=20, epochs=2, batch_size=8, reinforce_steps=0, threads=1)
    out = tmp_path / "p.pt"
    first = train_parser(cfg, data, out=out, progress=False)["parser"]
    again = train_parser(cfg, data, out=out, progress=False)
    assert again["supervised_seconds"] == 0.0
    for a, b in zip(first.state_dict().values(), again["parser"].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_generated_data_has_programs_answers_scenes_and_template_words() -> None:
    data = generate_parser_data(3, 2, seed=11)
    assert data.examples and all(e.tokens and e.answer is not None for e in data.examples)
    assert {e.image_index for e in data.examples} <= set(data.scenes)
    assert {"balls", "things", "metallic"} <= set(data.extra_words)


def test_parser_curve_writes_its_figure_in_its_own_folder_by_default(tmp_path, monkeypatch, capsys):
    # the committed figure (docs/images/parser_data_efficiency.png) is written only when asked for by --figure
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "curve"
    assert main(["train", "parser-curve", "--programs-list", "5", "--reinforce-programs", "--scenes", "5",
                 "--eval-scenes", "3", "--epochs", "1", "--out-dir", str(out), "--quiet", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"figure": str(out / "curve.png"), "rows": 1}
    assert (out / "curve.png").stat().st_size > 0 and (out / "curve.json").is_file()
    assert not (tmp_path / "docs").exists()


def test_train_parser_checks_its_outputs_and_resume_target_before_any_data(tmp_path, capsys, monkeypatch):
    # each was found after the training data were read or generated (2,000 scenes by default: minutes)
    import benchmarks.commands.train_parser as train_parser_command

    def no_data(args):
        raise AssertionError("the data were read before the outputs were checked")

    monkeypatch.setattr(train_parser_command, "_data", no_data)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    cases = [
        (["train", "parser", "--out", str(tmp_path / "broken.pt")], "question-parser checkpoint"),
        (["train", "parser", "--out", str(tmp_path / "a_folder")], "it is a folder"),
        (["train", "parser", "--out", str(tmp_path / "p.pt"), "--export", str(tmp_path / "a_file" / "e.pt")],
         "a file is in the way"),
        (["train", "parser-curve", "--out-dir", str(tmp_path / "c"), "--figure", str(tmp_path / "a_file" / "f.png")],
         "a file is in the way"),
        (["train", "parser-curve", "--out-dir", str(tmp_path / "a_file")], "a file is in the way"),
    ]
    for argv, message in cases:
        assert main([*argv, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p.pt").exists()
