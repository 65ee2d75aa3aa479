"""``nesy data clevrer``: identical bytes whatever --workers, per-video checks on resume, clear refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets.clevrer_builder import ClevrerDataConfig, build_clevrer, video_paths
from perception.datasets import read_mask_png
from perception.image_io import load_image
from physics.errors import ConfigError
from physics.worlds.clevrer_annotation import read_annotation
from physics.worlds.clevrer_truth import read_truth

TINY = ["--n", "2", "--frames", "8", "--future-frames", "4", "--width", "96", "--height", "64", "--seed", "7",
        "--split", "val", "--quiet"]
REGISTERED = cli.COMMAND_MODULES  # as shipped, before the fixture below narrows it


def test_data_clevrer_is_registered():
    assert "data_clevrer" in REGISTERED


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The same tiny split made with 1 and with 2 workers, through the CLI."""
    root = tmp_path_factory.mktemp("clevrer")
    outputs = {}
    for workers in (1, 2):
        out = root / f"w{workers}"
        import io
        from contextlib import redirect_stdout

        buf = io.StringIO()
        with redirect_stdout(buf), pytest.MonkeyPatch.context() as mp:
            mp.setattr(cli, "COMMAND_MODULES", ("data_clevrer",))
            assert main(["data", "clevrer", *TINY, "--out", str(out), "--workers", str(workers)]) == 0
        outputs[workers] = (out, json.loads(buf.getvalue()))
    return outputs


def test_one_and_two_workers_write_identical_bytes(built):
    (one, summary), (two, _) = built[1], built[2]
    assert summary["generated"] == 2 and summary["videos"] == 2
    files = _files(one)
    assert files == _files(two)
    assert len([f for f in files if f.startswith("frames_val/")]) == 16


def test_a_video_has_frames_masks_gif_annotation_and_truth_that_agree(built):
    out, _ = built[1]
    paths = video_paths(out, "val", 1)
    ann, truth = read_annotation(paths["annotation"]), read_truth(paths["truth"])
    assert ann.video_filename == "video_00001.gif" and ann.num_frames == 8
    assert truth.seed[:3] == (7, truth.seed[1], 1) and len(truth.counterfactuals) == len(ann.object_property)
    assert load_image(paths["frames"] / "0000.png").shape == (64, 96, 3)
    mask = read_mask_png(paths["masks"] / "0000.png")
    visible = {o.object_id for o in ann.motion_trajectory[0].objects if o.inside_camera_view}
    assert set(mask.ravel().tolist()) - {-1} <= {p.object_id for p in ann.object_property}
    assert visible <= set(mask.ravel().tolist())  # every object whose centre is in view shows in the mask
    from PIL import Image

    with Image.open(paths["gif"]) as gif:
        assert gif.n_frames == 8 and gif.size == (96, 64)


def test_a_rerun_remakes_only_damaged_videos_with_the_same_bytes(built, tmp_path):
    source, _ = built[1]
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    before = _files(out)
    frame = video_paths(out, "val", 0)["frames"] / "0003.png"
    frame.write_bytes(frame.read_bytes()[:-20])  # a truncated frame
    (video_paths(out, "val", 1)["masks"] / ".0002.png.abc.tmp").write_bytes(b"half")  # a killed writer's leftover
    cfg = ClevrerDataConfig(n=2, out=str(out), seed=7, split="val", frames=8, future_frames=4, width=96, height=64,
                            backend="serial")
    summary = build_clevrer(cfg, progress=False)
    assert (summary["generated"], summary["resumed"], summary["stale_temporaries_removed"]) == (1, 1, 1)
    assert _files(out) == before
    assert build_clevrer(cfg, progress=False)["generated"] == 0
    video_paths(out, "val", 1)["truth"].unlink()  # killed before its done mark
    assert build_clevrer(cfg, progress=False)["generated"] == 1
    assert _files(out) == before


def test_other_options_in_the_same_folder_are_refused(built, tmp_path):
    source, _ = built[1]
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    cfg = ClevrerDataConfig(n=2, out=str(out), seed=8, split="val", frames=8, future_frames=4, width=96, height=64)
    with pytest.raises(ConfigError, match="seed=7"):
        build_clevrer(cfg, progress=False)
    with pytest.raises(ConfigError, match="--n must be"):
        replace(cfg, n=0)
    with pytest.raises(ConfigError, match="unknown split"):
        replace(cfg, split="dev")


def test_the_future_share_is_recorded_only_when_set_so_older_records_resume_as_sampled(tmp_path):
    """Folders built before ``--future-share`` (no key in their record) resume with ``--future-share -1`` only."""
    tiny = {"n": 1, "seed": 7, "split": "val", "frames": 8, "future_frames": 4, "width": 96, "height": 64,
            "render": False, "backend": "serial"}
    old = tmp_path / "old"
    old.mkdir()
    (old / "build_val.json").write_text(json.dumps({"seed": 7, "split": "val", "frames": 8, "future_frames": 4,
                                                    "width": 96, "height": 64, "render": False}))
    with pytest.raises(ConfigError, match="future_share"):
        build_clevrer(ClevrerDataConfig(out=str(old), **tiny), progress=False)  # the default share is new
    assert build_clevrer(ClevrerDataConfig(out=str(old), future_share=-1, **tiny), progress=False)["generated"] == 1
    truth = read_truth(video_paths(old, "val", 0)["truth"])
    assert len(truth.seed) == 3  # as sampled: the video's own seed
    new = tmp_path / "new"
    build_clevrer(ClevrerDataConfig(out=str(new), **tiny), progress=False)
    assert json.loads((new / "build_val.json").read_text())["future_share"] == 0.715
    with pytest.raises(ConfigError, match="--future-share"):
        ClevrerDataConfig(out=str(new), future_share=2.0, **tiny)
    assert ClevrerDataConfig(out=str(new), future_share=-1, **tiny).world_config().future_share is None


def test_frames_are_encode_png_bytes_and_only_the_gif_and_json_files_are_fsynced(built, tmp_path, monkeypatch):
    """Frames and masks skip the fsync (the resume check verifies each one); their bytes are unchanged."""
    import os

    import numpy as np

    from benchmarks.datasets.clevr_builder import encode_png

    source, _ = built[1]
    frames = sorted((source / "frames_val").rglob("*.png"))
    assert frames and all(f.read_bytes() == encode_png(np.asarray(load_image(f))) for f in frames)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    out = tmp_path / "fresh"
    cfg = ClevrerDataConfig(n=1, out=str(out), seed=7, split="val", frames=8, future_frames=4, width=96, height=64,
                            backend="serial")
    assert build_clevrer(cfg, progress=False)["generated"] == 1
    assert len(synced) == 4  # the build record, the GIF, the annotation and the truth file; no frame or mask
    assert _files(out) == {k: v for k, v in _files(source).items() if "00001" not in k}


def test_no_gif_writes_every_other_file_the_same_and_is_part_of_the_build_identity(built, tmp_path):
    import io
    from contextlib import redirect_stdout

    source, _ = built[1]
    out = tmp_path / "nogif"
    with redirect_stdout(io.StringIO()), pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMAND_MODULES", ("data_clevrer",))
        assert main(["data", "clevrer", *TINY, "--out", str(out), "--workers", "1", "--backend", "serial",
                     "--no-gif"]) == 0
    files = _files(out)
    assert not any(k.startswith("video_val/") for k in files)
    expected = {k: v for k, v in _files(source).items() if not k.startswith("video_val/") and k != "build_val.json"}
    assert {k: v for k, v in files.items() if k != "build_val.json"} == expected
    assert json.loads(files["build_val.json"])["gif"] is False
    cfg = ClevrerDataConfig(n=2, out=str(out), seed=7, split="val", frames=8, future_frames=4, width=96, height=64,
                            backend="serial", gif=False)
    assert build_clevrer(cfg, progress=False)["generated"] == 0  # resumes: no GIF is asked for
    with pytest.raises(ConfigError, match="gif"):
        build_clevrer(replace(cfg, gif=True), progress=False)  # a GIF build does not mix with it


def test_gif_with_no_render_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "norender"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMAND_MODULES", ("data_clevrer",))
        assert main(["data", "clevrer", *TINY, "--out", str(out), "--no-render", "--gif"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gif" in err[0] and "--no-render" in err[0]
    assert not out.exists()
    with pytest.raises(ConfigError, match="--gif"):
        ClevrerDataConfig(n=1, out=str(out), render=False, gif=True)  # from Python too
    # left unsaid, the GIF follows the frames; an explicit --no-gif with --no-render asks for nothing more
    assert ClevrerDataConfig(n=1, out=str(out)).writes_gif
    assert not ClevrerDataConfig(n=1, out=str(out), render=False).writes_gif
    assert not ClevrerDataConfig(n=1, out=str(out), render=False, gif=False).writes_gif
