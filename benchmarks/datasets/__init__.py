"""Data set builders behind ``nesy data ...`` (one module per data set family)."""
