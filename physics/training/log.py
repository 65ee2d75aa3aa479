"""Run logs: one JSON line per round, and TensorBoard scalars when ``tensorboard`` is installed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from physics.io import PathLike, atomic_write_text, ensure_dir

__all__ = ["RunLog"]


class RunLog:
    """Writes the records of a run to ``path`` (JSON lines) and to TensorBoard.

    Args:
        path: The ``.jsonl`` file.
        rewrite: Rewrite the whole file from the run's history at each round
            (atomic; a resumed run's file then holds exactly its checkpointed
            rounds).  ``False`` appends one line per round with a single
            ``O_APPEND`` write, for files that several runs share (the
            derenderer's two stages).
        tensorboard: Folder for TensorBoard event files; ``None``: none.  Skipped
            silently when the ``tensorboard`` package is not installed.
    """

    def __init__(self, path: PathLike, *, rewrite: bool = True, tensorboard: PathLike | None = None) -> None:
        self.path = Path(path)
        self.rewrite = rewrite
        self.writer = _summary_writer(tensorboard) if tensorboard is not None else None

    def write(self, history: Sequence[dict[str, Any]], tag: str = "") -> None:
        """Record the last row of ``history`` (the file gets all of it when ``rewrite``)."""
        if not history:
            return
        if self.rewrite:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in history))
        else:
            ensure_dir(self.path.parent, "log folder")
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(history[-1]) + "\n")
        if self.writer is not None:
            row = history[-1]
            x = int(row.get("step", len(history)))
            for key, value in row.items():
                if isinstance(value, float) and key != "seconds":
                    self.writer.add_scalar(f"{tag}/{key}" if tag else key, value, x)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _summary_writer(folder: PathLike) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))
