"""Learning to scaffold: shapes of the explanations, the student learns, the meta-gradient reaches the explainer."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from perception.derender.attributes import AttributeConfig, AttributeNet
from perception.interpret.scaffold import (
    ScaffoldConfig,
    Student,
    TeacherExplainer,
    agreement,
    explanation_loss,
    learn_explainer,
    teacher_targets,
    train_student,
)
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    teacher = AttributeNet(AttributeConfig(crop_size=16, width=8)).eval()
    crops, boxes = torch.rand(12, 4, 16, 16), torch.rand(12, 4)
    labels, block = teacher_targets(teacher, crops, boxes, 2)
    return teacher, crops, boxes, labels, block


def test_explanations_are_distributions_over_positions(data):
    _, crops, boxes, _, block = data
    explainer = TeacherExplainer(torch.zeros(block.shape[1]), torch.ones(block.shape[1]), 3, seed=0)
    with torch.no_grad():
        maps = explainer(block)
    assert explainer.phi.shape == (3, block.shape[1]) and maps.shape == (12, 3, 16)
    assert torch.allclose(maps.exp().sum(-1), torch.ones(12, 3))
    logits, student_maps = Student(16, 4, 3)(crops, boxes)
    assert student_maps.shape == maps.shape and {a: v.shape[1] for a, v in logits.items()} == {
        a: len(v) for a, v in ATTRIBUTES.items()}
    assert explanation_loss(maps, maps) == pytest.approx(0.0, abs=1e-6)
    assert explanation_loss(maps, student_maps) > 0
    with pytest.raises(ConfigError):
        explanation_loss(maps, student_maps[:, :2])


def test_student_learns_the_teacher_and_the_meta_gradient_reaches_the_explanations(data):
    _, crops, boxes, labels, block = data
    config = ScaffoldConfig(maps=2, student_width=4, inner_steps=30, inner_lr=0.01)
    torch.manual_seed(1)
    student = Student(16, 4, 2)
    before = agreement(student, dict(student.named_parameters()), crops, boxes, labels)
    params = train_student(student, crops, boxes, labels, None, config)
    assert agreement(student, params, crops, boxes, labels) > max(before, 0.9)
    maps = TeacherExplainer(block.flatten(2).mean((0, 2)), torch.ones(block.shape[1]), 2, seed=0)(block).detach()
    maps.requires_grad_(True)
    short = ScaffoldConfig(maps=2, student_width=4, inner_steps=3, inner_lr=0.01)
    trained = train_student(student, crops, boxes, labels, maps, short, differentiable=True)
    logits, _ = functional_call(student, trained, (crops, boxes))
    (grad,) = torch.autograd.grad(sum(v.logsumexp(1).sum() for v in logits.values()), maps)
    assert grad.abs().sum() > 0


def test_learn_explainer_runs_the_meta_loop(data):
    teacher, crops, boxes, _, block = data
    config = ScaffoldConfig(maps=2, student_width=4, examples=6, validation=4, inner_steps=2, outer_steps=3)
    explainer, history = learn_explainer(teacher, crops, boxes, config, seed=0)
    assert explainer.phi.shape == (2, block.shape[1]) and len(history) == 1 and history[0]["step"] == 3
    assert not torch.equal(explainer.phi, TeacherExplainer(explainer.mean, explainer.std, 2, seed=0).phi)
