"""Node lists answered straight from JSON agree with from_clevr + execute, errors included."""

from __future__ import annotations

import copy

import pytest

from benchmarks.speed.executor_suite import generator_dag
from perception.synthetic import sample_scene_graphs
from physics.errors import DataError
from reasoning.dsl import from_clevr, to_clevr
from reasoning.errors import ProgramError
from reasoning.executor import OPS, execute, random_programs, register
from reasoning.executor.node_lists import answer_node_lists, clear_structure_cache
from tests.reasoning.test_executor_batched import pink_cube_scene


@pytest.fixture(scope="module")
def data():
    scenes = sample_scene_graphs(10, seed=7)
    programs = random_programs(400, seed=8, scenes=scenes)
    node_lists = []
    for k, p in enumerate(programs):
        nodes = to_clevr(p, style="type" if k % 2 else "function")
        node_lists.append(generator_dag(nodes) if k % 3 == 0 else nodes)
    idx = [k % len(scenes) for k in range(len(programs))]
    truth = [
        execute(from_clevr(n), scenes[i], trace=False).answer
        for n, i in zip(node_lists, idx, strict=True)
    ]
    return scenes, node_lists, idx, truth


@pytest.mark.parametrize("batched", [False, True])
def test_answers_equal_from_clevr_then_execute_in_both_spellings_and_as_dags(data, batched):
    scenes, node_lists, idx, truth = data
    assert sum(a is not None for a in truth) > 200
    assert sum(a is None for a in truth) > 0
    clear_structure_cache()
    first = answer_node_lists(node_lists, scenes, idx, batched=batched)
    again = answer_node_lists(node_lists, scenes, idx, batched=batched)  # compiled structures
    assert first == again == truth


@pytest.mark.parametrize("batched", [False, True])
def test_a_bad_node_list_of_a_compiled_structure_gets_the_slow_paths_error(data, batched):
    scenes, node_lists, idx, truth = data
    answer_node_lists(node_lists, scenes, idx, batched=batched)  # every structure compiled
    bad = copy.deepcopy(node_lists[:40])
    k = next(
        k
        for k, n in enumerate(bad)
        if any(len(x.get("value_inputs", x.get("side_inputs", []))) == 1 for x in n)
    )
    node = next(x for x in bad[k] if len(x.get("value_inputs", x.get("side_inputs", []))) == 1)
    node["value_inputs" if "value_inputs" in node else "side_inputs"] = ["pink"]
    bad[k + 1] = [dict(n, extra=1) for n in bad[k + 1]]  # another key: read by from_clevr
    bad[k + 2][0]["inputs"] = [5]
    errors: dict = {}
    names = [f"question {q}" for q in range(40)]
    got = answer_node_lists(bad, scenes, idx[:40], batched=batched, names=names, errors=errors)
    assert sorted(errors) == [k, k + 2]
    assert isinstance(errors[k], ProgramError) and str(errors[k]).startswith(f"question {k}: ")
    assert "'pink'" in str(errors[k])
    assert str(errors[k + 2]).startswith(f"question {k + 2}: node 0")
    expected = [None if q in errors else a for q, a in enumerate(truth[:40])]
    assert got == expected
    with pytest.raises(ProgramError, match=f"^question {k}: "):
        answer_node_lists(bad, scenes, idx[:40], batched=batched, names=names)


def test_wrong_side_input_counts_and_values_on_bare_nodes_are_refused_like_from_clevr(data):
    scenes, *_ = data
    good = [
        {"inputs": [], "function": "scene", "value_inputs": []},
        {"inputs": [0], "function": "filter_color", "value_inputs": ["red"]},
        {"inputs": [1], "function": "count", "value_inputs": []},
    ]
    answer_node_lists([good], scenes, [0])
    for k, values in [(1, ["red", "blue"]), (1, []), (2, ["red"]), (0, ["x"])]:
        bad = copy.deepcopy(good)
        bad[k]["value_inputs"] = values
        for batched in (False, True):
            with pytest.raises(ProgramError, match=rf"^program 0: node {k} "):
                answer_node_lists([bad], scenes, [0], batched=batched)


def test_invalid_answers_and_reasons_come_from_the_ordinary_executor(data):
    scenes, *_ = data
    nodes = [
        {"inputs": [], "type": "scene"},
        {"inputs": [0], "type": "unique"},
        {"inputs": [1], "type": "query_color"},
    ]
    for batched in (False, True):
        assert answer_node_lists([nodes] * 2, scenes, [0, 1], batched=batched) == [None, None]


def test_a_registered_operation_is_seen_at_the_next_call(data):
    scenes, *_ = data
    nodes = [{"inputs": [], "type": "scene"}, {"inputs": [0], "type": "count"}]
    original = OPS["count"]
    try:
        assert answer_node_lists([nodes], scenes, [0]) == [str(len(scenes[0]))]
        register("count", ("ObjectSet",), (), "Integer", lambda bs, objs: objs.bit_count() + 100)
        for batched in (False, True):
            assert answer_node_lists([nodes], scenes, [0], batched=batched) == [
                str(len(scenes[0]) + 100)
            ]
    finally:
        register("count", original.inputs, original.side_inputs, original.output, original.fn)
    assert answer_node_lists([nodes], scenes, [0]) == [str(len(scenes[0]))]


def test_an_invalid_unique_before_an_unknown_word_is_still_an_error(data):
    scenes, *_ = data
    good = [
        {"inputs": [], "type": "scene"},
        {"inputs": [0], "type": "unique"},
        {"inputs": [1], "type": "relate", "side_inputs": ["left"]},
        {"inputs": [2], "type": "filter_color", "side_inputs": ["red"]},
        {"inputs": [3], "type": "count"},
    ]
    bad = copy.deepcopy(good)
    bad[3]["side_inputs"] = ["pink"]
    for batched in (False, True):
        # scene 0 holds several objects: unique is invalid there
        assert answer_node_lists([good, good], scenes, [0, 0], batched=batched) == [None, None]
        with pytest.raises(
            ProgramError, match=r"^program 1: node 3 \(filter_color\): side input 0 'pink'"
        ):
            answer_node_lists([good, bad], scenes, [0, 0], batched=batched)


def test_template_composites_and_registered_operations_run_through_their_own_functions(data):
    scenes, *_ = data
    nodes = [
        {"inputs": [], "function": "scene", "value_inputs": []},
        {"inputs": [0], "function": "filter_count", "value_inputs": ["", "red"]},
    ]
    truth = [execute(from_clevr(nodes), s, trace=False).answer for s in scenes]
    for batched in (False, True):
        assert (
            answer_node_lists(
                [nodes] * len(scenes), scenes, list(range(len(scenes))), batched=batched
            )
            == truth
        )
    register("count_twice", ("ObjectSet",), (), "Integer", lambda bs, objs: 2 * objs.bit_count())
    try:
        nodes = [{"inputs": [], "type": "scene"}, {"inputs": [0], "type": "count_twice"}]
        for batched in (False, True):
            assert answer_node_lists([nodes], scenes, [1], batched=batched) == [
                str(2 * len(scenes[1]))
            ]
    finally:
        del OPS["count_twice"]
        register(
            "count", OPS["count"].inputs, (), "Integer", OPS["count"].fn
        )  # bump the table version


def test_scene_indices_out_of_range_are_refused(data):
    scenes, *_ = data
    nodes = [{"inputs": [], "type": "scene"}, {"inputs": [0], "type": "count"}]
    with pytest.raises(DataError, match=r"^program 1: scene index 99 is out of range 0\.\.9"):
        answer_node_lists([nodes, nodes], scenes, [0, 99])


@pytest.mark.parametrize("batched", [False, True])
def test_odd_json_gets_the_slow_paths_errors(data, batched):
    scenes, *_ = data
    odd = [
        [{"inputs": [], "function": ["scene"], "value_inputs": []}],
        [{"inputs": [], "function": "scene", "value_inputs": []}, "count"],
        [],
        {"function": "scene"},
    ]
    errors: dict = {}
    assert answer_node_lists(odd, scenes, [0] * 4, batched=batched, errors=errors) == [None] * 4
    assert sorted(errors) == [0, 1, 2, 3]
    assert "must be a non-empty string" in str(errors[0])
    assert "node 1 must be an object" in str(errors[1])
    assert "the node list is empty" in str(errors[2])
    assert "must be a list of nodes" in str(errors[3])


# ---------------------------------------------------------------------- against the plain interpreter
def _function_style(nodes: list[dict]) -> list[dict]:
    """A node list in the function/value_inputs spelling (what the plain interpreter reads)."""
    return [
        {
            "inputs": list(n["inputs"]),
            "function": n.get("function", n.get("type")),
            "value_inputs": list(n.get("value_inputs", n.get("side_inputs", []))),
        }
        for n in nodes
    ]


def _both_modes_cold_and_warm(node_lists, scenes, idx) -> list[list]:
    clear_structure_cache()
    got = []
    for batched in (False, True):
        got.append(answer_node_lists(node_lists, scenes, idx, batched=batched))
        got.append(answer_node_lists(node_lists, scenes, idx, batched=batched))  # compiled
    return got


def test_fast_paths_agree_with_the_plain_interpreter_on_official_shaped_dags():
    from benchmarks.speed.baseline import plain_answer
    from benchmarks.speed.executor_suite import official_nodes

    scenes = sample_scene_graphs(12, seed=31)
    programs = random_programs(300, seed=32, scenes=scenes)
    node_lists = [
        official_nodes(p, "type" if k % 2 else "function") for k, p in enumerate(programs)
    ]
    idx = [k % len(scenes) for k in range(len(programs))]
    dicts = [s.to_clevr() for s in scenes]
    truth = [
        plain_answer(_function_style(n), dicts[i]) for n, i in zip(node_lists, idx, strict=True)
    ]
    assert sum(from_clevr(n).graph is not None for n in node_lists) > 10  # generator DAGs present
    assert sum(a is None for a in truth) > 0 and sum(a is not None for a in truth) > 150
    for got in _both_modes_cold_and_warm(node_lists, scenes, idx):
        assert got == truth


def test_the_official_single_or_example_is_answered_as_the_official_engine_does():
    from benchmarks.speed.baseline import plain_answer
    from tests.conftest import SINGLE_OR

    scenes = sample_scene_graphs(20, seed=41)
    function_style = _function_style(SINGLE_OR)
    node_lists = [SINGLE_OR, function_style] * len(scenes)
    idx = [k // 2 for k in range(len(node_lists))]
    # "What number of cubes are objects or large blue things?": node 1 (all objects) is read
    # twice and node 0 by nobody; the union holds every object, so the answer is the cubes
    expected = [str(sum(o.shape == "cube" for o in s.objects)) for s in scenes]
    assert len(set(expected)) > 1
    truth = [plain_answer(function_style, s.to_clevr()) for s in scenes]
    assert truth == expected
    for got in _both_modes_cold_and_warm(node_lists, scenes, idx):
        assert got == [a for a in expected for _ in range(2)]


def test_empty_sets_unique_on_non_singletons_and_unread_invalid_nodes(data):
    from benchmarks.speed.baseline import plain_answer

    scenes, *_ = data
    scene = scenes[0]
    absent = next(
        c
        for c in ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
        if all(o.color != c for o in scene.objects)
    )
    many = next(
        c for c in ("cube", "sphere", "cylinder") if sum(o.shape == c for o in scene.objects) > 1
    )
    s, f = {"inputs": [], "function": "scene", "value_inputs": []}, "function"
    cases = [
        # count and exist of an empty set
        [
            s,
            {"inputs": [0], f: "filter_color", "value_inputs": [absent]},
            {"inputs": [1], f: "count", "value_inputs": []},
        ],
        [
            s,
            {"inputs": [0], f: "filter_color", "value_inputs": [absent]},
            {"inputs": [1], f: "exist", "value_inputs": []},
        ],
        # unique of an empty set, then of several objects: invalid
        [
            s,
            {"inputs": [0], f: "filter_color", "value_inputs": [absent]},
            {"inputs": [1], f: "unique", "value_inputs": []},
            {"inputs": [2], f: "query_size", "value_inputs": []},
        ],
        [
            s,
            {"inputs": [0], f: "filter_shape", "value_inputs": [many]},
            {"inputs": [1], f: "unique", "value_inputs": []},
            {"inputs": [2], f: "query_color", "value_inputs": []},
        ],
        # an unread unique on several objects stops the official engine: invalid
        [
            s,
            {"inputs": [0], f: "unique", "value_inputs": []},
            {"inputs": [0], f: "count", "value_inputs": []},
        ],
        # relate from a unique object and same_* (the object itself excluded)
        [
            s,
            {"inputs": [0], f: "unique", "value_inputs": []},
            {"inputs": [1], f: "relate", "value_inputs": ["left"]},
            {"inputs": [2], f: "count", "value_inputs": []},
        ],
    ]
    one, o = next(
        (sc, o)
        for sc in sample_scene_graphs(30, seed=43)
        for o in sc.objects
        if sum((p.shape, p.color) == (o.shape, o.color) for p in sc.objects) == 1
    )
    cases.append(
        [
            s,
            {"inputs": [0], f: "filter_shape", "value_inputs": [o.shape]},
            {"inputs": [1], f: "filter_color", "value_inputs": [o.color]},
            {"inputs": [2], f: "unique", "value_inputs": []},
            {"inputs": [3], f: "same_size", "value_inputs": []},
            {"inputs": [4], f: "count", "value_inputs": []},
        ]
    )
    pool = [scene, one]
    idx = [0] * (len(cases) - 1) + [1]
    truth = [plain_answer(n, pool[i].to_clevr()) for n, i in zip(cases, idx, strict=True)]
    assert truth[:5] == ["0", "no", None, None, None]
    assert truth[6] is not None
    for got in _both_modes_cold_and_warm(cases, pool, idx):
        assert got == truth


def test_scenes_the_value_table_cannot_hold_are_answered_by_the_slow_path(data):
    from perception.scene_graph import SceneGraph, SceneObject

    scenes, *_ = data
    big = SceneGraph(
        objects=tuple(
            SceneObject(
                "cube" if k % 3 else "sphere",
                "red" if k % 2 else "blue",
                "metal",
                "large",
                (float(k % 9) * 3 - 12, float(k // 9) * 3 - 12, 0.7),
            )
            for k in range(70)
        )
    )
    odd = pink_cube_scene()
    pool = [scenes[0], big, odd]
    node_lists = [
        [
            {"inputs": [], "type": "scene"},
            {"inputs": [0], "type": "filter_color", "side_inputs": ["red"]},
            {"inputs": [1], "type": "count"},
        ],
        [
            {"inputs": [], "type": "scene"},
            {"inputs": [0], "type": "unique"},
            {"inputs": [1], "type": "query_color"},
        ],
    ]
    lists = [n for n in node_lists for _ in pool]
    idx = [i for _ in node_lists for i in range(len(pool))]
    truth = [
        execute(from_clevr(n), pool[i], trace=False).answer for n, i in zip(lists, idx, strict=True)
    ]
    assert truth[1] == "35" and truth[5] == "pink"
    for got in _both_modes_cold_and_warm(lists, pool, idx):
        assert got == truth


def test_relation_rows_with_repeated_or_bad_indices_are_read_as_the_ordinary_executor_reads_them(
    data,
):
    import reasoning.executor.node_lists as node_lists_module
    from perception.scene_graph import SceneGraph

    scenes, *_ = data
    base = next(
        s for s in scenes if len({(o.shape, o.color, o.size, o.material) for o in s.objects}) == len(s)
    )
    rows = {r: [list(row) for row in base.relationships[r]] for r in base.relationships}
    rows["left"][0] = [1, 1, 2]  # a repeated index: OR-ed, not added
    # past the 64 objects a bitset holds: the slow path judges (SceneGraph.from_clevr refuses
    # such rows; batched mode, which only a hand-built SceneGraph can give them, is not checked)
    rows["left"][1] = [len(base) + 70]
    odd = SceneGraph(objects=base.objects, directions=base.directions, relationships=rows)

    def left_of(i: int) -> list[dict]:  # how many things are left of object i (named by its words)
        o = base.objects[i]
        return [
            {"inputs": [], "type": "scene"},
            {"inputs": [0], "type": "filter_shape", "side_inputs": [o.shape]},
            {"inputs": [1], "type": "filter_color", "side_inputs": [o.color]},
            {"inputs": [2], "type": "filter_size", "side_inputs": [o.size]},
            {"inputs": [3], "type": "filter_material", "side_inputs": [o.material]},
            {"inputs": [4], "type": "unique"},
            {"inputs": [5], "type": "relate", "side_inputs": ["left"]},
            {"inputs": [6], "type": "count"},
        ]

    lists = [left_of(0), left_of(1), left_of(0), left_of(2)]
    pool = [odd, base]
    idx = [0, 0, 1, 0]

    truth = [
        execute(from_clevr(n), pool[i], trace=False).answer for n, i in zip(lists, idx, strict=True)
    ]
    assert truth[0] == "2"  # objects 1 and 2, object 1 named twice
    assert truth[3] == str(len(rows["left"][2]))
    assert truth[1] == "1"  # as the plain interpreter counts the row's one entry
    for batched in (False, True):
        keep = [0, 2, 3] if batched else [0, 1, 2, 3]
        clear_structure_cache()
        for _ in range(2):
            got = answer_node_lists(
                [lists[k] for k in keep], pool, [idx[k] for k in keep], batched=batched
            )
            assert got == [truth[k] for k in keep]
            assert not node_lists_module._ROW_BITS  # the row cache lives for one call only


def _ordinary(nodes: list, scene) -> tuple[str | None, str | None]:
    """(answer, error) the ordinary way: from_clevr, the executor's type check, execute."""
    from reasoning.executor import default_executor

    try:
        program = from_clevr(nodes, where="program 0")
        try:
            default_executor.check(program)
        except ProgramError as exc:
            raise ProgramError(f"program 0: {exc}") from None
        return execute(program, scene, trace=False).answer, None
    except ProgramError as exc:
        return None, str(exc)


def test_structures_checked_from_the_signatures_accept_and_refuse_as_from_clevr_does(data):
    """Single mode checks a new structure from the operation signatures (no Program): mutated
    wiring and functions get from_clevr's error or its answer, cold and with the good
    structure compiled."""
    import random

    from reasoning.dsl.text import MAX_DEPTH

    scenes, node_lists, idx, _ = data
    rng = random.Random(3)
    names = sorted(OPS)
    mutated: list[tuple[list, int]] = []
    for nodes, i in zip(node_lists[:150], idx[:150], strict=True):
        for _ in range(3):
            bad = copy.deepcopy(nodes)
            k = rng.randrange(len(bad))
            node = bad[k]
            kind = rng.randrange(4)
            if kind == 0:  # rewire one input: earlier, later, itself, negative, not an int
                choice = rng.choice([rng.randrange(max(1, k)), k, k + 1, -1, True, 1.0, "0"])
                node["inputs"] = [choice, *node["inputs"][1:]]
            elif kind == 1:  # another operation in its place
                node["function" if "function" in node else "type"] = rng.choice(names)
            elif kind == 2:  # one input more or fewer
                node["inputs"] = list(node["inputs"][:-1]) if node["inputs"] else [0]
            else:  # not a dict
                bad[k] = list(node.items())
            mutated.append((bad, i))
    scene = [
        {"inputs": [], "function": "scene", "value_inputs": []},
        *[
            {"inputs": [j], "function": "filter_color", "value_inputs": ["red"]}
            for j in range(MAX_DEPTH)
        ],
    ]
    mutated.append(([*scene, {"inputs": [MAX_DEPTH], "function": "count", "value_inputs": []}], 0))
    truth = [_ordinary(bad, scenes[i]) for bad, i in mutated]
    for (bad, i), expected in zip(mutated, truth, strict=True):  # cold: each structure new
        clear_structure_cache()
        found: dict = {}
        got = answer_node_lists([bad], scenes, [i], batched=False, errors=found)
        assert (got[0], str(found[0]) if found else None) == expected, bad
    clear_structure_cache()
    answer_node_lists(node_lists, scenes, idx, batched=False)  # the good structures compiled
    found = {}
    got = answer_node_lists(
        [b for b, _ in mutated],
        scenes,
        [i for _, i in mutated],
        batched=False,
        names=["program 0"] * len(mutated),
        errors=found,
    )
    assert [(a, str(found[k]) if k in found else None) for k, a in enumerate(got)] == truth
    errors = sum(e is not None for _, e in truth)
    assert len(mutated) // 2 < errors < len(mutated)  # both kinds were tried


def test_a_falsy_side_input_field_on_a_bare_node_is_read_as_none_cold_and_warm(data):
    """The documented leniency: as the official engine and the plain interpreter, single mode
    ignores a falsy non-list side-input field on a node that takes none, whether or not its
    structure is compiled already (from_clevr refuses it)."""
    from benchmarks.speed.baseline import plain_answer

    scenes, *_ = data
    good = [
        {"inputs": [], "function": "scene", "value_inputs": []},
        {"inputs": [0], "function": "count", "value_inputs": []},
    ]
    for value in ("", 0, False, {}):
        bad = copy.deepcopy(good)
        bad[0]["value_inputs"] = value
        with pytest.raises(ProgramError, match="must be a list of strings"):
            from_clevr(bad)
        expected = plain_answer(bad, scenes[0].to_clevr())
        clear_structure_cache()
        cold = answer_node_lists([bad], scenes, [0], batched=False)
        warm = answer_node_lists([bad], scenes, [0], batched=False)
        assert cold == warm == [expected] == [str(len(scenes[0]))]
