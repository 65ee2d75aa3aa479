"""Dynamics checkpoints: shipped files carry a digest; damaged or wrongly structured files are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from physics.errors import CheckpointError
from physics.io import DIGEST_KEY, atomic_torch_save, torch_load, weights_digest
from physics.models import load_model
from tests.physics.test_io_checkpoints import flip_tensor_bytes

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "physics" / "models" / "checkpoints").glob("*.pt"))


def test_every_shipped_dynamics_checkpoint_carries_a_matching_digest():
    # cradle, rope, boxes: in, propnet, dpinet; fluidfall, boxbath, fluidshake, ricegrip: in, dpinet, gns;
    # boxes_propnet_control (DAgger round 2), boxes_propnet_control_r3 (round 3), boxes_propnet_control_r4
    # (round 4) and boxes_corners_propnet (control)
    assert len(SHIPPED) == 25
    for path in SHIPPED:
        ckpt = torch_load(path)
        assert ckpt[DIGEST_KEY] == weights_digest(ckpt), path.name


def test_a_shipped_checkpoint_with_a_flipped_weight_byte_is_refused(tmp_path):
    src = SHIPPED[0]
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    biggest = max(torch_load(src)["state_dict"].values(), key=lambda t: t.numel())
    flip_tensor_bytes(dst, biggest)
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_model(dst)
    assert str(dst) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("edit, message", [
    (lambda c: [1, 2], "holds a list"),
    (lambda c: {k: v for k, v in c.items() if k != "config"}, "no 'config' entry"),
    (lambda c: {**c, "config": "big"}, "'config' entry is a str"),
    (lambda c: {**c, "model": 3}, "'model' entry is a int"),
    (lambda c: {**c, "state_dict": [1]}, "'state_dict' entry is a list"),
    (lambda c: {**c, "meta": "x"}, "'meta' entry is a str"),
    (lambda c: {**c, "config": {**c["config"], "hidden": "wide"}}, "do not fit the stored config"),
    (lambda c: {**c, "config": {**c["config"], "graph": 5}}, "do not fit the stored config"),
])
def test_wrongly_structured_dynamics_checkpoints_raise_checkpoint_error(tmp_path, edit, message):
    path = tmp_path / "bad.pt"
    atomic_torch_save(path, edit(torch_load(SHIPPED[0])))
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value)

