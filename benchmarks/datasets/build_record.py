"""The build record of a resumable data set: the options a folder is built with, checked on every rerun.

A builder resumes a killed run by making only what is missing, which is right
only when the rerun asks for the same content.  :func:`check_same_build` writes
the content options to a small JSON file on the first run and refuses a later run
with other options, naming each option that differs (as the folder records it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from physics.errors import ConfigError, DataError
from physics.io import atomic_write_json, read_json

__all__ = ["check_same_build"]


def check_same_build(marker: Path, identity: Mapping[str, Any], *, what: str, holds: str,
                     remedy: str = "choose another --out") -> None:
    """Record ``identity`` in ``marker``, or check that the recorded options are the same.

    Args:
        marker: The record file.
        identity: The options that change what is built (JSON values).
        what: What the record is, for the message of an unreadable file ("CLEVRER build record").
        holds: Start of the refusal, e.g. ``"data/x holds val videos built"``; `` with <options>`` follows.
        remedy: What to do instead of resuming.

    Raises:
        ConfigError: the folder is built with other options (names each, as recorded).
        DataError: the record is not an object of options.
    """
    if not marker.is_file():
        atomic_write_json(marker, dict(identity), indent=1)
        return
    try:
        previous = read_json(marker, what)
    except DataError as exc:  # damaged: say how to go on, as for a record that is no object
        raise DataError(f"{exc}; delete it to start again") from None
    if not isinstance(previous, dict):
        raise DataError(f"{marker} is not a build record (expected an object of options); delete it to start again")
    if previous != dict(identity):
        keys = dict.fromkeys([*identity, *previous])
        diff = ", ".join(f"{k}={previous.get(k)!r}" for k in keys if previous.get(k) != identity.get(k))
        raise ConfigError(f"{holds} with {diff}; rerun with the same options to resume, or {remedy}")
