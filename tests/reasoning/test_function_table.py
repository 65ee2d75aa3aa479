"""One function table: the catalogue holds every signature and each executor mode covers it.

The modes are declared next to their implementations (``register_mode``); these
tests fail when a catalogue function lacks an implementation in some mode or a
mode implements a function the catalogue does not know, and they show what
adding an operation takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import reasoning.executor  # noqa: F401  (declares the executor modes)
import reasoning.executor.soft as soft_module  # declares the soft mode
import reasoning.questions  # noqa: F401  (declares the question-engine mode)
from perception.synthetic import sample_scene_graph, sample_scene_graphs
from physics.errors import DataError
from physics.worlds.clevr_properties import RELATIONS
from reasoning.dsl import Call, Catalogue, Program, parse_program, to_clevr
from reasoning.dsl.function_table import check_coverage, coverage, implemented, modes
from reasoning.errors import ProgramError
from reasoning.executor import (
    OPS,
    OpSpec,
    ProgramSampler,
    SymbolicExecutor,
    bind_scene,
    compile_batch,
    encode,
    execute,
    execute_batch,
)
from reasoning.executor.check import check_call
from reasoning.executor.encode import register_encoder
from reasoning.executor.fast_eval import make_fast_eval
from reasoning.executor.ops import CATALOGUE, attach, detach, op_spec
from reasoning.executor.result import format_answer
from reasoning.executor.soft import SOFT_OPS, SoftScenes, attach_soft, soft_execute
from reasoning.questions.engine import FUNCTIONS, INVALID, SceneIndex, run_nodes
from reasoning.questions.question_types import QUESTION_TYPES, question_type

MODES = {
    "symbolic",
    "fast single",
    "batched",
    "node lists",
    "compiled node lists",
    "question engine",
    "soft",
}


def _relate_count(bs, obj: int, relation: str) -> int:
    """The new operation of the extension tests: how many objects are R of ``obj``."""
    return bs.rel[relation][obj].bit_count()


RELATE_COUNT = {
    "name": "relate_count",
    "inputs": ["Object"],
    "side_inputs": ["Relation"],
    "output": "Integer",
    "terminal": True,
}


# ---------------------------------------------------------------------- agreement
def test_every_executor_mode_implements_exactly_the_catalogue():
    tables = implemented()
    assert MODES <= set(tables)
    assert coverage(Catalogue.default(), tables) == []
    check_coverage(Catalogue.default())  # raises on any disagreement
    assert CATALOGUE is Catalogue.default()  # the executor's signatures are the catalogue's


def test_the_helper_reports_a_fake_op_and_a_missing_one():
    ops = dict(OPS)
    ops["count_pairs"] = OpSpec("count_pairs", ("ObjectSet",), (), "Integer", lambda bs, s: 0)
    tables = {**implemented(), "symbolic": ops, "fast single": make_fast_eval(ops)}
    tables["question engine"] = set(tables["question engine"]) - {"same_color"}
    assert coverage(Catalogue.default(), tables) == [
        "mode 'fast single' implements 'count_pairs', which the catalogue does not know",
        "mode 'question engine' lacks 'same_color'",
        "mode 'symbolic' implements 'count_pairs', which the catalogue does not know",
    ]
    with pytest.raises(DataError, match=r"CLEVR-v1.0 disagrees: .*'count_pairs'.*'same_color'"):
        check_coverage(Catalogue.default(), tables)


def test_attach_takes_the_signature_from_the_catalogue_and_refuses_unknown_names():
    spec = op_spec("relate", OPS["relate"].fn)
    assert (spec.inputs, spec.side_inputs, spec.output) == (("Object",), ("Relation",), "ObjectSet")
    with pytest.raises(
        ProgramError, match="unknown function 'relate_cont'; did you mean .*'relate'"
    ):
        op_spec("relate_cont", _relate_count)
    with pytest.raises(ProgramError, match="use attach"):
        reasoning.executor.register("count", ("ObjectSet",), (), "Bool", lambda bs, s: s != 0)


# ---------------------------------------------------------------------- extension
def _extended_catalogue(tmp_path: Path) -> Catalogue:
    """The CLEVR catalogue plus one entry, read back from a metadata file."""
    data = Catalogue.default().to_dict()
    data["functions"].append(RELATE_COUNT)
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(data))
    return Catalogue.load(path)


def test_adding_an_operation_is_one_entry_plus_one_implementation_per_mode(tmp_path):
    cat = _extended_catalogue(tmp_path)
    assert cat.check(parse_program("relate_count(unique(scene()), left)")) == "Integer"
    before = implemented()
    # no mode implements it yet: every one is reported
    assert coverage(cat, before) == [f"mode {m!r} lacks 'relate_count'" for m in sorted(before)]

    # one registration per mode (symbolic: attach; fast single, node lists and compiled node
    # lists: nothing, they fall back to the symbolic function; question engine: one
    # FUNCTIONS entry; batched: an encoder, soft: attach_soft, both standing in by name)
    ops = {**OPS, "relate_count": op_spec("relate_count", _relate_count, cat)}
    engine = {
        **FUNCTIONS,
        "relate_count": lambda ix, args, values: ix.rel[values[0]][args[0]].bit_count(),
    }
    tables = {
        **before,
        "symbolic": ops,
        "fast single": make_fast_eval(ops),
        "node lists": {*before["node lists"], *ops},
        "compiled node lists": {*before["compiled node lists"], *ops},
        "soft": {*before["soft"], "relate_count"},
        "question engine": {*before["question engine"], *engine},
    }
    assert coverage(cat, tables) == ["mode 'batched' lacks 'relate_count'"]
    tables["batched"] = {*before["batched"], "relate_count"}
    assert coverage(cat, tables) == []

    # and the new operation runs, traced and fast, and in the engine's convention
    scene = sample_scene_graph(seed=2)
    bound = bind_scene(scene)
    color, bits = next((c, m) for c, m in bound.bits["color"].items() if m.bit_count() == 1)
    program = parse_program(f"relate_count(unique(filter_color(scene(), {color})), left)")
    expected = len(scene.relationships["left"][bits.bit_length() - 1])
    executor = SymbolicExecutor(ops)
    traced, fast = executor.execute(program, scene), executor.execute(program, scene, trace=False)
    assert traced.valid and traced.answer == fast.answer == str(expected)
    assert run_nodes(SceneIndex(scene), to_clevr(program), engine)[-1] == expected


def _encode_relate_count(name, kids):
    """The batched form of relate_count: canonical tokens C (count) over R (relate)."""
    (objects,) = kids

    def enc(call, key, params):
        (a,) = call.args
        (relation,) = call.values
        key += ["C", "R"]
        params.append(RELATIONS.index(relation))
        objects[a.function](a, key, params)

    return enc


def _soft_relate_count(ctx, obj, relations):
    """The soft form of relate_count: the count distribution of the related set."""
    return SOFT_OPS["count"](ctx, SOFT_OPS["relate"](ctx, obj, relations))


def test_an_operation_registered_live_in_every_mode_runs_in_each(tmp_path, monkeypatch):
    cat = _extended_catalogue(tmp_path)
    scenes = sample_scene_graphs(6, seed=4)
    programs = [
        parse_program(f"relate_count(unique(filter_shape(scene(), {s})), behind)")
        for s in ("cube", "sphere", "cylinder")
    ]
    flat = [p for _ in scenes for p in programs]
    indices = [k for k in range(len(scenes)) for _ in programs]
    monkeypatch.setattr(encode, "_BUILDERS", dict(encode._BUILDERS))
    monkeypatch.setattr(encode, "_ENCODES", dict(encode._ENCODES))
    try:
        attach("relate_count", _relate_count, cat)  # symbolic (fast single follows)
        single = [execute(p, sc, trace=False).answer for sc in scenes for p in programs]
        assert single == [execute(p, sc).answer for sc in scenes for p in programs]
        assert any(a not in (None, "0") for a in single)
        # batched answers it through the single executor until it has an encoder ...
        assert len(compile_batch(flat).fallback) == len(flat)
        assert execute_batch(flat, scenes, indices) == single
        assert coverage(cat, implemented()) == [
            "mode 'batched' lacks 'relate_count'",
            "mode 'question engine' lacks 'relate_count'",
            "mode 'soft' lacks 'relate_count'",
        ]
        # ... and vectorises it once it has one; the engine needs its entry too
        register_encoder("relate_count", _encode_relate_count, _relate_count)
        monkeypatch.setitem(
            FUNCTIONS,
            "relate_count",
            lambda ix, args, values: ix.rel[values[0]][args[0]].bit_count(),
        )
        attach_soft("relate_count", _soft_relate_count)
        assert coverage(cat, implemented()) == []
        soft = soft_execute(flat, SoftScenes.from_scene_graphs(scenes), indices)
        assert [a if s is not None else None for a, s in zip(soft.answers, single, strict=True)] == single
        assert compile_batch(flat).fallback == []
        assert execute_batch(flat, scenes, indices) == single
        engine = [run_nodes(SceneIndex(sc), to_clevr(p))[-1] for sc in scenes for p in programs]
        assert [None if e is INVALID else str(e) for e in engine] == single
    finally:
        detach("relate_count")
        soft_module._SOFT.pop("relate_count", None)
        monkeypatch.undo()
    assert coverage(Catalogue.default(), implemented()) == []


def test_catalogue_extend_adds_functions_and_refuses_a_second_definition():
    cat = Catalogue.default().extend([RELATE_COUNT], types={"Speed": ["slow", "fast"]})
    assert cat.signature("relate_count").output == "Integer" and cat.values("Speed") == (
        "slow",
        "fast",
    )
    assert "relate_count" not in Catalogue.default()
    with pytest.raises(DataError, match="'count' is already defined"):
        Catalogue.default().extend([{"name": "count", "inputs": [], "output": "Integer"}])


def test_a_mode_can_be_declared_and_is_checked(monkeypatch):
    from reasoning.dsl import function_table

    monkeypatch.setitem(function_table._MODES, "toy soft", lambda: ["scene", "count"])
    assert "toy soft" in modes()
    problems = coverage(Catalogue.default(), implemented())
    assert problems and all(p.startswith("mode 'toy soft' lacks") for p in problems)
    assert len(problems) == len(Catalogue.default()) - 2


# ---------------------------------------------------------------------- one type-checker
@pytest.mark.parametrize(
    "text",
    [
        "count(filter_colour(scene(), red))",
        "count(scene(), scene())",
        "count(unique(scene()))",
        "equal_integer(count(scene()), exist(scene()))",
        "filter_color(scene(), red, blue)",
        "filter_color(scene(), cube)",
        "relate(unique(scene()), up)",
        "filter_count(scene(), large, red, wood, _)",
        "relate_filter(unique(scene()), _, _, _, _, _)",
    ],
)
def test_executor_and_catalogue_give_the_same_message(text):
    program = parse_program(text)
    with pytest.raises(ProgramError) as from_catalogue:
        Catalogue.default().check(program)
    with pytest.raises(ProgramError) as from_executor:
        check_call(program.root, OPS)
    assert str(from_executor.value) == str(from_catalogue.value)
    assert str(from_executor.value).startswith("node ")


def test_the_executor_reading_lets_composites_leave_trailing_slots_out():
    short = Call("filter_count", (Call("scene"),), ("large",))
    assert check_call(short, OPS) == "Integer"
    with pytest.raises(
        ProgramError, match=r"takes 4 side input\(s\) \(Size, Color, Material, Shape\), got 1"
    ):
        Catalogue.default().check(short)
    no_relation = Call("relate_filter", (Call("unique", (Call("scene"),)),))
    with pytest.raises(
        ProgramError, match=r"node 2 \(relate_filter\): side input 0 \(Relation\) is required"
    ):
        check_call(no_relation, OPS)


# ---------------------------------------------------------------------- one scene index
def test_the_question_engine_reads_the_executor_binding():
    scene = sample_scene_graph(seed=5)
    ix, bound = SceneIndex(scene), bind_scene(scene)
    assert ix.bits is bound.bits and ix.rel is bound.rel and ix.same is bound.same
    assert ix.filters[(None, None, None, None)] == bound.all


def test_the_question_engine_answers_like_the_executor():
    primitives = {n: s for n, s in OPS.items() if not s.optional_side}
    sampler = ProgramSampler(primitives, max_depth=6)
    rng = np.random.default_rng(0)
    scenes = sample_scene_graphs(10, seed=6)
    valid = 0
    for k in range(300):
        scene = scenes[k % len(scenes)]
        program = sampler.sample(rng, scene=scene)
        out = run_nodes(SceneIndex(scene), to_clevr(program))
        want = execute(program, scene, trace=False).answer
        if out[-1] is INVALID or len(out) < len(program):
            assert want is None
        else:
            valid += 1
            assert format_answer(out[-1], OPS[program.root.function].output) == want
    assert valid > 200


# ---------------------------------------------------------------------- question types
def test_question_types_come_from_the_catalogue_signatures():
    cat = Catalogue.default()
    roots = [n for n in cat.names if cat.signature(n).terminal]
    assert {question_type(n) for n in roots} == set(QUESTION_TYPES)
    assert [question_type(n) for n in ("relate_filter_exist", "equal_object", "less_than")] == [
        "exist",
        "compare_attribute",
        "compare_number",
    ]
    assert (
        question_type(Program(Call("filter_count", (Call("scene"),), ("", "", "", "")))) == "count"
    )
    with pytest.raises(ProgramError, match="root function 'unique' does not answer a question"):
        question_type("unique")
