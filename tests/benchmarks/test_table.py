"""The terminal summary table: aligned columns, and only a result's short scalars."""

from __future__ import annotations

from benchmarks.table import cell, format_table, percent, scalar_rows


def test_numbers_right_aligned_text_left_and_header_underlined():
    text = format_table([["count", 3, 0.5], ["compare attribute", 120, 0.99]], ["type", "n", "acc"])
    lines = text.splitlines()
    assert lines[0].split() == ["type", "n", "acc"] and set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].startswith("count ") and lines[2].endswith("0.5")
    widths = {len(line) for line in lines}
    assert len(widths) == 1  # every row as wide as the header: columns line up


def test_cells_keep_small_errors_readable():
    assert cell(8.71e-05) == "8.71e-05" and cell(0.9917) == "0.9917" and cell(5_600_000.0) == "5,600,000"
    assert cell(None) == "-" and cell(True) == "yes" and percent(0.99354) == "99.35%"


def test_scalar_rows_skip_machine_details_and_lists():
    result = {"questions": 10, "rates": {"single": 1.5, "batched": 9.0}, "machine": {"cpu": 2},
              "per_scene": [[0, 1, 1]], "ratios": {"single": {"wall": 2.1}}, "deep": {"a": {"b": {"c": 1}}}}
    assert scalar_rows(result, skip=["machine"]) == [
        ["questions", 10], ["rates.single", 1.5], ["rates.batched", 9.0], ["ratios.single.wall", 2.1]]
