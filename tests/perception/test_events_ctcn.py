"""C-TCN: concept-wise layers keep concepts apart, segments and F1 are read right, both TCNs train, seeded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.events.ctcn import TCN, TCNConfig, concept_sequences, segment_f1, segments
from perception.model_stats import count_parameters
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sequences_and_logits_have_the_documented_shapes():
    scores, labels = concept_sequences(3, seed=0, frames=40, concepts=8)
    assert scores.shape == (3, 8, 40) and labels.shape == (3, 40) and int(labels.max()) <= 6
    again, _ = concept_sequences(3, seed=0, frames=40, concepts=8)
    assert torch.equal(scores, again)
    for kind in ("ctcn", "plain"):
        assert TCN(TCNConfig(kind, depth=2, concepts=8)).eval()(scores).shape == (3, 7, 40)
    with pytest.raises(StateError):
        TCN(TCNConfig(concepts=8))(torch.zeros(1, 9, 10))
    with pytest.raises(ConfigError):
        TCNConfig(kind="lstm")


def test_concept_wise_layers_do_not_mix_concepts_before_the_head():
    torch.manual_seed(0)
    net = TCN(TCNConfig("ctcn", depth=3, concepts=8, width=4)).eval()
    x = torch.randn(1, 8, 20)
    y = x.clone()
    y[:, 3] += 1.0  # change one concept
    with torch.no_grad():
        a, b = net.body(x.unsqueeze(1)), net.body(y.unsqueeze(1))  # [1, m, C, T]
    changed = (a - b).abs().amax((0, 1, 3)) > 0
    assert changed.tolist() == [k == 3 for k in range(8)]
    plain = TCN(TCNConfig("plain", depth=8, concepts=48, width=64))
    assert count_parameters(TCN(TCNConfig("ctcn", depth=8))) < count_parameters(plain) / 10


def test_segments_and_f1():
    truth = torch.tensor([[0, 1, 1, 1, 0, 2, 2, 0]])
    assert segments(truth[0]) == [(1, 1, 4), (2, 5, 7)]
    assert segment_f1(truth, truth) == 1.0
    shifted = torch.tensor([[0, 0, 1, 1, 0, 3, 3, 0]])  # first: IoU 2/3 kept; second: wrong class
    assert segment_f1(shifted, truth) == pytest.approx(0.5)


def _train(kind: str, seed: int) -> tuple[list[float], dict]:
    scores, labels = concept_sequences(8, seed=1, frames=32, concepts=8)
    torch.manual_seed(seed)
    model = TCN(TCNConfig(kind, depth=2, concepts=8, width=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(model(scores), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


def test_both_tcns_loss_falls_and_is_deterministic_for_a_seed():
    for kind in ("ctcn", "plain"):
        losses, w = _train(kind, 0)
        again, w2 = _train(kind, 0)
        assert losses[-1] < losses[0], kind
        assert losses == again and all(torch.equal(w[k], w2[k]) for k in w)


def test_residual_layers_add_their_input_back():
    torch.manual_seed(0)
    for kind in ("ctcn", "plain"):
        net = TCN(TCNConfig(kind, depth=3, concepts=8, width=4, residual=True)).eval()
        first, later = net.body[0], net.body[1]
        assert not first.residual and later.residual  # the first layer changes the width, so it cannot add
        x = torch.randn(2, 4, 8, 12) if kind == "ctcn" else torch.randn(2, 4, 12)
        with torch.no_grad():
            assert torch.allclose(later(x), F.relu(x + later.norm(later.conv(x))))
        assert net(torch.randn(2, 8, 12)).shape == (2, 7, 12)


def test_grouped_concepts_excite_every_concept_of_a_role_and_the_mlp_head_keeps_shapes():
    scores, labels = concept_sequences(4, seed=3, frames=60, concepts=30, group=4, noise=0.0)
    assert scores.shape == (4, 30, 60)
    for row, truth in zip(scores, labels, strict=True):
        for cls, start, end in segments(truth):
            kind, reverse = (cls - 1) % 3, cls - 1 >= 3
            first, second = (2 * kind + 1, 2 * kind) if reverse else (2 * kind, 2 * kind + 1)
            half = (end - start) // 2
            assert bool((row[first * 4 : first * 4 + 4, start : start + half] >= 0.3).all())
            assert bool((row[second * 4 : second * 4 + 4, start + half : end] >= 0.3).all())
    with pytest.raises(ConfigError, match="group"):
        concept_sequences(1, seed=0, concepts=20, group=4)
    for kind in ("ctcn", "plain"):
        net = TCN(TCNConfig(kind, depth=2, concepts=30, width=4, classes=3, head_hidden=5)).eval()
        assert net(scores).shape == (4, 3, 60)


def test_more_event_kinds_label_every_kind_in_both_orders_with_its_own_concepts():
    scores, labels = concept_sequences(40, seed=5, frames=96, concepts=48, kinds=12, noise=0.0)
    assert scores.shape == (40, 48, 96) and int(labels.max()) <= 24
    seen = set()
    for row, truth in zip(scores, labels, strict=True):
        for cls, start, end in segments(truth):
            seen.add(cls)
            kind, reverse = (cls - 1) % 12, cls - 1 >= 12
            first, second = (2 * kind + 1, 2 * kind) if reverse else (2 * kind, 2 * kind + 1)
            half = (end - start) // 2
            assert bool((row[first, start : start + half] >= 1.0).all())
            assert bool((row[second, start + half : end] >= 1.0).all())
    assert len(seen) == 24
    with pytest.raises(ConfigError, match="kinds"):
        concept_sequences(1, seed=0, concepts=20, kinds=12)
    with pytest.raises(ConfigError, match="kinds"):
        concept_sequences(1, seed=0, kinds=0)


def test_quick_bench_compares_means_over_the_same_three_training_seeds():
    from perception.events.ctcn import bench_ctcn

    out = bench_ctcn(quick=True, seed=7)
    per_seed = out.figures["f1_per_training_seed"]
    assert out.figures["training_seeds"] == [7, 8, 9] and out.figures["event_classes"] == 24
    assert all(len(v) == 3 for v in per_seed.values())
    (check,) = out.checks
    assert check.ours == pytest.approx(sum(per_seed["ctcn8"]) / 3)
    assert check.ablation == pytest.approx(sum(per_seed["plain8"]) / 3)
    assert check.passed == (check.ours >= check.ablation + 0.05)
