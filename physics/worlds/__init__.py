"""Seeded, deterministic ground-truth worlds (pybullet scenes and simulators)."""
