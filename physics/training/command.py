"""The command line that reproduces a run: a config dataclass back to its CLI flags.

The inverse of the CLI's flag generation (``benchmarks.config_flags``): field
``lr_final`` becomes ``--lr-final VALUE``; a boolean becomes ``--name`` or
``--no-name``; ``None`` values are left out (the flag's default).  Trainers store
the resulting command in every checkpoint (:class:`~physics.training.TrainLoop`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from physics.training.loop import flag_name

__all__ = ["config_flags"]


def config_flags(
    config: Any, *, skip: tuple[str, ...] = (), defaults: Any = None, keep: tuple[str, ...] = ()
) -> list[str]:
    """Flags that rebuild ``config`` (a dataclass instance), in field order.

    Args:
        config: The run's config.
        skip: Fields never written (e.g. ``threads``: it does not change the result).
        defaults: A config of defaults: fields equal to it are left out, except ``keep``.
        keep: Fields written even when they equal ``defaults``.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     lr_final: float = 0.1
    ...     augment: bool = False
    >>> config_flags(C(0.2, True))
    ['--lr-final', '0.2', '--augment']
    """
    parts: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in skip or value is None:
            continue
        if defaults is not None and f.name not in keep and value == getattr(defaults, f.name):
            continue
        flag = flag_name(f.name)
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts += [flag, str(value)]
    return parts
