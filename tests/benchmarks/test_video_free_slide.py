"""``free_slide`` of ``nesy bench video-dynamics``: a provider's travel over a free slide against the truth's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.video_dynamics_eval import free_slide_summary, free_slides
from physics.video_dynamics import FPS
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)

H = 5  # horizon of these slides
STEP = 0.1  # units a frame: 2.5 units/s at 25 frames a second


def _x(oid: int, f: int) -> float:
    """Object 0 slides at STEP a frame, decelerating after frame 9; 1 rests; 2 slides into 3's
    neighbour and is struck at frame 12 (a future collision: no free slide); 3 creeps at 0.2 units/s."""
    if oid == 0:
        return STEP * min(f, 9) + sum(STEP * (1 - 0.1 * k) for k in range(1, f - 8))
    if oid == 2:
        return 3.0 + STEP * f
    if oid == 3:
        return -3.0 + 0.2 / FPS * f
    return 1.5


def _frame(f: int, shrink: float = 1.0) -> FrameStates:
    """Frame ``f``; ``shrink`` scales every object's travel after frame 9 (a provider that stops short)."""
    objs = []
    for oid in range(4):
        x = _x(oid, f) if f <= 9 else _x(oid, 9) + shrink * (_x(oid, f) - _x(oid, 9))
        objs.append(ObjectState(oid, (x, float(oid), 0.2), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True))
    return FrameStates(f, tuple(objs))


def _video():
    props = tuple(ObjectProperty(i, c, "rubber", "sphere") for i, c in enumerate(("red", "blue", "green", "gray")))
    ann = VideoAnnotation(0, "video_00000.mp4", props, tuple(_frame(f) for f in range(10)), ())
    truth = SimpleNamespace(future_trajectory=tuple(_frame(f) for f in range(10, 10 + H)),
                            future_collisions=(Collision((2, 1), 12, (3.0, 1.0, 0.2)),))
    return ann, truth


def test_a_provider_that_stops_short_reads_its_travel_ratio_and_end_error_only_for_free_fast_slides():
    ann, truth = _video()
    exact = free_slides(ann, truth, truth.future_trajectory, horizon=H)
    assert [round(r["speed"], 6) for r in exact] == [pytest.approx(STEP * FPS)]  # 1 rests, 2 is struck, 3 too slow
    assert exact[0]["travel_ratio"] == pytest.approx(1.0) and exact[0]["end_error"] == pytest.approx(0.0, abs=1e-9)
    short = free_slides(ann, truth, tuple(_frame(f, shrink=0.9) for f in range(10, 10 + H)), horizon=H)
    travel = sum(STEP * (1 - 0.1 * k) for k in range(1, H + 1))
    assert short[0]["travel"] == pytest.approx(travel)
    assert short[0]["travel_ratio"] == pytest.approx(0.9) and short[0]["end_error"] == pytest.approx(0.1 * travel)
    summary = free_slide_summary(short)
    assert summary["fast"]["objects"] == 1 and summary["fast"]["median_ratio_error"] == pytest.approx(0.1)
    assert summary["by_speed"]["2-3"]["median_travel_ratio"] == pytest.approx(0.9)
    assert summary["by_speed"]["0.3-1"]["objects"] == 0 and summary["by_speed"]["0.3-1"]["median_end_error"] is None
    assert free_slides(ann, truth, truth.future_trajectory[:-1], horizon=H) == []  # a rollout shorter than the horizon
