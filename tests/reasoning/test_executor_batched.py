"""The batched executor answers exactly like the single executor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception.scene_graph import SceneGraph, SceneObject
from perception.synthetic import sample_scene_graphs
from physics.errors import DataError
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.dsl import Call, Program, from_clevr, parse_program
from reasoning.executor import (
    OPS,
    ProgramSampler,
    SceneTable,
    compile_batch,
    default_executor,
    execute,
    execute_batch,
    random_programs,
)
from reasoning.executor.check import check_call
from reasoning.executor.ops import ANSWER_TYPES


@pytest.fixture(scope="module")
def scenes() -> list[SceneGraph]:
    return sample_scene_graphs(40, seed=3)


def single_answers(programs, scenes, indices):
    return [
        execute(p, scenes[i], trace=False).answer for p, i in zip(programs, indices, strict=True)
    ]


def test_random_programs_are_well_typed_and_end_in_an_answer():
    for program in random_programs(300, seed=11):
        assert check_call(program.root, OPS) in ANSWER_TYPES


def test_scene_aware_sampling_gives_mostly_valid_questions(scenes):
    programs = random_programs(200, seed=5, scenes=scenes)
    answers = single_answers(programs, scenes, [k % len(scenes) for k in range(200)])
    assert sum(a is not None for a in answers) > 120  # blind programs are valid ~10% of the time


def test_single_and_batched_agree_on_thousands_of_random_programs(scenes):
    programs = random_programs(1500, seed=1, scenes=scenes) + random_programs(1500, seed=2)
    rng = np.random.default_rng(0)
    indices = [k % len(scenes) for k in range(1500)] + rng.integers(len(scenes), size=1500).tolist()
    single = single_answers(programs, scenes, indices)
    batched = execute_batch(programs, scenes, indices)
    assert batched == single
    assert sum(a is None for a in single) > 100 and sum(a is not None for a in single) > 1000
    assert len({a for a in single if a is not None}) > 15  # yes/no, counts and words all occur


def test_instantiated_shapes_group_into_few_structures(scenes):
    rng = np.random.default_rng(4)
    sampler = ProgramSampler()
    shapes = [sampler.sample(rng, scene=scenes[k]) for k in range(8)]
    indices = rng.integers(len(scenes), size=600).tolist()
    programs = [
        sampler.instantiate(shapes[k % 8], rng, scene=scenes[i]) for k, i in enumerate(indices)
    ]
    assert [p.root.structure() for p in programs[:8]] == [s.root.structure() for s in shapes]
    plan = compile_batch(programs)
    assert len(plan.groups) <= 8 and not plan.fallback
    assert plan.run(SceneTable(scenes), indices) == single_answers(programs, scenes, indices)


def test_filter_chains_of_any_order_share_one_canonical_structure():
    a = parse_program("count(filter_color(filter_size(scene(), large), red))")
    b = parse_program("count(filter_shape(filter_material(scene(), metal), cube))")
    c = parse_program('filter_count(scene(), large, "", "", cube)')
    assert len(compile_batch([a, b, c]).groups) == 1


def _template_programs(path, rng) -> list[Program]:
    """Every template of an official CLEVR template file with random words (or empty slots)."""
    words = {
        "Z": ATTRIBUTES["size"],
        "C": ATTRIBUTES["color"],
        "M": ATTRIBUTES["material"],
        "S": ATTRIBUTES["shape"],
    }
    programs = []
    for template in json.loads(path.read_text()):
        nodes = []
        for node in template["nodes"]:
            node = dict(node)
            values = []
            for v in node.get("side_inputs", []):
                kind = v.strip("<>")[0]
                if kind == "R":
                    values.append(RELATIONS[int(rng.integers(4))])
                elif rng.random() < 0.5 and node["type"] not in (
                    "filter_color",
                    "filter_shape",
                    "filter_size",
                    "filter_material",
                ):
                    values.append("")
                else:
                    values.append(words[kind][int(rng.integers(len(words[kind])))])
            node["side_inputs"] = values
            nodes.append(node)
        programs.append(from_clevr(nodes, where=f"{path.name}"))
    return programs


def test_official_clevr_templates_run_directly_in_both_modes(shared_clevr, scenes):
    rng = np.random.default_rng(7)
    programs = []
    for path in sorted((shared_clevr / "templates").glob("*.json")):
        for _ in range(6):
            programs.extend(_template_programs(path, rng))
    assert len(programs) > 400
    indices = rng.integers(len(scenes), size=len(programs)).tolist()
    single = single_answers(programs, scenes, indices)
    assert execute_batch(programs, scenes, indices) == single
    assert sum(a is not None for a in single) > 50


def test_scenes_too_large_for_a_bitset_fall_back_to_the_single_executor():
    rng = np.random.default_rng(0)
    objects = tuple(
        SceneObject(
            "cube" if k % 3 else "sphere",
            "red" if k % 2 else "blue",
            "metal",
            "large",
            (float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30)), 0.7),
        )
        for k in range(70)
    )
    big = SceneGraph(objects=objects)
    small = sample_scene_graphs(1, seed=0)[0]
    table = SceneTable([big, small])
    assert table.fits.tolist() == [False, True]
    programs = [
        parse_program("count(filter_color(scene(), red))"),
        parse_program(
            "count(relate(unique(filter_shape(filter_color(scene(), red), sphere)), left))"
        ),
        parse_program("count(scene())"),
    ]
    indices = [0, 0, 1]
    expected = single_answers(programs, [big, small], indices)
    assert expected[0] == "35"
    assert execute_batch(programs, [big, small], indices) == expected


def test_a_prebuilt_table_can_be_reused_across_batches(scenes):
    table = SceneTable(scenes)
    programs = random_programs(100, seed=9, scenes=scenes)
    indices = [k % len(scenes) for k in range(100)]
    assert execute_batch(programs, table, indices) == single_answers(programs, scenes, indices)
    assert table.value_bits.shape == (len(scenes), 16)  # 15 CLEVR words + "any"
    assert table.rel_bits.shape == (len(scenes), 4, table.max_objects)


def test_bad_scene_indices_raise_data_error_naming_the_program(scenes):
    program = parse_program("count(scene())")
    with pytest.raises(DataError, match="2 programs but 1 scene indices"):
        execute_batch([program, program], scenes, [0])
    with pytest.raises(DataError, match=r"program 1: scene index 40 is out of range 0\.\.39"):
        execute_batch([program, program], scenes, [0, 40])


def test_programs_given_as_bare_calls_are_accepted(scenes):
    call = Call("count", (Call("scene"),))
    assert execute_batch([call], scenes, [0]) == [str(len(scenes[0]))]
    assert default_executor.answer(call, scenes[0]) == str(len(scenes[0]))


def pink_cube_scene() -> SceneGraph:
    """One large metal cube in a colour outside CLEVR's vocabulary (the table cannot hold it)."""
    obj = {"shape": "cube", "color": "pink", "material": "metal", "size": "large", "3d_coords": [0, 0, 0.7]}
    return SceneGraph.from_clevr({"objects": [obj]}, vocabulary=dict(ATTRIBUTES, color=(*ATTRIBUTES["color"], "pink")))


def test_scenes_with_words_outside_the_vocabulary_fall_back_and_keep_their_words(scenes):
    odd = pink_cube_scene()
    table = SceneTable([scenes[0], odd])
    assert table.fits.tolist() == [True, False]
    program = parse_program("query_color(unique(scene()))")
    assert execute_batch([program, program], [scenes[0], odd], [1, 1]) == ["pink", "pink"]


def test_table_of_empty_scenes_answers_like_the_single_executor():
    empty = SceneGraph(objects=())
    programs = [parse_program("count(scene())"), parse_program("query_size(unique(scene()))")]
    assert execute_batch(programs, [empty], [0, 0]) == ["0", None]
    assert SceneTable([]).value_bits.shape == (0, 16)


def test_answers_equal_the_question_generators_on_its_questions(shared_clevr):
    from reasoning.questions import QuestionGenerator

    scenes = sample_scene_graphs(12, seed=21)
    for generator in (
        QuestionGenerator(),
        QuestionGenerator(
            templates=shared_clevr / "templates", synonyms=shared_clevr / "synonyms.json"
        ),
    ):
        questions = generator.generate(scenes, per_scene=4, seed=0)
        assert len(questions) > 20
        programs = [from_clevr(q["program"]) for q in questions]
        indices = [q["image_index"] for q in questions]
        expected = [
            str(q["answer"])
            if not isinstance(q["answer"], bool)
            else ("yes" if q["answer"] else "no")
            for q in questions
        ]
        assert single_answers(programs, scenes, indices) == expected
        assert execute_batch(programs, scenes, indices) == expected


def test_fast_and_traced_single_paths_agree_on_random_programs(scenes):
    programs = random_programs(1000, seed=8, scenes=scenes) + random_programs(1000, seed=9)
    for k, program in enumerate(programs):
        scene = scenes[k % len(scenes)]
        fast, traced = execute(program, scene, trace=False), execute(program, scene, trace=True)
        assert (fast.answer, fast.valid, fast.reason) == (
            traced.answer,
            traced.valid,
            traced.reason,
        )
        if traced.valid:
            assert len(traced.trace) == len(program)


def test_value_rows_are_the_tables_rows_as_python_ints(scenes):
    from reasoning.executor.scene_table import value_rows

    cube = [SceneObject("cube", "red", "metal", "large", (float(k), 0.0, 0.7)) for k in range(65)]
    big = SceneGraph(objects=tuple(cube))  # over 64 objects: no row
    empty = SceneGraph(objects=())
    mixed = [*scenes, pink_cube_scene(), big, empty]
    table = SceneTable(mixed)
    rows, fits = table.value_bits.tolist(), table.fits.tolist()
    expected = [row if ok else None for row, ok in zip(rows, fits, strict=True)]
    assert value_rows(mixed) == expected
    assert expected[-3:] == [None, None, [0] * 15 + [0]]


def test_relation_bits_are_each_rows_objects_or_ed_with_rows_past_64_on_the_general_path(scenes):
    table = SceneTable(scenes)
    for s, scene in enumerate(scenes):
        for r, name in enumerate(RELATIONS):
            for i, row in enumerate(scene.relationships[name]):
                assert int(table.rel_bits[s, r, i]) == sum(1 << j for j in set(row))
    base = scenes[0]
    rows = {r: [list(row) for row in base.relationships[r]] for r in base.relationships}
    rows["left"][0] = [1, 1, 2]  # a repeated index
    rows["front"][1] = [70]  # beyond a uint64 bitset: the cache refuses it, numpy's path runs
    odd = SceneGraph(objects=base.objects, directions=base.directions, relationships=rows)
    bits = SceneTable([odd, base]).rel_bits
    assert int(bits[0, RELATIONS.index("left"), 0]) == 0b110
    assert bits[1].tolist() == table.rel_bits[0, :, : bits.shape[2]].tolist()
