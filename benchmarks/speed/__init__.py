"""Speed suites for ``nesy bench speed --suite NAME``.

A suite is a function ``SpeedConfig -> dict`` (a JSON-serialisable result with
measured rates and machine information) registered by name in :data:`SUITES`.
Adding a suite is one function and one line here::

    SUITES["clevr-data"] = clevr_data_suite
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.speed.config import SpeedConfig
from benchmarks.speed.executor_suite import executor_suite, format_table

__all__ = ["SpeedConfig", "SUITES", "Suite", "TABLES"]


Suite = Callable[[SpeedConfig], dict]


def clevr_data_suite(config: SpeedConfig) -> dict:
    """CLEVR data generation, scenes/s with questions (imported on use: pybullet and torch)."""
    from benchmarks.speed.clevr_data import clevr_data_suite as suite

    return suite(config)


def clevrer_data_suite(config: SpeedConfig) -> dict:
    """CLEVRER video generation, videos per minute (imported on use: pybullet)."""
    from benchmarks.speed.clevrer_data import clevrer_data_suite as suite

    return suite(config)


TABLES: dict[str, Callable[[dict], str]] = {"executor": format_table}  # terminal summaries

SUITES: dict[str, Suite] = {
    "executor": executor_suite,
    "clevr-data": clevr_data_suite,
    "clevrer-data": clevrer_data_suite,
}
