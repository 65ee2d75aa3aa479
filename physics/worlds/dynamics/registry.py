"""World registry: names -> world classes, with typed config overrides.

A world registers itself in its own module with one call after its class,
``register_world(Rope)`` (the name is the class's ``name``, the help line its
docstring's first line); the command line lists :data:`WORLDS` for
``--world``.  ``make_world("rope", steps=50)`` builds the rope world from its
preset config (the class's defaults, PropNet's setting) with ``steps``
replaced.  Unknown names and unknown or mistyped overrides raise
:class:`ConfigError` listing what is allowed, the way PyG's ``resolver.py`` does.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any

from physics.errors import ConfigError
from physics.registry import Registry
from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig

__all__ = ["WORLDS", "register_world", "world_class", "world_config", "make_world"]

WORLDS: Registry[type[DynamicsWorld]] = Registry(
    "dynamics world",
    modules=(
        "physics.worlds.dynamics.cradle",
        "physics.worlds.dynamics.rope",
        "physics.worlds.dynamics.box_push",
        "physics.worlds.dynamics.fluidfall",
        "physics.worlds.dynamics.boxbath",
        "physics.worlds.dynamics.fluidshake",
        "physics.worlds.dynamics.ricegrip",
    ),
)


def register_world(cls: type[DynamicsWorld], *, help: str | None = None) -> type[DynamicsWorld]:
    """Register world class ``cls`` under ``cls.name`` (call it once, after the class).

    Args:
        cls: A :class:`DynamicsWorld` subclass with its own ``name`` and ``config_cls``.
        help: One line for ``--help`` (default: the first line of the class docstring).

    Returns:
        ``cls``, so the call can also decorate the class.

    Raises:
        ConfigError: not a DynamicsWorld, no name of its own, or a name taken by another class.
    """
    return WORLDS.register_class(cls, DynamicsWorld, help=help)


def world_class(name: str) -> type[DynamicsWorld]:
    """The world class registered under ``name`` (ConfigError with the choices if none)."""
    return WORLDS.get(name)


def _coerce(cls: type[WorldConfig], key: str, value: Any) -> Any:
    """Cast a JSON/CLI value to the field's type (lists -> tuples, ints -> floats); numbers must be finite.

    Raises:
        ConfigError: ``<Config>.<field> must be <what>, got <value>``, naming what the field takes.
    """
    tp = typing.get_type_hints(cls)[key]
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{cls.__name__}.{key} must be a list of {_WHAT_PLURAL.get(inner, inner)}, got {value!r}",
                              settings=(key,))
        try:
            return tuple(_scalar(cls, key, inner, v) if inner in _WHAT else inner(v) for v in value)
        except ConfigError:
            raise ConfigError(f"{cls.__name__}.{key} must be a list of {_WHAT_PLURAL[inner]}, got {value!r}",
                              settings=(key,)) from None
    return _scalar(cls, key, tp, value)


_WHAT = {bool: "true or false", int: "an integer", float: "a finite number"}
_WHAT_PLURAL = {bool: "true/false values", int: "integers", float: "finite numbers"}


def _scalar(cls: type[WorldConfig], key: str, tp: Any, value: Any) -> Any:
    """One value of field ``key`` cast to ``tp`` (bool, int or float; anything else is returned as it is)."""
    if tp not in _WHAT:
        return value
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value):
        ok = tp is float or int(value) == value  # 3.0 is the integer 3; numpy numbers pass too
    if not ok:
        raise ConfigError(f"{cls.__name__}.{key} must be {_WHAT[tp]}, got {value!r}", settings=(key,))
    return tp(value)


def world_config(name: str, overrides: Mapping[str, Any] | None = None) -> WorldConfig:
    """The preset config of world ``name`` with ``overrides`` applied."""
    cls = world_class(name).config_cls
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"world {name!r} has no setting(s) {unknown}; its {cls.__name__} fields are {sorted(fields)}"
        )
    return cls(**{k: _coerce(cls, k, v) for k, v in overrides.items()})


def make_world(name: str, **overrides: Any) -> DynamicsWorld:
    """Build world ``name`` (any of :data:`WORLDS`) from its preset plus overrides.

    Example:
        >>> world = make_world("cradle", num_balls=3, steps=20)
        >>> world.config.num_balls
        3
        >>> world.close()
    """
    cls = world_class(name)
    return cls(world_config(name, overrides))
