"""Residual adapters: identity at the start, per-domain parameters under 10%, a new domain leaves the banks alone."""

from __future__ import annotations

import pytest
import torch

from perception.training_methods.residual_adapters import (
    AdapterConfig,
    AdapterNet,
    domain_parameters,
    shared_parameters,
    train_domain,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_adapters_start_as_the_identity_and_cost_under_a_tenth_of_the_banks():
    torch.manual_seed(0)
    with_adapters = AdapterNet({"a": 4}).eval()
    plain = AdapterNet({"a": 4}, AdapterConfig(adapters=False)).eval()
    plain.load_state_dict({k: v for k, v in with_adapters.state_dict().items() if "adapters" not in k})
    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(with_adapters(x, "a"), plain(x, "a"))
    assert with_adapters(x, "a").shape == (3, 4)
    assert domain_parameters(with_adapters, "a") <= 0.10 * shared_parameters(with_adapters)
    with pytest.raises(ConfigError, match="no domain"):
        with_adapters(x, "b")


def test_training_a_new_domain_changes_only_its_modules_and_learns():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(48, 3, 16, 16, generator=g), torch.arange(48) % 3
    x[y == 1, 0] += 0.5
    x[y == 2, 1] += 0.5
    torch.manual_seed(0)
    model = AdapterNet({"base": 2}, AdapterConfig(widths=(8, 8, 16, 16)))
    model.add_domain("new", 3)
    banks = [p.clone() for p in model.banks.parameters()]
    base = [p.clone() for p in model.domains["base"].parameters()]
    train_domain(model, "new", x, y, shared=False, steps=80, batch=16, lr=1e-2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(banks, model.banks.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(base, model.domains["base"].parameters(), strict=True))
    with torch.no_grad():
        assert float((model(x, "new").argmax(1) == y).float().mean()) > 0.8
    assert any(p.abs().sum() > 0 for p in model.domains["new"].adapters.parameters())
