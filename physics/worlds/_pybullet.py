"""pybullet, imported once and quietly: the one place the project imports it.

pybullet's C module prints ``pybullet build time: ...`` to the process's
standard output when it is first imported.  That line is not ours to show: it
lands in the middle of a command's output (and in any pipe it feeds).  This
module imports pybullet and ``pybullet_utils.bullet_client`` with file
descriptors 1 and 2 pointed at ``/dev/null``, flushing C's stdio buffers before
they are restored (when stdout is a pipe, C buffers the banner and would write
it later).  Every other module imports pybullet from here::

    from physics.worlds._pybullet import BulletClient, pybullet
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["pybullet", "BulletClient", "quiet_c_output"]


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: write out whatever C's stdio holds for any stream."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to reach (not on a POSIX libc)
        pass


@contextmanager
def quiet_c_output() -> Iterator[None]:
    """Send C-level stdout and stderr to ``/dev/null`` inside the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no descriptors to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                _flush_c_stdio()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


with quiet_c_output():
    import pybullet
    from pybullet_utils.bullet_client import BulletClient
