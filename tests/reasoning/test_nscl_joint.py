"""NS-CL with no program annotation: the parser learnt by REINFORCE from the answers alone."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from benchmarks.cli import main
from physics.errors import ConfigError
from reasoning.nscl import ConceptLearner, load_split
from reasoning.nscl.joint import (
    JointConfig,
    answer_kind,
    evaluate_joint,
    fresh_parser,
    joint_step,
    train_joint,
)


@pytest.fixture(scope="module")
def split(tiny_clevr):
    return tiny_clevr(6)


def _without_programs(src, dst):
    shutil.copytree(src, dst)
    path = dst / "CLEVR_train_questions.json"
    data = json.loads(path.read_text())
    for q in data["questions"]:
        del q["program"]
    path.write_text(json.dumps(data))
    return dst


def _step(data, answers=None, seed=0):
    torch.manual_seed(seed)
    model, parser = ConceptLearner(), fresh_parser(data.texts, seed)
    if answers is not None:
        data.answers = answers
    optimizers = (torch.optim.Adam(model.parameters(), lr=1e-3), torch.optim.Adam(parser.parameters(), lr=1e-3))
    before = [p.detach().clone() for p in parser.parameters()]
    torch.manual_seed(seed)  # the same samples for the same weights
    stats = joint_step(model, parser, optimizers, data, list(range(len(data))), None, JointConfig())
    moved = any(not torch.equal(a, b) for a, b in zip(before, parser.parameters(), strict=True))
    return stats, moved


def test_one_joint_update_moves_the_parser_and_the_reward_is_read_from_the_answers_only(split, tmp_path):
    data = load_split(_without_programs(split, tmp_path / "bare"), "train", progress=False, programs="none")
    assert len(data) == 60 and not data.programs and len(data.texts) == 60 and not data.skipped
    stats, moved = _step(data)
    assert moved and stats["valid"] > 0 and 0 <= stats["reward"] <= 1
    # the same data with its programs: read with programs="none" it is the same data, and the same step
    same = load_split(split, "train", progress=False, programs="none")
    assert same.texts == data.texts and same.answers == data.answers and _step(same)[0] == stats
    # answers no program can give: every reward is 0, whatever the samples
    assert _step(load_split(split, "train", progress=False, programs="none"), ["teapot"] * 60)[0]["reward"] == 0.0


def test_a_short_joint_run_reports_valid_programs_and_accuracy_and_refuses_data_with_programs(split):
    data = load_split(split, "train", progress=False, programs="none")
    lines = []
    model, parser, history = train_joint(data, JointConfig(steps=2, batch_size=16), valid=data, every=1,
                                         log=lines.append)
    assert [h["step"] for h in history] == [1, 2] and len(lines) == 2
    assert 0 <= history[-1]["valid_accuracy"] <= 1 and 0 < history[-1]["valid_valid"] <= 1
    assert evaluate_joint(model, parser, data)["questions"] == 60
    with pytest.raises(ConfigError, match="carries programs \\(gt\\)"):
        train_joint(load_split(split, "train", progress=False), JointConfig(steps=1))
    with pytest.raises(ConfigError, match="joint: steps"):
        JointConfig(steps=0)


def test_answer_kinds():
    vocabulary = {"color": ("red", "blue"), "shape": ("cube",)}
    assert [answer_kind(a, vocabulary) for a in ("yes", "3", "blue", "cube", "teapot")] == [
        "bool", "count", "color", "shape", ""]


class _Stopped(Exception):
    """Stands in for a kill in the middle of a run."""


def _train_none(split, out, epochs=3, **flags):
    from reasoning.nscl import NSCLTrainConfig, train_nscl

    data = load_split(split, "train", limit_images=3, progress=False, programs="none")
    config = NSCLTrainConfig(epochs=epochs, batch_size=8, programs="none", schedule="cosine", **flags)
    return train_nscl(data, config, out, valid=data, progress=False)


def test_programs_none_on_the_train_loop_stopped_mid_run_resumes_to_the_uninterrupted_weights(split, tmp_path,
                                                                                               monkeypatch):
    import reasoning.nscl.joint as joint_module

    real, calls = joint_module.joint_loss, {"n": 0, "stop": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["stop"]:
            raise _Stopped
        return real(*args, **kwargs)

    monkeypatch.setattr(joint_module, "joint_loss", counted)
    _train_none(split, tmp_path / "a.pt")
    steps = calls["n"]
    assert steps == 3 * 4  # 30 questions in batches of 8: 4 steps an epoch
    calls.update(n=0, stop=steps - 1)  # in the last epoch, after two checkpoints
    with pytest.raises(_Stopped):
        _train_none(split, tmp_path / "b.pt")
    assert torch.load(tmp_path / "b.pt", weights_only=True)["train_state"]["round"] == 2
    calls.update(n=0, stop=0)
    _, meta = _train_none(split, tmp_path / "b.pt")
    assert calls["n"] == 4  # it went on from the checkpoint: the last epoch only
    a, b = (torch.load(tmp_path / f, weights_only=True) for f in ("a.pt", "b.pt"))
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert {k.split(".")[0] for k in a["model"]} == {"concepts", "parser"}  # both models in one file
    assert a["train_state"]["extra"]["baseline"] == b["train_state"]["extra"]["baseline"] is not None
    assert [h["epoch"] for h in meta["history"]] == [1, 2, 3] and 0 <= meta["history"][-1]["valid_accuracy"] <= 1
    # another flag on resume is refused, naming it
    with pytest.raises(ConfigError, match="--learning-rate"):
        _train_none(split, tmp_path / "b.pt", learning_rate=1e-2)


def test_programs_none_cli_stores_its_command_and_both_models_load(split, tmp_path, capsys):
    from reasoning.nscl import load_nscl
    from reasoning.nscl.joint import load_joint

    out = tmp_path / "run" / "none.pt"
    assert main(["train", "nscl", "--data", str(split), "--limit-images", "2", "--eval-data", str(split),
                 "--eval-split", "train", "--out", str(out), "--epochs", "1", "--programs", "none", "--quiet"]) == 0
    ckpt = torch.load(out, weights_only=True)
    command = ckpt["train_state"]["command"]
    assert "--programs none" in command and "--epochs 1" in command and ckpt["metadata"]["programs"] == "none"
    assert out.with_suffix(".jsonl").is_file() and json.loads(out.with_suffix(".json").read_text())["programs"] == "none"
    # load_nscl gives the concept learner (the concepts.* weights), load_joint both models
    model, meta = load_nscl(out)
    assert all(torch.equal(v, ckpt["model"][f"concepts.{k}"]) for k, v in model.state_dict().items())
    assert meta["programs"] == "none" and meta["command"] == command
    concepts, parser, _ = load_joint(out)
    assert all(torch.equal(v, ckpt["model"][f"parser.{k}"]) for k, v in parser.state_dict().items())
    data = load_split(split, "train", limit_images=2, progress=False, programs="none")
    assert evaluate_joint(concepts, parser, data)["questions"] == len(data)
    # a file without a parser is refused by load_joint in one line
    from physics.errors import CheckpointError
    from reasoning.nscl import NSCLTrainConfig, train_nscl

    gt = load_split(split, "train", limit_images=2, progress=False)
    train_nscl(gt, NSCLTrainConfig(epochs=1, curriculum="0:0"), tmp_path / "gt.pt", progress=False)
    with pytest.raises(CheckpointError, match="holds no parser"):
        load_joint(tmp_path / "gt.pt")


def test_programs_none_refuses_the_flags_it_does_not_implement(capsys):
    from reasoning.nscl import NSCLTrainConfig

    with pytest.raises(ConfigError, match="does not take --flip, --whole-images: leave them"):
        NSCLTrainConfig(programs="none", flip=True, whole_images=True)
    with pytest.raises(ConfigError, match="does not take --device"):
        NSCLTrainConfig(programs="none", device="auto")
    NSCLTrainConfig(programs="none", detail_size=48, schedule="cosine")  # the architecture flags are taken
    assert main(["train", "nscl", "--data", "nowhere", "--programs", "none", "--curriculum", "0:0"]) != 0
    assert "does not take --curriculum" in capsys.readouterr().err


def test_the_programs_flag_lists_its_choices_and_every_flag_none_refuses_from_one_list(capsys):
    """The help named the refused flags by hand (and called --curriculum "not used" where it is refused)."""
    from reasoning.nscl.data import PROGRAM_SOURCES
    from reasoning.nscl.joint import NONE_UNSUPPORTED

    with pytest.raises(SystemExit):
        main(["train", "nscl", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--programs {" + ",".join(PROGRAM_SOURCES) + "}" in text
    refused = text[text.index("one checkpoint holds both models;"):text.index("must keep their defaults")]
    assert [f for f in refused.replace(",", " ").split() if f.startswith("--")] == [
        "--" + name.replace("_", "-") for name in NONE_UNSUPPORTED]
    with pytest.raises(SystemExit):
        main(["train", "nscl", "--data", "nowhere", "--programs", "parsed"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("argument --programs: invalid choice: 'parsed' (choose from 'gt', 'parser', 'none')"), err


def test_joint_adam_clips_each_group_and_steps_it_at_its_rate_factor():
    from reasoning.nscl.joint import JointAdam
    from reasoning.parser.train import GRAD_CLIP

    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt = JointAdam([{"params": [a]}, {"params": [b], "lr_factor": 2.0}], lr=0.1)
    a.grad, b.grad = torch.full((3,), 100.0), torch.full((3,), 0.5)
    opt.step()
    assert float(a.grad.norm()) <= GRAD_CLIP + 1e-6 and torch.equal(b.grad, torch.full((3,), 0.5))  # per group
    assert torch.allclose(a, torch.full((3,), -0.1)) and torch.allclose(b, torch.full((3,), -0.2))  # Adam's first step: lr
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]  # the loop's rate is left as it set it


def test_a_sampled_batch_with_programs_the_executor_refuses_runs_each_of_the_others_once(monkeypatch):
    """The refused ones (a type error, a word the learner lacks, a scene out of range) are dropped by the check; the
    others run in one batch (the batch was run, then each program alone, then the kept ones again)."""
    import reasoning.nscl.joint as joint_module
    from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
    from reasoning.dsl import parse_program
    from reasoning.executor.soft import SoftScenes, soft_execute

    vocabulary = {a: tuple(w for w in ws if w != "cyan") for a, ws in ATTRIBUTES.items()}
    g = torch.Generator().manual_seed(0)
    scenes = SoftScenes(torch.ones(2, 3), {a: torch.randn(2, 3, len(ws), generator=g) for a, ws in vocabulary.items()},
                        torch.randn(2, len(RELATIONS), 3, 3, generator=g), vocabulary)
    texts = ["count(scene())", "exist(filter_color(scene(), cyan))", "count(filter_color(scene(), red))",
             "exist(count(scene()))", "query_shape(unique(scene()))", "count(scene())"]
    programs, rows = [parse_program(t) for t in texts], [0, 1, 1, 0, 0, 5]
    runs: list[int] = []

    def counted(batch, s, r):
        runs.append(len(batch))
        return soft_execute(batch, s, r)

    monkeypatch.setattr(joint_module, "soft_execute", counted)
    out, keep = joint_module._execute(programs, scenes, rows)
    assert keep == [0, 2, 4] and runs == [3]
    alone = soft_execute([programs[k] for k in keep], scenes, [rows[k] for k in keep])
    assert out.answers == alone.answers and all(torch.equal(a, b) for a, b in zip(out.values, alone.values, strict=True))
    runs.clear()
    assert joint_module._execute(programs[1:2], scenes, rows[1:2]) == (None, []) and runs == []

