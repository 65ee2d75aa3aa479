"""Question generation end to end: the executor agrees with the generator, every template is used."""

from __future__ import annotations

import collections
import json

import pytest

from perception.synthetic import sample_scene_graphs
from reasoning.dsl import from_clevr
from reasoning.executor import execute
from reasoning.questions import (
    DEFAULT_TEMPLATES,
    FAMILIES,
    QUESTION_KEYS,
    QUESTION_TYPES,
    QuestionGenerator,
    load_templates,
    question_type,
    save_questions,
)
from reasoning.questions.search import COMPOSITE_FUNCTIONS, program_bounds


def _official(shared_clevr) -> QuestionGenerator:
    return QuestionGenerator(
        templates=shared_clevr / "templates",
        synonyms=shared_clevr / "synonyms.json",
        metadata=shared_clevr / "metadata.json",
    )


def _check_agreement(questions, scenes) -> None:
    mismatches = []
    for q in questions:
        result = execute(from_clevr(q["program"]), scenes[q["image_index"]], trace=False)
        if not result.valid or result.answer != q["answer"]:
            mismatches.append((q["question"], q["answer"], result.answer, result.reason))
    assert not mismatches, f"{len(mismatches)}/{len(questions)} disagree, e.g. {mismatches[:3]}"


def _covered(questions) -> set[tuple[str, int]]:
    return {(q["template_filename"], q["question_family_index"]) for q in questions}


@pytest.fixture(scope="module")
def scenes():
    return sample_scene_graphs(20, seed=0)


def test_official_templates_answers_match_executor_and_all_90_are_used(shared_clevr, scenes):
    gen = _official(shared_clevr)
    assert len(gen.templates) == 90
    questions = gen.generate(scenes, per_scene=10, seed=0)
    assert len(questions) == 200
    _check_agreement(questions, scenes)
    assert len(_covered(questions)) == 90


def test_own_templates_answers_match_executor_and_all_90_are_used(scenes):
    gen = QuestionGenerator()
    assert {t.family for t in gen.templates} == set(FAMILIES)
    questions = gen.generate(scenes, per_scene=10, seed=1)
    _check_agreement(questions, scenes)
    assert len(_covered(questions)) == len(gen.templates) == 90


def test_own_templates_have_official_program_structures_but_own_wording(shared_clevr):
    own, official = load_templates(), load_templates(shared_clevr / "templates")

    def structures(ts):
        by_family = collections.defaultdict(collections.Counter)
        for t in ts:
            by_family[t.family][tuple((n.type, n.inputs) for n in t.nodes)] += 1
        return by_family

    assert structures(own) == structures(official)
    official_texts = {s for t in official for s in t.text}
    assert not official_texts & {s for t in own for s in t.text}


def test_records_have_exactly_the_official_keys_and_basic_programs(scenes):
    questions = QuestionGenerator().generate(scenes[:5], per_scene=10, seed=2)
    assert questions
    for k, q in enumerate(questions):
        assert tuple(q) == QUESTION_KEYS
        assert q["question_index"] == k
        assert isinstance(q["answer"], str) and q["question"].endswith("?")
        assert q["image"] == q["image_filename"].rsplit(".", 1)[0]
        assert q["template_filename"][:-5] in FAMILIES
        for node in q["program"]:
            assert set(node) == {"inputs", "function", "value_inputs"}
            assert node["function"] not in COMPOSITE_FUNCTIONS
        assert question_type(q["program"]) in QUESTION_TYPES


def test_composite_nodes_expand_into_relate_then_one_filter_per_value(scenes):
    one_hop_count = [t for t in load_templates() if t.family == "one_hop" and t.index == 0]
    gen = QuestionGenerator(templates=one_hop_count)
    questions = gen.generate(scenes, per_scene=1, seed=3)
    assert questions
    for q in questions:
        functions = [n["function"] for n in q["program"]]
        u, r = functions.index("unique"), functions.index("relate")
        assert functions[0] == "scene" and functions[-1] == "count" and u + 1 == r
        filters = functions[r + 1 : -1]
        assert all(f.startswith("filter_") for f in filters)
        # one filter per non-empty value, in size/color/material/shape order
        order = ["filter_size", "filter_color", "filter_material", "filter_shape"]
        assert filters == sorted(filters, key=order.index)
        assert all(len(n["value_inputs"]) == 1 for n in q["program"][r + 1 : -1])


def test_same_seed_gives_byte_identical_json_and_another_seed_does_not(tmp_path, scenes):
    paths = []
    for k, seed in enumerate((7, 7, 8)):
        questions = QuestionGenerator().generate(scenes[:8], per_scene=10, seed=seed)
        paths.append(tmp_path / f"q{k}.json")
        save_questions(paths[-1], questions, {"seed": seed})
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert json.loads(a)["questions"] != json.loads(c)["questions"]
    assert set(json.loads(a)) == {"info", "questions"}


def test_generate_resets_counts_so_earlier_calls_do_not_change_the_result(scenes):
    gen = QuestionGenerator()
    first = gen.generate(scenes[:4], per_scene=5, seed=4)
    gen.generate(scenes[4:8], per_scene=5, seed=9)
    assert gen.generate(scenes[:4], per_scene=5, seed=4) == first


@pytest.mark.slow
def test_slow_over_1000_official_questions_all_agree_with_executor(shared_clevr):
    scenes = sample_scene_graphs(120, seed=11)
    questions = _official(shared_clevr).generate(scenes, per_scene=10, seed=11)
    assert len(questions) >= 1000
    _check_agreement(questions, scenes)
    assert len(_covered(questions)) == 90


DEEP_TEMPLATES = DEFAULT_TEMPLATES.with_name("templates_deep")


def test_program_bounds_hold_every_generated_program_and_deep_templates_exceed_the_default_set(scenes):
    default = QuestionGenerator()
    bounds = {t.key: program_bounds(t) for t in default.templates}
    questions = default.generate(scenes, per_scene=10, seed=3)
    for q in questions:
        program = from_clevr(q["program"])
        depth, nodes = bounds[(q["template_filename"], q["question_family_index"])]
        assert program.depth() <= depth and len(program) <= nodes
    # the bound is reached: the fullest three-hop template expands to 25 calls in one chain
    assert max(d for d, _ in bounds.values()) == 25
    deep = QuestionGenerator(DEEP_TEMPLATES)
    assert {t.filename for t in deep.templates} == {"four_hop.json", "five_hop.json", "six_hop.json"}
    assert min(program_bounds(t)[0] for t in deep.templates) > max(d for d, _ in bounds.values())
    chains = deep.generate(scenes, per_scene=6, seed=3)
    assert len(chains) > 50
    _check_agreement(chains, scenes)
    hops = {"four_hop.json": 4, "five_hop.json": 5, "six_hop.json": 6}
    for q in chains:  # every deep question chains more relations than any default template (three)
        assert sum(n["function"] == "relate" for n in q["program"]) == hops[q["template_filename"]]
    assert max(sum(n["function"] == "relate" for n in q["program"]) for q in questions) <= 3
