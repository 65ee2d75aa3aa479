"""Evaluation suites fan out through physics.fanout: the same figures with 1 and 2 workers."""

from __future__ import annotations

import pytest

from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr
from physics.errors import ConfigError


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("fanout_eval")
    build_clevr(ClevrDataConfig(n=2, out=str(out), seed=3, split="test", questions_per_scene=4), progress=False)
    return out


def figures(result: dict) -> dict:
    """Everything an evaluation reports except its wall time and the config that chose the backend."""
    return {k: v for k, v in result.items() if k not in ("seconds", "config")}


@pytest.mark.parametrize("parser", ["gt", "model"])  # model: the driver parses while the workers perceive
def test_eval_clevr_perception_on_two_processes_matches_one(split, parser):
    one = evaluate_clevr(ClevrEvalConfig(data=str(split), parser=parser, threads=1), progress=False)
    two = evaluate_clevr(ClevrEvalConfig(data=str(split), parser=parser, backend="process", workers=2), progress=False)
    assert figures(two) == figures(one)
    assert one["perception"]["detection_recall"] > 0  # perception did run
    assert ("parser" in one) == (parser == "model")


def test_eval_clevr_refuses_zero_workers(split):
    with pytest.raises(ConfigError, match="workers"):
        ClevrEvalConfig(data=str(split), workers=0)
