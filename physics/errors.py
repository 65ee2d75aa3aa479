"""One exception family for the whole framework.

Every error a user can cause (bad files, bad programs, bad configs, bad tensors)
is a :class:`NesyError`.  Each subclass also subclasses the matching builtin, so
``except ValueError`` keeps working for callers who do not know our types, the
way lark's ``exceptions.py`` does it.  Messages name *what* was wrong, *where*,
and *what is allowed*.

The family lives in the bottom layer (``physics``) so that every package above
can raise and catch it without importing upwards.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "NesyError",
    "ConfigError",
    "DataError",
    "StateError",
    "CheckpointError",
    "OutputError",
]


class NesyError(Exception):
    """Base class of every error raised on purpose by nesy-physics."""


class ConfigError(NesyError, ValueError):
    """An option or configuration value is not allowed (names the choices).

    Args:
        settings: The config fields the refusal is about, where the raiser names them (``RolloutConfig``'s
            checks, :func:`physics.config_types.check_field_types`): a command whose flags have other names finds
            the flag that set them here, never by reading the message.  Kept through pickling.

    >>> ConfigError("RolloutConfig: edge_tolerance must be >= 0", settings=("edge_tolerance",)).settings
    ('edge_tolerance',)
    """

    def __init__(self, *args: object, settings: Iterable[str] = ()) -> None:
        super().__init__(*args)
        self.settings: tuple[str, ...] = tuple(settings)


class DataError(NesyError, ValueError):
    """A file or record is malformed: unreadable JSON, missing fields, wrong types."""


class StateError(NesyError, ValueError):
    """A physical state or tensor has the wrong shape or holds NaN/inf values."""


class CheckpointError(NesyError, ValueError):
    """A model checkpoint is missing, corrupt, or does not fit the model."""


class OutputError(NesyError, OSError):
    """An output file or folder cannot be written (names the path and the system's reason)."""
