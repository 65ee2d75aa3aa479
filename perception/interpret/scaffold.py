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

Here the teacher is the attribute network.  Its explainer makes ``M`` spatial
saliency maps from one conv block: map m is the softmax over positions of a
learnt combination ``phi_m`` of the block's standardised channels (the
attention-head weighting of the paper, on a CNN).  The student is a smaller
CNN with the same kind of explainer on its own middle block (``psi``, learnt
with the student); the explanation loss is ``KL(teacher map || student map)``
averaged over maps and crops.  The student simulates all four attribute heads
(cross-entropy to the teacher's predicted values).

Shapes (K crops, crop side S, M maps, P = positions of the explained blocks)::

    crops         float [K, 4, S, S];  boxes float [K, 4]
    teacher block float [K, C_T, S/4, S/4]  ->  teacher maps float [K, M, P] (log-probabilities)
    student block float [K, C_S, S/4, S/4]  ->  student maps float [K, M, P] (log-probabilities)
    phi           float [M, C_T];  psi float [M, C_S]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from perception.benchmark import BenchOutcome, Check, register_perception_bench, train_steps
from perception.derender.attributes import AttributeNet
from physics.errors import ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = [
    "ScaffoldConfig",
    "Student",
    "TeacherExplainer",
    "teacher_targets",
    "explanation_loss",
    "train_student",
    "agreement",
    "learn_explainer",
]


ADAM_BETAS = (0.9, 0.999)  # the student's optimiser, PyTorch's defaults


@dataclass(frozen=True)
class ScaffoldConfig:
    """The students, their few examples and the explainer's meta-training.

    Attributes:
        maps: M, saliency maps per explanation.
        layer: Block of the teacher's ``features`` that is explained (its output is S/4 wide for layer 2).
        student_width: Channels of the student's first block.
        examples: Teacher-labelled crops each student learns from.
        inner_steps, inner_lr: The student's training (full-batch Adam, unrolled).
        beta: Weight of the explanation loss.
        outer_steps, outer_lr: The explainer's meta-training (Adam, the shared loop).
        validation: Crops the student's simulation loss is measured on in each meta step.
    """

    maps: int = 4
    layer: int = 2
    student_width: int = 8
    examples: int = 48
    inner_steps: int = 40
    inner_lr: float = 0.01
    beta: float = 1.0
    outer_steps: int = 60
    outer_lr: float = 0.01
    validation: int = 128


class Student(nn.Module):
    """A small CNN on crop + mask with four attribute heads and its own explainer ``psi``.

    ``forward(crops [K, 4, S, S], boxes [K, 4]) -> (logits {attr: [K, n]}, maps float [K, M, P])``,
    maps being log-probabilities over the positions of the second block (S/4 x S/4).
    """

    def __init__(self, crop_size: int, width: int, maps: int) -> None:
        super().__init__()
        if crop_size % 8:
            raise ConfigError(f"Student needs a crop side divisible by 8, got {crop_size}")
        self.conv1 = nn.Conv2d(4, width, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width * (crop_size // 8) ** 2 + 4, 64)
        self.heads = nn.ModuleDict({a: nn.Linear(64, len(v)) for a, v in ATTRIBUTES.items()})
        self.psi = nn.Parameter(torch.zeros(maps, 2 * width))

    def forward(self, crops: Tensor, boxes: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        h = F.relu(self.conv2(F.relu(self.conv1(crops))))
        maps = torch.einsum("kchw,mc->kmhw", h, self.psi).flatten(2).log_softmax(-1)
        z = F.relu(self.fc(torch.cat([F.relu(self.conv3(h)).flatten(1), boxes * 4.0], 1)))
        return {a: head(z) for a, head in self.heads.items()}, maps


class TeacherExplainer(nn.Module):
    """``phi``: M combinations of the teacher block's standardised channels, softmax over positions.

    Args:
        mean, std: float [C_T] statistics of the block's channels (fixed).
        maps: M.
        seed: Seeds the initial ``phi`` (N(0, 1 / C_T)).
    """

    def __init__(self, mean: Tensor, std: Tensor, maps: int, seed: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clamp(min=1e-6).clone())
        g = torch.Generator().manual_seed(seed)
        self.phi = nn.Parameter(torch.randn(maps, len(mean), generator=g) / len(mean) ** 0.5)

    def forward(self, block: Tensor) -> Tensor:
        """float [K, M, P] log-probabilities from the teacher block [K, C_T, h, w]."""
        z = (block - self.mean[:, None, None]) / self.std[:, None, None]
        return torch.einsum("kchw,mc->kmhw", z, self.phi).flatten(2).log_softmax(-1)


def teacher_targets(teacher: AttributeNet, crops: Tensor, boxes: Tensor, layer: int) -> tuple[dict[str, Tensor], Tensor]:
    """The teacher's predicted values {attr: int64 [K]} and its block ``layer`` output [K, C_T, h, w]."""
    from perception.interpret.subject import block_output

    with torch.no_grad():
        logits, _ = teacher(crops, boxes)
        block = block_output(teacher, crops, layer)
    return {a: v.argmax(1) for a, v in logits.items()}, block


def explanation_loss(teacher_maps: Tensor, student_maps: Tensor) -> Tensor:
    """Mean over crops and maps of KL(teacher || student); both float [K, M, P] log-probabilities."""
    if teacher_maps.shape != student_maps.shape:
        raise ConfigError(f"teacher maps {tuple(teacher_maps.shape)} and student maps {tuple(student_maps.shape)} differ")
    return (teacher_maps.exp() * (teacher_maps - student_maps)).sum(-1).mean()


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
        teacher_maps: float [K, M, P] the teacher's explanations of the examples (None: no explanation loss).
        differentiable: Keep the graph, so the result can be differentiated with respect to ``teacher_maps``.
    """
    params = {n: p.detach().clone().requires_grad_(True) for n, p in student.named_parameters()}
    first = {n: torch.zeros_like(p) for n, p in params.items()}
    second = {n: torch.zeros_like(p) for n, p in params.items()}
    b1, b2 = ADAM_BETAS
    for t in range(1, config.inner_steps + 1):
        logits, maps = functional_call(student, params, (crops, boxes))
        loss = _simulation_loss(logits, labels)
        if teacher_maps is not None:
            loss = loss + config.beta * explanation_loss(teacher_maps, maps)
        # allow_unused: without an explanation loss the student's explainer psi gets no gradient
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=differentiable, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads, strict=True)]
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
              labels: Mapping[str, Tensor]) -> float:
    """Fraction of (crop, attribute) pairs on which the student predicts the teacher's value."""
    with torch.no_grad():
        logits, _ = functional_call(student, dict(params), (crops, boxes))
    return float(torch.stack([(logits[a].argmax(1) == labels[a]).float() for a in ATTRIBUTES]).mean())


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
    labels, block = teacher_targets(teacher, crops, boxes, config.layer)
    flat = block.transpose(0, 1).flatten(1)
    explainer = TeacherExplainer(flat.mean(1), flat.std(1), config.maps, seed)
    calls = [0]

    def step(_: Tensor) -> dict[str, Tensor]:  # the loop's draws are with replacement; a task needs distinct crops
        calls[0] += 1
        g = torch.Generator().manual_seed(seed * 100_003 + calls[0])
        perm = torch.randperm(len(crops), generator=g)
        idx, val = perm[: config.examples], perm[config.examples : config.examples + config.validation]
        with torch.random.fork_rng():
            torch.manual_seed(seed * 100_003 + calls[0])
            student = Student(crops.shape[-1], config.student_width, config.maps)
        sub = {a: v[idx] for a, v in labels.items()}
        params = train_student(student, crops[idx], boxes[idx], sub, explainer(block[idx]), config, differentiable=True)
        logits, _ = functional_call(student, params, (crops[val], boxes[val]))
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
    static = TeacherExplainer(explainer.mean, explainer.std, config.maps, seed)  # phi before meta-training
    probe_labels, probe_block = teacher_targets(teacher, probe.crops, probe.boxes, config.layer)
    test_labels, _ = teacher_targets(teacher, test.crops, test.boxes, config.layer)
    arms: dict[str, list[float]] = {"learnt explanations": [], "no explanations": [], "static explanations": []}
    for s in range(STUDENT_SEEDS):
        g = torch.Generator().manual_seed(10_000 + 97 * seed + s)  # student seeds apart from the meta-training's
        idx = torch.randperm(len(probe), generator=g)[: config.examples]
        with torch.random.fork_rng():
            torch.manual_seed(10_000 + 97 * seed + s)
            student = Student(probe.crops.shape[-1], config.student_width, config.maps)
        sub = {a: v[idx] for a, v in probe_labels.items()}
        with torch.no_grad():
            maps = {"learnt explanations": explainer(probe_block[idx]), "no explanations": None,
                    "static explanations": static(probe_block[idx])}
        for arm, m in maps.items():
            params = train_student(student, probe.crops[idx], probe.boxes[idx], sub, m, config)
            arms[arm].append(agreement(student, params, test.crops, test.boxes, test_labels))
    mean = {arm: sum(v) / len(v) for arm, v in arms.items()}
    gain = mean["learnt explanations"] - mean["no explanations"]
    checks = (
        Check("student-teacher agreement", f"fraction of held-out (crop, attribute) pairs, mean of {STUDENT_SEEDS} "
              f"students of {config.examples} examples (gain {gain:+.3f}; static explainer "
              f"{mean['static explanations']:.3f})", mean["learnt explanations"], mean["no explanations"],
              f">= ablation + {GAIN}", gain >= GAIN),
    )
    figures = {
        "agreement_per_student": arms, "agreement_mean": mean,
        "meta_loss_first_last": [history[0]["loss"], history[-1]["loss"]] if history else None,
        "config": repr(config), "teacher_accuracy": subject.accuracy, "probe_crops": len(probe),
        "test_crops": len(test), "subject": repr(subject.config),
    }
    return BenchOutcome(checks, figures)
