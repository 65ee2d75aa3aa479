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
