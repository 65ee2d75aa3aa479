"""``nesy demo`` runs every part end to end with the shipped checkpoints."""

from __future__ import annotations

import json

import torch

from benchmarks.cli import main


def test_demo_builds_asks_answers_and_rolls_out(tmp_path, capsys):
    out = tmp_path / "demo"
    before = torch.get_num_threads()
    try:
        assert main(["demo", "--out", str(out), "--questions", "3", "--no-trace", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world"]["objects"] >= 3
    assert summary["symbolic"]["agree_with_generator"] == summary["symbolic"]["questions"] == 3
    assert "skipped" not in summary["nsvqa"] and summary["nsvqa"]["questions"] == 3
    assert "skipped" not in summary["dynamics"]
    assert set(summary["dynamics"]["models"]) == {"in", "propnet", "dpinet"}
    for name in ("demo.png", "demo_scenes.json", "demo_questions.json", "cradle_rollout.gif"):
        assert (out / name).stat().st_size > 0, name
    assert "NS-VQA from pixels" in printed


def test_demo_rejects_a_bad_thread_count(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--threads", "0"]) == 2
    assert "threads" in capsys.readouterr().err
