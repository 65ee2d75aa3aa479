"""Speed, side by side in one run: the ``speed`` suite of ``nesy bench all``.

Measures the symbolic executor end to end against a plain per-question
interpreter of CLEVR semantics (``nesy bench speed --suite executor``), CLEVR
scene generation (``--suite clevr-data``) and CLEVRER video generation
(``--suite clevrer-data``).  The other suites add their own rates to the
report's speed table (perception images/s, learned rollout steps/s beside the
ground-truth simulator's, planning steps/s), so the table holds every rate of
one run on one machine.
"""

from __future__ import annotations

from typing import Any

from benchmarks.suites import SuiteContext, register_suite, speed_row, table

__all__ = ["run_speed", "SEED"]

SEED = 5454


def run_speed(ctx: SuiteContext) -> dict[str, Any]:
    """Executor against the plain interpreter, then CLEVR and CLEVRER generation."""
    import torch

    from benchmarks.speed.clevr_data import ClevrSpeedConfig, run_clevr_data_speed
    from benchmarks.speed.clevrer_data import ClevrerSpeedConfig, run_clevrer_data_speed
    from benchmarks.speed.config import SpeedConfig
    from benchmarks.speed.executor_suite import executor_suite

    torch.set_num_threads(ctx.threads)
    p = ctx.params
    ex = executor_suite(SpeedConfig(questions=p["questions"], scenes=p["scenes"], seed=p["seed"], repeats=p["repeats"]))
    e2e = ex["end_to_end"]
    rates = e2e["questions_per_second"]
    clevr = run_clevr_data_speed(ClevrSpeedConfig(scenes=p["clevr_scenes"], seed=p["seed"]))
    clevrer = run_clevrer_data_speed(ClevrerSpeedConfig(videos=p["clevrer_videos"], frames=p["clevrer_frames"],
                                                        future_frames=p["clevrer_future_frames"], seed=p["seed"]))
    speed = [speed_row(f"executor, {mode} (end to end from parsed JSON)", rate, "questions/s",
                       "" if mode == "plain" else f"{rate / rates['plain']:.1f}x the plain interpreter")
             for mode, rate in rates.items()]
    speed += [
        speed_row("CLEVR scene generation (pybullet, 480x320, masks, questions)", clevr["scenes_per_second"],
                  "scenes/s", f"{p['clevr_scenes']} scenes, one process"),
        speed_row(f"CLEVRER video generation ({clevrer['frames']} frames, {clevrer['image']})",
                  clevrer["videos_per_minute"] / 60.0, "videos/s",
                  f"{clevrer['videos_per_minute']:.2f} videos/min, {p['clevrer_videos']} video(s), one process"),
    ]
    rows = [[mode, f"{rate:,.0f}", f"{e2e['speedup_vs_plain'].get(mode, {'wall': 1.0})['wall']:.2f}",
             e2e["disagreements_with_plain"].get(mode, 0)] for mode, rate in rates.items()]
    cmd = (f"nesy bench speed --suite executor --questions {p['questions']} --scenes {p['scenes']} "
           f"--seed {p['seed']} --repeats {p['repeats']} --out R.json")
    return {
        "tables": [table(
            f"Executor speed: {e2e['questions']} official-shaped questions on {e2e['scenes']} scenes, end to end "
            "from parsed JSON",
            ["mode", "questions/s", "x plain interpreter", "answers differing from plain"], rows,
            command=cmd, seed=p["seed"],
            note="plain: a per-question interpreter of CLEVR semantics on JSON dicts (the baseline); "
            f"{100 * e2e['dag_fraction']:.0f}% of the programs are DAGs as the official generator writes them; "
            "single and batched compile each program structure once per run, so the fewer the questions the "
            "more that one-off cost weighs (docs/results/executor-speed.md has the figures of record at 50,000)",
        )],
        "figures": [],
        "speed": speed,
        "metrics": {"executor": {"questions_per_second": rates, "speedup_vs_plain": e2e["speedup_vs_plain"]},
                    "clevr_scenes_per_second": clevr["scenes_per_second"],
                    "clevrer_videos_per_minute": clevrer["videos_per_minute"]},
    }


register_suite(
    "speed", run_speed,
    quick={"questions": 10_000, "scenes": 500, "repeats": 1, "seed": SEED, "clevr_scenes": 2, "clevrer_videos": 1,
           "clevrer_frames": 32, "clevrer_future_frames": 8},
    full={"questions": 100_000, "scenes": 1000, "repeats": 3, "seed": SEED, "clevr_scenes": 20, "clevrer_videos": 3,
          "clevrer_frames": 128, "clevrer_future_frames": 50},
    group="Speed",
    help="executor against a plain interpreter, CLEVR and CLEVRER data generation",
    exclusive=True,
)
