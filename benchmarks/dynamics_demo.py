"""The learned-physics part of ``nesy demo``: shipped simulators on a fresh cradle episode.

Rolls out every shipped Newton's-cradle model (Interaction Network, PropNet,
DPI-Net, whichever ship) from the first frames of an episode the ground-truth
world records on the spot, reports each model's full-rollout position MSE, and
writes a GIF of the predictions beside the truth (strings drawn, real-time
frame duration).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.dynamics_eval import find_checkpoint, rollout_gif
from physics.errors import CheckpointError
from physics.models import MODELS, load_model, rollout_errors
from physics.worlds.dynamics import make_world

__all__ = ["cradle_rollout_demo"]

DEMO_SEED_OFFSET = 10_000_000  # keeps the demo episode away from training seeds


def cradle_rollout_demo(
    out: Path, seed: int, say: Callable[[str], None] = print, progress: bool = True
) -> dict[str, Any]:
    """Roll out the shipped cradle models (a progress bar on stderr); raises CheckpointError when none ships."""
    models = {}
    for name in MODELS:
        try:
            models[name] = load_model(find_checkpoint("cradle", name))[0]
        except CheckpointError:
            continue
    if not models:
        raise CheckpointError("no cradle checkpoint ships in physics/models/checkpoints")
    stages = tqdm(total=1 + len(models), desc="ground-truth episode", unit="rollout", disable=not progress,
                  leave=False)
    with stages:
        world = make_world("cradle")
        try:
            truth = world.rollout(seed=DEMO_SEED_OFFSET + seed)
        finally:
            world.close()
        stages.update()
        preds, errors = {}, {}
        for name, model in models.items():
            stages.set_description(f"rollout of {name}")
            errors[name] = rollout_errors(model, [truth])
            preds[name] = errors[name]["predictions"][0]
            stages.update()
    result: dict[str, Any] = {"steps": truth.num_steps, "models": {}}
    for name, errs in errors.items():
        result["models"][name] = {"mse_full": errs["mse_full"], "steps_per_s": round(errs["steps_per_s"], 1)}
        say(f"{name:>8}: full-rollout position MSE {errs['mse_full']:.2e} m^2 over {truth.num_steps} steps "
            f"({errs['steps_per_s']:.0f} steps/s)")
    gif = out / "cradle_rollout.gif"
    rollout_gif(truth, preds, gif)
    result["gif"] = str(gif)
    say(f"predicted beside true rollout -> {gif}")
    return result
