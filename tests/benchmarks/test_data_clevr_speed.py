"""The clevr-data speed suite measures what it reports (stages add up, rates are consistent)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.speed.clevr_data import (
    MAX_SUITE_SCENES,
    ClevrSpeedConfig,
    clevr_data_suite,
    run_clevr_data_speed,
)


def test_speed_run_reports_consistent_stage_times(shared_clevr):
    r = run_clevr_data_speed(
        ClevrSpeedConfig(scenes=3, questions_per_scene=2,
                         templates=str(shared_clevr / "templates"))
    )
    assert r["suite"] == "clevr-data" and r["scenes"] == 3 and r["image"] == "480x320"
    assert r["scenes_per_second"] == pytest.approx(3 / r["seconds"], rel=0.01)
    ms = r["ms_per_scene"]
    world = ms["build"] + ms["settle"] + ms["tinyrenderer"] + ms["mask"] + ms["shade"]
    assert 0 < world <= ms["scene (world + SceneGraph)"] + 0.1
    total_ms = 1000 * r["seconds"] / 3
    assert ms["scene (world + SceneGraph)"] + ms["png_image"] + ms["png_mask"] + ms["questions"] <= total_ms + 0.5
    assert r["questions_generated"] > 0 and r["layouts_per_scene"] >= 1.0


def test_suite_caps_the_shared_scene_count(monkeypatch):
    seen = {}
    monkeypatch.setattr(
        "benchmarks.speed.clevr_data.run_clevr_data_speed", lambda cfg: seen.setdefault("cfg", cfg) and {}
    )
    clevr_data_suite(SimpleNamespace(scenes=100_000, seed=4))
    assert seen["cfg"].scenes == MAX_SUITE_SCENES and seen["cfg"].seed == 4
