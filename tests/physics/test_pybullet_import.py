"""pybullet's build banner never reaches a command's standard output, even through a pipe."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_worlds_prints_nothing():
    code = "import physics.worlds.clevr_world, physics.worlds.dynamics as d; d.make_world('cradle').close()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pybullet build time" not in done.stdout + done.stderr
    assert done.stdout == ""
