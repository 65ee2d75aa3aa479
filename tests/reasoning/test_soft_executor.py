"""The quasi-symbolic (soft) executor: exact with hard scores, differentiable, one table."""

from __future__ import annotations

import pytest
import torch

from perception.synthetic import sample_scene_graph, sample_scene_graphs
from reasoning.dsl import from_clevr, parse_program
from reasoning.dsl.function_table import implemented
from reasoning.errors import ProgramError
from reasoning.executor import OPS, default_executor, random_programs
from reasoning.executor.soft import SOFT_OPS, SoftScenes, attach_soft, soft_execute
from reasoning.questions import QuestionGenerator


def test_hard_scores_give_the_symbolic_answers_on_thousands_of_programs():
    scenes = sample_scene_graphs(60, seed=11)
    programs = random_programs(3000, seed=12, scenes=scenes)
    idx = [k % len(scenes) for k in range(len(programs))]
    truth = [default_executor.answer(p, scenes[i]) for p, i in zip(programs, idx, strict=True)]
    valid = [k for k, a in enumerate(truth) if a is not None]
    assert len(valid) > 2000
    out = soft_execute([programs[k] for k in valid], SoftScenes.from_scene_graphs(scenes), [idx[k] for k in valid])
    wrong = [(str(programs[k]), truth[k], a) for k, a in zip(valid, out.answers, strict=True) if a != truth[k]]
    assert wrong == []
    functions = {c.function for k in valid for c in programs[k].nodes()}
    assert functions == set(OPS)  # every operation of the table is exercised


def test_hard_scores_answer_template_questions_and_official_dags_as_the_engine_does():
    scenes = sample_scene_graphs(40, seed=3)
    questions = QuestionGenerator().generate(scenes, per_scene=5, seed=4)
    programs = [from_clevr(q["program"]) for q in questions]
    # the official generator's single_or DAG: "What number of cubes are objects or large blue things?"
    dag = [
        {"type": "scene", "inputs": [], "side_inputs": []},
        {"type": "scene", "inputs": [], "side_inputs": []},
        {"type": "filter_size", "inputs": [1], "side_inputs": ["large"]},
        {"type": "filter_color", "inputs": [2], "side_inputs": ["blue"]},
        {"type": "union", "inputs": [1, 3], "side_inputs": []},
        {"type": "filter_shape", "inputs": [4], "side_inputs": ["cube"]},
        {"type": "count", "inputs": [5], "side_inputs": []},
    ]
    programs += [from_clevr(dag)] * len(scenes)
    idx = [q["image_index"] for q in questions] + list(range(len(scenes)))
    out = soft_execute(programs, SoftScenes.from_scene_graphs(scenes), idx)
    expected = [q["answer"] for q in questions] + [
        str(sum(o.shape == "cube" for o in s.objects)) for s in scenes
    ]
    assert list(out.answers) == expected


def test_likelihoods_follow_the_scores_and_gradients_match_finite_differences():
    torch.manual_seed(0)
    scene = sample_scene_graph(seed=1)
    hard = SoftScenes.from_scene_graphs([scene], margin=2.0, dtype=torch.float64)
    attrs = {a: (t + 0.3 * torch.randn_like(t)).requires_grad_() for a, t in hard.attributes.items()}
    rel = (hard.relations + 0.3 * torch.randn_like(hard.relations)).requires_grad_()
    programs = [
        parse_program(t)
        for t in (
            "count(filter_color(scene(), red))",
            "exist(filter_shape(scene(), cube))",
            "query_color(unique(filter_shape(filter_size(scene(), large), sphere)))",
            "less_than(count(filter_material(scene(), metal)), count(filter_shape(scene(), cylinder)))",
            "count(relate(unique(filter_size(scene(), small)), left))",
            "exist(same_shape(unique(filter_color(scene(), gray))))",
            "equal_integer(count(union(filter_color(scene(), red), filter_color(scene(), blue))), "
            "count(intersect(filter_size(scene(), small), scene())))",
        )
    ]
    answers = ["1", "yes", "red", "no", "2", "yes", "no"]

    def loss(*tensors: torch.Tensor) -> torch.Tensor:
        scenes = SoftScenes(hard.present, dict(zip(attrs, tensors[:-1], strict=True)), tensors[-1])
        return -soft_execute(programs, scenes, [0] * len(programs)).log_prob(answers)

    inputs = (*attrs.values(), rel)
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5)
    total = loss(*inputs).sum()
    total.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in inputs)


def test_count_is_a_distribution_whose_mean_is_the_sum_of_the_set():
    scene = sample_scene_graph(seed=2)
    soft = SoftScenes.from_scene_graphs([scene], margin=1.0, dtype=torch.float64)
    (dist,) = soft_execute([parse_program("count(filter_color(scene(), red))")], soft, [0]).values
    probs = torch.sigmoid(soft.attributes["color"][0, :, 1]) * soft.present[0]  # red is word 1
    assert dist.sum().item() == pytest.approx(1.0)
    assert (dist * torch.arange(len(dist))).sum().item() == pytest.approx(probs.sum().item())


def test_the_soft_mode_covers_the_table_and_refuses_what_it_cannot_run():
    assert implemented()["soft"] == implemented()["symbolic"]
    scenes = SoftScenes.from_scene_graphs(sample_scene_graphs(1, seed=0))
    with pytest.raises(ProgramError, match="'pink' is not a Color"):
        soft_execute([parse_program("count(filter_color(scene(), pink))")], scenes, [0])
    with pytest.raises(ProgramError, match="names scene 3, but there are 1"):
        soft_execute([parse_program("count(scene())")], scenes, [3])
    with pytest.raises(ProgramError, match="not an operation of the executor table"):
        attach_soft("frobnicate", lambda ctx, x: x)
    count = SOFT_OPS["count"]
    try:
        from reasoning.executor.soft import _SOFT

        del _SOFT["count"]
        with pytest.raises(ProgramError, match="operation 'count' .* has no soft form"):
            soft_execute([parse_program("count(scene())")], scenes, [0])
    finally:
        attach_soft("count", count)


def _scenes_without(word: str, seed: int = 0) -> SoftScenes:
    """Two random three-object scenes whose colour vocabulary lacks ``word`` (a learner's smaller vocabulary)."""
    from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS

    g = torch.Generator().manual_seed(seed)
    vocabulary = {a: tuple(w for w in ws if w != word) for a, ws in ATTRIBUTES.items()}
    return SoftScenes(torch.ones(2, 3), {a: torch.randn(2, 3, len(ws), generator=g) for a, ws in vocabulary.items()},
                      torch.randn(2, len(RELATIONS), 3, 3, generator=g), vocabulary)


def test_a_word_outside_the_scenes_vocabulary_is_refused_by_the_check_before_any_operation_runs(monkeypatch):
    from reasoning.executor import soft

    scenes = _scenes_without("cyan")
    ran = []
    filter_color = soft._SOFT["filter_color"]
    monkeypatch.setitem(soft._SOFT, "count", lambda ctx, objs: ran.append(1) or soft._count(ctx, objs))
    monkeypatch.setitem(soft._SOFT, "filter_color", lambda ctx, objs, words: ran.append(1) or filter_color(ctx, objs, words))
    programs = [parse_program("count(scene())"), parse_program("count(filter_color(scene(), cyan))")]
    with pytest.raises(ProgramError, match=r"'cyan' is not a color; known: .* \(program 1, filter_color\)"):
        soft_execute(programs, scenes, [0, 1])
    assert ran == []  # the first program's group did not run before the second was found out
    with pytest.raises(ProgramError, match="'cyan' is not a color"):
        soft.check_soft(programs[1], scenes, 0)
    sideways = SoftScenes(scenes.present, scenes.attributes, scenes.relations[:, :2], scenes.vocabulary,
                          scenes.relation_names[:2])
    with pytest.raises(ProgramError, match=f"'{scenes.relation_names[2]}' is not a relation"):
        soft.check_soft(parse_program(f"count(relate(unique(scene()), {scenes.relation_names[2]}))"), sideways, 0)
    assert soft.check_soft(programs[0], scenes, 1)[0][-1].function == "count"

