"""The derenderer end to end: images in, SceneGraphs out; checkpoints; training; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.cli import build_parser, main
from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from perception.datasets.clevr_render import generate_scene
from perception.derender import (
    DEFAULT_CHECKPOINT,
    AttributeConfig,
    AttributeNet,
    Derenderer,
    ProposalConfig,
    ProposalNet,
    load_default_derenderer,
    load_derenderer,
    load_image,
    mask_to_rle,
    match_objects,
    rle_to_mask,
    save_derenderer,
)
from perception.derender.training import DerenderTrainConfig, command_line, train_derenderer
from perception.scene_graph import SceneGraph
from physics.errors import CheckpointError, ConfigError, DataError
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from physics.worlds.clevr_world import ClevrWorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one torch thread


def _tiny_derenderer(seed: int = 0) -> Derenderer:
    torch.manual_seed(seed)
    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8, peak_threshold=0.0))
    anet = AttributeNet(AttributeConfig(crop_size=16, width=8))
    # camera at (0, -10, 6) looking at the origin: rows right, down, forward
    eye = np.array([0.0, -10.0, 6.0])
    fwd = -eye / np.linalg.norm(eye)
    right = np.array([1.0, 0.0, 0.0])
    R = np.stack([right, np.cross(fwd, right), fwd])
    P = np.array([[400.0, 0, 240], [0, 400, 160], [0, 0, 1]]) @ np.c_[R, -R @ eye]
    return Derenderer(pnet, anet, P, (320, 480), {"cube/large": 0.5})


def _tiny_data(tmp_path, *, n: int, seed: int):
    """A ``nesy data clevr`` folder of ``n`` 96 x 64 scenes (with masks) under ``tmp_path / "data"``."""
    data = tmp_path / "data"
    build_clevr(
        ClevrDataConfig(n=n, out=str(data), seed=seed, questions_per_scene=0, width=96, height=64,
                        min_pixels=10, backend="serial"),
        progress=False,
    )
    return data


# ---------------------------------------------------------------------- images
def test_load_image_reads_rgb_and_names_bad_files(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "ok.png")
    np.testing.assert_array_equal(load_image(tmp_path / "ok.png"), rgb)
    with pytest.raises(DataError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DataError, match="corrupt.png"):
        load_image(tmp_path / "corrupt.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="notes.png"):
        load_image(tmp_path / "notes.png")


def test_rle_round_trip():
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    mask[4, 6] = True
    rle = mask_to_rle(mask)
    assert rle["size"] == [5, 7] and sum(rle["counts"]) == 35
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert mask_to_rle(np.ones((2, 2), bool))["counts"] == [0, 4]


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_is_weights_only(tmp_path):
    d = _tiny_derenderer()
    path = tmp_path / "d.pt"
    save_derenderer(path, d.proposal_net, d.attribute_net, d.projection, d.image_size, d.heights, {"seed": 3})
    raw = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert raw["metadata"] == {"seed": 3}
    loaded = load_derenderer(path)
    assert loaded.heights == {"cube/large": 0.5} and loaded.metadata["seed"] == 3
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(loaded.proposal_net(x).heatmap, d.proposal_net(x).heatmap)
    np.testing.assert_allclose(loaded.projection, d.projection)


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip archive")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_derenderer(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_derenderer(tmp_path / "absent.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a derenderer checkpoint"):
        load_derenderer(tmp_path / "other.pt")
    d = _tiny_derenderer()
    save_derenderer(tmp_path / "d.pt", d.proposal_net, d.attribute_net, d.projection, d.image_size)
    ckpt = torch.load(tmp_path / "d.pt", weights_only=True)
    ckpt["proposal"]["config"]["width"] = 12  # weights no longer fit
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_derenderer(tmp_path / "mismatch.pt")


# ---------------------------------------------------------------------- pipeline
def test_pipeline_on_a_generated_scene_gives_a_valid_scene_graph():
    _, rgb, _, _ = generate_scene(5, ClevrWorldConfig(width=96, height=64, min_pixels=10))
    scene = _tiny_derenderer()(rgb, image_index=7)  # untrained: many or few objects, all well formed
    assert isinstance(scene, SceneGraph)
    assert scene.image_index == 7
    assert set(RELATIONS) <= set(scene.relationships)
    for o in scene.objects:
        for name, values in ATTRIBUTES.items():
            assert o.attribute(name) in values
        assert o.pixel_coords is not None and all(np.isfinite(o.position))
    assert SceneGraph.from_clevr(json.loads(json.dumps(scene.to_clevr()))).to_clevr() == scene.to_clevr()


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="default derenderer checkpoint not shipped")
def test_default_derenderer_recovers_a_held_out_scene():
    derenderer = load_default_derenderer(with_masks=True)
    assert "nesy train derender" in derenderer.metadata["command"]
    gt, rgb, _, mask = generate_scene((99, 0, 1))  # a seed no data set of ours uses
    pred = derenderer(rgb)
    pairs = match_objects(pred, gt)
    assert len(pairs) == len(gt) == len(pred)
    for i, j in pairs:
        p, g = pred.objects[i], gt.objects[j]
        assert (p.shape, p.color, p.material, p.size) == (g.shape, g.color, g.material, g.size)
        assert np.linalg.norm(np.subtract(p.position, g.position)) < 0.6
        overlap = (rle_to_mask(p.mask) & (mask == j)).sum() / (mask == j).sum()
        assert overlap > 0.5


# ---------------------------------------------------------------------- training
def test_tiny_training_run_writes_resumable_checkpoints(tmp_path):
    data = _tiny_data(tmp_path, n=3, seed=3)
    cfg = DerenderTrainConfig(
        data=str(data), out=str(tmp_path / "run"), epochs=2, batch_size=2, attribute_batch_size=8,
        input_height=32, input_width=48, width=8, attribute_width=8, crop_size=16, eval_data=str(data),
    )
    summary = train_derenderer(cfg, progress=False)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in lines] == [
        ("proposal", 1), ("proposal", 2), ("attribute", 1), ("attribute", 2)
    ]
    assert lines[3]["loss"] < lines[2]["loss"]
    assert summary["eval"]["n_scenes"] == 3
    loaded = load_derenderer(tmp_path / "run" / "derender.pt")
    assert loaded.metadata["command"].startswith("nesy train derender --data ")
    assert "--epochs 2" in loaded.metadata["command"]
    # a rerun finds both networks finished and trains nothing more
    train_derenderer(cfg, progress=False)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 4


def test_stage_runs_record_both_commands_in_the_finished_checkpoint(tmp_path):
    data = _tiny_data(tmp_path, n=3, seed=4)
    common = dict(data=str(data), out=str(tmp_path / "run"), epochs=1, batch_size=2, attribute_batch_size=8,
                  input_height=32, input_width=48, width=8, attribute_width=8, crop_size=16)
    first = train_derenderer(DerenderTrainConfig(**common, stage="attribute"), progress=False)
    assert first["checkpoint"] is None  # the proposal network is still missing
    second = train_derenderer(DerenderTrainConfig(**common, stage="proposal", limit=2), progress=False)
    assert second["checkpoint"] is not None
    meta = load_derenderer(tmp_path / "run" / "derender.pt").metadata
    attribute_cmd, proposal_cmd = meta["command"].split(" && ")  # in the order they ran
    assert "--limit 2" in proposal_cmd and "--limit" not in attribute_cmd
    assert "--stage proposal" in proposal_cmd and "--stage attribute" in attribute_cmd
    assert (meta["proposal_scenes"], meta["attribute_scenes"]) == (2, 3)
    assert meta["attribute_wall_s"] >= 0 and meta["proposal_wall_s"] >= 0


def test_cli_reports_a_missing_data_folder(tmp_path, capsys):
    code = main(["train", "derender", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def test_cli_names_a_folder_without_a_scenes_file_without_a_library_keyword(tmp_path, capsys):
    # it said "pass split=", which no flag of the command line takes
    (tmp_path / "empty").mkdir()
    assert main(["train", "derender", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "empty: no CLEVR_<split>_scenes.json (a folder written by `nesy data clevr`)" in err and "split=" not in err
    for split in ("train", "val"):
        (tmp_path / "empty" / f"CLEVR_{split}_scenes.json").write_text('{"scenes": []}')
    from perception.derender.data import load_derender_folder

    with pytest.raises(DataError, match="found CLEVR_train_scenes.json, CLEVR_val_scenes.json"):
        load_derender_folder(tmp_path / "empty")


def last_command(out) -> str:
    """The last command of a finished derender.pt's metadata."""
    return load_derenderer(out / "derender.pt").metadata["command"].split(" && ")[-1]


def test_attribute_network_fine_tuned_on_proposal_masks(tmp_path):
    data = _tiny_data(tmp_path, n=2, seed=5)
    # an untrained proposal network that proposes everywhere: every true object gets a mask
    torch.manual_seed(0)
    pnet = ProposalNet(ProposalConfig(input_size=(32, 48), width=8, peak_threshold=0.0, fg_threshold=0.0,
                                      nms_kernel=3, min_area=1))
    anet = AttributeNet(AttributeConfig(crop_size=16, width=8))
    start = tmp_path / "start.pt"
    save_derenderer(start, pnet, anet, _tiny_derenderer().projection, (64, 96),
                    metadata={"command": "nesy train derender --first"})
    common = dict(data=str(data), epochs=3, attribute_batch_size=4, lr=1e-2, attribute_width=8, crop_size=16,
                  stage="attribute", proposal_from=str(start), attribute_init=str(start), match_distance=1000.0)
    proposal = train_derenderer(DerenderTrainConfig(**common, out=str(tmp_path / "p"), attribute_masks="proposal"),
                                progress=False)
    counts = proposal["proposal_masks"]
    assert counts["matched"] == counts["true_objects"] == proposal["n_train_objects"] > 0
    lines = [json.loads(s) for s in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3] and lines[2]["loss"] < lines[0]["loss"]
    meta = load_derenderer(tmp_path / "p" / "derender.pt").metadata
    earlier, command = meta["command"].split(" && ")  # the start checkpoint's command runs first
    assert earlier == "nesy train derender --first"
    assert "--attribute-masks proposal" in command and "--attribute-init" in command
    assert meta["based_on"] == [str(start)]
    mixed = train_derenderer(DerenderTrainConfig(**common, out=str(tmp_path / "m"), attribute_masks="mixed",
                                                 attribute_augment=True, attribute_occlude=0.5, attribute_flip=0.5,
                                                 test_flip=True), progress=False)
    assert mixed["n_train_objects"] == 2 * counts["matched"]  # true-mask crops plus proposal crops
    command = load_derenderer(tmp_path / "m" / "derender.pt").metadata["command"].split(" && ")[-1]
    assert "--attribute-augment" in command  # a boolean flag is written as one word and reads back
    assert build_parser().parse_args(command.split()[1:]).attribute_augment is True
    assert "--attribute-occlude 0.5" in command and "--attribute-occlude" not in last_command(tmp_path / "p")
    assert "--attribute-flip 0.5" in command and "--attribute-flip" not in last_command(tmp_path / "p")
    assert "--test-flip" in command and build_parser().parse_args(command.split()[1:]).test_flip is True
    assert load_derenderer(tmp_path / "m" / "derender.pt").attribute_net.config.test_flip is True
    assert load_derenderer(tmp_path / "p" / "derender.pt").attribute_net.config.test_flip is False
    with pytest.raises(ConfigError, match="attribute_flip"):
        DerenderTrainConfig(data=str(data), attribute_flip=-0.1)
    with pytest.raises(ConfigError, match="attribute_occlude"):
        DerenderTrainConfig(data=str(data), attribute_occlude=1.5)
    with pytest.raises(ConfigError, match="attribute_occlude_no_centre"):
        DerenderTrainConfig(data=str(data), attribute_occlude_no_centre=True)
    parsed = build_parser().parse_args("train derender --data x --attribute-occlude 0.5 --attribute-occlude-no-centre".split())
    assert parsed.attribute_occlude_no_centre is True and parsed.attribute_occlude == 0.5
    with pytest.raises(ConfigError):
        DerenderTrainConfig(data=str(data), stage="all", proposal_from=str(start))
    with pytest.raises(ConfigError, match="proposal network"):
        train_derenderer(DerenderTrainConfig(data=str(data), out=str(tmp_path / "x"), stage="attribute", epochs=1,
                                             attribute_masks="proposal", input_height=32, input_width=48),
                         progress=False)


def test_proposal_network_fine_tuned_at_a_larger_input_size(tmp_path):
    data = _tiny_data(tmp_path, n=2, seed=6)
    torch.manual_seed(0)
    start_net = ProposalNet(ProposalConfig(input_size=(32, 48), width=8))
    start = tmp_path / "start.pt"
    save_derenderer(start, start_net, AttributeNet(AttributeConfig(crop_size=16, width=8)),
                    _tiny_derenderer().projection, (64, 96), metadata={"command": "nesy train derender --first"})
    config = DerenderTrainConfig(data=str(data), out=str(tmp_path / "p"), epochs=1, batch_size=2, width=8,
                                 stage="proposal", proposal_init=str(start), input_height=48, input_width=72)
    train_derenderer(config, progress=False)
    tuned = torch.load(tmp_path / "p" / "proposal_train.pt", weights_only=True)["model"]
    # the fine-tuned weights moved away from the starting network's, not from a fresh one
    fresh = ProposalNet(ProposalConfig(input_size=(48, 72), width=8)).state_dict()
    start_w, tuned_w = start_net.state_dict()["stem.0.weight"], tuned["stem.0.weight"]
    assert (tuned_w - start_w).abs().max() < (tuned_w - fresh["stem.0.weight"]).abs().max()
    assert "--proposal-init" in command_line(config)
    with pytest.raises(ConfigError, match="proposal_init"):
        DerenderTrainConfig(data=str(data), stage="attribute", proposal_init=str(start))
    bad = DerenderTrainConfig(data=str(data), out=str(tmp_path / "b"), epochs=1, width=16, stage="proposal",
                              proposal_init=str(start), input_height=48, input_width=72)
    with pytest.raises(CheckpointError, match="initial proposal network"):
        train_derenderer(bad, progress=False)
    # an attribute stage run in the same folder finishes the derenderer; its command chain starts
    # with the checkpoint the proposal stage was fine-tuned from
    finish = DerenderTrainConfig(data=str(data), out=str(tmp_path / "p"), epochs=1, attribute_batch_size=64,
                                 attribute_width=8, crop_size=16, stage="attribute", input_height=48,
                                 input_width=72, width=8)
    train_derenderer(finish, progress=False)
    meta = load_derenderer(tmp_path / "p" / "derender.pt").metadata
    earlier, proposal_cmd, attribute_cmd = meta["command"].split(" && ")
    assert earlier == "nesy train derender --first"
    assert "--proposal-init" in proposal_cmd and "--stage attribute" in attribute_cmd
    assert meta["based_on"] == [str(start)]
