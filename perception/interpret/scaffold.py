"""Learning to scaffold: explanations optimised so that a student learns to simulate the teacher.

Fernandes et al. ("Learning to Scaffold: Optimizing Model Explanations for
Teaching", NeurIPS 2022, arXiv 2204.10810) judge an explanation by what it
teaches: a student trained on a few of the teacher's predictions, with the
teacher's explanations as an extra target for the student's own explainer,
should agree with the teacher more often on new inputs.  Their SMaT framework
makes that the training objective of a parameterised teacher explainer: an
inner loop trains the student (simulation loss plus explanation loss), an
outer loop moves the explainer's parameters down the student's simulation loss
on held-out inputs, differentiating through the unrolled inner loop.

Here the teacher is the attribute network and an explanation is a saliency map
over the input: for each attribute, the gradient of the teacher's logit of its
predicted value with respect to the crop's four channels (RGB and the object
mask), weighted per channel by the learnt explainer parameters
``phi = exp(theta)`` (``theta`` starts at 0: the plain input gradient, which is
the *static* explainer).  The student is a smaller CNN; its own explainer is
the same kind of map of its own network (its input gradient for the teacher's
predicted value), so the explanation loss ``1 - cos(student map, teacher
map)`` per crop and attribute teaches the student how the teacher's decision
changes with the pixels (Jacobian matching, Srinivas and Fleuret, ICML 2018,
as the student's explanation regulariser).  The student simulates all four
attribute heads (cross-entropy to the teacher's predicted values).

Shapes (K crops, crop side S, A = 4 attributes, C = 4 input channels)::

    crops          float [K, C, S, S];  boxes float [K, 4]
    teacher grads  float [K, A, C, S, S]  -> explanations float [K, A, C, S, S] (grads * phi per channel)
    student grads  float [K, A, C, S, S]  (its input gradients, differentiable in its weights)
    theta          float [A, C]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from perception.benchmark import BenchOutcome, Check, register_perception_bench, train_steps
from perception.derender.attributes import AttributeNet
from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = [
    "ScaffoldConfig",
    "Student",
    "TeacherExplainer",
    "input_gradients",
    "teacher_targets",
    "explanation_loss",
    "train_student",
    "agreement",
    "learn_explainer",
]


ADAM_BETAS = (0.9, 0.999)  # the student's optimiser, PyTorch's defaults
CHANNELS = 4  # RGB and the object's mask, the attribute network's input


@dataclass(frozen=True)
class ScaffoldConfig:
    """The students, their few examples and the explainer's meta-training.

    Attributes:
        student_width: Channels of the student's first block.
        examples: Teacher-labelled crops each student learns from.
        inner_steps, inner_lr: The student's training (full-batch Adam, unrolled).
        beta: Weight of the explanation loss.
        outer_steps, outer_lr: The explainer's meta-training (Adam, the shared loop).
        validation: Crops the student's simulation loss is measured on in each meta step.
    """

    student_width: int = 8
    examples: int = 48
    inner_steps: int = 40
    inner_lr: float = 0.01
    beta: float = 5.0
    outer_steps: int = 20
    outer_lr: float = 0.05
    validation: int = 128

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.examples < 1 or self.inner_steps < 1 or self.beta < 0 or self.validation < 1:
            raise ConfigError(f"ScaffoldConfig: examples, inner_steps and validation must be >= 1, beta >= 0; "
                              f"got {self}")


class Student(nn.Module):
    """A small CNN on crop + mask with four attribute heads.

    ``forward(crops [K, 4, S, S], boxes [K, 4]) -> {attr: logits [K, n]}``.
    """

    def __init__(self, crop_size: int, width: int) -> None:
        super().__init__()
        if crop_size % 8:
            raise ConfigError(f"Student needs a crop side divisible by 8, got {crop_size}")
        self.conv1 = nn.Conv2d(CHANNELS, width, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width * (crop_size // 8) ** 2 + 4, 64)
        self.heads = nn.ModuleDict({a: nn.Linear(64, len(v)) for a, v in ATTRIBUTES.items()})

    def forward(self, crops: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        h = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(crops))))))
        z = F.relu(self.fc(torch.cat([h.flatten(1), boxes * 4.0], 1)))
        return {a: head(z) for a, head in self.heads.items()}


class TeacherExplainer(nn.Module):
    """``phi = exp(theta)``: per attribute, a weight of each input channel of the teacher's input gradient.

    ``forward(grads [K, A, C, S, S]) -> explanations [K, A, C, S, S]``; ``theta`` starts at 0 (plain gradients).
    """

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(len(ATTRIBUTES), CHANNELS))

    def forward(self, grads: Tensor) -> Tensor:
        if grads.dim() != 5 or tuple(grads.shape[1:3]) != tuple(self.theta.shape):
            raise ConfigError(f"TeacherExplainer: gradients must be [K, {len(ATTRIBUTES)}, {CHANNELS}, S, S], "
                              f"got {tuple(grads.shape)}")
        return grads * self.theta.exp()[None, :, :, None, None]


def input_gradients(model: Callable[[Tensor, Tensor], Mapping[str, Tensor]], crops: Tensor, boxes: Tensor,
                    labels: Mapping[str, Tensor] | None = None, create_graph: bool = False,
                    ) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Each attribute's logit of ``labels`` (None: of the model's own prediction), differentiated by the input.

    Returns:
        (logits {attr: [K, n]}, the labels used {attr: int64 [K]}, gradients float [K, A, C, S, S]).
        With ``create_graph`` the gradients stay differentiable in the model's weights.
    """
    x = crops.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x, boxes)
        if labels is None:
            labels = {a: v.argmax(1).detach() for a, v in logits.items()}
        grads = [torch.autograd.grad(logits[a].gather(1, labels[a][:, None]).sum(), x, create_graph=create_graph,
                                     retain_graph=True)[0] for a in ATTRIBUTES]
    return logits, dict(labels), torch.stack(grads, 1)


def teacher_targets(teacher: AttributeNet, crops: Tensor, boxes: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """The teacher's predicted values {attr: int64 [K]} and its input gradients for them [K, A, C, S, S]."""
    _, labels, grads = input_gradients(lambda x, b: teacher(x, b)[0], crops, boxes)
    return labels, grads.detach()


def explanation_loss(teacher_maps: Tensor, student_maps: Tensor) -> Tensor:
    """Mean over crops and attributes of ``1 - cos`` of the two maps; both float [K, A, C, S, S]."""
    if teacher_maps.shape != student_maps.shape:
        raise ConfigError(f"teacher maps {tuple(teacher_maps.shape)} and student maps {tuple(student_maps.shape)} differ")
    return (1.0 - F.cosine_similarity(student_maps.flatten(2), teacher_maps.flatten(2), dim=2, eps=1e-12)).mean()


def _simulation_loss(logits: Mapping[str, Tensor], labels: Mapping[str, Tensor]) -> Tensor:
    return sum(F.cross_entropy(logits[a], labels[a]) for a in ATTRIBUTES)


def train_student(
    student: Student,
    crops: Tensor,
    boxes: Tensor,
    labels: Mapping[str, Tensor],
    teacher_maps: Tensor | None,
    config: ScaffoldConfig,
    differentiable: bool = False,
) -> dict[str, Tensor]:
    """Unrolled full-batch Adam on the few examples (written out, so it can be differentiated); the trained parameters.

    Args:
        student: Its parameters are the starting point (left unchanged).
        crops, boxes, labels: The examples and the teacher's predicted values.
        teacher_maps: float [K, A, C, S, S] the teacher's explanations of the examples (None: no explanation loss).
        differentiable: Keep the graph, so the result can be differentiated with respect to ``teacher_maps``.
    """
    params = {n: p.detach().clone().requires_grad_(True) for n, p in student.named_parameters()}
    first = {n: torch.zeros_like(p) for n, p in params.items()}
    second = {n: torch.zeros_like(p) for n, p in params.items()}
    b1, b2 = ADAM_BETAS
    for t in range(1, config.inner_steps + 1):
        if teacher_maps is None:
            loss = _simulation_loss(functional_call(student, params, (crops, boxes)), labels)
        else:
            logits, _, maps = input_gradients(lambda x, b, p=params: functional_call(student, p, (x, b)), crops, boxes,
                                              labels, create_graph=True)
            loss = _simulation_loss(logits, labels) + config.beta * explanation_loss(teacher_maps, maps)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=differentiable)
        first = {n: b1 * first[n] + (1 - b1) * g for n, g in zip(params, grads, strict=True)}
        second = {n: b2 * second[n] + (1 - b2) * g * g for n, g in zip(params, grads, strict=True)}
        step = config.inner_lr * (1 - b2**t) ** 0.5 / (1 - b1**t)
        # sqrt(v + eps^2) rather than sqrt(v) + eps: differentiable where v = 0
        params = {n: p - step * first[n] / (second[n] + 1e-16).sqrt() for n, p in params.items()}
        if not differentiable:
            params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
            first = {n: v.detach() for n, v in first.items()}
            second = {n: v.detach() for n, v in second.items()}
    return {n: p.detach() for n, p in params.items()} if not differentiable else params


def agreement(student: Student, params: Mapping[str, Tensor], crops: Tensor, boxes: Tensor,
              labels: Mapping[str, Tensor]) -> dict[str, float]:
    """Per attribute, the fraction of crops on which the student predicts the teacher's value."""
    with torch.no_grad():
        logits = functional_call(student, dict(params), (crops, boxes))
    return {a: float((logits[a].argmax(1) == labels[a]).float().mean()) for a in ATTRIBUTES}


def learn_explainer(
    teacher: AttributeNet, crops: Tensor, boxes: Tensor, config: ScaffoldConfig, seed: int
) -> tuple[TeacherExplainer, list]:
    """Meta-train the teacher explainer on ``crops`` (SMaT's outer loop, with the shared training loop).

    Each step draws ``config.examples`` crops for a fresh student (its initial
    weights drawn from the step's seed) and ``config.validation`` other crops;
    the student is trained for ``inner_steps`` with the explainer's maps, and
    the explainer moves down the student's simulation loss on the validation
    crops, through the unrolled training.

    Returns:
        The explainer and the loop's history (``loss``: the validation simulation loss).
    """
    if config.examples + config.validation > len(crops):
        raise ConfigError(f"learn_explainer: {config.examples} examples + {config.validation} validation crops "
                          f"need more than the {len(crops)} crops given")
    labels, grads = teacher_targets(teacher, crops, boxes)
    explainer = TeacherExplainer()
    calls = [0]

    def step(_: Tensor) -> dict[str, Tensor]:  # the loop's draws are with replacement; a task needs distinct crops
        calls[0] += 1
        g = torch.Generator().manual_seed(seed * 100_003 + calls[0])
        perm = torch.randperm(len(crops), generator=g)
        idx, val = perm[: config.examples], perm[config.examples : config.examples + config.validation]
        with torch.random.fork_rng():
            torch.manual_seed(seed * 100_003 + calls[0])
            student = Student(crops.shape[-1], config.student_width)
        sub = {a: v[idx] for a, v in labels.items()}
        params = train_student(student, crops[idx], boxes[idx], sub, explainer(grads[idx]), config, differentiable=True)
        logits = functional_call(student, params, (crops[val], boxes[val]))
        return {"loss": _simulation_loss(logits, {a: v[val] for a, v in labels.items()})}

    history = train_steps(explainer, step, items=len(crops), steps=config.outer_steps, batch=1,
                          lr=config.outer_lr, seed=seed, desc="scaffold explainer", per_round=10)
    return explainer, history


# ---------------------------------------------------------------------- benchmark
STUDENT_SEEDS = 5  # students per arm
GAIN = 0.03  # the check: agreement with explanations - without, in fraction (3 points)


@register_perception_bench(
    "scaffold",
    paper="Fernandes et al., Learning to Scaffold, NeurIPS 2022 (arXiv 2204.10810)",
    check="student-teacher agreement with learnt explanations >= students without + 3 points (mean of 5 seeds)",
    ablation="the same students trained without explanations",
)
def bench_scaffold(quick: bool, seed: int) -> BenchOutcome:
    """Meta-train the explainer on probe crops; train students on few probe crops; agreement on test crops."""
    from perception.interpret.subject import bench_subject

    subject = bench_subject(quick, seed)
    config = (ScaffoldConfig(examples=6, inner_steps=3, outer_steps=2, validation=4) if quick else ScaffoldConfig())
    teacher, probe, test = subject.net, subject.probe, subject.test
    explainer, history = learn_explainer(teacher, probe.crops, probe.boxes, config, seed)
    static = TeacherExplainer()  # theta = 0: the teacher's plain input gradients
    probe_labels, probe_grads = teacher_targets(teacher, probe.crops, probe.boxes)
    test_labels, _ = teacher_targets(teacher, test.crops, test.boxes)
    arms: dict[str, list[float]] = {"learnt explanations": [], "no explanations": [], "static explanations": []}
    per_attribute: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for s in range(STUDENT_SEEDS):
        g = torch.Generator().manual_seed(10_000 + 97 * seed + s)  # student seeds apart from the meta-training's
        idx = torch.randperm(len(probe), generator=g)[: config.examples]
        with torch.random.fork_rng():
            torch.manual_seed(10_000 + 97 * seed + s)
            student = Student(probe.crops.shape[-1], config.student_width)
        sub = {a: v[idx] for a, v in probe_labels.items()}
        with torch.no_grad():
            maps = {"learnt explanations": explainer(probe_grads[idx]), "no explanations": None,
                    "static explanations": static(probe_grads[idx])}
        for arm, m in maps.items():
            params = train_student(student, probe.crops[idx], probe.boxes[idx], sub, m, config)
            agree = agreement(student, params, test.crops, test.boxes, test_labels)
            per_attribute[arm].append(agree)
            arms[arm].append(sum(agree.values()) / len(agree))
    mean = {arm: sum(v) / len(v) for arm, v in arms.items()}
    gain = mean["learnt explanations"] - mean["no explanations"]
    checks = (
        Check("student-teacher agreement", f"fraction of held-out (crop, attribute) pairs, mean of {STUDENT_SEEDS} "
              f"students of {config.examples} examples (gain {gain:+.3f}; static explainer "
              f"{mean['static explanations']:.3f})", mean["learnt explanations"], mean["no explanations"],
              f">= ablation + {GAIN}", gain >= GAIN),
    )
    figures = {
        "agreement_per_student": arms, "agreement_mean": mean, "agreement_per_attribute": per_attribute,
        "channel_weights": {a: [round(float(w), 4) for w in row]
                            for a, row in zip(ATTRIBUTES, explainer.theta.detach().exp(), strict=True)},
        "meta_loss_first_last": [history[0]["loss"], history[-1]["loss"]] if history else None,
        "config": repr(config), "teacher_accuracy": subject.accuracy, "probe_crops": len(probe),
        "test_crops": len(test), "subject": repr(subject.config),
    }
    return BenchOutcome(checks, figures)
