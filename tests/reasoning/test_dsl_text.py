"""The text form of programs: canonical round trips, fuzzing, and errors that name the place."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning.dsl import Call, Catalogue, Program, parse_program, sample_program, to_text
from reasoning.dsl.text import MAX_DEPTH, _parser, format_token, format_value, parse_token
from reasoning.errors import ProgramError

CANONICAL = [
    "scene()",
    "count(filter_color(scene(), red))",
    "equal_integer(count(filter_shape(scene(), cube)), count(filter_color(scene(), red)))",
    "relate(unique(filter_shape(scene(), sphere)), left)",
    "filter_count(scene(), large, red, _, _)",
    "relate_filter_unique(filter_unique(scene(), <Z>, <C>, <M>, <S>), <R>, <Z2>, <C2>, <M2>, <S2>)",
    'f(g(), h(k()), "two words", -3, 42, _, "_")',
    'f("quote \\" and backslash \\\\", "line\\nbreak", "caf\\u00e9")',
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_text_round_trips_exactly(text: str) -> None:
    program = parse_program(text)
    assert to_text(program) == text
    assert parse_program(to_text(program)) == program


def test_parse_builds_the_expected_ast() -> None:
    got = parse_program("equal_integer(count(scene()), count(filter_color(scene(), red)))")
    want = Program(
        Call(
            "equal_integer",
            (
                Call("count", (Call("scene"),)),
                Call("count", (Call("filter_color", (Call("scene"),), ("red",)),)),
            ),
        )
    )
    assert got == want
    assert str(got) == "equal_integer(count(scene()), count(filter_color(scene(), red)))"


def test_side_input_kinds_decode_to_strings() -> None:
    call = parse_program('f(red, 7, -2, <C2>, _, "a, b", "_")').root
    assert call.values == ("red", "7", "-2", "<C2>", "", "a, b", "_")
    assert all(type(v) is str for v in call.values)
    assert type(call.function) is str


def test_whitespace_and_newlines_are_free_and_canonicalised() -> None:
    text = "count(\n    filter_color(\n        scene( ) ,red\n    )\n)\n"
    assert to_text(parse_program(text)) == "count(filter_color(scene(), red))"


def test_quoted_bare_words_canonicalise_to_bare_words() -> None:
    assert to_text(parse_program('f("red", "3")')) == "f(red, 3)"


def test_values_that_are_not_words_are_quoted() -> None:
    assert format_value("") == "_"
    assert format_value("red") == "red"
    assert format_value("<R2>") == "<R2>"
    assert format_value("central support") == '"central support"'
    assert format_value("_") == '"_"'


def test_random_programs_round_trip_through_text() -> None:
    rng = random.Random(7)
    cat = Catalogue.default()
    for i in range(300):
        program = sample_program(cat, rng, template_only=i % 2 == 0, max_depth=7)
        text = to_text(program)
        assert parse_program(text) == program
        assert to_text(parse_program(text)) == text


def test_programs_with_arbitrary_value_strings_round_trip() -> None:
    rng = random.Random(3)
    alphabet = string.printable + "éß€\u2028\x00"
    for _ in range(200):
        values = tuple(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(3)
        )
        program = Program(Call("f", (Call("scene"),), values))
        assert parse_program(to_text(program)) == program


def test_parser_is_built_once() -> None:
    assert _parser() is _parser()


def test_tokens_fuse_side_inputs_and_split_back() -> None:
    call = Call("filter", (Call("scene"),), ("large", "", "metal", "<S>"))
    assert format_token(call) == "filter[large,_,metal,<S>]"
    assert parse_token("filter[large,_,metal,<S>]") == ("filter", ("large", "", "metal", "<S>"))
    assert parse_token("scene") == ("scene", ())
    assert parse_token('f["a,b",_]') == ("f", ("a,b", ""))
    assert format_token(Call("f", (), ("a,b", ""))) == 'f["a,b",_]'


# ----------------------------------------------------------------- bad input


def _error(text: str) -> str:
    with pytest.raises(ProgramError) as info:
        parse_program(text)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "place", "expected"),
    [
        ("", "line 1, column 1", "the text is empty; expected a name"),
        ("count(", "line 1, column 7", "ends too early"),
        ("count(scene()", "line 1, column 14", "expected ')' or ','"),
        ("count(scene()) extra", "line 1, column 16", "expected the end of the text"),
        ("co$nt(scene())", "line 1, column 3", "unexpected character '$'"),
        ("count(scene(),, red)", "line 1, column 15", "unexpected ','"),
        ("\n\n  f(g(),,)", "line 3, column 9", "unexpected ','"),
        (
            "count(red, scene())",
            "line 1, column 17",
            "side inputs such as `red` come after all child calls",
        ),
        ('f("unterminated)', "line 1, column 3", "unexpected character '\"'"),
        ('f("\\q")', "line 1, column 3", "bad string"),
        ("f(_x)", "line 1, column 4", "unexpected 'x'"),
        ("1(scene())", "line 1, column 1", "expected a name"),
    ],
)
def test_syntax_errors_name_line_column_and_expectation(
    text: str, place: str, expected: str
) -> None:
    msg = _error(text)
    assert place in msg
    assert expected in msg
    assert "\n" not in msg, msg  # one line: the CLI prints it as one error line


def test_syntax_errors_show_the_text_around_the_place_on_the_same_line() -> None:
    msg = _error("count(scene()) extra")
    assert msg.endswith("(at ...nt(scene()) ^extra)"), msg
    assert _error("\n\n  f(g(),,)").endswith("(at   f(g(),^,))")
    long = "count(" + "filter_color(" * 3 + "scene()" + ", red)" * 3 + "))"
    assert _error(long).count("\n") == 0 and len(_error(long)) < 200


def test_call_after_side_input_hint_only_where_it_applies() -> None:
    assert "come after all child calls" in _error("relate(left, unique(scene()))")
    msg = _error("count(scene())(")
    assert "expected the end of the text" in msg and "come after" not in msg


def test_programs_pickle_for_process_fan_out() -> None:
    import pickle

    program = parse_program("relate_filter_count(unique(scene()), left, _, red, _, cube)")
    assert pickle.loads(pickle.dumps(program)) == program


def test_where_names_the_source() -> None:
    with pytest.raises(ProgramError, match=r"^questions.json#4, line 1, column 7"):
        parse_program("count(", where="questions.json#4")


def test_non_string_input_is_a_program_error() -> None:
    with pytest.raises(ProgramError, match="must be a string, got int"):
        parse_program(3)  # type: ignore[arg-type]


def test_nesting_beyond_max_depth_is_refused_without_recursion_error() -> None:
    ok = "unique(" * (MAX_DEPTH - 1) + "scene()" + ")" * (MAX_DEPTH - 1)
    assert len(parse_program(ok)) == MAX_DEPTH
    deep = "unique(" * 5000 + "scene()" + ")" * 5000
    msg = _error(deep)
    assert f"more than {MAX_DEPTH} calls deep" in msg and "line 1, column" in msg


def test_to_text_refuses_names_that_are_not_words() -> None:
    with pytest.raises(ProgramError, match=r"node 1: function name 'bad name'"):
        to_text(Program(Call("bad name", (Call("scene"),))))
    with pytest.raises(ProgramError, match=r"side input 3 must be a string"):
        to_text(Program(Call("f", (), (3,))))  # type: ignore[arg-type]


def test_bad_tokens_raise_program_errors_naming_the_token() -> None:
    for bad in ["filter_color[", "filter_color[]", "[red]", "filter_color[red]]", "a b", ""]:
        with pytest.raises(ProgramError, match=r"^token 2, line 1, column \d+"):
            parse_token(bad, where="token 2")


# ----------------------------------------------------------------- fuzzing

_PIECES = st.sampled_from(
    [
        "scene",
        "count",
        "f",
        "red",
        "(",
        ")",
        ",",
        "_",
        "<C>",
        "<",
        ">",
        "3",
        "-",
        '"',
        '"a b"',
        "\\",
        " ",
        "\n",
        "[",
        "]",
        "filter_color",
        "é",
        "\x00",
    ]
)
_SHAPED = st.lists(_PIECES, max_size=40).map("".join)


def _parses_or_program_error(text: str) -> None:
    try:
        program = parse_program(text)
    except ProgramError as exc:
        assert "line" in str(exc) or "nested" in str(exc)
        return
    assert isinstance(program, Program)
    assert parse_program(to_text(program)) == program


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=60))
def test_any_text_gives_a_program_or_a_program_error(text: str) -> None:
    _parses_or_program_error(text)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_SHAPED)
def test_grammar_shaped_text_gives_a_program_or_a_program_error(text: str) -> None:
    _parses_or_program_error(text)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=30))
def test_any_token_gives_a_split_or_a_program_error(token: str) -> None:
    try:
        name, values = parse_token(token)
    except ProgramError:
        return
    assert parse_token(format_token(Call(name, (), values))) == (name, values)
