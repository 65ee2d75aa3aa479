"""Typed config dataclasses -> argparse flags, and back.

The library takes frozen config dataclasses, never argparse namespaces.  The CLI
generates each command's flags from the dataclass fields (``max_steps`` becomes
``--max-steps``; the field's ``metadata["help"]`` is the help text; a field with
``metadata["choices"]`` lists its choices; a tuple field is a list flag (:class:`AddItems`: given twice, its
items add up, ``--types a --types b`` is ``--types a b``); an ``int`` field is a :func:`count` whose
least value is ``metadata["min"]`` (default 0: every integer option of the CLI counts
something: items, steps, frames, pixels, threads, or is a seed or an index); a field with ``metadata["registry"]``
(a :class:`physics.registry.Registry`) is a :func:`registry_argument`) and builds
the config from the parsed namespace.

:func:`registry_argument` adds a flag whose value names a registered part: its
usage line and help list the registry's names and help lines, read only when
they are shown (so a command that does not print its help never imports the
registry's built-in modules, and parts registered after the parser was built are
listed too); the name itself is checked by the command with the registry's
"did you mean" error.  :func:`comma_items` splits such a list (``--models in,propnet``) and refuses
a name given twice (:func:`refuse_repeats`, which list flags of names use too), as ``--set`` refuses a key given twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = [
    "AddItems", "add_config_flags", "comma_items", "config_from_args", "count", "flag_type", "number", "refuse_repeats",
    "registry_argument",
]

C = TypeVar("C")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, optional?) of a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def number(text: str) -> float:
    """argparse type of every float flag: a float, never NaN.

    A NaN makes every comparison false, so a threshold or a rate given as ``nan`` would turn its
    rule off without a word; infinities pass (each flag's config decides).
    """
    value = float(text)
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}")
    return value


number.__name__ = "float"  # argparse names the type in "invalid float value: 'x'"


def count(min: int = 0, zero: str | None = None) -> Callable[[str], int]:  # noqa: A002 (reads as the flag's rule)
    """argparse type of an integer flag: an integer >= ``min``, refused at parse time naming the flag.

    A negative count would slice the end off a list (``list[:-1]`` drops the last item without a
    word) or turn a rule off, and a command would find it only after reading its data.  ``zero`` says
    what 0 means where it is allowed and special (``count(min=0, zero="all")``); it is shown in the error.

    >>> count(min=1)("3")
    3
    """
    if min < 0:
        raise ValueError(f"count(min={min}): a count's least value must be >= 0")
    rule = f"an integer >= {min}" + (f" (0: {zero})" if zero is not None and min == 0 else "")

    def parse(text: str) -> int:
        value = int(text)  # ValueError: argparse says "invalid int value: 'x'"
        if value < min:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value: 'x'"
    parse.minimum = min  # type: ignore[attr-defined]  # read by tests and by help writers
    return parse


class AddItems(argparse._StoreAction):
    """Action of every list-valued flag (``nargs="+"`` or ``"*"``): the flag given again adds its items.

    argparse's own store keeps only the last occurrence, without a word (``nesy eval clevrer --types
    descriptive --types predictive`` would evaluate predictive alone); its ``extend`` adds to the default's
    items too.  Here the first occurrence replaces the
    default and each later one adds to it, as ``--set`` does.

    >>> p = argparse.ArgumentParser(); _ = p.add_argument("--x", nargs="+", default=["d"], action=AddItems)
    >>> p.parse_args(["--x", "a", "--x", "b", "c"]).x, p.parse_args([]).x
    (['a', 'b', 'c'], ['d'])
    """

    def __init__(self, option_strings: list[str], dest: str, nargs: Any = None, **kwargs: Any) -> None:
        if nargs not in ("+", "*"):
            raise ValueError(f"AddItems is for list flags (nargs '+' or '*'), {option_strings[0]} has nargs={nargs!r}")
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        given = [] if current is None or current is self.default else list(current)  # the default: not given yet
        setattr(namespace, self.dest, given + list(values))


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
        if default is not None and "(default" not in kwargs["help"]:  # a help may say its default in its own words
            kwargs["help"] = f"{kwargs['help']} (default: {shown_default(default)})".strip()
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **kwargs)
            continue
        if tp in (int, float, str):
            kwargs["type"] = flag_type(tp, f)
        elif typing.get_origin(tp) is tuple:
            kwargs["type"] = flag_type(typing.get_args(tp)[0], f)
            kwargs["nargs"] = "+"
            kwargs["action"] = AddItems
        else:
            kwargs["type"] = str
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if "registry" in f.metadata:
            registry_argument(parser, flag, registry=f.metadata["registry"], default=default, required=required_field(f),
                              **kwargs)
            continue
        parser.add_argument(flag, default=default, required=required_field(f), **kwargs)


def shown_default(default: Any) -> str:
    """A default as a user would type it: a tuple's items space-separated (``nargs="+"``), nothing as ``none``.

    >>> shown_default(("descriptive", "predictive")), shown_default(()), shown_default(""), shown_default(0.5)
    ('descriptive predictive', 'none', 'none', '0.5')
    """
    if isinstance(default, (tuple, list)):
        default = " ".join(str(v) for v in default)
    return str(default) if str(default) != "" else "none"


def flag_type(tp: Any, f: dataclasses.Field) -> Any:
    """argparse type of a scalar field: floats are :func:`number`, ints :func:`count` (``metadata["min"]``)."""
    if tp is float:
        return number
    if tp is int:
        return count(min=f.metadata.get("min", 0), zero=f.metadata.get("zero"))
    return tp


def required_field(f: dataclasses.Field) -> bool:
    """A field without a default becomes a required flag."""
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


class _RegistryAction(argparse._StoreAction):
    """Stores a name; its metavar ``{a,b,c}`` and help come from a registry when shown."""

    def __init__(self, option_strings: list[str], dest: str, *, registry: Any, many: bool = False, **kwargs: Any) -> None:
        self._registry = registry
        self._many = many
        self._shown = False  # argparse reads the metavar once while adding the flag: answer cheaply then
        super().__init__(option_strings, dest, **kwargs)

    @property  # type: ignore[override]
    def metavar(self) -> str:
        if not self._shown:
            return "NAME"
        return self._registry.metavar() + ("[,...]" if self._many else "")

    @metavar.setter
    def metavar(self, value: Any) -> None:  # argparse.Action.__init__ assigns it; the registry decides
        pass

    @property  # type: ignore[override]
    def help(self) -> str:
        return self._registry.help_text(self._lead) if self._shown else self._lead

    @help.setter
    def help(self, value: str | None) -> None:
        self._lead = value or ""


def registry_argument(
    parser: argparse.ArgumentParser, *flags: str, registry: Any, many: bool = False, **kwargs: Any
) -> argparse.Action:
    """Add a flag naming an entry of ``registry`` (a :class:`physics.registry.Registry`).

    ``kwargs`` go to ``add_argument`` (``help`` is the lead of the listing,
    ``default``, ``required``, ``dest``); ``choices`` and ``metavar`` come from
    the registry.  ``many=True`` takes a comma-separated list of names (the
    command splits it).
    """
    kwargs.pop("metavar", None)
    kwargs.pop("choices", None)
    kwargs.pop("type", None)
    action = parser.add_argument(*flags, action=_RegistryAction, registry=registry, many=many, **kwargs)
    action._shown = True  # type: ignore[attr-defined]
    return action


def comma_items(text: str, option: str) -> list[str]:
    """The items of a comma-separated flag value, stripped, empty ones dropped, in their order.

    An item given twice is refused (``--models in,propnet,in`` ran ``in`` twice and kept the last
    copy's figures without a word), in one line naming the option, as ``--set`` refuses a key given twice.

    Raises:
        ConfigError: ``--models 'in,propnet,in': in given twice; name each once``.

    >>> comma_items(" in, propnet,", "--models")
    ['in', 'propnet']
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    refuse_repeats(items, option, text)
    return items


def refuse_repeats(items: Sequence[Any], option: str, text: str | None = None) -> None:
    """Refuse an item given twice in one option's items (a comma list's, or a list flag's).

    ``text`` is the option's value as the message shows it (default: the items joined by spaces, as a list
    flag is typed: ``--types 'descriptive descriptive'``).

    Raises:
        ConfigError: ``--types 'descriptive descriptive': descriptive given twice; name each once``.
    """
    from physics.errors import ConfigError

    seen: set[Any] = set()
    for item in items:
        if item in seen:
            shown = " ".join(map(str, items)) if text is None else text
            raise ConfigError(f"{option} {shown!r}: {item} given twice; name each once")
        seen.add(item)


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
