"""DAG programs (the official CLEVR generator's node lists) run as the official engine runs them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.speed.executor_suite import generator_dag
from perception.scene_graph import SceneGraph, SceneObject
from perception.synthetic import sample_scene_graphs
from reasoning.dsl import from_clevr, parse_program, to_clevr
from reasoning.errors import ProgramError
from reasoning.executor import (
    OPS,
    SymbolicExecutor,
    compile_batch,
    default_executor,
    execute,
    execute_batch,
)
from tests.conftest import SINGLE_OR

# 0 large blue cube, 1 small red cube, 2 large blue sphere, 3 small blue cylinder.
OBJECTS = (
    SceneObject("cube", "blue", "metal", "large", (0.0, 0.0, 0.7)),
    SceneObject("cube", "red", "rubber", "small", (2.0, 0.0, 0.35)),
    SceneObject("sphere", "blue", "metal", "large", (-2.0, 1.0, 0.7)),
    SceneObject("cylinder", "blue", "rubber", "small", (0.0, -2.0, 0.35)),
)


@pytest.fixture(scope="module")
def scene() -> SceneGraph:
    return SceneGraph(objects=OBJECTS, image_index=0)


def official_answer(nodes: list[dict], scene: SceneGraph) -> str | None:
    """The official engine's loop (question_engine.answer_question), on our operations.

    Every node in list order, from its inputs' outputs; stop at the first invalid node.
    """
    from reasoning.executor import bind_scene
    from reasoning.executor.ops import InvalidExecution

    bs = bind_scene(scene)
    outs: list[object] = []
    for node in nodes:
        spec = OPS[node["type"]]
        try:
            outs.append(
                spec.fn(bs, *[outs[j] for j in node["inputs"]], *node.get("side_inputs", []))
            )
        except InvalidExecution:
            return None
    value = outs[-1]
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def test_the_official_single_or_question_is_answered_as_the_official_engine_does(scene):
    program = from_clevr(SINGLE_OR)
    # objects or large blue things = every object; the cubes among them: 0 and 1
    assert official_answer(SINGLE_OR, scene) == "2"
    for trace in (True, False):
        assert execute(program, scene, trace=trace).answer == "2"
    assert execute_batch([program], [scene], [0]) == ["2"]


def test_dag_trace_has_one_step_per_listed_node_in_list_order(scene):
    result = execute(from_clevr(SINGLE_OR), scene)
    assert [s.index for s in result.trace] == list(range(7))
    assert [s.call.function for s in result.trace] == [n["type"] for n in SINGLE_OR]
    assert result.trace[1].output == [0, 1, 2, 3]
    assert result.trace[3].output == [0, 2]  # large blue things
    assert result.trace[5].output == [0, 1]


def test_shared_nodes_are_evaluated_once(scene):
    calls = []

    def scene_fn(bs):
        calls.append(1)
        return bs.all

    ops = dict(OPS)
    ops["scene"] = dataclasses.replace(OPS["scene"], fn=scene_fn)
    executor = SymbolicExecutor(ops)
    for trace in (True, False):
        calls.clear()
        assert executor.execute(from_clevr(SINGLE_OR), scene, trace=trace).answer == "2"
        assert len(calls) == 2  # node 0 and node 1, each once; node 1 has two readers


def test_unread_nodes_do_not_change_the_answer_but_an_invalid_one_stops_it_as_officially(scene):
    valid_unread = [
        {"inputs": [], "type": "scene"},
        {"inputs": [0], "type": "filter_color", "side_inputs": ["red"]},  # read by nobody
        {"inputs": [], "type": "scene"},
        {"inputs": [2], "type": "count"},
    ]
    program = from_clevr(valid_unread)
    assert to_clevr(program, style="type") == valid_unread
    assert execute(program, scene).answer == "4" == official_answer(valid_unread, scene)
    assert execute_batch([program], [scene], [0]) == ["4"]
    # An unread unique of four objects: the official engine stops there (__INVALID__).
    invalid_unread = [
        {"inputs": [], "type": "scene"},
        {"inputs": [0], "type": "unique"},
        {"inputs": [], "type": "scene"},
        {"inputs": [2], "type": "count"},
    ]
    program = from_clevr(invalid_unread)
    assert official_answer(invalid_unread, scene) is None
    result = execute(program, scene)
    assert result.answer is None and not result.valid
    assert result.reason is not None and result.reason.startswith("node 1 (unique)")
    assert execute_batch([program], [scene], [0]) == [None]


def test_malformed_unread_nodes_are_program_errors(scene):
    nodes = [
        {"inputs": [], "type": "scene"},
        {"inputs": [0], "type": "filter_color", "side_inputs": ["large"]},
        {"inputs": [], "type": "scene"},
        {"inputs": [2], "type": "count"},
    ]
    with pytest.raises(
        ProgramError, match=r"unread node 1: node 1 \(filter_color\): side input 0 'large'"
    ):
        default_executor.check(from_clevr(nodes))
    with pytest.raises(ProgramError, match=r"^program 1: unread node 1"):
        compile_batch([parse_program("count(scene())"), from_clevr(nodes)])


def test_batched_and_single_agree_on_dag_programs():
    from reasoning.executor import random_programs

    scenes = sample_scene_graphs(12, seed=3)
    trees = random_programs(300, seed=5, scenes=scenes)
    dags = [from_clevr(generator_dag(to_clevr(p, style="type"))) for p in trees]
    assert sum(p.graph is not None for p in dags) > 30  # two-branch programs
    idx = [k % len(scenes) for k in range(len(dags))]
    single = [execute(p, scenes[i], trace=False).answer for p, i in zip(dags, idx, strict=True)]
    traced = [execute(p, scenes[i]).answer for p, i in zip(dags, idx, strict=True)]
    trees_single = [
        execute(p, scenes[i], trace=False).answer for p, i in zip(trees, idx, strict=True)
    ]
    assert single == traced == trees_single == execute_batch(dags, scenes, idx)
    assert sum(a is not None for a in single) > 100


WORD = {"Size": "large", "Color": "red", "Material": "metal", "Shape": "cube", "Relation": "left"}


def test_official_template_programs_as_generated_dags_run_in_every_mode(shared_clevr: Path):
    scenes = sample_scene_graphs(6, seed=1)
    programs = []
    for path in sorted((shared_clevr / "templates").glob("*.json")):
        for template in json.loads(path.read_text()):
            words = {p["name"]: WORD[p["type"]] for p in template["params"]}
            filled = [
                {**n, "side_inputs": [words[v] for v in n.get("side_inputs", [])]}
                for n in template["nodes"]
            ]
            programs.append(from_clevr(generator_dag(filled), where=path.name))
    assert len(programs) == 90 and sum(p.graph is not None for p in programs) == 38
    for k, scene in enumerate(scenes):
        single = [execute(p, scene, trace=False).answer for p in programs]
        traced = [execute(p, scene).answer for p in programs]
        assert execute_batch(programs, [scene], [0] * len(programs)) == single == traced, k
