"""Question generation rules: constraints, degeneracy, balancing, text, template errors."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from perception.scene_graph import SceneGraph, SceneObject
from perception.synthetic import sample_scene_graphs
from physics.errors import DataError
from reasoning.dsl import Catalogue
from reasoning.errors import ProgramError, TemplateError
from reasoning.questions import (
    AnswerBalancer,
    GeneratorConfig,
    QuestionGenerator,
    SceneIndex,
    answer_domain,
    instantiate,
    is_degenerate,
    load_templates,
    parse_template,
    question_type,
)
from reasoning.questions.engine import run_nodes
from reasoning.questions.text import render_text

META = Catalogue.default()
OBJ = ["<Z>", "<C>", "<M>", "<S>"]
OBJ2 = ["<Z2>", "<C2>", "<M2>", "<S2>"]


def _params(*names):
    types = {"Z": "Size", "C": "Color", "M": "Material", "S": "Shape", "R": "Relation"}
    return [{"type": types[n[1]], "name": n} for n in names]


def _template(nodes, params, constraints=(), text=("Question?",)):
    return parse_template(
        {"text": list(text), "nodes": nodes, "params": params, "constraints": list(constraints)},
        META,
    )


UNBALANCED = GeneratorConfig(balance=False)


def _instances(template, scenes, *, per_scene=1, config=UNBALANCED, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in scenes:
        out += instantiate(
            template, SceneIndex(s), rng, catalogue=META, config=config, max_instances=per_scene
        )
    return out


@pytest.fixture(scope="module")
def scenes():
    return sample_scene_graphs(12, seed=5)


# ---------------------------------------------------------------------- constraints
def test_null_constraint_keeps_the_parameter_empty_and_without_it_values_appear(scenes):
    nodes = [
        {"type": "scene", "inputs": []},
        {"type": "filter_unique", "inputs": [0], "side_inputs": OBJ},
        {"type": "query_color", "inputs": [1]},
    ]
    with_null = _instances(
        _template(nodes, _params(*OBJ), [{"type": "NULL", "params": ["<C>"]}]), scenes, per_scene=20
    )
    without = _instances(_template(nodes, _params(*OBJ)), scenes, per_scene=20)
    assert with_null and without
    assert all(i.values["<C>"] is None for i in with_null)
    assert not any(n["function"] == "filter_color" for i in with_null for n in i.program)
    assert any(i.values["<C>"] is not None for i in without)


def test_out_neq_makes_the_two_nodes_select_different_objects(scenes):
    nodes = [
        {"type": "scene", "inputs": []},
        {"type": "filter_unique", "inputs": [0], "side_inputs": OBJ},
        {"type": "scene", "inputs": []},
        {"type": "filter_unique", "inputs": [2], "side_inputs": OBJ2},
        {"type": "equal_object", "inputs": [1, 3]},
    ]
    params = _params(*OBJ, *OBJ2)
    constrained = _instances(
        _template(nodes, params, [{"type": "OUT_NEQ", "params": [1, 3]}]), scenes, per_scene=30
    )
    free = _instances(_template(nodes, params), scenes, per_scene=30)
    assert constrained and all(i.answer is False for i in constrained)
    assert any(i.answer is True for i in free)  # the same object described twice


def test_out_neq_on_counts_compares_the_counted_sets_so_equal_counts_remain_possible(scenes):
    t = next(t for t in load_templates() if t.family == "compare_integer" and t.index == 0)
    answers = {i.answer for i in _instances(t, scenes, per_scene=40)}
    assert answers == {True, False}


def test_neq_makes_two_parameters_differ(scenes):
    nodes = [
        {"type": "scene", "inputs": []},
        {"type": "filter_color", "inputs": [0], "side_inputs": ["<C>"]},
        {"type": "scene", "inputs": []},
        {"type": "filter_color", "inputs": [2], "side_inputs": ["<C2>"]},
        {"type": "union", "inputs": [1, 3]},
        {"type": "count", "inputs": [4]},
    ]
    params = _params("<C>", "<C2>")
    neq = _instances(
        _template(nodes, params, [{"type": "NEQ", "params": ["<C>", "<C2>"]}]), scenes, per_scene=40
    )
    free = _instances(_template(nodes, params), scenes, per_scene=40)
    assert neq and all(i.values["<C>"] != i.values["<C2>"] for i in neq)
    assert any(i.values["<C>"] == i.values["<C2>"] for i in free)


# ---------------------------------------------------------------------- degeneracy
def _two_object_scene() -> SceneGraph:
    return SceneGraph(
        objects=(
            SceneObject("cube", "red", "rubber", "large", (0.0, 0.0, 0.7)),
            SceneObject("sphere", "blue", "metal", "small", (2.0, 0.0, 0.35)),
        )
    )


def test_degenerate_questions_are_rejected():
    # "Is there anything <R> the <Z> <C> <M> <S>?"  With two objects, every "yes" is
    # degenerate: replacing relate(...) by scene() gives "yes" too.
    nodes = [
        {"type": "scene", "inputs": []},
        {"type": "filter_unique", "inputs": [0], "side_inputs": OBJ},
        {"type": "relate", "inputs": [1], "side_inputs": ["<R>"]},
        {"type": "exist", "inputs": [2]},
    ]
    t = _template(nodes, _params(*OBJ, "<R>"))
    scene = _two_object_scene()
    kept = _instances(t, [scene], per_scene=1000)
    kept_all = _instances(
        t, [scene], per_scene=1000, config=GeneratorConfig(balance=False, reject_degenerate=False)
    )
    assert {i.answer for i in kept_all} == {True, False}
    assert kept and {i.answer for i in kept} == {False}
    ix = SceneIndex(scene)
    assert all(is_degenerate(i.program, ix, i.answer) for i in kept_all if i.answer)
    assert not any(is_degenerate(i.program, ix, i.answer) for i in kept)


def test_relate_that_matters_is_not_degenerate():
    ix = SceneIndex(_two_object_scene())
    program = [
        {"inputs": [], "function": "scene", "value_inputs": []},
        {"inputs": [0], "function": "filter_color", "value_inputs": ["red"]},
        {"inputs": [1], "function": "unique", "value_inputs": []},
        {"inputs": [2], "function": "relate", "value_inputs": ["right"]},
        {"inputs": [3], "function": "count", "value_inputs": []},
    ]
    answer = run_nodes(ix, program)[-1]
    assert answer == 1
    assert not is_degenerate(program, ix, answer)  # count(scene) would be 2


# ---------------------------------------------------------------------- balancing
def test_balancer_rejects_an_answer_leading_the_runner_up_by_more_than_ten_percent():
    b = AnswerBalancer(("yes", "no"))
    for _ in range(10):
        b.add("yes")
    for _ in range(10):
        b.add("no")
    b.add("yes")  # 11 vs 10: allowed (11 <= 1.1 * 10)
    assert b.accepts("yes") is True
    b.add("yes")  # 12 vs 10
    assert b.accepts("yes") is False and b.accepts("no") is True


def test_balancing_bounds_the_answer_skew_of_a_template():
    t = next(t for t in load_templates() if t.family == "zero_hop" and t.index == 0)  # counting
    scenes = sample_scene_graphs(150, seed=9)

    def answers(balance: bool) -> collections.Counter:
        gen = QuestionGenerator(
            templates=[t], config=GeneratorConfig(balance=balance, reset_counts_every=0)
        )
        return collections.Counter(q["answer"] for q in gen.generate(scenes, per_scene=1, seed=0))

    balanced, free = answers(True), answers(False)
    (_, top), (_, runner_up) = balanced.most_common(2)
    assert top <= 1.1 * runner_up + 1, balanced
    # without the rule, 0 and 1 take most questions; with it, they take under half
    assert (free["0"] + free["1"]) / free.total() > 0.75, free
    assert (balanced["0"] + balanced["1"]) / balanced.total() < 0.5, balanced
    assert len(balanced) > len(free)


# ---------------------------------------------------------------------- text
def test_text_fills_values_uses_thing_for_empty_shape_and_cleans_spaces():
    types = {"<Z>": "Size", "<C>": "Color", "<M>": "Material", "<S>": "Shape"}
    rng = np.random.default_rng(0)
    text = render_text("What color is the <Z> <C> <M> <S> ?", dict.fromkeys(types), types, {}, rng)
    assert text == "What color is the thing?"
    text = render_text(
        "Is there a <Z> <C> <M> <S>?",
        {"<Z>": None, "<C>": None, "<M>": "rubber", "<S>": None},
        types,
        {},
        rng,
    )
    assert text == "Is there a rubber thing?"
    text = render_text(
        "is there a <Z> <S>?", {"<Z>": "large", "<S>": None}, types, {"thing": ["object"]}, rng
    )
    assert text == "Is there a large object?"
    text = render_text("Is there a <S>?", {"<S>": None}, types, {"thing": ["object"]}, rng)
    assert text == "Is there an object?"


def test_optional_segments_are_kept_or_dropped_and_synonyms_vary():
    types = {"<R>": "Relation", "<S>": "Shape"}
    syn = {"left": ["left of", "to the left of"]}
    seen = {
        render_text(
            "What is [located] <R> the <S>?",
            {"<R>": "left", "<S>": "cube"},
            types,
            syn,
            np.random.default_rng(k),
        )
        for k in range(40)
    }
    assert seen == {
        "What is left of the cube?",
        "What is to the left of the cube?",
        "What is located left of the cube?",
        "What is located to the left of the cube?",
    }


def test_other_is_dropped_when_the_two_descriptions_clearly_differ():
    names = ["<Z>", "<C>", "<M>", "<S>", "<Z2>", "<C2>", "<M2>", "<S2>"]
    types = {n: {"Z": "Size", "C": "Color", "M": "Material", "S": "Shape"}[n[1]] for n in names}
    rng = np.random.default_rng(0)
    vals = dict.fromkeys(names)
    same = render_text(
        "Is there another <C2> <S2> like the <C> <S>?",
        {**vals, "<C>": "red", "<C2>": "red"},
        types,
        {},
        rng,
    )
    differ = render_text(
        "Is there another <C2> <S2> like the <C> <S>?",
        {**vals, "<C>": "red", "<C2>": "blue"},
        types,
        {},
        rng,
    )
    assert same == "Is there another red thing like the red thing?"
    assert differ == "Is there a blue thing like the red thing?"


# ---------------------------------------------------------------------- template errors
GOOD = {
    "text": ["How many <Z> <C> <M> <S>s?"],
    "nodes": [
        {"type": "scene", "inputs": []},
        {"type": "filter_count", "inputs": [0], "side_inputs": OBJ},
    ],
    "params": _params(*OBJ),
    "constraints": [],
}


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda t: t["nodes"][1].update(type="filter_colour"), "nodes[1]"),
        (lambda t: t["nodes"][1].update(inputs=[1]), "nodes[1]"),
        (lambda t: t["nodes"][1].update(side_inputs=["<Z>", "<C>", "<M>", "<Q>"]), "nodes[1]"),
        (lambda t: t["nodes"][1].update(side_inputs=["<Z>", "<C>", "<M>"]), "nodes[1]"),
        (
            lambda t: t["constraints"].append({"type": "NOT_NULL", "params": ["<S>"]}),
            "constraints[0]",
        ),
        (
            lambda t: t["constraints"].append({"type": "OUT_NEQ", "params": [0, 5]}),
            "constraints[0]",
        ),
        (lambda t: t["constraints"].append({"type": "NULL", "params": ["<S9>"]}), "constraints[0]"),
        (lambda t: t.update(text=["How many <Z3>s?"]), "text[0]"),
        (lambda t: t.update(text=[]), "'text'"),
        (lambda t: t["params"][0].update(type="Weight"), "params[0]"),
        (lambda t: t.pop("nodes"), "'nodes'"),
    ],
)
def test_bad_template_raises_template_error_naming_file_template_and_field(tmp_path, change, field):
    bad = json.loads(json.dumps(GOOD))
    change(bad)
    (tmp_path / "family.json").write_text(json.dumps([GOOD, bad]))
    with pytest.raises(TemplateError) as err:
        load_templates(tmp_path)
    msg = str(err.value)
    assert "family.json" in msg and "template 1" in msg and field in msg, msg


def test_templates_round_trip_through_their_json_form(shared_clevr):
    for t in load_templates(shared_clevr / "templates") + load_templates():
        again = parse_template(t.to_json(), META, filename=t.filename, index=t.index)
        assert again == t


def test_unreadable_or_missing_templates_raise_template_error(tmp_path):
    (tmp_path / "broken.json").write_text('[{"text": ["x"],')
    with pytest.raises(TemplateError, match=r"broken\.json.*line 1"):
        load_templates(tmp_path)
    with pytest.raises(TemplateError, match="not found"):
        load_templates(tmp_path / "missing")
    (tmp_path / "broken.json").write_text('{"text": []}')
    with pytest.raises(TemplateError, match="expected a JSON list"):
        load_templates(tmp_path / "broken.json")


# ---------------------------------------------------------------------- catalogue, question types
def test_generator_reads_the_official_metadata_as_its_catalogue(shared_clevr):
    gen = QuestionGenerator(metadata=shared_clevr / "metadata.json")
    assert isinstance(gen.catalogue, Catalogue) and gen.catalogue.dataset == "CLEVR-v1.0"
    assert gen.catalogue.values("Relation") == META.values("Relation")
    assert QuestionGenerator(metadata=META).catalogue is META


def test_bad_metadata_file_is_reported_with_file_and_field(tmp_path):
    bad = tmp_path / "meta.json"
    data = META.to_dict()
    data["functions"][3]["side_inputs"] = ["Weight"]
    bad.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"meta\.json: functions\[3\].*side_inputs.*'Weight'"):
        QuestionGenerator(metadata=bad)
    bad.write_text('{"types": {}}')
    with pytest.raises(DataError, match=r"meta\.json: field 'functions'"):
        QuestionGenerator(metadata=bad)


def test_answer_domains_follow_the_root_function_output_type():
    assert answer_domain(META, "exist") == (True, False)
    assert answer_domain(META, "filter_count") == tuple(range(11))
    assert answer_domain(META, "query_color") == META.values("Color")
    assert answer_domain(META, "unique") == ()
    with pytest.raises(ProgramError, match="unknown function"):
        answer_domain(META, "count_all")


def test_question_type_covers_every_template_root_and_rejects_non_answers(shared_clevr):
    for templates in (load_templates(shared_clevr / "templates"), load_templates()):
        counts = collections.Counter(question_type(t.nodes[-1].type) for t in templates)
        assert counts == {
            "count": 21,
            "exist": 12,
            "compare_number": 9,
            "compare_attribute": 16,
            "query_attribute": 32,
        }
    with pytest.raises(ProgramError, match="scene"):
        question_type("scene")
