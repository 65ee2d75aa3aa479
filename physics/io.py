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

from physics.errors import CheckpointError, DataError, OutputError

__all__ = [
    "atomic_open",
    "ensure_dir",
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


def _reason(exc: OSError) -> str:
    """The system's reason for an OS failure, without Python's repetition of the paths."""
    return exc.strerror or type(exc).__name__


def _mkdir_failure(path: Path) -> str | None:
    """Create folder ``path`` and its parents; the reason it cannot be, or None on success."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        return "a file is in the way"
    except OSError as exc:
        return _reason(exc)
    return None


def ensure_dir(path: PathLike, what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) if needed.

    Args:
        path: The folder.
        what: What it is, for the message ("output folder").

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: ``path`` is empty, or it (or a parent) cannot be created,
            a file being in the way for instance (names the path and the reason).
    """
    if str(path) == "":
        raise OutputError(f"{what} is an empty path; name a folder")
    path = Path(path)
    failure = _mkdir_failure(path)
    if failure:
        raise OutputError(f"cannot create {what} {path}: {failure}")
    return path


@contextmanager
def atomic_open(path: PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` and rename it over ``path`` on success.

    Args:
        path: Final destination.  Parent folders are created.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.

    Raises:
        OutputError: ``path`` is empty or a folder, or the file cannot be
            created, written or renamed into place (names the path and the
            system's reason; nothing is left behind).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    if str(path) == "" or str(path).endswith(("/", os.sep)):
        raise OutputError(f"output path {str(path)!r} names no file; give a file name")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    failure = _mkdir_failure(path.parent)
    if failure:
        raise OutputError(f"cannot write {path}: its folder cannot be created ({failure})")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; give them the usual umask-based mode
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:  # a full disk shows here, when buffered bytes reach it
                raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
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

    Raises:
        DataError: ``obj`` holds NaN or an infinity (not JSON; nothing is written).
        OutputError: ``path`` cannot be written.
    """
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as exc:  # NaN or infinity: not JSON; json.dumps names no place
        raise DataError(f"cannot write {path}: {exc}; JSON holds finite numbers only") from None
    atomic_write_text(path, text + "\n")


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
