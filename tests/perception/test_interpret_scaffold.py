"""Learning to scaffold: input-gradient explanations, the student learns them, the meta-gradient reaches the explainer."""

from __future__ import annotations

import dataclasses

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
    input_gradients,
    learn_explainer,
    teacher_targets,
    train_student,
)
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

A = len(ATTRIBUTES)


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    teacher = AttributeNet(AttributeConfig(crop_size=16, width=8)).eval()
    crops, boxes = torch.rand(12, 4, 16, 16), torch.rand(12, 4)
    labels, grads = teacher_targets(teacher, crops, boxes)
    return teacher, crops, boxes, labels, grads


def test_teacher_gradients_match_finite_differences(data):
    teacher, crops, boxes, labels, grads = data
    assert grads.shape == (12, A, 4, 16, 16) and set(labels) == set(ATTRIBUTES)
    k, a, pixel = 3, list(ATTRIBUTES).index("color"), (0, 7, 9)
    bump = torch.zeros_like(crops)
    bump[(k, *pixel)] = 1e-2
    with torch.no_grad():
        def logit(x):
            return teacher(x.double(), boxes.double())[0]["color"][k, labels["color"][k]]
        teacher.double()
        numeric = (logit(crops + bump) - logit(crops - bump)) / 2e-2
        teacher.float()
    assert float(numeric) == pytest.approx(float(grads[(k, a, *pixel)]), rel=1e-3, abs=1e-5)


def test_explainer_starts_at_the_plain_gradients_and_weights_channels(data):
    *_, grads = data
    explainer = TeacherExplainer()
    assert explainer.theta.shape == (A, 4)
    assert torch.equal(explainer(grads), grads)
    with torch.no_grad():
        explainer.theta[:, 3] = -torch.inf  # no weight on the mask channel
    maps = explainer(grads)
    assert maps.shape == grads.shape and (maps[:, :, 3] == 0).all()
    with pytest.raises(ConfigError, match="TeacherExplainer"):
        explainer(grads[:, :2])


def test_explanation_loss_is_one_minus_cosine(data):
    *_, grads = data
    assert explanation_loss(grads, grads) == pytest.approx(0.0, abs=1e-6)
    assert explanation_loss(grads, 3.0 * grads) == pytest.approx(0.0, abs=1e-6)  # the scale is free
    assert explanation_loss(grads, -grads) == pytest.approx(2.0, abs=1e-6)
    with pytest.raises(ConfigError):
        explanation_loss(grads, grads[:, :2])


def test_student_learns_the_teacher_and_its_explanations(data):
    _, crops, boxes, labels, grads = data
    config = ScaffoldConfig(student_width=4, inner_steps=30, inner_lr=0.01)
    torch.manual_seed(1)
    student = Student(16, 4)
    start = dict(student.named_parameters())
    before = agreement(student, start, crops, boxes, labels)
    params = train_student(student, crops, boxes, labels, None, config)
    assert sum(agreement(student, params, crops, boxes, labels).values()) / A > max(sum(before.values()) / A, 0.9)
    explained = train_student(student, crops, boxes, labels, grads, config)

    def fit(p):
        _, _, g = input_gradients(lambda x, b: functional_call(student, p, (x, b)), crops, boxes, labels)
        return float(explanation_loss(grads, g))

    assert fit(explained) < fit(params) - 0.05  # the explanation loss moved the student's own gradients
    assert fit(explained) < fit({n: p.detach() for n, p in start.items()})


def test_meta_gradient_reaches_the_explainer(data):
    _, crops, boxes, labels, grads = data
    torch.manual_seed(1)
    student, explainer = Student(16, 4), TeacherExplainer()
    short = ScaffoldConfig(student_width=4, inner_steps=3, inner_lr=0.01)
    trained = train_student(student, crops, boxes, labels, explainer(grads), short, differentiable=True)
    logits = functional_call(student, trained, (crops, boxes))
    (grad,) = torch.autograd.grad(sum(v.logsumexp(1).sum() for v in logits.values()), explainer.theta)
    assert grad.shape == (A, 4) and grad.abs().sum() > 0 and grad.isfinite().all()


def test_learn_explainer_runs_the_meta_loop(data):
    teacher, crops, boxes, _, _ = data
    config = ScaffoldConfig(student_width=4, examples=6, validation=4, inner_steps=2, outer_steps=3)
    explainer, history = learn_explainer(teacher, crops, boxes, config, seed=0)
    assert len(history) == 1 and history[0]["step"] == 3
    assert not torch.equal(explainer.theta, torch.zeros(A, 4))
    with pytest.raises(ConfigError, match="need more"):
        learn_explainer(teacher, crops, boxes, dataclasses.replace(config, validation=10), seed=0)
