"""Safe file I/O: atomic writes and JSON reads that fail with a clear message.

Long jobs must never leave a half-written file behind.  Every writer here writes
to a temporary file in the same folder and renames it into place (atomic on
POSIX and Windows), so a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from physics.errors import CheckpointError, DataError, OutputError

__all__ = [
    "absent_file",
    "atomic_open",
    "check_writable",
    "ensure_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "nonfinite_tensor",
    "read_json",
    "torch_load",
    "npz_failure",
    "DIGEST_KEY",
    "weights_digest",
    "require_fields",
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


def check_writable(path: PathLike) -> Path:
    """Fail now, not after the work, if :func:`atomic_open` could not write ``path``; nothing is left behind.

    A long command (a benchmark, a control run) checks its ``--out`` before it starts: a folder, an
    empty path, a file in the way of its folder or a folder that refuses new files failed only
    when the result was written, after minutes or hours of work.  No folder is created: a
    temporary file is made and removed in the nearest folder that exists.

    Raises:
        OutputError: as :func:`atomic_open` would (names the path and the reason).
    """
    if str(path) == "" or str(path).endswith(("/", os.sep)):
        raise OutputError(f"output path {str(path)!r} names no file; give a file name")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: its folder cannot be created (a file is in the way: {folder})")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nesy-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    os.close(fd)
    os.unlink(tmp)
    return path


@contextmanager
def atomic_open(path: PathLike, mode: str = "w", *, durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` and rename it over ``path`` on success.

    Args:
        path: Final destination.  Parent folders are created.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.
        durable: ``fsync`` the file before the rename, so that it survives a power cut.
            ``False`` still never shows a half-written file under ``path`` while the system
            runs; only for files a later check finds damaged if a crash lost them (the CLEVRER
            builder's frames and masks: its resume check verifies each one's checksums).

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
                if durable:
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


def atomic_write_bytes(path: PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (``durable``: see :func:`atomic_open`)."""
    with atomic_open(path, "wb", durable=durable) as fh:
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


def atomic_torch_save(path: PathLike, obj: Any, *, digest: bool = True) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints survive a killed run).

    Args:
        path: Destination file.
        obj: What to save.  A dict gets ``obj[DIGEST_KEY]`` = :func:`weights_digest`
            of its tensors (unless ``digest=False``), which :func:`torch_load` checks.
        digest: Store the weights digest (dicts only).
    """
    import torch

    if digest and isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k != DIGEST_KEY}
        obj[DIGEST_KEY] = weights_digest(obj)
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
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(absent_file(path, what)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def absent_file(path: PathLike, what: str) -> str:
    """Why a file that should be read is not there, in words: a folder in its place, or nothing.

    >>> absent_file("/", "checkpoint")
    'checkpoint / is a folder, not a file'
    """
    path = Path(path)
    return f"{what} {path} is a folder, not a file" if path.is_dir() else f"{what} not found: {path}"


def torch_load(path: PathLike, what: str = "checkpoint", *, verify: bool = True) -> Any:
    """Load a checkpoint with ``weights_only=True``; corrupt or damaged files raise CheckpointError.

    A dict holding ``DIGEST_KEY`` (every checkpoint this project writes) is checked
    against :func:`weights_digest` of its tensors, so flipped bytes inside the
    weights are refused.  A dict without one (written before digests existed, or
    by hand) loads unchecked; the shipped checkpoints all carry one (tested).

    Args:
        path: File to read.
        what: What the file is meant to be, for the message.
        verify: Check the stored digest (``False`` only to repair a file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(absent_file(path, what))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt archives
        raise CheckpointError(f"{what} {path} is corrupt or not a weights-only checkpoint "
                              f"({_load_failure(exc)})") from None
    if verify and isinstance(obj, dict) and DIGEST_KEY in obj:
        stored = obj[DIGEST_KEY]
        if not isinstance(stored, str) or stored != weights_digest(obj):
            raise CheckpointError(f"{what} {path} is damaged: its weights do not match their stored "
                                  f"{DIGEST_KEY} digest")
    where = nonfinite_tensor(obj) if verify else None
    if where is not None:
        raise CheckpointError(f"{what} {path} holds NaN or infinite values in {where} (a run that diverged?); "
                              "use an earlier checkpoint or train again")
    return obj


def nonfinite_tensor(obj: Any) -> str | None:
    """The key path (``'model' / 'fc.weight'``) of the first floating tensor in ``obj`` holding NaN or inf, else None.

    Nested dicts, lists and tuples are searched in order; no weight or optimiser state this project
    saves is ever non-finite, so one that is comes from a run that diverged or a damaged file.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        return "" if (obj.is_floating_point() or obj.is_complex()) and not bool(torch.isfinite(obj).all()) else None
    items: Any = obj.items() if isinstance(obj, Mapping) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        inner = nonfinite_tensor(value)
        if inner is not None:
            return f"{key!r}" + (f" / {inner}" if inner else "")
    return None


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


def npz_failure(exc: Exception) -> str:
    """Why ``np.load(path, allow_pickle=False)`` failed, in words that fit a user's file.

    numpy reads bytes that are neither ``.npy`` nor ``.npz`` as a pickle and refuses it with advice to
    load it unsafely (``allow_pickle=True``), which never applies to a data file: say what it means.
    """
    return "not a NumPy .npz archive" if "pickled" in str(exc) else str(exc)


DIGEST_KEY = "weights_sha256"


def weights_digest(obj: Any) -> str:
    """SHA-256 over every tensor in ``obj`` (nested dicts, lists, tuples), in a stable order.

    Each tensor contributes its path of keys, dtype, shape and raw bytes; dict
    keys are visited in sorted order and ``obj[DIGEST_KEY]`` itself is skipped,
    so the digest of a loaded checkpoint equals the one computed when it was saved.
    Values that are not tensors (configs, metadata) are left out: they do not
    change what the weights compute, and a damaged one fails to load or to fit.
    """
    import torch

    h = hashlib.sha256()

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(f"{prefix}|{t.dtype}|{tuple(value.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, Mapping):
            for key in sorted(value, key=repr):
                if not (prefix == "" and key == DIGEST_KEY):
                    visit(f"{prefix}/{key!r}", value[key])
        elif isinstance(value, (list, tuple)):
            for k, item in enumerate(value):
                visit(f"{prefix}[{k}]", item)

    visit("", obj)
    return h.hexdigest()


def require_fields(obj: Any, path: PathLike, what: str, fields: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Check that a loaded checkpoint is a dict whose ``fields`` have the given types.

    Args:
        obj: What :func:`torch_load` returned.
        path: Its file, for the message.
        what: What the file is meant to be ("dynamics checkpoint").
        fields: Required key -> allowed type(s).

    Returns:
        ``obj`` (a dict).

    Raises:
        CheckpointError: ``obj`` is not a dict, lacks a field, or a field has another type;
            the message names the file, the field, the expected and the found type.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a {what}: it holds a {type(obj).__name__}, not a dict")
    for key, kind in fields.items():
        if key not in obj:
            raise CheckpointError(f"{path} is not a {what}: it has no {key!r} entry")
        if not isinstance(obj[key], kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise CheckpointError(f"{path} is not a {what}: its {key!r} entry is a {type(obj[key]).__name__}, "
                                  f"expected a {names}")
    return obj
