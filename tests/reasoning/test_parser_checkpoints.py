"""Parser training on the shared loop: bit-identical resume, changed flags refused, damaged files refused."""

from __future__ import annotations

import shutil

import pytest
import torch

import reasoning.parser.train as parser_train
from benchmarks.cli import main
from physics.errors import CheckpointError, ConfigError
from physics.io import DIGEST_KEY, atomic_torch_save, torch_load, weights_digest
from reasoning.parser import (
    DEFAULT_CHECKPOINT,
    ParserConfig,
    load_parser,
    load_parser_data,
    train_parser,
)
from tests.physics.test_io_checkpoints import flip_tensor_bytes
from tests.reasoning.test_parser_cli import TINY_FLAGS, _one_thread, folder  # noqa: F401 (fixtures)

TINY = dict(embedding_dim=16, hidden_dim=32, programs=20, epochs=3, batch_size=8, reinforce_steps=4,
            reinforce_questions=20, checkpoint_every=2, threads=1)


class Killed(Exception):
    pass


def _weights(parser) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in parser.state_dict().items()}


@pytest.mark.parametrize("stage, call", [("supervised_loss", 4), ("reinforce_loss", 3)])
def test_resume_after_a_kill_is_bit_identical(tmp_path, folder, monkeypatch, stage, call):  # noqa: F811
    data = load_parser_data(folder)
    cfg = ParserConfig(**TINY)
    straight = _weights(train_parser(cfg, data, out=tmp_path / "a.pt", progress=False)["parser"])
    real, calls = getattr(parser_train, stage), {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:  # mid-round: the step after a checkpoint
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(parser_train, stage, dies)
    with pytest.raises(Killed):
        train_parser(cfg, data, out=tmp_path / "b.pt", progress=False)
    monkeypatch.undo()
    state = torch.load(tmp_path / "b.pt", weights_only=True)["train_state"]
    assert state["extra"]["stage"] == stage.split("_")[0] and state["step"] == 2
    resumed = _weights(train_parser(cfg, data, out=tmp_path / "b.pt", progress=False)["parser"])
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_resume_with_changed_flags_is_refused_and_more_reinforce_steps_continue(tmp_path, folder):  # noqa: F811
    data = load_parser_data(folder)
    out = tmp_path / "p.pt"
    train_parser(ParserConfig(**{**TINY, "reinforce_steps": 2}), data, out=out, progress=False)
    with pytest.raises(ConfigError, match=r"--learning-rate 0.002 \(now 0.5\), --seed 0 \(now 7\)") as err:
        train_parser(ParserConfig(**{**TINY, "reinforce_steps": 2, "seed": 7, "learning_rate": 0.5}), data, out=out,
                     progress=False)
    assert str(out) in str(err.value)
    with pytest.raises(ConfigError, match=r"--reinforce-steps 2 \(now 1\)"):
        train_parser(ParserConfig(**{**TINY, "reinforce_steps": 1}), data, out=out, progress=False)
    grown = _weights(train_parser(ParserConfig(**TINY), data, out=out, progress=False)["parser"])
    straight = _weights(train_parser(ParserConfig(**TINY), data, out=tmp_path / "s.pt", progress=False)["parser"])
    for k in straight:
        assert torch.equal(straight[k], grown[k]), k
    assert torch_load(out)["config"]["reinforce_steps"] == 4


def test_cli_refuses_a_resume_with_changed_flags_in_one_line(tmp_path, folder, capsys):  # noqa: F811
    out = tmp_path / "p.pt"
    assert main(["train", "parser", "--data", str(folder), "--eval-scenes", "0", "--out", str(out), "--quiet",
                 *TINY_FLAGS]) == 0
    capsys.readouterr()
    rc = main(["train", "parser", "--data", str(folder), "--eval-scenes", "0", "--out", str(out), "--quiet",
               *TINY_FLAGS, "--seed", "7", "--learning-rate", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "--seed 0 (now 7)" in err and len(err.strip().splitlines()) == 1


def test_an_exported_parser_as_resume_target_is_refused(tmp_path, folder):  # noqa: F811
    data = load_parser_data(folder)
    shutil.copyfile(DEFAULT_CHECKPOINT, tmp_path / "p.pt")  # a finished model file, no training state
    with pytest.raises(CheckpointError, match="no 'train_state'"):
        train_parser(ParserConfig(**TINY), data, out=tmp_path / "p.pt", progress=False)


@pytest.mark.parametrize("edit, message", [
    (lambda c: [1, 2], "not a question-parser checkpoint"),
    (lambda c: {k: v for k, v in c.items() if k != "config"}, "no 'config' entry"),
    (lambda c: {**c, "config": "big"}, "'config' entry is a str"),
    (lambda c: {**c, "model": 3}, "'model' entry is a int"),
    (lambda c: {**c, "question_vocab": 3}, "'question_vocab' entry is a int"),
    (lambda c: {**c, "lexicon": ["x"]}, "'lexicon' entry is a list"),
    (lambda c: {**c, "program_inputs": [5]}, "does not fit the question parser"),
    (lambda c: {**c, "config": {**c["config"], "hidden_dim": "wide"}}, "does not fit the question parser"),
])
def test_wrongly_structured_parser_checkpoints_raise_checkpoint_error(tmp_path, edit, message):
    path = tmp_path / "bad.pt"
    atomic_torch_save(path, edit(torch_load(DEFAULT_CHECKPOINT)))
    with pytest.raises(CheckpointError, match=message):
        load_parser(path)


def test_shipped_parser_carries_a_digest_and_a_flipped_weight_byte_is_refused(tmp_path):
    ckpt = torch_load(DEFAULT_CHECKPOINT)
    assert ckpt[DIGEST_KEY] == weights_digest(ckpt)
    path = tmp_path / "parser.pt"
    shutil.copyfile(DEFAULT_CHECKPOINT, path)
    flip_tensor_bytes(path, max(ckpt["model"].values(), key=lambda t: t.numel()))
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_parser(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_video_parser_given_for_clevr_questions_is_refused_in_one_line_before_any_question(tmp_path, capsys,
                                                                                          tiny_clevr):
    """It loaded, and the first program it wrote ended the run with an unknown function ('events')."""
    from reasoning.parser.video import DEFAULT_VIDEO_CHECKPOINT

    assert load_parser(DEFAULT_VIDEO_CHECKPOINT).catalogue_name == "clevrer"  # any catalogue when none is named
    with pytest.raises(CheckpointError, match="video_parser.pt writes clevrer programs; a clevr question parser is "
                                              "needed here$"):
        load_parser(DEFAULT_VIDEO_CHECKPOINT, catalogue="clevr")
    split = tiny_clevr(1, "test", questions=2)
    assert main(["eval", "clevr", "--data", str(split), "--perception", "gt", "--parser", "model",
                 "--parser-checkpoint", str(DEFAULT_VIDEO_CHECKPOINT), "--out", str(tmp_path / "r.json")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and err[0].endswith("clevr question parser is needed here") and not (tmp_path / "r.json").exists()
