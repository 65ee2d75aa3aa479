"""Shared fixtures: paths to the official CLEVR data beside the clone, small seeded scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CLEVR = REPO.parent / "shared" / "data" / "clevr"

# "What number of cubes are objects or large blue things?" as the official CLEVR
# generator writes it for the single_or template: node 1 is read twice (by
# filter_size and by union) and node 0 by nobody.
SINGLE_OR = [
    {"inputs": [], "type": "scene"},
    {"inputs": [], "type": "scene"},
    {"inputs": [1], "type": "filter_size", "side_inputs": ["large"]},
    {"inputs": [2], "type": "filter_color", "side_inputs": ["blue"]},
    {"inputs": [1, 3], "type": "union"},
    {"inputs": [4], "type": "filter_shape", "side_inputs": ["cube"]},
    {"inputs": [5], "type": "count"},
]


@pytest.fixture(scope="session")
def shared_clevr() -> Path:
    """The official CLEVR templates/metadata (read in place, never copied)."""
    if not (SHARED_CLEVR / "templates").is_dir():
        pytest.skip(f"official CLEVR data not found at {SHARED_CLEVR}")
    return SHARED_CLEVR


@pytest.fixture(scope="session")
def tiny_clevr(tmp_path_factory):
    """``tiny_clevr(n, split="train", seed=5, questions=10)``: a small CLEVR split (160x120) rendered once per session.

    Each set of arguments is rendered into its own folder on first use and reused after; callers copy it before
    changing any file.
    """
    from benchmarks.cli import main

    made: dict[tuple[int, str, int, int], Path] = {}

    def render(n: int, split: str = "train", seed: int = 5, questions: int = 10) -> Path:
        key = (n, split, seed, questions)
        if key not in made:
            out = tmp_path_factory.mktemp(f"clevr_{n}_{split}_{seed}_{questions}") / "data"
            assert main(["data", "clevr", "--n", str(n), "--out", str(out), "--split", split, "--seed", str(seed),
                         "--questions-per-scene", str(questions), "--width", "160", "--height", "120",
                         "--min-pixels", "20", "--backend", "serial"]) == 0
            made[key] = out
        return made[key]

    return render
