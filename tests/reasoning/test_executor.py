"""The symbolic executor follows CLEVR's question-engine semantics on a hand-made scene."""

from __future__ import annotations

import pytest

from perception.scene_graph import SceneGraph, SceneObject
from perception.synthetic import sample_scene_graph
from reasoning.dsl import Call, Program, parse_program
from reasoning.errors import ProgramError
from reasoning.executor import (
    OPS,
    ExecutionResult,
    OpSpec,
    SymbolicExecutor,
    bind_scene,
    execute,
    execute_batch,
    register,
)

# Four objects; default camera: right = +x, behind = +y.
#   0 large red metal cube       (0, 0)
#   1 small blue rubber sphere   (2, 0)
#   2 large blue metal cylinder  (-2, 1)
#   3 small red rubber cube      (0, -2)
OBJECTS = (
    SceneObject("cube", "red", "metal", "large", (0.0, 0.0, 0.7)),
    SceneObject("sphere", "blue", "rubber", "small", (2.0, 0.0, 0.35)),
    SceneObject("cylinder", "blue", "metal", "large", (-2.0, 1.0, 0.7)),
    SceneObject("cube", "red", "rubber", "small", (0.0, -2.0, 0.35)),
)


@pytest.fixture(scope="module")
def scene() -> SceneGraph:
    return SceneGraph(objects=OBJECTS, image_index=0)


def run(text: str, scene: SceneGraph, trace: bool = True) -> ExecutionResult:
    return execute(parse_program(text), scene, trace=trace)


def answer(text: str, scene: SceneGraph) -> str | None:
    """The answer in single mode with and without trace, and in batched mode (all must agree)."""
    program = parse_program(text)
    a = execute(program, scene, trace=True).answer
    assert execute(program, scene, trace=False).answer == a
    assert execute_batch([program], [scene], [0]) == [a]
    return a


def test_relationships_are_computed_from_coordinates(scene):
    assert scene.relationships["right"][0] == [1]
    assert scene.relationships["left"][1] == [0, 2, 3]
    assert scene.relationships["behind"][3] == [0, 1, 2]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("count(scene())", "4"),
        ("count(filter_color(scene(), red))", "2"),
        ("count(filter_size(scene(), large))", "2"),
        ("count(filter_material(scene(), rubber))", "2"),
        ("count(filter_shape(scene(), cylinder))", "1"),
        ("count(filter_color(scene(), green))", "0"),
        ("exist(filter_color(scene(), green))", "no"),
        ("exist(filter_shape(filter_color(scene(), red), cube))", "yes"),
        ("query_color(unique(filter_shape(scene(), sphere)))", "blue"),
        ("query_shape(unique(filter_size(filter_color(scene(), red), small)))", "cube"),
        ("query_size(unique(filter_shape(scene(), cylinder)))", "large"),
        ("query_material(unique(filter_shape(scene(), sphere)))", "rubber"),
        ("count(union(filter_color(scene(), red), filter_shape(scene(), sphere)))", "3"),
        ("count(intersect(filter_color(scene(), red), filter_size(scene(), small)))", "1"),
        (
            "equal_integer(count(filter_color(scene(), red)), count(filter_color(scene(), blue)))",
            "yes",
        ),
        (
            "less_than(count(filter_shape(scene(), sphere)), count(filter_shape(scene(), cube)))",
            "yes",
        ),
        (
            "greater_than(count(filter_shape(scene(), sphere)), count(filter_shape(scene(), cube)))",
            "no",
        ),
        (
            "equal_color(query_color(unique(filter_shape(scene(), sphere))), "
            "query_color(unique(filter_shape(scene(), cylinder))))",
            "yes",
        ),
        (
            "equal_size(query_size(unique(filter_shape(scene(), sphere))), "
            "query_size(unique(filter_shape(scene(), cylinder))))",
            "no",
        ),
        (
            "equal_shape(query_shape(unique(filter_size(filter_shape(scene(), cube), large))), "
            "query_shape(unique(filter_size(filter_shape(scene(), cube), small))))",
            "yes",
        ),
        (
            "equal_material(query_material(unique(filter_shape(scene(), sphere))), "
            "query_material(unique(filter_size(filter_shape(scene(), cube), large))))",
            "no",
        ),
    ],
)
def test_primitive_functions_give_the_clevr_answers(scene, text, expected):
    assert answer(text, scene) == expected


def test_relate_reads_relationships_of_the_object(scene):
    big_cube = "unique(filter_size(filter_shape(scene(), cube), large))"
    assert answer(f"query_shape(unique(relate({big_cube}, right)))", scene) == "sphere"
    assert answer(f"query_shape(unique(relate({big_cube}, left)))", scene) == "cylinder"
    assert answer(f"query_size(unique(relate({big_cube}, front)))", scene) == "small"
    small_cube = "unique(filter_size(filter_shape(scene(), cube), small))"
    assert answer(f"count(relate({small_cube}, behind))", scene) == "3"
    assert answer(f"exist(relate({small_cube}, front))", scene) == "no"


def test_relate_uses_relationships_as_given_not_recomputed():
    given = {
        "left": [[1], [], [], []],  # contradicts the coordinates on purpose
        "right": [[], [0], [], []],
        "behind": [[], [], [], []],
        "front": [[], [], [], []],
    }
    scene = SceneGraph(objects=OBJECTS, relationships=given)
    assert scene.relationships["left"][0] == [1]
    assert (
        answer("query_shape(unique(relate(unique(filter_shape(scene(), cylinder)), left)))", scene)
        is None
    )
    big_cube = "unique(filter_size(filter_shape(scene(), cube), large))"
    assert answer(f"query_shape(unique(relate({big_cube}, left)))", scene) == "sphere"
    assert answer(f"count(relate({big_cube}, right))", scene) == "0"


def test_same_attribute_excludes_the_object_itself(scene):
    sphere = "unique(filter_shape(scene(), sphere))"
    assert answer(f"query_shape(unique(same_color({sphere})))", scene) == "cylinder"
    assert answer(f"count(same_size({sphere}))", scene) == "1"
    assert answer(f"count(same_material({sphere}))", scene) == "1"
    assert answer(f"count(same_shape({sphere}))", scene) == "0"
    big_cube = "unique(filter_size(filter_shape(scene(), cube), large))"
    result = run(f"count(same_shape({big_cube}))", scene)
    assert result.answer == "1"
    assert result.trace[-2].output == [3]  # the other cube, never object 0 itself
    assert answer(f"equal_object({sphere}, unique(relate({big_cube}, right)))", scene) == "yes"
    assert answer(f"equal_object({sphere}, {big_cube})", scene) == "no"


def test_unique_of_several_objects_is_invalid_and_names_node_and_size(scene):
    result = run("query_shape(unique(filter_color(scene(), red)))", scene)
    assert not result.valid and result.answer is None
    assert "node 2 (unique)" in result.reason and "2" in result.reason
    assert [s.index for s in result.trace] == [0, 1]  # the trace stops before the failing node
    assert answer("query_shape(unique(filter_color(scene(), red)))", scene) is None


def test_unique_of_empty_set_is_invalid_not_a_default_object(scene):
    result = run("query_shape(unique(filter_color(scene(), green)))", scene, trace=False)
    assert not result.valid
    assert "node 2 (unique)" in result.reason and "0" in result.reason
    assert result.trace == []


def test_invalid_anywhere_makes_the_whole_question_invalid(scene):
    text = "equal_integer(count(scene()), count(relate(unique(filter_color(scene(), blue)), left)))"
    result = run(text, scene)
    assert not result.valid and "node 4 (unique)" in result.reason
    assert answer(text, scene) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ('filter_count(scene(), "", red, "", "")', "2"),
        ("filter_count(scene(), large)", "2"),  # missing trailing slots: no constraint
        ('filter_count(scene(), "", "", "", "")', "4"),
        ('query_shape(filter_unique(scene(), small, red, "", ""))', "cube"),
        ('query_shape(filter_unique(scene(), "", red, "", ""))', None),  # two red objects
        ('filter_exist(scene(), "", green, "", "")', "no"),
        ('count(filter(scene(), large, "", metal, ""))', "2"),
        (
            'relate_filter_count(filter_unique(scene(), large, red, "", ""), left, "", blue, "", "")',
            "1",
        ),
        (
            'query_shape(relate_filter_unique(filter_unique(scene(), large, red, "", ""), right, "", "", rubber, ""))',
            "sphere",
        ),
        (
            'relate_filter_exist(filter_unique(scene(), large, red, "", ""), behind, small, "", "", "")',
            "no",
        ),
        (
            'count(relate_filter(filter_unique(scene(), small, red, "", ""), behind, large, "", "", ""))',
            "2",
        ),
    ],
)
def test_template_composite_nodes_are_the_chains_they_stand_for(scene, text, expected):
    assert answer(text, scene) == expected


def test_trace_renders_sets_objects_and_values_for_people(scene):
    result = run("query_color(unique(filter_shape(scene(), sphere)))", scene)
    assert result.valid and result.answer == "blue"
    assert [(s.index, s.call.function, s.type, s.output) for s in result.trace] == [
        (0, "scene", "ObjectSet", [0, 1, 2, 3]),
        (1, "filter_shape", "ObjectSet", [1]),
        (2, "unique", "Object", 1),
        (3, "query_color", "Color", "blue"),
    ]
    assert run("exist(scene())", scene).trace[-1].output == "yes"
    assert result.to_json()["trace"][1] == {
        "index": 1,
        "function": "filter_shape",
        "values": ["sphere"],
        "type": "ObjectSet",
        "output": [1],
    }


def test_a_program_ending_in_a_set_is_not_an_answer(scene):
    result = run("filter_color(scene(), red)", scene)
    assert not result.valid and result.answer is None
    assert "ObjectSet" in result.reason and result.trace[-1].output == [0, 3]
    assert answer("filter_color(scene(), red)", scene) is None


def test_empty_scene_counts_zero_and_unique_is_invalid():
    empty = SceneGraph(objects=())
    assert answer("count(scene())", empty) == "0"
    assert answer("exist(scene())", empty) == "no"
    assert answer("query_color(unique(scene()))", empty) is None


@pytest.mark.parametrize(
    "call, message",
    [
        (
            Call("count", (Call("scenes"),)),
            "node 0 (scenes): unknown function 'scenes'; did you mean 'scene'",
        ),
        (Call("count", ()), "node 0 (count): takes 1 input(s)"),
        (
            Call("count", (Call("unique", (Call("scene"),)),)),
            "node 2 (count): input 0 must be ObjectSet, but unique returns Object",
        ),
        (
            Call("count", (Call("filter_color", (Call("scene"),), ("pink",)),)),
            "node 1 (filter_color): side input 0 'pink' is not a Color",
        ),
        (
            Call("count", (Call("filter_color", (Call("scene"),), ("",)),)),
            "node 1 (filter_color): side input 0 '' is not a Color",
        ),
        (
            Call("count", (Call("filter_color", (Call("scene"),), ("red", "blue")),)),
            "node 1 (filter_color): takes 1 side input(s) (Color), got 2",
        ),
        (
            Call("filter_count", (Call("scene"),), ("large", "red", "metal", "cube", "big")),
            "node 1 (filter_count): takes 4 side input(s)",
        ),
        (
            Call("relate_filter_count", (Call("unique", (Call("scene"),)),), ("", "large")),
            "node 2 (relate_filter_count): side input 0 '' is not a Relation",
        ),
        (
            Call("count", (Call("relate", (Call("unique", (Call("scene"),)),), ("above",)),)),
            "node 2 (relate): side input 0 'above' is not a Relation",
        ),
    ],
)
def test_malformed_programs_raise_program_error_naming_the_node(scene, call, message):
    for trace in (True, False):
        with pytest.raises(ProgramError) as err:
            execute(Program(call), scene, trace=trace)
        assert message in str(err.value)
    with pytest.raises(ProgramError) as err:
        execute_batch([Program(Call("count", (Call("scene"),))), Program(call)], [scene], [0, 0])
    assert str(err.value).startswith("program 1: ") and message in str(err.value)


def test_malformed_node_after_an_invalid_unique_is_still_an_error(scene):
    # post-order reaches the invalid unique first; the malformed node must not be hidden by it
    bad = Call(
        "equal_object",
        (
            Call("unique", (Call("scene"),)),
            Call("unique", (Call("filter_color", (Call("scene"),), ("pink",)),)),
        ),
    )
    with pytest.raises(ProgramError, match="'pink' is not a Color"):
        execute(Program(bad), scene, trace=False)


def test_scene_binding_is_cached_per_scene_object(scene):
    assert bind_scene(scene) is bind_scene(scene)
    other = SceneGraph(objects=OBJECTS[:2])
    bound = bind_scene(other)
    assert bound is not bind_scene(scene) and bound.n == 2
    assert bound.bits["color"]["red"] == 0b01 and bound.bits["color"]["green"] == 0
    assert bind_scene(scene).rel["left"][1] == 0b1101
    assert bind_scene(scene).same["color"][0] == 0b1000


def test_an_operation_is_one_function_and_one_table_line(scene):
    def count_pairs(bs, objs):  # number of ordered pairs of distinct objects in the set
        n = objs.bit_count()
        return n * (n - 1)

    ops = dict(OPS)
    ops["count_pairs"] = OpSpec("count_pairs", ("ObjectSet",), (), "Integer", count_pairs)
    executor = SymbolicExecutor(ops)
    result = executor.execute(
        Program(Call("count_pairs", (Call("filter_color", (Call("scene"),), ("red",)),))), scene
    )
    assert result.answer == "2" and result.trace[-1].output == 2
    with pytest.raises(ProgramError, match="unknown function 'count_pairs'"):
        execute(Program(Call("count_pairs", (Call("scene"),))), scene)


def test_registered_operations_reach_both_executors_and_replacing_a_builtin_is_honoured(scene):
    original = OPS["count"]
    try:
        register(
            "count_pairs",
            ("ObjectSet",),
            (),
            "Integer",
            lambda bs, objs: objs.bit_count() * (objs.bit_count() - 1),
        )
        program = parse_program("count_pairs(filter_color(scene(), red))")
        assert execute(program, scene, trace=False).answer == "2"
        assert execute_batch([program, parse_program("count(scene())")], [scene], [0, 0]) == [
            "2",
            "4",
        ]
        register("count", ("ObjectSet",), (), "Integer", lambda bs, objs: objs.bit_count() + 100)
        assert (
            answer("count(filter_color(scene(), red))", scene) == "102"
        )  # fast, traced and batched
    finally:
        OPS.pop("count_pairs", None)
        register("count", original.inputs, original.side_inputs, original.output, original.fn)
    assert answer("count(filter_color(scene(), red))", scene) == "2"
    with pytest.raises(ProgramError, match="unknown function 'count_pairs'"):
        execute(parse_program("count_pairs(scene())"), scene)


def test_bound_rows_are_computed_on_read_by_index_and_by_get():
    """rel/same rows are lazy; .get (the question engine's read) must compute them too."""
    scene = sample_scene_graph(seed=5)
    bound = bind_scene(scene)
    for relation, rows in scene.relationships.items():
        expected = [sum(1 << j for j in js) for js in rows]
        assert [bound.rel.get(relation)[i] for i in range(len(rows))] == expected
        assert [bound.rel[relation][i] for i in range(len(rows))] == expected
    assert bound.rel.get("inside") is None
    colors = [o.attribute("color") for o in scene.objects]
    for i, c in enumerate(colors):
        others = sum(1 << j for j, c2 in enumerate(colors) if c2 == c and j != i)
        assert bound.same.get("color")[i] == others
