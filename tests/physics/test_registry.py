"""The one registry pattern: registration, order, lazy built-ins, and "did you mean" errors."""

from __future__ import annotations

import doctest
import sys

import pytest

import physics.registry
from physics.errors import ConfigError
from physics.registry import Registry


def test_register_get_and_decorator_keep_registration_order():
    reg = Registry("shape")
    assert reg.register("cube", 6, help="six  faces\n  square") == 6

    @reg.register("sphere", help="round")
    class Sphere:
        pass

    assert reg.get("cube") == 6 and reg["sphere"] is Sphere
    assert list(reg) == reg.names() == ["cube", "sphere"] and len(reg) == 2 and "cube" in reg and "cone" not in reg
    assert reg.entry("cube").help == "six faces square"
    assert reg.metavar() == "{cube,sphere}"
    assert reg.help_text("shape") == "shape: cube (six faces square), sphere (round)"


def test_unknown_names_suggest_the_closest_and_list_every_choice():
    reg = Registry("dynamics world")
    for name in ("cradle", "rope", "boxes"):
        reg.register(name, name.upper())
    with pytest.raises(ConfigError, match=r"^unknown dynamics world 'rop' \(did you mean 'rope'\?\); "
                                          r"choose one of cradle, rope, boxes$"):
        reg.get("rop")
    with pytest.raises(ConfigError, match=r"^unknown dynamics world 'fluid'; choose one of cradle, rope, boxes$"):
        reg.get("fluid")
    with pytest.raises(ConfigError, match="no shape is registered"):
        Registry("shape").get("cube")
    with pytest.raises(ValueError):  # ConfigError is a ValueError for callers who do not know our types
        reg.get(None)


def test_taken_names_are_refused_unless_replaced_and_same_object_is_a_no_op():
    reg = Registry("model")
    reg.register("a", 1)
    reg.register("a", 1)  # a module imported twice
    with pytest.raises(ConfigError, match="'a' is already registered"):
        reg.register("a", 2)
    reg.register("a", 2, replace=True)
    assert reg.get("a") == 2
    reg.unregister("a")
    assert reg.names() == []
    with pytest.raises(ConfigError, match="unknown model 'a'"):
        reg.unregister("a")
    for bad in ("", "two words", "a,b"):
        with pytest.raises(ConfigError, match="non-empty word"):
            reg.register(bad, 3)


def test_built_in_modules_load_on_first_read_and_stay_first(tmp_path, monkeypatch):
    (tmp_path / "reg_home_mod.py").write_text(
        "from physics.registry import Registry\n"
        "PARTS = Registry('part', modules=('reg_builtin_mod',))\n"
    )
    (tmp_path / "reg_builtin_mod.py").write_text(
        "from reg_home_mod import PARTS\nPARTS.register('builtin', 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import reg_home_mod

    assert "reg_builtin_mod" not in sys.modules  # declaring a registry imports nothing
    reg_home_mod.PARTS.register("user", 2)  # registering from outside loads the built-ins first
    assert "reg_builtin_mod" in sys.modules
    assert reg_home_mod.PARTS.names() == ["builtin", "user"]
    for name in ("reg_home_mod", "reg_builtin_mod"):
        monkeypatch.delitem(sys.modules, name)


def test_built_ins_keep_the_order_of_modules_when_a_built_in_import_triggers_the_load(tmp_path, monkeypatch):
    (tmp_path / "reg_home2.py").write_text(
        "from physics.registry import Registry\n"
        "PARTS = Registry('part', modules=('reg_first', 'reg_second'))\n"
    )
    (tmp_path / "reg_first.py").write_text(
        "from reg_home2 import PARTS\nclass First: pass\nPARTS.register('first', First)\n"
    )
    (tmp_path / "reg_second.py").write_text(
        "import reg_first\nfrom reg_home2 import PARTS\nclass Second(reg_first.First): pass\n"
        "PARTS.register('second', Second)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import reg_first  # its registration loads the built-ins while it is itself half imported
    import reg_home2

    assert reg_home2.PARTS.names() == ["first", "second"]
    assert reg_first.First is reg_home2.PARTS.get("first")
    for name in ("reg_home2", "reg_first", "reg_second"):
        monkeypatch.delitem(sys.modules, name)


def test_module_example_runs():
    result = doctest.testmod(physics.registry)
    assert result.attempted >= 3 and result.failed == 0


def test_register_class_takes_the_class_name_and_docstring_and_checks_the_base():
    class Part:
        name = "part"

    class Cube(Part):
        """A cube.

        More text.
        """

        name = "cube"

    class Nameless(Part):
        pass

    reg = Registry("part")
    assert reg.register_class(Cube, Part) is Cube
    assert reg.entry("cube").help == "A cube"
    with pytest.raises(ConfigError, match="must be a Part subclass"):
        reg.register_class(int, Part)
    with pytest.raises(ConfigError, match="Nameless needs a class attribute `name`"):
        reg.register_class(Nameless, Part)
