"""nesy-physics bottom layer: worlds (ground truth), graphs and learned dynamics.

Nothing in ``physics`` imports ``perception``, ``reasoning`` or ``benchmarks``.
"""

from physics.errors import CheckpointError, ConfigError, DataError, NesyError, StateError

__all__ = ["NesyError", "ConfigError", "DataError", "StateError", "CheckpointError"]
