"""Derenderer checkpoints: digests, wrongly structured and damaged files, resume with changed flags."""

from __future__ import annotations

import shutil

import pytest
import torch

from benchmarks.cli import main
from perception.derender import DEFAULT_CHECKPOINT, load_derenderer
from perception.derender.derenderer import BLENDER_CHECKPOINT, BlenderDerenderer
from perception.derender.training import DerenderTrainConfig, train_derenderer
from perception.registry import load_perceiver
from physics.errors import CheckpointError, ConfigError
from physics.io import DIGEST_KEY, atomic_torch_save, torch_load, weights_digest
from tests.perception.test_derender_pipeline import _tiny_data
from tests.physics.test_io_checkpoints import flip_tensor_bytes

TINY = dict(epochs=1, batch_size=2, attribute_batch_size=8, input_height=32, input_width=48, width=8,
            attribute_width=8, crop_size=16, threads=1)


@pytest.mark.parametrize("shipped", [DEFAULT_CHECKPOINT, BLENDER_CHECKPOINT], ids=["pybullet", "blender"])
def test_shipped_derenderer_carries_a_digest_and_a_flipped_weight_byte_is_refused(tmp_path, shipped):
    ckpt = torch_load(shipped)
    assert ckpt[DIGEST_KEY] == weights_digest(ckpt)
    path = tmp_path / "derender.pt"
    shutil.copyfile(shipped, path)
    flip_tensor_bytes(path, max(ckpt["attribute"]["state_dict"].values(), key=lambda t: t.numel()))
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_derenderer(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_the_blender_derenderer_is_registered_with_its_own_checkpoint_and_training_record():
    model = load_perceiver("derender-blender")
    assert isinstance(model, BlenderDerenderer) and model.name == "derender-blender"
    assert "--look-augment" in model.metadata["command"] and "blender_train" in model.metadata["command"]
    assert type(load_perceiver("derender")).__name__ == "Derenderer"


@pytest.mark.parametrize("edit, message", [
    (lambda c: [1], "not a derenderer checkpoint"),
    (lambda c: {k: v for k, v in c.items() if k != "camera"}, "no 'camera' entry"),
    (lambda c: {**c, "proposal": 3}, "'proposal' entry is a int"),
    (lambda c: {**c, "attribute": {**c["attribute"], "config": "big"}}, "'config' entry is a str"),
    (lambda c: {**c, "camera": {**c["camera"], "projection": [1.0]}}, "'projection' entry is a list"),
    (lambda c: {**c, "camera": {**c["camera"], "projection": torch.zeros(2)}}, "does not fit"),
    (lambda c: {**c, "metadata": "x"}, "'metadata' entry is a str"),
])
def test_wrongly_structured_derenderer_checkpoints_raise_checkpoint_error(tmp_path, edit, message):
    path = tmp_path / "bad.pt"
    atomic_torch_save(path, edit(torch_load(DEFAULT_CHECKPOINT)))
    with pytest.raises(CheckpointError, match=message) as err:
        load_derenderer(path)
    assert str(path) in str(err.value)


def test_resume_with_changed_flags_or_a_foreign_file_is_refused(tmp_path, capsys):
    data = _tiny_data(tmp_path, n=3, seed=3)
    out = tmp_path / "run"
    cfg = DerenderTrainConfig(data=str(data), out=str(out), stage="proposal", **TINY)
    train_derenderer(cfg, progress=False)
    changed = DerenderTrainConfig(data=str(data), out=str(out), stage="proposal", **{**TINY, "lr": 0.5}, seed=7)
    with pytest.raises(ConfigError, match=r"--lr 0.002 \(now 0.5\), --seed 0 \(now 7\)"):
        train_derenderer(changed, progress=False)
    flags = ["--data", str(data), "--out", str(out), "--stage", "proposal", "--quiet", "--seed", "7"]
    for key, value in TINY.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    assert main(["train", "derender", *flags]) == 2
    err = capsys.readouterr().err
    assert "--seed 0 (now 7)" in err and len(err.strip().splitlines()) == 1
    # a finished derender.pt (or a list) where the training checkpoint should be
    shutil.copyfile(DEFAULT_CHECKPOINT, out / "proposal_train.pt")
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        train_derenderer(cfg, progress=False)
    atomic_torch_save(out / "proposal_train.pt", [1, 2])
    with pytest.raises(CheckpointError, match="holds a list"):
        train_derenderer(cfg, progress=False)


@pytest.mark.parametrize("name", ["derender", "derender-blender"])
def test_an_image_too_small_for_a_scene_is_refused_by_name_not_perceived_as_empty(name):
    """A 1 x 1 or 8 x 8 image was read as a scene of 0 objects; every derenderer refuses it, naming the file."""
    from physics.errors import DataError

    perceiver = load_perceiver(name)
    for h, w in ((1, 1), (8, 12)):
        with pytest.raises(DataError, match=rf"tiny.png is {w}x{h} pixels; a scene image needs at least 16 a side"):
            perceiver(torch.zeros(3, h, w), image_filename="tiny.png")
    assert perceiver(torch.zeros(3, 16, 24)).objects is not None  # the smallest size allowed is read
