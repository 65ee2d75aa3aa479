"""Expanding CLEVR template composites into the primitive chains of instantiated questions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from perception.synthetic import sample_scene_graph
from reasoning.dsl import (
    Catalogue,
    expand_composites,
    from_clevr,
    parse_program,
    sample_program,
    to_text,
)
from reasoning.errors import ProgramError


@pytest.mark.parametrize(
    ("composite", "expanded"),
    [
        (
            "filter_count(scene(), large, _, _, cube)",
            "count(filter_shape(filter_size(scene(), large), cube))",
        ),
        (
            "relate_filter_exist(filter_unique(scene(), _, _, metal, cube), front, _, _, _, _)",
            "exist(relate(unique(filter_shape(filter_material(scene(), metal), cube)), front))",
        ),
        ("filter(scene(), _, _, _, _)", "scene()"),
        (
            "relate_filter(unique(scene()), left, small, _, _, _)",
            "filter_size(relate(unique(scene()), left), small)",
        ),
        (
            "equal_integer(filter_count(scene(), _, red, _, _), count(scene()))",
            "equal_integer(count(filter_color(scene(), red)), count(scene()))",
        ),
    ],
)
def test_composites_expand_like_the_clevr_generator(composite: str, expanded: str) -> None:
    assert to_text(expand_composites(parse_program(composite))) == expanded


def test_programs_without_composites_are_unchanged() -> None:
    rng = random.Random(5)
    cat = Catalogue.default()
    for _ in range(100):
        program = sample_program(cat, rng, max_depth=6)
        assert expand_composites(program) == program


def test_official_templates_expand_to_primitive_programs(shared_clevr: Path) -> None:
    cat = Catalogue.default()
    for path in sorted((shared_clevr / "templates").glob("*.json")):
        for i, template in enumerate(json.loads(path.read_text())):
            program = from_clevr(template["nodes"], where=f"{path.name}[{i}]")
            expanded = expand_composites(program)
            assert not any(cat.signature(c.function).template_only for c in expanded.nodes())
            assert cat.check(expanded, allow_placeholders=True) == cat.check(
                program, allow_placeholders=True
            )
            # every template parameter survives as the side input of one node
            params = sorted(v for c in program.nodes() for v in c.values)
            assert sorted(v for c in expanded.nodes() for v in c.values) == params


def test_expanded_programs_give_the_same_answers() -> None:
    from reasoning.executor import execute

    rng = random.Random(1)
    cat = Catalogue.default()
    scenes = [sample_scene_graph(seed=s) for s in range(4)]
    valid = 0
    for _ in range(150):
        program = sample_program(cat, rng, template_only=True, max_depth=5)
        expanded = expand_composites(program)
        for scene in scenes:
            a = execute(program, scene, trace=False)
            b = execute(expanded, scene, trace=False)
            assert (a.valid, a.answer) == (b.valid, b.answer), to_text(program)
            valid += a.valid
    assert valid >= 20  # enough valid executions for the comparison to mean something


def test_ill_typed_programs_are_refused() -> None:
    with pytest.raises(
        ProgramError, match=r"node 1 \(filter_count\): side input 1 'cube' is not a Color"
    ):
        expand_composites(parse_program("filter_count(scene(), large, cube, _, _)"))


def test_catalogue_without_a_primitive_for_a_type_is_named() -> None:
    data = Catalogue.default().to_dict()
    data["functions"] = [f for f in data["functions"] if f["name"] != "filter_material"]
    cat = Catalogue.from_dict(data)
    with pytest.raises(ProgramError, match=r"only side input is Material, found none"):
        expand_composites(parse_program("filter_count(scene(), _, _, metal, _)"), cat)
    # ... but composites that leave that slot empty still expand
    assert to_text(
        expand_composites(parse_program("filter_count(scene(), _, red, _, _)"), cat)
    ) == ("count(filter_color(scene(), red))")
