"""``nesy answer ... | head -1``: a reader that goes away ends the command quietly (issue 13 probe)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from perception.scene_graph import save_scenes
from perception.synthetic import sample_scene_graphs

REPO = Path(__file__).resolve().parents[2]


def test_closed_stdout_ends_quietly_without_a_traceback(tmp_path):
    save_scenes(tmp_path / "scenes.json", sample_scene_graphs(1, seed=0))
    argv = [sys.executable, "-m", "benchmarks.cli", "answer", "--scene", str(tmp_path / "scenes.json"),
            "--program", "count(filter_color(scene(), red))"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == "", err
    assert proc.returncode == 1  # as Python's SIGPIPE advice does: status 1, nothing printed


def test_an_open_stdout_still_gets_the_answer(tmp_path):
    save_scenes(tmp_path / "scenes.json", sample_scene_graphs(1, seed=0))
    argv = [sys.executable, "-m", "benchmarks.cli", "answer", "--scene", str(tmp_path / "scenes.json"),
            "--program", "count(scene())"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("answer: ") and done.stderr == ""
