"""Shared, expensive fixtures of the benchmark tests: one reduced demo and one tiny ``bench all`` per session."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.cli import main
from benchmarks.suites import SUITES, register_suite
from benchmarks.suites.clevr import SEED as CLEVR_SEED
from benchmarks.suites.clevr import run_clevr

TINY_CLEVR = "tiny-clevr-nsvqa"  # the real CLEVR suite on two scenes


@pytest.fixture(scope="session")
def reduced_demo(tmp_path_factory):
    """``nesy demo`` with every section, on a few questions, a short video and a two-step episode."""
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    before = torch.get_num_threads()
    try:
        status = main(["demo", "--out", str(out), "--questions", "3", "--no-trace", "--threads", "1",
                       "--video-frames", "8", "--control-steps", "2"])
    finally:
        torch.set_num_threads(before)
    assert status == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory):
    """``nesy bench all --quick`` on the real CLEVR suite registered here with two scenes of two questions."""
    register_suite(TINY_CLEVR, run_clevr, quick={"model": "nsvqa", "n": 2, "questions_per_scene": 2,
                                                  "seed": CLEVR_SEED, "speed_images": 1},
                   full={"model": "nsvqa", "n": 2, "questions_per_scene": 2, "seed": CLEVR_SEED},
                   group="CLEVR question answering", help="NS-VQA on two scenes (test)", replace=True)
    out = tmp_path_factory.mktemp("bench") / "bench"
    try:
        status = main(["bench", "all", "--out", str(out), "--quick", "--suites", TINY_CLEVR])
    finally:
        SUITES.unregister(TINY_CLEVR)
    assert status == 0
    return out, json.loads((out / "results.json").read_text())
