"""``nesy data audiovisual``: identical bytes whatever --workers, resumable, refusals, a bad clip skipped."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets import audiovisual_builder
from benchmarks.datasets.audiovisual_builder import (
    AudioVisualDataConfig,
    build_audiovisual,
    clip_folder,
    clip_seed,
)
from physics.errors import ConfigError, DataError, StateError
from physics.worlds.audiovisual import make_clip, read_clip

TINY = ["--n", "3", "--frames", "4", "--width", "48", "--height", "32", "--seed", "5", "--quiet"]
REGISTERED = cli.COMMAND_MODULES


def test_data_audiovisual_is_registered():
    assert "data_audiovisual" in REGISTERED


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cfg(out: Path, **kw) -> AudioVisualDataConfig:
    return AudioVisualDataConfig(**{"n": 3, "out": str(out), "seed": 5, "frames": 4, "width": 48, "height": 32,
                                    "backend": "serial", **kw})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The same tiny set made with 1 and with 2 workers, through the CLI."""
    root = tmp_path_factory.mktemp("av")
    outputs = {}
    for workers in (1, 2):
        out = root / f"w{workers}"
        buf = io.StringIO()
        with redirect_stdout(buf), pytest.MonkeyPatch.context() as mp:
            mp.setattr(cli, "COMMAND_MODULES", ("data_audiovisual",))
            assert main(["data", "audiovisual", *TINY, "--out", str(out), "--workers", str(workers)]) == 0
        outputs[workers] = (out, json.loads(buf.getvalue()))
    return outputs


def test_one_and_two_workers_write_identical_bytes_and_clips_are_make_clip(built):
    (one, summary), (two, _) = built[1], built[2]
    assert summary["generated"] == 3 and summary["skipped"] == []
    assert _files(one) == _files(two)
    clip = read_clip(clip_folder(one, 2))
    again = make_clip(clip_seed(5, 2), _cfg(one).clip_config())
    assert clip.seed == 5_000_002 and np.array_equal(clip.frames, again.frames)
    assert np.abs(clip.mixture - again.mixture).max() < 1e-8


def test_a_rerun_remakes_only_damaged_clips_with_the_same_bytes(built, tmp_path):
    source, _ = built[1]
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    before = _files(out)
    wav = clip_folder(out, 0) / "source_1.wav"
    wav.write_bytes(wav.read_bytes()[:-64])  # a truncated source
    (clip_folder(out, 1) / ".mixture.wav.abc.tmp").write_bytes(b"half")  # a killed writer's leftover
    summary = build_audiovisual(_cfg(out), progress=False)
    assert (summary["generated"], summary["resumed"], summary["stale_temporaries_removed"]) == (1, 2, 1)
    assert _files(out) == before
    assert build_audiovisual(_cfg(out), progress=False)["generated"] == 0
    (clip_folder(out, 2) / "clip.json").unlink()  # killed before its done mark
    assert build_audiovisual(_cfg(out), progress=False)["generated"] == 1
    assert _files(out) == before


def test_other_options_in_the_same_folder_are_refused(built, tmp_path):
    source, _ = built[1]
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    with pytest.raises(ConfigError, match="seed=5"):
        build_audiovisual(_cfg(out, seed=6), progress=False)
    (out / "build.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="build.json is not a build record"):
        build_audiovisual(_cfg(out), progress=False)
    with pytest.raises(ConfigError, match="--n must be"):
        replace(_cfg(out), n=0)
    with pytest.raises(ConfigError, match="sample_rate"):
        _cfg(out, sample_rate=8000)


def test_a_clip_that_cannot_be_made_is_reported_and_skipped(tmp_path, monkeypatch):
    real = audiovisual_builder.make_clip

    def flaky(seed, config):
        if seed == clip_seed(5, 1):
            raise StateError("could not place the objects")
        return real(seed, config)

    monkeypatch.setattr(audiovisual_builder, "make_clip", flaky)
    summary = build_audiovisual(_cfg(tmp_path / "av"), progress=False)
    assert summary["generated"] == 2 and len(summary["skipped"]) == 1
    assert "clip 1" in summary["skipped"][0] and "could not place" in summary["skipped"][0]
    assert not (clip_folder(tmp_path / "av", 1) / "clip.json").exists()
