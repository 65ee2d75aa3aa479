"""``nesy data clevrer --no-render``, ``nesy train video-dynamics`` and ``nesy bench video-dynamics`` on a tiny split."""

from __future__ import annotations

import json

import pytest

from benchmarks import cli
from benchmarks.cli import main
from benchmarks.datasets.clevrer_builder import video_paths
from physics.models import load_model
from physics.models.video_propnet import load_trajectory_pack, load_video_split

TINY = ["--n", "2", "--frames", "14", "--future-frames", "4", "--seed", "11", "--split", "val", "--no-render", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("clevrer_dyn") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMAND_MODULES", ("data_clevrer",))
        assert main(["data", "clevrer", *TINY, "--out", str(out)]) == 0
    return out


def test_no_render_writes_annotations_and_truth_only_and_resumes(data, capsys):
    paths = video_paths(data, "val", 0)
    assert paths["annotation"].is_file() and paths["truth"].is_file()
    assert not paths["frames"].exists() and not paths["gif"].exists()
    assert json.loads((data / "build_val.json").read_text())["render"] is False
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMAND_MODULES", ("data_clevrer",))
        assert main(["data", "clevrer", *TINY, "--out", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["resumed"] == 2  # finished videos are kept, not redone


def test_train_then_bench_video_dynamics(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "video-dynamics", "--data", str(data), "--split", "val", "--out", str(run), "--epochs", "1",
                 "--max-samples", "20", "--valid-samples", "5", "--valid-fraction", "0.5", "--quiet"]) == 0
    model, meta = load_model(run / "model.pt")
    assert meta["command"].startswith("nesy train video-dynamics --model propnet") and meta["train_videos"] == 1
    capsys.readouterr()
    out = tmp_path / "bench.json"
    assert main(["bench", "video-dynamics", "--data", str(data), "--split", "val", "--n", "1", "--dynamics", "gt,propnet",
                 "--checkpoint", str(run / "model.pt"), "--future-ensemble", "2", "--future-starts", "2",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    videos = load_video_split(data, "val", limit=1)
    assert "future F1" in printed and "state collision rule" in printed
    result = json.loads(out.read_text())
    gt = result["providers"]["gt"]
    assert gt["future"]["position_error_at"]["1"] == 0.0
    assert gt["counterfactual"]["collisions"]["fn"] == 0 and gt["counterfactual"]["collisions"]["fp"] == 0
    learned = result["providers"]["propnet"]
    assert learned["counterfactual"]["runs"] == gt["counterfactual"]["runs"] > 0
    assert len(learned["future"]["position_error_curve"]) == 4
    for name in ("gt", "propnet"):  # every object at the last observed frame is in one group
        groups = result["providers"][name]["future"]["position_error_by_group"]
        assert set(groups) == {"sliding", "colliding", "resting"}
        assert sum(g["objects"] for g in groups.values()) == len(videos[0][0].motion_trajectory[-1].objects)
    assert all(v == 0.0 for g in gt["future"]["position_error_by_group"].values() for v in g["position_error_at"].values())
    assert "position error at 10/25/50 frames by object" in printed
    assert gt["contact_response"] is None  # the truth has no one-step model to ask
    assert set(learned["contact_response"]) >= {"changes", "median_ratio", "share_over_half"}
    assert learned["free_slide"]["horizon"] == 20 and set(learned["free_slide"]["fast"]) >= {"objects", "median_end_error"}
    assert (tmp_path / "bench.png").is_file()
    assert result["rollout_settings"] == {"ensemble": 2, "ensemble_starts": 2}
    assert main(["bench", "video-dynamics", "--data", str(data), "--split", "val", "--dynamics", "gt",
                 "--future-ensemble", "2", "--out", str(tmp_path / "r.json")]) == 2
    assert "none of 'gt' is learned" in capsys.readouterr().err


def test_grow_spin_starts_the_run_from_the_init_model_with_its_spin_weights_zeroed(data, tmp_path, capsys):
    import torch

    from physics.models.video_propnet import SHIPPED_CHECKPOINT, SPIN_CHANNEL

    run = tmp_path / "grow"
    args = ["train", "video-dynamics", "--data", str(data), "--split", "val", "--out", str(run), "--epochs", "1",
            "--max-samples", "8", "--valid-samples", "4", "--valid-fraction", "0.5", "--set", "contact=clevrer", "--quiet"]
    assert main([*args, "--grow-spin"]) == 2
    assert "--grow-spin" in capsys.readouterr().err
    assert main([*args, "--init", str(SHIPPED_CHECKPOINT), "--grow-spin", "--select-rollouts", "1"]) == 0
    grown, meta = load_model(run / "init_grown_spin.pt")
    shipped, _ = load_model(SHIPPED_CHECKPOINT)
    column = shipped.config.graph.history * 3 + shipped.config.node_attr_dim + SPIN_CHANNEL
    assert not grown.node_encoder[0].weight[:, column].any() and shipped.node_encoder[0].weight[:, column].any()
    assert meta["grown_spin_from"] == str(SHIPPED_CHECKPOINT)
    _, run_meta = load_model(run / "model.pt")
    assert run_meta["train_config"]["init"] == str(run / "init_grown_spin.pt")
    assert " --grow-spin" in run_meta["command"] and f"--init {SHIPPED_CHECKPOINT}" in run_meta["command"]
    torch.testing.assert_close(grown.node_encoder[0].weight[:, :column], shipped.node_encoder[0].weight[:, :column])


def test_bench_video_dynamics_names_an_unknown_provider(data, tmp_path, capsys):
    assert main(["bench", "video-dynamics", "--data", str(data), "--dynamics", "physx", "--out", str(tmp_path / "r.json")]) == 2
    assert "physx" in capsys.readouterr().err


def test_bad_rollout_settings_are_refused_before_any_provider_runs(data, tmp_path, capsys, monkeypatch):
    """With ``--dynamics gt,propnet`` the truth provider was benched in full before propnet refused the setting."""
    import benchmarks.video_dynamics_eval as evaluation

    ran = []
    monkeypatch.setattr(evaluation, "evaluate_video_dynamics", lambda *a, **k: ran.append(a) or {})
    assert main(["bench", "video-dynamics", "--data", str(data), "--split", "val", "--dynamics", "gt,propnet",
                 "--counterfactual-velocity-fit", "2", "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    assert "counterfactual_velocity_fit must be 0 (off) or an integer >= 4, got 2" in capsys.readouterr().err
    assert ran == [] and not (tmp_path / "r.json").exists()


def test_rollout_flags_with_the_truth_provider_alone_are_refused_as_rollout_flags(data, tmp_path, capsys):
    """A counterfactual (or yaw, carry ...) setting was called one of the "--future-* flags"."""
    assert main(["bench", "video-dynamics", "--data", str(data), "--dynamics", "gt", "--counterfactual-velocity-fit",
                 "12", "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "rollout flags ['counterfactual_velocity_fit'] set the learned providers' rollouts; none of 'gt'" in err


def test_train_video_dynamics_from_a_trajectory_file_with_counterfactuals_and_contact_weights(data, tmp_path, capsys):
    pack = tmp_path / "trajs.npz"
    assert main(["data", "video-trajectories", "--data", str(data), "--split", "val", "--counterfactuals",
                 "--out", str(pack)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 2 and summary["trajectories"] > 2 and pack.stat().st_size == summary["bytes"]
    assert summary["spin"] is False and all("sliding" not in t.meta for t in load_trajectory_pack(pack))
    spun = tmp_path / "spun.npz"  # --spin: the truth's sliding flags ride along in every trajectory's meta
    assert main(["data", "video-trajectories", "--data", str(data), "--split", "val", "--spin", "--out", str(spun)]) == 0
    assert json.loads(capsys.readouterr().out)["spin"] is True
    assert all("sliding" in t.meta for t in load_trajectory_pack(spun))
    run = tmp_path / "run"
    assert main(["train", "video-dynamics", "--data", str(pack), "--out", str(run), "--epochs", "1",
                 "--max-samples", "20", "--valid-samples", "5", "--valid-fraction", "0.5", "--contact-weight", "4",
                 "--contact-lead", "3", "--rollout-steps", "2", "--velocity-weight", "2", "--quiet"]) == 0
    _model, meta = load_model(run / "model.pt")
    assert meta["train_videos"] == 1 and meta["valid_videos"] == 1 and meta["contact_weight"] == 4.0
    assert meta["train_trajectories"] > 1  # the video and its counterfactuals
    assert "--contact-weight 4.0 --contact-after 10 --contact-lead 3" in meta["command"] and str(pack) in meta["command"]
    assert meta["contact_lead"] == 3
    assert meta["velocity_weight"] == 2.0 and "--velocity-weight 2.0" in meta["command"]
    capsys.readouterr()
    assert main(["train", "video-dynamics", "--data", str(pack), "--counterfactuals", "--out", str(tmp_path / "r2"),
                 "--epochs", "1", "--quiet"]) == 2
    assert "--counterfactuals" in capsys.readouterr().err
    # no contact samples: refused by the command
    assert main(["train", "video-dynamics", "--data", str(pack), "--out", str(tmp_path / "r3"), "--epochs", "1",
                 "--quiet", "--contact-lead", "3"]) == 2
    assert "contact_lead" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # < 0: refused as argparse parses it
        main(["train", "video-dynamics", "--data", str(pack), "--out", str(tmp_path / "r3"), "--epochs", "1",
              "--quiet", "--contact-lead", "-1", "--contact-weight", "4"])
    assert exit_info.value.code == 2 and "argument --contact-lead: must be an integer >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(("setting", "says"), [
    (["hidden"], "--set 'hidden': not KEY=VALUE; expected KEY=VALUE with KEY a model config field"),
    (["hidden=4", "hidden=8"], "--set 'hidden=8': hidden given twice; give each setting once"),
    (["noise_std=NaN"], "--set 'noise_std=NaN': NaN is not allowed; settings are finite numbers"),
])
def test_train_video_dynamics_refuses_a_bad_set_before_any_data_is_read(tmp_path, capsys, setting, says):
    argv = ["train", "video-dynamics", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--quiet"]
    for item in setting:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(says), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flags", "says"), [
    (["--export", "{tmp}/a_file/model.pt"], "cannot write {tmp}/a_file/model.pt: its folder cannot be created (a file "
                                            "is in the way: {tmp}/a_file)"),
    (["--export", "{tmp}"], "cannot write {tmp}: it is a folder; give a file name"),
    (["--valid-fraction", "1.5"], "--valid-fraction must be a share of the videos in [0, 1) (0: none held out), got 1.5"),
])
def test_an_export_path_that_cannot_be_written_and_a_share_above_one_are_refused_before_any_data_is_read(
        tmp_path, capsys, flags, says):
    """The export failed with a FileExistsError traceback after the training; 1.5 held out all videos but one."""
    (tmp_path / "a_file").write_text("")
    argv = ["train", "video-dynamics", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv + [f.format(tmp=tmp_path) for f in flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(says.format(tmp=tmp_path)), err
    assert not (tmp_path / "run").exists()


def test_train_dynamics_refuses_an_export_path_that_cannot_be_written_before_any_data_is_read(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    assert main(["train", "dynamics", "--world", "rope", "--model", "in", "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "run"), "--export", str(tmp_path / "a_file" / "m.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a file is in the way" in err and not (tmp_path / "run").exists(), err


def test_object_groups_sort_objects_by_their_future(data):
    from dataclasses import replace

    from benchmarks.video_dynamics_eval import object_groups
    from physics.worlds.clevrer_annotation import Collision, FrameStates

    ann, truth = load_video_split(data, "val", limit=1)[0]
    last = ann.motion_trajectory[-1]
    a, b, *rest = last.objects
    moving = replace(a, velocity=(0.3, -0.2, 0.0))
    still = replace(b, velocity=(0.01, 0.0, 0.0))
    ann = replace(ann, motion_trajectory=(*ann.motion_trajectory[:-1], FrameStates(last.frame_id, (moving, still, *rest))))
    assert object_groups(ann, replace(truth, future_collisions=()))[a.object_id] == "sliding"
    assert object_groups(ann, replace(truth, future_collisions=()))[b.object_id] == "resting"
    struck = Collision((a.object_id, b.object_id), last.frame_id + 2, (0.0, 0.0, 0.0))
    groups = object_groups(ann, replace(truth, future_collisions=(struck,)))
    assert groups[a.object_id] == groups[b.object_id] == "colliding"


def test_train_video_dynamics_says_when_the_split_holds_fewer_videos_than_n(data, tmp_path, capsys, monkeypatch):
    import physics.models.video_propnet as video_propnet
    from benchmarks.commands import train_video_dynamics as command

    seen = {}
    monkeypatch.setattr(video_propnet, "train_video_model", lambda model, videos, *a, **k: seen.setdefault("n", len(videos)))
    monkeypatch.setattr(command, "report_run", lambda *a, **k: None)
    base = ["train", "video-dynamics", "--data", str(data), "--split", "val", "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*base, "--n", "5"]) == 0
    assert seen["n"] == 2 and "--n 5 asked for 5 videos" in capsys.readouterr().err
    seen.clear()
    assert main([*base, "--n", "2"]) == 0
    assert seen["n"] == 2 and "asked for" not in capsys.readouterr().err


def test_data_video_trajectories_says_when_the_split_holds_fewer_videos_than_n(data, tmp_path, capsys):
    # it wrote the 2 videos it found for --n 5 without a word
    out = tmp_path / "t.npz"
    assert main(["data", "video-trajectories", "--data", str(data), "--split", "val", "--n", "5", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["videos"] == 2
    assert f"note: --n 5 asked for 5 videos; {data} (val) holds 2: writing 2" in captured.err
    assert main(["data", "video-trajectories", "--data", str(data), "--split", "val", "--n", "2", "--out", str(out)]) == 0
    assert "asked for" not in capsys.readouterr().err
