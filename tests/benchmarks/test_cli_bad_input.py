"""Bad input to the CLI is a one-line error (status 2), never a traceback (issue 13 probes).

``--out /sys/x.json``, ``--out`` naming a folder and ``--out ""`` gave a traceback
from ``atomic_open`` in ``nesy execute`` and every ``nesy data`` builder; so did
a negative ``--seed`` for ``nesy data questions`` and a damaged partial-build record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from perception.scene_graph import save_scenes
from perception.synthetic import sample_scene_graphs
from reasoning.dsl import to_clevr
from reasoning.executor import random_programs


def _bad_files(tmp_path: Path) -> dict[str, str]:
    """Output files that cannot be written, by why: a folder, under a file, empty, read-only system."""
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    bad = {
        "folder": str(tmp_path / "a_folder"),
        "under_a_file": str(tmp_path / "a_file" / "x.json"),
        "empty": "",
    }
    if sys.platform.startswith("linux") and Path("/sys").is_dir():
        bad["sys"] = "/sys/x.json"  # sysfs refuses new files even to root
    return bad


def _bad_folders(tmp_path: Path) -> dict[str, str]:
    """Output folders that cannot be made: a file, under a file, empty, read-only system."""
    (tmp_path / "a_file").write_text("x")
    bad = {"a_file": str(tmp_path / "a_file"), "under_a_file": str(tmp_path / "a_file" / "d"), "empty": ""}
    if sys.platform.startswith("linux") and Path("/sys").is_dir():
        bad["sys"] = "/sys/nesy_out"
    return bad


def _one_line_error(capsys, argv: list[str], must_name: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("nesy ") and ": error: " in err
    if must_name:
        assert must_name in err, err
    return err


def _refused_when_parsed(capsys, argv: list[str], message: str) -> None:
    """argparse refuses a flag's value (status 2), naming the flag, before the command runs."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err, err


@pytest.fixture()
def execute_inputs(tmp_path):
    scenes = sample_scene_graphs(2, seed=0)
    save_scenes(tmp_path / "scenes.json", scenes)
    programs = random_programs(4, seed=0, scenes=scenes)
    questions = [{"question_index": k, "image_index": k % 2, "program": to_clevr(p)} for k, p in enumerate(programs)]
    (tmp_path / "questions.json").write_text(json.dumps({"questions": questions}))
    return tmp_path


def test_execute_with_an_unwritable_out_is_one_line_naming_the_path(execute_inputs, capsys):
    for why, out in _bad_files(execute_inputs).items():
        argv = ["execute", "--scenes", str(execute_inputs / "scenes.json"),
                "--questions", str(execute_inputs / "questions.json"), "--out", out, "--quiet"]
        err = _one_line_error(capsys, argv, out)
        if why == "folder":
            assert "folder" in err
        if why == "under_a_file":
            assert "a file is in the way" in err


def test_data_questions_with_an_unwritable_out_is_one_line(tmp_path, capsys):
    for _why, out in _bad_files(tmp_path).items():
        # argparse turns "" into Path("."), the current folder: named as "."
        _one_line_error(capsys, ["data", "questions", "--synthetic", "2", "--out", out, "--quiet"], out or ".")
        assert not list(Path(".").glob(".*.tmp"))
    good = tmp_path / "q.json"
    _one_line_error(
        capsys,
        ["data", "questions", "--synthetic", "2", "--out", str(good), "--scenes-out", str(tmp_path / "a_file" / "s.json"), "--quiet"],
        "a_file",
    )


def test_data_clevr_with_an_unmakeable_out_folder_is_one_line(tmp_path, capsys):
    for _why, out in _bad_folders(tmp_path).items():
        _one_line_error(capsys, ["data", "clevr", "--n", "1", "--out", out, "--quiet", "--backend", "serial"], out)


def test_data_dynamics_with_an_unmakeable_out_folder_is_one_line(tmp_path, capsys):
    for _why, out in _bad_folders(tmp_path).items():
        _one_line_error(capsys, ["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5",
                                 "--out", out, "--quiet", "--backend", "serial"], out)


# ----------------------------------------------------------------- other bad input found by probing


def test_data_questions_refuses_a_negative_seed(tmp_path, capsys):
    _refused_when_parsed(capsys, ["data", "questions", "--synthetic", "2", "--seed", "-1", "--out", str(tmp_path / "q.json"),
                                  "--quiet"], "argument --seed: must be an integer >= 0, got '-1'")


def test_data_clevr_refuses_a_grid_count_below_one_before_rendering(tmp_path, capsys):
    for count in ("0", "-3"):
        _refused_when_parsed(capsys, ["data", "clevr", "--n", "1", "--out", str(tmp_path / "c"), "--grid", str(tmp_path / "g.png"),
                                      "--grid-count", count, "--quiet"], f"argument --grid-count: must be an integer >= 1, got '{count}'")
    assert not (tmp_path / "c").exists()


def test_data_clevr_names_a_partial_build_record_that_is_not_an_object(tmp_path, capsys):
    (tmp_path / "c" / ".partial").mkdir(parents=True)
    (tmp_path / "c" / ".partial" / "build.json").write_text("[1, 2]")
    _one_line_error(capsys, ["data", "clevr", "--n", "1", "--out", str(tmp_path / "c"), "--quiet"],
                    "is not a partial build record")


@pytest.mark.parametrize("damage", [b'{"seed": 0, "spl', bytes(range(128, 256))])
def test_a_damaged_build_record_says_how_to_go_on(tmp_path, capsys, damage):
    # truncated or random bytes were named, but without the way out that a record of the wrong shape gave
    (tmp_path / "c" / ".partial").mkdir(parents=True)
    (tmp_path / "c" / ".partial" / "build.json").write_bytes(damage)
    err = _one_line_error(capsys, ["data", "clevr", "--n", "1", "--out", str(tmp_path / "c"), "--quiet"],
                          "; delete it to resume with the options given now")
    assert "build.json" in err
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "build_val.json").write_bytes(damage)
    err = _one_line_error(capsys, ["data", "clevrer", "--n", "1", "--split", "val", "--out", str(tmp_path / "v"),
                                   "--quiet"], "; delete it to start again")
    assert "build_val.json" in err


def test_data_clevr_refuses_image_sizes_the_renderer_cannot_allocate(tmp_path, capsys):
    # 100000x100000 aborted the whole process inside TinyRenderer (C++ bad_alloc)
    _one_line_error(capsys, ["data", "clevr", "--n", "1", "--out", str(tmp_path / "c"), "--width", "100000", "--height",
                             "100000", "--quiet"], "image size must be 16..4096 pixels a side, got 100000x100000")
    _refused_when_parsed(capsys, ["data", "clevr", "--n", "1", "--out", str(tmp_path / "c"), "--width", "8", "--quiet"],
                         "argument --width: must be an integer >= 16, got '8'")
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------- negative counts, NaN floats, templates read first


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "video-trajectories", "--n", "-1", "--out", "t.npz"], "argument --n: must be an integer >= 1, got '-1'"),
        (["bench", "video-dynamics", "--n", "-2", "--dynamics", "gt", "--out", "r.json"],
         "argument --n: must be an integer >= 1, got '-2'"),
        (["bench", "video-dynamics", "--window", "-3", "--dynamics", "gt", "--out", "r.json"],
         "argument --window: must be an integer >= 0, got '-3'"),
        (["bench", "dynamics", "--world", "cradle", "--models", "in", "--max-trajectories", "-1", "--out", "r.json"],
         "argument --max-trajectories: must be an integer >= 0 (0: all), got '-1'"),
        (["eval", "clevr", "--perception", "gt", "--parser", "gt", "--limit", "-2"],
         "argument --limit: must be an integer >= 1, got '-2'"),
    ],
)
def test_a_negative_count_is_refused_not_sliced_off_the_end(tmp_path, capsys, argv, message):
    # each is used as list[:n], where -1 would drop the last video, trajectory or question without a word:
    # every integer flag is a count that argparse refuses by name
    _refused_when_parsed(capsys, [*argv, "--data", str(tmp_path / "missing")], message)


@pytest.mark.parametrize(("text", "message"), [("{\"a\": ", "is not valid JSON"), ("[{\"params\": []}]", "missing field 'text'")])
def test_data_clevr_reads_its_templates_before_rendering(tmp_path, capsys, text, message):
    # a malformed --templates is refused before any scene is rendered: a rerun with a fixed file is a
    # different build (templates are part of its identity), so renders made first would be lost
    (tmp_path / "t.json").write_text(text)
    _one_line_error(capsys, ["data", "clevr", "--n", "2", "--out", str(tmp_path / "c"), "--templates", str(tmp_path / "t.json"),
                             "--quiet"], message)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("argv", [
    ["train", "dynamics", "--world", "cradle", "--data", "/nonexistent", "--out", "OUT", "--lr", "nan"],
    ["train", "dynamics", "--world", "cradle", "--data", "/nonexistent", "--out", "OUT", "--grad-clip", "NaN"],
    ["eval", "clevrer", "--data", "/nonexistent", "--dynamics", "propnet", "--near-miss", "1", "2", "3", "4", "nan"],
])
def test_every_float_flag_of_a_typed_config_refuses_nan_naming_the_flag(argv, tmp_path, capsys):
    # a NaN threshold or rate makes every comparison false: it would turn rules off without a word
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    flag = next(a for a in argv if a.startswith("--") and a not in ("--world", "--data", "--out", "--dynamics"))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {flag}: must be a number" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------- missing data, outputs checked before the work


@pytest.mark.parametrize(("argv", "optional"), [
    (["bench", "dynamics", "--world", "cradle", "--data", "MISSING", "--models", "in"], False),
    (["bench", "video-dynamics", "--data", "MISSING", "--dynamics", "gt"], False),
    (["bench", "video-perception", "--data", "EMPTY"], True),
    (["bench", "compare", "--a", "MISSING:in", "--b", "MISSING:in"], True),
    (["bench", "speed", "--suite", "executor", "--questions", "10", "--scenes", "2", "--repeats", "1"], True),
    (["control", "--task", "boxpush", "--model", "gt", "--episodes", "1", "--max-steps", "1"], False),
])
def test_a_long_command_checks_its_out_before_the_work(argv, optional, tmp_path, capsys):
    # the result was written last: an unwritable --out failed after every rollout, episode or timed run
    argv = [a.replace("MISSING", str(tmp_path / "missing")).replace("EMPTY", str(tmp_path / "a_folder")) for a in argv]
    for why, out in _bad_files(tmp_path).items():
        if optional and why == "empty":  # --out "" is no --out
            continue
        err = _one_line_error(capsys, [*argv, "--out", out], "")
        assert "cannot write" in err or "names no file" in err, err
        assert "missing" not in err  # the data (absent) were not read yet
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder"]  # nothing made, nothing left


def test_check_writable_names_the_path_and_leaves_nothing_behind(tmp_path):
    from physics.errors import OutputError
    from physics.io import check_writable

    assert check_writable(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    assert list(tmp_path.iterdir()) == []  # no folder made, no probe file left
    for why, out in _bad_files(tmp_path).items():
        with pytest.raises(OutputError, match="cannot write|names no file"):
            check_writable(out)
        if why == "under_a_file":
            with pytest.raises(OutputError, match="a file is in the way"):
                check_writable(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder"]


def test_answer_without_a_scene_names_every_kind_it_reads(capsys):
    # a new user's first `nesy answer --question ...`: the error named --scene and --image, not --video
    assert main(["answer", "--question", "How many cubes are there?"]) == 2
    err = capsys.readouterr().err
    assert "give a scene: --scene FILE.json, --image IMAGE.png or --video" in err


def test_an_error_names_the_whole_command_as_argparse_does(capsys):
    # it said `nesy bench: error:` where a bad flag of the same command says `nesy bench speed: error:`
    assert main(["bench", "speed", "--suite", "bogus"]) == 2
    assert capsys.readouterr().err.startswith("nesy bench speed: error: unknown speed suite 'bogus'")
    assert main(["answer"]) == 2
    assert capsys.readouterr().err.startswith("nesy answer: error: give a scene")


@pytest.mark.parametrize("argv", [
    ["train", "derender", "--data", "EMPTY", "--out", "UNDER_A_FILE", "--quiet"],
    ["train", "outline", "--data", "EMPTY", "--out", "UNDER_A_FILE", "--quiet"],
    ["train", "dynamics", "--world", "cradle", "--model", "in", "--data", "CRADLE", "--epochs", "1", "--out",
     "UNDER_A_FILE", "--quiet"],
    ["train", "parser", "--data", "QUESTIONS", "--out", "UNDER_A_FILE/parser.pt", "--quiet"],
    ["demo", "--out", "UNDER_A_FILE"],
])
def test_an_output_folder_under_a_file_is_one_line_naming_it(argv, tmp_path, capsys):
    # each made its folder with a bare mkdir: a file in the way was a NotADirectoryError traceback
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    if "CRADLE" in argv:
        assert main(["data", "dynamics", "--world", "cradle", "--n", "1", "--steps", "5", "--out",
                     str(tmp_path / "cradle"), "--quiet"]) == 0
    if "QUESTIONS" in argv:
        assert main(["data", "questions", "--synthetic", "2", "--per-scene", "2", "--scenes-out",
                     str(tmp_path / "q" / "CLEVR_train_scenes.json"), "--out",
                     str(tmp_path / "q" / "CLEVR_train_questions.json"), "--quiet"]) == 0
    capsys.readouterr()
    names = {"EMPTY": "empty", "CRADLE": "cradle", "QUESTIONS": "q", "UNDER_A_FILE": "a_file/x"}
    argv = [str(tmp_path / names[a.split("/")[0]]) + a[len(a.split("/")[0]):] if a.split("/")[0] in names else a
            for a in argv]
    err = _one_line_error(capsys, argv, str(tmp_path / "a_file" / "x"))
    assert "a file is in the way" in err


def test_every_folder_is_made_by_ensure_dir():
    # a bare mkdir turns a file in the way into a traceback; physics.io.ensure_dir says it in one line
    root = Path(__file__).resolve().parents[2]
    bare = [f"{path.relative_to(root)}:{k}" for package in ("physics", "perception", "reasoning", "benchmarks")
            for path in sorted((root / package).rglob("*.py")) if path != root / "physics" / "io.py"
            for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if ".mkdir(" in line or "os.makedirs(" in line]
    assert bare == []


def test_train_derender_reads_its_held_out_folder_before_training(tiny_clevr, tmp_path, capsys):
    # a missing --eval-data was found after both networks were trained, their files left behind
    out, data = tmp_path / "run", tiny_clevr(2)
    capsys.readouterr()
    err = _one_line_error(capsys, ["train", "derender", "--data", str(data), "--eval-data",
                                   str(tmp_path / "missing"), "--out", str(out), "--epochs", "1", "--quiet"],
                          "derender data folder not found")
    assert str(tmp_path / "missing") in err
    assert not out.exists() or list(out.iterdir()) == []
