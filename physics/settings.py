"""``KEY=VALUE`` settings from a command line: the one parser of every ``--set``-style option.

``nesy data dynamics --set``, ``nesy train dynamics --set``, ``nesy train video-dynamics
--set``, ``nesy bench perception --set`` and ``nesy eval clevrer --perception-set`` (through
:func:`perception.video.annotate.perception_config`) read their settings here, so they split,
name and refuse alike.  Every refusal is one :class:`~physics.errors.ConfigError` line of one
form: the option, the bad item, then what was wrong and what is expected::

    --set 'radius=0.03': radius given twice; give each setting once
    --set 'scale': not KEY=VALUE; expected KEY=VALUE with KEY an option of the model (see --list)

A key's dashes read as underscores (``ema-decay`` is ``ema_decay``).  A key given twice is
refused (rather than the later one winning without a word).  How a value's text is typed is the
caller's choice (``value``): kept as text for a consumer that types it by its field
(:func:`perception.benchmark.bench_options`), or read as JSON (:func:`json_value`) for the
world and model configs, whose fields take numbers, booleans and lists.  The parser lives in
the bottom layer so that the perception layer's ``perception_config`` uses it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from typing import Any

from physics.errors import ConfigError

__all__ = ["parse_settings", "json_value", "text_value"]


def text_value(text: str) -> str:
    """A setting's value kept as its text (the consumer types it by its field)."""
    return text


def _refuse_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not allowed; settings are finite numbers")


def json_value(text: str) -> Any:
    """A setting's value read as JSON (``15``, ``0.5``, ``true``, ``[10, 20]``), else kept as text.

    Raises:
        ValueError: NaN or an infinity (no world or model setting takes them).
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        return text


def parse_settings(
    items: Iterable[str] | None,
    *,
    option: str = "--set",
    keys: str = "a setting",
    value: Callable[[str], Any] = text_value,
    known: Collection[str] | None = None,
) -> dict[str, Any]:
    """``["num-boxes=15", "scenes=one_object"]`` -> ``{"num_boxes": value("15"), "scenes": value("one_object")}``.

    Args:
        items: The option's items as given (None: none given).
        option: The option's name, first in every message (``--set``, ``--perception-set``).
        keys: What a key is, in words, for the message of an item that is not ``KEY=VALUE``
            (``"a world config field"``); with ``known``, the message lists those instead.
        value: Types a value's text; a ``ValueError`` it raises is refused naming the item.
        known: When given, the keys allowed (an item with another key is refused, listing them).

    Returns:
        The settings in the order given, keys with ``_`` for ``-``.

    Raises:
        ConfigError: an item without ``=`` or with an empty key, a key given twice, a key not in
            ``known``, or a value ``value`` refuses (one line: option, item, what is expected).

    >>> parse_settings(["num-boxes=15", "name=rope"], value=json_value)
    {'num_boxes': 15, 'name': 'rope'}
    """
    expected = f"expected KEY=VALUE with KEY {keys if known is None else 'one of ' + ', '.join(known)}"
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        where = f"{option} {str(item)!r}"
        if not sep or not key:
            raise ConfigError(f"{where}: not KEY=VALUE; {expected}")
        if known is not None and key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}; {expected}")
        if key in out:
            raise ConfigError(f"{where}: {key} given twice; give each setting once")
        try:
            out[key] = value(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return out
