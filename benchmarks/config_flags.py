"""Typed config dataclasses -> argparse flags, and back.

The library takes frozen config dataclasses, never argparse namespaces.  The CLI
generates each command's flags from the dataclass fields (``max_steps`` becomes
``--max-steps``; the field's ``metadata["help"]`` is the help text; a field with
``metadata["choices"]`` lists its choices) and builds the config from the
parsed namespace.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

__all__ = ["add_config_flags", "config_from_args"]

C = TypeVar("C")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, optional?) of a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (fields in ``skip`` excluded)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, _ = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help", "")}
        if default is not None:
            kwargs["help"] = f"{kwargs['help']} (default: {default})".strip()
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **kwargs)
            continue
        if tp in (int, float, str):
            kwargs["type"] = tp
        elif typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0]
            kwargs["type"] = inner
            kwargs["nargs"] = "+"
        else:
            kwargs["type"] = str
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        required = default is None and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        parser.add_argument(flag, default=default, required=required, **kwargs)


def config_from_args(cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    """Build ``cls`` from the namespace fields that match its field names."""
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.init and hasattr(args, f.name):
            v = getattr(args, f.name)
            if isinstance(v, list):
                v = tuple(v)
            values[f.name] = v
    values.update(overrides)
    return cls(**values)
