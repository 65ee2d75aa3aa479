"""The compiled (C) path of node-list answering: one function table, same answers, same errors.

``reasoning.executor.compiled`` feeds the C module from the operation table; these
tests check that every catalogue function is either run in C or listed as left
to Python, and that answers, invalid executions and error messages are the
Python path's and the symbolic executor's, on thousands of generated questions,
the official ``single_or`` DAG and malformed node lists.  Without the built
module (no compiler) the tests that need it skip and say why.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from benchmarks.speed.executor_suite import official_nodes
from perception.synthetic import sample_scene_graphs
from reasoning.dsl import Catalogue, from_clevr
from reasoning.dsl.function_table import modes
from reasoning.errors import ProgramError
from reasoning.executor import OPS, attach, compiled, execute, random_programs
from reasoning.executor.node_lists import answer_node_lists
from reasoning.executor.ops import BUILTIN_FNS
from tests.reasoning.test_executor_batched import pink_cube_scene

needs_c = pytest.mark.skipif(
    not compiled.available(),
    reason="the C module reasoning.executor._cnodes is not built (pip install -e . with a C compiler)",
)


@pytest.fixture
def c_on():
    """The compiled path on for one test, even under NESY_NO_COMPILED=1 (these test the C module)."""
    before = compiled.use_compiled(True)
    yield
    compiled.use_compiled(before)


def test_every_catalogue_function_is_run_in_c_or_listed_as_left_to_python():
    names = set(Catalogue.default().names)
    assert not set(compiled.FORMS) & compiled.FALLBACK
    assert set(compiled.FORMS) | compiled.FALLBACK == names
    assert "compiled node lists" in modes()


@needs_c
def test_the_c_module_runs_every_form_it_is_given_and_knows_no_function_name(c_on):
    from reasoning.executor import _cnodes

    assert {kind for kind, _ in compiled.FORMS.values()} <= set(_cnodes.KINDS)
    assert compiled.handed_over() == set(compiled.FORMS)
    text = (Path(compiled.__file__).parent / "_cnodes.c").read_text(encoding="utf-8")
    # the function names come from the Python table: none is spelled in the C source
    assert not [n for n in Catalogue.default().names if f'"{n}"' in text and n not in _cnodes.KINDS]


def _answers(node_lists, scenes, idx, *, on: bool, batched: bool):
    """Answers and errors (type and message by position) with the compiled path on or off."""
    before = compiled.use_compiled(on)
    try:
        errors: dict = {}
        got = answer_node_lists(node_lists, scenes, idx, batched=batched, errors=errors)
        fallback = compiled.LAST_RUN["fallback"]
    finally:
        compiled.use_compiled(before)
    return got, {k: (type(e).__name__, str(e)) for k, e in errors.items()}, fallback


@pytest.fixture(scope="module")
def generated():
    scenes = sample_scene_graphs(40, seed=61)
    programs = random_programs(3000, seed=62, scenes=scenes)
    node_lists = [
        official_nodes(p, "type" if k % 2 else "function") for k, p in enumerate(programs)
    ]
    node_lists = json.loads(json.dumps(node_lists))  # as a questions file gives them
    idx = [k % len(scenes) for k in range(len(node_lists))]  # each on the scene it was made for
    truth = [
        execute(from_clevr(n), scenes[i], trace=False).answer
        for n, i in zip(node_lists, idx, strict=True)
    ]
    return scenes, node_lists, idx, truth


@needs_c
@pytest.mark.parametrize("batched", [False, True])
def test_c_answers_equal_the_symbolic_executor_on_thousands_of_generated_questions(
    generated, batched
):
    scenes, node_lists, idx, truth = generated
    assert sum(from_clevr(n).graph is not None for n in node_lists) > 100  # generator DAGs
    assert sum(a is None for a in truth) > 10 and sum(a is not None for a in truth) > 2000
    got, errors, fallback = _answers(node_lists, scenes, idx, on=True, batched=batched)
    assert got == truth and errors == {}
    assert fallback == 0  # every question was answered in C
    off, _, _ = _answers(node_lists, scenes, idx, on=False, batched=batched)
    assert off == truth


@needs_c
def test_the_official_single_or_dag_is_answered_in_c_as_the_official_engine_does():
    from tests.conftest import SINGLE_OR

    scenes = sample_scene_graphs(20, seed=41)
    lists = [copy.deepcopy(SINGLE_OR) for _ in scenes]
    for nodes in lists[::2]:  # half in the other spelling
        for n in nodes:
            n["function"] = n.pop("type", n.get("function"))
            n["value_inputs"] = n.pop("side_inputs", n.get("value_inputs", []))
    expected = [str(sum(o.shape == "cube" for o in s.objects)) for s in scenes]
    for batched in (False, True):
        got, errors, fallback = _answers(lists, scenes, list(range(20)), on=True, batched=batched)
        assert got == expected and errors == {} and fallback == 0


# ---------------------------------------------------------------------- malformed input
def _mutations(nodes: list[dict], rng: random.Random) -> list[object]:
    """Ways to break (or oddly spell) one node list, each as the Python path must judge it."""
    k = rng.randrange(len(nodes))
    fkey = "function" if "function" in nodes[0] else "type"
    skey = "value_inputs" if fkey == "function" else "side_inputs"
    other_f = "type" if fkey == "function" else "function"
    valued = [i for i, n in enumerate(nodes) if n.get(skey)]
    read = [i for i, n in enumerate(nodes) if n.get("inputs")]

    def edit(fn) -> list:
        out = copy.deepcopy(nodes)
        fn(out)
        return out

    cases: list[object] = [
        edit(lambda o: o[k].pop(fkey)),
        edit(lambda o: o[k].__setitem__(fkey, "frobnicate")),
        edit(lambda o: o[k].__setitem__(fkey, ["scene"])),
        edit(lambda o: o[k].__setitem__(fkey, "")),
        edit(lambda o: o[k].__setitem__(other_f, o[k][fkey])),  # both spellings, equal
        edit(lambda o: o[k].__setitem__(other_f, "count")),  # both spellings, differing
        edit(lambda o: o[k].__setitem__("inputs", [len(o)])),
        edit(lambda o: o[k].__setitem__("inputs", [-1])),
        edit(lambda o: o[k].__setitem__("inputs", "0")),
        edit(lambda o: o[k].__setitem__("extra", {"x": 1})),  # ignored by from_clevr
        edit(lambda o: o[k].pop("inputs")),
        edit(lambda o: o[k].__setitem__(skey, None)),
        edit(lambda o: o[k].__setitem__(skey, ["red", "blue"])),
        edit(lambda o: o[k].__setitem__(skey, [""])),
        edit(lambda o: o[k].__setitem__(skey, "red")),
        edit(lambda o: o[k].__setitem__(skey, 0)),
        edit(lambda o: o[k].__setitem__(skey, {})),
        edit(lambda o: o.__setitem__(k, tuple(o[k].items()))),
        edit(lambda o: o.__setitem__(k, "scene")),
        edit(lambda o: o.append({fkey: "count", "inputs": [len(o) - 1]})),  # count of an answer
        edit(lambda o: o.pop()),  # root without an answer (or empty)
        edit(lambda o: o.insert(0, {fkey: "scene", "inputs": [], skey: []})),  # indices shift
        tuple(nodes),
        {"nodes": nodes},
        [],
    ]
    if valued:
        v = rng.choice(valued)
        cases += [
            edit(lambda o: o[v].__setitem__(skey, ["pink"])),
            edit(lambda o: o[v].__setitem__(skey, [1])),
            edit(lambda o: o[v].__setitem__(skey, [])),
            edit(lambda o: o[v].__setitem__(skey, ("cube",))),
            edit(lambda o: o[v].__setitem__(skey, ["left"])),  # a relation where a value goes
            edit(lambda o: o[v].__setitem__(skey, ["<C>"])),
        ]
    if read:
        r = rng.choice(read)
        cases += [
            edit(lambda o: o[r].__setitem__("inputs", [True] * len(o[r]["inputs"]))),
            edit(lambda o: o[r].__setitem__("inputs", [float(j) for j in o[r]["inputs"]])),
            edit(lambda o: o[r].__setitem__("inputs", tuple(o[r]["inputs"]))),
            edit(lambda o: o[r].__setitem__("inputs", o[r]["inputs"] * 2)),
            edit(lambda o: o[r].__setitem__("inputs", [])),
            edit(lambda o: o[r].__setitem__("inputs", [2**70])),
            edit(lambda o: o[r].__setitem__(fkey, "exist")),  # types may no longer fit
            edit(lambda o: o[r].__setitem__(fkey, "filter_count")),  # a composite: Python
        ]
    return cases


@needs_c
@pytest.mark.parametrize("batched", [False, True])
def test_malformed_node_lists_get_the_python_paths_answers_and_errors(generated, batched):
    scenes, node_lists, idx, _ = generated
    rng = random.Random(5)
    bad, bad_idx = [], []
    for k in range(0, len(node_lists), 40):
        cases = _mutations(node_lists[k], rng)
        bad += cases
        bad_idx += [idx[k]] * len(cases)
        bad.append(node_lists[k])  # a good one between them
        bad_idx.append(idx[k])
    assert len(bad) > 2000
    on, errors_on, fallback = _answers(bad, scenes, bad_idx, on=True, batched=batched)
    off, errors_off, _ = _answers(bad, scenes, bad_idx, on=False, batched=batched)
    assert on == off
    assert errors_on == errors_off
    assert len(errors_on) > 500  # most mutations are errors ...
    assert 0 < fallback < len(bad)  # ... which the C path leaves to Python
    # and the first error is raised when no errors dict is given, as by the Python path
    first = min(errors_on)
    with pytest.raises(ProgramError) as info:
        answer_node_lists(bad, scenes, bad_idx, batched=batched)
    assert str(info.value) == errors_on[first][1]


@needs_c
def test_scenes_c_cannot_bind_are_answered_by_python(generated):
    from perception.scene_graph import SceneGraph, SceneObject

    scenes, node_lists, _, _ = generated
    big = SceneGraph(
        objects=tuple(
            SceneObject("cube", "red" if k % 2 else "blue", "metal", "large", (k * 2.0, 0.0, 0.7))
            for k in range(70)
        )
    )
    pool = [scenes[0], big, pink_cube_scene(), scenes[1]]
    lists = node_lists[:400]
    idx = [k % len(pool) for k in range(len(lists))]
    truth = [
        execute(from_clevr(n), pool[i], trace=False).answer for n, i in zip(lists, idx, strict=True)
    ]
    for batched in (False, True):
        got, errors, fallback = _answers(lists, pool, idx, on=True, batched=batched)
        assert got == truth and errors == {}
        assert fallback == sum(i in (1, 2) for i in idx)


@needs_c
def test_a_replaced_built_in_is_not_run_in_c(generated, c_on):
    scenes, node_lists, idx, _ = generated

    def no_red(bs, objs, value):  # filter_color that never finds red
        return 0 if value == "red" else BUILTIN_FNS["filter_color"](bs, objs, value)

    attach("filter_color", no_red)
    try:
        assert "filter_color" not in compiled.handed_over()
        truth = [
            execute(from_clevr(n), scenes[i], trace=False).answer
            for n, i in zip(node_lists[:500], idx[:500], strict=True)
        ]
        got, _, fallback = _answers(node_lists[:500], scenes, idx[:500], on=True, batched=False)
        assert got == truth and fallback > 0
    finally:
        attach("filter_color", BUILTIN_FNS["filter_color"])
    assert OPS["filter_color"].fn is BUILTIN_FNS["filter_color"]
    assert compiled.handed_over() == set(compiled.FORMS)


def test_without_the_c_module_the_python_path_answers(generated):
    scenes, node_lists, idx, truth = generated
    got, errors, _ = _answers(node_lists[:300], scenes, idx[:300], on=False, batched=False)
    assert got == truth[:300] and errors == {}
    assert compiled.LAST_RUN["compiled"] is False


def test_nesy_no_compiled_in_the_environment_turns_the_c_path_off():
    import os
    import subprocess
    import sys

    code = "from reasoning.executor import compiled; print(compiled.status()['enabled'], compiled.module())"
    env = {**os.environ, "NESY_NO_COMPILED": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "None"]


@needs_c
@pytest.mark.parametrize("batched", [False, True])
def test_scene_objects_read_without_attribute_lookups_still_answer_as_python(generated, batched):
    # The C module reads an object's attributes straight from its inline values where CPython
    # keeps them there; objects kept otherwise are read through getattr.  Both must give the
    # symbolic executor's answers, and a change to an object is seen by the next call.
    from perception.scene_graph import SceneGraph, SceneObject
    from reasoning.executor.bound_scene import clear_binding_cache

    class Shouting(SceneObject):  # reads its colour through Python code: every one is red
        def __getattribute__(self, name):
            value = super().__getattribute__(name)
            return "red" if name == "color" else value

    scenes, node_lists, _, _ = generated
    plain = scenes[2]
    with_dict = SceneGraph(objects=tuple(SceneObject(**vars(o)) for o in scenes[3].objects))
    assert all(isinstance(vars(o), dict) for o in with_dict.objects)  # __dict__ now made
    shouting = SceneGraph(objects=tuple(Shouting(**vars(o)) for o in scenes[4].objects))
    changed = SceneGraph(objects=tuple(SceneObject(**vars(o)) for o in scenes[5].objects))
    pool = [plain, with_dict, shouting, changed]
    lists = node_lists[:600]
    idx = [k % len(pool) for k in range(len(lists))]

    def truth():
        return [
            execute(from_clevr(n), pool[i], trace=False).answer
            for n, i in zip(lists, idx, strict=True)
        ]

    before = truth()
    got, errors, fallback = _answers(lists, pool, idx, on=True, batched=batched)
    assert got == before and errors == {} and fallback == 0
    # the same objects changed in place (frozen dataclasses, changed anyway): the next call
    # reads the new values
    for o in changed.objects:
        object.__setattr__(o, "color", "cyan" if o.color != "cyan" else "gray")
        object.__setattr__(o, "shape", "sphere")
    clear_binding_cache()  # the symbolic executor's own cache of bound scenes
    after = truth()
    assert after != before
    got, errors, fallback = _answers(lists, pool, idx, on=True, batched=batched)
    assert got == after and errors == {} and fallback == 0


@needs_c
@pytest.mark.parametrize("batched", [False, True])
def test_node_dicts_of_any_layout_are_read_alike(generated, batched):
    # json.loads gives compact dicts of str keys, which the C module reads straight from their
    # table; a dict with a deleted entry, or with a key that is not a str, must read the same
    scenes, node_lists, idx, truth = generated
    lists = copy.deepcopy(node_lists[:500])
    for k, nodes in enumerate(lists):
        for n in nodes:
            if k % 3 == 0:
                n["note"] = "x"
                del n["note"]  # a deleted entry in the table
            elif k % 3 == 1:
                n[7] = "ignored"  # a key that is not a str: another table kind
    got, errors, _ = _answers(lists, scenes, idx[:500], on=True, batched=batched)
    off, errors_off, _ = _answers(lists, scenes, idx[:500], on=False, batched=batched)
    assert got == off and errors == errors_off
    assert got == truth[:500]


class _Key(str):
    """A str subclass as a node key: the C module must leave such a node list to Python."""


@needs_c
@pytest.mark.parametrize("batched", [False, True])
def test_node_keys_of_many_parses_and_kinds_are_recognised_alike(generated, batched):
    # The C module finds a key by its address in a small table of the keys it has seen (one
    # key object per name within a json.loads parse).  Keys of many separate parses (new
    # objects each time, some landing in slots held by live keys), keys built at run time,
    # str-subclass keys and unknown keys must all read as the Python path reads them.
    scenes, node_lists, idx, truth = generated
    n = 300
    lists = [json.loads(json.dumps(nodes)) for nodes in node_lists[:n]]  # a parse per question
    got, errors, fallback = _answers(lists, scenes, idx[:n], on=True, batched=batched)
    assert got == truth[:n] and errors == {} and fallback == 0
    built = copy.deepcopy(node_lists[:n])
    for k, nodes in enumerate(built):
        for j, node in enumerate(nodes):
            old = list(node.items())
            node.clear()
            for key, value in old:
                if k % 3 == 0:  # an equal key made at run time (not the parse's object)
                    key = "".join(list(key))
                elif k % 3 == 1 and j == 0:  # a str subclass: left to Python
                    key = _Key(key)
                node[key] = value
            if k % 5 == 0:
                node["extra" + str(j)] = 1  # an unknown key: ignored, as from_clevr does
    got, errors, fallback = _answers(built, scenes, idx[:n], on=True, batched=batched)
    off, errors_off, _ = _answers(built, scenes, idx[:n], on=False, batched=batched)
    assert got == off == truth[:n] and errors == errors_off == {}
    assert fallback == len(range(1, n, 3))  # exactly the node lists with a str-subclass key


@needs_c
def test_the_name_comparison_tells_apart_strings_differing_in_any_one_character():
    # Names are compared in whole words, the last one overlapping the one before (a lookup
    # compares them only after their hashes matched, so they are tested here directly)
    from reasoning.executor import _cnodes

    for n in range(41):
        for text in ("".join(chr(97 + (7 * i) % 26) for i in range(n)), "\u00e9" * n):
            assert _cnodes._same_str(text, "".join(list(text)))  # equal, another object
            assert not _cnodes._same_str(text, text + "a")
            assert not _cnodes._same_str(text + "a", text)
            for pos in range(n):
                changed = text[:pos] + chr(ord(text[pos]) ^ 1) + text[pos + 1 :]
                assert not _cnodes._same_str(text, changed), (text, pos)
                assert not _cnodes._same_str(changed, text), (text, pos)
    assert not _cnodes._same_str("cube", "cub\u00e9")  # same length, other kinds
    with pytest.raises(TypeError):
        _cnodes._same_str("a", b"a")


@needs_c
@pytest.mark.parametrize("batched", [False, True])
def test_names_and_words_differing_in_any_one_character_are_told_apart(generated, batched):
    # End to end: a name or word changed at any one position, of any length, is an error of
    # the Python path (never taken for the real one), and an equal one made at run time
    # (another object, hash computed on first use) is answered in C.
    scenes, node_lists, idx, truth = generated
    bad, bad_idx, good, good_idx, lengths = [], [], [], [], set()
    for k in range(0, 600, 25):
        nodes = node_lists[k]
        fkey = "function" if "function" in nodes[0] else "type"
        skey = "value_inputs" if fkey == "function" else "side_inputs"
        for j, node in enumerate(nodes):
            for key in (fkey, skey):
                value = node.get(key)
                word = value if key == fkey else (value[0] if value else None)
                if not word:
                    continue
                for pos in range(len(word)):
                    for ch in (chr(ord(word[pos]) ^ 1),):
                        changed = word[:pos] + ch + word[pos + 1 :]
                        if changed == word:
                            continue
                        out = copy.deepcopy(nodes)
                        out[j][key] = changed if key == fkey else [changed]
                        lengths.add(len(changed))
                        bad.append(out)
                        bad_idx.append(idx[k])
                out = copy.deepcopy(nodes)
                same = "".join(list(word))  # equal, another object
                out[j][key] = same if key == fkey else [same]
                good.append(out)
                good_idx.append(idx[k])
    # below four, four to seven, exactly eight, and over eight characters
    assert {3, 4, 5, 6, 8, 9, 12, 13, 14, 15} <= lengths and len(bad) > 500
    on, errors_on, fallback = _answers(bad, scenes, bad_idx, on=True, batched=batched)
    off, errors_off, _ = _answers(bad, scenes, bad_idx, on=False, batched=batched)
    assert on == off and errors_on == errors_off
    assert fallback == len(bad) and len(errors_on) == len(bad)  # every one is an error
    got, errors, fallback = _answers(good, scenes, good_idx, on=True, batched=batched)
    expected = [
        execute(from_clevr(n), scenes[i], trace=False).answer
        for n, i in zip(good, good_idx, strict=True)
    ]
    assert got == expected and errors == {} and fallback == 0
