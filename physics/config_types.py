"""A config dataclass's field values checked against its annotations: one check for every config.

The command line types every flag before it builds a config, but a user who builds one from
Python can give text for a number (``RolloutConfig(fps="25")``); the config's own checks then
fail deep inside with a ``TypeError`` naming nothing (``'<' not supported between instances of
'str' and 'int'``), or the value is taken and fails later.  A config calls
:func:`check_field_types` first in its ``__post_init__``, and a wrong type is one
:class:`~physics.errors.ConfigError` line naming the config, the field, the value and the type
expected::

    RolloutConfig.fps must be an integer, got '25' (str)

What is checked, by annotation (anything else, e.g. ``Callable`` or ``Any``, is not):

* ``int``: an integer, never a bool (``True`` is an ``int`` in Python; numpy integers pass);
* ``float``: a real number (an integer passes), never a bool;
* ``bool``: ``True`` or ``False`` (numpy's too), never ``0``/``1``;
* ``str``: text, or a path (``pathlib.Path``), which the code turns into one;
* ``X | None``: None or an ``X``; a union: any of its arms;
* ``tuple[X, ...]`` / ``tuple[X, Y]``: a tuple or a list, of that length, each item checked;
* ``Literal[...]``: one of its values; a dataclass type: an instance of it.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import sys
import types
import typing
from typing import Any

import numpy as np

from physics.errors import ConfigError

__all__ = ["check_field_types"]


def check_field_types(config: Any) -> None:
    """Refuse a field of dataclass instance ``config`` whose value does not fit its annotation.

    Raises:
        ConfigError: ``<Config>.<field> must be <what>, got <value> (<type>)``, the first such field.

    >>> @dataclasses.dataclass(frozen=True)
    ... class Toy:
    ...     steps: int = 3
    ...     def __post_init__(self):
    ...         check_field_types(self)
    >>> Toy(steps="3")
    Traceback (most recent call last):
    ...
    physics.errors.ConfigError: Toy.steps must be an integer, got '3' (str)
    """
    cls = type(config)
    for name, tp in _field_types(cls):
        value = getattr(config, name)
        if not _fits(value, tp):
            raise ConfigError(f"{cls.__name__}.{name} must be {_describe(tp)}, got {value!r} ({type(value).__name__})",
                              settings=(name,))


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, resolved annotation) of ``cls``'s init fields; a field whose annotation does not resolve is left out."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a name imported only for type checkers: resolve field by field
        hints = {}
        for klass in reversed(cls.__mro__):
            module = vars(sys.modules.get(klass.__module__, types.ModuleType("?")))
            for name, ann in vars(klass).get("__annotations__", {}).items():
                try:
                    hints[name] = eval(ann, module) if isinstance(ann, str) else ann  # noqa: S307 (its own annotation)
                except Exception:
                    hints.pop(name, None)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init and f.name in hints)


def _fits(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is type(None) or tp is None:
        return value is None
    if tp is bool:
        return isinstance(value, (bool, np.bool_))
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if tp is str:
        return isinstance(value, (str, os.PathLike))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin is tuple or tp is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        args = typing.get_args(tp)
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    return True  # not a kind this check knows: the config's own checks, if any


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None) or tp is None:
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin is tuple or tp is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_plural(args[0])}"
        return f"a tuple of {len(args)} ({', '.join(_describe(a) for a in args)})" if args else "a tuple"
    return {bool: "true or false (a bool)", int: "an integer", float: "a number", str: "text"}.get(
        tp, f"a {getattr(tp, '__name__', tp)}")


def _plural(tp: Any) -> str:
    return {bool: "bools", int: "integers", float: "numbers", str: "texts"}.get(tp, _describe(tp))
