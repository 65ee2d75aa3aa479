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
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("nscl_joint") / "data"
    assert main(["data", "clevr", "--n", "6", "--out", str(out), "--split", "train", "--seed", "5",
                 "--questions-per-scene", "10", "--width", "160", "--height", "120", "--min-pixels", "20",
                 "--backend", "serial"]) == 0
    return out


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
