"""Safe file I/O: atomic writes and JSON reads that fail with a clear message.

Long jobs must never leave a half-written file behind.  Every writer here writes
to a temporary file in the same folder and renames it into place (atomic on
POSIX and Windows), so a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from physics.errors import CheckpointError, DataError

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "read_json",
    "torch_load",
]

PathLike = str | os.PathLike[str]


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_mode()


@contextmanager
def atomic_open(path: PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` and rename it over ``path`` on success.

    Args:
        path: Final destination.  Parent folders are created.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; give them the usual umask-based mode
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: PathLike, obj: Any, *, indent: int | None = None) -> None:
    """Serialise ``obj`` as JSON and write it atomically.

    Keys keep their insertion order, so the same object always gives the same bytes.
    """
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def atomic_torch_save(path: PathLike, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints survive a killed run)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into a :class:`DataError`.

    Args:
        path: File to read.
        what: What the file is meant to be, for the message ("CLEVR scenes file").

    Raises:
        DataError: the file is missing, unreadable, or not valid JSON (with line
            and column of the fault).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def torch_load(path: PathLike, what: str = "checkpoint") -> Any:
    """Load a checkpoint with ``weights_only=True``; corrupt files raise CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt archives
        raise CheckpointError(f"{what} {path} is corrupt or not a weights-only checkpoint "
                              f"({_load_failure(exc)})") from None


def _load_failure(exc: Exception) -> str:
    """The informative part of a ``torch.load`` failure, in one line.

    A weights-only refusal carries paragraphs of advice (including loading with
    ``weights_only=False``, which this project never does); keep only the
    unpickler's own reason, else the first line of the message.
    """
    marker = "WeightsUnpickler error:"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for k, line in enumerate(lines):
        if marker in line:
            reason = line.split(marker, 1)[1].strip() or (lines[k + 1] if k + 1 < len(lines) else "")
            return f"unpickler: {reason}" if reason else type(exc).__name__
    if not lines:
        return type(exc).__name__
    return lines[0].split(". ")[0].rstrip(".")[:200]
