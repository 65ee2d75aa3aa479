"""One registry pattern for every kind of part: names -> objects, with help and "did you mean".

Each kind of part (dynamics worlds, learned dynamics models, perception models,
composed QA models) keeps one :class:`Registry` next to its base class and a
``register_*`` function that fills it.  A concrete class registers itself in its
own module with one call, so adding a part is one file and one line::

    WORLDS = Registry("dynamics world", modules=("physics.worlds.dynamics.cradle",))

    @WORLDS.register("cradle", help="Newton's cradle (PropNet)")
    class NewtonsCradle(DynamicsWorld): ...

The built-in parts' modules are imported the first time the registry is read
(``modules``), so importing a package stays cheap and ``nesy --help`` loads no
model code; parts registered from anywhere else (a user's file, a test) join the
same table.  Lookups of unknown names raise :class:`~physics.errors.ConfigError`
naming the closest registered names and every choice, the way PyG's
``resolver.py`` lists the valid choices.  The command line reads its choices and
help text from here (:meth:`Registry.metavar`, :meth:`Registry.help_text`)
instead of writing them again.

>>> shapes = Registry("shape")
>>> _ = shapes.register("cube", 6, help="six faces")
>>> shapes.get("cube")
6
>>> shapes.get("cub")
Traceback (most recent call last):
    ...
physics.errors.ConfigError: unknown shape 'cub' (did you mean 'cube'?); choose one of cube
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from physics.errors import ConfigError

__all__ = ["Registry", "Entry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered part: its name, the object and a one-line description."""

    name: str
    obj: T
    help: str = ""


class Registry(Generic[T]):
    """Names -> objects of one kind, in registration order.

    Args:
        kind: What the entries are, as a user would say it ("dynamics world");
            error messages start with it.
        modules: Modules that register the built-in entries when imported; they
            are imported on the first read (not at construction), so a registry
            can be declared in a light module and filled by heavy ones.

    Iterating a registry yields its names, ``name in registry`` tests membership,
    and ``registry[name]`` is :meth:`get`.
    """

    def __init__(self, kind: str, *, modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self._modules = tuple(modules)
        self._loaded = not self._modules
        self._loading = False
        self._entries: dict[str, Entry[T]] = {}

    # ------------------------------------------------------------------ filling
    @overload
    def register(self, name: str, obj: T, *, help: str = "", replace: bool = False) -> T: ...

    @overload
    def register(self, name: str, *, help: str = "", replace: bool = False) -> Callable[[T], T]: ...

    def register(self, name: str, obj: Any = None, *, help: str = "", replace: bool = False) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does.

        Registering the same object under the same name again is a no-op (a module
        imported twice); another object under a taken name raises unless
        ``replace`` is set.  The built-in modules are imported first, so the
        built-ins keep their order at the head of every listing.

        Args:
            name: The name users type (``--world NAME``); lower case, no spaces.
            obj: The class, factory or value to register.
            help: One line shown in ``--help`` and in listings.
            replace: Allow overwriting an existing entry of this name.

        Returns:
            ``obj`` (so the call can be used as a class decorator).

        Raises:
            ConfigError: empty or blank-containing name, or a taken name.
        """
        if obj is None:
            return lambda target: self.register(name, target, help=help, replace=replace)
        if getattr(obj, "__module__", None) not in self._modules:
            self._load()  # built-ins first, whichever module registers first (a built-in needs no others)
        if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "," in name:
            raise ConfigError(f"{self.kind} name must be a non-empty word without spaces or commas, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old.obj is not obj and not replace:
            raise ConfigError(
                f"{self.kind} {name!r} is already registered ({_describe(old.obj)}); "
                "pick another name or pass replace=True"
            )
        self._entries[name] = Entry(name, obj, " ".join(help.split()))
        if getattr(obj, "__module__", None) in self._modules:
            # a built-in module whose own registration triggered the load registers after the
            # modules listed behind it: keep the built-ins in the order of `modules` regardless
            self._entries = dict(sorted(self._entries.items(), key=lambda item: self._rank(item[1].obj)))
        return obj

    def _rank(self, obj: Any) -> int:
        """Position of ``obj``'s module in ``modules`` (entries from elsewhere rank after them all)."""
        module = getattr(obj, "__module__", None)
        return self._modules.index(module) if module in self._modules else len(self._modules)

    def register_class(self, cls: Any, base: type, *, help: str | None = None) -> Any:
        """Register subclass ``cls`` of ``base`` under its class attribute ``name``.

        The ``register_*`` functions next to each base class call this: a part
        class names itself, and its help line defaults to the first line of its
        docstring.

        Raises:
            ConfigError: not a subclass of ``base``, no ``name`` of its own, or a taken name.
        """
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ConfigError(f"a {self.kind} must be a {base.__name__} subclass, got {cls!r}")
        if getattr(cls, "name", None) == getattr(base, "name", None):
            raise ConfigError(f"{cls.__qualname__} needs a class attribute `name` of its own to be a registered {self.kind}")
        if help is None:
            doc = (cls.__doc__ or "").strip().splitlines()
            help = doc[0].rstrip(".") if doc else ""
        return self.register(cls.name, cls, help=help)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions); unknown names raise."""
        self.get(name)
        del self._entries[name]

    # ------------------------------------------------------------------ reading
    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True  # a built-in module may read the registry while it registers
        try:
            for module in self._modules:
                importlib.import_module(module)
            self._loaded = True
        finally:
            self._loading = False

    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` registered under ``name``.

        Raises:
            ConfigError: unknown name; names the closest matches and every choice.
        """
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        """The object registered under ``name`` (see :meth:`entry` for errors)."""
        return self.entry(name).obj

    def unknown_message(self, name: Any) -> str:
        """``unknown <kind> 'x' (did you mean 'y'?); choose one of a, b, c``."""
        self._load()
        names = list(self._entries)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        choices = ", ".join(names) if names else f"none (no {self.kind} is registered)"
        return f"unknown {self.kind} {name!r}{hint}; choose one of {choices}"

    def names(self) -> list[str]:
        """Registered names, in registration order (built-ins first)."""
        self._load()
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Registered entries, in registration order."""
        self._load()
        return list(self._entries.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    # ------------------------------------------------------------------ command line
    def metavar(self) -> str:
        """``{a,b,c}``: the choices as argparse shows them in a usage line."""
        return "{" + ",".join(self.names()) + "}"

    def help_text(self, lead: str = "") -> str:
        """``lead``, then every choice with its one-line help: ``"world: cradle (Newton's cradle), rope (...)"``."""
        parts = [f"{e.name} ({e.help})" if e.help else e.name for e in self.entries()]
        listing = ", ".join(parts) if parts else "none registered"
        return f"{lead}: {listing}" if lead else listing


def _describe(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    return f"{module}.{qual}" if module and qual else repr(obj)
