"""The one ``KEY=VALUE`` parser of every ``--set``-style option (``physics.settings``)."""

from __future__ import annotations

import pytest

from physics.errors import ConfigError
from physics.settings import json_value, parse_settings


def test_items_split_into_keys_with_underscores_and_values_typed_by_the_caller():
    assert parse_settings(["num-boxes=15", "scenes=one_object", "empty="]) == {
        "num_boxes": "15", "scenes": "one_object", "empty": ""}
    assert parse_settings(["num_boxes=15", "lift=[10, 20]", "name=rope", "on=true", "graph.radius=0.1"],
                          value=json_value) == {"num_boxes": 15, "lift": [10, 20], "name": "rope", "on": True,
                                                "graph.radius": 0.1}  # a dotted key is kept as given
    assert parse_settings(None) == {} and parse_settings([]) == {}
    assert list(parse_settings(["b=1", "a=2"])) == ["b", "a"]  # in the order given


@pytest.mark.parametrize(("items", "says"), [
    (["radius"], "--set 'radius': not KEY=VALUE; expected KEY=VALUE with KEY a setting"),
    (["=3"], "--set '=3': not KEY=VALUE"),
    ([" =3"], "--set ' =3': not KEY=VALUE"),
    (["radius=1", "radius=2"], "--set 'radius=2': radius given twice; give each setting once"),
    (["num-boxes=1", "num_boxes=2"], "--set 'num_boxes=2': num_boxes given twice"),  # one key, two spellings
])
def test_bad_items_are_one_line_naming_the_option_the_item_and_what_is_expected(items, says):
    with pytest.raises(ConfigError) as info:
        parse_settings(items)
    assert str(info.value).startswith(says) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[1, NaN]"])
def test_json_values_refuse_non_finite_numbers_naming_the_item(text):
    with pytest.raises(ConfigError) as info:
        parse_settings([f"x={text}"], value=json_value)
    assert str(info.value).startswith(f"--set 'x={text}': ") and "is not allowed; settings are finite" in str(info.value)
    assert json_value("nan") == "nan"  # not JSON: kept as text, for the config to type and refuse by its field


def test_known_keys_and_the_option_name():
    assert parse_settings(["a-b=1"], option="--perception-set", known=("a_b", "c")) == {"a_b": "1"}
    with pytest.raises(ConfigError, match=r"^--perception-set 'd=1': unknown key 'd'; expected KEY=VALUE with KEY one "
                                          r"of a_b, c$"):
        parse_settings(["d=1"], option="--perception-set", known=("a_b", "c"))
    with pytest.raises(ConfigError, match=r"^--perception-set 'c': not KEY=VALUE; expected KEY=VALUE with KEY one of a_b, c$"):
        parse_settings(["c"], option="--perception-set", known=("a_b", "c"))
    with pytest.raises(ConfigError, match=r"^--set 'x': not KEY=VALUE; expected KEY=VALUE with KEY a world config field$"):
        parse_settings(["x"], keys="a world config field")
