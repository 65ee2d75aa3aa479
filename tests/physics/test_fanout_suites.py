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


@pytest.mark.parametrize("parser", ["gt", "model"])  # model: the workers parse too
def test_eval_clevr_perception_on_two_processes_matches_one(split, parser):
    one = evaluate_clevr(ClevrEvalConfig(data=str(split), parser=parser, threads=1), progress=False)
    two = evaluate_clevr(ClevrEvalConfig(data=str(split), parser=parser, backend="process", workers=2), progress=False)
    assert figures(two) == figures(one)
    assert one["perception"]["detection_recall"] > 0  # perception did run
    assert ("parser" in one) == (parser == "model")


def test_eval_clevr_refuses_zero_workers(split):
    with pytest.raises(ConfigError, match="workers"):
        ClevrEvalConfig(data=str(split), workers=0)


def test_eval_jobs_spread_parse_chunks_among_images_and_cover_every_question():
    from benchmarks.eval_clevr import PARSE_BATCH, _jobs

    images = [(i, f"{i}.png", f"/x/{i}.png") for i in range(10)]
    texts = [f"q{k}" for k in range(3 * PARSE_BATCH + 5)]
    jobs = _jobs(images, texts)
    kinds = [kind for kind, _ in jobs]
    assert [arg for kind, arg in jobs if kind == "perceive"] == images
    parsed = [t for kind, arg in jobs if kind == "parse" for t in arg[1]]
    assert parsed == texts  # each question once, in order
    where = [k for k, kind in enumerate(kinds) if kind == "parse"]
    assert len(where) == 4 and where[0] == 0 and where[-1] < len(jobs) - 1  # spread, not bunched at an end
    assert _jobs([], texts) == [("parse", (s, texts[s : s + PARSE_BATCH])) for s in range(0, len(texts), PARSE_BATCH)]


@pytest.mark.parametrize("spoil", ["lacks", "program", "image"])
def test_bad_input_with_two_workers_is_skipped_or_named_and_leaves_no_worker(split, tmp_path, spoil):
    # a malformed question is reported and skipped before the fan-out starts; a corrupt image is found
    # inside a worker, reported by name, and its questions count as wrong; no worker is left behind
    import json
    import multiprocessing
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(split, bad)
    path = bad / "CLEVR_test_questions.json"
    raw = json.loads(path.read_text())
    config = ClevrEvalConfig(data=str(bad), split="test", backend="process", workers=2)
    if spoil == "image":
        image = sorted((bad / "images").iterdir())[1]
        image.write_bytes(b"not a png")
        res = evaluate_clevr(config, progress=False)
        assert res["unreadable_images"]["count"] == 1 and image.name in res["unreadable_images"]["first"][0]
        assert res["questions"] == len(raw["questions"])  # its questions are counted (as wrong), none dropped
    else:
        if spoil == "lacks":
            del raw["questions"][1]["program"]
        else:
            raw["questions"][1]["program"][0]["inputs"] = [5]  # reads a later node
        path.write_text(json.dumps(raw))
        res = evaluate_clevr(config, progress=False)
        assert res["skipped"]["count"] == 1 and "question 1" in res["skipped"]["first"][0]
        assert res["questions"] == len(raw["questions"]) - 1
    assert multiprocessing.active_children() == []
