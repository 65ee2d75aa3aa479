"""The function catalogue: the shipped CLEVR file, loading errors, and type checking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from physics.errors import DataError
from physics.io import atomic_write_json
from reasoning.dsl import Call, Catalogue, from_clevr, parse_program
from reasoning.dsl.catalogue import DEFAULT_CATALOGUE_PATH, is_placeholder
from reasoning.errors import ProgramError


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return Catalogue.default()


# ----------------------------------------------------------------- the shipped catalogue


def test_default_is_loaded_once_from_the_shipped_file() -> None:
    assert Catalogue.default() is Catalogue.default()
    assert DEFAULT_CATALOGUE_PATH.name == "clevr_functions.json"
    assert Catalogue.default().dataset == "CLEVR-v1.0"


def test_shipped_catalogue_states_the_same_facts_as_official_metadata(
    shared_clevr: Path, cat: Catalogue
) -> None:
    official = Catalogue.load(shared_clevr / "metadata.json")
    assert set(cat.names) == set(official.names)
    assert len(cat) == 35
    for t in official.types():
        if official.vocabulary_types().count(t):
            assert cat.values(t) == official.values(t)
    assert set(cat.types()) == set(official.types())
    for name in official.names:
        mine, theirs = cat.signature(name), official.signature(name)
        assert (mine.inputs, mine.side_inputs, mine.output, mine.template_only) == (
            theirs.inputs,
            theirs.side_inputs,
            theirs.output,
            theirs.template_only,
        ), name
        # One deliberate difference: the official file marks relate_filter_count
        # and relate_filter_exist non-terminal although they return Integer and
        # Bool answers like filter_count / filter_exist, which it marks terminal.
        if name in ("relate_filter_count", "relate_filter_exist"):
            assert mine.terminal and not theirs.terminal
        else:
            assert mine.terminal == theirs.terminal, name


def test_lookups(cat: Catalogue) -> None:
    assert cat.arity("scene") == 0
    assert cat.arity("equal_integer") == 2
    sig = cat.signature("relate_filter_count")
    assert sig.inputs == ("Object",)
    assert sig.side_inputs == ("Relation", "Size", "Color", "Material", "Shape")
    assert sig.output == "Integer" and sig.template_only
    assert cat.values("Relation") == ("left", "right", "behind", "front")
    assert cat.values("Size") == ("small", "large")
    assert cat.types_of_value("cyan") == ("Color",)
    assert cat.types_of_value("heavy") == ()
    assert "count" in cat and "cuont" not in cat


def test_lookup_errors_list_what_is_allowed(cat: Catalogue) -> None:
    with pytest.raises(
        ProgramError, match=r"unknown function 'filter_colour'; did you mean 'filter_color'"
    ):
        cat.arity("filter_colour")
    with pytest.raises(
        ProgramError,
        match=r"type 'ObjectSet' is computed by programs and has no vocabulary; vocabulary types are \['Shape', 'Color'",
    ):
        cat.values("ObjectSet")
    with pytest.raises(ProgramError, match=r"unknown type 'Colour'; types are \["):
        cat.values("Colour")


def test_placeholders_are_angle_bracket_names() -> None:
    assert is_placeholder("<C>") and is_placeholder("<R2>")
    assert not is_placeholder("C") and not is_placeholder("<>") and not is_placeholder("<C> ")


# ----------------------------------------------------------------- loading


def test_catalogue_survives_write_and_load(tmp_path: Path, cat: Catalogue) -> None:
    path = tmp_path / "cat.json"
    atomic_write_json(path, cat.to_dict())
    again = Catalogue.load(path)
    assert again.to_dict() == cat.to_dict()
    assert json.loads(DEFAULT_CATALOGUE_PATH.read_text()) == cat.to_dict()


def _minimal() -> dict:
    return {
        "dataset": "toy",
        "types": {"ObjectSet": None, "Integer": None, "Color": ["red", "blue"]},
        "functions": [
            {"name": "scene", "inputs": [], "output": "ObjectSet"},
            {
                "name": "filter_color",
                "inputs": ["ObjectSet"],
                "side_inputs": ["Color"],
                "output": "ObjectSet",
            },
            {"name": "count", "inputs": ["ObjectSet"], "output": "Integer", "terminal": True},
        ],
    }


def _broken(edit) -> dict:
    data = _minimal()
    edit(data)
    return data


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ([], r"top level must be an object, got list"),
        (_broken(lambda d: d.pop("types")), r"field 'types' must be an object"),
        (
            _broken(lambda d: d["types"].update(Color="red")),
            r"types.Color must be a list of strings",
        ),
        (_broken(lambda d: d.update(functions={})), r"field 'functions' must be a list"),
        (
            _broken(lambda d: d["functions"].append("count")),
            r"functions\[3\] must be an object, got str",
        ),
        (
            _broken(lambda d: d["functions"][0].pop("name")),
            r"functions\[0\].name must be a non-empty string",
        ),
        (
            _broken(lambda d: d["functions"][0].pop("output")),
            r"functions\[0\] \(scene\) needs fields 'inputs' and 'output'",
        ),
        (
            _broken(lambda d: d["functions"][1].update(inputs="ObjectSet")),
            r"functions\[1\] \(filter_color\).inputs must be a list of strings",
        ),
        (
            _broken(lambda d: d["functions"][1].update(side_inputs=[1])),
            r"functions\[1\] \(filter_color\).side_inputs must be a list of strings",
        ),
        (
            _broken(lambda d: d["functions"][2].update(terminal="yes")),
            r"functions\[2\] \(count\).terminal must be true or false",
        ),
        (
            _broken(lambda d: d["functions"][2].update(output="Number")),
            r"functions\[2\] \(count\).output uses unknown type 'Number'; types are \['ObjectSet'",
        ),
        (
            _broken(lambda d: d["functions"][1].update(side_inputs=["Integer"])),
            r"functions\[1\] \(filter_color\).side_inputs has 'Integer', which is not a vocabulary type; vocabulary types are \['Color'\]",
        ),
        (
            _broken(lambda d: d["functions"].append(dict(d["functions"][0]))),
            r"functions\[3\] \(scene\).name 'scene' is already defined by functions\[0\]",
        ),
        (_broken(lambda d: d.update(dataset=1)), r"field 'dataset' must be a string"),
    ],
)
def test_malformed_catalogue_files_raise_data_errors_naming_the_field(
    tmp_path: Path, data: object, pattern: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"^{path}: {pattern}"):
        Catalogue.load(path)


def test_constructor_validates_programmatic_catalogues() -> None:
    from reasoning.dsl import FunctionSpec

    with pytest.raises(DataError, match="catalogue function 'f' uses unknown type 'T'"):
        Catalogue({}, [FunctionSpec("f", (), (), "T")])
    with pytest.raises(DataError, match="catalogue function 'f' is defined twice"):
        Catalogue({"T": None}, [FunctionSpec("f", (), (), "T")] * 2)


def test_unreadable_catalogue_files_raise_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        Catalogue.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=str(bad)):
        Catalogue.load(bad)


# ----------------------------------------------------------------- checking


@pytest.mark.parametrize(
    ("text", "output"),
    [
        ("scene()", "ObjectSet"),
        ("count(filter_color(scene(), red))", "Integer"),
        (
            "equal_integer(count(filter_shape(scene(), cube)), count(filter_color(scene(), red)))",
            "Bool",
        ),
        ("relate(unique(filter_shape(scene(), sphere)), left)", "ObjectSet"),
        ("query_material(unique(same_shape(unique(filter_size(scene(), small)))))", "Material"),
        ("equal_color(query_color(unique(scene())), query_color(unique(scene())))", "Bool"),
        ("filter_count(scene(), large, red, _, _)", "Integer"),
        (
            "relate_filter_exist(filter_unique(scene(), _, _, metal, cube), front, _, _, _, _)",
            "Bool",
        ),
    ],
)
def test_check_returns_the_root_output_type(cat: Catalogue, text: str, output: str) -> None:
    assert cat.check(parse_program(text)) == output
    assert cat.check(parse_program(text).root) == output


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "count(filter_colour(scene(), red))",
            r"node 1 \(filter_colour\): unknown function 'filter_colour'; did you mean 'filter_color'",
        ),
        (
            "count(frobnicate())",
            r"node 0 \(frobnicate\): unknown function 'frobnicate'; known functions are scene, ",
        ),
        ("count(scene(), scene())", r"node 2 \(count\): takes 1 input\(s\) \['ObjectSet'\], got 2"),
        (
            "equal_integer(count(scene()))",
            r"node 2 \(equal_integer\): takes 2 input\(s\) \['Integer', 'Integer'\], got 1",
        ),
        (
            "count(unique(scene()))",
            r"node 2 \(count\): input 0 must be ObjectSet, but unique returns Object",
        ),
        (
            "equal_integer(count(scene()), exist(scene()))",
            r"node 4 \(equal_integer\): input 1 must be Integer, but exist returns Bool",
        ),
        (
            "filter_color(scene())",
            r"node 1 \(filter_color\): takes 1 side input\(s\) \(Color\), got 0 \[\]",
        ),
        (
            "filter_color(scene(), red, blue)",
            r"node 1 \(filter_color\): takes 1 side input\(s\) \(Color\), got 2",
        ),
        ("count(scene(), red)", r"node 1 \(count\): takes 0 side input\(s\) \(none\), got 1"),
        (
            "filter_color(scene(), cube)",
            r"node 1 \(filter_color\): side input 0 'cube' is not a Color; allowed: \['gray', 'red'",
        ),
        ("filter_color(scene(), _)", r"node 1 \(filter_color\): side input 0 '' is not a Color"),
        (
            "relate(unique(scene()), up)",
            r"node 2 \(relate\): side input 0 'up' is not a Relation; allowed: \['left', 'right', 'behind', 'front'\]$",
        ),
        (
            "filter_count(scene(), large, red, wood, _)",
            r"node 1 \(filter_count\): side input 2 'wood' is not a Material; allowed: \['rubber', 'metal'\] or empty \('_'\)",
        ),
        (
            "relate_filter(unique(scene()), _, _, _, _, _)",
            r"node 2 \(relate_filter\): side input 0 '' is not a Relation",
        ),
        (
            "filter_color(scene(), <C>)",
            r"node 1 \(filter_color\): side input 0 is the template parameter '<C>'.*allow_placeholders=True",
        ),
    ],
)
def test_check_errors_name_the_node_and_what_was_expected(
    cat: Catalogue, text: str, pattern: str
) -> None:
    with pytest.raises(ProgramError, match=pattern):
        cat.check(parse_program(text))


def test_placeholders_pass_only_when_allowed(cat: Catalogue) -> None:
    program = parse_program(
        "relate_filter_count(filter_unique(scene(), <Z>, <C>, <M>, <S>), <R>, <Z2>, <C2>, <M2>, <S2>)"
    )
    assert cat.check(program, allow_placeholders=True) == "Integer"
    with pytest.raises(ProgramError, match="template parameter '<Z>'"):
        cat.check(program)


def test_official_templates_need_placeholders_and_then_check(
    shared_clevr: Path, cat: Catalogue
) -> None:
    checked = 0
    for path in sorted((shared_clevr / "templates").glob("*.json")):
        for i, template in enumerate(json.loads(path.read_text())):
            program = from_clevr(template["nodes"], where=f"{path.name}[{i}]")
            assert cat.check(program, allow_placeholders=True) in {
                "Integer",
                "Bool",
                "Shape",
                "Color",
                "Size",
                "Material",
            }
            with pytest.raises(ProgramError, match="template parameter"):
                cat.check(program)
            checked += 1
    assert checked == 90


def test_composites_can_be_refused_for_instantiated_programs(cat: Catalogue) -> None:
    composite = parse_program("filter_count(scene(), large, red, _, _)")
    expanded = parse_program("count(filter_color(filter_size(scene(), large), red))")
    assert cat.check(expanded, allow_composites=False) == "Integer"
    with pytest.raises(
        ProgramError, match=r"node 1 \(filter_count\): filter_count is a template-only composite"
    ):
        cat.check(composite, allow_composites=False)


def test_malformed_calls_are_program_errors(cat: Catalogue) -> None:
    with pytest.raises(
        ProgramError, match=r"node 1 \(filter_color\): side input 0 must be a string, got 3"
    ):
        cat.check(Call("filter_color", (Call("scene"),), (3,)))  # type: ignore[arg-type]
    with pytest.raises(
        ProgramError, match=r"node 0 \(\['scene'\]\): function name must be a string"
    ):
        cat.check(Call(["scene"]))  # type: ignore[arg-type]
    with pytest.raises(ProgramError, match="can only check a Program or a Call, got str"):
        cat.check("count(scene())")  # type: ignore[arg-type]


def test_custom_catalogue_checks_its_own_functions() -> None:
    toy = Catalogue.from_dict(_minimal(), where="toy")
    assert toy.check(parse_program("count(filter_color(scene(), blue))")) == "Integer"
    with pytest.raises(ProgramError, match=r"'green' is not a Color; allowed: \['red', 'blue'\]"):
        toy.check(parse_program("count(filter_color(scene(), green))"))
