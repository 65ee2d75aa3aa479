"""On a CUDA device: every learned simulator trains there, and its checkpoint rolls out alike on both.

CI has no GPU, so these skip there; run them on a GPU machine to check that training and rollout
assume no CPU (``NESY_TEST_DEVICE=cpu`` runs the same checks on the CPU).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from physics.models import TrainConfig, load_model, make_model, rollout, train
from tests.physics.test_models import chain_config, spring_chain

DEVICE = os.environ.get("NESY_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="no CUDA device: these check training and rollout on a GPU")


@pytest.mark.parametrize("name", ["in", "propnet", "dpinet", "gns"])
def test_trains_on_the_device_and_rolls_out_as_on_the_cpu(tmp_path, name):
    torch.manual_seed(0)
    model = make_model(name, chain_config(name))
    config = TrainConfig(epochs=4, seed=0, batch_size=8, max_samples=64, valid_samples=16, lr=1e-2, lr_final=3e-3,
                         device=DEVICE)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path, config,
                    meta={"seed": 0}, progress=False)
    losses = [row["valid_loss"] for row in summary["history"]]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.8 * losses[0], losses

    trained, _ = load_model(tmp_path / "model.pt")  # saved from the device, read back on the CPU
    assert next(trained.parameters()).device.type == "cpu"
    traj = spring_chain(4)
    on_cpu = rollout(trained, traj, steps=20, device="cpu")
    on_device = rollout(trained, traj, steps=20, device=DEVICE)
    assert np.isfinite(on_device).all()
    np.testing.assert_allclose(on_device, on_cpu, rtol=0, atol=1e-3)
