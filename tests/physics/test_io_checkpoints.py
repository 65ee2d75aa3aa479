"""Checkpoint files: the weights digest refuses flipped bytes; wrong structures raise CheckpointError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from physics.errors import CheckpointError
from physics.io import (
    DIGEST_KEY,
    atomic_torch_save,
    nonfinite_tensor,
    require_fields,
    torch_load,
    weights_digest,
)


def flip_tensor_bytes(path: Path, tensor: torch.Tensor) -> None:
    """Flip one byte in the middle of ``tensor``'s data inside the checkpoint file at ``path``."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0, "the tensor's bytes must occur once in the file"
    data[at + len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_saved_dicts_carry_a_digest_of_their_tensors(tmp_path):
    obj = {"model": {"w": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}, "meta": {"seed": 1}}
    atomic_torch_save(tmp_path / "c.pt", obj)
    loaded = torch_load(tmp_path / "c.pt")
    assert loaded[DIGEST_KEY] == weights_digest(obj) == weights_digest(loaded)
    other = {"model": {"w": torch.arange(6.0).view(3, 2), "b": torch.ones(2)}, "meta": {"seed": 1}}
    assert weights_digest(other) != weights_digest(obj)  # the shape counts, not only the bytes
    renamed = {"model": {"v": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}, "meta": {"seed": 1}}
    assert weights_digest(renamed) != weights_digest(obj)  # and the names


def test_flipped_bytes_inside_a_tensor_are_refused_in_one_line(tmp_path):
    w = torch.linspace(0.1, 1.0, 64)
    atomic_torch_save(tmp_path / "c.pt", {"model": {"w": w}})
    flip_tensor_bytes(tmp_path / "c.pt", w)
    with pytest.raises(CheckpointError, match="damaged") as err:
        torch_load(tmp_path / "c.pt", "test checkpoint")
    assert str(tmp_path / "c.pt") in str(err.value) and "\n" not in str(err.value)
    assert not torch.equal(torch_load(tmp_path / "c.pt", verify=False)["model"]["w"], w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_or_infinite_weight_is_refused_in_one_line_naming_where_even_with_a_matching_digest(tmp_path, bad):
    """A diverged run's file carries a digest of its NaN weights: it loaded, and every answer was silently wrong."""
    w = torch.linspace(0.1, 1.0, 8)
    w[3] = bad
    atomic_torch_save(tmp_path / "c.pt", {"model": {"fc.weight": w, "steps": torch.tensor(3)}, "history": [{"x": 1.0}]})
    with pytest.raises(CheckpointError, match=r"c.pt holds NaN or infinite values in 'model' / 'fc.weight' ") as err:
        torch_load(tmp_path / "c.pt", "test checkpoint")
    assert "\n" not in str(err.value) and str(err.value).startswith("test checkpoint ")
    assert torch.equal(torch_load(tmp_path / "c.pt", verify=False)["model"]["fc.weight"][:3], w[:3])  # repair path
    torch.save({"opt": [{"state": torch.tensor([1.0, bad])}]}, tmp_path / "old.pt")  # no digest: checked too
    with pytest.raises(CheckpointError, match=r"in 'opt' / 0 / 'state'"):
        torch_load(tmp_path / "old.pt")
    assert nonfinite_tensor({"a": torch.ones(2), "b": (torch.arange(3),)}) is None


def test_a_file_without_digest_loads_unchecked(tmp_path):
    torch.save({"model": {"w": torch.ones(3)}}, tmp_path / "old.pt")  # written before digests existed
    assert torch.equal(torch_load(tmp_path / "old.pt")["model"]["w"], torch.ones(3))


@pytest.mark.parametrize("obj, message", [
    ([1, 2], "holds a list, not a dict"),
    ({"config": {}}, "has no 'model' entry"),
    ({"model": 3, "config": {}}, "'model' entry is a int, expected a dict"),
    ({"model": {}, "config": "big"}, "'config' entry is a str, expected a dict"),
])
def test_require_fields_names_the_file_and_the_wrong_entry(obj, message):
    with pytest.raises(CheckpointError, match=message) as err:
        require_fields(obj, "x/c.pt", "test checkpoint", {"model": dict, "config": dict})
    assert "x/c.pt" in str(err.value)


def test_a_folder_where_a_file_is_read_is_named_as_a_folder_not_as_missing(tmp_path):
    # a folder given as a checkpoint, a JSON file or an image was reported "not found" (or with
    # "[Errno 21] Is a directory" and the path twice)
    from perception.image_io import load_image, verify_image
    from physics.errors import DataError
    from physics.io import read_json

    (tmp_path / "x.pt").mkdir()
    with pytest.raises(CheckpointError, match=r"^derenderer checkpoint \S+x\.pt is a folder, not a file$"):
        torch_load(tmp_path / "x.pt", "derenderer checkpoint")
    with pytest.raises(DataError, match=r"^CLEVR scenes file \S+x\.pt is a folder, not a file$"):
        read_json(tmp_path / "x.pt", "CLEVR scenes file")
    for read in (load_image, verify_image):
        with pytest.raises(DataError, match=r"^image file \S+x\.pt is a folder, not a file$"):
            read(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"^checkpoint not found: \S+none\.pt$"):  # a missing one as before
        torch_load(tmp_path / "none.pt")
