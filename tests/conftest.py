"""Shared fixtures: paths to the official CLEVR data beside the clone, small seeded scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CLEVR = REPO.parent / "shared" / "data" / "clevr"


@pytest.fixture(scope="session")
def shared_clevr() -> Path:
    """The official CLEVR templates/metadata (read in place, never copied)."""
    if not (SHARED_CLEVR / "templates").is_dir():
        pytest.skip(f"official CLEVR data not found at {SHARED_CLEVR}")
    return SHARED_CLEVR
