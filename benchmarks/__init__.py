"""Benchmarks: dataset builders, evaluation suites, speed runs and the ``nesy`` CLI."""
