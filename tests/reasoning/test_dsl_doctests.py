"""The ``>>>`` examples in the reasoning.dsl docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "reasoning.dsl",
    "reasoning.dsl.catalogue",
    "reasoning.dsl.clevrer_format",
    "reasoning.dsl.formats",
    "reasoning.dsl.function_table",
    "reasoning.dsl.rewrite",
    "reasoning.dsl.text",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
