"""Look randomisation of derenderer training: ranges, determinism, what it keeps, and its use in training."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from perception.derender.data import load_derender_folders
from perception.derender.look import LookJitter, _blur, jitter_look
from perception.derender.training import DerenderTrainConfig, train_derenderer
from physics.errors import ConfigError, DataError


def _batch(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 4, 24, 32, generator=gen)
    images[:, 3] = (images[:, 3] > 0.5).float()  # a mask channel
    return images


def test_jitter_keeps_shape_range_and_extra_channels_and_is_seeded():
    images = _batch()
    a = jitter_look(images, torch.Generator().manual_seed(1))
    b = jitter_look(images, torch.Generator().manual_seed(1))
    c = jitter_look(images, torch.Generator().manual_seed(2))
    assert a.shape == images.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a[:, 3], images[:, 3])  # the mask channel passes through
    assert (a[:, :3] - images[:, :3]).abs().mean() > 0.01  # the look did change


def test_no_jitter_is_the_identity_and_small_jitter_keeps_colours_apart():
    images = _batch()[:, :3]
    none = LookJitter(brightness=0, contrast=0, gamma=0, channel=0, blur_p=0, noise=0)
    assert torch.allclose(jitter_look(images, torch.Generator().manual_seed(0), none), images, atol=1e-5)
    # the default channel gain moves a colour's hue little: red stays red against brown/yellow
    red = torch.zeros(64, 3, 4, 4)
    red[:, 0], red[:, 1], red[:, 2] = 173 / 255, 35 / 255, 35 / 255
    out = jitter_look(red, torch.Generator().manual_seed(3), LookJitter(blur_p=0, noise=0, contrast=0))
    ratio = out[:, 1].mean((1, 2)) / out[:, 0].mean((1, 2))
    assert float(ratio.max()) < 0.35  # brown's green/red ratio is 0.57, yellow's 0.92


def test_blur_conserves_the_mean_and_a_zero_sigma_is_a_no_op():
    images = _batch()[:, :3]
    blurred = _blur(images, torch.tensor([0.0, 0.5, 1.0, 2.0]))
    assert torch.allclose(blurred[0], images[0], atol=1e-5)
    assert torch.allclose(blurred.mean((1, 2, 3)), images.mean((1, 2, 3)), atol=0.02)
    assert blurred[3].std() < images[3].std()  # smoother


def test_bad_jitter_and_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="brightness"):
        LookJitter(brightness=1.5)
    with pytest.raises(ConfigError, match="C>=3"):
        jitter_look(torch.zeros(2, 1, 4, 4), torch.Generator())


def _tiny(tmp_path, name: str, seed: int, n: int):
    out = tmp_path / name
    build_clevr(ClevrDataConfig(n=n, out=str(out), seed=seed, questions_per_scene=0, width=96, height=64,
                                min_pixels=10, backend="serial"), progress=False)
    return out


def test_training_reads_several_folders_and_trains_with_look_jitter(tmp_path):
    a, b = _tiny(tmp_path, "a", 3, 2), _tiny(tmp_path, "b", 4, 2)
    both = load_derender_folders(f"{a},{b}")
    assert [s.image_path.parent.parent for s in both] == [a, a, b, b]
    assert len(load_derender_folders(f"{a},{b}", limit=3)) == 3
    with pytest.raises(DataError, match="empty folder name"):
        load_derender_folders(f"{a},,{b}")
    cfg = DerenderTrainConfig(
        data=f"{a},{b}", out=str(tmp_path / "run"), epochs=2, batch_size=2, attribute_batch_size=8,
        input_height=32, input_width=48, width=8, attribute_width=8, crop_size=16, look_augment=True,
    )
    summary = train_derenderer(cfg, progress=False)
    assert summary["n_train_scenes"] == 4 and "--look-augment" in summary["command"]
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["proposal", "proposal", "attribute", "attribute"]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in lines)
