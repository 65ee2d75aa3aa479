"""CLEVR node lists and NS-VQA token sequences: round trips and errors naming node and field."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning.dsl import (
    Call,
    Catalogue,
    Program,
    from_clevr,
    from_postfix_tokens,
    from_prefix_tokens,
    parse_program,
    postorder_positions,
    sample_program,
    to_clevr,
    to_postfix_tokens,
    to_prefix_tokens,
    to_text,
)
from reasoning.dsl.text import MAX_DEPTH
from reasoning.errors import ProgramError
from tests.conftest import SINGLE_OR

# "Is the number of red things less than the number of cubes?" as stored in
# the official CLEVR v1.0 question files (function / value_inputs spelling).
OFFICIAL_STYLE = [
    {"inputs": [], "function": "scene", "value_inputs": []},
    {"inputs": [0], "function": "filter_color", "value_inputs": ["red"]},
    {"inputs": [1], "function": "count", "value_inputs": []},
    {"inputs": [], "function": "scene", "value_inputs": []},
    {"inputs": [3], "function": "filter_shape", "value_inputs": ["cube"]},
    {"inputs": [4], "function": "count", "value_inputs": []},
    {"inputs": [2, 5], "function": "less_than", "value_inputs": []},
]
OFFICIAL_TEXT = "less_than(count(filter_color(scene(), red)), count(filter_shape(scene(), cube)))"


def _templates(shared_clevr: Path) -> list[tuple[str, dict]]:
    out = []
    for path in sorted((shared_clevr / "templates").glob("*.json")):
        for i, template in enumerate(json.loads(path.read_text())):
            out.append((f"{path.name}[{i}]", template))
    return out


# ----------------------------------------------------------------- CLEVR node lists


def test_official_style_reads_and_writes_back_identically() -> None:
    program = from_clevr(OFFICIAL_STYLE)
    assert to_text(program) == OFFICIAL_TEXT
    assert to_clevr(program) == OFFICIAL_STYLE
    assert to_clevr(program, style="function") == OFFICIAL_STYLE


def test_generator_style_uses_type_and_side_inputs_only_when_present() -> None:
    nodes = to_clevr(parse_program(OFFICIAL_TEXT), style="type")
    assert nodes[0] == {"inputs": [], "type": "scene"}
    assert nodes[1] == {"inputs": [0], "type": "filter_color", "side_inputs": ["red"]}
    assert nodes[-1] == {"inputs": [2, 5], "type": "less_than"}
    assert from_clevr(nodes) == from_clevr(OFFICIAL_STYLE)


def test_missing_side_inputs_and_inputs_mean_none() -> None:
    program = from_clevr([{"type": "scene"}, {"type": "count", "inputs": [0]}])
    assert program == Program(Call("count", (Call("scene"),)))


def test_node_order_is_post_order_as_program_nodes() -> None:
    program = parse_program(OFFICIAL_TEXT)
    assert [n["function"] for n in to_clevr(program)] == [c.function for c in program.nodes()]


def test_random_programs_round_trip_through_every_format() -> None:
    rng = random.Random(11)
    cat = Catalogue.default()
    for i in range(300):
        program = sample_program(cat, rng, template_only=i % 3 == 0, max_depth=7)
        for style in ("function", "type"):
            nodes = to_clevr(program, style=style)
            assert from_clevr(nodes) == program
            assert to_clevr(from_clevr(nodes), style=style) == nodes
            assert postorder_positions(nodes) == list(range(len(nodes)))
        assert from_prefix_tokens(to_prefix_tokens(program)) == program
        assert from_postfix_tokens(to_postfix_tokens(program)) == program
        assert json.loads(json.dumps(to_clevr(program))) == to_clevr(program)


def test_official_templates_are_trees(shared_clevr: Path) -> None:
    templates = _templates(shared_clevr)
    assert len(templates) == 90
    for name, template in templates:
        nodes = template["nodes"]
        reads = [0] * len(nodes)
        for i, node in enumerate(nodes):
            for j in node["inputs"]:
                assert j < i, name
                reads[j] += 1
        assert reads[:-1] == [1] * (len(nodes) - 1), f"{name} is a DAG, not a tree"
        assert reads[-1] == 0, name


def test_official_templates_round_trip_through_every_format(shared_clevr: Path) -> None:
    cat = Catalogue.default()
    reordered = 0
    for name, template in _templates(shared_clevr):
        nodes = template["nodes"]
        program = from_clevr(nodes, where=name)
        assert cat.check(program, allow_placeholders=True) in {
            "Integer",
            "Bool",
            "Shape",
            "Color",
            "Size",
            "Material",
        }, name
        # Same tree in post-order: every node reappears at its mapped position,
        # reading the mapped positions of its inputs.
        positions = postorder_positions(nodes, where=name)
        assert sorted(positions) == list(range(len(nodes)))
        written = to_clevr(program, style="type")
        for i, node in enumerate(nodes):
            back = written[positions[i]]
            assert back["type"] == node["type"], name
            assert back.get("side_inputs", []) == node.get("side_inputs", []), name
            assert back["inputs"] == [positions[j] for j in node["inputs"]], name
        reordered += positions != list(range(len(nodes)))
        assert from_clevr(written) == program
        assert parse_program(to_text(program)) == program
        assert from_prefix_tokens(to_prefix_tokens(program)) == program
        assert from_postfix_tokens(to_postfix_tokens(program)) == program
    # The comparison family lists both filter_unique branches before the queries.
    assert reordered > 0


def test_postorder_positions_of_a_breadth_first_list() -> None:
    nodes = [
        {"type": "scene"},
        {"type": "scene"},
        {"type": "unique", "inputs": [0]},
        {"type": "unique", "inputs": [1]},
        {"type": "equal_object", "inputs": [2, 3]},
    ]
    assert postorder_positions(nodes) == [0, 2, 1, 3, 4]
    assert [n["type"] for n in to_clevr(from_clevr(nodes), style="type")] == [
        "scene",
        "unique",
        "scene",
        "unique",
        "equal_object",
    ]


@pytest.mark.parametrize(
    ("nodes", "pattern"),
    [
        ({"type": "scene"}, r"a CLEVR program must be a list of nodes, got dict"),
        ([], r"the node list is empty"),
        ([["scene"]], r"node 0 must be an object, got list"),
        ([{"inputs": []}], r"node 0 has neither 'function' nor 'type'"),
        ([{"type": 3}], r"node 0 field 'function'/'type' must be a non-empty string"),
        (
            [{"type": "scene"}, {"type": "count", "inputs": [1]}],
            r"node 1 \(count\) field 'inputs' references node 1; a node may only read earlier nodes \(0..0\)",
        ),
        (
            [{"type": "scene"}, {"type": "count", "inputs": [5]}],
            r"node 1 \(count\) field 'inputs' references node 5",
        ),
        (
            [{"type": "scene"}, {"type": "count", "inputs": [-1]}],
            r"node 1 \(count\) field 'inputs' references node -1",
        ),
        (
            [{"type": "scene"}, {"type": "count", "inputs": ["0"]}],
            r"node 1 \(count\) field 'inputs' holds '0'; inputs are integer indices",
        ),
        (
            [{"type": "scene"}, {"type": "count", "inputs": [True]}],
            r"node 1 \(count\) field 'inputs' holds True",
        ),
        (
            [{"type": "scene"}, {"type": "count", "inputs": [0.0]}],
            r"node 1 \(count\) field 'inputs' holds 0.0",
        ),
        (
            [{"type": "scene"}, {"type": "count", "inputs": 0}],
            r"node 1 \(count\) field 'inputs' must be a list",
        ),
        (
            [{"type": "scene", "side_inputs": "red"}],
            r"node 0 \(scene\) field 'value_inputs'/'side_inputs' must be a list of strings",
        ),
        (
            [{"type": "scene", "value_inputs": [1]}],
            r"node 0 \(scene\) field 'value_inputs'/'side_inputs' must be a list of strings",
        ),
        (
            [{"type": "scene", "function": "count"}],
            r"node 0 has both 'function' \('count'\) and 'type' \('scene'\)",
        ),
    ],
)
def test_bad_node_lists_name_the_node_and_field(nodes: object, pattern: str) -> None:
    with pytest.raises(ProgramError, match=r"^q7: " + pattern):
        from_clevr(nodes, where="q7")  # type: ignore[arg-type]


def test_dag_node_lists_are_read_with_shared_nodes_once_and_written_back_unchanged() -> None:
    program = from_clevr(SINGLE_OR)
    assert program.graph is not None
    calls = [call for call, _ in program.graph]
    union = calls[4]
    assert union.args[0] is calls[1] and calls[2].args[0] is calls[1]  # one node, two readers
    assert to_text(program) == (
        "count(filter_shape(union(scene(), filter_color(filter_size(scene(), large), blue)), cube))"
    )
    assert len(program) == 7 and program.nodes() == calls
    assert to_clevr(program, style="type") == SINGLE_OR
    function_style = to_clevr(program)
    assert [n["function"] for n in function_style] == [n["type"] for n in SINGLE_OR]
    assert to_clevr(from_clevr(function_style), style="type") == SINGLE_OR
    assert from_clevr(function_style) == program
    assert postorder_positions(SINGLE_OR) == list(range(7))
    # the tree expansion is a different program: it writes a different node list
    assert parse_program(to_text(program)) != program
    assert parse_program(to_text(program)).graph is None


def test_a_node_read_twice_by_one_node_and_unread_nodes_make_a_dag() -> None:
    twice = from_clevr([{"type": "scene"}, {"type": "union", "inputs": [0, 0]}])
    assert twice.graph is not None and twice.root.args[0] is twice.root.args[1]
    unread = [
        {"inputs": [], "type": "scene"},
        {"inputs": [], "type": "scene"},
        {"inputs": [1], "type": "count"},
    ]
    assert to_clevr(from_clevr(unread), style="type") == unread


def test_dags_that_expand_beyond_the_limit_are_refused() -> None:
    nodes = [{"type": "scene"}] + [{"type": "union", "inputs": [i, i]} for i in range(40)]
    with pytest.raises(ProgramError, match=r"^q3: node 13 \(union\) expands to more than 10000"):
        from_clevr(nodes, where="q3")


def test_node_lists_deeper_than_the_limit_are_refused() -> None:
    nodes = [{"type": "scene"}] + [{"type": "unique", "inputs": [i]} for i in range(MAX_DEPTH + 5)]
    with pytest.raises(
        ProgramError, match=rf"node {MAX_DEPTH} \(unique\) is nested deeper than {MAX_DEPTH}"
    ):
        from_clevr(nodes)


def test_unknown_style_is_refused() -> None:
    with pytest.raises(
        ProgramError, match="unknown CLEVR node style 'json'; allowed: 'function', 'type'"
    ):
        to_clevr(parse_program("scene()"), style="json")  # type: ignore[arg-type]


# ----------------------------------------------------------------- NS-VQA tokens


def test_prefix_and_postfix_tokens_of_a_known_program() -> None:
    program = parse_program(
        "equal_integer(count(filter_shape(scene(), cube)), filter_count(scene(), large, _, _, _))"
    )
    assert to_prefix_tokens(program) == [
        "equal_integer",
        "count",
        "filter_shape[cube]",
        "scene",
        "filter_count[large,_,_,_]",
        "scene",
    ]
    assert to_postfix_tokens(program) == [
        "scene",
        "filter_shape[cube]",
        "count",
        "scene",
        "filter_count[large,_,_,_]",
        "equal_integer",
    ]


def test_token_decoding_takes_arity_from_the_catalogue() -> None:
    # The same tokens decode differently when the catalogue says "pair" takes two inputs.
    cat = Catalogue.from_dict(
        {
            "types": {"T": None},
            "functions": [
                {"name": "leaf", "inputs": [], "output": "T"},
                {"name": "wrap", "inputs": ["T"], "output": "T"},
                {"name": "pair", "inputs": ["T", "T"], "output": "T"},
            ],
        }
    )
    program = from_prefix_tokens(["pair", "wrap", "leaf", "leaf"], cat)
    assert to_text(program) == "pair(wrap(leaf()), leaf())"
    assert from_postfix_tokens(["leaf", "wrap", "leaf", "pair"], cat) == program


@pytest.mark.parametrize(
    ("decode", "tokens", "pattern"),
    [
        (from_postfix_tokens, [], r"the token list is empty"),
        (from_postfix_tokens, "scene count", r"tokens must be a list of strings, got str"),
        (
            from_postfix_tokens,
            ["scene", "cuont"],
            r"token 1 \('cuont'\): unknown function 'cuont'; did you mean 'count'",
        ),
        (
            from_postfix_tokens,
            ["count"],
            r"token 0 \('count'\): count takes 1 input\(s\) but only 0",
        ),
        (from_postfix_tokens, ["scene", "scene"], r"the postfix tokens form 2 separate programs"),
        (
            from_postfix_tokens,
            ["scene", "filter_color[red"],
            r"token 1, line 1, column 17: the text ends too early",
        ),
        (from_postfix_tokens, ["scene", 5], r"token 1: a token must be a string, got int"),
        (
            from_prefix_tokens,
            ["equal_integer", "count", "scene"],
            r"token 0 \('equal_integer'\): equal_integer takes 2 input\(s\) but only 1",
        ),
        (
            from_prefix_tokens,
            ["count", "scene", "scene"],
            r"the prefix tokens form 2 separate programs",
        ),
    ],
)
def test_bad_token_lists_name_the_token(decode, tokens, pattern: str) -> None:
    with pytest.raises(ProgramError, match=r"^tokens: " + pattern):
        decode(tokens)


def test_tokens_are_not_type_checked_but_check_finds_the_fault() -> None:
    program = from_postfix_tokens(["scene", "unique", "count"])
    with pytest.raises(
        ProgramError,
        match=r"node 2 \(count\): input 0 must be ObjectSet, but unique returns Object",
    ):
        Catalogue.default().check(program)


# ----------------------------------------------------------------- fuzzing

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_NODE = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["scene", "count", "unique", "union", ""]) | _JSON,
        "function": st.sampled_from(["scene", "filter_color", "exist"]) | _JSON,
        "inputs": st.lists(st.integers(-1, 6), max_size=3) | _JSON,
        "side_inputs": st.lists(st.sampled_from(["red", "", "<C>"]), max_size=2) | _JSON,
        "value_inputs": st.lists(st.text(max_size=4), max_size=2) | _JSON,
    },
)


@settings(max_examples=250, deadline=None, derandomize=True)
@given(st.lists(_NODE, max_size=7) | _JSON)
def test_any_json_gives_a_program_or_a_program_error(nodes: object) -> None:
    try:
        program = from_clevr(nodes)  # type: ignore[arg-type]
    except ProgramError as exc:
        assert str(exc).startswith("program: ")
        return
    assert from_clevr(to_clevr(program)) == program
    assert len(program) == len(nodes)  # type: ignore[arg-type]
    positions = postorder_positions(nodes)  # type: ignore[arg-type]
    assert sorted(positions) == list(range(len(nodes)))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(
        st.sampled_from(
            [
                "scene",
                "count",
                "unique",
                "union",
                "filter_color[red]",
                "relate[left]",
                "cuont",
                "x[",
            ]
        )
        | st.text(max_size=8),
        max_size=8,
    )
)
def test_any_token_list_gives_a_program_or_a_program_error(tokens: list[str]) -> None:
    for decode, encode in (
        (from_prefix_tokens, to_prefix_tokens),
        (from_postfix_tokens, to_postfix_tokens),
    ):
        try:
            program = decode(tokens)
        except ProgramError as exc:
            assert str(exc).startswith("tokens")
            continue
        assert decode(encode(program)) == program
        assert len(encode(program)) == len(tokens)


def test_depth_counts_calls_on_the_longest_path_to_a_leaf() -> None:
    assert parse_program("scene()").depth() == 1
    assert parse_program("count(filter_color(scene(), red))").depth() == 3
    # two branches: the longer one decides
    text = "equal_integer(count(filter_color(filter_size(scene(), large), red)), count(scene()))"
    assert parse_program(text).depth() == 5
    # a DAG (the official single_or node list): scene -> size -> colour -> union -> shape -> count
    dag = from_clevr(SINGLE_OR)
    assert dag.graph is not None and len(dag) == 7 and dag.depth() == 6
