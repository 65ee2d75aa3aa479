"""The clevrer-data speed suite measures what it reports (stages add up, rates are consistent)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.speed import SUITES
from benchmarks.speed.clevrer_data import (
    MAX_SUITE_VIDEOS,
    ClevrerSpeedConfig,
    clevrer_data_suite,
    run_clevrer_data_speed,
)


def test_speed_run_reports_consistent_stage_times():
    r = run_clevrer_data_speed(ClevrerSpeedConfig(videos=2, frames=4, future_frames=2, width=96, height=64))
    assert r["suite"] == "clevrer-data" and r["videos"] == 2 and r["image"] == "96x64"
    assert r["videos_per_minute"] == pytest.approx(120 / r["seconds"], rel=0.01)
    ms = r["ms_per_frame"]
    assert set(ms) == {"render", "png_frames", "png_masks", "gif", "json", "simulation + counterfactuals"}
    assert all(v > 0 for v in ms.values())
    assert sum(ms.values()) == pytest.approx(1000 * r["seconds"] / 8, rel=0.01)


def test_speed_run_passes_the_future_share_to_the_builder(monkeypatch):
    shares = []
    real = run_clevrer_data_speed.__globals__["build_video"]
    monkeypatch.setattr("benchmarks.speed.clevrer_data.build_video",
                        lambda data, k, *a: shares.append(data.future_share) or real(data, k, *a))
    r = run_clevrer_data_speed(ClevrerSpeedConfig(videos=1, frames=4, future_frames=2, width=96, height=64,
                                                  future_share=-1.0))
    assert r["future_share"] == -1.0 and shares == [-1.0, -1.0]  # the warm-up video and the timed one


def test_suite_is_registered_and_caps_the_shared_scene_count(monkeypatch):
    assert "clevrer-data" in SUITES
    seen = {}
    monkeypatch.setattr(
        "benchmarks.speed.clevrer_data.run_clevrer_data_speed", lambda cfg: seen.setdefault("cfg", cfg) and {}
    )
    clevrer_data_suite(SimpleNamespace(scenes=100_000, seed=4))
    assert seen["cfg"].videos == MAX_SUITE_VIDEOS and seen["cfg"].seed == 4
